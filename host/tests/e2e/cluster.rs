//! Three `mozaiks serve` processes on one MongoDB (issue 18;
//! docs/operations.md, "Running several servers"): chats started on each,
//! inputs and answers sent to servers that do not run the chat, the owner
//! killed mid-turn and mid-UI-request, and a rolling restart under load.
//! Every client goes round-robin over the servers; every socket must see
//! every event of its chat once and in `seq` order, whichever server it is
//! on, and every server must read back the same complete log.

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use harness::*;

/// Servers in every test.
const SERVERS: usize = 3;

/// The `Cluster` workflow's LLM: after a user message Worker asks the
/// user with `ask` (no timeout to speak of); once it has the tool's result
/// it answers.
fn worker(call: &ChatCall) -> Reply {
    if call.last_message()["role"] == "tool" {
        Reply::text("Done, as you confirmed.")
    } else {
        Reply::tool_call(
            "ask",
            json!({"component": "Confirm", "payload": {"q": "go on?"}, "timeout_ms": 600_000}),
        )
    }
}

/// `POST path` on server `i`; the status must be 202.
async fn accepted(cluster: &Cluster, i: usize, path: &str, body: Value) {
    let (status, answer) = cluster.server(i).post(path, body).await;
    assert_eq!(
        status, 202,
        "POST {path} on {}: {answer}",
        cluster.nodes[i].id
    );
}

/// The id of the server the cluster says runs `chat` now (its lease, from
/// `GET /api/cluster` on server `ask`).
async fn owner(cluster: &Cluster, ask: usize, chat: &str) -> Option<String> {
    let (status, body) = cluster.server(ask).get("/api/cluster").await;
    assert_eq!(status, 200, "{body}");
    body["leases"]["shown"]
        .as_array()?
        .iter()
        .find(|l| l["chat_id"] == chat)
        .and_then(|l| l["owner"].as_str())
        .map(str::to_owned)
}

/// The index of the server running `chat` now; it must have one.
async fn owner_index(cluster: &Cluster, chat: &str) -> usize {
    let id = owner(cluster, cluster.next(), chat)
        .await
        .unwrap_or_else(|| panic!("chat {chat} is running but no server holds its lease"));
    cluster.index_of(&id)
}

/// One client of `chat` on every live server.
async fn everywhere(cluster: &Cluster, chat: &str) -> Vec<Follower> {
    let live = cluster.live();
    let mut clients = Vec::new();
    for on in 0..cluster.nodes.len() {
        clients.push(Follower::open(&live, on, chat).await);
    }
    clients
}

/// Checks that every server reads back the same complete log and that
/// every client saw exactly it; returns it.
async fn same_log_everywhere(cluster: &Cluster, chat: &str, clients: Vec<Follower>) -> Vec<Value> {
    let events = cluster.events_everywhere(chat).await;
    assert_complete(&events);
    for client in clients {
        let on = client.on;
        assert_eq!(
            client.close().await,
            events,
            "the client last on {} saw the log, each event once, in order",
            cluster.nodes[on].id
        );
    }
    events
}

#[tokio::test]
async fn chats_started_on_each_server_take_messages_and_ui_answers_sent_to_the_others() {
    let llm = FakeLlm::start(worker).await;
    let cluster = Cluster::start("cluster-inputs", &llm, SERVERS).await;
    let mut chats = Vec::new();
    for creator in 0..SERVERS {
        chats.push((creator, cluster.start_chat(creator, "Cluster").await));
    }
    for (creator, chat) in &chats {
        let mut clients = everywhere(&cluster, chat).await;
        for client in &mut clients {
            client.until_status("waiting_for_user").await;
        }
        // Two rounds: message and answer over HTTP, then over sockets;
        // the message never to the server that started the chat, the
        // answer never to the one running it.
        for round in 0..2 {
            let to = cluster.next_except(&[*creator]);
            if round == 0 {
                accepted(
                    &cluster,
                    to,
                    &format!("/api/chats/{chat}/messages"),
                    json!({"text": "first"}),
                )
                .await;
            } else {
                clients[to]
                    .send(json!({"type": "user_message", "text": "second"}))
                    .await;
            }
            let mut request = Value::Null;
            for client in &mut clients {
                request = client.until_type("ui_request").await;
            }
            let request_id = request["request_id"].as_str().unwrap();
            let to = cluster.next_except(&[owner_index(&cluster, chat).await]);
            if round == 0 {
                accepted(
                    &cluster,
                    to,
                    &format!("/api/chats/{chat}/ui/{request_id}"),
                    json!({"answer": {"ok": true}}),
                )
                .await;
            } else {
                clients[to]
                    .send(json!({"type": "ui_response", "request_id": request_id, "answer": {"ok": true}}))
                    .await;
            }
            for client in &mut clients {
                client.until_type("tool_result").await;
                client.until_status("waiting_for_user").await;
            }
        }
        let to = cluster.next_except(&[*creator]);
        accepted(&cluster, to, &format!("/api/chats/{chat}/end"), json!({})).await;
        for client in &mut clients {
            client.until_status("completed").await;
            assert_eq!(client.reconnects, 0, "no server went away");
        }

        let events = same_log_everywhere(&cluster, chat, clients).await;
        assert_eq!(
            of_type(&events, "user_message").len(),
            2,
            "{}",
            summary(&events)
        );
        let results = of_type(&events, "tool_result");
        assert_eq!(results.len(), 2, "{}", summary(&events));
        assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
        assert!(
            of_type(&events, "run_moved").is_empty(),
            "no server died, nothing moved: {}",
            summary(&events)
        );
    }
}

#[tokio::test]
async fn the_owner_killed_mid_turn_the_turn_moves_to_another_server_and_finishes_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let llm = FakeLlm::start(move |_| {
        let reply = Reply::text(r#"{"score": 6, "reason": "after the move"}"#);
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            // The owner dies while this answer is on its way.
            reply.after(Duration::from_secs(120))
        } else {
            reply
        }
    })
    .await;
    let mut cluster = Cluster::start("cluster-kill-turn", &llm, SERVERS).await;
    let chat = cluster.start_chat(cluster.next(), "Structured").await;
    let mut clients = everywhere(&cluster, &chat).await;
    for client in &mut clients {
        client.until_type("speaker").await;
    }
    until_calls(&llm, 1).await;
    let dead = owner_index(&cluster, &chat).await;
    let dead_id = cluster.nodes[dead].id.clone();

    cluster.kill(dead).await;
    let killed = Instant::now();
    let mut moved = Value::Null;
    for client in &mut clients {
        moved = client.until_type("run_moved").await;
    }
    let took = killed.elapsed();
    assert!(
        took < TAKEOVER_WAIT,
        "run_moved came {took:?} after the kill"
    );
    assert_eq!(moved["from"], dead_id.as_str(), "{moved}");
    assert_ne!(moved["to"], dead_id.as_str(), "{moved}");
    for client in &mut clients {
        let answer = client.until_type("agent_message").await;
        assert_eq!(answer["structured"]["score"], 6);
        client.until_status("completed").await;
    }
    assert_eq!(
        clients.iter().map(|c| c.reconnects).sum::<usize>(),
        1,
        "the client on the dead server moved to another"
    );

    let events = same_log_everywhere(&cluster, &chat, clients).await;
    assert_eq!(
        of_type(&events, "run_moved").len(),
        1,
        "{}",
        summary(&events)
    );
    assert_eq!(
        of_type(&events, "agent_message").len(),
        1,
        "the turn was redone once, not doubled: {}",
        summary(&events)
    );
    assert_eq!(llm.calls().len(), 2, "asked once by each owner");
}

/// Confirms a UI request through a server that does not run the chat.
async fn confirm_elsewhere(cluster: &Cluster, chat: &str, request: &Value) {
    let run_by = owner_index(cluster, chat).await;
    accepted(
        cluster,
        cluster.next_except(&[run_by]),
        &format!(
            "/api/chats/{chat}/ui/{}",
            request["request_id"].as_str().unwrap()
        ),
        json!({"answer": {"confirmed": true}}),
    )
    .await;
}

#[tokio::test]
async fn the_owner_killed_mid_ui_request_another_server_asks_again_and_the_effect_is_made_once() {
    // The `Effects` workflow (runs.rs): the Clerk applies `a` and `b`, each
    // confirmed through a UI request, then lists the ledger.
    let llm = FakeLlm::start(crate::runs::effects_llm).await;
    let mut cluster = Cluster::start_with_effects("cluster-kill-ui", &llm, SERVERS).await;
    let chat = cluster.start_chat(cluster.next(), "Effects").await;
    let mut clients = everywhere(&cluster, &chat).await;
    let mut ask_a = Value::Null;
    for client in &mut clients {
        ask_a = client.until_type("ui_request").await;
    }
    assert_eq!(ask_a["payload"]["label"], "a");
    confirm_elsewhere(&cluster, &chat, &ask_a).await;
    let mut ask_b = Value::Null;
    for client in &mut clients {
        ask_b = client.until_type("ui_request").await;
    }
    assert_eq!(ask_b["payload"]["label"], "b");
    let dead = owner_index(&cluster, &chat).await;
    let dead_id = cluster.nodes[dead].id.clone();

    cluster.kill(dead).await;
    let killed = Instant::now();
    let mut again = Value::Null;
    for client in &mut clients {
        let moved = client.until_type("run_moved").await;
        assert_eq!(moved["from"], dead_id.as_str(), "{moved}");
        assert_ne!(moved["to"], dead_id.as_str(), "{moved}");
        again = client
            .until("b asked again", |e| {
                e["type"] == "ui_request" && e["request_id"] != ask_b["request_id"]
            })
            .await;
    }
    let took = killed.elapsed();
    assert!(took < TAKEOVER_WAIT, "asked again {took:?} after the kill");
    assert_eq!(again["payload"]["label"], "b", "only b runs again");
    assert_eq!(
        again["payload"]["key"], ask_b["payload"]["key"],
        "with its key"
    );
    let (status, body) = cluster
        .server(cluster.next())
        .post(
            &format!(
                "/api/chats/{chat}/ui/{}",
                ask_b["request_id"].as_str().unwrap()
            ),
            json!({"answer": {"confirmed": true}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("UI_REQUEST_NOT_OPEN")),
        "the dead server's request is closed: {body}"
    );
    confirm_elsewhere(&cluster, &chat, &again).await;
    for client in &mut clients {
        client.until_status("completed").await;
    }

    let events = same_log_everywhere(&cluster, &chat, clients).await;
    assert_eq!(
        of_type(&events, "run_moved").len(),
        1,
        "{}",
        summary(&events)
    );
    let responses: Vec<&str> = of_type(&events, "ui_response")
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(responses, ["answered", "cancelled", "answered"]);
    let (key_a, key_b) = (&ask_a["payload"]["key"], &ask_b["payload"]["key"]);
    assert_eq!(
        results_of(&events, "apply"),
        [
            json!({"key": key_a, "label": "a", "first_time": true, "runs": 1, "attempt": 1}),
            json!({"key": key_b, "label": "b", "first_time": true, "runs": 2, "attempt": 2}),
        ],
        "b's call ran on both servers and made its effect once"
    );
    assert_eq!(
        ledger_effects(&events),
        [
            json!({"key": key_a, "label": "a", "runs": 1}),
            json!({"key": key_b, "label": "b", "runs": 2}),
        ],
        "one effect per call in the app's data"
    );
}

/// Chats in the rolling restart.
const LOAD_CHATS: usize = 6;
/// `max_turns` of the `ClusterLoad` workflow.
const LOAD_TURNS: usize = 30;
/// How long the LLM takes to answer while the servers restart: with
/// [`LOAD_TURNS`], a chat cannot end within 12 s, and the rolling restart
/// of all three took 4–5 s on a 2-core machine at load 10.
const LOAD_REPLY_DELAY: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_rolling_restart_of_every_server_under_load_loses_and_repeats_nothing() {
    // Slow answers while the servers restart, so that every chat is in
    // flight all along; fast ones after.
    let restarting = Arc::new(AtomicBool::new(true));
    let slow = Arc::clone(&restarting);
    let llm = FakeLlm::start(move |call| {
        let reply = Reply::text(format!("{} counts on.", agent_of(call)));
        if slow.load(Ordering::SeqCst) {
            reply.after(LOAD_REPLY_DELAY)
        } else {
            reply
        }
    })
    .await;
    let mut cluster = Cluster::start("cluster-rolling", &llm, SERVERS).await;
    let live = cluster.live();
    let mut clients = Vec::new();
    for _ in 0..LOAD_CHATS {
        let chat = cluster.start_chat(cluster.next(), "ClusterLoad").await;
        let mut client = Follower::open(&live, cluster.next(), &chat).await;
        client.until_type("speaker").await;
        clients.push(tokio::spawn(async move {
            client.until_status("completed").await;
            client
        }));
    }

    for i in 0..SERVERS {
        cluster.stop(i).await;
        cluster.restart(i).await;
    }
    restarting.store(false, Ordering::SeqCst);

    let mut reconnected = 0;
    let mut moved = 0;
    for client in clients {
        let client = client.await.unwrap();
        reconnected += client.reconnects;
        let chat = client.chat.clone();
        let events = cluster.events_everywhere(&chat).await;
        assert_complete(&events);
        assert_eq!(
            last_status(&events),
            Some("completed"),
            "{}",
            summary(&events)
        );
        assert_eq!(
            client.close().await,
            events,
            "the client saw every event once, across its reconnects"
        );
        assert_eq!(
            speakers(&events).len(),
            LOAD_TURNS,
            "every turn once: {}",
            summary(&events)
        );
        // A chat whose owner came back before another server's takeover
        // scan is taken back by the same server id: it resumes from its log
        // without a `run_moved` (nothing moved between servers).
        if !of_type(&events, "run_moved").is_empty() {
            moved += 1;
        }
    }
    assert!(
        moved > 0,
        "the owners stopped under load, so chats moved between servers"
    );
    assert!(
        reconnected >= LOAD_CHATS,
        "every client was on a stopped server at least once ({reconnected} reconnects)"
    );
}
