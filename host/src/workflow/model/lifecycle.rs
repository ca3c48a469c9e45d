//! The runtime model of lifecycle tools and hooks: plugin functions the
//! run calls by itself at fixed points (docs/workflows.md, "Lifecycle
//! tools" and "hooks.json").

use serde_json::{Value, json};

use super::{Tool, ToolKind};

pub(crate) use crate::workflow::spec::{HookType, LifecycleTrigger};

/// A plugin function the runtime calls at a `trigger`.
#[derive(Debug, Clone)]
pub struct LifecycleTool {
    /// When it runs.
    pub trigger: LifecycleTrigger,
    /// The agents it runs for (agent triggers); empty: every agent.
    pub agents: Vec<String>,
    /// The function, with its name (unique among lifecycle tools), plugin,
    /// parameter schema and kind (a UI tool may ask the user).
    pub tool: Tool,
}

impl LifecycleTool {
    /// Whether it runs at `trigger` for `agent` (`None` for chat triggers).
    pub fn runs_at(&self, trigger: LifecycleTrigger, agent: Option<&str>) -> bool {
        self.trigger == trigger
            && (self.agents.is_empty() || agent.is_some_and(|a| self.agents.iter().any(|n| n == a)))
    }
}

/// A hook: a plugin function that changes what one agent (or every agent)
/// is told or says.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Which hook.
    pub hook_type: HookType,
    /// The agent it applies to; `None`: every agent (`all`).
    pub agent: Option<String>,
    /// The plugin id.
    pub plugin: String,
    /// The plugin function.
    pub function: String,
    /// Its parameter schema, as validated (from the plugin's `describe()`).
    pub parameters: Value,
}

impl Hook {
    /// Whether it applies to `agent`'s `hook_type` hook.
    pub fn applies(&self, hook_type: HookType, agent: &str) -> bool {
        self.hook_type == hook_type && self.agent.as_deref().is_none_or(|a| a == agent)
    }

    /// The hook as a tool the plugin host can call (named after its
    /// function: that is what its context writes are attributed to).
    pub fn as_tool(&self) -> Tool {
        Tool {
            name: self.function.clone(),
            plugin: self.plugin.clone(),
            function: self.function.clone(),
            description: format!("{} hook", self.hook_type.as_str()),
            parameters: self.parameters.clone(),
            kind: ToolKind::Agent,
        }
    }
}

/// The arguments a lifecycle function receives: `{"trigger": "before_agent",
/// "agent": "Planner"}`, without `agent` for the chat triggers.
pub(crate) fn lifecycle_arguments(trigger: LifecycleTrigger, agent: Option<&str>) -> Value {
    match agent {
        Some(agent) => json!({"trigger": trigger.as_str(), "agent": agent}),
        None => json!({"trigger": trigger.as_str()}),
    }
}

/// The arguments a hook function receives: the agent, and its system
/// message (`update_agent_state`) or its reply (`process_message_before_send`).
pub(crate) fn hook_arguments(hook_type: HookType, agent: &str, text: &str) -> Value {
    match hook_type {
        HookType::UpdateAgentState => json!({"agent": agent, "system_message": text}),
        HookType::ProcessMessageBeforeSend => json!({"agent": agent, "message": text}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_arguments_name_the_agent_and_the_text() {
        assert_eq!(
            hook_arguments(HookType::UpdateAgentState, "A", "sys"),
            json!({"agent": "A", "system_message": "sys"})
        );
        assert_eq!(
            hook_arguments(HookType::ProcessMessageBeforeSend, "A", "hi"),
            json!({"agent": "A", "message": "hi"})
        );
    }

    #[test]
    fn lifecycle_arguments_carry_the_agent_only_for_agent_triggers() {
        assert_eq!(
            lifecycle_arguments(LifecycleTrigger::BeforeChat, None),
            json!({"trigger": "before_chat"})
        );
        assert_eq!(
            lifecycle_arguments(LifecycleTrigger::AfterAgent, Some("A")),
            json!({"trigger": "after_agent", "agent": "A"})
        );
    }
}
