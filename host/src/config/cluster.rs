//! The settings of several servers on one database: `MOZAIKS_CLUSTER`,
//! `MOZAIKS_SERVER_ID`, `MOZAIKS_LEASE_SECS` (docs/operations.md).

use std::time::Duration;

use super::Reader;
use super::vars::Source;
use crate::orchestrator::cluster_limits::{DEFAULT_LEASE, LEASE_SECS_RANGE, MAX_SERVER_ID_CHARS};
use crate::orchestrator::{ClusterSettings, hostname};
use crate::store::StoreConfig;

/// Reads the cluster settings; `store` is the store already read (cluster
/// mode needs MongoDB), `addr` the listen address (the default id's port).
pub(super) fn read_cluster(r: &mut Reader<'_>, store: &StoreConfig, addr: &str) -> ClusterSettings {
    let mode = r.text("MOZAIKS_CLUSTER", None, "off");
    let enabled = match mode.to_ascii_lowercase().as_str() {
        "on" => true,
        "off" => false,
        _ => {
            r.error("MOZAIKS_CLUSTER", Some(&mode), "must be `on` or `off`");
            false
        }
    };
    if enabled && matches!(store, StoreConfig::Embedded { .. }) {
        r.error(
            "MOZAIKS_CLUSTER",
            Some(&mode),
            "`on` needs MongoDB: set MONGO_URI to the database every server shares (the embedded store is one process's)",
        );
    }
    let server_id = match r.raw("MOZAIKS_SERVER_ID") {
        Some((id, source)) => {
            r.show("MOZAIKS_SERVER_ID", id.clone(), &source);
            if let Some(problem) = id_problem(&id) {
                r.error("MOZAIKS_SERVER_ID", Some(&id), problem);
            }
            Some(id)
        }
        None => {
            let port = addr.rsplit_once(':').map_or("8080", |(_, port)| port);
            r.show(
                "MOZAIKS_SERVER_ID",
                format!("{}:{port}", hostname()),
                &Source::Default,
            );
            None
        }
    };
    let lease = r.number(
        "MOZAIKS_LEASE_SECS",
        None,
        DEFAULT_LEASE.as_secs(),
        "seconds",
    );
    if !LEASE_SECS_RANGE.contains(&lease) {
        r.error(
            "MOZAIKS_LEASE_SECS",
            Some(&lease.to_string()),
            format!(
                "must be from {} to {} seconds",
                LEASE_SECS_RANGE.start(),
                LEASE_SECS_RANGE.end()
            ),
        );
    }
    ClusterSettings {
        enabled,
        server_id,
        lease: Duration::from_secs(lease),
    }
}

/// What is wrong with a server id, if anything (an empty value never
/// gets here: it is unset, as for every setting).
fn id_problem(id: &str) -> Option<String> {
    if id.chars().count() > MAX_SERVER_ID_CHARS {
        Some(format!("must be at most {MAX_SERVER_ID_CHARS} characters"))
    } else if id.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    }
}
