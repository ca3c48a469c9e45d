//! Stopping without losing anything: the orchestrator's side of a
//! graceful shutdown.
//!
//! 1. [`Orchestrator::drain`] turns the lifecycle to
//!    [`Lifecycle::Draining`]: no run starts any more (new chats and inputs
//!    get `SHUTTING_DOWN`, 503). Every run stops at its next stored point:
//!    the step in flight (an LLM answer, a tool result) is completed and
//!    stored, then the run returns instead of taking the next step. A run
//!    waiting for the user stops at once, and so does one whose tool waits
//!    for a UI answer (the request is stored; on the next start the tool
//!    asks again). Drain returns when no run is left, or at the bound.
//! 2. [`Orchestrator::close_clients`] turns it to [`Lifecycle::Closed`]:
//!    every chat socket, having sent every event up to that point, sends a
//!    `server_shutdown` message and closes with code 1012 (service restart),
//!    so clients reconnect to the next process with the last `seq` they saw.
//!
//! A run still busy at the bound is abandoned with the process; as after a
//! crash, the step it was taking is redone on the next start. The bound
//! [`Orchestrator::drain`] gets is the shutdown bound less a reserve kept
//! for step 2 (`app::serve`), so the sockets are told whatever the runs do.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::live::LiveChat;
use super::{Orchestrator, Shared};
use crate::telemetry::metrics;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Serving chats.
    Serving,
    /// Letting runs reach a stored point; no run starts.
    Draining,
    /// Runs stopped; clients are told to reconnect elsewhere.
    Closed,
}

/// How a drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Runs that were still busy at the bound (their step is redone on the
    /// next start).
    pub abandoned: Vec<String>,
}

/// Counts a run task from its start to its end (even if it panics).
#[derive(Debug)]
pub(crate) struct RunSlot {
    runs: watch::Sender<usize>,
}

impl RunSlot {
    pub(crate) fn take(shared: &Shared) -> Self {
        shared.runs.send_modify(|n| *n += 1);
        metrics().active_runs(1);
        Self {
            runs: shared.runs.clone(),
        }
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        self.runs.send_modify(|n| *n = n.saturating_sub(1));
        metrics().active_runs(-1);
    }
}

/// Resolves when the server starts draining (at once if it has).
pub(crate) async fn draining(lifecycle: &mut watch::Receiver<Lifecycle>) {
    let _ = lifecycle.wait_for(|l| *l != Lifecycle::Serving).await;
}

/// Resolves, once the server drains, as soon as the chat's run waits for a
/// UI answer; parks the chat first so that nothing more is stored for it
/// by this process (the request stays open in the log and is asked again
/// after the restart).
pub(crate) async fn parked_in_ui(live: &Arc<LiveChat>, mut lifecycle: watch::Receiver<Lifecycle>) {
    draining(&mut lifecycle).await;
    live.waiting_for_ui().await;
    live.park().await;
}

/// Resolves when the server closes its sockets (shutdown).
pub(crate) async fn closed(lifecycle: &mut watch::Receiver<Lifecycle>) {
    // The guard `wait_for` returns is dropped here, not held across the
    // caller's awaits (it is not `Send`).
    let _ = lifecycle.wait_for(|l| *l == Lifecycle::Closed).await;
}

impl Orchestrator {
    /// The server's lifecycle, to watch.
    pub(crate) fn lifecycle(&self) -> watch::Receiver<Lifecycle> {
        self.shared.lifecycle.subscribe()
    }

    /// Whether runs may start.
    pub(crate) fn serving(&self) -> bool {
        *self.shared.lifecycle.borrow() == Lifecycle::Serving
    }

    /// Stops every run at its next stored point, waiting at most `bound`.
    pub(crate) async fn drain(&self, bound: Duration) -> Drained {
        self.shared.lifecycle.send_if_modified(|l| {
            let changed = *l == Lifecycle::Serving;
            if changed {
                *l = Lifecycle::Draining;
            }
            changed
        });
        let mut runs = self.shared.runs.subscribe();
        let stopped = tokio::time::timeout(bound, runs.wait_for(|n| *n == 0)).await;
        let abandoned = if stopped.is_ok() {
            Vec::new()
        } else {
            self.active_runs().into_iter().map(|r| r.chat_id).collect()
        };
        Drained { abandoned }
    }

    /// Tells every chat socket that the server is going away.
    pub(crate) fn close_clients(&self) {
        self.shared.lifecycle.send_replace(Lifecycle::Closed);
    }
}
