//! Group commit on MongoDB: the appends of every chat that arrive while a
//! bulk write is in flight are inserted together by the next one, an
//! ordered `insertMany` with the configured write concern.
//!
//! One task, the batcher, takes the queued appends in arrival order. Per
//! chat it catches up once and numbers the chat's appends consecutively,
//! in the order they arrived; then it inserts every event of the batch in
//! one ordered bulk write, whose inserts stay the commit points of the
//! store (module docs of [`super`]). What the bulk write confirms is folded
//! and answered. What it does not (another writer took a number, the
//! connection failed, a write concern error) goes through the single
//! append path with the same `_id`, one after another in arrival order: an
//! insert that did land is recognised by its `_id`, one that did not takes
//! the next free number. Nothing is lost or doubled, and a chat's events
//! keep their order. An append that fails for a reason of its own (its
//! chat does not exist, or this handle's lease on it was lost) fails
//! alone, through the single path.
//!
//! Fencing (`store::cluster`): the per-chat catch-up is also where an
//! append is checked against the handle's lease token; a chat that fails
//! the check goes the single way, which refuses it. Every event of the
//! bulk write carries the token it was checked with. An event the bulk
//! write stores at `seq` follows only events this catch-up checked or
//! events of the same batch; if another server's `run_moved` took one of
//! the numbers, that insert fails (duplicate key), the ordered write stops
//! there, and the rest go the single way, whose catch-up folds the larger
//! token and refuses them.
//!
//! Each batch's size and time go to `/metrics` with `store="mongo"`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mongodb::bson::Document;
use mongodb::error::{ErrorKind, InsertManyError};
use tokio::sync::{mpsc, oneshot};

use super::MongoStore;
use super::documents::leased_event_document;
use crate::event::{Envelope, Event};
use crate::store::StoreError;
use crate::telemetry::metrics;

/// The most appends one bulk write takes; the rest wait for the next one,
/// which starts at once. Far below the server's own limits (100 000
/// documents, 48 MB per message), so the driver sends it as one command.
pub(super) const MAX_BATCH: usize = 1024;

const OP: &str = "appending an event";

/// One append waiting for its batch.
struct Request {
    chat_id: String,
    ts: u64,
    event: Event,
    reply: oneshot::Sender<Result<Envelope, StoreError>>,
}

/// The queue to the batcher task. The task ends when the last store
/// handle holding this is dropped.
pub(super) struct Batcher {
    queue: mpsc::UnboundedSender<Request>,
    counts: Arc<Counts>,
}

/// Bulk writes and appends this batcher has sent (tests read them).
#[derive(Debug, Default)]
struct Counts {
    bulk_writes: AtomicU64,
    appends: AtomicU64,
}

impl fmt::Debug for Batcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Queues one append and waits for its answer.
    pub(super) async fn append(
        &self,
        chat_id: String,
        ts: u64,
        event: Event,
    ) -> Result<Envelope, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("the MongoDB store's batcher has stopped".to_owned());
        self.queue
            .send(Request {
                chat_id,
                ts,
                event,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Bulk writes sent so far (each with at least one event).
    #[cfg(test)]
    pub(super) fn bulk_writes(&self) -> u64 {
        self.counts.bulk_writes.load(Ordering::Relaxed)
    }

    /// Appends answered so far.
    #[cfg(test)]
    pub(super) fn appends(&self) -> u64 {
        self.counts.appends.load(Ordering::Relaxed)
    }
}

impl MongoStore {
    /// This store with its batcher task started (on the current tokio
    /// runtime). The task holds a handle without a batcher, so it never
    /// keeps itself alive.
    pub(super) fn with_batcher(mut self) -> Self {
        let (queue, requests) = mpsc::unbounded_channel();
        let counts = Arc::new(Counts::default());
        let core = self.clone();
        tokio::spawn(run(core, requests, Arc::clone(&counts)));
        self.batcher = Some(Arc::new(Batcher { queue, counts }));
        self
    }

    /// The batcher's counts, for tests.
    #[cfg(test)]
    pub(super) fn batcher(&self) -> Option<&Batcher> {
        self.batcher.as_deref()
    }
}

async fn run(
    store: MongoStore,
    mut requests: mpsc::UnboundedReceiver<Request>,
    counts: Arc<Counts>,
) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = Instant::now();
        let mut replies = Vec::with_capacity(size);
        let mut appends = Vec::with_capacity(size);
        for request in batch {
            replies.push(request.reply);
            appends.push((request.chat_id, request.ts, request.event));
        }
        let (answers, bulk) = store.commit_batch(appends).await;
        if bulk {
            counts.bulk_writes.fetch_add(1, Ordering::Relaxed);
            metrics().store_commit("mongo", size, started.elapsed());
        }
        counts.appends.fetch_add(size as u64, Ordering::Relaxed);
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A caller that went away no longer needs the answer.
            let _ = reply.send(answer);
        }
    }
}

/// One event of the bulk write.
struct Planned {
    /// Its place in the batch.
    index: usize,
    /// The insert's `_id`.
    id: String,
    envelope: Envelope,
    /// The chat's `applied_seq` before it (its `seq` − 1).
    applied: u64,
    /// The lease token it carries.
    lease: Option<u64>,
}

/// How many documents at the front of an ordered bulk insert are known to
/// be stored after `error`: those before the first failed one; none when
/// the outcome is unknown or a write concern error leaves them unconfirmed.
fn confirmed_prefix(error: &mongodb::error::Error) -> usize {
    match error.kind.as_ref() {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            write_concern_error: None,
            ..
        }) => errors.iter().map(|e| e.index).min().unwrap_or(0),
        _ => 0,
    }
}

impl MongoStore {
    /// Inserts the events of `batch` in one ordered bulk write and answers
    /// each append, in order; the flag says whether a bulk write was sent.
    async fn commit_batch(
        &self,
        batch: Vec<(String, u64, Event)>,
    ) -> (Vec<Result<Envelope, StoreError>>, bool) {
        let size = batch.len();
        let mut answers: Vec<Option<Result<Envelope, StoreError>>> =
            (0..size).map(|_| None).collect();
        if let Err(error) = self.ensure_indexes().await {
            let message = error.to_string();
            let answers = (0..size)
                .map(|_| Err(StoreError::Backend(message.clone())))
                .collect();
            return (answers, false);
        }
        // Per chat: the number its last append took and the lease token its
        // appends carry; absent when the chat could not be caught up or
        // failed the fence check, whose appends then go the single way.
        let mut next: HashMap<String, Option<(u64, Option<u64>)>> = HashMap::new();
        let mut planned: Vec<Planned> = Vec::with_capacity(size);
        let mut alone: Vec<(usize, String, u64, Event)> = Vec::new();
        let mut documents: Vec<Document> = Vec::with_capacity(size);
        for (index, (chat_id, ts, event)) in batch.into_iter().enumerate() {
            let applied = match next.get(&chat_id) {
                Some(applied) => *applied,
                None => {
                    let applied = match self.catch_up(OP, &chat_id).await {
                        Ok(stored) => self
                            .fenced(OP, &chat_id, &stored)
                            .await
                            .ok()
                            .map(|lease| (stored.applied_seq, lease)),
                        Err(_) => None,
                    };
                    next.insert(chat_id.clone(), applied);
                    applied
                }
            };
            let Some((applied, seq, lease)) =
                applied.and_then(|(a, lease)| Some((a, a.checked_add(1)?, lease)))
            else {
                alone.push((index, chat_id, ts, event));
                continue;
            };
            let id = uuid::Uuid::new_v4().to_string();
            let envelope = Envelope {
                seq: Some(seq),
                chat_id,
                ts,
                event,
            };
            match leased_event_document(OP, &id, &envelope, lease) {
                Ok(document) => documents.push(document),
                Err(error) => {
                    answers[index] = Some(Err(error));
                    continue;
                }
            }
            next.insert(envelope.chat_id.clone(), Some((seq, lease)));
            planned.push(Planned {
                index,
                id,
                envelope,
                applied,
                lease,
            });
        }

        let bulk = !documents.is_empty();
        let confirmed = if bulk {
            match self.events.insert_many(documents).ordered(true).await {
                Ok(_) => planned.len(),
                Err(error) => {
                    tracing::debug!(%error, "bulk insert of a batch of events stopped; the rest go one by one");
                    confirmed_prefix(&error)
                }
            }
        } else {
            0
        };
        let unconfirmed = planned.split_off(confirmed.min(planned.len()));
        for event in planned {
            // Nobody else can fold past `seq` − 1 without this event, so a
            // `false` means another caller folded it.
            if let Err(error) = self
                .fold(OP, event.applied, &event.envelope, event.lease)
                .await
            {
                tracing::warn!(%error, chat_id = event.envelope.chat_id, seq = event.envelope.seq, "event stored; its fold waits for the next call");
            }
            answers[event.index] = Some(Ok(event.envelope));
        }
        let mut rest: Vec<(usize, String, u64, Event, String)> =
            unconfirmed
                .into_iter()
                .map(|p| {
                    (
                        p.index,
                        p.envelope.chat_id,
                        p.envelope.ts,
                        p.envelope.event,
                        p.id,
                    )
                })
                .chain(alone.into_iter().map(|(i, chat, ts, event)| {
                    (i, chat, ts, event, uuid::Uuid::new_v4().to_string())
                }))
                .collect();
        rest.sort_by_key(|r| r.0);
        for (index, chat_id, ts, event, id) in rest {
            answers[index] = Some(self.append_one(&chat_id, ts, event, id).await);
        }
        let answers = answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| Err(StoreError::Backend(format!("{OP}: no answer"))))
            })
            .collect();
        (answers, bulk)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use futures_util::future::join_all;

    use super::super::test_server;
    use crate::event::Event;
    use crate::store::{ChatRecord, ChatStore, MongoStore, StoreError};

    async fn fresh_store() -> MongoStore {
        let name = format!("mozaiks_test_{}", uuid::Uuid::new_v4().simple());
        let store = MongoStore::connect(&test_server::config(&name))
            .await
            .unwrap();
        store.prepare().await.unwrap();
        store
    }

    pub(in crate::store::mongo) fn chat(id: &str) -> ChatRecord {
        ChatRecord::new(
            id.into(),
            "app".into(),
            "u".into(),
            "W".into(),
            "1".into(),
            7,
            1,
        )
    }

    pub(in crate::store::mongo) fn said(text: &str) -> Event {
        Event::UserMessage { text: text.into() }
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
    async fn concurrent_chats_share_bulk_writes_and_keep_each_chats_order() {
        let store = fresh_store().await;
        let ids: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
        for id in &ids {
            store.create_chat(&chat(id)).await.unwrap();
        }
        const PER_CHAT: usize = 6;
        let batcher = store.batcher().unwrap();
        let (writes, appends) = (batcher.bulk_writes(), batcher.appends());
        let runs = ids.iter().map(|id| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                for n in 0..PER_CHAT {
                    let stored = store
                        .append(&id, 5, said(&format!("{id}-{n}")))
                        .await
                        .unwrap();
                    assert_eq!(stored.seq, Some(n as u64 + 1));
                }
            })
        });
        for run in join_all(runs).await {
            run.unwrap();
        }
        let batcher = store.batcher().unwrap();
        let total = (ids.len() * PER_CHAT) as u64;
        assert_eq!(batcher.appends() - appends, total);
        let bulk = batcher.bulk_writes() - writes;
        assert!(bulk < total, "{total} appends took {bulk} bulk writes");
        for id in &ids {
            let events = store.events(id, 0, None).await.unwrap();
            let expected: Vec<String> = (0..PER_CHAT).map(|n| format!("{id}-{n}")).collect();
            assert_eq!(texts(&events), expected);
            assert_eq!(
                store.chat(id).await.unwrap().unwrap().last_seq,
                PER_CHAT as u64
            );
        }
        store.db.drop().await.unwrap();
    }

    #[tokio::test]
    async fn in_one_batch_an_append_to_a_missing_chat_fails_alone_and_order_holds() {
        let store = fresh_store().await;
        store.create_chat(&chat("a")).await.unwrap();
        store.create_chat(&chat("b")).await.unwrap();
        let results = join_all([
            store.append("a", 5, said("a1")),
            store.append("nobody", 5, said("x")),
            store.append("b", 5, said("b1")),
            store.append("a", 5, said("a2")),
        ])
        .await;
        let seqs: Vec<Option<u64>> = results
            .iter()
            .map(|r| r.as_ref().ok().and_then(|e| e.seq))
            .collect();
        assert_eq!(seqs, vec![Some(1), None, Some(1), Some(2)]);
        assert!(matches!(&results[1], Err(StoreError::ChatNotFound(id)) if id == "nobody"));
        assert_eq!(
            texts(&store.events("a", 0, None).await.unwrap()),
            vec!["a1", "a2"]
        );
        assert_eq!(
            texts(&store.events("b", 0, None).await.unwrap()),
            vec!["b1"]
        );
        store.db.drop().await.unwrap();
    }

    #[tokio::test]
    async fn two_servers_appending_to_one_chat_leave_no_gap_no_double_and_each_keeps_its_order() {
        let store = fresh_store().await;
        // A second connection: another server process with its own batcher.
        let other = MongoStore::connect(&test_server::config(store.database()))
            .await
            .unwrap();
        store.create_chat(&chat("c")).await.unwrap();
        const EACH: usize = 15;
        let write = |store: MongoStore, name: &'static str| {
            tokio::spawn(async move {
                for n in 0..EACH {
                    store
                        .append("c", 5, said(&format!("{name}-{n}")))
                        .await
                        .unwrap();
                }
            })
        };
        let (one, two) = tokio::join!(write(store.clone(), "one"), write(other, "two"));
        one.unwrap();
        two.unwrap();
        let events = store.events("c", 0, None).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq.unwrap()).collect();
        assert_eq!(seqs, (1..=2 * EACH as u64).collect::<Vec<_>>());
        for name in ["one", "two"] {
            let mine: Vec<String> = texts(&events)
                .into_iter()
                .filter(|t| t.starts_with(name))
                .collect();
            let expected: Vec<String> = (0..EACH).map(|n| format!("{name}-{n}")).collect();
            assert_eq!(mine, expected);
        }
        assert_eq!(
            store.chat("c").await.unwrap().unwrap().last_seq,
            2 * EACH as u64
        );
        store.db.drop().await.unwrap();
    }
}
