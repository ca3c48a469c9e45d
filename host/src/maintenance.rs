//! Background jobs of a running server: the store monitor (readiness,
//! resuming chats once the store answers) and the retention job (deleting
//! chats that ended long ago).

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::event::now_ms;
use crate::orchestrator::Orchestrator;

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

/// Starts the jobs; they run until the returned handles are aborted.
pub fn spawn(orchestrator: &Orchestrator, config: &MaintenanceConfig) -> Vec<JoinHandle<()>> {
    let mut jobs = vec![tokio::spawn(monitor_store(orchestrator.clone()))];
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
async fn monitor_store(orchestrator: Orchestrator) {
    let mut prepared = false;
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        let mut outcome = orchestrator.store().ping().await;
        if outcome.is_ok() && !prepared {
            outcome = orchestrator.store().prepare().await;
        }
        let healthy = outcome.is_ok();
        if let Err(error) = &outcome {
            tracing::warn!(error = error as &dyn std::error::Error, retry_in = ?delay, "the store does not answer; not ready");
        }
        let became_ready = orchestrator.set_readiness(outcome.map_err(|e| e.to_string()));
        if became_ready {
            tracing::info!("the store answers; ready");
        }
        if healthy && !prepared {
            prepared = true;
            // Resumed chats need their workflows and plugins.
            while orchestrator
                .plugins()
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
