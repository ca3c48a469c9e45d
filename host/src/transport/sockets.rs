//! The sockets open on one server, counted the way runs are (the
//! orchestrator's `RunSlot`): each socket holds a [`SocketSlot`] from its
//! upgrade to its end, and a stopping server waits for the count to reach
//! zero ([`OpenSockets::all_closed`]) instead of polling a process-wide
//! gauge. Two servers in one process (the tests start many) count apart.

use std::sync::Arc;

use tokio::sync::watch;

use crate::telemetry::metrics;

/// The chat sockets open on one server. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct OpenSockets {
    count: Arc<watch::Sender<usize>>,
}

impl Default for OpenSockets {
    fn default() -> Self {
        Self {
            count: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl OpenSockets {
    /// Counts one socket until the slot is dropped (also the process-wide
    /// `mozaiks_websocket_connections` gauge).
    pub(crate) fn open(&self) -> SocketSlot {
        self.count.send_modify(|n| *n += 1);
        metrics().websockets(1);
        SocketSlot {
            count: Arc::clone(&self.count),
        }
    }

    /// Sockets open now.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// Resolves when no socket is open (at once if none is).
    pub(crate) async fn all_closed(&self) {
        let mut count = self.count.subscribe();
        let _ = count.wait_for(|n| *n == 0).await;
    }
}

/// One open socket; dropping it (however the socket's task ends) counts
/// it closed.
#[derive(Debug)]
pub(crate) struct SocketSlot {
    count: Arc<watch::Sender<usize>>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n = n.saturating_sub(1));
        metrics().websockets(-1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn each_server_counts_its_own_sockets_and_wakes_when_the_last_closes() {
        let ours = OpenSockets::default();
        let other = OpenSockets::default();
        let first = ours.open();
        let second = ours.open();
        let _elsewhere = other.open();
        assert_eq!((ours.count(), other.count()), (2, 1));
        let waiting = tokio::spawn({
            let ours = ours.clone();
            async move { ours.all_closed().await }
        });
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one socket is still open");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken when the last socket closed")
            .unwrap();
        assert_eq!(other.count(), 1, "another server's socket is not ours");
    }
}
