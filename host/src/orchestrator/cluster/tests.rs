//! Two servers in one process: two `Orchestrator`s over two separate
//! MongoDB store handles on one database of the test server, with a fake
//! LLM, and leases of a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mozaiks_fake_llm::{FakeLlm, Reply};

use super::{ClusterError, ClusterSettings};
use crate::event::{Envelope, Event, RunStatus};
use crate::llm::{LlmClient, LlmConfig};
use crate::orchestrator::{Orchestrator, RunInput};
use crate::plugin_set::PluginSet;
use crate::store::mongo::test_server;
use crate::store::{ChatStatus, ChatStore, MongoStore};
use crate::workflow::WorkflowRegistry;

/// The lease of these tests: short, so that a takeover is quick.
const LEASE: Duration = Duration::from_secs(1);

/// How long a test waits for something before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The one workflow: the user speaks, `Writer` answers, the user again.
const FILES: [(&str, &str); 3] = [
    (
        "orchestrator.json",
        r#"{ "workflow_name": "Relay", "max_turns": 20, "human_in_the_loop": true, "startup_mode": "UserDriven",
  "orchestration_pattern": "DefaultPattern", "initial_agent": "Writer" }"#,
    ),
    (
        "agents.json",
        r#"{ "agents": [ { "name": "Writer", "system_message": "You are Writer." } ] }"#,
    ),
    (
        "handoffs.json",
        r#"{ "handoff_rules": [
  { "source_agent": "Writer", "target_agent": "user", "handoff_type": "after_work" },
  { "source_agent": "user", "target_agent": "Writer", "handoff_type": "after_work" } ] }"#,
    ),
];

/// A workflow whose `Reviewer` asks the user through the planner plugin's
/// `request_approval` (a UI tool).
const APPROVE: [(&str, &str); 5] = [
    (
        "orchestrator.json",
        r#"{ "workflow_name": "Approve", "max_turns": 20, "human_in_the_loop": true, "startup_mode": "UserDriven",
  "orchestration_pattern": "DefaultPattern", "initial_agent": "Reviewer" }"#,
    ),
    (
        "agents.json",
        r#"{ "agents": [ { "name": "Reviewer", "system_message": "You are Reviewer." } ] }"#,
    ),
    (
        "handoffs.json",
        r#"{ "handoff_rules": [
  { "source_agent": "Reviewer", "target_agent": "user", "handoff_type": "after_work" },
  { "source_agent": "user", "target_agent": "Reviewer", "handoff_type": "after_work" } ] }"#,
    ),
    (
        "tools.json",
        r#"{ "tools": [ { "plugin": "planner", "function": "request_approval", "tool_type": "UI_Tool",
  "agent": "Reviewer", "ui": { "component": "ApprovalForm", "mode": "inline" } } ] }"#,
    ),
    (
        "context_variables.json",
        r#"{ "definitions": [ { "name": "approved", "type": "boolean", "description": "The answer.",
  "source": { "type": "derived", "tool": "request_approval" } } ] }"#,
    ),
];

/// A database of its own and the workflows, shared by the servers of one
/// test; the database is dropped at the end.
struct Cluster {
    database: String,
    workflows: Arc<WorkflowRegistry>,
    plugins: Arc<PluginSet>,
    dir: std::path::PathBuf,
    llm: FakeLlm,
}

/// One server of a [`Cluster`].
struct Node {
    orchestrator: Orchestrator,
    store: Arc<MongoStore>,
    jobs: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Stops its background loops: it heartbeats and renews no more, as
    /// if it hung.
    fn stop_loops(&mut self) {
        for job in self.jobs.drain(..) {
            job.abort();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_loops();
    }
}

impl Cluster {
    async fn new(name: &str, llm: FakeLlm) -> Self {
        Self::with(name, llm, "Relay", &FILES, false).await
    }

    /// A cluster serving `workflow` made of `files`, with the plugins of
    /// `plugins/` loaded when `planner` (`scripts/build-plugins` built them).
    async fn with(
        name: &str,
        llm: FakeLlm,
        workflow: &str,
        files: &[(&str, &str)],
        planner: bool,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mozaiks-cluster-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let folder = dir.join(workflow);
        std::fs::create_dir_all(folder.join("components")).unwrap();
        for (file, text) in files {
            std::fs::write(folder.join(file), text).unwrap();
        }
        let plugins = Arc::new(PluginSet::new());
        if planner {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            std::fs::copy(
                root.join("workflows/PlanReview/components/ApprovalForm.schema.json"),
                folder.join("components/ApprovalForm.schema.json"),
            )
            .unwrap();
            let engine = mozaiks_plugin_host::PluginEngine::new(Default::default()).unwrap();
            let (loaded, failures) = crate::plugin_dir::load_all(&engine, &root.join("plugins"))
                .await
                .unwrap();
            assert!(
                failures.is_empty(),
                "run scripts/build-plugins: {failures:?}"
            );
            for (dir, plugin) in loaded {
                plugins.install(&dir, plugin);
            }
        }
        let workflows = Arc::new(WorkflowRegistry::load_dir(&dir, &plugins.snapshot()).unwrap());
        assert!(
            workflows.get(workflow).is_some(),
            "the workflow loads: {:?}",
            workflows.snapshot().get(workflow)
        );
        Self {
            database: format!("mozaiks_test_{}", uuid::Uuid::new_v4().simple()),
            workflows,
            plugins,
            dir,
            llm,
        }
    }

    /// A server called `id` (cluster mode when `clustered`), joined, its
    /// loops running.
    async fn try_node(
        &self,
        id: &str,
        clustered: bool,
        lease: Duration,
    ) -> Result<Node, ClusterError> {
        let store = Arc::new(
            MongoStore::connect(&test_server::config(&self.database))
                .await
                .unwrap(),
        );
        store.prepare().await.unwrap();
        let llm = LlmClient::new(LlmConfig {
            api_key: Some("test".into()),
            base_url: Some(self.llm.base_url()),
            default_model: "fake-model".into(),
            default_timeout: PATIENCE,
            retry: crate::llm::RetryPolicy::default(),
        });
        let orchestrator = Orchestrator::new(
            Arc::clone(&store) as Arc<dyn ChatStore>,
            llm,
            PATIENCE,
            Arc::clone(&self.workflows),
            Arc::clone(&self.plugins),
        );
        let settings = ClusterSettings {
            enabled: clustered,
            server_id: Some(id.to_owned()),
            lease,
        };
        orchestrator
            .join_cluster(&settings, "127.0.0.1:8080".parse().unwrap())
            .await?;
        let jobs = orchestrator.cluster_jobs();
        Ok(Node {
            orchestrator,
            store,
            jobs,
        })
    }

    async fn node(&self, id: &str) -> Node {
        self.try_node(id, true, LEASE).await.unwrap()
    }

    async fn finish(self, node: Node) {
        let client = mongodb::Client::with_uri_str(test_server::uri())
            .await
            .unwrap();
        client.database(&self.database).drop().await.unwrap();
        drop(node);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The chat's events as stored.
async fn events(node: &Node, chat_id: &str) -> Vec<Envelope> {
    node.store.events(chat_id, 0, None).await.unwrap()
}

/// Waits until the chat's log satisfies `done`.
async fn until(node: &Node, chat_id: &str, what: &str, done: impl Fn(&[Envelope]) -> bool) {
    let started = Instant::now();
    loop {
        let log = events(node, chat_id).await;
        if done(&log) {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "waited too long for {what}: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `Relay` chat created on `node`, once its run waits for the user.
async fn relay_chat_waiting_for_user(node: &Node) -> String {
    let chat = node
        .orchestrator
        .create_chat("app", "u", "Relay")
        .await
        .unwrap();
    until(node, &chat.chat_id, "waiting_for_user", |log| {
        waits_for_user_after(log, 0)
    })
    .await;
    chat.chat_id
}

fn agent_messages(log: &[Envelope]) -> usize {
    log.iter()
        .filter(|e| matches!(e.event, Event::AgentMessage { .. }))
        .count()
}

fn waits_for_user_after(log: &[Envelope], seq: u64) -> bool {
    log.iter().any(|e| {
        e.seq.unwrap_or(0) > seq
            && matches!(
                e.event,
                Event::RunStatus {
                    status: RunStatus::WaitingForUser,
                    ..
                }
            )
    })
}

fn seq_of(log: &[Envelope], is: impl Fn(&Event) -> bool) -> Option<u64> {
    log.iter().find(|e| is(&e.event)).and_then(|e| e.seq)
}

/// A user message sent to a server that does not hold the chat goes to
/// the owner's run through the database; a client on that server gets the
/// owner's events, every one once and in order.
#[tokio::test]
async fn an_input_sent_through_another_server_reaches_the_owners_run_and_its_clients() {
    let cluster = Cluster::new("input", FakeLlm::start(|_| Reply::text("hello")).await).await;
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    let chat_id = relay_chat_waiting_for_user(&a).await;
    let chat_id = chat_id.as_str();

    // A client on B: the backlog, then the feed.
    let live = b.orchestrator.live(chat_id);
    let mut feed = live.follow();
    let backlog = events(&b, chat_id).await;
    let last = backlog.last().and_then(|e| e.seq).unwrap();
    feed.sent(last);

    b.orchestrator
        .send(chat_id, RunInput::UserMessage("hi".into()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Arc<Envelope>| {
        matches!(
            e.event,
            Event::RunStatus {
                status: RunStatus::WaitingForUser,
                ..
            }
        )
    }) {
        let batch = tokio::time::timeout(PATIENCE, feed.next())
            .await
            .expect("B's client gets A's events")
            .unwrap()
            .unwrap();
        seen.extend(batch);
    }
    let seqs: Vec<u64> = seen.iter().filter_map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        ((last + 1)..=(last + seqs.len() as u64)).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert!(
        seen.iter()
            .any(|e| e.event == Event::UserMessage { text: "hi".into() })
    );
    assert!(
        seen.iter()
            .any(|e| matches!(&e.event, Event::AgentMessage { text, .. } if text == "hello"))
    );

    let log = events(&a, chat_id).await;
    assert!(
        !log.iter()
            .any(|e| matches!(e.event, Event::RunMoved { .. })),
        "A kept the chat: {log:#?}"
    );
    assert_eq!(a.orchestrator.active_runs().len(), 1, "A runs it");
    assert!(b.orchestrator.active_runs().is_empty(), "B does not");
    assert_eq!(
        live.status(),
        Some(RunStatus::WaitingForUser),
        "B's copy of the status follows the relay"
    );
    drop(b);
    cluster.finish(a).await;
}

/// A server that stops renewing loses its chat: another takes it over,
/// writes `run_moved` first and finishes the turn; the old owner's late
/// write is refused, and its run stops quietly (nothing marked failed).
#[tokio::test]
async fn a_server_that_stops_renewing_loses_its_chat_and_its_late_write_is_refused() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let llm = FakeLlm::start(move |_| {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            // A's call: answered long after A lost the chat.
            Reply::text("late").after(Duration::from_secs(4))
        } else {
            Reply::text("on time")
        }
    })
    .await;
    let cluster = Cluster::new("takeover", llm).await;
    let mut a = cluster.node("a").await;
    let b = cluster.node("b").await;
    let chat_id = relay_chat_waiting_for_user(&a).await;
    let chat_id = chat_id.as_str();
    a.orchestrator
        .send(chat_id, RunInput::UserMessage("hi".into()))
        .await
        .unwrap();
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A hangs: no more heartbeats or renewals; its LLM call goes on.
    a.stop_loops();

    until(&b, chat_id, "B's turn", |log| {
        seq_of(log, |e| matches!(e, Event::RunMoved { .. }))
            .is_some_and(|moved| waits_for_user_after(log, moved))
    })
    .await;
    // A's answer arrives, and its write is refused.
    let started = Instant::now();
    while !a.orchestrator.active_runs().is_empty() {
        assert!(started.elapsed() < PATIENCE, "A's run never stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "A's call and B's");
    let log = events(&b, chat_id).await;
    let moved = seq_of(&log, |e| {
        *e == Event::RunMoved {
            from: "a".into(),
            to: "b".into(),
        }
    })
    .expect("run_moved from a to b");
    assert_eq!(agent_messages(&log), 1, "only B's answer: {log:#?}");
    let answer = seq_of(
        &log,
        |e| matches!(e, Event::AgentMessage { text, .. } if text == "on time"),
    );
    assert!(answer > Some(moved), "B answered after the fence");
    assert!(a.orchestrator.live(chat_id).is_moved(), "A parked the chat");
    let stored = b.orchestrator.chat(chat_id).await.unwrap();
    assert_eq!(
        stored.status,
        ChatStatus::InProgress,
        "nothing marked failed"
    );
    // A request that reaches A now goes to B, as any other server's would.
    let before = agent_messages(&log);
    a.orchestrator
        .send(chat_id, RunInput::UserMessage("again".into()))
        .await
        .unwrap();
    until(&b, chat_id, "B's second answer", |log| {
        agent_messages(log) == before + 1
    })
    .await;
    drop(a);
    cluster.finish(b).await;
}

/// A graceful stop gives the lease of a chat whose run was active up at
/// once: another server takes it over long before the lease would lapse,
/// and the stopped server leaves the registry.
#[tokio::test]
async fn a_graceful_stop_hands_an_active_chat_over_at_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let llm = FakeLlm::start(move |_| {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::text("first").after(Duration::from_millis(500))
        } else {
            Reply::text("second")
        }
    })
    .await;
    let cluster = Cluster::new("leave", llm).await;
    // Leases far longer than the test's patience: only the release can
    // hand the chat over in time.
    let long = Duration::from_secs(600);
    let a = cluster.try_node("a", true, long).await.unwrap();
    let b = cluster.try_node("b", true, long).await.unwrap();
    let chat_id = relay_chat_waiting_for_user(&a).await;
    let chat_id = chat_id.as_str();
    a.orchestrator
        .send(chat_id, RunInput::UserMessage("hi".into()))
        .await
        .unwrap();
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A stops: its run stops at the next stored point, then A gives the
    // lease up and leaves.
    let drained = a.orchestrator.drain(PATIENCE).await;
    assert!(drained.abandoned.is_empty());
    let mut a = a;
    a.stop_loops();
    a.orchestrator.leave_cluster().await;
    let cluster_store = b.store.cluster().unwrap();
    let servers: Vec<String> = cluster_store
        .servers()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(servers, vec!["b".to_owned()], "A left the registry");

    until(&b, chat_id, "B finishes the turn", |log| {
        seq_of(log, |e| matches!(e, Event::RunMoved { .. }))
            .is_some_and(|moved| waits_for_user_after(log, moved))
    })
    .await;
    let log = events(&b, chat_id).await;
    assert!(log.iter().any(|e| e.event
        == Event::RunMoved {
            from: "a".into(),
            to: "b".into()
        }));
    drop(a);
    cluster.finish(b).await;
}

/// A server refuses to start beside a live server of the other mode, or
/// beside another server outside cluster mode, naming MOZAIKS_CLUSTER and
/// the other server.
#[tokio::test]
async fn the_startup_guard_refuses_mixed_modes_and_a_second_single_server() {
    let cluster = Cluster::new("guard", FakeLlm::start(|_| Reply::text("-")).await).await;
    let single = cluster.try_node("single", false, LEASE).await.unwrap();
    for (id, clustered) in [("second", false), ("clustered", true)] {
        let refused = cluster.try_node(id, clustered, LEASE).await.err().unwrap();
        let text = refused.to_string();
        assert!(matches!(refused, ClusterError::Conflict { .. }), "{text}");
        assert!(
            text.contains("MOZAIKS_CLUSTER") && text.contains("`single`"),
            "{text}"
        );
    }
    // The same server starting again (same id) is no conflict.
    let again = cluster.try_node("single", false, LEASE).await.unwrap();
    drop(again);
    // A crashed server (no more heartbeats) does not keep its replacement
    // out, even while its entry is recent.
    let mut single = single;
    single.stop_loops();
    let replacement = cluster.try_node("replacement", false, LEASE).await.unwrap();
    drop(replacement);
    cluster.finish(single).await;
}

/// The answer to a UI request, sent to a server that does not hold the
/// chat, reaches the tool waiting on the owner; an answer for a request the
/// log does not show open is refused there at once.
#[tokio::test]
async fn a_ui_answer_sent_through_another_server_reaches_the_tool_waiting_on_the_owner() {
    let llm = FakeLlm::start(|call| {
        if call.tool_results().is_empty() {
            Reply::tool_call(
                "request_approval",
                serde_json::json!({"question": "Ship it?"}),
            )
        } else {
            Reply::text("noted")
        }
    })
    .await;
    let cluster = Cluster::with("ui", llm, "Approve", &APPROVE, true).await;
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    let chat = a
        .orchestrator
        .create_chat("app", "u", "Approve")
        .await
        .unwrap();
    let chat_id = chat.chat_id.as_str();
    until(&a, chat_id, "waiting_for_user", |log| {
        waits_for_user_after(log, 0)
    })
    .await;
    b.orchestrator
        .send(chat_id, RunInput::UserMessage("review".into()))
        .await
        .unwrap();
    until(&a, chat_id, "the UI request", |log| {
        log.iter()
            .any(|e| matches!(e.event, Event::UiRequest { .. }))
    })
    .await;
    let log = events(&a, chat_id).await;
    let request_id = log
        .iter()
        .find_map(|e| match &e.event {
            Event::UiRequest { request_id, .. } => Some(request_id.clone()),
            _ => None,
        })
        .unwrap();
    let asked = log.last().and_then(|e| e.seq).unwrap();

    let refused = b
        .orchestrator
        .answer_ui(
            chat_id,
            "no-such-request",
            serde_json::json!({"approved": true}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, crate::orchestrator::ChatError::UiRequestNotOpen(_)),
        "{refused:?}"
    );
    b.orchestrator
        .answer_ui(chat_id, &request_id, serde_json::json!({"approved": true}))
        .await
        .unwrap();
    until(&a, chat_id, "the answer and the agent's reply", |log| {
        waits_for_user_after(log, asked)
    })
    .await;
    let log = events(&a, chat_id).await;
    assert!(log.iter().any(|e| matches!(
        &e.event,
        Event::UiResponse { request_id: id, outcome: crate::event::UiOutcome::Answered { .. } } if *id == request_id
    )), "{log:#?}");
    assert!(
        log.iter()
            .any(|e| matches!(&e.event, Event::AgentMessage { text, .. } if text == "noted"))
    );
    assert!(
        !log.iter()
            .any(|e| matches!(e.event, Event::RunMoved { .. })),
        "A kept the chat"
    );
    let context = b.store.context(chat_id).await.unwrap();
    assert_eq!(context.get("approved"), Some(&serde_json::json!(true)));
    drop(b);
    cluster.finish(a).await;
}

/// A client on a server that begins to watch a chat run elsewhere gets
/// the events stored between its backlog read and that server's first
/// read of the chat's tail: the tail starts from the chat's first event,
/// not from its end when it first looks (which skipped them, and the
/// client saw them only once the chat moved on again).
#[tokio::test]
async fn events_stored_between_a_clients_backlog_and_the_first_tail_read_reach_it() {
    let cluster = Cluster::new("tail-start", FakeLlm::start(|_| Reply::text("hello")).await).await;
    let a = cluster.node("a").await;
    let mut b = cluster.node("b").await;
    // B's tail is driven by hand, so its first read comes exactly after
    // the owner's write.
    b.stop_loops();
    let chat_id = relay_chat_waiting_for_user(&a).await;
    let chat_id = chat_id.as_str();

    let live = b.orchestrator.live(chat_id);
    let mut feed = live.follow();
    let last = events(&b, chat_id)
        .await
        .last()
        .and_then(|e| e.seq)
        .unwrap();
    feed.sent(last);
    a.orchestrator
        .live(chat_id)
        .emit(Event::Warning {
            code: crate::event::ErrorCode::HookFailed,
            message: "stored after the client's backlog".into(),
        })
        .await
        .unwrap();

    let membership = b.orchestrator.shared.membership.get().cloned().unwrap();
    b.orchestrator.tail_once(&membership).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("the event reaches B's client without another event after it")
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = got.iter().filter_map(|e| e.seq).collect();
    assert_eq!(seqs, [last + 1], "{got:?}");
    drop(b);
    cluster.finish(a).await;
}
