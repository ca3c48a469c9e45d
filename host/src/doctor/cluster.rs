//! `mozaiks doctor`'s `cluster` section (with `MOZAIKS_CLUSTER=on`): the
//! lease indexes, this machine's clock against the database's, the other
//! servers registered and alive, and the plugin and workflow versions that
//! differ between them (docs/operations.md, "Running several servers").

use std::time::{Duration, SystemTime};

use super::Finding;
use crate::config::Config;
use crate::orchestrator::hostname;
use crate::plugin_set::ms;
use crate::store::StoreError;
use crate::store::cluster::{ClusterStore, ServerInfo};
use crate::transport::cluster::{Versions, alive, skew};

/// The check's name in the report.
const CHECK: &str = "cluster";

/// Clock skew above this warns: harmless for leases of several seconds, but
/// log times and `expires_at` no longer read alike across servers.
pub(super) const SKEW_WARN_MS: u64 = 1_000;

/// Clock skew above this fraction of the lease time fails: a server whose
/// clock runs ahead thinks another's lease lapsed that early, and takes a
/// chat over while its owner still runs it (fencing keeps the log right,
/// but the owner's step is lost and redone).
pub(super) const SKEW_FAIL_LEASE_FRACTION: u64 = 4;

/// How long the store gets to open for the section (as for `store`).
const OPEN_WAIT: Duration = Duration::from_secs(15);

/// The section, when `MOZAIKS_CLUSTER=on`: nothing otherwise.
pub(super) async fn section(config: &Config) -> Vec<Finding> {
    let settings = &config.cluster;
    if !settings.enabled {
        return Vec::new();
    }
    let Ok(Ok(store)) = tokio::time::timeout(OPEN_WAIT, config.store.open()).await else {
        return vec![Finding::warn(
            CHECK,
            "the cluster checks need the store, which does not answer; they did not run",
            "fix what the `store` check says, then run `mozaiks doctor` again",
        )];
    };
    let Some(shared) = store.cluster() else {
        // The configuration refuses cluster mode on the embedded store.
        return Vec::new();
    };
    let server_id = settings.server_id.clone().unwrap_or_else(|| {
        let port = config.addr.rsplit_once(':').map_or("", |(_, port)| port);
        format!("{}:{port}", hostname())
    });
    cluster(shared.as_ref(), &server_id, settings.lease).await
}

/// Every finding of the section, against the cluster's shared state.
/// `server_id`: the id this machine's server will use.
pub(super) async fn cluster(
    shared: &dyn ClusterStore,
    server_id: &str,
    lease_ttl: Duration,
) -> Vec<Finding> {
    let lease_ttl_ms = u64::try_from(lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut findings = vec![indexes(shared.missing_indexes().await)];
    let before = ms(SystemTime::now());
    let database = shared.database_time().await;
    let after = ms(SystemTime::now());
    findings.push(match database {
        Ok(database) => clock(before, after, database, lease_ttl_ms),
        Err(error) => unreadable("the database's clock", &error),
    });
    match shared.servers().await {
        Ok(servers) => findings.extend(servers_findings(
            &servers,
            server_id,
            ms(SystemTime::now()),
            lease_ttl_ms,
        )),
        Err(error) => findings.push(unreadable("the server registry", &error)),
    }
    findings
}

/// A read the section needs that failed (the `store` check says why).
fn unreadable(what: &str, error: &StoreError) -> Finding {
    Finding::fail(
        CHECK,
        format!("cannot read {what}: {error}"),
        "see the `store` check above; the user in MONGO_URI needs read and write access to the database",
    )
}

/// The lease indexes: the server makes them at start; without them two
/// servers could both acquire a chat's lease.
pub(super) fn indexes(missing: Result<Vec<String>, StoreError>) -> Finding {
    match missing {
        Ok(missing) if missing.is_empty() => Finding::ok(CHECK, "the lease indexes are in place"),
        Ok(missing) => Finding::fail(
            CHECK,
            format!(
                "the lease indexes {} are missing: two servers could take the same chat",
                missing.join(", ")
            ),
            "start one server with MOZAIKS_CLUSTER=on on this database: it creates them at start (the user in MONGO_URI needs the createIndex action)",
        ),
        Err(error) => unreadable("the lease indexes", &error),
    }
}

/// This machine's clock against the database's, read at `database` between
/// `before` and `after` by this machine's clock: the skew is measured from
/// the middle of that round trip.
pub(super) fn clock(before: u64, after: u64, database: u64, lease_ttl_ms: u64) -> Finding {
    let middle = before + after.saturating_sub(before) / 2;
    let skew = middle.abs_diff(database);
    let ahead = if middle > database {
        "ahead of"
    } else {
        "behind"
    };
    let fail_above = lease_ttl_ms / SKEW_FAIL_LEASE_FRACTION;
    let measured = format!(
        "this machine's clock is {} ms {ahead} the database's (read in a {} ms round trip)",
        skew,
        after.saturating_sub(before)
    );
    if skew > fail_above {
        Finding::fail(
            CHECK,
            format!(
                "{measured}: more than a quarter of the lease time ({fail_above} ms); leases are timed by each server's clock, so a server whose clock runs ahead takes chats over while their owner still runs them"
            ),
            "synchronise the clocks with NTP (`timedatectl set-ntp true`; `chronyc tracking` shows the offset) on every server",
        )
    } else if skew > SKEW_WARN_MS {
        Finding::warn(
            CHECK,
            format!(
                "{measured}: over {SKEW_WARN_MS} ms; leases are timed by each server's clock and tolerate up to {fail_above} ms"
            ),
            "synchronise the clocks with NTP (`timedatectl set-ntp true`) on every server",
        )
    } else {
        Finding::ok(CHECK, measured)
    }
}

/// The registered servers: who is alive, whether one runs outside cluster
/// mode or already uses this server's id, and version skew among the live.
pub(super) fn servers_findings(
    servers: &[ServerInfo],
    server_id: &str,
    now: u64,
    lease_ttl_ms: u64,
) -> Vec<Finding> {
    let (live, gone): (Vec<&ServerInfo>, Vec<&ServerInfo>) = servers
        .iter()
        .partition(|s| alive(s.last_seen, now, lease_ttl_ms));
    let mut findings = Vec::new();
    let names = |list: &[&ServerInfo]| {
        list.iter()
            .map(|s| format!("`{}` ({})", s.id, s.address))
            .collect::<Vec<_>>()
            .join(", ")
    };
    findings.push(if live.is_empty() {
        Finding::ok(CHECK, "no other server is registered and alive")
    } else {
        Finding::ok(
            CHECK,
            format!(
                "{} server(s) registered and alive: {}",
                live.len(),
                names(&live)
            ),
        )
    });
    if !gone.is_empty() {
        findings.push(Finding::ok(
            CHECK,
            format!(
                "registered but not seen for over {} lease times: {} (their chats are taken over once their leases lapse)",
                crate::transport::cluster::ALIVE_LEASE_TIMES,
                names(&gone)
            ),
        ));
    }
    if let Some(same) = live.iter().find(|s| s.id == server_id) {
        findings.push(Finding::fail(
            CHECK,
            format!(
                "a live server already uses the id `{server_id}` ({}): two servers with one id would renew each other's leases",
                same.address
            ),
            "stop that server first, or give this one another MOZAIKS_SERVER_ID",
        ));
    }
    let single: Vec<&ServerInfo> = live.iter().copied().filter(|s| !s.cluster).collect();
    if !single.is_empty() {
        findings.push(Finding::fail(
            CHECK,
            format!(
                "{} run(s) on this database without cluster mode: a single server assumes it is alone",
                names(&single)
            ),
            "restart it with MOZAIKS_CLUSTER=on, or give this server another database",
        ));
    }
    let skew = skew(live.iter().copied());
    if skew.is_empty() {
        return findings;
    }
    for (kind, versions) in [("plugin", &skew.plugins), ("workflow", &skew.workflows)] {
        if !versions.is_empty() {
            findings.push(Finding::warn(
                CHECK,
                format!(
                    "live servers serve different {kind} versions: {}",
                    describe(versions)
                ),
                "deploy the same plugins/ and workflows/ to every server (during a rolling deploy this is expected until the last server is upgraded)",
            ));
        }
    }
    findings
}

/// `planner: a=1f2e3d4c, b=9a8b7c6d, c=none`; versions cut to 8 characters.
fn describe(versions: &Versions) -> String {
    versions
        .iter()
        .map(|(name, by_server)| {
            let each: Vec<String> = by_server
                .iter()
                .map(|(server, version)| {
                    let version = version
                        .as_deref()
                        .map_or("none", |v| v.get(..8).unwrap_or(v));
                    format!("{server}={version}")
                })
                .collect();
            format!("{name}: {}", each.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::doctor::Status;

    const TTL: u64 = 10_000;

    fn server(id: &str, last_seen: u64, planner: &str, cluster: bool) -> ServerInfo {
        ServerInfo {
            id: id.to_owned(),
            incarnation: "i".to_owned(),
            address: format!("10.0.0.{}:8080", id.len()),
            version: "0.1.0".to_owned(),
            cluster,
            started_at: 0,
            last_seen,
            plugins: BTreeMap::from([("planner".to_owned(), planner.to_owned())]),
            workflows: BTreeMap::new(),
        }
    }

    #[test]
    fn clock_skew_is_ok_to_one_second_warns_above_and_fails_above_a_quarter_lease() {
        // Read at 10_000 from the database between 9_990 and 10_010 here.
        let ok = clock(9_990, 10_010, 10_000, TTL);
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert!(ok.message.contains("0 ms"), "{ok:?}");
        let warn = clock(10_000, 10_000, 8_500, TTL);
        assert_eq!(warn.status, Status::Warn, "{warn:?}");
        assert!(warn.message.contains("1500 ms ahead of"), "{warn:?}");
        // 2.5 s is exactly a quarter of 10 s: still a warning.
        assert_eq!(clock(10_000, 10_000, 12_500, TTL).status, Status::Warn);
        let fail = clock(10_000, 10_000, 12_501, TTL);
        assert_eq!(fail.status, Status::Fail, "{fail:?}");
        assert!(fail.message.contains("2501 ms behind"), "{fail:?}");
        assert!(
            fail.message
                .contains("leases are timed by each server's clock"),
            "{fail:?}"
        );
        assert!(fail.fix.as_deref().unwrap().contains("NTP"));
        // A longer lease tolerates more.
        assert_eq!(clock(10_000, 10_000, 12_501, 60_000).status, Status::Warn);
    }

    #[test]
    fn missing_lease_indexes_fail_by_name_with_the_fix() {
        assert_eq!(indexes(Ok(Vec::new())).status, Status::Ok);
        let missing = indexes(Ok(vec!["owner_expires".to_owned()]));
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.message.contains("owner_expires"), "{missing:?}");
        assert!(
            missing.fix.unwrap().contains("creates them at start"),
            "the fix says the server makes them"
        );
        let unreadable = indexes(Err(StoreError::Backend("refused".to_owned())));
        assert_eq!(unreadable.status, Status::Fail);
        assert!(unreadable.message.contains("refused"));
    }

    #[test]
    fn the_servers_alive_are_listed_and_skew_among_them_warns() {
        let now = 100_000;
        let servers = [
            server("a", now, "sha-one-1234", true),
            server("bb", now - 2_000, "sha-two-5678", true),
            // Gone: its old plugin is not skew.
            server("ccc", now - 40_000, "sha-old", true),
        ];
        let findings = servers_findings(&servers, "me", now, TTL);
        let statuses: Vec<Status> = findings.iter().map(|f| f.status).collect();
        assert_eq!(
            statuses,
            [Status::Ok, Status::Ok, Status::Warn],
            "{findings:#?}"
        );
        assert!(
            findings[0]
                .message
                .contains("2 server(s) registered and alive: `a`")
        );
        assert!(findings[1].message.contains("`ccc`"));
        assert_eq!(
            findings[2].message,
            "live servers serve different plugin versions: planner: a=sha-one-, bb=sha-two-"
        );
        let agreeing = [server("a", now, "x", true), server("bb", now, "x", true)];
        let findings = servers_findings(&agreeing, "me", now, TTL);
        assert!(
            findings.iter().all(|f| f.status == Status::Ok),
            "{findings:#?}"
        );
    }

    /// The section against the real MongoDB store: a fresh database lacks
    /// the lease indexes; once a server made them and registered, the
    /// section finds it alive and the clocks in step.
    #[tokio::test]
    async fn the_section_reads_indexes_clock_and_servers_from_mongodb() {
        use crate::store::mongo::{MongoStore, test_server};
        use crate::store::{ChatStore as _, cluster::ClusterStore as _};
        let name = format!("mozaiks_test_{}", uuid::Uuid::new_v4().simple());
        let store = MongoStore::connect(&test_server::config(&name))
            .await
            .unwrap();
        let ttl = Duration::from_secs(10);
        let fresh = cluster(&store, "me", ttl).await;
        let peer = server("peer", ms(SystemTime::now()), "x", true);
        store.prepare().await.unwrap();
        store.prepare_cluster().await.unwrap();
        store.heartbeat(&peer).await.unwrap();
        let ready = cluster(&store, "me", ttl).await;
        let client = mongodb::Client::with_uri_str(test_server::uri())
            .await
            .unwrap();
        client.database(&name).drop().await.unwrap();

        assert_eq!(fresh[0].status, Status::Fail, "{fresh:#?}");
        assert!(fresh[0].message.contains("chat_leases."), "{fresh:#?}");
        let statuses: Vec<Status> = ready.iter().map(|f| f.status).collect();
        assert_eq!(statuses, [Status::Ok; 3], "{ready:#?}");
        assert_eq!(ready[0].message, "the lease indexes are in place");
        assert!(
            ready[1].message.contains("this machine's clock is"),
            "{ready:#?}"
        );
        assert!(
            ready[2]
                .message
                .contains("1 server(s) registered and alive: `peer`"),
            "{ready:#?}"
        );
    }

    #[test]
    fn a_live_server_with_this_id_or_outside_cluster_mode_fails() {
        let now = 100_000;
        let same_id = servers_findings(&[server("me", now, "x", true)], "me", now, TTL);
        assert!(
            same_id
                .iter()
                .any(|f| f.status == Status::Fail && f.message.contains("already uses the id `me`")),
            "{same_id:#?}"
        );
        // The same id on a server gone for good is no conflict.
        let gone = servers_findings(&[server("me", now - 60_000, "x", true)], "me", now, TTL);
        assert!(gone.iter().all(|f| f.status == Status::Ok), "{gone:#?}");
        let single = servers_findings(&[server("a", now, "x", false)], "me", now, TTL);
        assert!(
            single
                .iter()
                .any(|f| f.status == Status::Fail && f.message.contains("without cluster mode")),
            "{single:#?}"
        );
    }
}
