//! The cluster collections of the MongoDB store ([`ClusterStore`]): the
//! server registry, the chats' leases and the inbox.
//!
//! - `cluster_servers`: one document per server, `_id` = its id,
//!   `last_seen`, and `json`, the [`ServerInfo`] as JSON text (plugin ids
//!   and workflow names are map keys there, never BSON field names).
//! - `chat_leases`: one document per chat that was ever run in cluster
//!   mode, `_id` = the chat id: `owner` (`null` once released),
//!   `last_owner`, `token` (only grows: one `$inc` per acquisition),
//!   `expires_at` and `orphan` (released while its run was still active).
//!   A lease document is deleted only with its chat, by retention.
//! - `chat_inbox`: one document per queued input, `_id` = the item's id,
//!   `chat_id`, `input` (JSON text) and `sent_at`.
//!
//! Indexes ([`ClusterStore::prepare_cluster`]): `chat_leases.expires_at`,
//! `chat_leases.owner` and `chat_inbox.{chat_id, sent_at}`
//! ([`ClusterStore::missing_indexes`] finds them by their keys, since not
//! every wire-protocol server keeps the names).
//!
//! A filter that combines `$or` with other conditions spells the
//! conjunction out with `$and`: nx-27017 (the tests' server) drops the
//! other conditions of a top-level `$or` in updates, which would let an
//! update meant for one lease change another.
//!
//! An acquisition is one `findOneAndUpdate` on the lease document (not an
//! upsert: a chat's first acquisition inserts a free lease document
//! first), conditioned on the lease being free, expired or the caller's
//! own, with `$inc` on the token; the token it sets is recorded in the
//! handle ([`super::fence`]) and carried by every event the handle
//! appends to the chat afterwards.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, IndexModel};

use super::MongoStore;
use super::documents::{
    corrupt, decode_event, encode, integer, is_duplicate_key, saturating_i64, status_name, to_i64,
};
use crate::event::Envelope;
use crate::store::cluster::{Acquired, ClusterStore, InboxItem, Lease, ServerInfo};
use crate::store::{ChatStatus, StoreError};

/// How often an acquisition is tried again when the lease it could not
/// take turns out to be free when read (it was missing, or released or
/// lapsed in between).
const MAX_ACQUIRE_ATTEMPTS: u32 = 8;

/// How many rounds [`ClusterStore::orphaned`] reads when the leases it
/// finds belong to chats that need no run (each round settles those).
const MAX_ORPHAN_ROUNDS: u32 = 16;

/// MongoDB's code for a collection that does not exist.
const NAMESPACE_NOT_FOUND: i32 = 26;

/// The indexes the cluster needs: collection, keys, and the name MongoDB
/// gives them.
fn cluster_indexes() -> [(&'static str, Document, &'static str); 3] {
    [
        (super::LEASES, doc! { "expires_at": 1 }, "expires_at_1"),
        (super::LEASES, doc! { "owner": 1 }, "owner_1"),
        (
            super::INBOX,
            doc! { "chat_id": 1, "sent_at": 1 },
            "chat_id_1_sent_at_1",
        ),
    ]
}

/// A lease document's fields, checked.
fn decode_lease(document: &Document) -> Result<Lease, StoreError> {
    let chat_id = match document.get("_id") {
        Some(Bson::String(id)) => id.clone(),
        _ => return Err(corrupt("lease", "?", "field `_id` is not a string")),
    };
    let owner = match document.get("owner") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(owner)) => Some(owner.clone()),
        Some(_) => return Err(corrupt("lease", &chat_id, "field `owner` is not a string")),
    };
    let number = |field: &str| {
        integer(document.get(field))
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                corrupt(
                    "lease",
                    &chat_id,
                    format!("field `{field}` is missing or not a non-negative integer"),
                )
            })
    };
    Ok(Lease {
        owner,
        token: number("token")?,
        expires_at: number("expires_at")?,
        chat_id: chat_id.clone(),
    })
}

/// An `$in` list of strings.
fn strings(values: &[String]) -> Bson {
    Bson::Array(values.iter().cloned().map(Bson::String).collect())
}

impl MongoStore {
    /// Every document `filter` matches in `collection`, in `sort` order, at
    /// most `limit` (none when `None`).
    pub(super) async fn find_all(
        &self,
        op: &str,
        collection: &Collection<Document>,
        filter: Document,
        sort: Option<Document>,
        limit: Option<i64>,
    ) -> Result<Vec<Document>, StoreError> {
        let mut find = collection.find(filter);
        if let Some(sort) = sort {
            find = find.sort(sort);
        }
        if let Some(limit) = limit {
            find = find.limit(limit);
        }
        find.await
            .map_err(|e| self.backend(op, &e))?
            .try_collect()
            .await
            .map_err(|e| self.backend(op, &e))
    }

    /// Raises the chat's folded `lease` to a takeover's token at once,
    /// before its `run_moved` is appended: the old owner is refused at its
    /// next append (it catches up first) instead of racing the new owner
    /// for every sequence number until `run_moved` lands. An append of the
    /// old owner that checked before this write can still land, but only
    /// before `run_moved` (`mongo.rs`, "Fencing").
    async fn raise_chat_lease(&self, chat_id: &str, token: u64) -> Result<(), StoreError> {
        let op = "fencing a chat taken over";
        self.chats
            .update_one(
                doc! { "_id": chat_id },
                doc! { "$max": { "lease": to_i64(op, "lease", token)? } },
            )
            .await
            .map_err(|e| self.backend(op, &e))?;
        Ok(())
    }

    /// One try at the chat's lease: `None` when it was found free but
    /// changed before it could be taken (try again).
    ///
    /// The update is not an upsert: a chat without a lease document gets a
    /// free one first (an insert that may collide with another server's,
    /// which is just as free). Some wire-protocol servers answer an upsert
    /// that collides with an existing document with "nothing matched"
    /// instead of a duplicate key error, so the store never relies on it.
    async fn try_acquire(
        &self,
        chat_id: &str,
        owner: &str,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Option<Acquired>, StoreError> {
        let op = "acquiring a chat's lease";
        let now_i64 = to_i64(op, "now", now)?;
        let expires_at = to_i64(op, "expires_at", now.saturating_add(ttl_ms))?;
        let before = self
            .leases
            .find_one_and_update(
                doc! { "$and": [
                    { "_id": chat_id },
                    { "$or": [
                        { "owner": Bson::Null },
                        { "owner": owner },
                        { "expires_at": { "$lte": now_i64 } },
                    ] },
                ] },
                doc! {
                    "$set": {
                        "owner": owner,
                        "last_owner": owner,
                        "expires_at": expires_at,
                        "orphan": false,
                    },
                    "$inc": { "token": 1_i64 },
                },
            )
            .return_document(ReturnDocument::Before)
            .await
            .map_err(|e| self.backend(op, &e))?;
        let Some(before) = before else {
            let lease = self
                .leases
                .find_one(doc! { "_id": chat_id })
                .await
                .map_err(|e| self.backend(op, &e))?
                .map(|d| decode_lease(&d))
                .transpose()?;
            return match lease {
                None => {
                    self.create_free_lease(op, chat_id).await?;
                    Ok(None)
                }
                Some(Lease {
                    owner: Some(holder),
                    expires_at,
                    ..
                }) if holder != owner && expires_at > now => Ok(Some(Acquired::Elsewhere {
                    owner: holder,
                    expires_at,
                })),
                // Released or lapsed since the update.
                Some(_) => Ok(None),
            };
        };
        let old = decode_lease(&before)?;
        let previous = match before.get("last_owner") {
            Some(Bson::String(last)) if last != owner => Some(last.clone()),
            _ => None,
        };
        let token = old.token.saturating_add(1);
        self.fence.hold(chat_id, token);
        Ok(Some(Acquired::Held { token, previous }))
    }

    /// Inserts a free lease for the chat unless it has one.
    pub(super) async fn create_free_lease(
        &self,
        op: &str,
        chat_id: &str,
    ) -> Result<(), StoreError> {
        let free = doc! {
            "_id": chat_id,
            "owner": Bson::Null,
            "last_owner": Bson::Null,
            "token": 0_i64,
            "expires_at": 0_i64,
            "orphan": false,
        };
        match self.leases.insert_one(free).await {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(self.backend(op, &error)),
        }
    }

    /// Releases, without `needs_run`, the leases among `leases` that lapsed
    /// or were orphaned as read, if they are still so: their chats need no
    /// run, and [`ClusterStore::orphaned`] does not list them again.
    async fn settle(&self, op: &str, leases: &[Lease], now: u64) -> Result<(), StoreError> {
        let now = saturating_i64(now);
        for lease in leases {
            self.leases
                .update_one(
                    doc! { "$and": [
                        { "_id": &lease.chat_id, "token": to_i64(op, "token", lease.token)? },
                        { "$or": [
                            { "owner": { "$ne": Bson::Null }, "expires_at": { "$lte": now } },
                            { "orphan": true },
                        ] },
                    ] },
                    doc! { "$set": { "owner": Bson::Null, "expires_at": 0_i64, "orphan": false } },
                )
                .await
                .map_err(|e| self.backend(op, &e))?;
        }
        Ok(())
    }
}

/// Whether two index key documents name the same fields, in the same
/// order and directions (however the server encodes the numbers).
fn same_keys(found: &Document, wanted: &Document) -> bool {
    found.len() == wanted.len()
        && found
            .iter()
            .zip(wanted)
            .all(|((f, fv), (w, wv))| f == w && integer(Some(fv)) == integer(Some(wv)))
}

/// Whether `error` says the collection does not exist.
fn namespace_not_found(error: &MongoError) -> bool {
    matches!(error.kind.as_ref(), ErrorKind::Command(c) if c.code == NAMESPACE_NOT_FOUND)
}

#[async_trait]
impl ClusterStore for MongoStore {
    fn join(&self, server_id: &str) {
        self.fence.join(server_id);
    }

    async fn prepare_cluster(&self) -> Result<(), StoreError> {
        let op = "creating the cluster's indexes";
        for (collection, keys, _) in cluster_indexes() {
            self.db
                .collection::<Document>(collection)
                .create_index(IndexModel::builder().keys(keys).build())
                .await
                .map_err(|e| self.backend(op, &e))?;
        }
        Ok(())
    }

    async fn heartbeat(&self, server: &ServerInfo) -> Result<(), StoreError> {
        let op = "recording a server's heartbeat";
        let document = doc! {
            "_id": &server.id,
            "last_seen": to_i64(op, "last_seen", server.last_seen)?,
            "json": encode(op, server)?,
        };
        self.servers
            .replace_one(doc! { "_id": &server.id }, document)
            .upsert(true)
            .await
            .map_err(|e| self.backend(op, &e))?;
        Ok(())
    }

    async fn leave(&self, id: &str) -> Result<(), StoreError> {
        self.servers
            .delete_one(doc! { "_id": id })
            .await
            .map_err(|e| self.backend("removing a server", &e))?;
        Ok(())
    }

    async fn servers(&self) -> Result<Vec<ServerInfo>, StoreError> {
        let op = "listing servers";
        let documents = self
            .find_all(
                op,
                &self.servers,
                Document::new(),
                Some(doc! { "_id": 1 }),
                None,
            )
            .await?;
        documents
            .iter()
            .map(|document| {
                let id = document.get_str("_id").unwrap_or("?");
                let json = document
                    .get_str("json")
                    .map_err(|_| corrupt("server", id, "field `json` is missing"))?;
                serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
                    what: format!("server `{id}`"),
                    chat_id: String::new(),
                    source,
                })
            })
            .collect()
    }

    async fn acquire(
        &self,
        chat_id: &str,
        owner: &str,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Acquired, StoreError> {
        for _ in 0..MAX_ACQUIRE_ATTEMPTS {
            if let Some(acquired) = self.try_acquire(chat_id, owner, now, ttl_ms).await? {
                if let Acquired::Held {
                    token,
                    previous: Some(_),
                } = &acquired
                {
                    self.raise_chat_lease(chat_id, *token).await?;
                }
                return Ok(acquired);
            }
        }
        Err(StoreError::Backend(format!(
            "acquiring chat `{chat_id}`'s lease: gave up after {MAX_ACQUIRE_ATTEMPTS} tries \
             (it kept changing hands)"
        )))
    }

    async fn renew(
        &self,
        owner: &str,
        chat_ids: &[String],
        now: u64,
        ttl_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let op = "renewing leases";
        if chat_ids.is_empty() {
            return Ok(Vec::new());
        }
        let expires_at = to_i64(op, "expires_at", now.saturating_add(ttl_ms))?;
        let mine = doc! { "_id": { "$in": strings(chat_ids) }, "owner": owner };
        self.leases
            .update_many(mine.clone(), doc! { "$set": { "expires_at": expires_at } })
            .await
            .map_err(|e| self.backend(op, &e))?;
        let held = self
            .find_all(op, &self.leases, mine, None, None)
            .await?
            .iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect::<std::collections::HashSet<String>>();
        let lost: Vec<String> = chat_ids
            .iter()
            .filter(|id| !held.contains(*id))
            .cloned()
            .collect();
        for chat_id in &lost {
            self.fence.forget(chat_id);
        }
        Ok(lost)
    }

    async fn release(&self, chat_id: &str, owner: &str, needs_run: bool) -> Result<(), StoreError> {
        self.fence.forget(chat_id);
        self.leases
            .update_one(
                doc! { "_id": chat_id, "owner": owner },
                doc! { "$set": { "owner": Bson::Null, "expires_at": 0_i64, "orphan": needs_run } },
            )
            .await
            .map_err(|e| self.backend("releasing a lease", &e))?;
        Ok(())
    }

    async fn lease(&self, chat_id: &str) -> Result<Option<Lease>, StoreError> {
        self.leases
            .find_one(doc! { "_id": chat_id })
            .await
            .map_err(|e| self.backend("reading a lease", &e))?
            .map(|d| decode_lease(&d))
            .transpose()
    }

    async fn held_leases(&self, now: u64) -> Result<Vec<Lease>, StoreError> {
        let op = "listing held leases";
        let filter = doc! {
            "owner": { "$ne": Bson::Null },
            "expires_at": { "$gt": saturating_i64(now) },
        };
        self.find_all(op, &self.leases, filter, Some(doc! { "_id": 1 }), None)
            .await?
            .iter()
            .map(decode_lease)
            .collect()
    }

    /// Reads the candidates oldest expiry first; those whose chat is no
    /// longer in progress (or is gone) are settled, and reading goes on
    /// until `limit` leases are found or none is left.
    async fn orphaned(&self, now: u64, limit: usize) -> Result<Vec<Lease>, StoreError> {
        let op = "listing orphaned leases";
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let filter = doc! {
            "$or": [
                { "owner": { "$ne": Bson::Null }, "expires_at": { "$lte": saturating_i64(now) } },
                { "orphan": true },
            ],
        };
        for _ in 0..MAX_ORPHAN_ROUNDS {
            let wanted = limit - found.len();
            let candidates: Vec<Lease> = self
                .find_all(
                    op,
                    &self.leases,
                    filter.clone(),
                    Some(doc! { "expires_at": 1, "_id": 1 }),
                    Some(saturating_i64(wanted as u64)),
                )
                .await?
                .iter()
                .map(decode_lease)
                .collect::<Result<_, _>>()?;
            let exhausted = candidates.len() < wanted;
            let ids: Vec<String> = candidates.iter().map(|l| l.chat_id.clone()).collect();
            let running: std::collections::HashSet<String> = self
                .find_all(
                    op,
                    &self.chats,
                    doc! {
                        "_id": { "$in": strings(&ids) },
                        "status": status_name(&ChatStatus::InProgress),
                    },
                    None,
                    None,
                )
                .await?
                .iter()
                .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
                .collect();
            let (live, idle): (Vec<Lease>, Vec<Lease>) = candidates
                .into_iter()
                .partition(|l| running.contains(&l.chat_id));
            self.settle(op, &idle, now).await?;
            let settled_none = idle.is_empty();
            found.extend(live);
            if exhausted || settled_none || found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }

    async fn send_input(&self, item: &InboxItem) -> Result<(), StoreError> {
        let op = "queueing an input";
        let document = doc! {
            "_id": &item.id,
            "chat_id": &item.chat_id,
            "input": encode(op, &item.input)?,
            "sent_at": to_i64(op, "sent_at", item.sent_at)?,
        };
        match self.inbox.insert_one(document).await {
            Ok(_) => Ok(()),
            // Sent before (a resend after a lost reply).
            Err(error) if is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(self.backend(op, &error)),
        }
    }

    /// Reads the queued items, then deletes each by id: only the caller
    /// whose delete removed an item returns it.
    async fn take_inputs(&self, chat_ids: &[String]) -> Result<Vec<InboxItem>, StoreError> {
        let op = "taking queued inputs";
        if chat_ids.is_empty() {
            return Ok(Vec::new());
        }
        let documents = self
            .find_all(
                op,
                &self.inbox,
                doc! { "chat_id": { "$in": strings(chat_ids) } },
                Some(doc! { "sent_at": 1, "_id": 1 }),
                None,
            )
            .await?;
        let mut taken = Vec::new();
        for document in documents {
            let (Ok(id), Ok(chat_id), Ok(input)) = (
                document.get_str("_id"),
                document.get_str("chat_id"),
                document.get_str("input"),
            ) else {
                return Err(corrupt("queued input", "?", "a field is missing"));
            };
            let input = serde_json::from_str(input).map_err(|source| StoreError::Corrupt {
                what: format!("queued input `{id}`"),
                chat_id: chat_id.to_owned(),
                source,
            })?;
            let sent_at = integer(document.get("sent_at"))
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            let deleted = self
                .inbox
                .delete_one(doc! { "_id": id })
                .await
                .map_err(|e| self.backend(op, &e))?;
            if deleted.deleted_count == 1 {
                taken.push(InboxItem {
                    id: id.to_owned(),
                    chat_id: chat_id.to_owned(),
                    input,
                    sent_at,
                });
            }
        }
        Ok(taken)
    }

    async fn events_after(
        &self,
        positions: &[(String, u64)],
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let op = "reading events after positions";
        if positions.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // One probe of the chats' folded `last_seq` (by `_id`), then an
        // indexed `{chat_id, seq}` read of only the chats that moved on.
        // Not one `$or` over the positions: some wire-protocol servers
        // (nx-27017) answer it with a scan of every event, about 150 ms
        // on 10,000 events, every tick of every server. An event whose
        // fold is still pending (`mongo.rs`, the catch-up rule) shows up
        // with the next read of its chat that folds it.
        let ids: Vec<&str> = positions.iter().map(|(chat, _)| chat.as_str()).collect();
        let folded = self
            .find_all(op, &self.chats, doc! { "_id": { "$in": ids } }, None, None)
            .await?;
        let mut last: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for chat in &folded {
            let seq = integer(chat.get("last_seq")).and_then(|seq| u64::try_from(seq).ok());
            if let (Ok(id), Some(seq)) = (chat.get_str("_id"), seq) {
                last.insert(id, seq);
            }
        }
        let mut events = Vec::new();
        for (chat_id, after) in positions {
            if events.len() >= limit {
                break;
            }
            if last.get(chat_id.as_str()).is_none_or(|seq| seq <= after) {
                continue;
            }
            let room = saturating_i64((limit - events.len()) as u64);
            for document in self
                .find_all(
                    op,
                    &self.events,
                    doc! { "chat_id": chat_id, "seq": { "$gt": saturating_i64(*after) } },
                    Some(doc! { "seq": 1 }),
                    Some(room),
                )
                .await?
            {
                events.push(decode_event(&document, chat_id)?);
            }
        }
        Ok(events)
    }

    async fn database_time(&self) -> Result<u64, StoreError> {
        let op = "reading the database's clock";
        let hello = self
            .db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| self.backend(op, &e))?;
        match hello.get("localTime") {
            Some(Bson::DateTime(time)) => Ok(u64::try_from(time.timestamp_millis()).unwrap_or(0)),
            _ => Err(StoreError::Backend(format!(
                "{op}: the server's `hello` reply has no `localTime`"
            ))),
        }
    }

    async fn missing_indexes(&self) -> Result<Vec<String>, StoreError> {
        let op = "listing the cluster's indexes";
        let mut missing = Vec::new();
        for (collection, keys, name) in cluster_indexes() {
            let existing: Vec<IndexModel> = match self
                .db
                .collection::<Document>(collection)
                .list_indexes()
                .await
            {
                Ok(cursor) => cursor
                    .try_collect()
                    .await
                    .map_err(|e| self.backend(op, &e))?,
                Err(error) if namespace_not_found(&error) => Vec::new(),
                Err(error) => return Err(self.backend(op, &error)),
            };
            if !existing.iter().any(|index| same_keys(&index.keys, &keys)) {
                missing.push(format!("{collection}.{name}"));
            }
        }
        Ok(missing)
    }
}
