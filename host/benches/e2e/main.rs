//! What a user sees: the real `mozaiks serve` process, the fake LLM in a
//! process of its own, and this process as the client, over HTTP and
//! WebSocket on loopback. Printed as figures.
//!
//! Run: `cargo bench -p mozaiks-host --bench e2e` (after
//! `scripts/build-plugins`); `-- --quick` (or `MOZAIKS_BENCH_QUICK=1`) for a
//! run of seconds; `-- --perf` also records the whole server with `perf`
//! under the 100-chat load; `-- --compare --ag2-python=<python>` also runs
//! bare AG2 in the same run (that is what `bench/compare/run` does).
//!
//! # Processes
//!
//! - **server**: `mozaiks serve` as built by cargo for this benchmark (the
//!   bench profile: release), with its default settings (embedded store,
//!   one durable commit per event, watcher on, logs at info to a file), a
//!   fresh data directory, and only the folders, the port and the LLM given.
//! - **fake LLM**: this executable again, serving `tests/fake-llm` on one
//!   tokio worker; it answers at once, asks for `echo` when the tool is
//!   offered and the last message is not a tool result, and records every
//!   request body.
//! - **client** (this process, one tokio worker): `POST /api/chats`, then
//!   the chat's WebSocket from `after=0` until `run_status` `completed`.
//!
//! # Overhead per turn
//!
//! W is a chat's wall time as the client sees it, from sending
//! `POST /api/chats` to the `completed` frame, divided by its turns. L is
//! the LLM's own time: the chat's request bodies, as the fake recorded
//! them, sent again one after another from this process with a plain HTTP
//! client, divided by the same turns. The overhead is W − L per chat.
//! Chats run one after another.
//!
//! # Throughput
//!
//! C chats start at once (C = 1, 10, 100, 128); turns/s over the batch,
//! chat completion p50 and p99, and the CPU the server and the fake used.

#[path = "../common/mod.rs"]
mod common;
mod compare;
mod measure;
mod profile;

use std::time::Duration;

use common::fake_llm_process;

/// How much to measure.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Agent turns per chat (`max_turns`).
    pub(crate) turns: u32,
    /// Chats run and discarded before each overhead measurement.
    pub(crate) warmup_chats: usize,
    /// Chats measured one after another for the overhead.
    pub(crate) measured_chats: usize,
    /// Concurrent chats for the throughput runs.
    pub(crate) concurrency: Vec<usize>,
    /// Record the server with `perf` at this concurrency.
    pub(crate) perf_at: Option<usize>,
}

impl Config {
    fn full(compare: bool) -> Self {
        Self {
            turns: 20,
            warmup_chats: 2,
            measured_chats: if compare { 20 } else { 30 },
            concurrency: if compare {
                vec![1, 10, 100]
            } else {
                vec![1, 10, 100, 128]
            },
            perf_at: None,
        }
    }

    fn quick() -> Self {
        Self {
            turns: 20,
            warmup_chats: 1,
            measured_chats: 3,
            concurrency: vec![1, 10],
            perf_at: None,
        }
    }
}

fn main() -> anyhow::Result<()> {
    fake_llm_process::serve_if_asked();
    // reqwest is built on rustls without a default provider (as the
    // server's own LLM client is: llm.rs installs ring the same way).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("MOZAIKS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let compare = args.iter().any(|a| a == "--compare");
    let ag2_python = args
        .iter()
        .find_map(|a| a.strip_prefix("--ag2-python="))
        .map(std::path::PathBuf::from);
    let mut config = if quick {
        Config::quick()
    } else {
        Config::full(compare)
    };
    if args.iter().any(|a| a == "--perf") {
        config.perf_at = config
            .concurrency
            .iter()
            .copied()
            .find(|&c| c >= 100)
            .or(config.concurrency.last().copied());
    }
    if compare && ag2_python.is_none() {
        anyhow::bail!(
            "--compare needs --ag2-python=<python with ag2 installed> (bench/compare/run sets it up)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async move {
        let mozaiks = measure::run(&config, quick).await?;
        if let Some(python) = ag2_python {
            let ag2 = compare::run_ag2(&python, &config).await?;
            compare::print(&mozaiks, &ag2);
        }
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome
}
