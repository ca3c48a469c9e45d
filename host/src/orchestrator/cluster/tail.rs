//! Live events across servers: every 25 ms, one read of the new events of
//! every chat that has clients on this server but runs elsewhere, relayed
//! to those clients through the chat's broadcast ([`LiveChat::relay`]).
//! Text deltas are never stored, so these clients see a remote run's text
//! when its `agent_message` lands.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Membership, Orchestrator};
use crate::orchestrator::LiveChat;
use crate::store::StoreError;

/// How often the tail reads: the delay, at most, before a client on this
/// server sees an event another server stored.
const TAIL_PERIOD: Duration = Duration::from_millis(25);

/// Most events one read returns; the rest come with the next read.
const EVENTS_PER_READ: usize = 1000;

impl Orchestrator {
    /// One read of the tail, relayed.
    pub(super) async fn tail_once(&self, membership: &Membership) -> Result<usize, StoreError> {
        let watched: HashMap<String, Arc<LiveChat>> = self
            .watched_chats()
            .into_iter()
            .filter(|live| !membership.holds(live.chat_id()))
            .map(|live| (live.chat_id().to_owned(), live))
            .collect();
        if watched.is_empty() {
            return Ok(0);
        }
        let mut positions = Vec::with_capacity(watched.len());
        for (chat_id, live) in &watched {
            if live.last_seq() == 0 {
                // First time watched here: from the chat's first event
                // (`LiveChat::start_relay` says why).
                live.start_relay().await;
            }
            positions.push((chat_id.clone(), live.last_seq()));
        }
        let events = membership
            .store
            .events_after(&positions, EVENTS_PER_READ)
            .await?;
        let relayed = events.len();
        for envelope in events {
            if let Some(live) = watched.get(&envelope.chat_id) {
                live.relay(envelope).await;
            }
        }
        Ok(relayed)
    }
}

/// Tails until aborted.
pub(super) async fn run(orchestrator: Orchestrator) {
    let Some(membership) = orchestrator.shared.membership.get().cloned() else {
        return;
    };
    let mut ticks = tokio::time::interval(TAIL_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = orchestrator.tail_once(&membership).await {
            tracing::warn!(%error, "reading the events of chats run elsewhere failed");
        }
    }
}
