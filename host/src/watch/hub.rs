//! Reload events: every reload, success or failure, is logged, kept in a
//! short history (`GET /api/reloads`) and pushed to every connected client.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::plugin_set::ms;

/// How many reload events `GET /api/reloads` keeps.
const HISTORY: usize = 100;

/// What was reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReloadKind {
    /// A plugin folder (component or manifest).
    Plugin,
    /// A workflow folder.
    Workflow,
    /// A plugin's sources were rebuilt (`mozaiks dev`).
    Build,
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReloadOutcome {
    /// The new version is served.
    Loaded,
    /// The new version was refused; the last good one is still served.
    Rejected,
    /// The folder or component was deleted.
    Removed,
}

/// One reload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ReloadEvent {
    /// Always `"reload"`, so a client can tell it from chat events.
    #[serde(rename = "type")]
    pub kind_tag: &'static str,
    /// Plugin, workflow or build.
    pub kind: ReloadKind,
    /// The plugin id or workflow name.
    pub name: String,
    /// How it went.
    pub outcome: ReloadOutcome,
    /// The version now served (plugin: component hash; workflow: version
    /// hash), if any.
    pub version: Option<String>,
    /// The version served before, if any.
    pub previous: Option<String>,
    /// One line for a toast or a log.
    pub message: String,
    /// Every problem, for a rejected reload.
    pub errors: Vec<String>,
    /// How long the reload took, from the change settling to the swap.
    pub duration_ms: f64,
    /// When (ms since the Unix epoch).
    pub ts: u64,
}

impl ReloadEvent {
    /// A new event, stamped now.
    pub(crate) fn new(kind: ReloadKind, name: impl Into<String>, outcome: ReloadOutcome) -> Self {
        Self {
            kind_tag: "reload",
            kind,
            name: name.into(),
            outcome,
            version: None,
            previous: None,
            message: String::new(),
            errors: Vec::new(),
            duration_ms: 0.0,
            ts: ms(SystemTime::now()),
        }
    }

    /// With the versions before and after.
    #[must_use]
    pub(crate) fn versions(mut self, previous: Option<String>, version: Option<String>) -> Self {
        self.previous = previous;
        self.version = version;
        self
    }

    /// With a message and the problems.
    #[must_use]
    pub(crate) fn message(mut self, message: impl Into<String>, errors: Vec<String>) -> Self {
        self.message = message.into();
        self.errors = errors;
        self
    }

    /// With the time it took.
    #[must_use]
    pub(crate) fn took(mut self, duration: Duration) -> Self {
        self.duration_ms = duration.as_secs_f64() * 1000.0;
        self
    }
}

/// Where reload events go: the log, the history and the subscribers.
#[derive(Debug)]
pub(crate) struct ReloadHub {
    sender: broadcast::Sender<ReloadEvent>,
    history: Mutex<VecDeque<ReloadEvent>>,
}

impl Default for ReloadHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(256).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }
}

impl ReloadHub {
    /// A hub with no history and no subscribers.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Logs and counts `event`, keeps it and sends it to every subscriber.
    pub(crate) fn publish(&self, event: ReloadEvent) {
        let kind = serde_json::to_value(event.kind).unwrap_or_default();
        let kind = kind.as_str().unwrap_or_default();
        let outcome = serde_json::to_value(event.outcome).unwrap_or_default();
        crate::telemetry::metrics().reloads(kind, outcome.as_str().unwrap_or_default());
        match event.outcome {
            ReloadOutcome::Loaded => tracing::info!(
                kind,
                name = %event.name,
                version = event.version.as_deref().unwrap_or("-"),
                duration_ms = event.duration_ms,
                "reloaded: {}",
                event.message
            ),
            ReloadOutcome::Removed => {
                tracing::warn!(kind, name = %event.name, "removed: {}", event.message)
            }
            ReloadOutcome::Rejected => {
                tracing::error!(kind, name = %event.name, "reload refused, the last good version stays: {}", event.message);
                for error in &event.errors {
                    tracing::error!(kind, name = %event.name, "  {error}");
                }
            }
        }
        {
            let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(event.clone());
        }
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    /// Events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.sender.subscribe()
    }

    /// The last events, oldest first.
    pub(crate) fn recent(&self) -> Vec<ReloadEvent> {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}
