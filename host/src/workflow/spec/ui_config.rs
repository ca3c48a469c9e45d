//! `ui_config.json` (or `.yaml`): how front ends show the chat.

use serde::Deserialize;

/// `ui_config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UiConfigFile {
    /// The agents (and `user`) whose messages are chat bubbles; the others'
    /// are shown as a trace. Empty or absent: every agent is a bubble.
    #[serde(default)]
    pub visual_agents: Vec<String>,
}
