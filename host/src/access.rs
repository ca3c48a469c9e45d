//! Who may call the API: API keys, each mapped to an app (and optionally
//! one user of it). A caller sees and acts only on the chats of its app
//! (and user); `transport::auth` enforces it on every route.
//!
//! Keys are configured as `MOZAIKS_API_KEYS`: entries `key=app_id` or
//! `key=app_id:user_id`, separated by commas or newlines (`#` starts a
//! comment line), from the environment, `.env` or a file of that name in
//! `MOZAIKS_SECRETS_DIR`. Only SHA-256 digests of the keys are kept in
//! memory, and a lookup hashes the presented key first, so comparing
//! keys leaks nothing through timing.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

/// Shortest key accepted: 16 characters of a random token is 80+ bits.
/// `openssl rand -hex 32` makes a good one.
pub(crate) const MIN_KEY_LEN: usize = 16;

/// The caller behind a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The app whose chats the key reaches.
    pub app_id: String,
    /// The one user whose chats the key reaches; `None`: every user of the
    /// app (a backend that acts for its users).
    pub user_id: Option<String>,
    /// A short, non-secret id of the key for logs: the first 8 hex digits
    /// of its SHA-256.
    pub key_id: String,
}

impl Principal {
    /// Whether this caller may see a chat of `app_id` and `user_id`.
    pub fn owns(&self, app_id: &str, user_id: &str) -> bool {
        self.app_id == app_id && self.user_id.as_deref().is_none_or(|u| u == user_id)
    }
}

/// The configured keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({})", self.describe())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ApiKeys {
    /// Parses `key=app_id[:user_id]` entries. Every problem is reported
    /// (by entry number, never with the key itself).
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut keys = Self::default();
        let mut problems = Vec::new();
        let entries = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (index, entry) in entries.enumerate() {
            let n = index + 1;
            let Some((key, owner)) = entry.split_once('=') else {
                problems.push(format!(
                    "entry {n} is not `key=app_id` or `key=app_id:user_id`"
                ));
                continue;
            };
            let (key, owner) = (key.trim(), owner.trim());
            let (app_id, user_id) = match owner.split_once(':') {
                Some((app, user)) => (app.trim(), Some(user.trim())),
                None => (owner, None),
            };
            if key.chars().count() < MIN_KEY_LEN || key.chars().any(char::is_whitespace) {
                problems.push(format!(
                    "entry {n} (app `{app_id}`): the key must be at least {MIN_KEY_LEN} characters without spaces (e.g. `openssl rand -hex 32`)"
                ));
                continue;
            }
            if app_id.is_empty() || user_id.is_some_and(str::is_empty) {
                problems.push(format!(
                    "entry {n}: the app id (and user id after `:`) must not be empty"
                ));
                continue;
            }
            let digest = digest(key);
            let principal = Principal {
                app_id: app_id.to_owned(),
                user_id: user_id.map(str::to_owned),
                key_id: hex(digest.get(..4).unwrap_or_default()),
            };
            if keys.by_digest.insert(digest, principal).is_some() {
                problems.push(format!("entry {n}: the same key is listed twice"));
            }
        }
        if problems.is_empty() {
            Ok(keys)
        } else {
            Err(problems)
        }
    }

    /// The caller behind `key`, if it is a configured key.
    pub fn lookup(&self, key: &str) -> Option<&Principal> {
        self.by_digest.get(&digest(key))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// `2 keys: app `a` (key 1f2e3d4c), app `b` user `u` (key …)`, without
    /// the keys themselves.
    pub fn describe(&self) -> String {
        let mut owners: Vec<String> = self
            .by_digest
            .values()
            .map(|p| match &p.user_id {
                Some(user) => format!("app `{}` user `{user}` (key {})", p.app_id, p.key_id),
                None => format!("app `{}` (key {})", p.app_id, p.key_id),
            })
            .collect();
        owners.sort();
        format!("{} key(s): {}", owners.len(), owners.join(", "))
    }
}

/// Whether requests must carry a key, and the keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Auth on: every request but health, metrics and the console's static
    /// files needs a key.
    pub enabled: bool,
    /// The keys.
    pub keys: ApiKeys,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_an_app_or_to_one_user_of_it() {
        let keys = ApiKeys::parse(
            "# comment\nkey-for-app-a-0001=a, key-for-alice-0001=a:alice\nkey-for-app-b-0001=b",
        )
        .unwrap();
        assert_eq!(keys.len(), 3);
        let app_a = keys.lookup("key-for-app-a-0001").unwrap();
        assert!(app_a.owns("a", "anyone") && !app_a.owns("b", "anyone"));
        let alice = keys.lookup("key-for-alice-0001").unwrap();
        assert!(alice.owns("a", "alice") && !alice.owns("a", "bob"));
        assert!(keys.lookup("key-for-app-a-0002").is_none());
        assert!(!keys.describe().contains("key-for"), "{}", keys.describe());
    }

    #[test]
    fn bad_entries_are_all_reported_without_the_key() {
        let problems = ApiKeys::parse("short=a,no-owner-here-000000,long-enough-key-0=,dup-key-0000000000=a,dup-key-0000000000=b")
            .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("at least 16"), "{}", problems[0]);
        assert!(
            problems
                .iter()
                .all(|p| !p.contains("short") && !p.contains("dup-key"))
        );
    }
}
