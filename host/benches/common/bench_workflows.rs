//! The workflows the process benchmarks serve, written into a scratch
//! folder: the same two-agent RoundRobin conversation as the orchestration
//! benchmark, with and without a tool, and a chat that waits for its user.

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

/// Two agents taking turns, text only.
pub(crate) const PLAIN: &str = "Bench";
/// The same with `planner`'s `echo` called once per turn.
pub(crate) const TOOLS: &str = "BenchTools";
/// A chat that waits for its user's first message.
pub(crate) const IDLE: &str = "BenchIdle";

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn write_agents(dir: &Path) -> anyhow::Result<()> {
    write_json(
        &dir.join("agents.json"),
        &json!({"agents": [
            {"name": "Alpha", "system_message": "You are Alpha. Add one idea per turn."},
            {"name": "Beta", "system_message": "You are Beta. Improve the last idea."}
        ]}),
    )
}

/// Writes [`PLAIN`], [`TOOLS`] (chats of `turns` agent turns) and
/// [`IDLE`] into `root`; `tool_plugin` is the plugin whose `echo` the tool
/// workflow calls.
pub(crate) fn write(root: &Path, turns: u32, tool_plugin: &str) -> anyhow::Result<()> {
    for name in [PLAIN, TOOLS] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        write_json(
            &dir.join("orchestrator.json"),
            &json!({
                "workflow_name": name,
                "max_turns": turns,
                "startup_mode": "AgentDriven",
                "orchestration_pattern": "RoundRobinPattern",
                "initial_agent": "Alpha",
                "initial_message": "Discuss the plan, one sentence each."
            }),
        )?;
        write_agents(&dir)?;
    }
    write_json(
        &root.join(TOOLS).join("tools.json"),
        &json!({"tools": [
            {"plugin": tool_plugin, "function": "echo", "tool_type": "Agent_Tool",
             "agent": ["Alpha", "Beta"]}
        ]}),
    )?;
    let idle = root.join(IDLE);
    std::fs::create_dir_all(&idle)?;
    write_json(
        &idle.join("orchestrator.json"),
        &json!({
            "workflow_name": IDLE,
            "max_turns": turns,
            "human_in_the_loop": true,
            "startup_mode": "UserDriven",
            "orchestration_pattern": "RoundRobinPattern",
            "initial_agent": "Alpha"
        }),
    )?;
    write_agents(&idle)
}
