//! Several servers on one database (docs/operations.md, "Running several
//! servers"): this server's side of the cluster. The shared state lives in
//! the store (`store::cluster`); this module decides when to use it.
//!
//! - **Ownership before writing.** In cluster mode a chat is written only by
//!   the server holding its lease ([`Orchestrator::own`]): starting a run,
//!   a new chat's first events, ending a chat without a run. A server that
//!   takes a chat from another appends `run_moved` first (the fence). A
//!   request for a chat held elsewhere is checked here against the log and
//!   sent to its owner through the database (`inbox.rs`).
//! - **Losing a chat.** An append refused with `StoreError::LeaseLost`, or a
//!   lease `renew` reports taken, parks the chat in this process
//!   ([`LiveChat::park_moved`]): its run stops quietly, nothing is marked
//!   failed.
//! - **Background loops** ([`Orchestrator::cluster_jobs`]): heartbeat and
//!   lease renewal (`heartbeat.rs`), taking over the chats of servers that
//!   stopped (`takeover.rs`), the inbox (`inbox.rs`) and the tailing read
//!   that relays the events of chats run elsewhere to this server's
//!   clients (`tail.rs`).
//! - **Joining and leaving**: the startup guard against mixed modes
//!   (`guard.rs`), and giving every lease up at a graceful stop
//!   ([`Orchestrator::leave_cluster`]).
//!
//! Every server on MongoDB heartbeats, also outside cluster mode (with
//! `cluster: false`), so that the guard sees it; outside cluster mode it
//! takes no lease and writes exactly as a single server always has.

mod guard;
mod heartbeat;
mod inbox;
mod tail;
mod takeover;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::event::{Event, now_ms};
use crate::store::StoreError;
use crate::store::cluster::{Acquired, ClusterStore};

use super::{ChatError, LiveChat, Orchestrator, Shared};

pub(crate) use inbox::Input;

/// The limits of the cluster settings, for `config`.
pub(crate) mod limits {
    use std::time::Duration;

    /// The default lease (`MOZAIKS_LEASE_SECS`): how long a chat stays
    /// with a server that stopped renewing before another takes it over.
    pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(10);

    /// The shortest and longest lease allowed: under 2 s a busy database
    /// round trip could outlast a third of it; over 10 min a dead server's
    /// chats wait too long.
    pub(crate) const LEASE_SECS_RANGE: std::ops::RangeInclusive<u64> = 2..=600;

    /// The longest server id (`MOZAIKS_SERVER_ID`): it is stored in every
    /// lease and `run_moved` event.
    pub(crate) const MAX_SERVER_ID_CHARS: usize = 128;
}
use limits::DEFAULT_LEASE;

/// How long a server outside cluster mode waits for the store at start
/// before it skips the startup guard (it runs as a single server always
/// has; the heartbeat records it once the store answers).
const SINGLE_SERVER_STORE_BOUND: Duration = Duration::from_secs(2);

/// Cluster settings, read by `config` (`MOZAIKS_CLUSTER`,
/// `MOZAIKS_SERVER_ID`, `MOZAIKS_LEASE_SECS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Cluster mode (`MOZAIKS_CLUSTER=on`): leases, fencing, the inbox and
    /// the tailing read. Off: a single server (on MongoDB it still
    /// heartbeats, so that a second server is refused).
    pub enabled: bool,
    /// The server's id; `None`: `<hostname>:<port it listens on>`.
    pub server_id: Option<String>,
    /// How long a lease lasts unless renewed.
    pub lease: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            server_id: None,
            lease: DEFAULT_LEASE,
        }
    }
}

/// This machine's host name, for the default server id.
pub(crate) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Why this server could not join the servers on its database.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Another live server runs in the other mode, or a second server
    /// runs without cluster mode.
    #[error(
        "another server runs on this database: `{other_id}` at {other_address}, with MOZAIKS_CLUSTER={}, last seen {seen_ms} ms ago; {}",
        if *.other_cluster { "on" } else { "off" },
        if *.other_cluster == *.mine {
            "only one server may run with MOZAIKS_CLUSTER=off on a database: set MOZAIKS_CLUSTER=on on every server (with the same MONGO_URI), or stop the other one".to_owned()
        } else {
            format!("every server on one database must have the same MOZAIKS_CLUSTER; this one has MOZAIKS_CLUSTER={}", if *.mine { "on" } else { "off" })
        }
    )]
    Conflict {
        /// The other server's id.
        other_id: String,
        /// Where it listens.
        other_address: String,
        /// Its mode.
        other_cluster: bool,
        /// This server's mode.
        mine: bool,
        /// How long ago it last reported.
        seen_ms: u64,
    },
    /// Cluster mode on a store only one process opens.
    #[error(
        "MOZAIKS_CLUSTER=on needs MongoDB (set MONGO_URI); the embedded store is one process's"
    )]
    NotShared,
    /// The store failed while joining.
    #[error("joining the servers on the database: {0}")]
    Store(#[from] StoreError),
}

/// Whether a chat's writes happen here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This server writes the chat (it holds its lease, or there is no
    /// cluster).
    Here,
    /// Another server holds its lease.
    Elsewhere(String),
}

/// This server as a member of the servers on its database.
#[derive(Debug)]
pub(crate) struct Membership {
    store: Arc<dyn ClusterStore>,
    /// The server id.
    id: String,
    /// A random id of this process.
    incarnation: String,
    /// Where it listens.
    address: String,
    started_at: u64,
    /// Cluster mode (else: heartbeat only).
    clustered: bool,
    ttl: Duration,
    /// The chats whose lease this server holds.
    held: Mutex<BTreeSet<String>>,
    /// Taken around acquiring and giving up leases, and around attaching a
    /// run to a chat just acquired: a run that ends cannot give up a lease
    /// a new run of its chat was just started under.
    leases: tokio::sync::Mutex<()>,
    /// The last successful renewal (self-fencing: `heartbeat.rs`).
    renewed: Mutex<Instant>,
}

impl Membership {
    /// The lease in ms.
    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this server holds the chat's lease.
    pub(crate) fn holds(&self, chat_id: &str) -> bool {
        self.lock_held().contains(chat_id)
    }

    /// The chats whose lease this server holds.
    fn held(&self) -> Vec<String> {
        self.lock_held().iter().cloned().collect()
    }

    /// Forgets a chat's lease (taken over, or given up).
    fn forget(&self, chat_id: &str) -> bool {
        self.lock_held().remove(chat_id)
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the chat's lease if it is free; call under `leases`.
    async fn acquire(&self, chat_id: &str) -> Result<Acquired, StoreError> {
        let acquired = self
            .store
            .acquire(chat_id, &self.id, now_ms(), self.ttl_ms())
            .await?;
        if matches!(acquired, Acquired::Held { .. }) {
            self.lock_held().insert(chat_id.to_owned());
        }
        Ok(acquired)
    }

    /// Gives the chat's lease up; call under `leases`.
    async fn release(&self, chat_id: &str, needs_run: bool) -> Result<(), StoreError> {
        self.forget(chat_id);
        self.store.release(chat_id, &self.id, needs_run).await
    }
}

impl Shared {
    /// The membership when cluster mode is on (leases apply).
    pub(crate) fn leases(&self) -> Option<&Arc<Membership>> {
        self.membership.get().filter(|m| m.clustered)
    }

    /// Gives the chat's lease up if no run is attached any more (the run
    /// ended, or unloaded while idle): nobody needs to run it now.
    pub(crate) async fn release_lease(&self, live: &LiveChat) {
        let Some(membership) = self.leases() else {
            return;
        };
        let _leases = membership.leases.lock().await;
        if live.has_run() || !membership.holds(live.chat_id()) {
            return;
        }
        if let Err(error) = membership.release(live.chat_id(), false).await {
            tracing::warn!(
                chat_id = live.chat_id(),
                %error,
                "giving the chat's lease up failed; it lapses on its own"
            );
        }
    }

    /// The run of a chat taken over by another server stopped: forget its
    /// lease.
    pub(crate) fn lost_lease(&self, chat_id: &str) {
        if let Some(membership) = self.leases() {
            membership.forget(chat_id);
        }
    }
}

impl Orchestrator {
    /// Joins the servers on this database: checks that no live server runs
    /// in the other mode (nor a second one outside cluster mode), records
    /// this one, and in cluster mode makes the store handle fence its
    /// appends. A store only one process opens joins nothing (and refuses
    /// cluster mode). `address`: where this server listens.
    pub(crate) async fn join_cluster(
        &self,
        settings: &ClusterSettings,
        address: SocketAddr,
    ) -> Result<(), ClusterError> {
        let Some(store) = self.shared.store.cluster() else {
            return if settings.enabled {
                Err(ClusterError::NotShared)
            } else {
                Ok(())
            };
        };
        let id = settings
            .server_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", hostname(), address.port()));
        let membership = Membership {
            store: Arc::clone(&store),
            id,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            address: address.to_string(),
            started_at: now_ms(),
            clustered: settings.enabled,
            ttl: settings.lease,
            held: Mutex::new(BTreeSet::new()),
            leases: tokio::sync::Mutex::new(()),
            renewed: Mutex::new(Instant::now()),
        };
        let checked = async {
            if settings.enabled {
                store.prepare_cluster().await?;
            } else {
                // A single server does not wait on a store that does not
                // answer (the store monitor reports it).
                tokio::time::timeout(SINGLE_SERVER_STORE_BOUND, store.prepare_cluster())
                    .await
                    .map_err(|_| {
                        StoreError::Backend(format!(
                            "no answer within {SINGLE_SERVER_STORE_BOUND:?}"
                        ))
                    })??;
            }
            let me = self.server_info(&membership);
            guard::verify(store.as_ref(), &me, settings.lease).await?;
            store.heartbeat(&me).await?;
            Ok::<_, ClusterError>(())
        }
        .await;
        match checked {
            Ok(()) => {}
            // A single server keeps starting while the store is down, as
            // it always has (the store monitor waits for it); it checks
            // again at its next heartbeat.
            Err(ClusterError::Store(error)) if !settings.enabled => {
                tracing::warn!(%error, "could not check the other servers on the database yet");
            }
            Err(error) => return Err(error),
        }
        if settings.enabled {
            store.join(&membership.id);
            tracing::info!(
                server_id = membership.id,
                lease = ?settings.lease,
                "cluster mode: chats are run under leases"
            );
        }
        let _ = self.shared.membership.set(Arc::new(membership));
        Ok(())
    }

    /// The background jobs of the cluster, to abort at shutdown (before
    /// [`leave_cluster`](Self::leave_cluster)): the heartbeat, and in
    /// cluster mode lease renewal, takeover, the inbox and the tail.
    pub(crate) fn cluster_jobs(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(membership) = self.shared.membership.get() else {
            return Vec::new();
        };
        let mut jobs = vec![tokio::spawn(heartbeat::run(self.clone()))];
        if membership.clustered {
            jobs.push(tokio::spawn(takeover::run(self.clone())));
            jobs.push(tokio::spawn(inbox::run(self.clone())));
            jobs.push(tokio::spawn(tail::run(self.clone())));
        }
        jobs
    }

    /// A graceful stop, after the runs stopped ([`drain`](Self::drain))
    /// and the cluster jobs were aborted: gives every lease up (a chat
    /// whose run was active is taken over by another server at once) and
    /// leaves the registry.
    pub(crate) async fn leave_cluster(&self) {
        let Some(membership) = self.shared.membership.get() else {
            return;
        };
        if membership.clustered {
            let _leases = membership.leases.lock().await;
            for chat_id in membership.held() {
                let needs_run = match self.shared.store.events(&chat_id, 0, None).await {
                    Ok(events) => super::resume::needs_run(&events),
                    // Unknown: let another server look.
                    Err(_) => true,
                };
                if let Err(error) = membership.release(&chat_id, needs_run).await {
                    tracing::warn!(chat_id, %error, "giving a lease up failed; it lapses on its own");
                }
            }
        }
        if let Err(error) = membership.store.leave(&membership.id).await {
            tracing::warn!(%error, "leaving the server registry failed; the entry ages out");
        }
    }

    /// Makes this server the chat's writer if it can (cluster mode: takes
    /// its lease when free, and appends `run_moved` when it was another
    /// server's); else names the owner. Outside cluster mode always
    /// [`Owner::Here`].
    pub(crate) async fn own(&self, chat_id: &str) -> Result<Owner, ChatError> {
        match self.shared.leases() {
            Some(membership) => Ok(self.own_with(membership, chat_id).await?.0),
            None => Ok(Owner::Here),
        }
    }

    /// [`own`](Self::own), returning the lease lock still held so that the
    /// caller can attach a run before a run that ends could give the lease
    /// up.
    pub(crate) async fn own_with<'m>(
        &self,
        membership: &'m Membership,
        chat_id: &str,
    ) -> Result<(Owner, tokio::sync::MutexGuard<'m, ()>), ChatError> {
        let leases = membership.leases.lock().await;
        if membership.holds(chat_id) {
            return Ok((Owner::Here, leases));
        }
        match membership.acquire(chat_id).await? {
            Acquired::Held { previous, .. } => {
                self.fence(membership, chat_id, previous).await?;
                Ok((Owner::Here, leases))
            }
            Acquired::Elsewhere { owner, .. } => Ok((Owner::Elsewhere(owner), leases)),
        }
    }

    /// Just after acquiring a chat's lease: what this process knew of the
    /// chat is read again, and if another server held it, `run_moved` is
    /// appended before anything else.
    async fn fence(
        &self,
        membership: &Membership,
        chat_id: &str,
        previous: Option<String>,
    ) -> Result<(), ChatError> {
        let live = self.live(chat_id);
        live.take_back().await;
        if let Some(from) = previous.filter(|p| *p != membership.id) {
            tracing::info!(chat_id, from, "took the chat over");
            live.emit(Event::RunMoved {
                from,
                to: membership.id.clone(),
            })
            .await?;
        }
        Ok(())
    }

    /// Another server has the chat now: its run here stops quietly and
    /// nothing more is stored for it from this process.
    async fn lose(&self, chat_id: &str, owner: Option<String>) {
        if let Some(membership) = self.shared.leases() {
            membership.forget(chat_id);
        }
        let live = self.existing_live(chat_id);
        if let Some(live) = live {
            tracing::info!(
                chat_id,
                owner = owner.as_deref().unwrap_or("unknown"),
                "the chat's lease was taken over; this server stops its run"
            );
            live.park_moved(owner).await;
        }
    }
}
