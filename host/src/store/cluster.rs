//! What several servers on one database share: who serves (the server
//! registry), who runs which chat (leases with fencing tokens), the inputs
//! sent to a run on another server (the inbox), and a tailing read of the
//! events other servers write (docs/operations.md, "Running several
//! servers").
//!
//! Only a store that several processes can open at once implements it
//! (MongoDB); [`ChatStore::cluster`](super::ChatStore::cluster) is `None`
//! for the embedded store, and the server refuses `MOZAIKS_CLUSTER=on` on it.
//!
//! # Fencing
//!
//! A lease gives its holder a **token**, larger than every token given for
//! the chat before. Once a store handle has acquired a chat's lease
//! ([`ClusterStore::acquire`]), every event it appends for that chat
//! carries the token, and an append is refused with
//! [`StoreError::LeaseLost`](super::StoreError::LeaseLost) when the chat's
//! log already holds an event with a larger token. A new owner that takes a
//! chat over from another server appends a `run_moved` event first: from
//! that event on, the old owner cannot append to the chat, even if it was
//! only paused and still believes it holds the lease. In cluster mode a
//! handle appends only to chats whose lease it holds; any other append is
//! refused the same way.
//!
//! Times are milliseconds since the Unix epoch, read from the calling
//! server's clock; `mozaiks doctor` checks that clock against the
//! database's.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreError;
use crate::event::Envelope;

/// One server of the cluster as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's id (`MOZAIKS_SERVER_ID`), unique in the cluster.
    pub id: String,
    /// A random id of this process: tells a restarted server, or two
    /// processes configured with the same id, apart.
    pub incarnation: String,
    /// Where it listens (`host:port`), for operators.
    pub address: String,
    /// The `mozaiks` version it runs.
    pub version: String,
    /// Whether it runs in cluster mode (`MOZAIKS_CLUSTER=on`). A server
    /// that does not must be alone on its database: a server that finds
    /// another live server of the other mode, or a second one not in
    /// cluster mode, refuses to start.
    pub cluster: bool,
    /// When it started.
    pub started_at: u64,
    /// Its last heartbeat.
    pub last_seen: u64,
    /// Each plugin it serves (by id) and the version in use (the
    /// component's SHA-256).
    pub plugins: BTreeMap<String, String>,
    /// Each workflow it serves (by name) and its version.
    pub workflows: BTreeMap<String, String>,
}

/// A chat's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The chat.
    pub chat_id: String,
    /// The server holding it; `None` once released.
    pub owner: Option<String>,
    /// The fencing token of the last acquisition (never decreases).
    pub token: u64,
    /// When it lapses unless renewed (0 once released).
    pub expires_at: u64,
}

impl Lease {
    /// Whether someone holds it at `now`.
    pub fn is_held(&self, now: u64) -> bool {
        self.owner.is_some() && self.expires_at > now
    }
}

/// The outcome of [`ClusterStore::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This server holds the lease now, with this token. `previous` is the
    /// last owner when it was another server (its lease expired or was
    /// released): the new owner must append `run_moved` before anything
    /// else. `None` when the chat had no lease yet or this server held it.
    Held {
        /// The new fencing token.
        token: u64,
        /// The server that held the lease before, if it was another one.
        previous: Option<String>,
    },
    /// Another server holds it until `expires_at`.
    Elsewhere {
        /// The holder.
        owner: String,
        /// When its lease lapses unless renewed.
        expires_at: u64,
    },
}

/// An input for a chat's run, sent to the server that owns it through the
/// database ([`ClusterStore::send_input`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxItem {
    /// Unique id (a UUID), so that a resent insert is harmless.
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// What the runtime sends (its own encoding, opaque to the store).
    pub input: Value,
    /// When it was sent.
    pub sent_at: u64,
}

/// The shared state of several servers on one database. Every method is
/// safe to call concurrently, from any number of servers.
#[async_trait]
pub trait ClusterStore: Send + Sync + std::fmt::Debug {
    /// Makes this handle a cluster member called `server_id`: from now on
    /// it appends only to chats whose lease it holds (module docs).
    fn join(&self, server_id: &str);

    /// Creates the indexes the cluster collections need (idempotent).
    async fn prepare_cluster(&self) -> Result<(), StoreError>;

    /// Records `server` (insert or replace by id): its heartbeat.
    async fn heartbeat(&self, server: &ServerInfo) -> Result<(), StoreError>;

    /// Removes server `id` from the registry (a graceful stop).
    async fn leave(&self, id: &str) -> Result<(), StoreError>;

    /// Every server in the registry, by id.
    async fn servers(&self) -> Result<Vec<ServerInfo>, StoreError>;

    /// Takes the chat's lease for `owner` until `now + ttl_ms` if it is
    /// free, expired, released or already `owner`'s; records the new token
    /// in this handle for its appends.
    async fn acquire(
        &self,
        chat_id: &str,
        owner: &str,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Acquired, StoreError>;

    /// Extends `owner`'s leases on `chat_ids` to `now + ttl_ms`. Returns
    /// the chats whose lease `owner` no longer holds (taken over): this
    /// handle forgets their tokens.
    async fn renew(
        &self,
        owner: &str,
        chat_ids: &[String],
        now: u64,
        ttl_ms: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// Gives the chat's lease up if `owner` holds it; this handle forgets
    /// its token. `needs_run`: the run was still active (a graceful stop
    /// mid-turn), so the chat is [`orphaned`](Self::orphaned) at once and
    /// another server takes it over; otherwise (the run ended, or waits for
    /// its user) nobody needs to.
    async fn release(&self, chat_id: &str, owner: &str, needs_run: bool) -> Result<(), StoreError>;

    /// The chat's lease, if it ever had one.
    async fn lease(&self, chat_id: &str) -> Result<Option<Lease>, StoreError>;

    /// Every lease that is held at `now`.
    async fn held_leases(&self, now: u64) -> Result<Vec<Lease>, StoreError>;

    /// Up to `limit` leases that lapsed at `now` (their holder stopped
    /// renewing) or were released with `needs_run`: the chats another
    /// server should take over. Acquiring one and finding that the chat
    /// needs no run (it ended, or waits for its user), the new holder
    /// releases it without `needs_run`, and it is not listed again.
    async fn orphaned(&self, now: u64, limit: usize) -> Result<Vec<Lease>, StoreError>;

    /// Queues `item` for the run of its chat, wherever it runs.
    async fn send_input(&self, item: &InboxItem) -> Result<(), StoreError>;

    /// Takes (removes and returns, oldest first) the queued inputs of
    /// these chats. An item is returned to one caller only.
    async fn take_inputs(&self, chat_ids: &[String]) -> Result<Vec<InboxItem>, StoreError>;

    /// The events after each `(chat, seq)` position, in `seq` order per
    /// chat, at most `limit` in all: one read for every chat a server's
    /// clients watch that runs elsewhere.
    async fn events_after(
        &self,
        positions: &[(String, u64)],
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// The database's clock, in ms since the Unix epoch (`doctor`'s skew
    /// check).
    async fn database_time(&self) -> Result<u64, StoreError>;

    /// Whether the lease collection has the indexes the cluster needs
    /// (`doctor`); the missing ones by name.
    async fn missing_indexes(&self) -> Result<Vec<String>, StoreError>;
}
