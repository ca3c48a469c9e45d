//! Tests of the cluster side of the MongoDB store ([`super::cluster`] and
//! the fencing of appends, [`super::fence`]) against the test server: two
//! handles on one database stand for two servers.

use std::collections::HashSet;
use std::time::Duration;

use mongodb::bson::{Document, doc};
use serde_json::json;

use super::group_commit::tests::{chat, said};
use super::tests::run;
use super::{MongoStore, test_server};
use crate::event::{Envelope, Event};
use crate::store::cluster::{Acquired, ClusterStore, InboxItem, ServerInfo};
use crate::store::{ChatStatus, ChatStore, StoreError};

const TTL: u64 = 10_000;

/// Two handles ("servers" `a` and `b`) on a database of their own.
async fn two_servers() -> (MongoStore, MongoStore) {
    let name = format!("mozaiks_test_{}", uuid::Uuid::new_v4().simple());
    let a = MongoStore::connect(&test_server::config(&name))
        .await
        .unwrap();
    a.prepare().await.unwrap();
    let b = MongoStore::connect(&test_server::config(&name))
        .await
        .unwrap();
    (a, b)
}

fn moved(from: &str, to: &str) -> Event {
    Event::RunMoved {
        from: from.into(),
        to: to.into(),
    }
}

/// The same handle without its batcher: appends go the single way.
fn single(store: &MongoStore) -> MongoStore {
    let mut single = store.clone();
    single.batcher = None;
    single
}

fn held(token: u64, previous: Option<&str>) -> Acquired {
    Acquired::Held {
        token,
        previous: previous.map(str::to_owned),
    }
}

fn lost_to(error: &StoreError, chat: &str, by: Option<&str>) -> bool {
    matches!(error, StoreError::LeaseLost { chat_id, owner }
        if chat_id == chat && owner.as_deref() == by)
}

#[tokio::test]
async fn a_lease_is_held_elsewhere_until_it_expires_then_taken_over_with_a_larger_token() {
    let (a, b) = two_servers().await;
    run(&a, async {
        assert_eq!(
            a.acquire("c", "a", 1_000, TTL).await.unwrap(),
            held(1, None)
        );
        // Acquiring one's own lease again renews it, with a new token.
        assert_eq!(
            a.acquire("c", "a", 2_000, TTL).await.unwrap(),
            held(2, None)
        );
        assert_eq!(
            b.acquire("c", "b", 5_000, TTL).await.unwrap(),
            Acquired::Elsewhere {
                owner: "a".into(),
                expires_at: 12_000
            }
        );
        assert_eq!(
            b.acquire("c", "b", 12_000, TTL).await.unwrap(),
            held(3, Some("a"))
        );
        let lease = a.lease("c").await.unwrap().unwrap();
        assert_eq!(
            (lease.owner.as_deref(), lease.token, lease.expires_at),
            (Some("b"), 3, 22_000)
        );
        assert!(a.lease("nothing").await.unwrap().is_none());
        let held_now = a.held_leases(13_000).await.unwrap();
        assert_eq!(held_now, vec![lease.clone()]);
        assert!(a.held_leases(22_000).await.unwrap().is_empty());
        // `a` acquiring back after `b`'s expiry names `b`.
        assert_eq!(
            a.acquire("c", "a", 30_000, TTL).await.unwrap(),
            held(4, Some("b"))
        );
    })
    .await;
}

#[tokio::test]
async fn released_leases_are_orphaned_only_with_needs_run_and_expired_ones_only_while_running() {
    let (a, b) = two_servers().await;
    run(&a, async {
        for id in ["mid-turn", "waiting", "lapsed", "ended", "deleted"] {
            a.create_chat(&chat(id)).await.unwrap();
            a.acquire(id, "a", 1_000, TTL).await.unwrap();
        }
        a.set_status("ended", ChatStatus::Completed, None)
            .await
            .unwrap();
        a.chats.delete_one(doc! { "_id": "deleted" }).await.unwrap();
        a.release("mid-turn", "a", true).await.unwrap();
        a.release("waiting", "a", false).await.unwrap();
        // Releasing a lease one does not hold changes nothing.
        b.release("lapsed", "b", false).await.unwrap();

        // Before expiry only the one released mid-turn.
        let ids = |leases: Vec<crate::store::cluster::Lease>| {
            leases.into_iter().map(|l| l.chat_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(b.orphaned(2_000, 10).await.unwrap()), vec!["mid-turn"]);
        // After: the lapsed one too; not the ended or deleted chats, and
        // those are settled (released) so they are not read again.
        let mut orphans = ids(b.orphaned(11_000, 10).await.unwrap());
        orphans.sort();
        assert_eq!(orphans, vec!["lapsed", "mid-turn"]);
        for id in ["ended", "deleted"] {
            let lease = a.lease(id).await.unwrap().unwrap();
            assert_eq!(lease.owner, None, "{id}");
        }
        assert_eq!(b.orphaned(11_000, 1).await.unwrap().len(), 1);

        // Taking one over clears its orphan mark and names the last owner.
        assert_eq!(
            b.acquire("mid-turn", "b", 11_000, TTL).await.unwrap(),
            held(2, Some("a"))
        );
        assert_eq!(ids(b.orphaned(11_000, 10).await.unwrap()), vec!["lapsed"]);
        // A released lease is free at once.
        assert_eq!(
            b.acquire("waiting", "b", 2_000, TTL).await.unwrap(),
            held(2, Some("a"))
        );
    })
    .await;
}

#[tokio::test]
async fn renew_extends_the_leases_still_held_and_reports_the_ones_taken_over() {
    let (a, b) = two_servers().await;
    run(&a, async {
        for id in ["kept", "taken", "lapsed"] {
            a.create_chat(&chat(id)).await.unwrap();
            a.acquire(id, "a", 1_000, TTL).await.unwrap();
        }
        b.acquire("taken", "b", 11_000, TTL).await.unwrap();
        let chats = ["kept", "taken", "lapsed"].map(str::to_owned);
        // Expired but not taken over: still `a`'s to renew.
        let lost = a.renew("a", &chats, 12_000, TTL).await.unwrap();
        assert_eq!(lost, vec!["taken"]);
        assert_eq!(a.lease("kept").await.unwrap().unwrap().expires_at, 22_000);
        assert_eq!(a.lease("lapsed").await.unwrap().unwrap().expires_at, 22_000);
        assert_eq!(a.lease("taken").await.unwrap().unwrap().expires_at, 21_000);
        // Its token forgotten, `a` appends to "taken" as before joining
        // (it never joined), while it still fences the chats it holds.
        assert_eq!(a.fence.guard("taken"), super::fence::Guard::Open);
        assert_eq!(a.fence.guard("kept"), super::fence::Guard::Token(1));
        assert!(a.renew("a", &[], 12_000, TTL).await.unwrap().is_empty());
    })
    .await;
}

/// `a` holds the chat and appends; its lease lapses, `b` takes the chat
/// over and appends `run_moved`; `a`'s next append is refused.
async fn an_old_owner_is_fenced_after_run_moved(a: MongoStore, b: MongoStore) {
    a.create_chat(&chat("c")).await.unwrap();
    a.acquire("c", "a", 1_000, TTL).await.unwrap();
    a.append("c", 5, said("a-1")).await.unwrap();
    assert_eq!(
        b.acquire("c", "b", 11_000, TTL).await.unwrap(),
        held(2, Some("a"))
    );
    b.append("c", 6, moved("a", "b")).await.unwrap();
    let error = a.append("c", 7, said("a-2")).await.unwrap_err();
    assert!(lost_to(&error, "c", Some("b")), "{error:?}");
    b.append("c", 8, said("b-1")).await.unwrap();
    let log = b.events("c", 0, None).await.unwrap();
    let types: Vec<u64> = log.iter().map(|e| e.seq.unwrap()).collect();
    assert_eq!(types, vec![1, 2, 3]);
    assert!(matches!(log[1].event, Event::RunMoved { .. }));
}

/// The chat's lasting state is fenced like its log: once another server
/// took the chat over, the old owner cannot end it (even before the new
/// owner's `run_moved` lands), and the new owner can.
#[tokio::test]
async fn an_old_owner_cannot_set_the_status_of_a_chat_taken_over() {
    let (a, b) = two_servers().await;
    let test = async {
        a.create_chat(&chat("c")).await.unwrap();
        a.acquire("c", "a", 1_000, TTL).await.unwrap();
        a.set_status("c", ChatStatus::InProgress, None)
            .await
            .unwrap();
        b.acquire("c", "b", 11_000, TTL).await.unwrap();
        let error = a
            .set_status("c", ChatStatus::Completed, Some("late".into()))
            .await
            .unwrap_err();
        assert!(lost_to(&error, "c", Some("b")), "{error:?}");
        assert_eq!(
            b.chat("c").await.unwrap().unwrap().status,
            ChatStatus::InProgress
        );
        b.set_status("c", ChatStatus::Completed, Some("done".into()))
            .await
            .unwrap();
        assert_eq!(
            b.chat("c").await.unwrap().unwrap().status,
            ChatStatus::Completed
        );
    };
    run(&a, test).await;
}

#[tokio::test]
async fn an_old_owner_is_fenced_after_run_moved_through_the_single_path() {
    let (a, b) = two_servers().await;
    run(
        &a,
        an_old_owner_is_fenced_after_run_moved(single(&a), single(&b)),
    )
    .await;
}

#[tokio::test]
async fn an_old_owner_is_fenced_after_run_moved_through_group_commit() {
    let (a, b) = two_servers().await;
    assert!(a.batcher().is_some() && b.batcher().is_some());
    run(
        &a,
        an_old_owner_is_fenced_after_run_moved(a.clone(), b.clone()),
    )
    .await;
}

/// `a` appends in a loop while `b` takes the chat over and appends in a
/// loop too: `a` is refused from some point on, none of its events
/// follows `b`'s `run_moved`, and the log has no gap.
async fn concurrent_takeover(a: MongoStore, b: MongoStore) {
    a.create_chat(&chat("c")).await.unwrap();
    a.acquire("c", "a", 1_000, TTL).await.unwrap();
    a.append("c", 5, said("a-first")).await.unwrap();
    let old = {
        let a = a.clone();
        tokio::spawn(async move {
            for n in 0..100_000 {
                if let Err(error) = a.append("c", 5, said(&format!("a-{n}"))).await {
                    return error;
                }
            }
            panic!("the old owner was never refused");
        })
    };
    let new = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.acquire("c", "b", 11_000, TTL).await.unwrap();
        b.append("c", 6, moved("a", "b")).await.unwrap();
        for n in 0..30 {
            b.append("c", 6, said(&format!("b-{n}"))).await.unwrap();
        }
    });
    new.await.unwrap();
    let error = old.await.unwrap();
    assert!(lost_to(&error, "c", Some("b")), "{error:?}");
    let log = a.events("c", 0, None).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|e| e.seq.unwrap()).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>());
    let at = log
        .iter()
        .position(|e| matches!(e.event, Event::RunMoved { .. }))
        .unwrap();
    let text = |e: &Envelope| match &e.event {
        Event::UserMessage { text } => text.clone(),
        other => panic!("unexpected {other:?}"),
    };
    assert!(at >= 1, "a appended before the takeover");
    assert!(log[..at].iter().all(|e| text(e).starts_with("a-")));
    let after: Vec<String> = log[at + 1..].iter().map(text).collect();
    assert_eq!(after, (0..30).map(|n| format!("b-{n}")).collect::<Vec<_>>());
    // The chat's folded token is `b`'s.
    assert_eq!(a.catch_up("test", "c").await.unwrap().lease, 2);
}

#[tokio::test]
async fn concurrent_appends_across_a_takeover_through_the_single_path() {
    let (a, b) = two_servers().await;
    run(&a, concurrent_takeover(single(&a), single(&b))).await;
}

#[tokio::test]
async fn concurrent_appends_across_a_takeover_through_group_commit() {
    let (a, b) = two_servers().await;
    run(&a, concurrent_takeover(a.clone(), b.clone())).await;
}

#[tokio::test]
async fn a_joined_handle_appends_only_to_the_chats_it_holds() {
    let (a, b) = two_servers().await;
    run(&a, async {
        a.create_chat(&chat("c")).await.unwrap();
        a.join("a");
        let error = a.append("c", 5, said("x")).await.unwrap_err();
        assert!(lost_to(&error, "c", None), "{error:?}");
        let error = single(&a).append("c", 5, said("x")).await.unwrap_err();
        assert!(lost_to(&error, "c", None), "{error:?}");
        a.acquire("c", "a", 1_000, TTL).await.unwrap();
        a.append("c", 5, said("held")).await.unwrap();
        a.release("c", "a", false).await.unwrap();
        let error = a.append("c", 5, said("x")).await.unwrap_err();
        assert!(lost_to(&error, "c", None), "{error:?}");
        // Another handle, not joined and holding no token, is not fenced.
        b.append("c", 5, said("b")).await.unwrap();
        assert_eq!(a.events("c", 0, None).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn events_carry_the_token_only_under_a_lease() {
    let (a, _) = two_servers().await;
    run(&a, async {
        a.create_chat(&chat("c")).await.unwrap();
        a.append("c", 5, said("plain")).await.unwrap();
        a.acquire("c", "a", 1_000, TTL).await.unwrap();
        a.acquire("c", "a", 1_000, TTL).await.unwrap();
        a.append("c", 6, said("leased")).await.unwrap();
        let events: Vec<Document> = a
            .find_all("test", &a.events, doc! {}, Some(doc! { "seq": 1 }), None)
            .await
            .unwrap();
        assert!(!events[0].contains_key("lease"));
        assert_eq!(super::documents::integer(events[1].get("lease")), Some(2));
        let record = a
            .chats
            .find_one(doc! { "_id": "c" })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(super::documents::integer(record.get("lease")), Some(2));
    })
    .await;
}

#[tokio::test]
async fn every_queued_input_is_taken_exactly_once_by_two_servers() {
    let (a, b) = two_servers().await;
    run(&a, async {
        a.prepare_cluster().await.unwrap();
        const ITEMS: u64 = 60;
        for n in 0..ITEMS {
            let item = InboxItem {
                id: format!("item-{n:03}"),
                chat_id: format!("c{}", n % 2),
                input: json!({ "text": n }),
                sent_at: n,
            };
            a.send_input(&item).await.unwrap();
            // A resend (lost reply) is harmless.
            if n % 10 == 0 {
                b.send_input(&item).await.unwrap();
            }
        }
        let chats = ["c0".to_owned(), "c1".to_owned()];
        let take = |store: MongoStore| {
            let chats = chats.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                for _ in 0..4 {
                    taken.extend(store.take_inputs(&chats).await.unwrap());
                }
                taken
            })
        };
        let (one, two) = tokio::join!(take(a.clone()), take(b.clone()));
        let (one, two) = (one.unwrap(), two.unwrap());
        for taken in [&one, &two] {
            let times: Vec<u64> = taken.iter().map(|i| i.sent_at).collect();
            assert!(times.is_sorted(), "oldest first: {times:?}");
        }
        let mut ids: Vec<String> = one.iter().chain(&two).map(|i| i.id.clone()).collect();
        ids.sort();
        let expected: Vec<String> = (0..ITEMS).map(|n| format!("item-{n:03}")).collect();
        assert_eq!(ids, expected);
        let first = one.iter().chain(&two).find(|i| i.id == "item-007").unwrap();
        assert_eq!(
            (first.chat_id.as_str(), &first.input),
            ("c1", &json!({ "text": 7 }))
        );
        assert!(a.take_inputs(&chats).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn events_after_reads_several_chats_from_their_positions() {
    let (a, b) = two_servers().await;
    run(&a, async {
        for id in ["x", "y", "z"] {
            a.create_chat(&chat(id)).await.unwrap();
            for n in 1..=4 {
                a.append(id, n, said(&format!("{id}{n}"))).await.unwrap();
            }
        }
        let positions = [
            ("x".to_owned(), 2),
            ("y".to_owned(), 0),
            ("z".to_owned(), 4),
        ];
        let events = b.events_after(&positions, 100).await.unwrap();
        let seen: Vec<(String, u64)> = events
            .iter()
            .map(|e| (e.chat_id.clone(), e.seq.unwrap()))
            .collect();
        let expected: Vec<(String, u64)> =
            [("x", 3), ("x", 4), ("y", 1), ("y", 2), ("y", 3), ("y", 4)]
                .into_iter()
                .map(|(c, s)| (c.to_owned(), s))
                .collect();
        assert_eq!(seen, expected);
        assert_eq!(events[0], a.events("x", 2, Some(1)).await.unwrap()[0]);
        assert_eq!(b.events_after(&positions, 3).await.unwrap().len(), 3);
        assert!(b.events_after(&[], 10).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn the_registry_keeps_each_servers_last_heartbeat() {
    let (a, b) = two_servers().await;
    run(&a, async {
        let server = |id: &str, last_seen: u64| ServerInfo {
            id: id.into(),
            incarnation: "i1".into(),
            address: "127.0.0.1:8000".into(),
            version: "0.1.0".into(),
            cluster: true,
            started_at: 1,
            last_seen,
            plugins: [("acme.search".to_owned(), "abc".to_owned())].into(),
            workflows: [("travel".to_owned(), "1".to_owned())].into(),
        };
        a.heartbeat(&server("a", 5)).await.unwrap();
        b.heartbeat(&server("b", 6)).await.unwrap();
        a.heartbeat(&server("a", 7)).await.unwrap();
        assert_eq!(
            b.servers().await.unwrap(),
            vec![server("a", 7), server("b", 6)]
        );
        a.leave("a").await.unwrap();
        assert_eq!(b.servers().await.unwrap(), vec![server("b", 6)]);
    })
    .await;
}

#[tokio::test]
async fn the_database_clock_is_near_the_local_one() {
    let (a, _) = two_servers().await;
    run(&a, async {
        let database = a.database_time().await.unwrap();
        let local = super::documents::now_ms();
        assert!(database.abs_diff(local) < 5_000, "{database} vs {local}");
    })
    .await;
}

#[tokio::test]
async fn missing_indexes_are_named_until_prepare_cluster_creates_them() {
    let (a, _) = two_servers().await;
    run(&a, async {
        assert_eq!(
            a.missing_indexes().await.unwrap(),
            vec![
                "chat_leases.expires_at_1",
                "chat_leases.owner_1",
                "chat_inbox.chat_id_1_sent_at_1"
            ]
        );
        a.prepare_cluster().await.unwrap();
        a.prepare_cluster().await.unwrap();
        assert!(a.missing_indexes().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn retention_removes_the_leases_and_queued_inputs_of_deleted_chats() {
    let (a, _) = two_servers().await;
    run(&a, async {
        for id in ["old", "live"] {
            a.create_chat(&chat(id)).await.unwrap();
            a.acquire(id, "a", 1_000, TTL).await.unwrap();
            a.send_input(&InboxItem {
                id: format!("in-{id}"),
                chat_id: id.into(),
                input: json!(null),
                sent_at: 1,
            })
            .await
            .unwrap();
        }
        a.set_status("old", ChatStatus::Completed, None)
            .await
            .unwrap();
        assert_eq!(a.delete_ended_before(u64::MAX).await.unwrap(), vec!["old"]);
        assert!(a.lease("old").await.unwrap().is_none());
        assert!(a.lease("live").await.unwrap().is_some());
        let left: HashSet<String> = a
            .take_inputs(&["old".to_owned(), "live".to_owned()])
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(left, HashSet::from(["in-live".to_owned()]));
    })
    .await;
}
