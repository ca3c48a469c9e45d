//! The developer console in a real browser: headless Chromium (Debian's
//! `chromium`) driven by playwright-core from `tests/console/console.e2e.mjs`,
//! against the real binary, the demo workflow (PlanReview) and the fake LLM.
//! The script asks this test, on its stdout, to replace a plugin on disk and
//! to kill and restart the server; screenshots of every step go to
//! `target/console-artifacts/<script>/`. `scripts/setup-browser-tests`
//! installs Chromium and playwright-core. The last test checks the console's
//! and the components' routes over plain HTTP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::*;

/// The longest the whole browser script may run: every step waits for a
/// condition, this only stops a hung browser.
const SCRIPT_WAIT: Duration = Duration::from_secs(300);

/// How long each piece of the Planner's streamed reply waits: long enough
/// for the page to show the draft before the complete message replaces it.
const STREAM_GAP: Duration = Duration::from_millis(600);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// PlanReview's model: the Planner plans with tools then streams a short
/// reply; the Reviewer asks for approval, then gives its verdict from the
/// answer.
fn plan_review_llm(call: &ChatCall) -> Reply {
    let after_tools = call.last_message()["role"] == "tool";
    match agent_of(call).as_str() {
        "Planner" if after_tools => Reply::SlowStream {
            pieces: vec![
                "The plan ".into(),
                "is ready ".into(),
                "for review.".into(),
            ],
            gap: STREAM_GAP,
        },
        "Planner" if call.last_text().contains("budget") => Reply::ToolCalls(vec![
            (
                "add_task".into(),
                json!({"title": "Set a budget", "priority": "high"}),
            ),
            (
                "complete_plan".into(),
                json!({"summary": "Budget, venue, then invites."}),
            ),
        ]),
        "Planner" => Reply::ToolCalls(vec![
            (
                "add_task".into(),
                json!({"title": "Book venue", "priority": "high"}),
            ),
            ("add_task".into(), json!({"title": "Send invites"})),
            (
                "complete_plan".into(),
                json!({"summary": "Venue, then invites."}),
            ),
        ]),
        "Reviewer" if after_tools && call.last_text().contains(r#""approved":true"#) => Reply::text(
            json!({"verdict": "approved", "concerns": [], "message": "Approved, go ahead."})
                .to_string(),
        ),
        "Reviewer" if after_tools => Reply::text(
            json!({"verdict": "needs_changes", "concerns": ["No budget"], "message": "Please add a budget."})
                .to_string(),
        ),
        "Reviewer" => Reply::tool_call(
            "request_approval",
            json!({"question": "Approve this plan?", "details": "Check the order of the tasks."}),
        ),
        "Asker" => confirm_llm(call),
        other => Reply::Status(500, format!("unexpected agent {other}")),
    }
}

/// How long the first `Confirm` request of ConsoleArtifact waits: short, so
/// the page shows it expire.
const SHORT_TIMEOUT_MS: u64 = 1500;

/// ConsoleArtifact's model: a `Confirm` request nobody answers, then one
/// the user answers with the workflow's own component, then a reply.
fn confirm_llm(call: &ChatCall) -> Reply {
    match call.tool_results().len() {
        0 => Reply::tool_call(
            "ask",
            json!({"component": "Confirm", "payload": {"question": "Ship it now?"}, "timeout_ms": SHORT_TIMEOUT_MS}),
        ),
        1 => Reply::tool_call(
            "ask",
            json!({"component": "Confirm", "payload": {"question": "Ship it after all?"}, "timeout_ms": 300_000}),
        ),
        _ => Reply::text("Shipped."),
    }
}

/// A workflows folder with the demo, the console's own test workflow and a
/// broken one (a fixture whose handoff names an unknown agent).
fn workflows_dir(scratch: &Scratch) -> PathBuf {
    let dir = scratch.0.join("console-workflows");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, source) in [
        ("PlanReview", demo_workflows().join("PlanReview")),
        (
            "ConsoleArtifact",
            repo_root().join("tests/console/workflows/ConsoleArtifact"),
        ),
        (
            "unknown_agent_in_handoff",
            repo_root().join("tests/fixtures/workflows/unknown_agent_in_handoff"),
        ),
    ] {
        std::os::unix::fs::symlink(source, dir.join(name)).unwrap();
    }
    dir
}

/// A plugins folder with a copy of the planner (not a link: the test
/// replaces its component) and the adversary test component.
fn plugins_with_a_planner_copy(scratch: &Scratch) -> PathBuf {
    let source = repo_root().join("plugins/planner");
    let dir = scratch.0.join("console-plugins/planner");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["plugin.toml", "planner.wasm"] {
        assert!(
            source.join(file).is_file(),
            "{} is missing: run scripts/build-plugins (scripts/test does)",
            source.join(file).display()
        );
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let adversary = repo_root().join("tests/components/adversary");
    assert!(
        adversary.join("adversary.wasm").is_file(),
        "the adversary component is missing: run scripts/build-plugins"
    );
    std::os::unix::fs::symlink(adversary, scratch.0.join("console-plugins/adversary")).unwrap();
    scratch.0.join("console-plugins")
}

/// Writes a new version of a component: the same code plus a custom
/// section, so its hash changes, replaced atomically as a deploy would.
fn replace_component(wasm: &Path, generation: u32) {
    let mut bytes = std::fs::read(wasm).unwrap();
    let name = b"mozaiks-console-test";
    let payload = format!("generation {generation}");
    let mut section = vec![u8::try_from(name.len()).unwrap()];
    section.extend_from_slice(name);
    section.extend_from_slice(payload.as_bytes());
    bytes.push(0); // custom section id
    bytes.push(u8::try_from(section.len()).unwrap()); // size, < 128: one LEB128 byte
    bytes.extend_from_slice(&section);
    let temporary = wasm.with_extension("wasm.new");
    std::fs::write(&temporary, &bytes).unwrap();
    std::fs::rename(&temporary, wasm).unwrap();
}

/// A browser script of `tests/console/` running under node: its
/// requests (`@@ <request>` lines on its stdout) are read one at a time and
/// answered with [`BrowserScript::done`]; its other lines are shown.
struct BrowserScript {
    node: tokio::process::Child,
    answers: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    deadline: tokio::time::Instant,
    artifacts: PathBuf,
}

impl BrowserScript {
    /// Runs `tests/console/<script>` against `base`, with screenshots in
    /// `target/console-artifacts/<name>/` and more environment `env`.
    fn start(script: &str, base: &str, env: &[(&str, &str)]) -> Self {
        let script_dir = repo_root().join("tests/console");
        let chromium =
            std::env::var("MOZAIKS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).is_file(),
            "{chromium} is missing: run scripts/setup-browser-tests (scripts/test does)"
        );
        assert!(
            script_dir.join("node_modules/playwright-core").is_dir(),
            "playwright-core is not installed in tests/console: run scripts/setup-browser-tests"
        );
        let name = script.trim_end_matches(".e2e.mjs");
        let artifacts = repo_root().join("target/console-artifacts").join(name);
        let _ = std::fs::remove_dir_all(&artifacts);
        let mut node = Command::new("node")
            .arg(script_dir.join(script))
            .current_dir(&script_dir)
            .env("MOZAIKS_CONSOLE_URL", base)
            .env("MOZAIKS_CONSOLE_ARTIFACTS", &artifacts)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("run node (scripts/setup-browser-tests installs it)");
        Self {
            answers: node.stdin.take().unwrap(),
            lines: BufReader::new(node.stdout.take().unwrap()).lines(),
            node,
            deadline: tokio::time::Instant::now() + SCRIPT_WAIT,
            artifacts,
        }
    }

    /// The script's next request; `None` when it has ended.
    async fn next(&mut self) -> Option<String> {
        loop {
            let line = tokio::time::timeout_at(self.deadline, self.lines.next_line())
                .await
                .expect("the browser script did not finish in time")
                .unwrap()?;
            match line.strip_prefix("@@ ") {
                Some(request) => return Some(request.to_owned()),
                None => eprintln!("browser: {line}"),
            }
        }
    }

    /// Tells the script its request is done.
    async fn done(&mut self) {
        self.answers.write_all(b"ok\n").await.unwrap();
    }

    /// Waits for the script to exit and fails the test if it failed.
    async fn finish(mut self) -> PathBuf {
        let status = self.node.wait().await.unwrap();
        assert!(
            status.success(),
            "the browser script failed ({status}); screenshots in {}",
            self.artifacts.display()
        );
        self.artifacts
    }
}

/// Fails unless a screenshot of each step was saved.
fn assert_screenshots(artifacts: &Path, steps: &[&str]) {
    let names: Vec<String> = std::fs::read_dir(artifacts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for step in steps {
        assert!(
            names.iter().any(|n| n.ends_with(&format!("-{step}.png"))),
            "no screenshot of step {step} in {}: {names:?}",
            artifacts.display()
        );
    }
}

/// Start a chat in the demo, answer its UI tool through the generated form,
/// watch the context panel change, replace a plugin and see the reload
/// toast, restart the server and go on with the chat, look at it on a
/// phone; then a workflow whose own component answers in the artifact
/// panel after a first request expired. All in the browser.
#[tokio::test]
async fn the_console_runs_the_demo_across_a_plugin_reload_and_a_server_restart() {
    let scratch = Scratch::new("console");
    let llm = FakeLlm::start(plan_review_llm).await;
    let setup = Setup {
        workflows: workflows_dir(&scratch),
        plugins: plugins_with_a_planner_copy(&scratch),
        extra_env: vec![("ENVIRONMENT".into(), "development".into())],
        ..Setup::new(&scratch, &llm)
    };
    let wasm = setup.plugins.join("planner/planner.wasm");
    let mut server = Some(Server::start(&setup).await);
    let base = server.as_ref().unwrap().base.clone();
    let addr = base.trim_start_matches("http://").to_owned();

    let mut script = BrowserScript::start("console.e2e.mjs", &base, &[]);
    let (mut chat, mut artifact_chat) = (None, None);
    let mut generation = 0;
    while let Some(request) = script.next().await {
        match request.split_once(' ') {
            Some(("chat", id)) => chat = Some(id.to_owned()),
            Some(("artifact-chat", id)) => artifact_chat = Some(id.to_owned()),
            _ => {
                match request.as_str() {
                    "replace-plugin" => {
                        generation += 1;
                        replace_component(&wasm, generation);
                    }
                    "kill-server" => server.take().unwrap().kill().await,
                    "start-server" => server = Some(Server::start_at(&setup, &addr).await),
                    other => panic!("unknown request from the browser script: {other}"),
                }
                script.done().await;
            }
        }
    }
    let artifacts = script.finish().await;

    // What the page did, as the server recorded it.
    let server = server.unwrap();
    let chat = chat.expect("the script named its chat");
    let events = server.events(&chat).await;
    let answers: Vec<&Value> = of_type(&events, "ui_response")
        .into_iter()
        .filter(|r| r["status"] == "answered")
        .map(|r| &r["answer"])
        .collect();
    assert_eq!(
        answers,
        [
            &json!({"approved": false, "comment": "Add a budget line"}),
            &json!({"approved": true}),
        ],
        "the generated form sent exactly what was filled in"
    );
    let (_, record) = server.get(&format!("/api/chats/{chat}")).await;
    assert_eq!(record["status"], "completed");
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["tasks"].as_array().unwrap().len(), 3);
    let confirm = artifact_chat.expect("the script named its ConsoleArtifact chat");
    let events = server.events(&confirm).await;
    let outcomes: Vec<(&Value, &Value)> = of_type(&events, "ui_response")
        .into_iter()
        .map(|r| (&r["status"], &r["answer"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&json!("timeout"), &Value::Null),
            (&json!("answered"), &json!({"confirmed": true})),
        ],
        "the first request expired, the component answered the second"
    );
    assert_screenshots(
        &artifacts,
        &[
            "console",
            "ui-request-form",
            "answered-context-changed",
            "plugin-reload-toast",
            "reconnected",
            "chat-completed",
            "phone-chat",
            "artifact-component",
        ],
    );
}

/// A key the auth test's server accepts, for app `acme` and user `alice`.
const CONSOLE_KEY: &str = "console-test-key-5f0c2a9e41d7b3";

/// With auth on, the page loads without a key and says the API refuses it;
/// once the key is entered, every request and both sockets carry it.
#[tokio::test]
async fn the_console_sends_its_api_key_when_the_server_requires_one() {
    let scratch = Scratch::new("console-auth");
    let llm = FakeLlm::start(plan_review_llm).await;
    let setup = Setup {
        workflows: demo_workflows(),
        extra_env: vec![
            ("ENVIRONMENT".into(), "development".into()),
            ("MOZAIKS_AUTH".into(), "on".into()),
            (
                "MOZAIKS_API_KEYS".into(),
                format!("{CONSOLE_KEY}=acme:alice"),
            ),
        ],
        ..Setup::new(&scratch, &llm)
    };
    let server = Server::start(&setup).await;
    let (status, _) = server.get("/api/workflows").await;
    assert_eq!(status, 401, "the server does not require a key");

    let mut script = BrowserScript::start(
        "auth.e2e.mjs",
        &server.base,
        &[("MOZAIKS_CONSOLE_KEY", CONSOLE_KEY)],
    );
    let mut chat = None;
    while let Some(request) = script.next().await {
        match request.split_once(' ') {
            Some(("chat", id)) => chat = Some(id.to_owned()),
            _ => panic!("unknown request from the browser script: {request}"),
        }
    }
    let artifacts = script.finish().await;

    let chat = chat.expect("the script named its chat");
    let record: Value = reqwest::Client::new()
        .get(format!("{}/api/chats/{chat}", server.base))
        .bearer_auth(CONSOLE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&record["app_id"], &record["user_id"], &record["status"]),
        (&json!("acme"), &json!("alice"), &json!("completed")),
        "the chat belongs to the key's app and user: {record}"
    );
    assert_screenshots(&artifacts, &["auth-no-key", "auth-chat-completed"]);
}

/// The form the console generates from a JSON Schema offers a field for
/// each kind of value, checks required fields and limits, and reads back
/// a value of the schema's types.
#[tokio::test]
async fn the_generated_form_covers_the_json_schema_kinds() {
    let scratch = Scratch::new("console-form");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let mut script = BrowserScript::start("schemaform.e2e.mjs", &server.base, &[]);
    if let Some(request) = script.next().await {
        panic!("unknown request from the browser script: {request}");
    }
    let artifacts = script.finish().await;
    assert_screenshots(&artifacts, &["form-errors", "form-filled"]);
}

/// An LLM failure shows as an error and an interrupted run; the page's
/// Continue button retries it.
#[tokio::test]
async fn the_console_shows_an_llm_error_and_continues_the_interrupted_run() {
    let scratch = Scratch::new("console-errors");
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&calls);
    let llm = FakeLlm::start(move |_| {
        // async-openai retries a 5xx three times itself: fail all four.
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 4 {
            Reply::Status(503, "the model is overloaded".into())
        } else {
            Reply::text(r#"{"score": 4, "reason": "after continue"}"#)
        }
    })
    .await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let mut script = BrowserScript::start("errors.e2e.mjs", &server.base, &[]);
    if let Some(request) = script.next().await {
        panic!("unknown request from the browser script: {request}");
    }
    let artifacts = script.finish().await;
    assert_screenshots(&artifacts, &["interrupted", "continued"]);
}

/// The console's files and a workflow's components are served with their
/// types and ETags; nothing outside a components folder is, whatever the
/// name or a link inside it says.
#[tokio::test]
async fn workflow_components_are_served_and_nothing_outside_their_folder() {
    let scratch = Scratch::new("console-components");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let source = repo_root().join("tests/console/workflows/ConsoleArtifact");
    let workflow = scratch.0.join("workflows/ConsoleArtifact");
    let components = workflow.join("components");
    std::fs::create_dir_all(&components).unwrap();
    for file in ["orchestrator.json", "agents.json", "tools.json"] {
        std::fs::copy(source.join(file), workflow.join(file)).unwrap();
    }
    std::fs::copy(
        source.join("components/Confirm.js"),
        components.join("Confirm.js"),
    )
    .unwrap();
    std::fs::write(
        components.join("Confirm.schema.json"),
        r#"{"type": "object"}"#,
    )
    .unwrap();
    std::fs::write(components.join("page.html"), "<script>alert(1)</script>").unwrap();
    std::os::unix::fs::symlink(workflow.join("tools.json"), components.join("escape.json"))
        .unwrap();
    let setup = Setup {
        workflows: scratch.0.join("workflows"),
        ..Setup::new(&scratch, &llm)
    };
    let server = Server::start(&setup).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", server.base)).send();

    let (status, body) = server
        .get("/api/workflows/ConsoleArtifact/components")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["files"], json!(["Confirm.js", "Confirm.schema.json"]));

    let module = get("/api/workflows/ConsoleArtifact/components/Confirm.js")
        .await
        .unwrap();
    assert_eq!(module.status(), 200);
    assert_eq!(
        module.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = module.headers()["etag"].clone();
    assert!(
        module
            .text()
            .await
            .unwrap()
            .contains("export function render")
    );
    let again = http
        .get(format!(
            "{}/api/workflows/ConsoleArtifact/components/Confirm.js",
            server.base
        ))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    for (path, code) in [
        (
            "/api/workflows/ConsoleArtifact/components/..%2Ftools.json",
            "COMPONENT_NOT_FOUND",
        ),
        (
            "/api/workflows/ConsoleArtifact/components/escape.json",
            "COMPONENT_NOT_FOUND",
        ),
        (
            "/api/workflows/ConsoleArtifact/components/page.html",
            "COMPONENT_NOT_FOUND",
        ),
        (
            "/api/workflows/ConsoleArtifact/components/Missing.js",
            "COMPONENT_NOT_FOUND",
        ),
        (
            "/api/workflows/Nope/components/Confirm.js",
            "UNKNOWN_WORKFLOW",
        ),
        ("/api/workflows/Nope/components", "UNKNOWN_WORKFLOW"),
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{path}: {body}"
        );
    }

    let page = get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self' blob:")
    );
    assert!(page.text().await.unwrap().contains("/console/console.js"));
    let script = get("/console/console.js").await.unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let (status, _) = server.get("/console/nope.js").await;
    assert_eq!(status, 404);
}

/// `visual_agents` (ui_config): in the ChatUi test workflow only Reviewer
/// and the user are chat bubbles; Scribe's message is a trace line.
#[tokio::test]
async fn the_console_shows_only_visual_agents_as_chat_bubbles() {
    let scratch = Scratch::new("console-visual");
    let llm = FakeLlm::start(|call| match agent_of(call).as_str() {
        "Scribe" => Reply::text("Noted the release."),
        _ => Reply::text("Reviewed, looks fine."),
    })
    .await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let mut script = BrowserScript::start("visual.e2e.mjs", &server.base, &[]);
    if let Some(request) = script.next().await {
        panic!("unknown request from the browser script: {request}");
    }
    let artifacts = script.finish().await;
    assert_screenshots(&artifacts, &["visual-agents"]);
}
