//! Scale-out: turns/s of 1, 2 and 3 `mozaiks serve` processes in cluster
//! mode (`MOZAIKS_CLUSTER=on`) on one MongoDB database, and of one server
//! alone on the same database without cluster mode for reference.
//!
//! Run: `cargo bench -p mozaiks-host --bench cluster` (after
//! `scripts/build-plugins`); `-- --quick` (or `MOZAIKS_BENCH_QUICK=1`) for a
//! run of seconds. The database is `MONGO_TEST_URI` when it is set, else an
//! nx-27017 server (a MongoDB wire-protocol server on SQLite, one writer at
//! a time) started for the run; the first line says which.
//!
//! # Processes
//!
//! - **servers**: `mozaiks serve` as built by cargo for this benchmark (the
//!   bench profile: release), default settings but for the store (MongoDB,
//!   a fresh database per row), cluster mode and `MOZAIKS_SERVER_ID`; a
//!   data dir of their own each (the component cache).
//! - **fake LLM**: this executable again (`common/fake_llm_process.rs`),
//!   answering at once.
//! - **client** (this process, one tokio worker): C chats started at once,
//!   round-robin over the servers; each followed over its WebSocket, on the
//!   server that started it (the owner) or, in the "relayed" rows, on the
//!   next server, which relays the owner's events from the database.
//!
//! turns/s is the batch's agent turns over its wall time. The CPU of each
//! process (servers summed, nx-27017) is given as a share of one core over
//! the batch: on a 2-core machine the sum says how close the batch is to
//! the machine's ceiling, and nx-27017's share how close it is to the
//! database's.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use common::bench_workflows::{self, PLAIN};
use common::chat_client::{Until, run_chat};
use common::fake_llm_process::{self, FakeLlmProcess};
use common::scratch::Scratch;
use common::server_process::{ServerDirs, ServerProcess};
use common::{describe_machine, load_average, ms, percentile};

/// How much to measure.
#[derive(Debug, Clone, Copy)]
struct Config {
    /// Agent turns per chat.
    turns: u32,
    /// Chats per batch.
    chats: usize,
    /// Batches per row (the figure is their median).
    batches: usize,
}

impl Config {
    const FULL: Self = Self {
        turns: 10,
        chats: 60,
        batches: 3,
    };
    const QUICK: Self = Self {
        turns: 5,
        chats: 12,
        batches: 1,
    };
}

/// The database the servers share, and the process serving it when this
/// benchmark started one.
struct Database {
    uri: String,
    /// What the figures say the database is.
    label: String,
    /// nx-27017's process id, for its CPU.
    pid: Option<u32>,
    _nx: Option<mozaiks_test_mongo::NxServer>,
}

impl Database {
    fn open() -> anyhow::Result<Self> {
        if let Ok(uri) = std::env::var("MONGO_TEST_URI")
            && !uri.trim().is_empty()
        {
            return Ok(Self {
                uri: uri.trim().to_owned(),
                label: "MongoDB at MONGO_TEST_URI".to_owned(),
                pid: None,
                _nx: None,
            });
        }
        let nx = mozaiks_test_mongo::NxServer::start_temporary();
        let pid = std::fs::read_to_string(nx.dir().join("nx-27017.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        Ok(Self {
            uri: nx.uri(),
            label:
                "nx-27017 (MongoDB wire protocol on SQLite, one writer at a time), on this machine"
                    .to_owned(),
            pid,
            _nx: Some(nx),
        })
    }
}

/// One row: how many servers, in which mode, with clients where.
#[derive(Debug, Clone, Copy)]
struct Row {
    servers: usize,
    cluster: bool,
    relayed: bool,
}

impl Row {
    fn label(self) -> String {
        let mode = if self.cluster {
            "cluster"
        } else {
            "alone, no cluster"
        };
        let clients = if self.relayed {
            "socket on another server"
        } else {
            "socket on the owner"
        };
        format!(
            "{} server{} ({mode}), {clients}",
            self.servers,
            if self.servers == 1 { "" } else { "s" }
        )
    }
}

/// CPU time (user + system) of process `pid` so far, from
/// `/proc/<pid>/stat`, in 10 ms ticks.
fn cpu_of(pid: u32) -> Duration {
    let ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    Duration::from_millis(ticks().unwrap_or(0) * 10)
}

/// Starts the row's servers on a fresh database and waits until each is
/// ready.
async fn start_servers(
    http: &reqwest::Client,
    row: Row,
    scratch: &Path,
    workflows: &Path,
    plugins: &Path,
    database: &Database,
    llm: &FakeLlmProcess,
) -> anyhow::Result<Vec<ServerProcess>> {
    let db = format!("mozaiks_bench_cluster_{}", uuid::Uuid::new_v4().simple());
    let mut servers = Vec::new();
    for i in 0..row.servers {
        let id = format!("s{i}");
        let dir = scratch.join(format!("{db}-{id}"));
        let dirs = ServerDirs {
            workflows: workflows.to_owned(),
            plugins: plugins.to_owned(),
            data: dir.join("data"),
            stderr: dir.join("server.log"),
        };
        std::fs::create_dir_all(&dir)?;
        let mut env = vec![
            ("MONGO_URI".to_owned(), database.uri.clone()),
            ("MONGO_DB".to_owned(), db.clone()),
        ];
        if row.cluster {
            env.extend([
                ("MOZAIKS_CLUSTER".to_owned(), "on".to_owned()),
                ("MOZAIKS_SERVER_ID".to_owned(), id),
            ]);
        }
        let server = ServerProcess::spawn_with_env(&dirs, llm.base_url(), true, &env).await?;
        server.wait_ready(http).await?;
        servers.push(server);
    }
    Ok(servers)
}

/// What one batch measured.
#[derive(Debug, Clone, Copy)]
struct Batch {
    turns_per_s: f64,
    p50: Duration,
    p99: Duration,
    /// From an event's `ts` (stored by its owner) to its arrival at the
    /// client's socket, over every live event of the batch: p50 and p99,
    /// in ms.
    delivery_p50_ms: u64,
    delivery_p99_ms: u64,
    /// CPU of the servers together and of nx-27017, in cores.
    servers_cpu: f64,
    database_cpu: Option<f64>,
}

/// C chats at once, round-robin over `servers`.
async fn batch(
    http: &reqwest::Client,
    servers: &[ServerProcess],
    row: Row,
    config: Config,
    database: &Database,
) -> anyhow::Result<Batch> {
    let pids: Vec<u32> = servers
        .iter()
        .map(ServerProcess::pid)
        .collect::<anyhow::Result<_>>()?;
    let cpu = |pids: &[u32]| pids.iter().map(|&p| cpu_of(p)).sum::<Duration>();
    let (servers_before, db_before) = (cpu(&pids), database.pid.map(cpu_of));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..config.chats {
        let owner = &servers[k % servers.len()];
        let watcher = if row.relayed {
            &servers[(k + 1) % servers.len()]
        } else {
            owner
        };
        let (http, base, ws) = (http.clone(), owner.base().to_owned(), watcher.ws_base());
        tasks.spawn(async move { run_chat(&http, &base, &ws, PLAIN, Until::Completed).await });
    }
    let mut done = Vec::with_capacity(config.chats);
    let mut delivery = Vec::new();
    while let Some(chat) = tasks.join_next().await {
        let seen = chat.context("a chat task panicked")??;
        if seen.turns != config.turns {
            bail!(
                "chat {}: {} turns, expected {}",
                seen.chat_id,
                seen.turns,
                config.turns
            );
        }
        done.push(seen.elapsed);
        delivery.extend(seen.delivery_ms);
    }
    delivery.sort_unstable();
    let delivery_at = |q: f64| {
        delivery
            .get(((delivery.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let elapsed = started.elapsed();
    done.sort();
    let cores = |d: Duration| d.as_secs_f64() / elapsed.as_secs_f64();
    Ok(Batch {
        turns_per_s: config.chats as f64 * f64::from(config.turns) / elapsed.as_secs_f64(),
        p50: percentile(&done, 0.5),
        p99: percentile(&done, 0.99),
        delivery_p50_ms: delivery_at(0.5),
        delivery_p99_ms: delivery_at(0.99),
        servers_cpu: cores(cpu(&pids).saturating_sub(servers_before)),
        database_cpu: database
            .pid
            .zip(db_before)
            .map(|(pid, before)| cores(cpu_of(pid).saturating_sub(before))),
    })
}

async fn run(config: Config, quick: bool) -> anyhow::Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = repo.join("plugins");
    if !plugins.join("planner/planner.wasm").is_file() {
        bail!("plugins/planner/planner.wasm is missing: run scripts/build-plugins first");
    }
    let scratch = Scratch::new("cluster")?;
    let workflows = scratch.path().join("workflows");
    bench_workflows::write(&workflows, config.turns, "planner")?;
    let database = Database::open()?;
    println!(
        "cluster benchmark ({}): {}; {}",
        if quick { "quick" } else { "full" },
        describe_machine(),
        load_average()
    );
    println!("database: {}", database.label);
    println!(
        "{} chats at once of {} text-only turns, round-robin over the servers; median of {} batch(es) \
         after one warm-up batch; CPU in cores over the batch (servers summed)",
        config.chats, config.turns, config.batches
    );
    let http = reqwest::Client::new();
    let llm = FakeLlmProcess::spawn(Duration::ZERO).await?;
    let rows = [
        Row {
            servers: 1,
            cluster: false,
            relayed: false,
        },
        Row {
            servers: 1,
            cluster: true,
            relayed: false,
        },
        Row {
            servers: 2,
            cluster: true,
            relayed: false,
        },
        Row {
            servers: 3,
            cluster: true,
            relayed: false,
        },
        Row {
            servers: 2,
            cluster: true,
            relayed: true,
        },
        Row {
            servers: 3,
            cluster: true,
            relayed: true,
        },
    ];
    for row in rows {
        let servers = start_servers(
            &http,
            row,
            scratch.path(),
            &workflows,
            &plugins,
            &database,
            &llm,
        )
        .await?;
        batch(&http, &servers, row, config, &database).await?;
        let mut batches = Vec::new();
        for _ in 0..config.batches {
            batches.push(batch(&http, &servers, row, config, &database).await?);
        }
        batches.sort_by(|a, b| a.turns_per_s.total_cmp(&b.turns_per_s));
        let median = batches[batches.len() / 2];
        println!(
            "  {:<52} {:>6.0} turns/s;  chat p50 {:>10}  p99 {:>10};  event to socket p50 {} ms  p99 {} ms;  CPU: servers {:.2}, database {}",
            row.label(),
            median.turns_per_s,
            ms(median.p50),
            ms(median.p99),
            median.delivery_p50_ms,
            median.delivery_p99_ms,
            median.servers_cpu,
            median
                .database_cpu
                .map_or_else(|| "not measured (remote)".to_owned(), |c| format!("{c:.2}")),
        );
        for server in servers {
            server.stop().await?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    fake_llm_process::serve_if_asked();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("MOZAIKS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let config = if quick { Config::QUICK } else { Config::FULL };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(config, quick));
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome
}
