//! Several `mozaiks serve` processes on one database, and clients that
//! check what every socket sees.
//!
//! - [`Cluster`]: N servers (`MOZAIKS_CLUSTER=on`, ids `s0`, `s1`…,
//!   [`LEASE_SECS`]) on one fresh MongoDB database, each with a data dir of
//!   its own; requests go round-robin over the live ones; a server can be
//!   killed (SIGKILL), stopped (SIGTERM, waiting for its exit) and started
//!   again.
//! - [`Follower`]: one client of one chat: a socket on some server, every
//!   persisted event checked to come once and in `seq` order (a re-sent
//!   open `ui_request` is the one event that may come again, unchanged),
//!   and, when its server goes away, a reconnect to another live server
//!   with `?after=<last seq>`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// `MOZAIKS_LEASE_SECS` of the test servers: the shortest allowed, so a
/// takeover after a crash comes quickly.
pub const LEASE_SECS: u64 = 2;

/// How long after the owner died another server may take to write
/// `run_moved`: the lease's ttl plus a margin for the takeover scan and a
/// busy machine. A bound of behaviour, not of speed (benchmarks measure
/// speed).
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(LEASE_SECS + 13);

/// How long a socket may wait for the next event of a chat run on
/// another server (relayed through the database).
pub const RELAY_WAIT: Duration = Duration::from_secs(20);

/// The base URLs of the live servers, by index (`None`: stopped), shared
/// with the clients so that they reconnect to a live one.
pub type LiveBases = Arc<Mutex<Vec<Option<String>>>>;

/// One server of the cluster.
#[derive(Debug)]
pub struct Node {
    /// `MOZAIKS_SERVER_ID`.
    pub id: String,
    setup: Setup,
    server: Option<Server>,
}

/// N servers on one database.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    live: LiveBases,
    turn: std::sync::atomic::AtomicUsize,
    // Last: the scratch dir goes after the servers.
    _scratch: Scratch,
}

impl Cluster {
    /// Starts `n` servers talking to `llm`, on one fresh database of the
    /// test MongoDB (`MONGO_TEST_URI` when set), and waits until each is
    /// ready.
    pub async fn start(name: &str, llm: &FakeLlm, n: usize) -> Self {
        let scratch = Scratch::new(name);
        let base = Setup::new(&scratch, llm);
        // `ask` waits for a person; storing its request through the lease
        // fence took over the adversary's 1 s on a loaded CI machine.
        adversary_with_deadline(&base.plugins, 10_000);
        Self::start_on(scratch, base, n).await
    }

    /// [`Cluster::start`] serving the `Effects` workflow and the `effects`
    /// component (`runs::effects_setup`) instead of the test workflows.
    pub async fn start_with_effects(name: &str, llm: &FakeLlm, n: usize) -> Self {
        let scratch = Scratch::new(name);
        let base = crate::runs::effects_setup(Store::Embedded, &scratch, llm);
        Self::start_on(scratch, base, n).await
    }

    /// Starts `n` servers of `base` on one fresh database.
    async fn start_on(scratch: Scratch, mut base: Setup, n: usize) -> Self {
        base.extra_env
            .extend(mongo_env(mozaiks_test_mongo::shared_uri()));
        base.extra_env.extend([
            ("MOZAIKS_CLUSTER".to_owned(), "on".to_owned()),
            ("MOZAIKS_LEASE_SECS".to_owned(), LEASE_SECS.to_string()),
        ]);
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let id = format!("s{i}");
                let mut setup = base.clone();
                // Each server its own data dir (component cache) and logs.
                setup.data = scratch.0.join(&id).join("data");
                setup
                    .extra_env
                    .push(("MOZAIKS_SERVER_ID".to_owned(), id.clone()));
                Node {
                    id,
                    setup,
                    server: None,
                }
            })
            .collect();
        let servers =
            futures_util::future::join_all(nodes.iter().map(|n| Server::start(&n.setup))).await;
        let mut cluster = Self {
            nodes,
            live: Arc::new(Mutex::new(vec![None; n])),
            turn: std::sync::atomic::AtomicUsize::new(0),
            _scratch: scratch,
        };
        for (i, server) in servers.into_iter().enumerate() {
            cluster.set(i, Some(server));
        }
        cluster
    }

    fn set(&mut self, i: usize, server: Option<Server>) {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)[i] =
            server.as_ref().map(|s| s.base.clone());
        self.nodes[i].server = server;
    }

    /// The live servers' base URLs, for clients that outlive a server.
    pub fn live(&self) -> LiveBases {
        Arc::clone(&self.live)
    }

    /// Server `i` (it must be running).
    pub fn server(&self, i: usize) -> &Server {
        self.nodes[i]
            .server
            .as_ref()
            .unwrap_or_else(|| panic!("server {} is not running", self.nodes[i].id))
    }

    /// The index of the server whose id is `id`.
    pub fn index_of(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    /// The next live server, round-robin, that is none of `not`.
    pub fn next_except(&self, not: &[usize]) -> usize {
        let n = self.nodes.len();
        for _ in 0..n {
            let i = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
            if self.nodes[i].server.is_some() && !not.contains(&i) {
                return i;
            }
        }
        panic!("no live server but {not:?}");
    }

    /// The next live server, round-robin.
    pub fn next(&self) -> usize {
        self.next_except(&[])
    }

    /// Kills server `i` with SIGKILL, as a crash would.
    pub async fn kill(&mut self, i: usize) {
        let server = self.nodes[i].server.take().expect("a running server");
        self.set(i, None);
        server.kill().await;
    }

    /// Stops server `i` with SIGTERM and waits until it has exited (0).
    pub async fn stop(&mut self, i: usize) {
        let server = self.nodes[i].server.take().expect("a running server");
        self.set(i, None);
        server.sigterm().await;
        assert_eq!(
            server.exit_code().await,
            Some(0),
            "{} exited",
            self.nodes[i].id
        );
    }

    /// Starts server `i` again (same id, same data dir, a new port) and
    /// waits until it is ready.
    pub async fn restart(&mut self, i: usize) {
        let server = Server::start(&self.nodes[i].setup).await;
        server
            .eventually("/health/ready", |status, _| status == 200)
            .await;
        self.set(i, Some(server));
    }

    /// Starts a chat of `workflow` on server `i`.
    pub async fn start_chat(&self, i: usize, workflow: &str) -> String {
        self.server(i).start_chat(workflow).await
    }

    /// The chat's persisted events read from every live server: they must
    /// agree; returned once.
    pub async fn events_everywhere(&self, chat: &str) -> Vec<Value> {
        let mut first: Option<(String, Vec<Value>)> = None;
        for node in &self.nodes {
            let Some(server) = &node.server else { continue };
            let events = server.events(chat).await;
            match &first {
                None => first = Some((node.id.clone(), events)),
                Some((id, seen)) => assert_eq!(
                    &events,
                    seen,
                    "{} and {id} disagree on chat {chat}'s log:{}\nvs{}",
                    node.id,
                    summary(&events),
                    summary(seen)
                ),
            }
        }
        first.expect("a live server").1
    }
}

/// Checks a chat's log: `seq` runs 1..=n, each once, in order.
pub fn assert_complete(events: &[Value]) {
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate, in order:{}",
        summary(events)
    );
}

/// The `run_status` of a log's last status event.
pub fn last_status(events: &[Value]) -> Option<&str> {
    events
        .iter()
        .rev()
        .find(|e| e["type"] == "run_status")
        .and_then(|e| e["status"].as_str())
}

/// One client of one chat, on one server at a time.
#[derive(Debug)]
pub struct Follower {
    pub chat: String,
    /// The live servers, to reconnect to.
    live: LiveBases,
    /// The index of the server its socket is on.
    pub on: usize,
    ws: Option<Ws>,
    /// Every persisted event, in `seq` order, each once.
    pub log: Vec<Value>,
    /// How many times it had to reconnect to another server.
    pub reconnects: usize,
}

impl Follower {
    /// Opens the chat's socket on server `on` from the start.
    pub async fn open(live: &LiveBases, on: usize, chat: &str) -> Self {
        let mut follower = Self {
            chat: chat.to_owned(),
            live: Arc::clone(live),
            on,
            ws: None,
            log: Vec::new(),
            reconnects: 0,
        };
        let base = live.lock().unwrap_or_else(PoisonError::into_inner)[on]
            .clone()
            .expect("a live server");
        follower.ws = Some(Ws::connect(&follower.url(&base)).await);
        follower
    }

    /// The last `seq` received.
    pub fn last_seq(&self) -> u64 {
        self.log.len() as u64
    }

    fn url(&self, base: &str) -> String {
        format!(
            "{}/api/chats/{}/ws?after={}",
            base.replacen("http", "ws", 1),
            self.chat,
            self.last_seq()
        )
    }

    /// Takes one frame: a persisted event joins the log if it is the next
    /// `seq`; a re-sent open `ui_request` must equal what was logged; any
    /// other `seq` fails the test. `Ok(None)` when the socket closed.
    async fn take(&mut self) -> Result<Option<Value>, ()> {
        let ws = self.ws.as_mut().expect("an open socket");
        let Some(frame) = ws.next_within(RELAY_WAIT).await? else {
            return Ok(None);
        };
        if let Some(seq) = frame.get("seq").and_then(Value::as_u64) {
            let expected = self.last_seq() + 1;
            if seq == expected {
                self.log.push(frame.clone());
            } else {
                let index = usize::try_from(seq).unwrap().wrapping_sub(1);
                let again = frame["type"] == "ui_request" && self.log.get(index) == Some(&frame);
                assert!(
                    again,
                    "chat {} on {}: got seq {seq} after {}; frame {frame}; log:{}",
                    self.chat,
                    self.on,
                    self.last_seq(),
                    summary(&self.log)
                );
            }
        }
        Ok(Some(frame))
    }

    /// Skips frames until one matches, within [`RELAY_WAIT`] per frame;
    /// when its server closes the socket, reconnects to another live
    /// server (round-robin from the one it was on) from the last `seq`.
    pub async fn until(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.take().await {
                Ok(Some(frame)) if matches(&frame) => return frame,
                Ok(Some(_)) => {}
                Ok(None) => self.reconnect().await,
                Err(()) => panic!(
                    "chat {}: nothing for {RELAY_WAIT:?} on server {} while waiting for {what}; log:{}",
                    self.chat,
                    self.on,
                    summary(&self.log)
                ),
            }
        }
    }

    /// Waits for a persisted event of `kind`.
    pub async fn until_type(&mut self, kind: &str) -> Value {
        self.until(kind, |e| e["type"] == kind && e.get("seq").is_some())
            .await
    }

    /// Waits for the run to reach `status`.
    pub async fn until_status(&mut self, status: &str) -> Value {
        self.until(&format!("run_status {status}"), |e| {
            e["type"] == "run_status" && e["status"] == status
        })
        .await
    }

    /// Connects to the next live server that accepts, from the last `seq`.
    async fn reconnect(&mut self) {
        self.ws = None;
        self.reconnects += 1;
        let deadline = tokio::time::Instant::now() + RELAY_WAIT;
        loop {
            let bases = self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let n = bases.len();
            for step in 1..=n {
                let i = (self.on + step) % n;
                let Some(base) = &bases[i] else { continue };
                if let Ok(ws) = Ws::try_connect(&self.url(base)).await {
                    self.ws = Some(ws);
                    self.on = i;
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chat {}: no live server took the socket within {RELAY_WAIT:?}",
                self.chat
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a client message on its socket.
    pub async fn send(&mut self, message: Value) {
        self.ws
            .as_mut()
            .expect("an open socket")
            .send(message)
            .await;
    }

    /// Closes the socket.
    pub async fn close(mut self) -> Vec<Value> {
        if let Some(ws) = self.ws.take() {
            ws.close().await;
        }
        self.log
    }
}
