//! AG2's per-agent knobs, `max_consecutive_auto_reply` and
//! `human_input_mode`: what the runtime does with each value, and the values
//! it refuses rather than accept and ignore.
//!
//! - `max_consecutive_auto_reply: n` (n ≥ 1): the agent takes at most `n`
//!   turns since the user last spoke; the run then hands off to the user
//!   (or ends without human-in-the-loop) instead of starting its next turn
//!   (`orchestrator/auto_reply.rs`). 0 would mean the agent never speaks:
//!   refused.
//! - `human_input_mode`: in a group chat the human speaks as the `user`
//!   participant (`user` handoffs, `human_in_the_loop`), and no agent asks
//!   the human for its own reply. That is AG2's `NEVER`, what MozaiksAI
//!   forced on every agent, and the only value accepted. `ALWAYS` and
//!   `TERMINATE` (an agent that asks the human before each reply, or before
//!   it ends the chat) are refused with how to get the same effect.

use super::{AGENTS_FILE, Validator};
use crate::workflow::diagnostic::JsonPath;
use crate::workflow::spec::{AgentSpec, HumanInputMode};

impl Validator<'_> {
    /// Reports the values of AG2's knobs on `spec` that the runtime refuses.
    pub(super) fn ag2_knobs(&mut self, spec: &AgentSpec, path: &JsonPath) {
        if spec.max_consecutive_auto_reply == Some(0) {
            self.error(
                AGENTS_FILE,
                path.key("max_consecutive_auto_reply"),
                "max_consecutive_auto_reply 0 means the agent never replies",
                Some("give at least 1, or remove the agent".to_owned()),
            );
        }
        let refused = match spec.human_input_mode {
            None | Some(HumanInputMode::Never) => None,
            Some(HumanInputMode::Always) => Some((
                "ALWAYS",
                "to let the user answer after this agent, add a handoff rule {\"source_agent\": \"<agent>\", \"target_agent\": \"user\"} and set human_in_the_loop",
            )),
            Some(HumanInputMode::Terminate) => Some((
                "TERMINATE",
                "to ask the user before the chat ends, hand off to `user` instead of `terminate`, and end from a `user` rule",
            )),
        };
        if let Some((mode, help)) = refused {
            self.error(
                AGENTS_FILE,
                path.key("human_input_mode"),
                format!(
                    "human_input_mode \"{mode}\" is not supported: agents never ask the human for their own reply; the human speaks as the `user` participant (only \"NEVER\" is accepted)"
                ),
                Some(help.to_owned()),
            );
        }
    }
}
