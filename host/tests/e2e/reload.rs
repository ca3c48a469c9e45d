//! Hot reload against the real binary: components swapped under load,
//! broken components and workflows kept out, the gate refusing a version
//! that drops a function, deleted plugins, chunked writes, the disk cache.
//!
//! Each test has its own plugins and workflows folders (the `probe` test
//! component, versions 1 and 2, and a one-agent `Probe` workflow) and edits
//! them while the server runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn component(version: u32) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../tests/components/probe-v{version}/probe-v{version}.wasm"
    ));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins (scripts/test does)",
        path.display()
    );
    path
}

fn sha256(bytes: &[u8]) -> String {
    mozaiks_plugin_host::content_hash(bytes)
}

/// A plugins folder with `probe` (version `version`) and a workflows
/// folder with `Probe`, whose agent uses `tools`.
struct Lab {
    scratch: Scratch,
    probe: PathBuf,
    workflow: PathBuf,
}

impl Lab {
    fn new(name: &str, version: u32, tools: &[&str]) -> Self {
        let scratch = Scratch::new(name);
        let probe = scratch.0.join("plugins/probe");
        std::fs::create_dir_all(&probe).unwrap();
        std::fs::write(
            probe.join("plugin.toml"),
            "id = \"probe\"\nversion = \"1.0.0\"\n",
        )
        .unwrap();
        std::fs::copy(component(version), probe.join("probe.wasm")).unwrap();
        let workflow = scratch.0.join("workflows/Probe");
        std::fs::create_dir_all(&workflow).unwrap();
        let lab = Self {
            scratch,
            probe,
            workflow,
        };
        lab.write_workflow(tools, "You are Worker. Use your tools.");
        lab
    }

    fn write_workflow(&self, tools: &[&str], system_message: &str) {
        let files = [
            (
                "orchestrator.json",
                json!({"workflow_name": "Probe", "max_turns": 50, "human_in_the_loop": true,
                       "startup_mode": "UserDriven", "orchestration_pattern": "DefaultPattern",
                       "initial_agent": "Worker"}),
            ),
            (
                "agents.json",
                json!({"agents": [{"name": "Worker", "system_message": system_message, "tools": tools}]}),
            ),
            (
                "handoffs.json",
                json!({"handoff_rules": [
                    {"source_agent": "Worker", "target_agent": "user", "handoff_type": "after_work"},
                    {"source_agent": "user", "target_agent": "Worker", "handoff_type": "after_work"}]}),
            ),
            (
                "tools.json",
                json!({"tools": tools.iter().map(|f| json!({
                    "plugin": "probe", "function": f, "tool_type": "Agent_Tool", "agent": "Worker"
                })).collect::<Vec<_>>()}),
            ),
        ];
        for (file, value) in files {
            write_atomically(
                &self.workflow.join(file),
                serde_json::to_string_pretty(&value).unwrap().as_bytes(),
            );
        }
    }

    fn setup(&self, llm: &FakeLlm) -> Setup {
        Setup {
            workflows: self.scratch.0.join("workflows"),
            plugins: self.scratch.0.join("plugins"),
            data: self.scratch.0.join("data"),
            llm_url: Some(llm.base_url()),
            extra_env: Vec::new(),
            share_component_cache: true,
            stderr: None,
        }
    }

    /// Replaces the component the way a build does: a temporary file, then
    /// a rename.
    fn install(&self, version: u32) {
        write_atomically(
            &self.probe.join("probe.wasm"),
            &std::fs::read(component(version)).unwrap(),
        );
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The Worker calls the tool the user names (`nap 300`, `version`,
/// `farewell`), then says what it got.
fn worker(call: &ChatCall) -> Reply {
    if call.last_message()["role"] == "tool" {
        return Reply::text(format!("got {}", call.last_text()));
    }
    let text = call.last_text().to_owned();
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some("nap"), Some(ms)) => {
            Reply::tool_call("nap", json!({"ms": ms.parse::<u64>().unwrap()}))
        }
        (Some(tool), _) => Reply::tool_call(tool, json!({})),
        (None, _) => Reply::text("say something"),
    }
}

/// Asserts that a reload frame is of `kind` with `outcome`.
#[track_caller]
fn assert_reload(frame: &Value, kind: &str, outcome: &str) {
    assert_eq!(
        (frame["kind"].as_str(), frame["outcome"].as_str()),
        (Some(kind), Some(outcome)),
        "{frame}"
    );
}

/// Sends `text` to a chat over HTTP.
async fn say(server: &Server, chat: &str, text: &str) {
    let (status, body) = server
        .post(
            &format!("/api/chats/{chat}/messages"),
            json!({"text": text}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Waits for the chat's `n`-th tool result and returns it.
async fn tool_result(server: &Server, chat: &str, n: usize) -> Value {
    let body = server
        .eventually(&format!("/api/chats/{chat}/events"), |_, body| {
            body["events"]
                .as_array()
                .is_some_and(|e| of_type(e, "tool_result").len() >= n)
        })
        .await;
    of_type(body["events"].as_array().unwrap(), "tool_result")[n - 1].clone()
}

/// Asks the chat's agent to call `tool` and returns the tool's result.
async fn call_tool(server: &Server, chat: &str, tool: &str) -> Value {
    server
        .eventually(&format!("/api/chats/{chat}"), |_, body| {
            body["status"] == "in_progress"
        })
        .await;
    let before = of_type(&server.events(chat).await, "tool_result").len();
    wait_for_user(server, chat).await;
    say(server, chat, tool).await;
    let result = tool_result(server, chat, before + 1).await;
    wait_for_user(server, chat).await;
    result
}

async fn wait_for_user(server: &Server, chat: &str) {
    server
        .eventually(&format!("/api/chats/{chat}/events"), |_, body| {
            body["events"].as_array().is_some_and(|events| {
                events
                    .iter()
                    .rev()
                    .find(|e| e["type"] == "run_status")
                    .is_some_and(|e| e["status"] == "waiting_for_user")
            })
        })
        .await;
}

fn version_of(result: &Value) -> u64 {
    assert_eq!(result["ok"], true, "{result}");
    let content: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    content["version"].as_u64().unwrap()
}

/// The `probe` entry of a `GET /api/plugins` answer (`null` if absent).
fn probe_in(plugins: &Value) -> Value {
    plugins["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == "probe"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The `probe` entry of `GET /api/plugins`.
async fn probe(server: &Server) -> Value {
    probe_in(&server.get("/api/plugins").await.1)
}

/// Waits until the `probe` entry satisfies `done`; returns it.
async fn wait_for_probe(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    let body = server
        .eventually("/api/plugins", |_, body| {
            let probe = probe_in(body);
            !probe.is_null() && done(&probe)
        })
        .await;
    probe_in(&body)
}

/// The plugin reload events of `probe` so far.
async fn probe_reloads(server: &Server) -> Vec<Value> {
    let (_, body) = server.get("/api/reloads").await;
    body["reloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "plugin" && r["name"] == "probe")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_replaced_under_50_calls_fails_none_and_later_calls_get_the_new_version() {
    let lab = Lab::new("reload-load", 1, &["nap", "version"]);
    let llm = FakeLlm::start(worker).await;
    let server = Server::start(&lab.setup(&llm)).await;
    let v2_hash = sha256(&std::fs::read(component(2)).unwrap());

    let mut chats = Vec::new();
    for _ in 0..50 {
        chats.push(server.start_chat("Probe").await);
    }
    futures_util::future::join_all(chats.iter().map(|chat| async {
        wait_for_user(&server, chat).await;
        say(&server, chat, "nap 1500").await;
    }))
    .await;
    // Every chat's call has started (its tool_call is stored), so the swap
    // happens while they sleep inside version 1.
    let server = &server;
    futures_util::future::join_all(chats.iter().map(|chat| async move {
        let path = format!("/api/chats/{chat}/events");
        server
            .eventually(&path, |_, body| {
                body["events"]
                    .as_array()
                    .is_some_and(|e| !of_type(e, "tool_call").is_empty())
            })
            .await
    }))
    .await;
    lab.install(2);
    wait_for_probe(server, |p| p["hash"] == v2_hash.as_str()).await;

    let results =
        futures_util::future::join_all(chats.iter().map(|chat| tool_result(server, chat, 1))).await;
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    let versions: Vec<u64> = results.iter().map(version_of).collect();
    assert!(versions.iter().all(|v| matches!(v, 1 | 2)), "{versions:?}");
    // Each call fetched its version right after its tool_call was stored,
    // before the swap: calls in flight finish on the old version.
    assert!(versions.contains(&1), "{versions:?}");
    // Calls made after the swap get version 2, in old chats and new ones.
    assert_eq!(
        version_of(&call_tool(server, &chats[0], "version").await),
        2
    );
    let fresh = server.start_chat("Probe").await;
    assert_eq!(version_of(&call_tool(server, &fresh, "version").await), 2);

    let reloads = probe_reloads(server).await;
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert_eq!(reloads[0]["outcome"], "loaded");
    assert_eq!(reloads[0]["version"], v2_hash.as_str());
}

#[tokio::test]
async fn a_broken_component_is_refused_the_old_one_keeps_serving_and_clients_are_told() {
    let lab = Lab::new("reload-broken", 1, &["version"]);
    let llm = FakeLlm::start(worker).await;
    let server = Server::start(&lab.setup(&llm)).await;
    let v1 = probe(&server).await;
    assert_eq!(v1["status"], "loaded", "{v1}");
    let chat = server.start_chat("Probe").await;
    let mut chat_socket = server.ws(&chat, 0).await;
    let mut server_socket = server.ws_path("/api/events/ws").await;
    server_socket.until_type("hello").await;

    write_atomically(&lab.probe.join("probe.wasm"), b"this is not a component");

    let pushed = server_socket.until_type("reload").await;
    assert_eq!(pushed["kind"], "plugin");
    assert_eq!(pushed["name"], "probe");
    assert_eq!(pushed["outcome"], "rejected");
    assert_eq!(
        pushed["version"], v1["hash"],
        "the old version is still served"
    );
    let message = pushed["message"].as_str().unwrap();
    assert!(message.contains("probe"), "{message}");
    assert!(message.contains("still serving"), "{message}");
    let on_chat = chat_socket.until_type("reload").await;
    assert_eq!(on_chat, pushed, "chat sockets get the same event");
    assert!(
        on_chat.get("seq").is_none(),
        "reload events are not chat events"
    );

    let metrics = crate::telemetry::scrape(&server).await;
    let refused = r#"mozaiks_reloads_total{kind="plugin",outcome="rejected"}"#;
    assert_eq!(
        crate::telemetry::value(&metrics, refused),
        1.0,
        "{metrics:?}"
    );

    let listed = wait_for_probe(&server, |p| p["status"] == "failed").await;
    assert_eq!(listed["hash"], v1["hash"]);
    let error = listed["last_error"]["message"].as_str().unwrap();
    assert!(error.contains("probe.wasm"), "{error}");
    assert_eq!(version_of(&call_tool(&server, &chat, "version").await), 1);

    // Fixing it clears the error.
    lab.install(2);
    let fixed = wait_for_probe(&server, |p| p["status"] == "loaded").await;
    assert_eq!(fixed["last_error"], Value::Null);
    assert_eq!(version_of(&call_tool(&server, &chat, "version").await), 2);
}

#[tokio::test]
async fn the_gate_refuses_a_version_that_drops_a_function_or_asks_for_new_capabilities_or_hosts() {
    let lab = Lab::new("reload-gate", 1, &["version", "farewell"]);
    let llm = FakeLlm::start(worker).await;
    let server = Server::start(&lab.setup(&llm)).await;
    let v1 = probe(&server).await;
    let mut events = server.ws_path("/api/events/ws").await;

    lab.install(2);
    let refused = events.until_type("reload").await;
    assert_eq!(refused["outcome"], "rejected", "{refused}");
    let errors = refused["errors"].to_string();
    assert!(
        errors.contains("workflow `Probe` uses function `farewell`"),
        "{errors}"
    );
    assert_eq!(probe(&server).await["hash"], v1["hash"]);
    let chat = server.start_chat("Probe").await;
    assert_eq!(version_of(&call_tool(&server, &chat, "farewell").await), 1);

    // Same component, but a manifest that asks for an environment variable.
    lab.install(1);
    events
        .until("the plugin loaded again", |e| {
            e["type"] == "reload" && e["outcome"] == "loaded"
        })
        .await;
    write_atomically(
        &lab.probe.join("plugin.toml"),
        b"id = \"probe\"\nversion = \"1.0.1\"\n[capabilities]\nenv = [\"HOME\"]\n",
    );
    let refused = events.until_type("reload").await;
    assert_eq!(refused["outcome"], "rejected", "{refused}");
    let errors = refused["errors"].to_string();
    assert!(errors.contains("`HOME`"), "{errors}");
    assert!(
        errors.contains("MOZAIKS_RELOAD_ALLOW_NEW_CAPABILITIES"),
        "{errors}"
    );

    // And one that adds an outbound HTTP host: a new capability too.
    write_atomically(
        &lab.probe.join("plugin.toml"),
        b"id = \"probe\"\nversion = \"1.0.2\"\n[capabilities]\n\
          allowed_outbound_hosts = [\"https://api.example.com\"]\n",
    );
    let refused = events.until_type("reload").await;
    assert_eq!(refused["outcome"], "rejected", "{refused}");
    let errors = refused["errors"].to_string();
    assert!(
        errors.contains("new outbound host `https://api.example.com` (allowed_outbound_hosts)"),
        "{errors}"
    );
    assert_eq!(probe(&server).await["hash"], v1["hash"]);
}

#[tokio::test]
async fn a_deleted_plugin_makes_its_tools_unavailable_until_it_is_back() {
    let lab = Lab::new("reload-delete", 1, &["version"]);
    let llm = FakeLlm::start(worker).await;
    let server = Server::start(&lab.setup(&llm)).await;
    let chat = server.start_chat("Probe").await;
    let mut events = server.ws_path("/api/events/ws").await;

    std::fs::remove_file(lab.probe.join("probe.wasm")).unwrap();
    let removed = events.until_type("reload").await;
    assert_eq!(removed["outcome"], "removed", "{removed}");
    assert_eq!(probe(&server).await["status"], "removed");

    let result = call_tool(&server, &chat, "version").await;
    assert_eq!(result["ok"], false, "{result}");
    let error = result.to_string();
    assert!(error.contains("plugin_unavailable"), "{error}");
    assert!(error.contains("was removed"), "{error}");

    lab.install(1);
    wait_for_probe(&server, |p| p["status"] == "loaded").await;
    assert_eq!(version_of(&call_tool(&server, &chat, "version").await), 1);
}

#[tokio::test]
async fn a_component_written_in_chunks_is_reloaded_once_complete() {
    let lab = Lab::new("reload-chunks", 1, &["version"]);
    let llm = FakeLlm::start(worker).await;
    let server = Server::start(&lab.setup(&llm)).await;
    let bytes = std::fs::read(component(2)).unwrap();
    let v2_hash = sha256(&bytes);

    // In place, in four chunks, with pauses longer than the quiet period:
    // a slow writer, not a rename.
    let mut file = std::fs::File::create(lab.probe.join("probe.wasm")).unwrap();
    for chunk in bytes.chunks(bytes.len().div_ceil(4)) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    drop(file);
    let loaded = wait_for_probe(&server, |p| p["hash"] == v2_hash.as_str()).await;
    assert_eq!(loaded["status"], "loaded");
    // Anything a half-written file caused would have been reported by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reloads = probe_reloads(&server).await;
    assert_eq!(reloads.len(), 1, "{reloads:#?}");
    assert_eq!(reloads[0]["outcome"], "loaded");
}

#[tokio::test]
async fn a_broken_workflow_keeps_its_last_good_version_and_a_fix_reaches_running_chats() {
    let lab = Lab::new("reload-workflow", 1, &["version"]);
    let llm = FakeLlm::start(worker).await;
    let server = Server::start(&lab.setup(&llm)).await;
    let (_, listed) = server.get("/api/workflows").await;
    let good_version = listed["workflows"][0]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let chat = server.start_chat("Probe").await;
    let mut events = server.ws_path("/api/events/ws").await;

    // A field of the wrong type.
    write_atomically(
        &lab.workflow.join("agents.json"),
        br#"{"agents": [{"name": "Worker", "system_message": 42, "tools": ["version"]}]}"#,
    );
    let refused = events.until_type("reload").await;
    assert_reload(&refused, "workflow", "rejected");
    let errors = refused["errors"].to_string();
    assert!(errors.contains("agents.json"), "{errors}");
    assert!(errors.contains("system_message"), "{errors}");
    let (_, listed) = server.get("/api/workflows").await;
    let probe_workflow = &listed["workflows"][0];
    assert_eq!(probe_workflow["valid"], false);
    assert_eq!(probe_workflow["serving"]["version"], good_version.as_str());
    // New chats still start, on the last good version.
    let (status, body) = server
        .post(
            "/api/chats",
            json!({"app_id": "app", "user_id": "alice", "workflow": "Probe"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["workflow_version"], good_version.as_str());

    lab.write_workflow(
        &["version"],
        "You are Worker. Version two of the instructions.",
    );
    let fixed = events
        .until("the fixed workflow", |e| {
            e["kind"] == "workflow" && e["outcome"] == "loaded"
        })
        .await;
    let new_version = fixed["version"].as_str().unwrap().to_owned();
    assert_ne!(new_version, good_version);
    let (_, listed) = server.get("/api/workflows").await;
    assert_eq!(listed["workflows"][0]["valid"], true);
    assert_ne!(
        listed["workflows"][0]["cache_seed"], body["cache_seed"],
        "the cache seed changes with the version"
    );

    // The chat that was already running takes the new version at its next
    // turn, records that, and its agent gets the new instructions.
    call_tool(&server, &chat, "version").await;
    let updated = of_type(&server.events(&chat).await, "workflow_updated")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0]["previous"], good_version.as_str());
    assert_eq!(updated[0]["version"], new_version.as_str());
    let last = llm.calls().last().unwrap().system().to_owned();
    assert!(last.contains("Version two"), "{last}");
}

#[tokio::test]
async fn a_restart_loads_unchanged_components_from_the_disk_cache() {
    let lab = Lab::new("reload-cache", 1, &["version"]);
    let llm = FakeLlm::start(worker).await;
    let mut setup = lab.setup(&llm);
    setup.share_component_cache = false;
    let first = Server::start(&setup).await;
    assert_eq!(probe(&first).await["from_cache"], false);
    first.kill().await;
    let second = Server::start(&setup).await;
    let cached = probe(&second).await;
    assert_eq!(cached["from_cache"], true, "{cached}");
    let chat = second.start_chat("Probe").await;
    assert_eq!(version_of(&call_tool(&second, &chat, "version").await), 1);
}

/// The disk cache keeps the entries of the loaded plugins and, of the
/// others, the most recently used up to its budget: once the first load is
/// done, an entry of another engine that would exceed the budget is
/// removed, while an old version of this engine's within it stays.
#[tokio::test]
async fn a_start_and_a_reload_remove_unused_compiled_components_beyond_the_cache_budget() {
    let lab = Lab::new("reload-cache-prune", 1, &["version"]);
    let llm = FakeLlm::start(worker).await;
    let mut setup = lab.setup(&llm);
    setup.share_component_cache = false;
    setup.extra_env.push(("LOG_LEVEL".into(), "info".into()));
    let first = Server::start(&setup).await;
    assert_eq!(probe(&first).await["from_cache"], false);
    first.kill().await;

    let cache = setup.data.join("component-cache");
    let in_use = only_entry(&cache);
    let engine = in_use
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit_once('-'))
        .map(|(_, engine)| engine.to_owned())
        .unwrap();
    let old_version = cache.join(format!("{}-{engine}.cwasm", "cd".repeat(32)));
    std::fs::write(&old_version, b"an older build").unwrap();
    // Sparse: as large as the budget says, without using the disk.
    let other_engine = cache.join(format!("{}-0123456789abcdef.cwasm", "ab".repeat(32)));
    std::fs::File::create(&other_engine)
        .unwrap()
        .set_len(mozaiks_plugin_host::UNUSED_ENTRIES_BUDGET_BYTES)
        .unwrap();

    let second = Server::start(&setup).await;
    assert_eq!(probe(&second).await["from_cache"], true);
    until_removed(&other_engine, "the other engine's entry, at start").await;
    // The server says what it removed.
    let log = setup.logs_dir().join("mozaiks.log");
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("removed compiled components no loaded plugin uses") {
            assert!(text.contains("\"files\":1"), "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line of the pruning: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(in_use.exists(), "the loaded plugin's entry was removed");
    assert!(
        old_version.exists(),
        "an entry within the budget was removed"
    );

    // A hot reload prunes too, once the new version serves.
    std::fs::File::create(&other_engine)
        .unwrap()
        .set_len(mozaiks_plugin_host::UNUSED_ENTRIES_BUDGET_BYTES)
        .unwrap();
    lab.install(2);
    wait_for_probe(&second, |p| p["from_cache"] == false).await;
    until_removed(&other_engine, "the other engine's entry, after the reload").await;
    assert!(in_use.exists(), "version 1's entry is within the budget");
}

/// Waits until `file` is gone (the pruning runs after a load, on its own
/// thread); fails after [`EVENT_WAIT`] naming `what`.
async fn until_removed(file: &Path, what: &str) {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while file.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one compiled component in `cache`.
fn only_entry(cache: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

/// `mozaiks dev`: a plugin whose Rust sources change is rebuilt with the
/// SDK's build script and the result hot-reloaded; a build error is
/// reported like a refused reload and the served version stays.
#[tokio::test]
async fn dev_mode_rebuilds_a_plugin_from_its_sources_and_reports_build_errors() {
    let lab = Lab::new("reload-dev", 1, &["version"]);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = repo.join("tests/components/probe-v1");
    std::fs::create_dir_all(lab.probe.join("src")).unwrap();
    std::fs::copy(sources.join("src/probe.rs"), lab.probe.join("src/probe.rs")).unwrap();
    let sdk = repo.join("sdk").canonicalize().unwrap();
    // A package name of its own: cargo's output file in the shared
    // target/wasm is named after the package, and must not replace the
    // probe-v1 component other tests use.
    let manifest = std::fs::read_to_string(sources.join("Cargo.toml"))
        .unwrap()
        .replace("../../../sdk", sdk.to_str().unwrap())
        .replace("name = \"probe-v1\"", "name = \"probe-dev\"");
    std::fs::write(lab.probe.join("Cargo.toml"), manifest).unwrap();
    let lock = std::fs::read_to_string(sources.join("Cargo.lock"))
        .unwrap()
        .replace("name = \"probe-v1\"", "name = \"probe-dev\"");
    std::fs::write(lab.probe.join("Cargo.lock"), lock).unwrap();
    let lib = |version: &str| format!("const VERSION: u64 = {version};\ninclude!(\"probe.rs\");\n");
    std::fs::write(lab.probe.join("src/lib.rs"), lib("1")).unwrap();

    let llm = FakeLlm::start(worker).await;
    let server = Server::start_dev(&lab.setup(&llm), &repo.join("sdk/build-plugin")).await;
    let chat = server.start_chat("Probe").await;
    let mut events = server.ws_path("/api/events/ws").await;
    events.until_type("hello").await;

    // A syntax error: the build fails, its messages are pushed, v1 serves.
    write_atomically(&lab.probe.join("src/lib.rs"), lib("").as_bytes());
    let failed = events.until_type("reload").await;
    assert_reload(&failed, "build", "rejected");
    let output = failed["errors"].to_string();
    assert!(output.contains("error"), "{output}");
    assert_eq!(version_of(&call_tool(&server, &chat, "version").await), 1);

    // Fixed: it builds, and the new component is reloaded through the gate.
    write_atomically(&lab.probe.join("src/lib.rs"), lib("3").as_bytes());
    let built = events.until_type("reload").await;
    assert_reload(&built, "build", "loaded");
    let loaded = events.until_type("reload").await;
    assert_reload(&loaded, "plugin", "loaded");
    assert_eq!(version_of(&call_tool(&server, &chat, "version").await), 3);
}
