//! Background jobs of a running server: the store monitor (readiness, kept
//! in [`StoreHealth`] for `/health/ready`; resuming chats once the store
//! answers) and the retention job (deleting chats that ended long ago).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::event::now_ms;
use crate::orchestrator::Orchestrator;
use crate::plugin_set::PluginSet;
use crate::store::ChatStore;

/// How often a healthy store is checked. Often enough that `/health/ready`
/// turns false within seconds of an outage, rare enough to cost nothing.
const HEALTHY_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// First retry delay after a failed check; doubles up to
/// [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);

/// Longest wait between checks of a failing store: an operator who fixes
/// the database sees the server recover within this time.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;

/// What the background jobs do.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// Delete chats that ended more than this many days ago; `None` keeps
    /// them forever.
    pub retention_days: Option<u64>,
    /// How often the retention job runs.
    pub retention_interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            retention_days: None,
            retention_interval: Duration::from_secs(60 * 60),
        }
    }
}

/// Whether the server can serve chats, and why not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Readiness {
    /// The store answered the last check.
    pub(crate) ready: bool,
    /// Why not, when not ready (the store's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// When the state last changed (ms since the Unix epoch).
    pub(crate) since: u64,
}

/// What the store monitor last found, for `/health/ready`. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct StoreHealth(Arc<Mutex<Readiness>>);

impl Default for StoreHealth {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Readiness {
            ready: false,
            reason: Some("the store has not been checked yet".to_owned()),
            since: now_ms(),
        })))
    }
}

impl StoreHealth {
    /// Whether the store answers now.
    pub(crate) fn readiness(&self) -> Readiness {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the outcome of a store check. Returns true when the server
    /// just became ready.
    fn record(&self, outcome: Result<(), String>) -> bool {
        let mut readiness = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let ready = outcome.is_ok();
        let reason = outcome.err();
        let became_ready = ready && !readiness.ready;
        if readiness.ready != ready || readiness.reason != reason {
            *readiness = Readiness {
                ready,
                reason,
                since: now_ms(),
            };
        }
        became_ready
    }
}

/// Starts the jobs over the server's `store` and `plugins` (which
/// `orchestrator` uses too); they run until the returned handles are aborted. The monitor keeps
/// `health` current.
pub(crate) fn spawn(
    orchestrator: &Orchestrator,
    store: &Arc<dyn ChatStore>,
    plugins: &Arc<PluginSet>,
    health: &StoreHealth,
    config: &MaintenanceConfig,
) -> Vec<JoinHandle<()>> {
    let mut jobs = vec![tokio::spawn(monitor_store(
        orchestrator.clone(),
        Arc::clone(store),
        Arc::clone(plugins),
        health.clone(),
    ))];
    if let Some(days) = config.retention_days {
        jobs.push(tokio::spawn(retention(
            orchestrator.clone(),
            days,
            config.retention_interval,
        )));
    }
    jobs
}

/// Checks the store; on the first success prepares it (indexes) and
/// resumes the chats that were running when the server stopped; after an
/// outage resumes the chats whose runs the outage stopped.
async fn monitor_store(
    orchestrator: Orchestrator,
    store: Arc<dyn ChatStore>,
    plugins: Arc<PluginSet>,
    health: StoreHealth,
) {
    let mut prepared = false;
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        let mut outcome = store.ping().await;
        if outcome.is_ok() && !prepared {
            outcome = store.prepare().await;
        }
        let healthy = outcome.is_ok();
        if let Err(error) = &outcome {
            tracing::warn!(error = error as &dyn std::error::Error, retry_in = ?delay, "the store does not answer; not ready");
        }
        let became_ready = health.record(outcome.map_err(|e| e.to_string()));
        if became_ready {
            tracing::info!("the store answers; ready");
        }
        if healthy && !prepared {
            prepared = true;
            // Resumed chats need their workflows and plugins.
            while plugins
                .wait_first_load(Duration::from_secs(3600))
                .await
                .is_err()
            {}
            match orchestrator.resume_in_progress().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(
                    count,
                    "resumed chats that were running when the server stopped"
                ),
                Err(error) => tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "could not resume interrupted chats"
                ),
            }
        }
        if healthy {
            let resumed = orchestrator.resume_after_store_failure().await;
            if resumed > 0 {
                tracing::info!(resumed, "resumed chats stopped by a store outage");
            }
            delay = FIRST_RETRY_DELAY;
            tokio::time::sleep(HEALTHY_CHECK_INTERVAL).await;
        } else {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }
}

/// Deletes chats that ended more than `days` days ago, every `interval`.
async fn retention(orchestrator: Orchestrator, days: u64, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let before = now_ms().saturating_sub(days.saturating_mul(MS_PER_DAY));
        match orchestrator.delete_ended_before(before).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(count, days, "retention: deleted chats that ended long ago")
            }
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "retention: could not delete ended chats"
            ),
        }
    }
}
