//! `ui_config` `visual_agents` on the MozaiksAI socket: the agents whose
//! messages are chat bubbles. Any other agent's text is downgraded to a
//! trace (secrets redacted, at most [`TRACE_MAX_CHARS`] characters) and its
//! other events (tool calls and results, streamed text) are left out; an
//! empty list shows every agent. Names compare as MozaiksAI normalises them:
//! lower case, without spaces and the word "agent".

use std::sync::LazyLock;

use regex::Regex;

/// The longest trace text; longer ones are cut.
pub(crate) const TRACE_MAX_CHARS: usize = 800;

/// How a message of an agent is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// A chat bubble.
    Bubble,
    /// A trace line.
    Trace,
}

/// The normalised `visual_agents` of a workflow.
#[derive(Debug, Clone, Default)]
pub(crate) struct VisualAgents(Vec<String>);

impl VisualAgents {
    /// From the workflow's list (empty: everyone is shown).
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self(names.into_iter().map(normalise).collect())
    }

    /// How `agent`'s messages are shown.
    pub(crate) fn visibility(&self, agent: &str) -> Visibility {
        if self.0.is_empty() || self.0.contains(&normalise(agent)) {
            Visibility::Bubble
        } else {
            Visibility::Trace
        }
    }
}

/// `InterviewAgent` → `interview`.
fn normalise(name: &str) -> String {
    name.to_lowercase().replace("agent", "").replace(' ', "")
}

/// A text as a trace shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trace {
    /// Redacted and cut.
    pub(crate) content: String,
    /// Characters before.
    pub(crate) original_len: usize,
    /// Whether a secret was replaced.
    pub(crate) redacted: bool,
    /// Whether it was cut.
    pub(crate) truncated: bool,
}

static SECRETS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}",
        r"sk-[A-Za-z0-9_-]{8,}",
        r"gh[pousr]_[A-Za-z0-9]{16,}",
        r"AKIA[0-9A-Z]{16}",
        r"mongodb(\+srv)?://[^\s]+",
        r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        r"(?i)api[_-]?key\s*[=:]\s*[^\s,;]+",
    ]
    .iter()
    .filter_map(|pattern| Regex::new(pattern).ok())
    .collect()
});

/// `text` with secrets replaced by `[REDACTED]` and cut to
/// [`TRACE_MAX_CHARS`].
pub(crate) fn trace(text: &str) -> Trace {
    let mut content = text.to_owned();
    for secret in SECRETS.iter() {
        content = secret.replace_all(&content, "[REDACTED]").into_owned();
    }
    let redacted = content != text;
    let original_len = text.chars().count();
    let truncated = content.chars().count() > TRACE_MAX_CHARS;
    if truncated {
        content = content.chars().take(TRACE_MAX_CHARS).collect();
    }
    Trace {
        content,
        original_len,
        redacted,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_normalised_and_an_empty_list_shows_everyone() {
        let visual = VisualAgents::new(["InterviewAgent", "user"]);
        assert_eq!(visual.visibility("interview"), Visibility::Bubble);
        assert_eq!(visual.visibility("Interview Agent"), Visibility::Bubble);
        assert_eq!(visual.visibility("user"), Visibility::Bubble);
        assert_eq!(visual.visibility("Planner"), Visibility::Trace);
        assert_eq!(
            VisualAgents::default().visibility("Planner"),
            Visibility::Bubble
        );
    }

    #[test]
    fn traces_hide_secrets_and_are_cut() {
        let trace = trace("key sk-abcdefghijkl and Bearer abcdefghijk1234 ok");
        assert_eq!(trace.content, "key [REDACTED] and [REDACTED] ok");
        assert!(trace.redacted && !trace.truncated);
        let long = super::trace(&"x".repeat(900));
        assert_eq!(
            (long.content.len(), long.original_len, long.truncated),
            (800, 900, true)
        );
    }
}
