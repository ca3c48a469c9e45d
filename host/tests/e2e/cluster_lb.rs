//! docs/operations.md, "Running several servers", for real: its nginx
//! example, taken from the docs between their markers, runs Debian's nginx
//! in front of two `mozaiks serve` processes in cluster mode on one MongoDB
//! database; a chat goes through it over HTTP and WebSocket while both
//! servers are restarted one after the other (the rolling deploy). And
//! `GET /api/cluster` (docs/protocol.md) field by field, in single and in
//! cluster mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mozaiks_test_mongo::free_port;
use serde_json::{Value, json};

use crate::support::*;

/// The nginx to run: `MOZAIKS_NGINX`, else Debian's.
fn nginx_binary() -> PathBuf {
    let nginx = std::env::var("MOZAIKS_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
    let nginx = PathBuf::from(nginx);
    assert!(
        nginx.is_file(),
        "{} is missing: run scripts/setup-lb-tests (scripts/test does)",
        nginx.display()
    );
    nginx
}

/// The nginx example of docs/operations.md, between its markers, without
/// its code fence.
fn documented_nginx_example() -> String {
    let docs = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let (_, rest) = docs
        .split_once("<!-- nginx-example-begin -->")
        .expect("the begin marker");
    let (block, _) = rest
        .split_once("<!-- nginx-example-end -->")
        .expect("the end marker");
    let block = block.trim();
    block
        .strip_prefix("```nginx")
        .and_then(|b| b.strip_suffix("```"))
        .expect("one ```nginx block between the markers")
        .to_owned()
}

/// The example with this test's addresses: the two upstream servers and
/// the listening port replaced, nothing else.
fn example_for(upstreams: [u16; 2], listen: u16) -> String {
    let example = documented_nginx_example();
    for line in [
        "server 10.0.0.11:8080 max_fails=0;",
        "server 10.0.0.12:8080 max_fails=0;",
        "listen 80;",
    ] {
        assert_eq!(example.matches(line).count(), 1, "`{line}` in {example}");
    }
    example
        .replace(
            "server 10.0.0.11:8080 ",
            &format!("server 127.0.0.1:{} ", upstreams[0]),
        )
        .replace(
            "server 10.0.0.12:8080 ",
            &format!("server 127.0.0.1:{} ", upstreams[1]),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{listen};"))
}

/// A running nginx with the example; stopped on drop.
struct Nginx {
    child: tokio::process::Child,
    base: String,
    dir: PathBuf,
}

impl Nginx {
    /// Runs the example inside a minimal `nginx.conf` whose files are all
    /// in `dir` (one process, in the foreground).
    async fn start(dir: &Path, upstreams: [u16; 2]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log {d}/access.log;\n client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n{}\n}}\n",
            example_for(upstreams, port)
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = tokio::process::Command::new(nginx_binary())
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nginx");
        let nginx = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_owned(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not listen: {}",
                nginx.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// `GET path` through nginx.
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` through nginx.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The chat's socket through nginx, replaying after `after`.
    async fn ws(&self, chat: &str, after: u64) -> Ws {
        let url = format!(
            "{}/api/chats/{chat}/ws?after={after}",
            self.base.replacen("http", "ws", 1)
        );
        Ws::connect(&url).await
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("nginx's error log:\n{}", self.error_log());
        }
        let _ = self.child.start_kill();
    }
}

fn handoffs_llm(call: &ChatCall) -> Reply {
    match agent_of(call).as_str() {
        "Triage" => Reply::tool_call("transfer_to_Billing", json!({})),
        "Billing" => Reply::tool_call("complete_plan", json!({"summary": "done"})),
        _ => Reply::text("Bye!"),
    }
}

/// `base` for server `id` of a cluster on database `mongo`.
fn cluster_setup(scratch: &Scratch, base: &Setup, id: &str, mongo: &[(String, String)]) -> Setup {
    let mut setup = base.clone();
    setup.data = scratch.0.join(format!("data-{id}"));
    setup.extra_env.extend(mongo.iter().cloned());
    setup.extra_env.extend([
        ("MOZAIKS_CLUSTER".to_owned(), "on".to_owned()),
        ("MOZAIKS_SERVER_ID".to_owned(), id.to_owned()),
        ("MOZAIKS_LEASE_SECS".to_owned(), "2".to_owned()),
    ]);
    setup
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["seq"].as_u64()).collect()
}

/// The proxy's read timeout outlasts the console's ping interval, so an
/// idle console socket is never cut by nginx.
#[test]
fn the_example_read_timeout_outlasts_the_consoles_ping_interval() {
    let example = documented_nginx_example();
    let timeout = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("proxy_read_timeout "))
        .expect("proxy_read_timeout in the example")
        .trim_end_matches(';');
    let secs: u64 = match timeout.strip_suffix('h') {
        Some(hours) => hours.parse::<u64>().unwrap() * 3600,
        None => timeout.trim_end_matches('s').parse().unwrap(),
    };
    let socket_js = std::fs::read_to_string(repo_root().join("host/console/socket.js")).unwrap();
    let ping_ms: u64 = socket_js
        .lines()
        .find_map(|l| l.strip_prefix("const PING_INTERVAL_MS = "))
        .expect("PING_INTERVAL_MS in socket.js")
        .trim_end_matches(';')
        .parse()
        .unwrap();
    assert!(secs * 1000 > ping_ms, "{secs} s against {ping_ms} ms");
    // No stickiness: any server serves any chat.
    for sticky in ["ip_hash", "sticky", "hash "] {
        assert!(!example.contains(sticky), "{sticky} in {example}");
    }
}

/// A single server answers `GET /api/cluster` with itself alone: every
/// field docs/protocol.md documents, its own plugin and workflow versions,
/// no leases, no skew.
#[tokio::test]
async fn a_single_server_lists_itself_with_its_versions_and_no_leases() {
    let scratch = Scratch::new("cluster-single");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let (status, cluster) = server.get("/api/cluster").await;
    assert_eq!(status, 200, "{cluster}");
    assert_eq!(cluster["mode"], "single", "{cluster:#}");
    assert_eq!(cluster["lease_ttl_ms"], 10_000, "{cluster:#}");
    let servers = cluster["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{cluster:#}");
    let me = &servers[0];
    assert_eq!(me["id"], cluster["server_id"]);
    assert_eq!(
        format!("http://{}", me["address"].as_str().unwrap()),
        server.base
    );
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(me["alive"], true);
    assert_eq!(me["leases"], 0);
    assert!(me["started_at"].as_u64().unwrap() <= me["last_seen"].as_u64().unwrap());
    // Its versions are those /api/plugins and /api/workflows show.
    let (_, plugins) = server.get("/api/plugins").await;
    for plugin in plugins["plugins"].as_array().unwrap() {
        let id = plugin["id"].as_str().unwrap();
        assert_eq!(me["plugins"][id], plugin["hash"], "{id}: {cluster:#}");
    }
    let (_, workflows) = server.get("/api/workflows").await;
    let valid: Vec<&Value> = workflows["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["valid"] == true)
        .collect();
    assert!(!valid.is_empty());
    for workflow in valid {
        let name = workflow["name"].as_str().unwrap();
        assert_eq!(me["workflows"][name], workflow["version"], "{name}");
    }
    assert_eq!(cluster["leases"], json!({"total": 0, "shown": []}));
    assert_eq!(cluster["skew"], json!({"plugins": {}, "workflows": {}}));
}

/// With authentication on, a key is scoped to an app: it sees the servers
/// and the skew, and `leases` is null (a lease names any app's chat).
#[tokio::test]
async fn an_app_key_sees_the_servers_but_not_the_leases() {
    let scratch = Scratch::new("cluster-key");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.extra_env.extend([
        ("MOZAIKS_AUTH".to_owned(), "on".to_owned()),
        (
            "MOZAIKS_API_KEYS".to_owned(),
            "key-of-app-a-0123456789=app-a".to_owned(),
        ),
    ]);
    let server = Server::start(&setup).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/cluster", server.base))
        .bearer_auth("key-of-app-a-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cluster: Value = response.json().await.unwrap();
    assert_eq!(cluster["leases"], Value::Null, "{cluster:#}");
    assert_eq!(cluster["servers"].as_array().unwrap().len(), 1);
    assert!(cluster["skew"].is_object());
}

/// One client of the chat through nginx: its socket (replaced when the
/// server closes it) and every message its sockets received.
struct Client {
    socket: Ws,
    seen: Vec<Value>,
    /// How many times its server closed it (always with 1012).
    closed: usize,
}

impl Client {
    async fn connect(nginx: &Nginx, chat: &str) -> Self {
        let mut socket = nginx.ws(chat, 0).await;
        assert_eq!(socket.next().await.unwrap()["type"], "hello");
        Self {
            socket,
            seen: Vec::new(),
            closed: 0,
        }
    }

    /// Reads what the socket has for a moment; when its server closed it
    /// (1012, the server restarts), reconnects through nginx after the
    /// last `seq` received, as a client does. True if it reconnected.
    async fn reconnect_if_closed(&mut self, nginx: &Nginx, chat: &str) -> bool {
        loop {
            match tokio::time::timeout(Duration::from_millis(500), self.socket.next()).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return false,
            }
        }
        assert_eq!(
            self.socket.close_code,
            Some(1012),
            "{}",
            summary(&self.socket.seen)
        );
        self.closed += 1;
        let last = seqs(&self.all()).last().copied().unwrap_or(0);
        let mut socket = nginx.ws(chat, last).await;
        assert_eq!(socket.next().await.unwrap()["type"], "hello");
        let old = std::mem::replace(&mut self.socket, socket);
        self.seen.extend(old.seen);
        true
    }

    /// Everything received, over every socket.
    fn all(&self) -> Vec<Value> {
        self.seen.iter().chain(&self.socket.seen).cloned().collect()
    }
}

/// Polls `GET /api/cluster` through nginx until `done` holds.
async fn cluster_until(nginx: &Nginx, done: impl Fn(&Value) -> bool) -> Value {
    let mut cluster = Value::Null;
    for _ in 0..200 {
        (_, cluster) = nginx.get("/api/cluster").await;
        if done(&cluster) {
            return cluster;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET /api/cluster never got there: {cluster:#}");
}

/// How many servers `cluster` lists as alive.
fn alive(cluster: &Value) -> usize {
    cluster["servers"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["alive"] == true).count())
}

/// The test workflows with one file of `Auto` changed: the "upgrade" the
/// rolling deploy installs.
fn upgraded_workflows(scratch: &Scratch) -> PathBuf {
    let dir = scratch.0.join("workflows-v2");
    copy_tree(&test_workflows(), &dir);
    let agents = dir.join("Auto/agents.json");
    let mut text = std::fs::read_to_string(&agents).unwrap();
    text.push('\n');
    std::fs::write(&agents, text).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The documented nginx example in front of two servers in cluster mode:
/// a chat over HTTP and WebSocket through it while each server in turn is
/// stopped with SIGTERM, upgraded (a changed workflow), started again and
/// waited for on `/health/ready` (the rolling deploy). Two clients, one on
/// each server: a socket whose server stops is closed with 1012 and
/// reconnects through nginx after its last `seq`; each ends with every
/// event once, in order. `GET /api/cluster` through nginx lists both
/// servers alive, and between the two restarts the workflow whose version
/// differs, per server.
#[tokio::test]
async fn the_documented_nginx_example_serves_a_chat_through_a_rolling_deploy() {
    let scratch = Scratch::new("cluster-lb");
    let llm = FakeLlm::start(handoffs_llm).await;
    let mongo = mongo_env(mozaiks_test_mongo::shared_uri());
    let ports = [free_port(), free_port()];
    let base = Setup::new(&scratch, &llm);
    let mut setups = [
        cluster_setup(&scratch, &base, "a", &mongo),
        cluster_setup(&scratch, &base, "b", &mongo),
    ];
    let mut servers = Vec::new();
    for (setup, port) in setups.iter().zip(ports) {
        servers.push(Some(
            Server::start_at(setup, &format!("127.0.0.1:{port}")).await,
        ));
    }
    let nginx = Nginx::start(&scratch.0.join("nginx"), ports).await;

    // A server reports its versions at its first heartbeat after its
    // plugins loaded; then both list the same.
    let no_skew = json!({"plugins": {}, "workflows": {}});
    let cluster = cluster_until(&nginx, |c| alive(c) == 2 && c["skew"] == no_skew).await;
    assert_eq!(cluster["mode"], "cluster", "{cluster:#}");
    let ids: Vec<&str> = cluster["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"], "{cluster:#}");
    for server in cluster["servers"].as_array().unwrap() {
        assert!(server["plugins"]["planner"].is_string(), "{cluster:#}");
        assert!(server["workflows"]["Handoffs"].is_string(), "{cluster:#}");
    }

    let (status, chat) = nginx
        .post(
            "/api/chats",
            json!({"app_id": "app", "user_id": "alice", "workflow": "Handoffs"}),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    let chat = chat["chat_id"].as_str().unwrap().to_owned();
    // nginx takes turns (one process, equal weights, no stickiness): two
    // sockets opened one after the other land on one server each.
    let mut clients = [
        Client::connect(&nginx, &chat).await,
        Client::connect(&nginx, &chat).await,
    ];
    for client in &mut clients {
        client.socket.until_status("waiting_for_user").await;
    }

    // The run waiting for alice holds the chat's lease on one server.
    let cluster = cluster_until(&nginx, |c| c["leases"]["total"] == 1).await;
    let lease = &cluster["leases"]["shown"][0];
    assert_eq!(lease["chat_id"], chat.as_str(), "{cluster:#}");
    assert!(lease["token"].as_u64().unwrap() >= 1, "{cluster:#}");
    let owner = lease["owner"].as_str().unwrap();
    assert!(
        lease["expires_at"].as_u64().unwrap()
            > cluster["servers"][0]["started_at"].as_u64().unwrap()
    );
    for server in cluster["servers"].as_array().unwrap() {
        let holds = usize::from(server["id"] == owner);
        assert_eq!(server["leases"], holds, "{cluster:#}");
    }

    let upgraded = upgraded_workflows(&scratch);
    for index in 0..2 {
        let server = servers[index].take().unwrap();
        server.sigterm().await;
        assert_eq!(
            server.exit_code().await,
            Some(0),
            "server {index} stops cleanly"
        );
        let mut reconnected = 0;
        for client in &mut clients {
            reconnected += usize::from(client.reconnect_if_closed(&nginx, &chat).await);
        }
        assert!(reconnected >= 1, "a socket was on the server that stopped");
        setups[index].workflows = upgraded.clone();
        let port = ports[index];
        let server = Server::start_at(&setups[index], &format!("127.0.0.1:{port}")).await;
        server
            .eventually("/health/ready", |status, _| status == 200)
            .await;
        servers[index] = Some(server);
        if index == 0 {
            // a is upgraded, b not yet: `Auto` differs, and only it.
            let cluster = cluster_until(&nginx, |c| {
                let auto = &c["skew"]["workflows"]["Auto"];
                alive(c) == 2
                    && c["skew"]["plugins"] == json!({})
                    && c["skew"]["workflows"].as_object().map(|w| w.len()) == Some(1)
                    && auto["a"].is_string()
                    && auto["b"].is_string()
                    && auto["a"] != auto["b"]
            })
            .await;
            assert_eq!(
                cluster["skew"]["workflows"]["Auto"]["a"],
                cluster["servers"][0]["workflows"]["Auto"]
            );
        } else {
            cluster_until(&nginx, |c| alive(c) == 2 && c["skew"] == no_skew).await;
        }
    }
    assert!(clients.iter().any(|c| c.closed > 0));

    // The chat goes on through nginx, wherever its run is now.
    let (status, body) = nginx
        .post(
            &format!("/api/chats/{chat}/messages"),
            json!({"text": "refund"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (_, stored) = {
        for client in &mut clients {
            client.socket.until_status("completed").await;
        }
        nginx.get(&format!("/api/chats/{chat}/events")).await
    };
    let stored = seqs(stored["events"].as_array().unwrap());
    let last = stored.last().copied().unwrap();
    for client in &mut clients {
        // Whatever the run stored after `completed` comes too.
        while seqs(&client.all()).last().copied().unwrap_or(0) < last {
            client.socket.next().await.unwrap();
        }
        let all = client.all();
        assert_eq!(
            seqs(&all),
            stored,
            "every stored event once, in order: {}",
            summary(&all)
        );
    }
    assert!(
        !nginx.error_log().contains("[emerg]"),
        "{}",
        nginx.error_log()
    );
}
