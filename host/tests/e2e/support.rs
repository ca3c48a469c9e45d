//! Drives the real `mozaiks` binary: starts it on a free loopback port
//! against a fake OpenAI-compatible server, talks HTTP and WebSocket to it,
//! and kills it when asked (or when dropped).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

pub use mozaiks_fake_llm::{ChatCall, FakeLlm, Gate, Reply};

/// How long a test waits for one expected event before it fails and shows
/// what it saw. Generous: CI machines are slow; a passing test never waits
/// this long.
pub const EVENT_WAIT: Duration = Duration::from_secs(30);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test workflows folder (`host/tests/e2e/workflows`).
pub fn test_workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/workflows")
}

/// The demo workflows folder (`workflows/`).
pub fn demo_workflows() -> PathBuf {
    repo_root().join("workflows")
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mozaiks-e2e-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_server_warnings(&self.0);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Prints the last warnings and errors of every server log under `dir`
/// (each server's `logs` folder), so that a failed test says what its
/// servers saw before the scratch dir goes.
fn print_server_warnings(dir: &Path) {
    /// Lines kept per log file.
    const LAST: usize = 25;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for path in entries.flatten().map(|entry| entry.path()) {
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.parent().and_then(Path::file_name) != Some("logs".as_ref()) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let notable: Vec<&str> = text
                .lines()
                .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                .collect();
            let shown = &notable[notable.len().saturating_sub(LAST)..];
            if !shown.is_empty() {
                eprintln!("--- last warnings and errors of {}:", path.display());
                for line in shown {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A plugins folder holding the demo plugin and the adversary test
/// component (both built by scripts/build-plugins).
pub fn plugins_dir(scratch: &Scratch) -> PathBuf {
    let dir = scratch.0.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, source) in [
        ("planner", repo_root().join("plugins/planner")),
        ("adversary", repo_root().join("tests/components/adversary")),
    ] {
        let wasm = source.join(format!("{name}.wasm"));
        assert!(
            wasm.is_file(),
            "{} is missing: run scripts/build-plugins (scripts/test does)",
            wasm.display()
        );
        std::os::unix::fs::symlink(&source, dir.join(name)).unwrap();
    }
    dir
}

/// Gives the adversary in `plugins` (a [`plugins_dir`]) a CPU deadline of
/// `deadline_ms` instead of its 1000 ms: its own folder, with the
/// component linked and the manifest rewritten. For tests whose UI tool
/// must not fail because a loaded machine took a second to store the
/// request (the host's work on a request counts against the deadline).
pub fn adversary_with_deadline(plugins: &Path, deadline_ms: u32) {
    let source = repo_root().join("tests/components/adversary");
    let dir = plugins.join("adversary");
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(source.join("adversary.wasm"), dir.join("adversary.wasm")).unwrap();
    let manifest = std::fs::read_to_string(source.join("plugin.toml")).unwrap();
    let relaxed = manifest.replace(
        "deadline_ms = 1000",
        &format!("deadline_ms = {deadline_ms}"),
    );
    assert_ne!(
        relaxed, manifest,
        "the adversary's manifest sets deadline_ms = 1000"
    );
    std::fs::write(dir.join("plugin.toml"), relaxed).unwrap();
}

/// A running `mozaiks serve`.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub base: String,
    http: reqwest::Client,
}

/// Where a server finds its parts.
#[derive(Debug, Clone)]
pub struct Setup {
    pub workflows: PathBuf,
    pub plugins: PathBuf,
    pub data: PathBuf,
    pub llm_url: Option<String>,
    /// More environment variables for the server.
    pub extra_env: Vec<(String, String)>,
    /// Seed the data dir's component cache from the one the tests share
    /// (`target/e2e-component-cache`), so that only the first server to
    /// load a component compiles it. Off for tests of the cache itself.
    pub share_component_cache: bool,
    /// Where the server's standard error goes (`None`: the test's own).
    pub stderr: Option<PathBuf>,
}

/// Which store a server keeps its chats in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The embedded store in the scratch dir.
    Embedded,
    /// A fresh database on the shared MongoDB test server.
    Mongo,
}

impl Setup {
    /// Where the server writes its log files (`<scratch>/logs`).
    pub fn logs_dir(&self) -> PathBuf {
        self.data.with_file_name("logs")
    }

    /// [`Setup::new`] on `store`.
    pub fn on(store: Store, scratch: &Scratch, llm: &FakeLlm) -> Self {
        let mut setup = Self::new(scratch, llm);
        if store == Store::Mongo {
            setup
                .extra_env
                .extend(mongo_env(mozaiks_test_mongo::shared_uri()));
        }
        setup
    }

    /// Test workflows, both plugins, a fresh data dir, this LLM.
    pub fn new(scratch: &Scratch, llm: &FakeLlm) -> Self {
        Self {
            workflows: test_workflows(),
            plugins: plugins_dir(scratch),
            data: scratch.0.join("data"),
            llm_url: Some(llm.base_url()),
            extra_env: Vec::new(),
            share_component_cache: true,
            stderr: None,
        }
    }
}

impl Server {
    /// Starts the binary and waits until it listens.
    pub async fn start(setup: &Setup) -> Self {
        Self::start_at(setup, "127.0.0.1:0").await
    }

    /// [`Server::start`] on `addr` (e.g. the address of a server that was
    /// killed, so that its clients find the new one).
    pub async fn start_at(setup: &Setup, addr: &str) -> Self {
        Self::launch(setup, addr, &["serve"]).await
    }

    /// `mozaiks dev` (serve, and rebuild plugins from their sources with
    /// `build_script`).
    pub async fn start_dev(setup: &Setup, build_script: &Path) -> Self {
        let script = build_script.to_str().unwrap();
        Self::launch(setup, "127.0.0.1:0", &["dev", "--build-script", script]).await
    }

    /// `mozaiks dev` with the repository's build scripts: sdk/build-plugin
    /// for Rust, scripts/setup-tool-toolchain for the other languages.
    pub async fn start_dev_for_every_language(setup: &Setup) -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rust = repo.join("sdk/build-plugin");
        let toolchains = repo.join("scripts/setup-tool-toolchain");
        let command_line = [
            "dev",
            "--build-script",
            rust.to_str().unwrap(),
            "--toolchain-script",
            toolchains.to_str().unwrap(),
        ];
        Self::launch(setup, "127.0.0.1:0", &command_line).await
    }

    /// Starts the binary and returns as soon as it listens, while its
    /// plugins may still be loading (`/health/ready` says `loading`).
    pub async fn start_listening(setup: &Setup) -> Self {
        Self::spawn(setup, "127.0.0.1:0", &["serve"]).await
    }

    /// Runs `mozaiks <command…>` with the setup's folders and environment,
    /// and waits for its first load of plugins and workflows.
    async fn launch(setup: &Setup, addr: &str, command_line: &[&str]) -> Self {
        let server = Self::spawn(setup, addr, command_line).await;
        server
            .eventually("/health/ready", |_, body| body.get("loading").is_none())
            .await;
        if setup.share_component_cache {
            shared_component_cache::collect(&setup.data);
        }
        server
    }

    /// Runs `mozaiks <command…>` and waits until it listens.
    async fn spawn(setup: &Setup, addr: &str, command_line: &[&str]) -> Self {
        if setup.share_component_cache {
            shared_component_cache::seed(&setup.data);
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_mozaiks"));
        command
            .args(command_line)
            .args(["--addr", addr])
            .arg("--workflows-dir")
            .arg(&setup.workflows)
            .arg("--plugins-dir")
            .arg(&setup.plugins)
            .arg("--data-dir")
            .arg(&setup.data)
            .env_remove("OPENAI_API_KEY")
            .env_remove("MONGO_URI")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("MOZAIKS_API_KEYS")
            .env_remove("MOZAIKS_AUTH")
            .env_remove("MOZAIKS_SECRETS_DIR")
            .env_remove("MOZAIKS_ENV_FILE")
            // Tests run as a developer would (no auth) unless they opt in
            // through `extra_env` (see `access.rs`).
            .env("ENVIRONMENT", "development")
            .env("MOZAIKS_LOG_DIR", setup.logs_dir())
            .env("MOZAIKS_DEFAULT_MODEL", "fake-model")
            // MOZAIKS_TEST_LOG=info shows the servers' logs.
            .env(
                "LOG_LEVEL",
                std::env::var("MOZAIKS_TEST_LOG").unwrap_or_else(|_| "off".to_owned()),
            )
            .stdout(Stdio::piped())
            .stderr(match &setup.stderr {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::inherit(),
            })
            .kill_on_drop(true);
        command.envs(setup.extra_env.iter().map(|(k, v)| (k, v)));
        if let Some(url) = &setup.llm_url {
            command
                .env("OPENAI_BASE_URL", url)
                .env("OPENAI_API_KEY", "test-key");
        }
        let mut child = command.spawn().expect("spawn mozaiks");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(EVENT_WAIT, lines.next_line())
            .await
            .expect("mozaiks did not start in time")
            .unwrap()
            .expect("mozaiks exited before listening");
        let base = line
            .strip_prefix("mozaiks listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        mozaiks_host::install_crypto_provider();
        Self {
            child,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Kills the process without warning (SIGKILL), as a crash would.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Sends the server SIGTERM, as a deploy tool or `systemctl stop` does
    /// (it does not wait for the process to exit).
    pub async fn sigterm(&self) {
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit on its own; its exit code.
    pub async fn exit_code(mut self) -> Option<i32> {
        tokio::time::timeout(EVENT_WAIT, self.child.wait())
            .await
            .expect("the server did not exit in time")
            .unwrap()
            .code()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts a chat and returns its id.
    pub async fn start_chat(&self, workflow: &str) -> String {
        let (status, body) = self
            .post(
                "/api/chats",
                json!({"app_id": "app", "user_id": "alice", "workflow": workflow}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["chat_id"].as_str().unwrap().to_owned()
    }

    /// Opens the chat's WebSocket, replaying events after `after`.
    pub async fn ws(&self, chat_id: &str, after: u64) -> Ws {
        let url = format!(
            "{}/api/chats/{chat_id}/ws?after={after}",
            self.base.replacen("http", "ws", 1)
        );
        Ws::connect(&url).await
    }

    /// Opens a WebSocket at a raw path (for the MozaiksAI form).
    pub async fn ws_path(&self, path: &str) -> Ws {
        Ws::connect(&format!("{}{path}", self.base.replacen("http", "ws", 1))).await
    }

    /// The chat's persisted events.
    pub async fn events(&self, chat_id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/api/chats/{chat_id}/events")).await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().unwrap().clone()
    }
}

impl Server {
    /// Polls `GET path` until `done` holds (background jobs run on their
    /// own clock); fails after [`EVENT_WAIT`] with the last answer.
    pub async fn eventually(&self, path: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            let (status, body) = self.get(path).await;
            if done(status, &body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never got there; last answer {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A WebSocket client that remembers everything it received.
#[derive(Debug)]
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub seen: Vec<Value>,
    /// The code of the server's close frame, once it came.
    pub close_code: Option<u16>,
}

impl Ws {
    /// Opens the WebSocket at `url` (`ws://…`); panics when it cannot.
    pub async fn connect(url: &str) -> Self {
        Self::try_connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"))
    }

    /// Opens the WebSocket at `url` (a server that is stopping refuses).
    pub async fn try_connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self {
            stream,
            seen: Vec::new(),
            close_code: None,
        })
    }

    /// The next frame within `wait`; `Err` when none came in time,
    /// `Ok(None)` when the server closed the socket.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
        tokio::time::timeout(wait, self.next())
            .await
            .map_err(|_| ())
    }

    /// The next message; `None` when the server closed the socket.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(EVENT_WAIT, self.stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no message within {EVENT_WAIT:?}; seen: {}",
                        summary(&self.seen)
                    )
                })?;
            match message.ok()? {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    self.seen.push(value.clone());
                    return Some(value);
                }
                Message::Close(frame) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    return None;
                }
                _ => {}
            }
        }
    }

    /// Skips messages until one matches; returns it.
    pub async fn until(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Some(value) if matches(&value) => return value,
                Some(_) => {}
                None => panic!("socket closed before {what}; seen: {}", summary(&self.seen)),
            }
        }
    }

    /// Skips messages until one of `type` arrives.
    pub async fn until_type(&mut self, kind: &str) -> Value {
        self.until(kind, |v| v["type"] == kind).await
    }

    /// Waits for the run to reach `status`.
    pub async fn until_status(&mut self, status: &str) -> Value {
        self.until(&format!("run_status {status}"), |v| {
            v["type"] == "run_status" && v["status"] == status
        })
        .await
    }

    pub async fn send(&mut self, value: Value) {
        self.stream
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Everything readable under `dir`, concatenated: the server's log files,
/// searched for what must not leak.
pub fn all_files(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&all_files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

/// One line per event: `seq type detail`.
pub fn summary(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            let detail = e
                .get("agent")
                .or_else(|| e.get("status"))
                .or_else(|| e.get("to"))
                .cloned()
                .unwrap_or(Value::Null);
            let detail = match e.get("message") {
                Some(message) => format!("{detail} {message}"),
                None => detail.to_string(),
            };
            format!("\n  {} {} {}", e["seq"], e["type"], detail)
        })
        .collect()
}

/// The agents of the `speaker` events, in order.
pub fn speakers(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "speaker")
        .map(|e| e["agent"].as_str().unwrap().to_owned())
        .collect()
}

/// Events of one type.
pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// An LLM whose agent calls the adversary's `ask` (component `Confirm`,
/// waiting `timeout_ms`), then, once it has the tool's result, says `then`.
pub fn confirm_asker(
    timeout_ms: u64,
    then: &'static str,
) -> impl Fn(&ChatCall) -> Reply + Send + Sync + 'static {
    move |call| {
        if call.tool_results().is_empty() {
            Reply::tool_call(
                "ask",
                json!({"component": "Confirm", "payload": {"q": "ok?"}, "timeout_ms": timeout_ms}),
            )
        } else {
            Reply::text(then)
        }
    }
}

/// The agent a request was made for (from its system message "You are X.").
pub fn agent_of(call: &ChatCall) -> String {
    let system = call.system();
    system
        .find("You are ")
        .and_then(|at| system[at + "You are ".len()..].split(['.', ' ']).next())
        .unwrap_or_default()
        .to_owned()
}

/// The environment that puts a server on MongoDB at `uri`, in a database
/// of its own.
pub fn mongo_env(uri: &str) -> Vec<(String, String)> {
    vec![
        ("MONGO_URI".into(), uri.to_owned()),
        (
            "MONGO_DB".into(),
            format!("mozaiks_e2e_{}", uuid::Uuid::new_v4().simple()),
        ),
        // Fail fast when the server is down, so outage tests run quickly.
        ("MONGO_SERVER_SELECTION_TIMEOUT_MS".into(), "1500".into()),
    ]
}

/// Compiled components shared between the servers of the test run.
///
/// Every test starts servers on a fresh data dir, and compiling the same
/// components again in each was most of the suite's CPU time. The entries
/// are named by the component's hash and the engine's fingerprint, so a
/// changed component or binary never matches a stale one.
pub mod shared_component_cache {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    /// The cache the test servers and `mozaiks tool` commands share.
    pub fn shared_dir() -> PathBuf {
        // The workspace's target dir: beside the test binary's `deps/`.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        profile_dir.join("e2e-component-cache")
    }

    fn cache_dir(data: &Path) -> PathBuf {
        data.join("component-cache")
    }

    /// Copies `from` into `to` through a temporary name, so that a reader
    /// never sees half a file.
    fn copy_atomically(from: &Path, to: &Path) {
        let tmp = to.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::copy(from, &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, to);
        }
        let _ = std::fs::remove_file(&tmp);
    }

    /// Gives `to` every entry of `from` it lacks: a hard link (entries are
    /// never written in place, a server replaces one by renaming), or a
    /// copy across file systems. Copies filled the disk: the shared cache
    /// of a long-lived checkout held 4.2 GiB, and each of a test run's ~200
    /// servers got all of it (the store's database then failed with "disk
    /// is full").
    fn copy_new_entries(from: &Path, to: &Path) {
        let Ok(entries) = std::fs::read_dir(from) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                let target = to.join(entry.file_name());
                if target.exists() {
                    continue;
                }
                match std::fs::hard_link(&path, &target) {
                    Err(error) if error.kind() == std::io::ErrorKind::CrossesDevices => {
                        copy_atomically(&path, &target);
                    }
                    // Linked, or another server got it first.
                    _ => {}
                }
            }
        }
    }

    fn private_dir(dir: &Path) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// Gives a data dir every component compiled so far.
    pub(super) fn seed(data: &Path) {
        let dir = cache_dir(data);
        private_dir(&dir);
        copy_new_entries(&shared_dir(), &dir);
    }

    /// Keeps what a server compiled for the servers after it.
    pub(super) fn collect(data: &Path) {
        let shared = shared_dir();
        private_dir(&shared);
        copy_new_entries(&cache_dir(data), &shared);
    }
}

/// Waits until the fake LLM has received `n` requests.
pub async fn until_calls(llm: &FakeLlm, n: usize) {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while llm.calls().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the LLM got {} calls",
            llm.calls().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The parsed content of the successful results of `tool`, in order (a
/// failed one fails the test).
/// The effects the `effects` test tool's `ledger` call found in the app's
/// data (its first `ledger` result), sorted by label.
pub fn ledger_effects(events: &[Value]) -> Vec<Value> {
    let ledger = results_of(events, "ledger");
    let mut effects = ledger[0]["effects"].as_array().unwrap().clone();
    effects.sort_by_key(|e| e["label"].as_str().unwrap().to_owned());
    effects
}

pub fn results_of(events: &[Value], tool: &str) -> Vec<Value> {
    of_type(events, "tool_result")
        .into_iter()
        .filter(|r| r["tool"] == tool)
        .map(|r| {
            assert_eq!(r["ok"], true, "{r}");
            serde_json::from_str(r["content"].as_str().unwrap()).unwrap()
        })
        .collect()
}
