//! The order in which a chat's events are stored and sent: one queue per
//! chat, written by a task of its own, so that a run can go on while its
//! last events are being made durable.
//!
//! # What the queue keeps
//!
//! - **Order.** Every event of the chat goes through the queue, persisted
//!   or ephemeral, in the order it was emitted; the writer stores the
//!   persisted ones of a batch with one
//!   [`append_many`](crate::store::ChatStore::append_many) (the embedded
//!   store: one transaction) and then sends the whole batch in order.
//! - **Durable before visible.** An event is sent to clients only after
//!   the store has it. An ephemeral event (a text delta) that was emitted
//!   after a persisted one still waiting waits with it, so a client never
//!   sees the deltas of a turn before the events that open it.
//! - **A prefix, never a gap.** When a write fails, nothing queued after the
//!   failed event is written: the queue drops it and counts a *failure*.
//!   The run learns of it at its next emit, [`flush`](LiveChat::flush) or
//!   durable emit (it passes the failure count it started with), stops, and
//!   the chat resumes from what the store has, exactly as after a crash.
//!   A tool's own writes during the run's call (context, UI) carry the
//!   run's count too ([`emit_for`](LiveChat::emit_for)).
//! - **The run's own view.** A run's [`emit_queued`](LiveChat::emit_queued)
//!   returns at once with the envelope the event *will* have: its `seq` is
//!   predicted (the queue knows the chat's next one once one write came
//!   back), and checked when the store answers; a different `seq` means
//!   something else wrote to the chat, which counts as a failure too. The
//!   context copy folds each event when it is queued, so the run's handoff
//!   checks see its own writes at once.
//! - **Side effects wait.** Before anything outside the process sees the
//!   chat, the run waits for the queue with [`flush`](LiveChat::flush): before
//!   a plugin that can reach outside runs, before another plugin's data
//!   write or read of the chat's log (`tools::before_plugin_call`), and
//!   before the chat's lasting status. A tool never acts outside the chat
//!   before its `tool_call` is durable.
//!
//! The writer task exists only while something is queued: a chat that
//! waits for its user holds no task.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt as _;
use tokio::sync::{oneshot, watch};

use super::{EmitError, LiveChat};
use crate::event::{Envelope, Event, RunStatus, now_ms};
use crate::store::StoreError;

/// The answer to a caller who waits for its event to be durable.
type Reply = oneshot::Sender<Result<Arc<Envelope>, EmitError>>;

/// A chat's queue of events on their way to the store and the clients.
#[derive(Debug)]
pub(super) struct WriteQueue {
    state: Mutex<QueueState>,
    /// How many queued items are settled (stored and sent, or dropped by
    /// a failure). Shared with the writer task so it can tell waiters after
    /// letting go of the chat.
    settled: Arc<watch::Sender<u64>>,
}

impl Default for WriteQueue {
    fn default() -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            settled: Arc::new(watch::Sender::new(0)),
        }
    }
}

#[derive(Debug, Default)]
struct QueueState {
    pending: VecDeque<Queued>,
    /// A writer task is running (it empties `pending` before it ends).
    writing: bool,
    /// Items queued so far.
    enqueued: u64,
    /// The `seq` the next persisted event will get, once known.
    next_seq: Option<u64>,
    /// Failures so far: a run that started after `n` of them is told of
    /// every later one.
    failures: u64,
    /// The latest failure.
    last_failure: Option<Failure>,
}

#[derive(Debug)]
enum Queued {
    /// An event to store, then send. `envelope.seq` is the predicted
    /// `seq`, or `None` when the queue did not know it.
    Persisted {
        envelope: Arc<Envelope>,
        reply: Option<Reply>,
    },
    /// An event only to send, in its place in the order.
    Ephemeral(Arc<Envelope>),
}

/// Why the queue stopped writing, kept to tell the run.
#[derive(Debug, Clone)]
enum Failure {
    ShuttingDown,
    Moved(Option<String>),
    Store(String),
}

impl Failure {
    fn of(error: &EmitError) -> Self {
        match error {
            EmitError::ShuttingDown => Self::ShuttingDown,
            EmitError::Moved { owner } => Self::Moved(owner.clone()),
            EmitError::Store(StoreError::Backend(message)) => Self::Store(message.clone()),
            EmitError::Store(other) => Self::Store(other.to_string()),
        }
    }

    fn error(&self) -> EmitError {
        match self {
            Self::ShuttingDown => EmitError::ShuttingDown,
            Self::Moved(owner) => EmitError::Moved {
                owner: owner.clone(),
            },
            Self::Store(message) => EmitError::Store(StoreError::Backend(message.clone())),
        }
    }
}

impl WriteQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`LiveChat::push`] did with an event.
enum Pushed {
    /// Queued with its `seq` known: the caller goes on.
    Queued(Arc<Envelope>),
    /// The caller hears back once it is stored and sent.
    Waiting(oneshot::Receiver<Result<Arc<Envelope>, EmitError>>),
}

/// How a queued event's caller waits.
pub(super) enum Wait {
    /// Returns at once when the `seq` is known (the run).
    Queued,
    /// Waits until the event is stored and sent.
    Durable,
}

impl LiveChat {
    /// Failures of this chat's writes so far: a run passes the count it
    /// started with to [`emit_queued`](Self::emit_queued),
    /// [`emit_durable`](Self::emit_durable) and [`flush`](Self::flush), which
    /// fail once a later write failed.
    pub(crate) fn write_failures(&self) -> u64 {
        self.writes.lock().failures
    }

    /// The run's emit: queues `event` and returns its envelope as it will
    /// be stored, without waiting for the store (when the chat's next
    /// `seq` is not known yet, it waits for this one write). Fails when a
    /// write failed since `since` ([`write_failures`](Self::write_failures)),
    /// or the chat was parked or moved.
    pub(crate) async fn emit_queued(
        self: &Arc<Self>,
        event: Event,
        since: u64,
    ) -> Result<Arc<Envelope>, EmitError> {
        self.enqueue(event, Some(since), Wait::Queued).await
    }

    /// Queues `event` and waits until it is stored and sent, failing when
    /// a write failed since `since` (the run's durable emit).
    pub(crate) async fn emit_durable(
        self: &Arc<Self>,
        event: Event,
        since: u64,
    ) -> Result<Arc<Envelope>, EmitError> {
        self.enqueue(event, Some(since), Wait::Durable).await
    }

    /// Queues `event` and waits until it is stored and sent: as a run's
    /// [`emit_durable`](Self::emit_durable) when `since` is the run's
    /// failure count (a tool's writes during the run's call), as
    /// [`emit`](Self::emit) when `None`.
    pub(crate) async fn emit_for(
        self: &Arc<Self>,
        event: Event,
        since: Option<u64>,
    ) -> Result<Arc<Envelope>, EmitError> {
        if !event.is_persisted() {
            return Ok(self.send_ephemeral(event));
        }
        self.enqueue(event, since, Wait::Durable).await
    }

    /// Waits until everything queued so far is stored and sent; fails when
    /// a write failed since `since`.
    pub(crate) async fn flush(&self, since: u64) -> Result<(), EmitError> {
        self.settled().await;
        let state = self.writes.lock();
        match &state.last_failure {
            Some(failure) if state.failures > since => Err(failure.error()),
            _ => Ok(()),
        }
    }

    /// Waits until everything queued so far is settled (stored and sent,
    /// or dropped by a failure).
    pub(crate) async fn settled(&self) {
        let target = self.writes.lock().enqueued;
        let mut settled = self.writes.settled.subscribe();
        // The sender lives as long as `self`.
        let _ = settled.wait_for(|n| *n >= target).await;
    }

    /// Queues `event` (the one way in for persisted events) and waits as
    /// `wait` says. `since`: the failure count the caller (a run) started
    /// with; `None` for callers outside the run, who only learn of their
    /// own write.
    pub(super) async fn enqueue(
        self: &Arc<Self>,
        event: Event,
        since: Option<u64>,
        wait: Wait,
    ) -> Result<Arc<Envelope>, EmitError> {
        match self.push(event, since, wait)? {
            Pushed::Queued(envelope) => Ok(envelope),
            Pushed::Waiting(answer) => Self::answer(answer).await,
        }
    }

    /// Queues `events` in order and waits until the last is stored and
    /// sent (so all are: the queue writes a prefix).
    pub(crate) async fn emit_all(self: &Arc<Self>, events: Vec<Event>) -> Result<(), EmitError> {
        let mut last = None;
        for event in events {
            last = Some(self.push(event, None, Wait::Durable)?);
        }
        match last {
            Some(Pushed::Waiting(answer)) => Self::answer(answer).await.map(drop),
            Some(Pushed::Queued(_)) | None => Ok(()),
        }
    }

    /// A chat just created, with nothing in its log: its first event gets
    /// `seq` 1, so the run's events need not wait to learn it.
    pub(crate) fn starts_empty(&self) {
        let mut state = self.writes.lock();
        if state.enqueued == 0 && state.next_seq.is_none() {
            state.next_seq = Some(1);
        }
    }

    async fn answer(
        answer: oneshot::Receiver<Result<Arc<Envelope>, EmitError>>,
    ) -> Result<Arc<Envelope>, EmitError> {
        answer.await.unwrap_or_else(|_| {
            Err(EmitError::Store(StoreError::Backend(
                "the task writing this chat's events stopped".to_owned(),
            )))
        })
    }

    /// Puts `event` in the queue, starting the writer task if none runs.
    fn push(
        self: &Arc<Self>,
        event: Event,
        since: Option<u64>,
        wait: Wait,
    ) -> Result<Pushed, EmitError> {
        let (pushed, spawn) = {
            let mut state = self.writes.lock();
            if let Some(since) = since
                && state.failures > since
                && let Some(failure) = &state.last_failure
            {
                return Err(failure.error());
            }
            if let Some(owner) = self.moved.borrow().clone() {
                return Err(EmitError::Moved { owner });
            }
            if self.parked.load(std::sync::atomic::Ordering::Acquire) {
                return Err(EmitError::ShuttingDown);
            }
            if let Event::RunStatus { status, .. } = &event {
                self.set_status_copy(*status);
            }
            self.context.fold(&event);
            let seq = state.next_seq;
            let envelope = Arc::new(Envelope {
                seq,
                chat_id: self.chat_id.clone(),
                ts: now_ms(),
                event,
            });
            if let Some(seq) = seq {
                state.next_seq = seq.checked_add(1);
            }
            let (reply, pushed) = match (&wait, seq) {
                (Wait::Queued, Some(_)) => (None, Pushed::Queued(Arc::clone(&envelope))),
                _ => {
                    let (reply, answer) = oneshot::channel();
                    (Some(reply), Pushed::Waiting(answer))
                }
            };
            state
                .pending
                .push_back(Queued::Persisted { envelope, reply });
            state.enqueued += 1;
            let spawn = !state.writing;
            state.writing = true;
            (pushed, spawn)
        };
        if spawn {
            tokio::spawn(write_queue(Arc::clone(self)));
        }
        Ok(pushed)
    }

    /// Sends an ephemeral event in its place in the order: at once when
    /// nothing waits to be written, else after what does.
    pub(super) fn send_in_order(&self, envelope: Arc<Envelope>) {
        {
            let mut state = self.writes.lock();
            if state.writing {
                state.pending.push_back(Queued::Ephemeral(envelope));
                state.enqueued += 1;
                return;
            }
        }
        self.broadcast(&envelope);
    }

    /// Forgets the predicted `seq` (something other than this queue wrote
    /// to the chat, or may have): the next write learns it again.
    pub(super) fn forget_next_seq(&self) {
        self.writes.lock().next_seq = None;
    }

    /// Fills the context copy with `context`, read from the store after
    /// `enqueued_before` items were queued, if nothing was queued since
    /// and everything queued is settled. False: read again.
    pub(super) fn fill_context_if_quiet(
        &self,
        enqueued_before: u64,
        context: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let state = self.writes.lock();
        if state.enqueued != enqueued_before || *self.writes.settled.borrow() != state.enqueued {
            return false;
        }
        self.context.fill(context);
        true
    }

    /// Items queued so far.
    pub(super) fn enqueued(&self) -> u64 {
        self.writes.lock().enqueued
    }

    /// Writes one batch: everything queued when the writer took it.
    async fn write_batch(self: &Arc<Self>, batch: Vec<Queued>) {
        let _order = self.append.lock().await;
        let refusal = if let Some(owner) = self.moved.borrow().clone() {
            Some(EmitError::Moved { owner })
        } else if self.parked.load(std::sync::atomic::Ordering::Acquire) {
            Some(EmitError::ShuttingDown)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let failure = Failure::of(&refusal);
            self.fail(batch, &failure);
            return;
        }
        let events: Vec<(u64, Event)> = batch
            .iter()
            .filter_map(|item| match item {
                Queued::Persisted { envelope, .. } => Some((envelope.ts, envelope.event.clone())),
                Queued::Ephemeral(_) => None,
            })
            .collect();
        let appended = if events.is_empty() {
            crate::store::Appended {
                stored: Vec::new(),
                error: None,
            }
        } else {
            self.store.append_many(&self.chat_id, events).await
        };
        let mut stored = appended.stored.into_iter();
        let mut error = appended.error;
        let mut failure: Option<Failure> = None;
        let mut diverged: Option<String> = None;
        let mut last_stored = None;
        let mut rest = batch.into_iter();
        for item in rest.by_ref() {
            match item {
                Queued::Ephemeral(envelope) => self.broadcast(&envelope),
                Queued::Persisted { envelope, reply } => {
                    let Some(actual) = stored.next() else {
                        let emit_error = EmitError::from(error.take().unwrap_or_else(|| {
                            StoreError::Backend(
                                "the store wrote fewer events than given".to_owned(),
                            )
                        }));
                        let this = Failure::of(&emit_error);
                        if let EmitError::Moved { owner } = &emit_error {
                            self.moved.send_replace(Some(owner.clone()));
                            self.forget_copies();
                        }
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(emit_error));
                        }
                        failure = Some(this);
                        break;
                    };
                    last_stored = actual.seq;
                    let envelope = match envelope.seq {
                        Some(predicted) if Some(predicted) == actual.seq => envelope,
                        None => Arc::new(actual),
                        Some(predicted) => {
                            diverged.get_or_insert_with(|| {
                                format!(
                                    "the log of chat `{}` moved on under its run: an event expected at seq {predicted} was stored at {}",
                                    self.chat_id,
                                    actual.seq.unwrap_or(0)
                                )
                            });
                            Arc::new(actual)
                        }
                    };
                    self.note_seq(&envelope);
                    self.broadcast(&envelope);
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(envelope));
                    }
                }
            }
        }
        if let Some(failure) = failure {
            self.fail(rest.collect(), &failure);
            return;
        }
        if let Some(message) = diverged {
            tracing::error!(chat_id = %self.chat_id, "{message}; its run stops and resumes from the log");
            self.fail(Vec::new(), &Failure::Store(message));
            return;
        }
        let mut state = self.writes.lock();
        if state.next_seq.is_none() && state.pending.is_empty() {
            state.next_seq = last_stored.and_then(|seq| seq.checked_add(1));
        }
    }

    /// Counts a failure: `unwritten` and everything still queued are
    /// dropped (a caller waiting for one hears why), the predicted `seq`
    /// and the context copy are forgotten.
    fn fail(&self, unwritten: Vec<Queued>, failure: &Failure) {
        let dropped: Vec<Queued> = {
            let mut state = self.writes.lock();
            state.failures += 1;
            state.last_failure = Some(failure.clone());
            state.next_seq = None;
            state.pending.drain(..).collect()
        };
        self.context.forget();
        let count = dropped.len() as u64;
        for item in unwritten.into_iter().chain(dropped) {
            if let Queued::Persisted {
                reply: Some(reply), ..
            } = item
            {
                let _ = reply.send(Err(failure.error()));
            }
        }
        // The dropped items were queued and will never be written.
        self.writes.settled.send_modify(|n| *n += count);
    }

    fn set_status_copy(&self, status: RunStatus) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }
}

/// A run's writes to wait for before an effect outside the chat's log (a
/// plugin's data write, a read of the chat's log): see
/// [`LiveChat::barrier`].
#[derive(Debug, Clone)]
pub(crate) struct WriteBarrier {
    live: Arc<LiveChat>,
    since: u64,
}

impl WriteBarrier {
    /// Waits until everything the chat queued so far is stored and sent;
    /// fails when a write failed since the run started.
    pub(crate) async fn wait(&self) -> Result<(), EmitError> {
        self.live.flush(self.since).await
    }
}

impl LiveChat {
    /// A barrier on this chat's writes for the run that started after
    /// `since` failures.
    pub(crate) fn barrier(self: &Arc<Self>, since: u64) -> WriteBarrier {
        WriteBarrier {
            live: Arc::clone(self),
            since,
        }
    }
}

/// The writer task: takes everything queued, writes it, and again, until
/// the queue is empty.
async fn write_queue(live: Arc<LiveChat>) {
    loop {
        let batch: Vec<Queued> = live.writes.lock().pending.drain(..).collect();
        let count = batch.len() as u64;
        if !batch.is_empty() {
            // A panic while writing must not leave the queue marked as
            // being written with nobody writing it: every later emit and
            // flush of the chat would wait forever.
            let written = std::panic::AssertUnwindSafe(live.write_batch(batch))
                .catch_unwind()
                .await;
            if written.is_err() {
                tracing::error!(chat_id = %live.chat_id, "writing the chat's events panicked; what was queued is dropped and its run resumes from the log");
                live.fail(
                    Vec::new(),
                    &Failure::Store("writing the chat's events panicked".to_owned()),
                );
            }
        }
        let done = {
            let mut state = live.writes.lock();
            if state.pending.is_empty() {
                state.writing = false;
                true
            } else {
                false
            }
        };
        if done {
            // Let go of the chat before telling waiters, so that a run
            // that waits for its last write finds the chat unused.
            let settled = Arc::clone(&live.writes.settled);
            drop(live);
            settled.send_modify(|n| *n += count);
            return;
        }
        live.writes.settled.send_modify(|n| *n += count);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use serde_json::{Value, json};
    use tokio::sync::broadcast::error::TryRecvError;

    use super::super::{EmitError, LiveChat};
    use crate::event::{Envelope, Event};
    use crate::store::instrumented::Instrumented;
    use crate::store::{ChatStore, StoreError};

    /// A data directory of its own, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Chat `c1` on a gated store (open), with one event stored through
    /// the queue, so the queue knows the next `seq` (2).
    async fn chat_with_one_event() -> (Scratch, Arc<Instrumented>, Arc<LiveChat>) {
        let dir =
            Scratch(std::env::temp_dir().join(format!("mozaiks-writer-{}", uuid::Uuid::new_v4())));
        let (store, live) = super::super::context_copy::tests::chat_on(&dir.0).await;
        let first = live.emit(said("first")).await.unwrap();
        assert_eq!(first.seq, Some(1));
        (dir, store, live)
    }

    fn said(text: &str) -> Event {
        Event::UserMessage { text: text.into() }
    }

    fn delta(text: &str) -> Event {
        Event::TextDelta {
            agent: "a".into(),
            delta: text.into(),
        }
    }

    async fn stored_texts(store: &Instrumented) -> Vec<(u64, String)> {
        store
            .events("c1", 0, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| match e.event {
                Event::UserMessage { text } => (e.seq.unwrap(), text),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn what(envelope: &Envelope) -> (Option<u64>, String) {
        match &envelope.event {
            Event::UserMessage { text } => (envelope.seq, text.clone()),
            Event::TextDelta { delta, .. } => (envelope.seq, format!("delta {delta}")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_runs_events_come_back_at_once_and_reach_clients_only_once_durable() {
        let (_dir, store, live) = chat_with_one_event().await;
        let since = live.write_failures();
        let mut client = live.subscribe();
        store.set_open(false);

        let two = live.emit_queued(said("two"), since).await.unwrap();
        let three = live.emit_queued(said("three"), since).await.unwrap();
        live.send_ephemeral(delta("thr"));
        assert_eq!((two.seq, three.seq), (Some(2), Some(3)), "predicted");
        tokio::task::yield_now().await;
        assert!(
            matches!(client.try_recv(), Err(TryRecvError::Empty)),
            "nothing is sent before it is durable, not even a later delta"
        );
        assert_eq!(stored_texts(&store).await.len(), 1);

        store.set_open(true);
        live.flush(since).await.unwrap();
        assert_eq!(
            stored_texts(&store).await,
            [(1, "first".into()), (2, "two".into()), (3, "three".into())]
        );
        let mut received = Vec::new();
        for _ in 0..3 {
            received.push(what(&client.recv().await.unwrap()));
        }
        assert_eq!(
            received,
            [
                (Some(2), "two".to_owned()),
                (Some(3), "three".to_owned()),
                (None, "delta thr".to_owned())
            ]
        );
        // Sent as the run holds it: one envelope, not a copy.
        assert_eq!(
            live.emit_queued(said("four"), since).await.unwrap().seq,
            Some(4)
        );
        live.flush(since).await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_write_drops_what_was_queued_after_it_and_stops_that_run_only() {
        let (_dir, store, live) = chat_with_one_event().await;
        let since = live.write_failures();
        store.set_open(false);
        store.fail_appends.store(true, Ordering::SeqCst);
        live.emit_queued(said("lost"), since).await.unwrap();
        live.emit_queued(said("after"), since).await.unwrap();
        store.set_open(true);

        let flushed = live.flush(since).await.unwrap_err();
        assert!(
            matches!(&flushed, EmitError::Store(StoreError::Backend(m)) if m.contains("disk on fire")),
            "{flushed:?}"
        );
        let refused = live.emit_queued(said("next"), since).await.unwrap_err();
        assert!(matches!(refused, EmitError::Store(_)), "{refused:?}");
        assert!(
            live.emit_durable(said("status"), since).await.is_err(),
            "the run's durable emits are refused too"
        );
        assert_eq!(stored_texts(&store).await, [(1, "first".into())]);

        assert!(
            live.emit_for(said("a tool's write"), Some(since))
                .await
                .is_err(),
            "a tool called by that run writes nothing after the lost event"
        );

        // The next run starts from the log; the queue learns the seq again.
        store.fail_appends.store(false, Ordering::SeqCst);
        let next_run = live.write_failures();
        assert!(next_run > since);
        let resumed = live.emit_queued(said("resumed"), next_run).await.unwrap();
        assert_eq!(resumed.seq, Some(2));
        live.flush(next_run).await.unwrap();
        assert_eq!(
            stored_texts(&store).await,
            [(1, "first".into()), (2, "resumed".into())]
        );
    }

    #[tokio::test]
    async fn an_event_written_around_the_queue_stops_the_run_and_is_still_sent() {
        let (_dir, store, live) = chat_with_one_event().await;
        let since = live.write_failures();
        let mut client = live.subscribe();
        store.append("c1", 5, said("elsewhere")).await.unwrap();

        let predicted = live.emit_queued(said("mine"), since).await.unwrap();
        assert_eq!(predicted.seq, Some(2));
        let error = live.flush(since).await.unwrap_err();
        assert!(
            matches!(&error, EmitError::Store(StoreError::Backend(m)) if m.contains("moved on")),
            "{error:?}"
        );
        assert_eq!(
            what(&client.recv().await.unwrap()),
            (Some(3), "mine".to_owned()),
            "stored, so sent, with the seq the store gave it"
        );
    }

    #[tokio::test]
    async fn the_run_sees_its_own_context_writes_before_they_are_durable() {
        let (_dir, store, live) = chat_with_one_event().await;
        let since = live.write_failures();
        assert!(live.context().await.unwrap().is_empty());
        store.set_open(false);
        live.emit_queued(
            Event::ContextChanged {
                key: "k".into(),
                value: Some(json!(1)),
                by: "tool".into(),
            },
            since,
        )
        .await
        .unwrap();
        assert_eq!(
            Value::Object(live.context().await.unwrap()),
            json!({"k": 1})
        );
        assert!(
            store.context("c1").await.unwrap().is_empty(),
            "not yet durable"
        );
        store.set_open(true);
        live.flush(since).await.unwrap();
        assert_eq!(
            Value::Object(store.context("c1").await.unwrap()),
            json!({"k": 1})
        );
    }

    #[tokio::test]
    async fn a_write_in_progress_finishes_before_a_park_and_nothing_is_written_after() {
        let (_dir, store, live) = chat_with_one_event().await;
        let since = live.write_failures();
        store.set_open(false);
        live.emit_queued(said("in flight"), since).await.unwrap();
        tokio::task::yield_now().await;
        let park = tokio::spawn({
            let live = Arc::clone(&live);
            async move { live.park().await }
        });
        tokio::task::yield_now().await;
        store.set_open(true);
        park.await.unwrap();
        let refused = live.emit_queued(said("late"), since).await.unwrap_err();
        assert!(matches!(refused, EmitError::ShuttingDown), "{refused:?}");
        live.settled().await;
        let texts = stored_texts(&store).await;
        assert!(
            texts.iter().all(|(_, t)| t != "late"),
            "nothing after the park: {texts:?}"
        );
    }

    #[tokio::test]
    async fn a_tools_data_write_waits_until_the_runs_events_are_durable() {
        use mozaiks_plugin_host::{AppData, DataLimits, DataScope};

        use crate::orchestrator::app_data::ChatAppData;

        let (_dir, store, live) = chat_with_one_event().await;
        let since = live.write_failures();
        store.set_open(false);
        live.emit_queued(said("the tool_call"), since)
            .await
            .unwrap();
        let record = store.chat("c1").await.unwrap().unwrap();
        let data = ChatAppData::new(store.store.app_data(), &record, DataLimits::default())
            .with_barrier(Some(live.barrier(since)));
        let put = tokio::spawn(async move {
            data.put(DataScope::App, "notes", "n1", json!({"a": 1}), None)
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!put.is_finished(), "the write waits for the run's events");
        let documents = store.store.app_data().unwrap();
        let owner = crate::store::data::DataOwner::app("a");
        assert!(
            documents
                .get_document(&owner, "notes", "n1")
                .await
                .unwrap()
                .is_none()
        );
        store.set_open(true);
        put.await.unwrap().unwrap();
        assert_eq!(stored_texts(&store).await.len(), 2);
        assert!(
            documents
                .get_document(&owner, "notes", "n1")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_tools_read_of_the_chat_waits_for_the_runs_events() {
        use mozaiks_plugin_host::ChatReader;

        use crate::orchestrator::transcript::ChatTranscript;

        let (_dir, store, live) = chat_with_one_event().await;
        let since = live.write_failures();
        store.set_open(false);
        live.emit_queued(said("just said"), since).await.unwrap();
        let transcript = ChatTranscript::new(
            Arc::clone(&store) as Arc<dyn ChatStore>,
            "c1",
            Some(live.barrier(since)),
        );
        let read = tokio::spawn(async move { transcript.recent_messages(10).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!read.is_finished(), "the read waits for the run's events");
        store.set_open(true);
        let messages = read.await.unwrap().unwrap();
        let texts: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["first", "just said"]);
    }
}
