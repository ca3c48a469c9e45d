//! The heartbeat: this server's entry in the registry every third of a
//! lease, and in cluster mode the renewal of its leases. A lease `renew`
//! reports taken parks its chat; when renewals fail for longer than a
//! lease, every chat of this server is parked (self-fencing: another
//! server may hold them by now).

use std::time::{Duration, Instant};

use super::{Membership, Orchestrator};
use crate::event::now_ms;
use crate::store::cluster::ServerInfo;

/// The heartbeat runs this many times per lease, so two beats may be lost
/// before a lease lapses.
const BEATS_PER_LEASE: u32 = 3;

impl Orchestrator {
    /// This server as the registry shows it: the plugins and workflows it
    /// serves now.
    pub(super) fn server_info(&self, membership: &Membership) -> ServerInfo {
        let (plugins, workflows) =
            crate::plugin_set::served_versions(&self.shared.plugins, &self.shared.workflows);
        ServerInfo {
            id: membership.id.clone(),
            incarnation: membership.incarnation.clone(),
            address: membership.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cluster: membership.clustered,
            started_at: membership.started_at,
            last_seen: now_ms(),
            plugins,
            workflows,
        }
    }

    /// One heartbeat and renewal.
    pub(super) async fn beat(&self, membership: &Membership) {
        let info = self.server_info(membership);
        if let Err(error) = membership.store.heartbeat(&info).await {
            tracing::warn!(%error, "heartbeat failed");
        }
        if !membership.clustered {
            return;
        }
        let held = membership.held();
        let renewed = membership
            .store
            .renew(&membership.id, &held, now_ms(), membership.ttl_ms())
            .await;
        match renewed {
            Ok(lost) => {
                *membership
                    .renewed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
                for chat_id in lost {
                    let owner = match membership.store.lease(&chat_id).await {
                        Ok(lease) => lease.and_then(|l| l.owner),
                        Err(_) => None,
                    };
                    self.lose(&chat_id, owner).await;
                }
            }
            Err(error) => {
                let since = membership
                    .renewed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .elapsed();
                if since > membership.ttl && !held.is_empty() {
                    tracing::warn!(
                        %error,
                        chats = held.len(),
                        "leases not renewed for longer than a lease; parking every chat of this server (others may run them now)"
                    );
                    for chat_id in held {
                        self.lose(&chat_id, None).await;
                    }
                } else {
                    tracing::warn!(%error, "renewing leases failed; retrying");
                }
            }
        }
    }
}

/// Beats until aborted.
pub(super) async fn run(orchestrator: Orchestrator) {
    let Some(membership) = orchestrator.shared.membership.get().cloned() else {
        return;
    };
    let period = (membership.ttl / BEATS_PER_LEASE).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        orchestrator.beat(&membership).await;
    }
}
