//! One client's feed of a chat, for a socket session: every persisted event
//! once and in sequence order, and the ephemeral ones (text deltas) as they
//! come.
//!
//! Events arrive through the chat's broadcast. A client that falls more
//! than the broadcast holds behind reads what it missed from the store
//! instead, so it loses no persisted event (it may miss text deltas, which
//! the final message repeats).

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::event::Envelope;
use crate::store::{ChatStore, StoreError};

/// A client's position in a chat's events; see the module docs.
#[derive(Debug)]
pub(crate) struct Follower {
    events: broadcast::Receiver<Arc<Envelope>>,
    store: Arc<dyn ChatStore>,
    chat_id: String,
    /// The highest sequence number handed out.
    last_sent: u64,
    /// The broadcast overflowed and the store has not been read since: the
    /// next [`next`](Self::next) reads it first. Kept across a cancelled
    /// `next`, so a session's `select!` cannot lose the catch-up.
    behind: bool,
}

impl Follower {
    pub(super) fn new(
        events: broadcast::Receiver<Arc<Envelope>>,
        store: Arc<dyn ChatStore>,
        chat_id: &str,
    ) -> Self {
        Self {
            events,
            store,
            chat_id: chat_id.to_owned(),
            last_sent: 0,
            behind: false,
        }
    }

    /// The highest sequence number handed out (or recorded with
    /// [`sent`](Self::sent)).
    pub(crate) fn last_sent(&self) -> u64 {
        self.last_sent
    }

    /// Records that the session sent the client everything up to `seq`
    /// itself (its backlog): the feed starts after it.
    pub(crate) fn sent(&mut self, seq: u64) {
        self.last_sent = self.last_sent.max(seq);
    }

    /// The next events to send, in order: one from the broadcast, or what
    /// the client missed, from the store. `None` once the chat's broadcast
    /// is gone. Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<Arc<Envelope>>>, StoreError> {
        loop {
            if self.behind {
                let missed = self
                    .store
                    .events(&self.chat_id, self.last_sent, None)
                    .await?;
                self.behind = false;
                if let Some(seq) = missed.last().and_then(|e| e.seq) {
                    self.last_sent = seq;
                }
                if !missed.is_empty() {
                    return Ok(Some(missed.into_iter().map(Arc::new).collect()));
                }
                continue;
            }
            match self.events.recv().await {
                Ok(envelope) => {
                    if let Some(envelope) = self.fresh(envelope) {
                        return Ok(Some(vec![envelope]));
                    }
                }
                Err(RecvError::Lagged(_)) => self.behind = true,
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// What the broadcast holds for this client now, without waiting (the
    /// last frames before a goodbye).
    pub(crate) fn queued(&mut self) -> Vec<Arc<Envelope>> {
        let mut queued = Vec::new();
        loop {
            match self.events.try_recv() {
                Ok(envelope) => {
                    queued.extend(self.fresh(envelope));
                    if self.behind {
                        // A gap: the rest comes from the store.
                        return queued;
                    }
                }
                // The rest is in the store; stop here so that the position
                // stays the end of what the client has without a gap.
                Err(TryRecvError::Lagged(_)) => {
                    self.behind = true;
                    return queued;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return queued,
            }
        }
    }

    /// `envelope` unless the client has it already; moves the position.
    /// An event past a gap (the broadcast of a chat run on another server
    /// starts where this server began to relay it) is not sent: the client
    /// catches up from the store first, so it never skips one.
    fn fresh(&mut self, envelope: Arc<Envelope>) -> Option<Arc<Envelope>> {
        match envelope.seq {
            Some(seq) if seq <= self.last_sent => None,
            Some(seq) if seq > self.last_sent + 1 => {
                self.behind = true;
                None
            }
            Some(seq) => {
                self.last_sent = seq;
                Some(envelope)
            }
            None => Some(envelope),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;
    use crate::event::Event;
    use crate::orchestrator::LiveChat;

    fn said(n: u64) -> Event {
        Event::UserMessage {
            text: format!("message {n}"),
        }
    }

    /// The sequence numbers `follower` hands out until it has `until`.
    async fn collect(follower: &mut Follower, until: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        // The first call polled once and dropped, as a session's `select!`
        // drops it when another branch wins: nothing may be lost.
        if let Some(first) = follower.next().now_or_never() {
            seqs.extend(first.unwrap().unwrap().iter().filter_map(|e| e.seq));
        }
        while seqs.last().copied().unwrap_or(0) < until {
            let events = follower.next().await.unwrap().unwrap();
            seqs.extend(events.iter().filter_map(|e| e.seq));
        }
        seqs
    }

    /// A client that falls further behind than the broadcast holds gets
    /// what it missed from the store: every event once, in order, then the
    /// live ones again; the goodbye's position never skips a gap.
    #[tokio::test]
    async fn a_client_far_behind_gets_every_event_once_in_order() {
        let (dir, store) = crate::orchestrator::live::tests::chat_c1("follower").await;
        let live = Arc::new(LiveChat::with_capacity("c1".into(), store.clone(), 4));
        let mut follower = live.follow();
        for n in 1..=10 {
            live.emit(said(n)).await.unwrap();
        }
        assert_eq!(
            collect(&mut follower, 10).await,
            (1..=10).collect::<Vec<_>>()
        );
        live.emit(said(11)).await.unwrap();
        assert_eq!(collect(&mut follower, 11).await, vec![11]);

        // Behind again when the server says goodbye: the queued events stop
        // before the gap, and the position is the end of what was handed out.
        for n in 12..=20 {
            live.emit(said(n)).await.unwrap();
        }
        let queued = follower.queued();
        assert!(queued.is_empty(), "the oldest were overwritten: {queued:?}");
        assert_eq!(follower.last_sent(), 11);
        assert_eq!(
            collect(&mut follower, 20).await,
            (12..=20).collect::<Vec<_>>()
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The events of a chat another server runs arrive through `relay`: a
    /// client that sees one past a gap (its backlog ends before it) reads
    /// the gap from the store first, and gets every event once, in order (a
    /// relayed event already broadcast is not sent twice).
    #[tokio::test]
    async fn relayed_events_past_a_gap_come_after_the_gap_from_the_store() {
        let (dir, store) = crate::orchestrator::live::tests::chat_c1("follower-relay").await;
        let owner = Arc::new(LiveChat::new("c1".into(), store.clone()));
        let watcher = Arc::new(LiveChat::new("c1".into(), store.clone()));
        let mut follower = watcher.follow();
        let mut written = Vec::new();
        for n in 1..=5 {
            written.push(owner.emit(said(n)).await.unwrap());
        }
        follower.sent(1);
        for envelope in &written[3..] {
            watcher.relay((**envelope).clone()).await;
        }
        watcher.relay((*written[4]).clone()).await;
        assert_eq!(watcher.last_seq(), 5);
        assert_eq!(collect(&mut follower, 5).await, vec![2, 3, 4, 5]);
        let late = owner.emit(said(6)).await.unwrap();
        watcher.relay((*late).clone()).await;
        assert_eq!(collect(&mut follower, 6).await, vec![6]);
        assert!(follower.queued().is_empty(), "nothing is sent twice");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The backlog a session sent itself is not handed out again.
    #[tokio::test]
    async fn what_the_session_sent_from_the_backlog_is_skipped() {
        let (dir, store) = crate::orchestrator::live::tests::chat_c1("follower-sent").await;
        let live = Arc::new(LiveChat::new("c1".into(), store.clone()));
        let mut follower = live.follow();
        live.emit(said(1)).await.unwrap();
        live.emit(said(2)).await.unwrap();
        follower.sent(2);
        live.emit(said(3)).await.unwrap();
        assert_eq!(collect(&mut follower, 3).await, vec![3]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
