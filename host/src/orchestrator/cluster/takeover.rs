//! Taking over the chats of a server that stopped: its leases lapse (or
//! it gave them up at a graceful stop with a run still active), and the
//! first server to acquire one runs the chat on from its last event.

use std::time::Duration;

use super::{Membership, Orchestrator};
use crate::event::now_ms;
use crate::store::ChatStatus;
use crate::store::cluster::Acquired;

/// Leases looked at per scan: a dead server's chats are shared out among
/// the servers scanning, a batch each.
const ORPHANS_PER_SCAN: usize = 32;

/// The shortest pause between scans.
const MIN_SCAN_PERIOD: Duration = Duration::from_millis(200);

/// The longest pause between scans, whatever the lease: a chat given up at
/// a graceful stop is taken over within it.
const MAX_SCAN_PERIOD: Duration = Duration::from_secs(2);

/// Scans five times per lease.
const SCANS_PER_LEASE: u32 = 5;

impl Orchestrator {
    /// One scan: every orphaned lease this server can take.
    pub(super) async fn take_over_orphans(&self, membership: &Membership) {
        if !self.serving() {
            return;
        }
        let orphans = match membership.store.orphaned(now_ms(), ORPHANS_PER_SCAN).await {
            Ok(orphans) => orphans,
            Err(error) => {
                tracing::warn!(%error, "looking for chats to take over failed");
                return;
            }
        };
        for lease in orphans {
            if let Err(error) = self.take_over(membership, &lease.chat_id).await {
                tracing::warn!(chat_id = lease.chat_id, %error, "taking the chat over failed; leaving it to the others");
                let _leases = membership.leases.lock().await;
                if membership.holds(&lease.chat_id) && !self.live(&lease.chat_id).has_run() {
                    let _ = membership.release(&lease.chat_id, true).await;
                }
            }
        }
    }

    /// Acquires the chat and, if its run was active or inputs wait for it,
    /// runs it on here (after `run_moved`); otherwise gives the lease up
    /// again, so that it is not listed again.
    async fn take_over(
        &self,
        membership: &Membership,
        chat_id: &str,
    ) -> Result<(), super::ChatError> {
        let previous = {
            let _leases = membership.leases.lock().await;
            match membership.acquire(chat_id).await? {
                Acquired::Held { previous, .. } => previous,
                // Someone was faster.
                Acquired::Elsewhere { .. } => return Ok(()),
            }
        };
        let chat = self.shared.store.chat(chat_id).await?;
        let events = self.shared.store.events(chat_id, 0, None).await?;
        let inputs = membership.store.take_inputs(&[chat_id.to_owned()]).await?;
        let active = chat
            .as_ref()
            .is_some_and(|c| c.status == ChatStatus::InProgress)
            && super::super::resume::needs_run(&events);
        if !active && inputs.is_empty() {
            let _leases = membership.leases.lock().await;
            if !self.live(chat_id).has_run() {
                membership.release(chat_id, false).await?;
            }
            return Ok(());
        }
        self.fence(membership, chat_id, previous).await?;
        if active && let Some(chat) = chat {
            let workflow = self.workflow(&chat.workflow)?;
            let live = self.live(chat_id);
            self.start_run(&chat, workflow, &live).await?;
        }
        for item in inputs {
            self.apply_input(item).await;
        }
        Ok(())
    }
}

/// Scans until aborted.
pub(super) async fn run(orchestrator: Orchestrator) {
    let Some(membership) = orchestrator.shared.membership.get().cloned() else {
        return;
    };
    let period = (membership.ttl / SCANS_PER_LEASE).clamp(MIN_SCAN_PERIOD, MAX_SCAN_PERIOD);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        orchestrator.take_over_orphans(&membership).await;
    }
}
