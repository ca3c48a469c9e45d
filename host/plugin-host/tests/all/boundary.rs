//! Properties of the JSON <-> WIT boundary, over generated values: whatever
//! a caller, a tool or a user sends through it arrives unchanged or is
//! refused with a typed error; nothing panics or takes the host down.
//!
//! A fixed number of cases per property keeps the run bounded inside
//! `cargo test`; failures are not persisted to files.

use std::sync::OnceLock;

use mozaiks_plugin_host::harness::{CallReport, Harness};
use mozaiks_plugin_host::{CallError, LogSource, MAX_TOOL_ERROR_BYTES, ToolError};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::adversary;

/// Cases per property: enough to find an encoding bug, few enough that the
/// whole file runs in seconds.
const CASES: u32 = 48;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn run(harness: Harness, function: &str, args: &Value) -> CallReport {
    let plugin = adversary();
    runtime().block_on(harness.call(&plugin, function, args))
}

/// Any text: every Unicode scalar, control characters and quotes included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\"\\\\\u{7f}\u{2028}\u{fffd}a-z]{0,40}",
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    /// Arguments reach the tool and its result comes back unchanged.
    #[test]
    fn arguments_and_results_round_trip(value in json_value()) {
        let report = run(Harness::new(), "echo", &json!({ "value": value }));
        prop_assert_eq!(report.result.unwrap().unwrap(), value);
    }

    /// Arguments that are not a JSON object matching the schema are refused
    /// before any guest code runs, with a typed error.
    #[test]
    fn malformed_arguments_are_refused_typed(raw in text()) {
        let plugin = adversary();
        let result = runtime().block_on(plugin.call(
            "echo",
            &raw,
            mozaiks_plugin_host::CallInfo::default(),
            Harness::new().ports(),
        ));
        match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) if map.contains_key("value") => {
                prop_assert!(result.is_ok(), "{result:?}");
            }
            _ => prop_assert!(
                matches!(result, Err(CallError::InvalidArguments { .. })),
                "{result:?}"
            ),
        }
    }

    /// A tool's raw result is taken if and only if it is JSON.
    #[test]
    fn a_raw_result_is_accepted_exactly_when_it_is_json(raw in prop_oneof![
        text(),
        json_value().prop_map(|v| v.to_string()),
    ]) {
        let report = run(Harness::new(), "echo_raw", &json!({ "text": raw }));
        match serde_json::from_str::<Value>(&raw) {
            Ok(expected) => prop_assert_eq!(report.result.unwrap().unwrap(), expected),
            Err(_) => prop_assert!(
                matches!(report.result, Err(CallError::BadOutput { .. })),
                "{:?}",
                report.result
            ),
        }
    }

    /// A tool's own error keeps its kind and its message (cut only beyond
    /// the limit).
    #[test]
    fn tool_errors_keep_their_kind_and_message(
        kind in prop_oneof![
            Just("unknown_function"),
            Just("invalid_arguments"),
            Just("cancelled"),
            Just("failed"),
        ],
        message in text(),
    ) {
        let report = run(
            Harness::new(),
            "fail_with",
            &json!({ "kind": kind, "message": message }),
        );
        let error = report.result.unwrap().unwrap_err();
        prop_assert_eq!(error.kind(), kind);
        let got = match error {
            ToolError::UnknownFunction(m)
            | ToolError::InvalidArguments(m)
            | ToolError::Cancelled(m)
            | ToolError::Failed(m) => m,
        };
        prop_assert!(message.len() <= MAX_TOOL_ERROR_BYTES);
        prop_assert_eq!(got, message);
    }

    /// Context values are stored and read back unchanged; keys of any text
    /// up to the limit work.
    #[test]
    fn context_values_round_trip(key in "[^\\x00]{1,40}", value in json_value()) {
        let report = run(
            Harness::new(),
            "context_roundtrip",
            &json!({ "key": key, "value": value }),
        );
        let out = report.result.unwrap().unwrap();
        prop_assert_eq!(&out["read"], &value);
        prop_assert_eq!(&out["keys"], &json!([key]));
    }

    /// A UI payload reaches the user unchanged and the user's answer
    /// reaches the tool unchanged, whatever the component is called.
    #[test]
    fn ui_payloads_and_answers_round_trip(
        component in text(),
        payload in json_value(),
        answer in json_value(),
    ) {
        let harness = Harness::new().answer(&component, answer.clone());
        let report = run(
            harness,
            "ask",
            &json!({ "component": component, "payload": payload, "timeout_ms": 1000 }),
        );
        let out = report.result.unwrap();
        if component.len() <= mozaiks_plugin_host::MAX_UI_COMPONENT_BYTES {
            prop_assert_eq!(&out.unwrap()["answer"], &answer);
            prop_assert_eq!(&report.ui[0].payload, &payload);
            prop_assert_eq!(&report.ui[0].component, &component);
        } else {
            prop_assert!(out.is_err(), "an over-long component name is refused");
            prop_assert!(report.ui.is_empty());
        }
    }

    /// Log messages arrive as sent (the text log escapes them; see the
    /// host's telemetry).
    #[test]
    fn log_messages_round_trip(message in text()) {
        let report = run(Harness::new(), "log", &json!({ "message": message }));
        report.result.unwrap().unwrap();
        let logged: Vec<_> = report
            .logs
            .iter()
            .filter(|r| r.source == LogSource::Log)
            .collect();
        prop_assert_eq!(logged.len(), 5);
        for record in logged {
            prop_assert_eq!(&record.message, &message);
            prop_assert_eq!(record.fields.get("echo"), Some(&message));
        }
    }
}
