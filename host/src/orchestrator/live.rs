//! The live side of one chat: the broadcast of its events to every
//! attached client, the UI requests waiting for an answer, and the inbox of
//! its run.
//!
//! Every event leaves the orchestrator through the chat's write queue
//! ([`writer`]): it is appended to the store first and broadcast after, in
//! the order it was emitted, so clients see events in sequence order and
//! never see one the store does not have. [`LiveChat::emit`] waits until
//! its event is durable; a run's [`LiveChat::emit_queued`] goes on while it
//! is written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::event::{Envelope, Event, RunStatus, UiOutcome, now_ms};
use crate::store::{ChatStore, StoreError};

mod context_copy;
mod follower;
mod writer;
use context_copy::ContextCopy;
pub(crate) use follower::Follower;
pub(crate) use writer::WriteBarrier;
use writer::WriteQueue;

/// Why an event was not stored and sent.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The chat was parked for a shutdown (`orchestrator/drain.rs`): this process
    /// stores nothing more for it, and the chat continues on the next
    /// start. Not a store failure: nothing is logged as one, and clients get
    /// `SHUTTING_DOWN`.
    #[error("the server is shutting down; this chat continues on the next start")]
    ShuttingDown,
    /// Another server runs the chat now (cluster mode: its lease was taken
    /// over, `orchestrator/cluster.rs`): this process stores nothing more
    /// for it and leaves the chat to its new owner. Not a failure: nothing
    /// is marked failed, and clients get `CHAT_MOVED`.
    #[error("chat moved to another server{}; this server stores nothing more for it", .owner.as_deref().map(|o| format!(" (`{o}`)")).unwrap_or_default())]
    Moved {
        /// The server that runs it now, when known.
        owner: Option<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EmitError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::LeaseLost { owner, .. } => Self::Moved { owner },
            other => Self::Store(other),
        }
    }
}

/// Events a slow client may fall behind by before its session catches up
/// from the store instead of the broadcast (it loses nothing either way).
/// The buffer (about 40 KiB) exists only while a client watches the chat:
/// see [`LiveChat::subscribe`].
const BROADCAST_CAPACITY: usize = 1024;

/// What a client can tell a chat's run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunInput {
    /// The user said something.
    UserMessage(String),
    /// ManualPattern: the user picked the next speaker.
    SelectSpeaker(String),
    /// Continue a run stopped by a recoverable error.
    Continue,
}

/// One chat's live state, shared by its run task and its clients.
#[derive(Debug)]
pub struct LiveChat {
    chat_id: String,
    store: Arc<dyn ChatStore>,
    /// The broadcast to the chat's clients, made by the first
    /// [`subscribe`](Self::subscribe) and dropped when no client is left,
    /// so a chat nobody watches (most chats waiting for their user) holds
    /// no buffer.
    events: Mutex<Option<broadcast::Sender<Arc<Envelope>>>>,
    /// Held while a batch of events is written (and while a relayed event
    /// is sent): parking and taking over wait for a write in progress.
    append: tokio::sync::Mutex<()>,
    /// The events on their way to the store and the clients ([`writer`]).
    writes: WriteQueue,
    pending_ui: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    inbox: Mutex<Option<mpsc::UnboundedSender<RunInput>>>,
    cancel: tokio::sync::watch::Sender<bool>,
    status: Mutex<Option<RunStatus>>,
    /// An accepted input the run has not taken yet: a second one is refused
    /// instead of waiting in the inbox for a turn that may never come.
    input_claimed: std::sync::atomic::AtomicBool,
    /// Stopped for a shutdown: nothing more is stored for this chat by this
    /// process ([`super::drain`]).
    parked: std::sync::atomic::AtomicBool,
    /// Taken over by another server (cluster mode): `Some(owner)` until
    /// this server holds the chat's lease again
    /// ([`park_moved`](Self::park_moved), [`take_back`](Self::take_back)).
    moved: tokio::sync::watch::Sender<Option<Option<String>>>,
    /// The highest `seq` this process broadcast (emitted or relayed from
    /// another server's run), 0 before any.
    last_seq: std::sync::atomic::AtomicU64,
    /// How many events the broadcast holds for a client that falls behind
    /// ([`BROADCAST_CAPACITY`]; smaller in tests).
    capacity: usize,
    /// Woken whenever a UI request opens.
    ui_opened: tokio::sync::Notify,
    /// The context variables as stored, kept by `emit` ([`context_copy`]).
    context: ContextCopy,
}

impl LiveChat {
    /// A chat with no clients and no run.
    pub fn new(chat_id: String, store: Arc<dyn ChatStore>) -> Self {
        let (cancel, _) = tokio::sync::watch::channel(false);
        Self {
            chat_id,
            store,
            events: Mutex::new(None),
            append: tokio::sync::Mutex::new(()),
            writes: WriteQueue::default(),
            pending_ui: Mutex::new(HashMap::new()),
            inbox: Mutex::new(None),
            cancel,
            status: Mutex::new(None),
            input_claimed: std::sync::atomic::AtomicBool::new(false),
            parked: std::sync::atomic::AtomicBool::new(false),
            moved: tokio::sync::watch::Sender::new(None),
            last_seq: std::sync::atomic::AtomicU64::new(0),
            ui_opened: tokio::sync::Notify::new(),
            context: ContextCopy::default(),
            capacity: BROADCAST_CAPACITY,
        }
    }

    /// A chat whose broadcast holds only `capacity` events, so that tests
    /// can make a client fall behind.
    #[cfg(test)]
    pub(crate) fn with_capacity(
        chat_id: String,
        store: Arc<dyn ChatStore>,
        capacity: usize,
    ) -> Self {
        Self {
            capacity,
            ..Self::new(chat_id, store)
        }
    }

    /// The chat's id.
    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }

    /// Persists `event`, then sends it to every client, and returns once it
    /// is durable. Ephemeral events are only sent.
    ///
    /// The write and the broadcast are the chat's writer task's
    /// (`live/writer.rs`): a caller that is dropped half-way (a tool call
    /// cancelled by the end of the chat) cannot leave an event that is
    /// stored but never sent.
    pub async fn emit(self: &Arc<Self>, event: Event) -> Result<Arc<Envelope>, EmitError> {
        if !event.is_persisted() {
            return Ok(self.send_ephemeral(event));
        }
        self.enqueue(event, None, writer::Wait::Durable).await
    }

    /// Sends an event another server stored (cluster mode: this server's
    /// clients watch a chat run elsewhere) to this chat's clients, keeping
    /// the context copy and the run status as `emit` would. Only an event
    /// above the last `seq` this process broadcast is sent, so each goes
    /// out once and in order; a client that finds a gap reads it from the
    /// store ([`Follower`]).
    pub(crate) async fn relay(&self, envelope: Envelope) {
        let _order = self.append.lock().await;
        let Some(seq) = envelope.seq else {
            return;
        };
        if seq <= self.last_seq() {
            return;
        }
        if let Event::RunStatus { status, .. } = &envelope.event {
            *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Some(*status);
        }
        let envelope = Arc::new(envelope);
        self.context.fold(&envelope.event);
        self.note_seq(&envelope);
        self.broadcast(&envelope);
    }

    /// The highest `seq` this process broadcast (0: none yet).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Starts relaying a chat run elsewhere that this server's clients
    /// began to watch: from its first event on (the tail reads from
    /// [`last_seq`](Self::last_seq), 0). Each client's feed skips what its
    /// own backlog read sent ([`Follower`]); starting at the chat's end
    /// instead would skip the events stored between a client's backlog read
    /// and the tail's first read, which that client would then not see
    /// before the chat's next event. The copies of context and status may
    /// be stale: they are read again.
    pub(crate) async fn start_relay(&self) {
        let _order = self.append.lock().await;
        if self.last_seq() == 0 {
            self.forget_copies();
        }
    }

    fn note_seq(&self, envelope: &Envelope) {
        if let Some(seq) = envelope.seq {
            self.last_seq
                .fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// Forgets the copies of the chat's context and run status (another
    /// server wrote to the chat): they are read from the store again.
    fn forget_copies(&self) {
        self.context.forget();
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Another server runs the chat now (cluster mode): nothing more is
    /// stored for it by this process, and its run stops (see
    /// [`moved`](Self::moved)). `owner`: the new owner, when known.
    pub(crate) async fn park_moved(&self, owner: Option<String>) {
        // Taken so that an append in progress finishes first.
        let _order = self.append.lock().await;
        self.moved.send_replace(Some(owner));
        self.forget_copies();
        self.forget_next_seq();
    }

    /// This server holds the chat's lease again (cluster mode): it may
    /// store for it, and what it knew of it is read again.
    pub(crate) async fn take_back(&self) {
        let _order = self.append.lock().await;
        if self.moved.borrow().is_some() {
            self.moved.send_replace(None);
        }
        self.forget_copies();
        self.forget_next_seq();
    }

    /// Whether another server took the chat over from this one.
    pub(crate) fn is_moved(&self) -> bool {
        self.moved.borrow().is_some()
    }

    /// Resolves when another server takes the chat over (at once if it
    /// has), with the new owner when known.
    pub(crate) async fn moved(&self) -> Option<String> {
        let mut moved = self.moved.subscribe();
        let owner = moved
            .wait_for(Option::is_some)
            .await
            .ok()
            .map(|owner| owner.clone().flatten());
        match owner {
            Some(owner) => owner,
            // The sender lives as long as `self`.
            None => std::future::pending().await,
        }
    }

    /// Sends an ephemeral event (a text delta) without persisting it,
    /// after the events emitted before it.
    pub fn send_ephemeral(&self, event: Event) -> Arc<Envelope> {
        let envelope = Arc::new(Envelope {
            seq: None,
            chat_id: self.chat_id.clone(),
            ts: now_ms(),
            event,
        });
        self.send_in_order(Arc::clone(&envelope));
        envelope
    }

    /// Sends `envelope` to the chat's clients. With none left, the
    /// broadcast's buffer is dropped instead: nobody is watching.
    fn broadcast(&self, envelope: &Arc<Envelope>) {
        let mut events = self.lock_events();
        if let Some(sender) = events.as_ref() {
            if sender.receiver_count() == 0 {
                *events = None;
            } else {
                let _ = sender.send(Arc::clone(envelope));
            }
        }
    }

    /// Drops the broadcast's buffer if no client holds a receiver (called
    /// when a client's socket closes).
    pub(crate) fn release_if_unwatched(&self) {
        let mut events = self.lock_events();
        if events.as_ref().is_some_and(|s| s.receiver_count() == 0) {
            *events = None;
        }
    }

    fn lock_events(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Arc<Envelope>>>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The chat's context variables as stored now.
    ///
    /// Read from the store once; after that from this chat's own copy,
    /// which every emitted event updates as it is queued (so a run sees
    /// its own writes before they are durable).
    pub async fn context(&self) -> Result<serde_json::Map<String, Value>, StoreError> {
        loop {
            if let Some(context) = self.context.get() {
                return Ok(context);
            }
            // The store has what was queued once it is written; the copy
            // is kept only if nothing was queued during the read.
            self.settled().await;
            let _order = self.append.lock().await;
            let before = self.enqueued();
            let context = self.store.context(&self.chat_id).await?;
            if self.fill_context_if_quiet(before, &context) {
                return Ok(context);
            }
        }
    }

    /// A receiver of every event emitted from now on. Subscribe *before*
    /// reading the store's backlog so nothing falls in between.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.lock_events()
            .get_or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// A client's feed of this chat from now on ([`Follower`]): subscribe
    /// *before* reading the store's backlog, then record the backlog sent
    /// with [`Follower::sent`].
    pub(crate) fn follow(&self) -> Follower {
        Follower::new(self.subscribe(), Arc::clone(&self.store), &self.chat_id)
    }

    /// The last run status emitted by this process, if any.
    pub(crate) fn status(&self) -> Option<RunStatus> {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the status read from the store when this process has not
    /// emitted one yet.
    pub(crate) fn init_status(&self, status: Option<RunStatus>) {
        let mut slot = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = status;
        }
    }

    /// Claims the right to deliver one input; false if another accepted
    /// input is still on its way to the run.
    pub(crate) fn claim_input(&self) -> bool {
        !self
            .input_claimed
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// The run took its input: the next one may be claimed.
    pub(crate) fn release_input(&self) {
        self.input_claimed
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// How many clients are attached.
    pub(crate) fn client_count(&self) -> usize {
        self.lock_events()
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Registers a UI request; the returned receiver gets the answer.
    pub(crate) fn open_ui_request(&self, request_id: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(request_id.to_owned(), tx);
        self.ui_opened.notify_waiters();
        rx
    }

    /// Resolves as soon as a UI request of this chat is open.
    pub(crate) async fn waiting_for_ui(&self) {
        loop {
            let opened = self.ui_opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if !self.lock_pending().is_empty() {
                return;
            }
            opened.await;
        }
    }

    /// Stops storing anything for this chat in this process (shutdown).
    /// Once parked, [`emit`](Self::emit) fails and the log stays as it is.
    pub(crate) async fn park(&self) {
        // Taken so that an append in progress finishes before parking.
        let _order = self.append.lock().await;
        self.parked
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Forgets a UI request (it timed out or was cancelled). True if it was
    /// still open.
    pub(crate) fn close_ui_request(&self, request_id: &str) -> bool {
        self.lock_pending().remove(request_id).is_some()
    }

    /// Whether a UI request is waiting for an answer.
    pub(crate) fn is_ui_request_open(&self, request_id: &str) -> bool {
        self.lock_pending().contains_key(request_id)
    }

    /// Answers an open UI request: persists and emits the answer, then
    /// wakes the tool. Returns false when no such request is open.
    ///
    /// Taking the request out of the open set decides between this answer
    /// and the tool's timeout, so only one of them is recorded; if the tool
    /// still stops waiting while the answer is stored, a `cancelled`
    /// response follows the answer.
    pub(crate) async fn answer_ui_request(
        self: &Arc<Self>,
        request_id: &str,
        answer: Value,
    ) -> Result<bool, EmitError> {
        let waiter = {
            let mut pending = self.lock_pending();
            match pending.get(request_id) {
                Some(waiter) if !waiter.is_closed() => pending.remove(request_id),
                _ => None,
            }
        };
        let Some(waiter) = waiter else {
            return Ok(false);
        };
        self.emit(Event::UiResponse {
            request_id: request_id.to_owned(),
            outcome: UiOutcome::Answered {
                answer: answer.clone(),
            },
        })
        .await?;
        if waiter.send(answer).is_err() {
            // The tool stopped waiting while the answer was being stored.
            self.emit(Event::UiResponse {
                request_id: request_id.to_owned(),
                outcome: UiOutcome::Cancelled {
                    reason: "the tool stopped waiting before the answer arrived".to_owned(),
                },
            })
            .await?;
        }
        Ok(true)
    }

    /// Takes every open UI request out of the open set (the run ends).
    pub(crate) fn take_open_ui_requests(&self) -> Vec<String> {
        let mut open: Vec<String> = self.lock_pending().drain().map(|(id, _)| id).collect();
        open.sort();
        open
    }

    /// Installs the inbox of a newly started run. Returns false if a run is
    /// already attached.
    pub(crate) fn attach_run(&self, inbox: mpsc::UnboundedSender<RunInput>) -> bool {
        let mut slot = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return false;
        }
        *slot = Some(inbox);
        let _ = self.cancel.send(false);
        true
    }

    /// Removes the run's inbox (the run ended).
    pub(crate) fn detach_run(&self) {
        *self.inbox.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Detaches the run whose inbox is `inbox` if no input is waiting in it
    /// and none has been accepted on its way to it; otherwise leaves it
    /// attached and returns false. Under the inbox lock, so an input is
    /// either delivered before (and this refuses) or finds no run after
    /// (and starts a new one from the log).
    pub(crate) fn detach_if_idle(&self, inbox: &mpsc::UnboundedReceiver<RunInput>) -> bool {
        let mut slot = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if !inbox.is_empty()
            || self
                .input_claimed
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return false;
        }
        *slot = None;
        true
    }

    /// Whether a run task is attached.
    pub(crate) fn has_run(&self) -> bool {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Delivers `input` to the running run. Gives it back when no run is
    /// attached.
    pub(crate) fn deliver(&self, input: RunInput) -> Result<(), RunInput> {
        let slot = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(tx) => tx.send(input).map_err(|e| e.0),
            None => Err(input),
        }
    }

    /// Asks the run to stop at its next step; it records the cancellation
    /// of its open UI requests as it ends.
    pub(crate) fn cancel_run(&self) {
        let _ = self.cancel.send(true);
    }

    /// Whether the run was asked to stop.
    pub(crate) fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// A receiver that turns true when the run is asked to stop.
    pub(crate) fn cancelled(&self) -> tokio::sync::watch::Receiver<bool> {
        self.cancel.subscribe()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.pending_ui
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::ErrorCode;
    use crate::orchestrator::ChatError;
    use crate::store::{ChatRecord, EmbeddedStore};

    /// An embedded store in a fresh scratch directory named after `name`,
    /// holding one chat, `c1`. The caller removes the directory.
    pub(crate) async fn chat_c1(name: &str) -> (std::path::PathBuf, Arc<EmbeddedStore>) {
        let dir = std::env::temp_dir().join(format!("mozaiks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(EmbeddedStore::open(&dir).unwrap());
        let chat = ChatRecord::new(
            "c1".into(),
            "app".into(),
            "u".into(),
            "W".into(),
            "v1".into(),
            0,
            1,
        );
        store.create_chat(&chat).await.unwrap();
        (dir, store)
    }

    /// A chat parked for a shutdown refuses to store, as a shutdown (not as
    /// a store failure): clients get `SHUTTING_DOWN`, not
    /// `STORE_UNAVAILABLE`.
    #[tokio::test]
    async fn a_parked_chat_refuses_events_as_a_shutdown_not_a_store_failure() {
        let (dir, store) = chat_c1("parked").await;
        let live = Arc::new(LiveChat::new("c1".into(), store.clone()));
        let stored = live
            .emit(Event::UserMessage { text: "hi".into() })
            .await
            .unwrap();
        assert_eq!(stored.seq, Some(1));
        live.park().await;
        let refused = live
            .emit(Event::UserMessage {
                text: "late".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(refused, EmitError::ShuttingDown), "{refused:?}");
        assert_eq!(ChatError::from(refused).code(), ErrorCode::ShuttingDown);
        assert_eq!(store.events("c1", 0, None).await.unwrap().len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The broadcast's buffer exists only while a client watches: a chat
    /// waiting for its user with nobody connected holds none, and a client
    /// that comes back gets every event from then on.
    #[tokio::test]
    async fn the_broadcast_buffer_lives_only_while_a_client_watches() {
        let (dir, store) = chat_c1("watched").await;
        let live = Arc::new(LiveChat::new("c1".into(), store.clone()));
        let said = |text: &str| Event::UserMessage { text: text.into() };
        let has_buffer = |live: &LiveChat| live.lock_events().is_some();
        assert!(!has_buffer(&live), "no buffer before any client");
        live.emit(said("unseen")).await.unwrap();
        assert!(!has_buffer(&live), "emitting to nobody makes none");

        let mut first = live.subscribe();
        assert_eq!(live.client_count(), 1);
        live.emit(said("one")).await.unwrap();
        assert_eq!(first.recv().await.unwrap().seq, Some(2));
        drop(first);
        live.release_if_unwatched();
        assert!(!has_buffer(&live), "released when the last client left");
        assert_eq!(live.client_count(), 0);

        // A client gone without the release: the next event drops the
        // buffer instead of filling it.
        let gone = live.subscribe();
        drop(gone);
        live.send_ephemeral(said("delta"));
        assert!(!has_buffer(&live), "dropped by the next event");

        // Watched again: every event from now on, none lost.
        let mut again = live.subscribe();
        let mut other = live.subscribe();
        live.emit(said("two")).await.unwrap();
        live.emit(said("three")).await.unwrap();
        for receiver in [&mut again, &mut other] {
            assert_eq!(receiver.recv().await.unwrap().seq, Some(3));
            assert_eq!(receiver.recv().await.unwrap().seq, Some(4));
        }
        drop(again);
        live.release_if_unwatched();
        assert!(has_buffer(&live), "kept while one client still watches");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
