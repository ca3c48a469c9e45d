//! `GET /api/cluster`: the servers sharing this server's database, the
//! leases they hold and the plugin and workflow versions that differ
//! between them (docs/protocol.md, "HTTP routes"; docs/operations.md,
//! "Running several servers"). A server in single mode answers with itself
//! alone. [`skew`] and [`alive`] are also what `mozaiks doctor` reports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::auth::Caller;
use super::error::ApiError;
use super::state::WebState;
use crate::plugin_set::ms;
use crate::store::cluster::{ClusterStore, Lease, ServerInfo};

/// Most leases listed; `leases.total` counts them all. A thousand rows is
/// enough to read by eye and keeps the answer under about 100 KiB.
pub(crate) const LEASES_SHOWN: usize = 1_000;

/// A server is alive while its last heartbeat is at most this many lease
/// times old by the reader's clock: a missed heartbeat or two is not a
/// death, and a lease has lapsed well before this.
pub(crate) const ALIVE_LEASE_TIMES: u64 = 3;

/// What `GET /api/cluster` needs besides the plugins and workflows.
#[derive(Clone)]
pub(crate) struct ClusterView {
    /// This server's id (`MOZAIKS_SERVER_ID`).
    pub(crate) server_id: String,
    /// Where it listens (`host:port`).
    pub(crate) address: String,
    /// When it started (ms since the Unix epoch).
    pub(crate) started_at: u64,
    /// The lease time (`MOZAIKS_LEASE_SECS`) in ms.
    pub(crate) lease_ttl_ms: u64,
    /// The shared state of the cluster; `None` in single mode (cluster
    /// off, or the embedded store).
    pub(crate) shared: Option<Arc<dyn ClusterStore>>,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("server_id", &self.server_id)
            .field("address", &self.address)
            .field("cluster", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether the server runs alone or with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// `MOZAIKS_CLUSTER=on`.
    Cluster,
    /// One server on its store.
    Single,
}

/// The body of `GET /api/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ClusterAnswer {
    /// The answering server's id.
    pub(crate) server_id: String,
    /// `cluster` or `single`.
    pub(crate) mode: Mode,
    /// The lease time in ms (what `alive` is measured against).
    pub(crate) lease_ttl_ms: u64,
    /// Every registered server, by id.
    pub(crate) servers: Vec<ServerRow>,
    /// The held leases; `None` for a key scoped to an app (a lease names a
    /// chat of any app).
    pub(crate) leases: Option<LeaseList>,
    /// The versions that differ between live servers.
    pub(crate) skew: Skew,
}

/// One server of [`ClusterAnswer::servers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ServerRow {
    /// Its id.
    pub(crate) id: String,
    /// Where it listens.
    pub(crate) address: String,
    /// The `mozaiks` version it runs.
    pub(crate) version: String,
    /// When it started.
    pub(crate) started_at: u64,
    /// Its last heartbeat.
    pub(crate) last_seen: u64,
    /// Whether `last_seen` is within [`ALIVE_LEASE_TIMES`] lease times of
    /// now by the answering server's clock.
    pub(crate) alive: bool,
    /// How many leases it holds now.
    pub(crate) leases: usize,
    /// Plugin id → the version it serves (the component's SHA-256).
    pub(crate) plugins: BTreeMap<String, String>,
    /// Workflow name → the version it serves.
    pub(crate) workflows: BTreeMap<String, String>,
}

/// The held leases, the first [`LEASES_SHOWN`] by chat id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LeaseList {
    /// How many leases are held in all.
    pub(crate) total: usize,
    /// At most [`LEASES_SHOWN`] of them.
    pub(crate) shown: Vec<LeaseRow>,
}

/// One held lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LeaseRow {
    /// The chat.
    pub(crate) chat_id: String,
    /// The server running it.
    pub(crate) owner: String,
    /// The fencing token.
    pub(crate) token: u64,
    /// When it lapses unless renewed.
    pub(crate) expires_at: u64,
}

/// Name → server id → the version it serves there (`None`: that live
/// server does not serve it), for every name whose version is not the
/// same on every live server.
pub(crate) type Versions = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// The plugins and workflows whose versions differ between live servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Skew {
    /// By plugin id.
    pub(crate) plugins: Versions,
    /// By workflow name.
    pub(crate) workflows: Versions,
}

impl Skew {
    /// Whether every live server serves the same versions.
    pub(crate) fn is_empty(&self) -> bool {
        self.plugins.is_empty() && self.workflows.is_empty()
    }
}

/// Whether a server last seen at `last_seen` is alive at `now` (both by
/// their own clocks; a heartbeat from the future counts as alive).
pub(crate) fn alive(last_seen: u64, now: u64, lease_ttl_ms: u64) -> bool {
    now.saturating_sub(last_seen) <= lease_ttl_ms.saturating_mul(ALIVE_LEASE_TIMES)
}

/// The versions that differ among `servers` (the live ones: the caller
/// filters).
pub(crate) fn skew<'a>(servers: impl IntoIterator<Item = &'a ServerInfo> + Clone) -> Skew {
    Skew {
        plugins: differing(servers.clone(), |s| &s.plugins),
        workflows: differing(servers, |s| &s.workflows),
    }
}

/// The names whose version (or presence) is not the same on all of
/// `servers`, with the version on each.
fn differing<'a>(
    servers: impl IntoIterator<Item = &'a ServerInfo> + Clone,
    versions: impl Fn(&ServerInfo) -> &BTreeMap<String, String>,
) -> Versions {
    let names: BTreeSet<&String> = servers
        .clone()
        .into_iter()
        .flat_map(|s| versions(s).keys())
        .collect();
    let mut differing = Versions::new();
    for name in names {
        let by_server: BTreeMap<String, Option<String>> = servers
            .clone()
            .into_iter()
            .map(|s| (s.id.clone(), versions(s).get(name).cloned()))
            .collect();
        let distinct: BTreeSet<&Option<String>> = by_server.values().collect();
        if distinct.len() > 1 {
            differing.insert(name.clone(), by_server);
        }
    }
    differing
}

/// The answer from what the store returned (cluster mode): `servers` as
/// registered, `held` the leases held at `now`; `show_leases` is false for
/// a key scoped to an app.
pub(crate) fn cluster_answer(
    view: &ClusterView,
    mut servers: Vec<ServerInfo>,
    mut held: Vec<Lease>,
    now: u64,
    show_leases: bool,
) -> ClusterAnswer {
    servers.sort_by(|a, b| a.id.cmp(&b.id));
    held.retain(|lease| lease.is_held(now));
    held.sort_by(|a, b| a.chat_id.cmp(&b.chat_id));
    let mut per_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for owner in held.iter().filter_map(|l| l.owner.as_deref()) {
        *per_owner.entry(owner).or_default() += 1;
    }
    let live: Vec<&ServerInfo> = servers
        .iter()
        .filter(|s| alive(s.last_seen, now, view.lease_ttl_ms))
        .collect();
    let skew = skew(live.iter().copied());
    let rows = servers
        .iter()
        .map(|s| ServerRow {
            id: s.id.clone(),
            address: s.address.clone(),
            version: s.version.clone(),
            started_at: s.started_at,
            last_seen: s.last_seen,
            alive: alive(s.last_seen, now, view.lease_ttl_ms),
            leases: per_owner.get(s.id.as_str()).copied().unwrap_or(0),
            plugins: s.plugins.clone(),
            workflows: s.workflows.clone(),
        })
        .collect();
    let leases = show_leases.then(|| LeaseList {
        total: held.len(),
        shown: held
            .iter()
            .take(LEASES_SHOWN)
            .filter_map(|l| {
                Some(LeaseRow {
                    chat_id: l.chat_id.clone(),
                    owner: l.owner.clone()?,
                    token: l.token,
                    expires_at: l.expires_at,
                })
            })
            .collect(),
    });
    ClusterAnswer {
        server_id: view.server_id.clone(),
        mode: Mode::Cluster,
        lease_ttl_ms: view.lease_ttl_ms,
        servers: rows,
        leases,
        skew,
    }
}

/// The answer of a server in single mode: itself, alive, holding no lease.
pub(crate) fn single_answer(
    view: &ClusterView,
    plugins: BTreeMap<String, String>,
    workflows: BTreeMap<String, String>,
    now: u64,
    show_leases: bool,
) -> ClusterAnswer {
    ClusterAnswer {
        server_id: view.server_id.clone(),
        mode: Mode::Single,
        lease_ttl_ms: view.lease_ttl_ms,
        servers: vec![ServerRow {
            id: view.server_id.clone(),
            address: view.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: view.started_at,
            last_seen: now,
            alive: true,
            leases: 0,
            plugins,
            workflows,
        }],
        leases: show_leases.then(|| LeaseList {
            total: 0,
            shown: Vec::new(),
        }),
        skew: Skew::default(),
    }
}

/// `GET /api/cluster`. Any key may read it: servers and versions name no
/// chat. The lease list names chats of every app, so only a caller without
/// an app (auth off) gets it.
pub(crate) async fn cluster(
    State(web): State<WebState>,
    caller: Caller,
) -> Result<Json<ClusterAnswer>, ApiError> {
    let view = &web.cluster;
    let show_leases = caller.principal().is_none();
    let now = ms(SystemTime::now());
    let answer = match &view.shared {
        Some(shared) => {
            let servers = shared.servers().await?;
            let held = shared.held_leases(now).await?;
            cluster_answer(view, servers, held, now, show_leases)
        }
        None => {
            let (plugins, workflows) =
                crate::plugin_set::served_versions(&web.plugins, &web.workflows);
            single_answer(view, plugins, workflows, now, show_leases)
        }
    };
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 10_000;

    fn view() -> ClusterView {
        ClusterView {
            server_id: "a:8080".to_owned(),
            address: "10.0.0.1:8080".to_owned(),
            started_at: 1_000,
            lease_ttl_ms: TTL,
            shared: None,
        }
    }

    fn server(id: &str, last_seen: u64, plugins: &[(&str, &str)]) -> ServerInfo {
        ServerInfo {
            id: id.to_owned(),
            incarnation: format!("{id}-1"),
            address: format!("{id}-addr"),
            version: "0.1.0".to_owned(),
            cluster: true,
            started_at: 5,
            last_seen,
            plugins: plugins
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            workflows: BTreeMap::from([("Demo".to_owned(), "w1".to_owned())]),
        }
    }

    fn lease(chat: &str, owner: &str, expires_at: u64) -> Lease {
        Lease {
            chat_id: chat.to_owned(),
            owner: Some(owner.to_owned()),
            token: 7,
            expires_at,
        }
    }

    #[test]
    fn a_server_is_alive_for_three_lease_times_after_its_last_heartbeat() {
        assert!(alive(100_000, 100_000 + 3 * TTL, TTL));
        assert!(!alive(100_000, 100_000 + 3 * TTL + 1, TTL));
        // A heartbeat stamped by a clock ahead of ours.
        assert!(alive(200_000, 100_000, TTL));
    }

    #[test]
    fn skew_lists_a_differing_or_missing_version_per_server_and_nothing_that_agrees() {
        let a = server("a", 0, &[("planner", "sha1"), ("tickets", "t1")]);
        let b = server("b", 0, &[("planner", "sha2"), ("tickets", "t1")]);
        let c = server("c", 0, &[("tickets", "t1")]);
        let skew = skew([&a, &b, &c]);
        assert_eq!(
            skew.plugins,
            BTreeMap::from([(
                "planner".to_owned(),
                BTreeMap::from([
                    ("a".to_owned(), Some("sha1".to_owned())),
                    ("b".to_owned(), Some("sha2".to_owned())),
                    ("c".to_owned(), None),
                ])
            )])
        );
        assert!(skew.workflows.is_empty());
        assert!(self::skew([&a, &a.clone()]).is_empty());
    }

    #[test]
    fn the_cluster_answer_counts_leases_per_server_and_ignores_dead_servers_for_skew() {
        let now = 1_000_000;
        let servers = vec![
            server("b", now, &[("planner", "sha1")]),
            server("a", now - 1_000, &[("planner", "sha1")]),
            // Dead: seen 31 s ago with a 10 s lease; its old plugin is no skew.
            server("z", now - 31_000, &[("planner", "old")]),
        ];
        let held = vec![
            lease("chat-2", "a", now + 5_000),
            lease("chat-1", "a", now + 5_000),
            lease("chat-3", "b", now + 1),
            // Lapsed between the store's read and ours: not held.
            lease("chat-4", "b", now),
        ];
        let answer = cluster_answer(&view(), servers, held, now, true);
        assert_eq!(answer.mode, Mode::Cluster);
        let ids: Vec<_> = answer.servers.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "z"]);
        let counts: Vec<_> = answer.servers.iter().map(|s| s.leases).collect();
        assert_eq!(counts, [2, 1, 0]);
        let alive: Vec<_> = answer.servers.iter().map(|s| s.alive).collect();
        assert_eq!(alive, [true, true, false]);
        assert!(answer.skew.is_empty(), "{:?}", answer.skew);
        let leases = answer.leases.unwrap();
        assert_eq!(leases.total, 3);
        let chats: Vec<_> = leases.shown.iter().map(|l| l.chat_id.as_str()).collect();
        assert_eq!(chats, ["chat-1", "chat-2", "chat-3"]);
    }

    #[test]
    fn the_lease_list_is_bounded_with_the_total_and_hidden_from_app_keys() {
        let now = 50;
        let held: Vec<Lease> = (0..LEASES_SHOWN + 5)
            .map(|i| lease(&format!("chat-{i:05}"), "a", now + 10))
            .collect();
        let servers = vec![server("a", now, &[])];
        let answer = cluster_answer(&view(), servers.clone(), held.clone(), now, true);
        let leases = answer.leases.unwrap();
        assert_eq!(leases.total, LEASES_SHOWN + 5);
        assert_eq!(leases.shown.len(), LEASES_SHOWN);
        assert_eq!(answer.servers[0].leases, LEASES_SHOWN + 5);
        let scoped = cluster_answer(&view(), servers, held, now, false);
        assert_eq!(scoped.leases, None);
        assert_eq!(scoped.servers[0].leases, LEASES_SHOWN + 5);
    }

    #[test]
    fn a_single_server_answers_with_itself_and_no_leases() {
        let plugins = BTreeMap::from([("planner".to_owned(), "sha1".to_owned())]);
        let answer = single_answer(&view(), plugins.clone(), BTreeMap::new(), 99, true);
        assert_eq!(answer.mode, Mode::Single);
        assert_eq!(answer.servers.len(), 1);
        assert_eq!(answer.servers[0].id, "a:8080");
        assert_eq!(answer.servers[0].plugins, plugins);
        assert_eq!(
            answer.leases,
            Some(LeaseList {
                total: 0,
                shown: Vec::new()
            })
        );
        assert!(answer.skew.is_empty());
    }
}
