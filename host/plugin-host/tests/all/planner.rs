//! The demo tool set, through the harness: context, UI, logs, validation.

use mozaiks_plugin_host::harness::{ContextChange, Harness, ScriptedAnswer};
use mozaiks_plugin_host::{CallError, Display, ToolError};
use serde_json::json;

use crate::support::{call, call_error, ok, planner};

#[tokio::test]
async fn describes_every_function_with_an_object_schema() {
    let plugin = planner();
    let names: Vec<_> = plugin.functions().map(|f| f.name.as_str()).collect();
    for expected in [
        "echo",
        "add_task",
        "list_tasks",
        "complete_plan",
        "request_approval",
        "show_plan",
        "notify",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for f in plugin.functions() {
        assert_eq!(f.parameters["type"], "object", "{}", f.name);
        assert!(!f.description.is_empty(), "{} has no description", f.name);
    }
    assert_eq!(plugin.sdk_version(), Some("0.1.2"));
    assert_eq!(plugin.hash().len(), 64);
}

#[tokio::test]
async fn echo_returns_its_arguments() {
    let args = json!({"text": "héllo", "n": [1, 2, {"deep": null}]});
    let report = call(&planner(), "echo", args.clone()).await;
    assert_eq!(ok(&report), &args);
}

#[tokio::test]
async fn add_task_appends_to_the_context_and_logs() {
    let report = Harness::new()
        .context(json!({"tasks": [{"title": "existing", "priority": "low"}]}))
        .call(
            &planner(),
            "add_task",
            &json!({"title": "write tests", "priority": "high"}),
        )
        .await;
    assert_eq!(ok(&report)["count"], 2);
    assert_eq!(
        report.context["tasks"][1],
        json!({"title": "write tests", "priority": "high"})
    );
    assert!(
        matches!(&report.context_changes[..], [ContextChange::Set { key, .. }] if key == "tasks")
    );
    let log = report
        .logs
        .iter()
        .find(|r| r.fields.get("title").map(String::as_str) == Some("write tests"))
        .expect("an info log of the task with its title as a field");
    assert_eq!(log.level, mozaiks_plugin_host::LogLevel::Info);
    assert_eq!(log.plugin, "planner");
    assert_eq!(log.function, "add_task");
    assert_eq!(log.chat_id, "harness");
}

#[tokio::test]
async fn complete_plan_sets_the_flag_a_handoff_can_read() {
    let report = Harness::new()
        .context(json!({"tasks": [{"title": "a", "priority": "normal"}]}))
        .call(&planner(), "complete_plan", &json!({"summary": "one task"}))
        .await;
    assert_eq!(ok(&report)["plan_ready"], true);
    assert_eq!(report.context["plan_ready"], true);
    assert_eq!(report.context["plan_summary"], "one task");
}

#[tokio::test]
async fn request_approval_asks_the_user_and_records_the_answer() {
    let report = Harness::new()
        .context(json!({"tasks": [{"title": "a", "priority": "normal"}]}))
        .answer("ApprovalForm", json!({"approved": true, "comment": "go"}))
        .call(
            &planner(),
            "request_approval",
            &json!({"question": "Ship it?"}),
        )
        .await;
    assert_eq!(ok(&report)["approved"], true);
    assert_eq!(report.context["approved"], true);
    let [ask] = &report.ui[..] else {
        panic!("one UI request expected: {:?}", report.ui)
    };
    assert_eq!(ask.kind, "ask");
    assert_eq!(ask.component, "ApprovalForm");
    assert_eq!(ask.display, Display::Inline);
    assert_eq!(ask.payload["question"], "Ship it?");
    assert_eq!(ask.payload["tasks"][0]["title"], "a");
}

#[tokio::test]
async fn a_cancelled_approval_is_a_tool_error_not_a_crash() {
    let report = Harness::new()
        .script("ApprovalForm", ScriptedAnswer::Cancel)
        .call(
            &planner(),
            "request_approval",
            &json!({"question": "Ship it?"}),
        )
        .await;
    assert!(
        matches!(report.result, Ok(Err(ToolError::Cancelled(_)))),
        "{:?}",
        report.result
    );
    assert!(report.context.get("approved").is_none());
}

#[tokio::test]
async fn notify_does_not_wait() {
    let report = call(&planner(), "notify", json!({"message": "halfway"})).await;
    assert_eq!(ok(&report)["sent"], true);
    assert_eq!(report.ui[0].kind, "notify");
    assert_eq!(report.ui[0].component, "Toast");
    assert_eq!(report.ui[0].payload["message"], "halfway");
}

#[tokio::test]
async fn invalid_arguments_are_rejected_before_the_tool_runs() {
    let report = call(&planner(), "add_task", json!({"priority": "urgent"})).await;
    let CallError::InvalidArguments {
        plugin,
        function,
        problems,
    } = call_error(&report.result)
    else {
        panic!("{:?}", report.result)
    };
    assert_eq!(
        (plugin.as_str(), function.as_str()),
        ("planner", "add_task")
    );
    assert!(problems.iter().any(|p| p.contains("title")), "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("/priority")),
        "{problems:?}"
    );
    assert!(
        report.logs.is_empty() && report.context_changes.is_empty(),
        "no guest code may run"
    );

    let not_json = planner()
        .call(
            "echo",
            "{oops",
            Default::default(),
            mozaiks_plugin_host::Ports::no_chat(),
        )
        .await;
    assert!(matches!(
        call_error(&not_json),
        CallError::InvalidArguments { .. }
    ));
}

#[tokio::test]
async fn unknown_functions_list_what_is_offered() {
    let report = call(&planner(), "launch_rockets", json!({})).await;
    let err = call_error(&report.result);
    assert!(matches!(err, CallError::UnknownFunction { .. }));
    assert!(err.to_string().contains("add_task"), "{err}");
}
