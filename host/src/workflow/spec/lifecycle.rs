//! The file format of lifecycle tools (tools.json `lifecycle_tools`) and
//! hooks (`hooks.json`): plugin functions the runtime calls on its own, at
//! fixed points of a run, rather than tools an agent chooses to call.

use serde::Deserialize;

use super::{AgentList, ToolType, UiSpec};

/// One entry of tools.json `lifecycle_tools`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LifecycleToolSpec {
    /// When the runtime calls it.
    pub trigger: LifecycleTrigger,
    /// Only for these agents (agent triggers only); every agent if absent.
    #[serde(default)]
    pub agent: Option<AgentList>,
    /// Id of the plugin that implements it.
    pub plugin: String,
    /// The plugin function.
    pub function: String,
    /// The name its events carry; the function name if absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Informational; the plugin's own description if absent.
    #[serde(default)]
    pub description: Option<String>,
    /// Agent tool or UI tool (a UI tool may ask the user and wait).
    #[serde(default)]
    pub tool_type: ToolType,
    /// For UI tools: the component and how it is shown.
    #[serde(default)]
    pub ui: Option<UiSpec>,
}

/// When a lifecycle tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleTrigger {
    /// Once, when the run starts, before the first message.
    BeforeChat,
    /// Once, when the run ends by a `terminate` handoff or `max_turns`.
    AfterChat,
    /// At the start of each agent turn, before its first LLM call.
    BeforeAgent,
    /// At the end of each agent turn, before its handoffs are evaluated.
    AfterAgent,
}

impl LifecycleTrigger {
    /// The word used in the files, the events and the function's arguments.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BeforeChat => "before_chat",
            Self::AfterChat => "after_chat",
            Self::BeforeAgent => "before_agent",
            Self::AfterAgent => "after_agent",
        }
    }

    /// Whether it fires per agent turn (and may name agents).
    pub fn is_per_agent(self) -> bool {
        matches!(self, Self::BeforeAgent | Self::AfterAgent)
    }
}

/// `hooks.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HooksFile {
    /// The hooks, in the order they run.
    pub hooks: Vec<HookSpec>,
}

/// One hook: a plugin function that changes what an agent sees or says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HookSpec {
    /// Which hook.
    pub hook_type: HookType,
    /// The agent it applies to, or `all`.
    pub hook_agent: String,
    /// Id of the plugin that implements it.
    pub plugin: String,
    /// The plugin function.
    pub function: String,
}

/// The hooks the runtime calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookType {
    /// Before each LLM call of the agent: returns text added to its system
    /// message for that call.
    UpdateAgentState,
    /// Before an agent's reply is stored and sent: returns its new text.
    ProcessMessageBeforeSend,
}

impl HookType {
    /// The word used in hooks.json.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpdateAgentState => "update_agent_state",
            Self::ProcessMessageBeforeSend => "process_message_before_send",
        }
    }
}
