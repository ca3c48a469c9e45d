//! The startup guard: every server on one database runs in the same mode,
//! and outside cluster mode there is only one.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ClusterError;
use crate::event::now_ms;
use crate::store::cluster::{ClusterStore, ServerInfo};

/// Beyond a third of a lease (the heartbeat's period), how long a starting
/// server watches a server that looks live for its next heartbeat.
const HEARTBEAT_MARGIN: Duration = Duration::from_secs(1);

/// The startup check against the registry. A server that looks live (its
/// entry is recent) but may have crashed just now is watched for one
/// heartbeat: only one whose heartbeat moves on counts, so a crashed
/// server's replacement starts at once after that wait.
pub(super) async fn verify(
    store: &dyn ClusterStore,
    me: &ServerInfo,
    lease: Duration,
) -> Result<(), ClusterError> {
    let first = store.servers().await?;
    if check(me, &first, now_ms(), lease).is_ok() {
        return Ok(());
    }
    let seen: BTreeMap<&str, u64> = first.iter().map(|s| (s.id.as_str(), s.last_seen)).collect();
    tracing::info!("another server on this database looks live; waiting for its next heartbeat");
    tokio::time::sleep(lease / 3 + HEARTBEAT_MARGIN).await;
    let beating: Vec<ServerInfo> = store
        .servers()
        .await?
        .into_iter()
        .filter(|s| {
            seen.get(s.id.as_str())
                .is_none_or(|before| s.last_seen > *before)
        })
        .collect();
    check(me, &beating, now_ms(), lease)
}

/// How many leases long a server that stopped heartbeating still counts as
/// alive: a crashed server's entry stays in the registry.
const LIVE_FOR_LEASES: u32 = 3;

/// Refuses `me` if another live server (last seen within three leases) of
/// `servers` runs in the other mode, or if neither runs in cluster mode.
/// `me`'s own entry (same id, from an earlier run) does not count.
pub(super) fn check(
    me: &ServerInfo,
    servers: &[ServerInfo],
    now: u64,
    lease: Duration,
) -> Result<(), ClusterError> {
    let live_for = u64::try_from((lease * LIVE_FOR_LEASES).as_millis()).unwrap_or(u64::MAX);
    let conflict = servers.iter().find(|other| {
        other.id != me.id
            && other.last_seen.saturating_add(live_for) >= now
            && (other.cluster != me.cluster || !me.cluster)
    });
    match conflict {
        Some(other) => Err(ClusterError::Conflict {
            other_id: other.id.clone(),
            other_address: other.address.clone(),
            other_cluster: other.cluster,
            mine: me.cluster,
            seen_ms: now.saturating_sub(other.last_seen),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, cluster: bool, last_seen: u64) -> ServerInfo {
        ServerInfo {
            id: id.to_owned(),
            incarnation: "i".to_owned(),
            address: format!("10.0.0.1:{}", id.len()),
            version: "0".to_owned(),
            cluster,
            started_at: 0,
            last_seen,
            plugins: Default::default(),
            workflows: Default::default(),
        }
    }

    const LEASE: Duration = Duration::from_secs(10);
    const NOW: u64 = 100_000;

    /// Cluster servers join each other; a dead server (silent for more
    /// than three leases) and this server's own old entry never count.
    #[test]
    fn servers_of_one_mode_join_and_stale_entries_are_ignored() {
        let me = server("a", true, NOW);
        let others = [
            server("b", true, NOW - 1_000),
            server("c", false, NOW - 30_001),
        ];
        assert!(check(&me, &others, NOW, LEASE).is_ok());
        let single = server("a", false, NOW);
        let restarted = [server("a", false, NOW - 10)];
        assert!(check(&single, &restarted, NOW, LEASE).is_ok());
        assert!(check(&single, &[], NOW, LEASE).is_ok());
    }

    /// A live server of the other mode, or a second single server, is
    /// refused with a message naming MOZAIKS_CLUSTER and the other server.
    #[test]
    fn a_mixed_mode_or_a_second_single_server_is_refused_naming_the_setting() {
        let cases = [
            (server("a", true, NOW), server("b", false, NOW - 29_000)),
            (server("a", false, NOW), server("b", true, NOW)),
            (server("a", false, NOW), server("b", false, NOW)),
        ];
        for (me, other) in cases {
            let error = check(&me, std::slice::from_ref(&other), NOW, LEASE).unwrap_err();
            let text = error.to_string();
            assert!(text.contains("MOZAIKS_CLUSTER"), "{text}");
            assert!(text.contains("`b` at 10.0.0.1:1"), "{text}");
        }
    }
}
