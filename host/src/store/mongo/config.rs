//! How the MongoDB store is configured (`MONGO_URI`, `MONGO_DB`,
//! `MOZAIKS_MONGO_WRITE_CONCERN`, `MONGO_SERVER_SELECTION_TIMEOUT_MS`) and
//! how a driver error is explained to an operator.

use std::fmt;
use std::time::Duration;

use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::WriteConcern;

/// The database used when `MONGO_DB` is not set.
pub(crate) const DEFAULT_DATABASE: &str = "mozaiks";

/// How long an operation waits for a usable server before it fails. The
/// driver's own default (30 s) would leave requests and the readiness
/// probe hanging through an outage; 5 s still rides out an election.
pub(crate) const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Which acknowledgement writes wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteConcernChoice {
    /// A majority of the replica set has the write (`w: "majority"`): an
    /// acknowledged event survives a failover. The default.
    #[default]
    Majority,
    /// The primary alone has it (`w: 1`): faster, but a failover can lose
    /// the last acknowledged events.
    W1,
}

impl WriteConcernChoice {
    pub(super) fn to_driver(self) -> WriteConcern {
        match self {
            WriteConcernChoice::Majority => WriteConcern::majority(),
            WriteConcernChoice::W1 => WriteConcern::nodes(1),
        }
    }
}

/// Where the MongoDB store lives and how it writes.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoConfig {
    /// The connection string: `mongodb://host:port`, with credentials and
    /// `authSource` if needed, or `mongodb+srv://` (resolved when the store
    /// connects). Its options apply, except those below.
    pub uri: String,
    /// The database holding the collections.
    pub database: String,
    /// The write concern of every write.
    pub write_concern: WriteConcernChoice,
    /// How long an operation waits for a usable server; the URI's
    /// `serverSelectionTimeoutMS`, when present, wins.
    pub server_selection_timeout: Duration,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.redacted_uri())
            .field("database", &self.database)
            .field("write_concern", &self.write_concern)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .finish()
    }
}

/// An environment variable with a value the store cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{variable}=`{value}` is invalid: expected {expected}")]
pub struct MongoConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What it may be.
    pub expected: &'static str,
}

impl MongoConfig {
    /// A config for `uri` with the defaults: database `mozaiks`, write
    /// concern `majority`, 5 s server selection timeout.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: DEFAULT_DATABASE.to_owned(),
            write_concern: WriteConcernChoice::Majority,
            server_selection_timeout: DEFAULT_SERVER_SELECTION_TIMEOUT,
        }
    }

    /// Reads `MONGO_URI` (no MongoDB store when unset or empty), `MONGO_DB`
    /// (default `mozaiks`), `MOZAIKS_MONGO_WRITE_CONCERN` (`majority`, the
    /// default, or `1`) and `MONGO_SERVER_SELECTION_TIMEOUT_MS` (default
    /// 5000) through `var`: the server's configuration
    /// (`Config`, in `config.rs`) passes its sources (environment, `.env`,
    /// the secrets directory for `MONGO_URI`).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, MongoConfigError> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let Some(uri) = set("MONGO_URI") else {
            return Ok(None);
        };
        let mut config = Self::new(uri.trim());
        if let Some(database) = set("MONGO_DB") {
            config.database = database.trim().to_owned();
        }
        if let Some(value) = set("MOZAIKS_MONGO_WRITE_CONCERN") {
            config.write_concern = match value.trim() {
                "majority" => WriteConcernChoice::Majority,
                "1" => WriteConcernChoice::W1,
                _ => {
                    return Err(MongoConfigError {
                        variable: "MOZAIKS_MONGO_WRITE_CONCERN",
                        value,
                        expected: "`majority` or `1`",
                    });
                }
            };
        }
        if let Some(value) = set("MONGO_SERVER_SELECTION_TIMEOUT_MS") {
            let ms = value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .ok_or(MongoConfigError {
                    variable: "MONGO_SERVER_SELECTION_TIMEOUT_MS",
                    value,
                    expected: "a positive number of milliseconds",
                })?;
            config.server_selection_timeout = Duration::from_millis(ms);
        }
        Ok(Some(config))
    }

    /// The URI with its password replaced by `***`, for logs.
    pub fn redacted_uri(&self) -> String {
        redact_uri(&self.uri)
    }
}

/// `scheme://user:password@rest` → `scheme://user:***@rest`.
pub(super) fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, hosts)) => {
            let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => uri.to_owned(),
    }
}

/// Classifies a driver error into what an operator can act on: `refused`
/// (nothing listens at the address), `dns` (the host name does not
/// resolve), `auth` (wrong user, password or `authSource`), `timeout` (no
/// server answered in time) or `other`.
pub(crate) fn classify(error: &MongoError) -> &'static str {
    match error.kind.as_ref() {
        ErrorKind::Authentication { .. } => return "auth",
        ErrorKind::DnsResolve { .. } => return "dns",
        ErrorKind::Command(command) if command.code == 18 => return "auth",
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            return "refused";
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => return "timeout",
        _ => {}
    }
    // A server selection error describes each server's last failure only
    // as text.
    let text = error.to_string();
    let has = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
    if has(&[
        "Authentication failed",
        "AuthenticationFailed",
        "SCRAM failure",
    ]) {
        "auth"
    } else if has(&[
        "failed to lookup address",
        "Name or service not known",
        "Temporary failure in name resolution",
        "No address associated with hostname",
        "nodename nor servname",
        "DNS resolution",
    ]) {
        "dns"
    } else if has(&["Connection refused", "connection refused"]) {
        "refused"
    } else if matches!(error.kind.as_ref(), ErrorKind::ServerSelection { .. })
        || has(&["timed out"])
    {
        "timeout"
    } else {
        "other"
    }
}

/// What to tell an operator about an error of each class.
pub(super) fn advice(class: &str) -> &'static str {
    match class {
        "refused" => {
            "refused the connection (refused): check that MongoDB runs at the host and port of MONGO_URI"
        }
        "dns" => "host name does not resolve (dns): check the host in MONGO_URI",
        "auth" => {
            "authentication failed (auth): check the user, password and authSource in MONGO_URI"
        }
        "timeout" => {
            "did not answer in time (timeout): check that MongoDB is up and reachable, or raise MONGO_SERVER_SELECTION_TIMEOUT_MS"
        }
        _ => "failed (other)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn reads_no_config_without_a_uri() {
        assert_eq!(MongoConfig::from_vars(vars(&[])).unwrap(), None);
        assert_eq!(
            MongoConfig::from_vars(vars(&[("MONGO_URI", " "), ("MONGO_DB", "x")])).unwrap(),
            None
        );
    }

    #[test]
    fn reads_the_defaults_and_every_variable() {
        let config = MongoConfig::from_vars(vars(&[("MONGO_URI", "mongodb://db:27017")]))
            .unwrap()
            .unwrap();
        assert_eq!(config, MongoConfig::new("mongodb://db:27017"));
        assert_eq!(config.database, "mozaiks");
        assert_eq!(config.write_concern, WriteConcernChoice::Majority);
        assert_eq!(config.server_selection_timeout, Duration::from_secs(5));

        let config = MongoConfig::from_vars(vars(&[
            ("MONGO_URI", "mongodb+srv://cluster.example.net"),
            ("MONGO_DB", "chats"),
            ("MOZAIKS_MONGO_WRITE_CONCERN", "1"),
            ("MONGO_SERVER_SELECTION_TIMEOUT_MS", "250"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.database, "chats");
        assert_eq!(config.write_concern, WriteConcernChoice::W1);
        assert_eq!(config.server_selection_timeout, Duration::from_millis(250));
    }

    #[test]
    fn refuses_an_unknown_write_concern_or_timeout() {
        let err = MongoConfig::from_vars(vars(&[
            ("MONGO_URI", "mongodb://db"),
            ("MOZAIKS_MONGO_WRITE_CONCERN", "2"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "MOZAIKS_MONGO_WRITE_CONCERN");
        assert!(err.to_string().contains("`majority` or `1`"), "{err}");
        for bad in ["0", "soon", "-5"] {
            let err = MongoConfig::from_vars(vars(&[
                ("MONGO_URI", "mongodb://db"),
                ("MONGO_SERVER_SELECTION_TIMEOUT_MS", bad),
            ]))
            .unwrap_err();
            assert_eq!(err.variable, "MONGO_SERVER_SELECTION_TIMEOUT_MS");
        }
    }

    #[test]
    fn redacts_the_password_of_a_uri() {
        let cases = [
            (
                "mongodb://app:s3cr@t@db1:27017,db2/?authSource=admin",
                "mongodb://app:***@db1:27017,db2/?authSource=admin",
            ),
            (
                "mongodb+srv://app:pw@cluster.example.net/mozaiks",
                "mongodb+srv://app:***@cluster.example.net/mozaiks",
            ),
            ("mongodb://db:27017", "mongodb://db:27017"),
            ("mongodb://db/?x=a@b", "mongodb://db/?x=a@b"),
        ];
        for (uri, redacted) in cases {
            assert_eq!(redact_uri(uri), redacted);
        }
        let config = MongoConfig::new("mongodb://app:hunter2@db");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
