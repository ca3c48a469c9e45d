//! The demo tool set: a task list kept in the chat's context, a plan summary,
//! the plan shown in the side panel (an artifact) and an approval asked of
//! the user in the chat (inline) through the UI.
//!
//! Context variables: `tasks` (array of `{title, priority}`), `plan_summary`
//! (string), `plan_ready` (bool), `approved` (bool).

use std::time::Duration;

use mozaiks_sdk::{Call, Display, ToolError, Toolbox, UiError, Value, json};
use serde::{Deserialize, Serialize};

/// How long `request_approval` waits for the user: long enough to read a plan.
const APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

#[derive(Debug, Serialize, Deserialize)]
struct Task {
    title: String,
    priority: Priority,
}

#[derive(Deserialize)]
struct AddTask {
    title: String,
    #[serde(default)]
    priority: Priority,
}

#[derive(Deserialize)]
struct CompletePlan {
    summary: String,
}

#[derive(Deserialize)]
struct RequestApproval {
    question: String,
    details: Option<String>,
}

#[derive(Deserialize)]
struct ShowPlan {
    title: String,
}

#[derive(Deserialize)]
struct Notify {
    message: String,
}

/// The answer `ApprovalForm` sends back.
#[derive(Deserialize)]
struct Approval {
    approved: bool,
}

fn tasks(call: &Call) -> Result<Vec<Value>, ToolError> {
    Ok(call.context().get("tasks")?.unwrap_or_default())
}

fn echo(args: Value, _call: &Call) -> Result<Value, ToolError> {
    Ok(args)
}

fn add_task(args: AddTask, call: &Call) -> Result<Value, ToolError> {
    let mut tasks = tasks(call)?;
    let task = Task {
        title: args.title,
        priority: args.priority,
    };
    tasks.push(serde_json::to_value(&task)?);
    call.context().set("tasks", &tasks)?;
    let count = tasks.len().to_string();
    mozaiks_sdk::log::info("task added", &[("title", &task.title), ("count", &count)]);
    Ok(json!({ "count": tasks.len() }))
}

fn list_tasks(_args: Value, call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "tasks": tasks(call)? }))
}

fn complete_plan(args: CompletePlan, call: &Call) -> Result<Value, ToolError> {
    let context = call.context();
    context.set("plan_summary", &args.summary)?;
    context.set("plan_ready", &true)?;
    Ok(json!({ "plan_ready": true, "tasks": tasks(call)?.len() }))
}

fn request_approval(args: RequestApproval, call: &Call) -> Result<Value, ToolError> {
    let payload =
        json!({ "question": args.question, "details": args.details, "tasks": tasks(call)? });
    let answer = call
        .ui()
        .ask("ApprovalForm", &payload, Display::Inline, APPROVAL_TIMEOUT)
        .map_err(|err| match err {
            UiError::Timeout => {
                ToolError::Cancelled(format!("no answer within {} s", APPROVAL_TIMEOUT.as_secs()))
            }
            UiError::Cancelled => {
                ToolError::Cancelled("the user cancelled the approval".to_owned())
            }
            UiError::Unavailable(msg) | UiError::InvalidRequest(msg) => ToolError::Failed(msg),
        })?;
    let approval: Approval = serde_json::from_value(answer.clone()).map_err(|err| {
        ToolError::Failed(format!(
            "ApprovalForm answered {answer}, expected {{\"approved\": bool}}: {err}"
        ))
    })?;
    call.context().set("approved", &approval.approved)?;
    Ok(answer)
}

fn show_plan(args: ShowPlan, call: &Call) -> Result<Value, ToolError> {
    let payload = json!({ "title": args.title, "tasks": tasks(call)? });
    call.ui()
        .ask("PlanBoard", &payload, Display::Artifact, APPROVAL_TIMEOUT)
        .map_err(|err| match err {
            UiError::Timeout => ToolError::Cancelled(format!(
                "the plan was not closed within {} s",
                APPROVAL_TIMEOUT.as_secs()
            )),
            UiError::Cancelled => ToolError::Cancelled("the user closed the plan".to_owned()),
            UiError::Unavailable(msg) | UiError::InvalidRequest(msg) => ToolError::Failed(msg),
        })
}

fn notify(args: Notify, call: &Call) -> Result<Value, ToolError> {
    call.ui().notify(
        "Toast",
        &json!({ "message": args.message }),
        Display::Inline,
    );
    Ok(json!({ "sent": true }))
}

fn toolbox() -> Toolbox {
    Toolbox::new()
        .function("echo", "Returns its arguments unchanged.", || json!({ "type": "object" }), echo)
        .function(
            "add_task",
            "Adds a task to the chat's plan. Returns how many tasks the plan has.",
            || json!({
                "type": "object",
                "properties": {
                    "title": { "type": "string", "minLength": 1 },
                    "priority": { "enum": ["low", "normal", "high"], "default": "normal" }
                },
                "required": ["title"],
                "additionalProperties": false
            }),
            add_task,
        )
        .function(
            "list_tasks",
            "Lists the tasks of the chat's plan.",
            || json!({ "type": "object", "properties": {}, "additionalProperties": false }),
            list_tasks,
        )
        .function(
            "complete_plan",
            "Marks the plan as ready, with a summary of it. Call it once every task is added.",
            || json!({
                "type": "object",
                "properties": { "summary": { "type": "string" } },
                "required": ["summary"],
                "additionalProperties": false
            }),
            complete_plan,
        )
        .function(
            "request_approval",
            "Asks the user to approve the plan and waits for the answer, {\"approved\": bool, \"comment\"?: string}.",
            || json!({
                "type": "object",
                "properties": {
                    "question": { "type": "string" },
                    "details": { "type": "string" }
                },
                "required": ["question"],
                "additionalProperties": false
            }),
            request_approval,
        )
        .function(
            "show_plan",
            "Shows the plan's tasks in the side panel and waits until the user has read them; returns the user's answer, {\"seen\": bool, \"note\"?: string}.",
            || json!({
                "type": "object",
                "properties": { "title": { "type": "string" } },
                "required": ["title"],
                "additionalProperties": false
            }),
            show_plan,
        )
        .function(
            "notify",
            "Shows the user a short message without waiting for an answer.",
            || json!({
                "type": "object",
                "properties": { "message": { "type": "string" } },
                "required": ["message"],
                "additionalProperties": false
            }),
            notify,
        )
}

mozaiks_sdk::export_toolbox!(toolbox);
