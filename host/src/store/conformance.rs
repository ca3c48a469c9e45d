//! What every [`ChatStore`] must do, written once over `&dyn ChatStore` so
//! each implementation runs the same suite: the embedded store below, and
//! any later store from its own test module (`super::conformance::...`).
//!
//! Each suite function expects a fresh, empty store.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{ChatFilter, ChatRecord, ChatStatus, ChatStore, StoreError};
use crate::event::{Envelope, ErrorCode, Event, ToolCallRecord, UiOutcome};

/// How many tasks append at once in the concurrency test.
const CONCURRENT_APPENDS: u64 = 50;

fn chat(id: &str, app: &str, user: &str, created_at: u64) -> ChatRecord {
    ChatRecord::new(
        id.to_owned(),
        app.to_owned(),
        user.to_owned(),
        "travel".to_owned(),
        "1.2.0".to_owned(),
        7,
        created_at,
    )
}

fn user_message(text: &str) -> Event {
    Event::UserMessage {
        text: text.to_owned(),
    }
}

fn set_context(key: &str, value: Value) -> Event {
    Event::ContextChanged {
        key: key.to_owned(),
        value: Some(value),
        by: "tool:test".to_owned(),
    }
}

fn remove_context(key: &str) -> Event {
    Event::ContextChanged {
        key: key.to_owned(),
        value: None,
        by: "agent:planner".to_owned(),
    }
}

fn usage(prompt_tokens: u64, completion_tokens: u64) -> Event {
    Event::Usage {
        agent: "planner".to_owned(),
        model: "test-model".to_owned(),
        prompt_tokens,
        completion_tokens,
    }
}

fn context_of(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

fn ids(chats: &[ChatRecord]) -> Vec<&str> {
    chats.iter().map(|c| c.chat_id.as_str()).collect()
}

fn seqs(events: &[Envelope]) -> Vec<u64> {
    events.iter().filter_map(|e| e.seq).collect()
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, chat_id: &str) {
    match result {
        Err(StoreError::ChatNotFound(id)) => assert_eq!(id, chat_id),
        other => panic!("expected ChatNotFound({chat_id}), got {other:?}"),
    }
}

pub(super) async fn creates_a_chat_and_reads_it_back(store: &dyn ChatStore) {
    let record = chat("c1", "app", "alice", 1_000);
    store.create_chat(&record).await.unwrap();
    assert_eq!(store.chat("c1").await.unwrap(), Some(record));
}

pub(super) async fn rejects_a_chat_whose_id_is_taken(store: &dyn ChatStore) {
    let first = chat("c1", "app", "alice", 1_000);
    store.create_chat(&first).await.unwrap();
    let err = store
        .create_chat(&chat("c1", "other-app", "bob", 2_000))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ChatExists(id) if id == "c1"),
        "{err:?}"
    );
    assert_eq!(store.chat("c1").await.unwrap(), Some(first));
}

pub(super) async fn reads_no_chat_for_an_unknown_id(store: &dyn ChatStore) {
    assert_eq!(store.chat("missing").await.unwrap(), None);
}

pub(super) async fn lists_chats_newest_first_with_ties_by_id(store: &dyn ChatStore) {
    for (id, created_at) in [("old", 10), ("tie-b", 20), ("new", 30), ("tie-a", 20)] {
        store
            .create_chat(&chat(id, "app", "alice", created_at))
            .await
            .unwrap();
    }
    let chats = store.chats(&ChatFilter::default()).await.unwrap();
    assert_eq!(ids(&chats), ["new", "tie-a", "tie-b", "old"]);
}

pub(super) async fn filters_chats_by_app_user_and_status(store: &dyn ChatStore) {
    store
        .create_chat(&chat("a1", "app-a", "alice", 1))
        .await
        .unwrap();
    store
        .create_chat(&chat("a2", "app-a", "bob", 2))
        .await
        .unwrap();
    store
        .create_chat(&chat("b1", "app-b", "alice", 3))
        .await
        .unwrap();
    store
        .set_status("a2", ChatStatus::Completed, None)
        .await
        .unwrap();

    let list = |app: Option<&str>, user: Option<&str>, status: Option<ChatStatus>| ChatFilter {
        app_id: app.map(str::to_owned),
        user_id: user.map(str::to_owned),
        status,
    };
    let cases = [
        (list(Some("app-a"), None, None), vec!["a2", "a1"]),
        (list(None, Some("alice"), None), vec!["b1", "a1"]),
        (list(None, None, Some(ChatStatus::Completed)), vec!["a2"]),
        (
            list(None, None, Some(ChatStatus::InProgress)),
            vec!["b1", "a1"],
        ),
        (list(Some("app-a"), Some("alice"), None), vec!["a1"]),
        (list(Some("app-b"), Some("bob"), None), vec![]),
        (list(Some("app-c"), None, None), vec![]),
    ];
    for (filter, expected) in cases {
        let chats = store.chats(&filter).await.unwrap();
        assert_eq!(ids(&chats), expected, "{filter:?}");
    }
}

pub(super) async fn numbers_appended_events_from_one_in_order(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 1_000))
        .await
        .unwrap();
    let mut appended = Vec::new();
    for (ts, text) in [(1_001, "one"), (1_002, "two"), (1_003, "three")] {
        appended.push(store.append("c1", ts, user_message(text)).await.unwrap());
    }
    assert_eq!(seqs(&appended), [1, 2, 3]);
    assert_eq!(appended[2].chat_id, "c1");
    assert_eq!(appended[2].ts, 1_003);
    assert_eq!(appended[2].event, user_message("three"));
    assert_eq!(store.events("c1", 0, None).await.unwrap(), appended);

    let record = store.chat("c1").await.unwrap().unwrap();
    assert_eq!(record.last_seq, 3);
    assert_eq!(record.updated_at, 1_003);
    assert_eq!(record.created_at, 1_000);
}

pub(super) async fn appends_many_events_in_order_and_stops_at_the_first_refused(
    store: &dyn ChatStore,
) {
    store
        .create_chat(&chat("c1", "app", "alice", 1_000))
        .await
        .unwrap();
    store
        .append("c1", 1_001, user_message("first"))
        .await
        .unwrap();
    let appended = store
        .append_many(
            "c1",
            vec![
                (1_002, user_message("two")),
                (1_003, set_context("k", json!(1))),
                (1_004, usage(3, 4)),
            ],
        )
        .await;
    assert!(appended.error.is_none(), "{:?}", appended.error);
    assert_eq!(seqs(&appended.stored), [2, 3, 4]);
    assert_eq!(appended.stored[0].ts, 1_002);
    assert_eq!(appended.stored[2].event, usage(3, 4));
    let record = store.chat("c1").await.unwrap().unwrap();
    assert_eq!((record.last_seq, record.updated_at), (4, 1_004));
    assert_eq!((record.prompt_tokens, record.completion_tokens), (3, 4));
    assert_eq!(store.context("c1").await.unwrap()["k"], json!(1));

    // An event that cannot be stored: what comes before it is, it and what
    // follows are not.
    let delta = Event::TextDelta {
        agent: "planner".to_owned(),
        delta: "Hel".to_owned(),
    };
    let appended = store
        .append_many(
            "c1",
            vec![
                (1_005, user_message("five")),
                (1_006, delta),
                (1_007, user_message("never")),
            ],
        )
        .await;
    assert_eq!(seqs(&appended.stored), [5]);
    assert!(
        matches!(appended.error, Some(StoreError::Ephemeral("text_delta"))),
        "{:?}",
        appended.error
    );
    let texts: Vec<Event> = store
        .events("c1", 4, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(texts, [user_message("five")]);

    let appended = store
        .append_many("nobody", vec![(1, user_message("lost"))])
        .await;
    assert!(appended.stored.is_empty());
    assert!(
        matches!(appended.error, Some(StoreError::ChatNotFound(ref id)) if id == "nobody"),
        "{:?}",
        appended.error
    );
}

pub(super) async fn returns_only_the_events_after_a_sequence_number(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    for text in ["one", "two", "three"] {
        store.append("c1", 1, user_message(text)).await.unwrap();
    }
    let tail = store.events("c1", 1, None).await.unwrap();
    assert_eq!(seqs(&tail), [2, 3]);
    assert_eq!(tail[0].event, user_message("two"));
    assert!(store.events("c1", 3, None).await.unwrap().is_empty());
    assert!(store.events("c1", u64::MAX, None).await.unwrap().is_empty());
}

pub(super) async fn returns_at_most_limit_events(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    for text in ["one", "two", "three", "four"] {
        store.append("c1", 1, user_message(text)).await.unwrap();
    }
    let page = |after, limit| store.events("c1", after, Some(limit));
    assert_eq!(seqs(&page(0, 2).await.unwrap()), [1, 2]);
    assert_eq!(seqs(&page(2, 1).await.unwrap()), [3]);
    assert_eq!(seqs(&page(2, 10).await.unwrap()), [3, 4]);
    assert!(page(0, 0).await.unwrap().is_empty());
}

pub(super) async fn returns_events_exactly_as_appended(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    let events = [
        Event::AgentMessage {
            agent: "planner".to_owned(),
            text: "{\"city\":\"Lisbon\"}".to_owned(),
            tool_calls: vec![ToolCallRecord {
                id: "call-1".to_owned(),
                name: "search".to_owned(),
                arguments: "{\"q\":\"hotels ü\"}".to_owned(),
            }],
            structured: Some(json!({"city": "Lisbon", "nights": [1, 2.5, null]})),
            model: Some("Trip".to_owned()),
        },
        Event::UiResponse {
            request_id: "r1".to_owned(),
            outcome: UiOutcome::Answered {
                answer: json!({"ok": true}),
            },
        },
        Event::Error {
            code: ErrorCode::LlmUnreachable,
            message: "line one\nline two".to_owned(),
        },
    ];
    let mut appended = Vec::new();
    for event in events.iter().cloned() {
        appended.push(store.append("c1", 5, event).await.unwrap());
    }
    let stored = store.events("c1", 0, None).await.unwrap();
    assert_eq!(stored, appended);
    let stored_events: Vec<Event> = stored.into_iter().map(|e| e.event).collect();
    assert_eq!(stored_events, events);
}

pub(super) async fn sets_and_removes_context_in_the_same_write_as_the_event(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    assert!(store.context("c1").await.unwrap().is_empty());

    store
        .append("c1", 1, set_context("city", json!("Lisbon")))
        .await
        .unwrap();
    store
        .append("c1", 2, set_context("plan", json!({"days": [1, 2]})))
        .await
        .unwrap();
    assert_eq!(
        store.context("c1").await.unwrap(),
        context_of(&[("city", json!("Lisbon")), ("plan", json!({"days": [1, 2]}))])
    );

    store
        .append("c1", 3, set_context("city", json!("Porto")))
        .await
        .unwrap();
    store.append("c1", 4, remove_context("plan")).await.unwrap();
    store
        .append("c1", 5, remove_context("never-set"))
        .await
        .unwrap();
    assert_eq!(
        store.context("c1").await.unwrap(),
        context_of(&[("city", json!("Porto"))])
    );

    let log = store.events("c1", 0, None).await.unwrap();
    assert_eq!(seqs(&log), [1, 2, 3, 4, 5]);
    assert_eq!(log[3].event, remove_context("plan"));
}

pub(super) async fn adds_usage_to_the_chat_totals(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    store.append("c1", 1, usage(100, 20)).await.unwrap();
    store.append("c1", 2, user_message("more")).await.unwrap();
    store.append("c1", 3, usage(50, 5)).await.unwrap();
    let record = store.chat("c1").await.unwrap().unwrap();
    assert_eq!((record.prompt_tokens, record.completion_tokens), (150, 25));
    assert_eq!(record.last_seq, 3);
}

pub(super) async fn rejects_ephemeral_text_deltas_and_stores_nothing(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    let delta = Event::TextDelta {
        agent: "planner".to_owned(),
        delta: "Hel".to_owned(),
    };
    let err = store.append("c1", 1, delta).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Ephemeral("text_delta")),
        "{err:?}"
    );

    assert!(store.events("c1", 0, None).await.unwrap().is_empty());
    assert_eq!(store.chat("c1").await.unwrap().unwrap().last_seq, 0);
    let next = store.append("c1", 2, user_message("hi")).await.unwrap();
    assert_eq!(next.seq, Some(1));
}

pub(super) async fn reports_an_unknown_chat_as_not_found(store: &dyn ChatStore) {
    store
        .create_chat(&chat("known", "app", "alice", 0))
        .await
        .unwrap();
    assert_not_found(
        store.append("missing", 1, user_message("hi")).await,
        "missing",
    );
    assert_not_found(store.events("missing", 0, None).await, "missing");
    assert_not_found(store.context("missing").await, "missing");
    assert_not_found(
        store
            .set_status("missing", ChatStatus::Failed, Some("boom".to_owned()))
            .await,
        "missing",
    );
    assert_eq!(store.chat("missing").await.unwrap(), None);
    assert_eq!(
        ids(&store.chats(&ChatFilter::default()).await.unwrap()),
        ["known"]
    );
}

pub(super) async fn keeps_each_chats_events_and_context_apart(store: &dyn ChatStore) {
    // "a" is a prefix of "ab": a store keyed by concatenation would mix them.
    for id in ["a", "ab", "b"] {
        store
            .create_chat(&chat(id, "app", "alice", 0))
            .await
            .unwrap();
    }
    store
        .append("a", 1, set_context("k", json!("of a")))
        .await
        .unwrap();
    store
        .append("ab", 1, set_context("k", json!("of ab")))
        .await
        .unwrap();
    store
        .append("ab", 2, set_context("only-ab", json!(1)))
        .await
        .unwrap();
    store.append("a", 3, usage(1, 1)).await.unwrap();

    let a = store.events("a", 0, None).await.unwrap();
    assert_eq!(seqs(&a), [1, 2]);
    assert!(a.iter().all(|e| e.chat_id == "a"));
    assert_eq!(seqs(&store.events("ab", 0, None).await.unwrap()), [1, 2]);
    assert!(store.events("b", 0, None).await.unwrap().is_empty());

    assert_eq!(
        store.context("a").await.unwrap(),
        context_of(&[("k", json!("of a"))])
    );
    assert_eq!(
        store.context("ab").await.unwrap(),
        context_of(&[("k", json!("of ab")), ("only-ab", json!(1))])
    );
    assert!(store.context("b").await.unwrap().is_empty());
    assert_eq!(store.chat("ab").await.unwrap().unwrap().prompt_tokens, 0);
}

pub(super) async fn persists_the_status_and_the_reason_it_ended(store: &dyn ChatStore) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    store.append("c1", 5, user_message("hi")).await.unwrap();
    store
        .set_status("c1", ChatStatus::Failed, Some("LLM_UNAVAILABLE".to_owned()))
        .await
        .unwrap();
    let record = store.chat("c1").await.unwrap().unwrap();
    assert_eq!(record.status, ChatStatus::Failed);
    assert_eq!(record.ended_reason.as_deref(), Some("LLM_UNAVAILABLE"));
    assert!(record.updated_at >= 5, "updated_at went back");
    assert_eq!(record.last_seq, 1);

    store
        .set_status("c1", ChatStatus::InProgress, None)
        .await
        .unwrap();
    let record = store.chat("c1").await.unwrap().unwrap();
    assert_eq!(record.status, ChatStatus::InProgress);
    assert_eq!(record.ended_reason, None);
}

pub(super) async fn deletes_only_chats_that_ended_before_the_cutoff(store: &dyn ChatStore) {
    for (id, status) in [
        ("done", Some(ChatStatus::Completed)),
        ("broken", Some(ChatStatus::Failed)),
        ("running", None),
    ] {
        store
            .create_chat(&chat(id, "app", "alice", 1))
            .await
            .unwrap();
        store.append(id, 2, user_message("hi")).await.unwrap();
        store
            .append(id, 3, set_context("k", json!(id)))
            .await
            .unwrap();
        if let Some(status) = status {
            store.set_status(id, status, None).await.unwrap();
        }
    }
    assert!(store.delete_ended_before(0).await.unwrap().is_empty());
    let mut deleted = store.delete_ended_before(u64::MAX).await.unwrap();
    deleted.sort();
    assert_eq!(deleted, ["broken", "done"]);
    for gone in ["broken", "done"] {
        assert!(store.chat(gone).await.unwrap().is_none());
        assert_not_found(store.events(gone, 0, None).await, gone);
        assert_not_found(store.context(gone).await, gone);
    }
    assert_eq!(store.events("running", 0, None).await.unwrap().len(), 2);
    assert_eq!(
        store.context("running").await.unwrap(),
        context_of(&[("k", json!("running"))])
    );
    store.ping().await.unwrap();
}

/// Takes an `Arc` because the appends run as separate tokio tasks.
pub(super) async fn numbers_concurrent_appends_without_gaps_or_duplicates(
    store: Arc<dyn ChatStore>,
) {
    store
        .create_chat(&chat("c1", "app", "alice", 0))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..CONCURRENT_APPENDS)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .append("c1", i, user_message(&format!("message {i}")))
                    .await
            })
        })
        .collect();
    let mut returned = BTreeSet::new();
    for task in tasks {
        let envelope = task.await.unwrap().unwrap();
        assert!(
            returned.insert(envelope.seq.unwrap()),
            "duplicate {envelope:?}"
        );
    }
    let expected: BTreeSet<u64> = (1..=CONCURRENT_APPENDS).collect();
    assert_eq!(returned, expected);

    let log = store.events("c1", 0, None).await.unwrap();
    assert_eq!(seqs(&log), expected.into_iter().collect::<Vec<_>>());
    let texts: BTreeSet<_> = log
        .iter()
        .map(|e| match &e.event {
            Event::UserMessage { text } => text.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(texts.len(), log.len(), "an append was lost or doubled");
    let record = store.chat("c1").await.unwrap().unwrap();
    assert_eq!(record.last_seq, CONCURRENT_APPENDS);
}

/// `open` opens the same store each time; the first store is dropped
/// before the second is opened, as a restarting process would.
pub(super) async fn keeps_everything_across_a_restart<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn ChatStore>>,
{
    let before = {
        let store = open().await;
        store
            .create_chat(&chat("c1", "app", "alice", 10))
            .await
            .unwrap();
        store
            .create_chat(&chat("c2", "app", "bob", 20))
            .await
            .unwrap();
        store.append("c1", 11, user_message("hi")).await.unwrap();
        store
            .append("c1", 12, set_context("city", json!("Lisbon")))
            .await
            .unwrap();
        store.append("c1", 13, usage(7, 3)).await.unwrap();
        store
            .set_status("c2", ChatStatus::Completed, Some("terminate".to_owned()))
            .await
            .unwrap();
        (
            store.chats(&ChatFilter::default()).await.unwrap(),
            store.events("c1", 0, None).await.unwrap(),
        )
    };

    let store = open().await;
    assert_eq!(store.chats(&ChatFilter::default()).await.unwrap(), before.0);
    assert_eq!(store.events("c1", 0, None).await.unwrap(), before.1);
    assert_eq!(
        store.context("c1").await.unwrap(),
        context_of(&[("city", json!("Lisbon"))])
    );
    let next = store.append("c1", 14, user_message("again")).await.unwrap();
    assert_eq!(next.seq, Some(4));
}

/// The suite against [`super::EmbeddedStore`], plus what only it does.
mod embedded {
    use super::*;
    use crate::store::EmbeddedStore;

    /// A data directory of its own for one test, removed when dropped
    /// (also when the test fails).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let name = format!(
                "mozaiks-store-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            );
            Self(std::env::temp_dir().join(name))
        }

        fn open(&self) -> EmbeddedStore {
            EmbeddedStore::open(&self.0).unwrap()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    macro_rules! on_a_fresh_store {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let dir = TempDir::new();
                super::$name(&dir.open()).await;
            }
        )*};
    }

    on_a_fresh_store!(
        creates_a_chat_and_reads_it_back,
        rejects_a_chat_whose_id_is_taken,
        reads_no_chat_for_an_unknown_id,
        lists_chats_newest_first_with_ties_by_id,
        filters_chats_by_app_user_and_status,
        numbers_appended_events_from_one_in_order,
        appends_many_events_in_order_and_stops_at_the_first_refused,
        returns_only_the_events_after_a_sequence_number,
        returns_at_most_limit_events,
        returns_events_exactly_as_appended,
        sets_and_removes_context_in_the_same_write_as_the_event,
        adds_usage_to_the_chat_totals,
        rejects_ephemeral_text_deltas_and_stores_nothing,
        reports_an_unknown_chat_as_not_found,
        keeps_each_chats_events_and_context_apart,
        persists_the_status_and_the_reason_it_ended,
        deletes_only_chats_that_ended_before_the_cutoff,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn numbers_concurrent_appends_without_gaps_or_duplicates() {
        let dir = TempDir::new();
        super::numbers_concurrent_appends_without_gaps_or_duplicates(Arc::new(dir.open())).await;
    }

    #[tokio::test]
    async fn keeps_everything_across_a_restart() {
        let dir = TempDir::new();
        super::keeps_everything_across_a_restart(|| {
            std::future::ready(Box::new(dir.open()) as Box<dyn ChatStore>)
        })
        .await;
    }

    #[tokio::test]
    async fn opens_one_file_in_a_data_directory_it_creates() {
        let dir = TempDir::new();
        let nested = dir.0.join("data").join("chats");
        let store = EmbeddedStore::open(&nested).unwrap();
        assert_eq!(store.path(), nested.join("mozaiks.redb"));
        let files: Vec<_> = std::fs::read_dir(&nested)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(files, ["mozaiks.redb"]);
    }

    #[tokio::test]
    async fn refuses_a_data_directory_another_store_has_open() {
        let dir = TempDir::new();
        let first = dir.open();
        let err = EmbeddedStore::open(&dir.0).unwrap_err();
        let StoreError::Backend(message) = &err else {
            panic!("expected a backend error, got {err:?}");
        };
        assert!(message.contains("another mozaiks process"), "{message}");
        assert!(
            message.contains(&first.path().display().to_string()),
            "{message}"
        );

        drop(first);
        dir.open();
    }

    #[tokio::test]
    async fn reports_an_undecodable_record_as_corrupt() {
        let dir = TempDir::new();
        let path = dir.open().path().to_owned();
        {
            // Written behind the store's back, as a damaged file would be.
            let chats: redb::TableDefinition<'_, &str, &str> = redb::TableDefinition::new("chats");
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(chats)
                .unwrap()
                .insert("c1", "{not json")
                .unwrap();
            txn.commit().unwrap();
        }
        let store = dir.open();
        let err = store.chat("c1").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { what, chat_id, .. } if what == "record" && chat_id == "c1"),
            "{err:?}"
        );
        let err = store.chats(&ChatFilter::default()).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
}

/// The suite against [`super::MongoStore`] on the test server (see
/// [`crate::store::mongo::test_server`]), plus what only it does. Each test
/// gets a database of its own, dropped at the end (also when it fails).
mod mongo {
    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt as _;
    use mongodb::bson::{Document, doc};

    use super::*;
    use crate::store::mongo::test_server;
    use crate::store::{MongoConfig, MongoStore};

    /// A fresh database on the test server.
    struct TestDatabase {
        config: MongoConfig,
    }

    impl TestDatabase {
        fn new() -> Self {
            let name = format!("mozaiks_test_{}", uuid::Uuid::new_v4().simple());
            Self {
                config: test_server::config(&name),
            }
        }

        /// A store on it, prepared as the server prepares one.
        async fn open(&self) -> MongoStore {
            let store = MongoStore::connect(&self.config).await.unwrap();
            store.prepare().await.unwrap();
            store
        }

        /// The database itself, to look and write behind the store's back.
        async fn raw(&self) -> mongodb::Database {
            mongodb::Client::with_uri_str(&self.config.uri)
                .await
                .unwrap()
                .database(&self.config.database)
        }

        /// Runs `test`, then drops the database, then fails if it failed.
        async fn run(&self, test: impl Future<Output = ()>) {
            let outcome = AssertUnwindSafe(test).catch_unwind().await;
            self.raw().await.drop().await.unwrap();
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }

    macro_rules! on_a_fresh_database {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let db = TestDatabase::new();
                let store = db.open().await;
                db.run(super::$name(&store)).await;
            }
        )*};
    }

    on_a_fresh_database!(
        creates_a_chat_and_reads_it_back,
        rejects_a_chat_whose_id_is_taken,
        reads_no_chat_for_an_unknown_id,
        lists_chats_newest_first_with_ties_by_id,
        filters_chats_by_app_user_and_status,
        numbers_appended_events_from_one_in_order,
        appends_many_events_in_order_and_stops_at_the_first_refused,
        returns_only_the_events_after_a_sequence_number,
        returns_at_most_limit_events,
        returns_events_exactly_as_appended,
        sets_and_removes_context_in_the_same_write_as_the_event,
        adds_usage_to_the_chat_totals,
        rejects_ephemeral_text_deltas_and_stores_nothing,
        reports_an_unknown_chat_as_not_found,
        keeps_each_chats_events_and_context_apart,
        persists_the_status_and_the_reason_it_ended,
        deletes_only_chats_that_ended_before_the_cutoff,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn numbers_concurrent_appends_without_gaps_or_duplicates() {
        let db = TestDatabase::new();
        let store = db.open().await;
        db.run(super::numbers_concurrent_appends_without_gaps_or_duplicates(Arc::new(store)))
            .await;
    }

    #[tokio::test]
    async fn keeps_everything_across_a_restart() {
        let db = TestDatabase::new();
        db.run(super::keeps_everything_across_a_restart(|| async {
            Box::new(db.open().await) as Box<dyn ChatStore>
        }))
        .await;
    }

    /// An event document as the store writes it.
    fn raw_event(chat_id: &str, seq: u64, event: Event) -> Document {
        let envelope = Envelope {
            seq: Some(seq),
            chat_id: chat_id.to_owned(),
            ts: 100 + seq,
            event,
        };
        let json = serde_json::to_value(&envelope).unwrap();
        doc! {
            "_id": uuid::Uuid::new_v4().to_string(),
            "chat_id": chat_id,
            "seq": i64::try_from(seq).unwrap(),
            "ts": i64::try_from(envelope.ts).unwrap(),
            "type": json["type"].as_str().unwrap(),
            "json": json.to_string(),
        }
    }

    #[tokio::test]
    async fn folds_events_a_crash_left_unfolded_on_the_next_call() {
        let db = TestDatabase::new();
        let store = db.open().await;
        db.run(async {
            store
                .create_chat(&chat("c1", "app", "alice", 0))
                .await
                .unwrap();
            store.append("c1", 1, usage(1, 1)).await.unwrap();
            // Inserted, then the process died before folding them.
            let events = db.raw().await.collection::<Document>("chat_events");
            events
                .insert_one(raw_event("c1", 2, set_context("city", json!(null))))
                .await
                .unwrap();
            events
                .insert_one(raw_event("c1", 3, usage(10, 5)))
                .await
                .unwrap();

            let record = store.chat("c1").await.unwrap().unwrap();
            assert_eq!(record.last_seq, 3);
            assert_eq!(record.updated_at, 103);
            assert_eq!((record.prompt_tokens, record.completion_tokens), (11, 6));
            assert_eq!(
                store.context("c1").await.unwrap(),
                context_of(&[("city", json!(null))])
            );
            // Folding is idempotent: reading again counts nothing twice.
            let again = store.chat("c1").await.unwrap().unwrap();
            assert_eq!(again, record);
            let next = store.append("c1", 200, user_message("hi")).await.unwrap();
            assert_eq!(next.seq, Some(4));
            assert_eq!(
                seqs(&store.events("c1", 0, None).await.unwrap()),
                [1, 2, 3, 4]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn creates_its_indexes_idempotently() {
        let db = TestDatabase::new();
        let store = db.open().await;
        db.run(async {
            store.prepare().await.unwrap();
            db.open().await.prepare().await.unwrap();
            let raw = db.raw().await;
            for (collection, keys) in [
                ("chat_sessions", doc! { "chat_id": 1 }),
                ("chat_events", doc! { "chat_id": 1, "seq": 1 }),
                ("context_store", doc! { "chat_id": 1, "key": 1 }),
            ] {
                let names = raw
                    .collection::<Document>(collection)
                    .list_index_names()
                    .await
                    .unwrap();
                assert!(names.len() >= 2, "{collection}: {names:?} for {keys}");
            }
            // The unique index holds even behind the store's back.
            let events = raw.collection::<Document>("chat_events");
            store
                .create_chat(&chat("c1", "app", "alice", 0))
                .await
                .unwrap();
            store.append("c1", 1, user_message("hi")).await.unwrap();
            let err = events
                .insert_one(raw_event("c1", 1, user_message("again")))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("11000"), "{err}");
        })
        .await;
    }

    #[tokio::test]
    async fn reports_a_server_that_refuses_connections_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = MongoConfig {
            server_selection_timeout: std::time::Duration::from_millis(500),
            ..MongoConfig::new(format!("mongodb://127.0.0.1:{port}/?directConnection=true"))
        };
        let store = MongoStore::connect(&config).await.unwrap();
        let started = std::time::Instant::now();
        let err = store.ping().await.unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let StoreError::Backend(message) = &err else {
            panic!("expected a backend error, got {err:?}");
        };
        assert!(message.starts_with("ping: "), "{message}");
        assert!(message.contains("(refused)"), "{message}");
        assert!(message.contains("MONGO_URI"), "{message}");
        assert!(store.chat("c1").await.is_err(), "reads fail the same way");
    }
}
