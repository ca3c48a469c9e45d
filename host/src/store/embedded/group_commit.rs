//! Group commit of the embedded store's appends: one thread, the
//! committer, writes every append of every chat. The appends that arrive
//! while a commit is in flight (or while another write holds redb's single
//! writer) go into the next write transaction together, committed with one
//! `fdatasync`.
//!
//! - **Order**: a batch applies its appends in the order they arrived, so a
//!   chat's events get consecutive sequence numbers in the order its
//!   `append` calls were made.
//! - **Durability before visibility**: an append's caller hears back only
//!   after its batch committed durably, and the orchestrator broadcasts an
//!   event only after its append returned.
//! - **Each caller learns its own result**: an append that cannot be
//!   applied for a reason of its own (its chat does not exist, its chat's
//!   record is corrupt) fails alone and writes nothing; the rest of the
//!   batch commits. A failure of the transaction itself (opening a table,
//!   writing, committing) fails every append of the batch, and nothing of
//!   it is visible: the transaction is aborted.
//! - **Dropped callers**: an append whose future is dropped is committed
//!   (or fails) with its batch all the same; only its answer is lost.
//!
//! Each batch's size and the time of its write transaction (the commit and
//! its `fdatasync` included) go to `/metrics`
//! (`mozaiks_store_commit_batch_size`, `mozaiks_store_commit_duration_seconds`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use redb::WriteTransaction;
use tokio::sync::{mpsc, oneshot};

use super::{CHATS, CONTEXT, EVENTS, Inner};
use crate::event::{Envelope, Event};
use crate::store::{ChatRecord, StoreError};
use crate::telemetry::metrics;

/// The most appends one write transaction takes. Bounds the memory and the
/// time of one commit under a burst; the appends beyond it wait for the
/// next transaction, which starts at once.
pub(super) const MAX_BATCH: usize = 1024;

/// What the store label of the commit metrics says for this store.
const STORE_LABEL: &str = "embedded";

/// The answer to one request: an answer per event, in order; or the
/// failure of the whole transaction.
type Answer = Result<PerEvent, StoreError>;

/// An answer per event of one request, in order.
type PerEvent = Vec<Result<Envelope, StoreError>>;

/// One request waiting for its batch: one chat's events, appended in
/// order and in the same transaction.
struct Request {
    chat_id: String,
    events: Vec<(u64, Event)>,
    reply: oneshot::Sender<Answer>,
}

/// One request of a batch being written.
struct Append {
    chat_id: String,
    events: Vec<(u64, Event)>,
}

/// How many batches and appends this store's committer has committed
/// (tests read it; `/metrics` has the process-wide figures).
#[derive(Debug, Default)]
pub(super) struct CommitCounts {
    submitted: AtomicU64,
    batches: AtomicU64,
    appends: AtomicU64,
}

impl CommitCounts {
    /// Appends handed to the committer so far.
    #[cfg(test)]
    pub(super) fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Relaxed)
    }

    /// Committed batches (write transactions) so far.
    #[cfg(test)]
    pub(super) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Appends committed so far.
    #[cfg(test)]
    pub(super) fn appends(&self) -> u64 {
        self.appends.load(Ordering::Relaxed)
    }
}

/// The handle to the committer thread. Dropping the last one lets the
/// thread finish what is queued and waits for it, so the database file is
/// closed (and can be opened again) when the store is gone.
pub(super) struct Committer {
    queue: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<JoinHandle<()>>,
    counts: Arc<CommitCounts>,
}

impl fmt::Debug for Committer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committer")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the committer thread for `inner`'s database.
    pub(super) fn start(inner: Arc<Inner>) -> Result<Self, StoreError> {
        let (queue, requests) = mpsc::unbounded_channel();
        let counts = Arc::new(CommitCounts::default());
        let thread_counts = Arc::clone(&counts);
        let thread = std::thread::Builder::new()
            .name("mozaiks-store-commit".to_owned())
            .spawn(move || run(&inner, requests, &thread_counts))
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the store's commit thread: {e}"))
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            counts,
        })
    }

    /// Queues one append and waits until its batch is committed.
    pub(super) async fn append(
        &self,
        chat_id: String,
        ts: u64,
        event: Event,
    ) -> Result<Envelope, StoreError> {
        let mut answers = self.append_many(chat_id, vec![(ts, event)]).await?;
        answers.pop().unwrap_or_else(|| {
            Err(StoreError::Backend(
                "the store's commit thread answered nothing".to_owned(),
            ))
        })
    }

    /// Queues one chat's `events` as one request (applied in order, in one
    /// transaction) and waits until its batch is committed. Returns an
    /// answer per event; once an event is refused, the ones after it are
    /// refused too, so what is stored is always a prefix of `events`.
    pub(super) async fn append_many(&self, chat_id: String, events: Vec<(u64, Event)>) -> Answer {
        let (reply, answer) = oneshot::channel();
        let count = events.len() as u64;
        let request = Request {
            chat_id,
            events,
            reply,
        };
        let stopped = || StoreError::Backend("the store's commit thread has stopped".to_owned());
        self.counts.submitted.fetch_add(count, Ordering::Relaxed);
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(request)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// This committer's counts.
    #[cfg(test)]
    pub(super) fn counts(&self) -> &CommitCounts {
        &self.counts
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has committed what was
        // queued; joining it releases its hold on the database.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The committer thread: one batch after another until the queue closes.
fn run(inner: &Inner, mut requests: mpsc::UnboundedReceiver<Request>, counts: &CommitCounts) {
    while let Some(first) = requests.blocking_recv() {
        // Waiting for redb's writer first lets everything that arrives
        // meanwhile join this batch.
        let txn = inner.db.begin_write();
        let mut size = first.events.len();
        let mut batch = vec![first];
        while size < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => {
                    size += request.events.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let mut replies = Vec::with_capacity(batch.len());
        let mut appends = Vec::with_capacity(batch.len());
        for request in batch {
            replies.push(request.reply);
            appends.push(Append {
                chat_id: request.chat_id,
                events: request.events,
            });
        }
        let outcome = match txn {
            Ok(txn) => commit(inner, txn, appends),
            Err(e) => Err(inner.backend(OP, e)),
        };
        let answers: Vec<Answer> = match outcome {
            Ok(answers) => {
                counts.batches.fetch_add(1, Ordering::Relaxed);
                counts.appends.fetch_add(size as u64, Ordering::Relaxed);
                metrics().store_commit(STORE_LABEL, size, started.elapsed());
                answers.into_iter().map(Ok).collect()
            }
            Err(error) => {
                tracing::error!(%error, appends = size, "a group commit of the chat store failed; every append of it fails");
                (0..replies.len())
                    .map(|_| {
                        Err(StoreError::Backend(format!(
                            "{error} (the write of {size} appends it was part of failed as a whole)"
                        )))
                    })
                    .collect()
            }
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A caller that went away no longer needs the answer.
            let _ = reply.send(answer);
        }
    }
}

const OP: &str = "appending an event";

/// The outcome of one append inside a batch.
enum Applied {
    /// Written into the transaction.
    Ok(Envelope),
    /// Refused for a reason of its own; nothing of it was written.
    Refused(StoreError),
}

/// Applies every request of `batch` in one transaction and commits it.
/// Returns each request's answers, in order; an error fails the whole
/// batch (the transaction is aborted).
fn commit(
    inner: &Inner,
    txn: WriteTransaction,
    batch: Vec<Append>,
) -> Result<Vec<PerEvent>, StoreError> {
    let applied = match apply(inner, &txn, batch) {
        Ok(applied) => applied,
        Err(error) => {
            // The batch's error says more than a failed abort would.
            let _ = txn.abort();
            return Err(error);
        }
    };
    #[cfg(test)]
    if inner.fail_next_commit.swap(false, Ordering::SeqCst) {
        let _ = txn.abort();
        return Err(inner.backend(OP, "injected commit failure"));
    }
    txn.commit().map_err(|e| inner.backend(OP, e))?;
    Ok(applied
        .into_iter()
        .map(|request| {
            request
                .into_iter()
                .map(|applied| match applied {
                    Applied::Ok(envelope) => Ok(envelope),
                    Applied::Refused(error) => Err(error),
                })
                .collect()
        })
        .collect())
}

/// A chat's record as the batch has changed it so far.
struct Touched {
    record: ChatRecord,
    changed: bool,
}

/// Writes every request of `batch` into `txn`, each request's events in
/// order until one is refused; each chat's record is read once and written
/// once per batch.
fn apply(
    inner: &Inner,
    txn: &WriteTransaction,
    batch: Vec<Append>,
) -> Result<Vec<Vec<Applied>>, StoreError> {
    let mut tables = Tables {
        chats: txn.open_table(CHATS).map_err(|e| inner.backend(OP, e))?,
        events: txn.open_table(EVENTS).map_err(|e| inner.backend(OP, e))?,
        context: txn.open_table(CONTEXT).map_err(|e| inner.backend(OP, e))?,
    };
    let mut touched: HashMap<String, Touched> = HashMap::new();
    let mut applied = Vec::with_capacity(batch.len());
    for request in batch {
        let mut answers = Vec::with_capacity(request.events.len());
        let mut refused: Option<String> = None;
        for (ts, event) in request.events {
            if let Some(reason) = &refused {
                answers.push(Applied::Refused(StoreError::Backend(format!(
                    "not written: an earlier event of the same write was refused ({reason})"
                ))));
                continue;
            }
            let answer = apply_one(
                inner,
                &mut tables,
                &mut touched,
                &request.chat_id,
                ts,
                event,
            )?;
            if let Applied::Refused(error) = &answer {
                refused = Some(error.to_string());
            }
            answers.push(answer);
        }
        applied.push(answers);
    }
    let Tables { mut chats, .. } = tables;
    for (chat_id, chat) in &touched {
        if chat.changed {
            let json = inner.encode(OP, &chat.record)?;
            chats
                .insert(chat_id.as_str(), json.as_str())
                .map_err(|e| inner.backend(OP, e))?;
        }
    }
    Ok(applied)
}

/// The tables a batch writes.
struct Tables<'txn> {
    chats: redb::Table<'txn, &'static str, &'static str>,
    events: redb::Table<'txn, (&'static str, u64), &'static str>,
    context: redb::Table<'txn, (&'static str, &'static str), &'static str>,
}

/// Writes one event of `chat_id` into the batch's tables.
fn apply_one(
    inner: &Inner,
    tables: &mut Tables<'_>,
    touched: &mut HashMap<String, Touched>,
    chat_id: &str,
    ts: u64,
    event: Event,
) -> Result<Applied, StoreError> {
    if !touched.contains_key(chat_id) {
        match inner.load_chat(&tables.chats, OP, chat_id) {
            Ok(record) => {
                touched.insert(
                    chat_id.to_owned(),
                    Touched {
                        record,
                        changed: false,
                    },
                );
            }
            Err(StoreError::Backend(e)) => return Err(StoreError::Backend(e)),
            Err(own) => return Ok(Applied::Refused(own)),
        }
    }
    let Some(chat) = touched.get_mut(chat_id) else {
        return Err(inner.backend(OP, format!("chat `{chat_id}` vanished from the batch")));
    };
    let Some(seq) = chat.record.last_seq.checked_add(1) else {
        return Ok(Applied::Refused(
            inner.backend(OP, format!("chat `{chat_id}`'s log is full")),
        ));
    };
    let envelope = Envelope {
        seq: Some(seq),
        chat_id: chat_id.to_owned(),
        ts,
        event,
    };
    let json = match crate::store::format::encode_event(&envelope) {
        Ok(json) => json,
        Err(e) => {
            return Ok(Applied::Refused(
                inner.backend(OP, format!("encoding: {e}")),
            ));
        }
    };
    tables
        .events
        .insert((chat_id, seq), json.as_str())
        .map_err(|e| inner.backend(OP, e))?;
    match &envelope.event {
        Event::ContextChanged {
            key,
            value: Some(value),
            ..
        } => {
            let json = inner.encode(OP, value)?;
            tables
                .context
                .insert((chat_id, key.as_str()), json.as_str())
                .map_err(|e| inner.backend(OP, e))?;
        }
        Event::ContextChanged {
            key, value: None, ..
        } => {
            tables
                .context
                .remove((chat_id, key.as_str()))
                .map_err(|e| inner.backend(OP, e))?;
        }
        Event::Usage {
            prompt_tokens,
            completion_tokens,
            ..
        } => {
            chat.record.prompt_tokens = chat.record.prompt_tokens.saturating_add(*prompt_tokens);
            chat.record.completion_tokens = chat
                .record
                .completion_tokens
                .saturating_add(*completion_tokens);
        }
        _ => {}
    }
    chat.record.last_seq = seq;
    chat.record.updated_at = ts;
    chat.changed = true;
    Ok(Applied::Ok(envelope))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use futures_util::future::join_all;

    use crate::event::Event;
    use crate::store::{ChatRecord, ChatStore, EmbeddedStore, StoreError};

    fn chat(id: &str) -> ChatRecord {
        ChatRecord::new(
            id.into(),
            "app".into(),
            "user".into(),
            "Wf".into(),
            "1".into(),
            7,
            1,
        )
    }

    fn said(text: &str) -> Event {
        Event::UserMessage { text: text.into() }
    }

    async fn store_with_chats(dir: &TempDir, ids: &[&str]) -> EmbeddedStore {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for id in ids {
            store.create_chat(&chat(id)).await.unwrap();
        }
        store
    }

    /// Waits until `n` more appends than `before` were handed to the
    /// committer, which waits for the writer the test holds. No deadline:
    /// the test runner's own timeout bounds it.
    async fn until_submitted(store: &EmbeddedStore, before: u64, n: usize) {
        while store.committer.counts().submitted() < before + n as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A data directory of its own, removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> Self {
            let name = format!(
                "mozaiks-commit-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            );
            Self(std::env::temp_dir().join(name))
        }

        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn texts(events: &[crate::event::Envelope]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.event {
                Event::UserMessage { text } => text.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn appends_of_many_chats_that_wait_for_the_writer_commit_in_one_transaction() {
        let dir = TempDir::new();
        let ids: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let store = store_with_chats(&dir, &refs).await;
        let before = store.committer.counts().batches();

        // Another write holds redb's single writer, as a commit in flight
        // does: every append arriving meanwhile must join one transaction.
        let submitted = store.committer.counts().submitted();
        let held = store.inner.db.begin_write().unwrap();
        let appends = tokio::spawn({
            let store = store.clone();
            let ids = ids.clone();
            async move { join_all(ids.iter().map(|id| store.append(id, 5, said(id)))).await }
        });
        until_submitted(&store, submitted, ids.len()).await;
        held.abort().unwrap();
        let results = appends.await.unwrap();

        for (id, result) in ids.iter().zip(results) {
            let envelope = result.unwrap();
            assert_eq!(
                (envelope.chat_id.as_str(), envelope.seq),
                (id.as_str(), Some(1))
            );
        }
        assert_eq!(store.committer.counts().batches() - before, 1);
        assert_eq!(store.committer.counts().appends(), 16);
        for id in &ids {
            let events = store.events(id, 0, None).await.unwrap();
            assert_eq!(texts(&events), vec![id.clone()]);
            assert_eq!(store.chat(id).await.unwrap().unwrap().last_seq, 1);
        }
    }

    #[tokio::test]
    async fn concurrent_chats_commit_in_fewer_transactions_than_appends_and_keep_each_chats_order()
    {
        let dir = TempDir::new();
        let ids: Vec<String> = (0..32).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let store = store_with_chats(&dir, &refs).await;
        let before = store.committer.counts().batches();
        const PER_CHAT: usize = 20;

        // Each chat appends one event after another, as a run does; the
        // chats run at once.
        let runs = ids.iter().map(|id| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                for n in 0..PER_CHAT {
                    let envelope = store
                        .append(&id, 5, said(&format!("{id}-{n}")))
                        .await
                        .unwrap();
                    assert_eq!(envelope.seq, Some(n as u64 + 1));
                }
            })
        });
        for run in join_all(runs).await {
            run.unwrap();
        }

        let transactions = store.committer.counts().batches() - before;
        let appends = (ids.len() * PER_CHAT) as u64;
        assert!(
            transactions < appends,
            "{appends} appends took {transactions} transactions"
        );
        for id in &ids {
            let events = store.events(id, 0, None).await.unwrap();
            let expected: Vec<String> = (0..PER_CHAT).map(|n| format!("{id}-{n}")).collect();
            assert_eq!(texts(&events), expected);
            let seqs: Vec<u64> = events.iter().map(|e| e.seq.unwrap()).collect();
            assert_eq!(seqs, (1..=PER_CHAT as u64).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn appends_to_one_chat_in_one_batch_get_seqs_in_the_order_they_were_made() {
        let dir = TempDir::new();
        let store = store_with_chats(&dir, &["a", "b"]).await;
        let submitted = store.committer.counts().submitted();
        let held = store.inner.db.begin_write().unwrap();
        let order = ["a1", "b1", "a2", "a3", "b2", "a4"];
        let appends = tokio::spawn({
            let store = store.clone();
            async move {
                join_all(
                    order
                        .iter()
                        .map(|text| store.append(&text[..1], 5, said(text))),
                )
                .await
            }
        });
        until_submitted(&store, submitted, order.len()).await;
        held.abort().unwrap();
        let seqs: Vec<u64> = appends
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap().seq.unwrap())
            .collect();
        assert_eq!(seqs, vec![1, 1, 2, 3, 2, 4]);
        let a = store.events("a", 0, None).await.unwrap();
        assert_eq!(texts(&a), vec!["a1", "a2", "a3", "a4"]);
        let b = store.events("b", 0, None).await.unwrap();
        assert_eq!(texts(&b), vec!["b1", "b2"]);
    }

    #[tokio::test]
    async fn an_append_refused_for_its_own_reason_fails_alone_and_its_batch_commits() {
        let dir = TempDir::new();
        let store = store_with_chats(&dir, &["a", "b"]).await;
        let submitted = store.committer.counts().submitted();
        let held = store.inner.db.begin_write().unwrap();
        let appends = tokio::spawn({
            let store = store.clone();
            async move {
                join_all([
                    store.append("a", 5, said("a1")),
                    store.append("nobody", 5, said("x")),
                    store.append("b", 5, said("b1")),
                ])
                .await
            }
        });
        until_submitted(&store, submitted, 3).await;
        held.abort().unwrap();
        let results = appends.await.unwrap();
        assert_eq!(results[0].as_ref().unwrap().seq, Some(1));
        assert!(
            matches!(&results[1], Err(StoreError::ChatNotFound(id)) if id == "nobody"),
            "{:?}",
            results[1]
        );
        assert_eq!(results[2].as_ref().unwrap().seq, Some(1));
        assert_eq!(
            texts(&store.events("a", 0, None).await.unwrap()),
            vec!["a1"]
        );
        assert_eq!(
            texts(&store.events("b", 0, None).await.unwrap()),
            vec!["b1"]
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_appends_and_leaves_nothing_visible() {
        let dir = TempDir::new();
        let store = store_with_chats(&dir, &["a", "b"]).await;
        store.append("a", 5, said("kept")).await.unwrap();
        let submitted = store.committer.counts().submitted();
        let held = store.inner.db.begin_write().unwrap();
        let appends = tokio::spawn({
            let store = store.clone();
            async move {
                join_all([
                    store.append("a", 6, said("lost-a")),
                    store.append("b", 6, said("lost-b1")),
                    store.append("b", 6, said("lost-b2")),
                ])
                .await
            }
        });
        until_submitted(&store, submitted, 3).await;
        store.inner.fail_next_commit.store(true, Ordering::SeqCst);
        held.abort().unwrap();
        for result in appends.await.unwrap() {
            let error = result.unwrap_err();
            assert!(
                matches!(&error, StoreError::Backend(m) if m.contains("injected commit failure") && m.contains("3 appends")),
                "{error}"
            );
        }

        assert_eq!(
            texts(&store.events("a", 0, None).await.unwrap()),
            vec!["kept"]
        );
        assert!(store.events("b", 0, None).await.unwrap().is_empty());
        assert_eq!(store.chat("a").await.unwrap().unwrap().last_seq, 1);
        assert_eq!(store.chat("b").await.unwrap().unwrap().last_seq, 0);
        // The numbers the failed batch would have used are free again.
        assert_eq!(store.append("b", 7, said("b")).await.unwrap().seq, Some(1));
        assert_eq!(store.append("a", 7, said("a")).await.unwrap().seq, Some(2));
    }

    #[tokio::test]
    async fn a_burst_beyond_the_cap_takes_one_transaction_per_1024_appends() {
        let dir = TempDir::new();
        let store = store_with_chats(&dir, &["a"]).await;
        let before = store.committer.counts().batches();
        let n = super::MAX_BATCH + 10;
        let submitted = store.committer.counts().submitted();
        let held = store.inner.db.begin_write().unwrap();
        let appends = tokio::spawn({
            let store = store.clone();
            async move { join_all((0..n).map(|i| store.append("a", 5, said(&i.to_string())))).await }
        });
        until_submitted(&store, submitted, n).await;
        held.abort().unwrap();
        for (i, result) in appends.await.unwrap().into_iter().enumerate() {
            assert_eq!(result.unwrap().seq, Some(i as u64 + 1));
        }
        assert_eq!(store.committer.counts().batches() - before, 2);
    }

    #[tokio::test]
    async fn a_dropped_store_finishes_its_queue_and_releases_the_file() {
        let dir = TempDir::new();
        let store = store_with_chats(&dir, &["a"]).await;
        store.append("a", 5, said("one")).await.unwrap();
        drop(store);
        let again = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            texts(&again.events("a", 0, None).await.unwrap()),
            vec!["one"]
        );
    }
}
