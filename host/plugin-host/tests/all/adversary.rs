//! Every way a tool can misbehave ends in a typed error naming the plugin,
//! the function and the cause; the host stays up and the next call works.

use std::time::Duration;

use mozaiks_plugin_host::harness::{Harness, ScriptedAnswer};
use mozaiks_plugin_host::{CallError, LogSource, ToolError};
use serde_json::json;

use crate::support::{adversary, assert_host_alive, call, call_error, ok};

#[tokio::test]
async fn an_infinite_loop_hits_the_deadline() {
    let report = call(&adversary(), "spin", json!({})).await;
    let err = call_error(&report.result);
    let CallError::DeadlineExceeded {
        plugin,
        function,
        deadline,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!((plugin.as_str(), function.as_str()), ("adversary", "spin"));
    assert_eq!(*deadline, Duration::from_millis(1000));
    assert!(err.to_string().contains("limits.deadline_ms"), "{err}");
    assert_host_alive(&adversary()).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let report = call(&adversary(), "memory_bomb", json!({})).await;
    let err = call_error(&report.result);
    let CallError::MemoryLimit {
        limit_mib,
        requested_mib,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*limit_mib, 128);
    assert!(*requested_mib > 128);
    assert_host_alive(&adversary()).await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap_with_a_backtrace() {
    let report = call(&adversary(), "recurse", json!({"depth": 10_000_000})).await;
    let err = call_error(&report.result);
    let CallError::Trap {
        cause, backtrace, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(cause.contains("stack overflow"), "{cause}");
    assert!(!backtrace.is_empty(), "a guest backtrace is expected");
    assert_host_alive(&adversary()).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    let report = call(
        &adversary(),
        "panic",
        json!({"message": "the sky is falling"}),
    )
    .await;
    let err = call_error(&report.result);
    let CallError::Trap {
        function,
        guest_stderr,
        backtrace,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(function, "panic");
    assert!(
        guest_stderr.contains("the sky is falling"),
        "{guest_stderr}"
    );
    assert!(!backtrace.is_empty());
    assert!(err.to_string().contains("the sky is falling"), "{err}");
    assert_host_alive(&adversary()).await;
}

#[tokio::test]
async fn host_files_are_invisible() {
    let report = call(&adversary(), "read_file", json!({"path": "/etc/passwd"})).await;
    let err = call_error(&report.result);
    assert!(matches!(err, CallError::CapabilityDenied { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("plugin.toml"),
        "the hint must name the manifest: {text}"
    );
    assert!(!text.contains("root:"), "no file contents may leak: {text}");
    assert_host_alive(&adversary()).await;
}

#[tokio::test]
async fn host_environment_variables_are_invisible() {
    assert!(
        std::env::var("PATH").is_ok(),
        "the test needs PATH set on the host"
    );
    let report = call(&adversary(), "read_env", json!({"name": "PATH"})).await;
    assert_eq!(ok(&report)["value"], serde_json::Value::Null);
}

#[tokio::test]
async fn outgoing_connections_are_denied_and_name_the_destination() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let report = call(&adversary(), "connect", json!({"addr": addr.to_string()})).await;
    let err = call_error(&report.result);
    let CallError::CapabilityDenied {
        capability, hint, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(capability.contains(&addr.to_string()), "{capability}");
    assert!(hint.contains("plugin.toml"), "{hint}");
    assert!(
        listener.accept().is_err(),
        "no connection may reach the listener"
    );
    assert_host_alive(&adversary()).await;
}

#[tokio::test]
async fn output_that_is_not_json_is_a_bad_output_error() {
    let report = call(&adversary(), "bad_json", json!({})).await;
    assert!(
        matches!(call_error(&report.result), CallError::BadOutput { .. }),
        "{:?}",
        report.result
    );
}

#[tokio::test]
async fn fifty_megabytes_of_output_is_refused() {
    let report = call(&adversary(), "huge_output", json!({"mib": 50})).await;
    let err = call_error(&report.result);
    let CallError::OutputTooLarge { size, limit, .. } = err else {
        panic!("{err:?}")
    };
    assert!(*size > 50 * 1024 * 1024);
    assert_eq!(*limit, 1024 * 1024);
    assert_host_alive(&adversary()).await;
}

#[tokio::test]
async fn every_call_starts_from_a_fresh_instance() {
    for _ in 0..3 {
        assert_eq!(
            ok(&call(&adversary(), "counter", json!({})).await)["count"],
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_parallel_calls_all_succeed_in_isolation() {
    let plugin = adversary();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let plugin = plugin.clone();
        calls.spawn(async move { call(&plugin, "counter", json!({})).await });
    }
    let mut done = 0;
    while let Some(report) = calls.join_next().await {
        assert_eq!(ok(&report.unwrap())["count"], 1);
        done += 1;
    }
    assert_eq!(done, 100);
}

#[tokio::test]
async fn waiting_for_the_user_does_not_count_against_the_deadline() {
    // The adversary's deadline is 1 s; the user answers after 1.5 s.
    let report = Harness::new()
        .script(
            "Picker",
            ScriptedAnswer::Delayed(Duration::from_millis(1500), json!({"pick": 2})),
        )
        .call(
            &adversary(),
            "ask",
            &json!({"component": "Picker", "payload": {"options": [1, 2]}, "timeout_ms": 10_000}),
        )
        .await;
    assert_eq!(ok(&report)["answer"], json!({"pick": 2}));
    assert_eq!(report.ui[0].display, mozaiks_plugin_host::Display::Artifact);
}

#[tokio::test]
async fn an_unanswered_question_times_out_as_a_tool_error() {
    let report = Harness::new()
        .script("Picker", ScriptedAnswer::Silent)
        .call(
            &adversary(),
            "ask",
            &json!({"component": "Picker", "payload": {}, "timeout_ms": 200}),
        )
        .await;
    assert!(
        matches!(report.result, Ok(Err(ToolError::Cancelled(_)))),
        "{:?}",
        report.result
    );
}

#[tokio::test]
async fn stdout_and_stderr_go_to_the_log_sink_not_the_terminal() {
    let report = call(
        &adversary(),
        "print",
        json!({"text": "hello from the guest"}),
    )
    .await;
    ok(&report);
    let sources: Vec<_> = report
        .logs
        .iter()
        .filter(|r| r.message.contains("hello from the guest"))
        .map(|r| r.source)
        .collect();
    assert!(
        sources.contains(&LogSource::Stdout) && sources.contains(&LogSource::Stderr),
        "{:?}",
        report.logs
    );
}

#[tokio::test]
async fn log_records_carry_level_fields_and_call_scope() {
    let report = call(&adversary(), "log", json!({"message": "structured"})).await;
    ok(&report);
    let records: Vec<_> = report
        .logs
        .iter()
        .filter(|r| r.source == LogSource::Log)
        .collect();
    assert_eq!(records.len(), 5, "{records:?}");
    for r in records {
        assert_eq!(r.message, "structured");
        assert_eq!(
            r.fields.get("source").map(String::as_str),
            Some("adversary")
        );
        assert_eq!(
            (r.plugin.as_str(), r.function.as_str()),
            ("adversary", "log")
        );
    }
}

#[tokio::test]
async fn context_set_get_list_and_remove_round_trip() {
    let report = Harness::new()
        .context(json!({"other": 1}))
        .call(
            &adversary(),
            "context_roundtrip",
            &json!({"key": "k", "value": {"a": [1, 2]}}),
        )
        .await;
    let out = ok(&report);
    assert_eq!(out["read"], json!({"a": [1, 2]}));
    assert_eq!(out["keys"], json!(["k", "other"]));
    assert_eq!(out["removed"], true);
    assert_eq!(report.context, json!({"other": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_instance_pool_are_refused_as_busy_not_queued_forever() {
    let engine = mozaiks_plugin_host::PluginEngine::new(mozaiks_plugin_host::EngineConfig {
        max_concurrent_calls: 1,
        ..mozaiks_plugin_host::EngineConfig::default()
    })
    .unwrap();
    let plugin = engine
        .load_dir(&crate::support::adversary_dir())
        .await
        .unwrap();
    let holder = Harness::new().script(
        "Hold",
        ScriptedAnswer::Delayed(Duration::from_millis(500), json!(true)),
    );
    let hold_args = json!({"component": "Hold", "payload": {}, "timeout_ms": 5_000});
    let waiting = holder.call(&plugin, "ask", &hold_args);
    let second = async {
        // Let the first call take the only slot.
        tokio::time::sleep(Duration::from_millis(100)).await;
        call(&plugin, "counter", json!({})).await
    };
    let (first, second) = tokio::join!(waiting, second);
    assert_eq!(ok(&first)["answer"], true);
    let err = call_error(&second.result);
    assert!(matches!(err, CallError::Busy { .. }), "{err:?}");
    assert_host_alive(&plugin).await;
}
