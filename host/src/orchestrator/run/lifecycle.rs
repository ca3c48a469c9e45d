//! Lifecycle tools (tools.json `lifecycle_tools`): plugin functions the run
//! calls by itself at `before_chat`, `after_chat`, `before_agent` and
//! `after_agent`, with the chat's context and UI like any tool.
//!
//! Each call is a `tool_call` (with its `origin`) and a `tool_result` in
//! the chat's log, under an id made of the trigger, the tool's name and,
//! for agent triggers, the turn. The log decides whether a tool ran on an
//! occasion: one with a result never runs again; one that started but has
//! no result (the server stopped during the call, or while its UI request
//! waited) runs again from the start when the run resumes: at least once,
//! exactly once when it completes. A failing lifecycle tool never stops
//! the run: its result says it failed, and the run goes on.

use super::{Run, RunError};
use crate::event::{CallOrigin, Event};
use crate::orchestrator::history::Position;
use crate::workflow::model::{LifecycleTrigger, StartupMode, lifecycle_arguments};

/// The `agent` of the events of a chat trigger's calls.
const CHAT_CALLER: &str = "chat";

impl Run {
    /// Runs, in file order, the lifecycle tools of `trigger` (for `agent`,
    /// on agent triggers) that have no result yet on this occasion.
    pub(super) async fn run_lifecycle(
        &mut self,
        trigger: LifecycleTrigger,
        agent: Option<&str>,
    ) -> Result<(), RunError> {
        let due: Vec<_> = self
            .workflow
            .lifecycle_tools(trigger, agent)
            .map(|l| l.tool.clone())
            .collect();
        for tool in due {
            let call_id = self.lifecycle_call_id(trigger, &tool.name);
            if self.has_result(&call_id) {
                continue;
            }
            let caller = agent.unwrap_or(CHAT_CALLER).to_owned();
            let arguments = lifecycle_arguments(trigger, agent);
            self.emit(Event::ToolCall {
                call_id: call_id.clone(),
                agent: caller.clone(),
                tool: tool.name.clone(),
                arguments: arguments.clone(),
                origin: Some(origin(trigger)),
            })
            .await?;
            let report = self
                .call_tool(&tool, &arguments.to_string(), &caller, &call_id)
                .await?;
            if !report.ok {
                tracing::warn!(
                    chat_id = %self.chat.chat_id,
                    trigger = trigger.as_str(),
                    tool = %tool.name,
                    error = %report.content,
                    "a lifecycle tool failed; the run goes on"
                );
            }
            self.emit(Event::ToolResult {
                call_id,
                agent: caller,
                tool: tool.name.clone(),
                ok: report.ok,
                content: report.content,
                error: report.error,
            })
            .await?;
        }
        Ok(())
    }

    /// A `UserDriven` chat is created waiting for its user, so its run never
    /// passes `Start`: its `before_chat` tools run when its run first
    /// starts (at creation, or with the first message after a restart),
    /// before the first message is taken (one sent meanwhile waits in the
    /// inbox).
    pub(super) async fn before_chat_of_user_driven(&mut self) -> Result<(), RunError> {
        let first_wait = self.workflow.startup_mode() == StartupMode::UserDriven
            && self.state.position == Position::WaitingForUser
            && !self
                .events
                .iter()
                .any(|e| matches!(e.event, Event::UserMessage { .. }));
        if first_wait {
            self.run_lifecycle(LifecycleTrigger::BeforeChat, None)
                .await?;
        }
        Ok(())
    }

    /// The id of `tool`'s call at `trigger` on the current occasion: the
    /// chat for chat triggers, the current turn for agent triggers.
    fn lifecycle_call_id(&self, trigger: LifecycleTrigger, tool: &str) -> String {
        let base = format!("lifecycle-{}-{tool}", trigger.as_str());
        if trigger.is_per_agent() {
            format!("{base}-turn-{}", self.state.turns)
        } else {
            base
        }
    }

    /// Whether the log has a result for the call `call_id`.
    pub(super) fn has_result(&self, call_id: &str) -> bool {
        self.events
            .iter()
            .any(|e| matches!(&e.event, Event::ToolResult { call_id: id, .. } if id == call_id))
    }
}

/// The `origin` of a lifecycle call's `tool_call`.
fn origin(trigger: LifecycleTrigger) -> CallOrigin {
    match trigger {
        LifecycleTrigger::BeforeChat => CallOrigin::BeforeChat,
        LifecycleTrigger::AfterChat => CallOrigin::AfterChat,
        LifecycleTrigger::BeforeAgent => CallOrigin::BeforeAgent,
        LifecycleTrigger::AfterAgent => CallOrigin::AfterAgent,
    }
}
