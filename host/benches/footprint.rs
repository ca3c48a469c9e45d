//! Memory and start-up of the real `mozaiks serve` process, printed as
//! figures.
//!
//! Run: `cargo bench -p mozaiks-host --bench footprint` (after
//! `scripts/build-plugins`); `-- --quick` (or `MOZAIKS_BENCH_QUICK=1`) for
//! fewer starts and 100 idle chats at most.
//!
//! - **Cold start to ready, 10 cached plugins**: ten copies of the demo
//!   plugin `planner` (each under its own id) and the benchmark workflows.
//!   One start fills the compiled-component cache; then each measured start
//!   spawns `mozaiks serve` and polls `/health/ready` every millisecond
//!   until it answers 200 (store open, plugins loaded, workflows
//!   validated). With the watcher on (the default) and with `--no-watch`.
//! - **RSS with idle chats**: chats of a `UserDriven` workflow, each
//!   followed over its WebSocket until `run_status` `waiting_for_user`, the
//!   socket left open (a user looking at the chat); RSS (`VmRSS`) after 100
//!   and after 1 000, and again once the sockets closed.
//! - **RSS with 100 chats running**: 100 chats of the two-agent workflow at
//!   once against a fake LLM that answers after 50 ms (so they are all in
//!   flight together); the highest `VmRSS` sampled every 10 ms, and
//!   `VmHWM`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::bench_workflows::{self, IDLE, PLAIN};
use common::chat_client::{Socket, Until, open_chat, run_chat};
use common::fake_llm_process::{self, FakeLlmProcess};
use common::scratch::Scratch;
use common::server_process::{Memory, ServerDirs, ServerProcess, copy_plugin, mib};
use common::{describe_machine, load_average, ms, percentile};

/// Plugins served in the start-up measurement.
const PLUGINS: usize = 10;
/// The start-up target (docs/benchmarks.md).
const START_TARGET: Duration = Duration::from_millis(150);
/// The idle-chat memory target, bytes (100 MB, as issue 22 states it).
const IDLE_TARGET: u64 = 100 * 1000 * 1000;
/// How long the fake LLM waits before each answer while chats run.
const RUNNING_LLM_DELAY: Duration = Duration::from_millis(50);
/// Chats created at once while filling the server with idle chats.
const CREATE_AT_ONCE: usize = 50;
/// Time given to the server to settle before RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

/// How much to measure.
#[derive(Debug, Clone)]
struct Config {
    starts: usize,
    idle_steps: Vec<usize>,
    running: usize,
}

/// Ten copies of `planner` under `plugins/`.
fn write_plugins(repo: &Path, plugins: &Path) -> anyhow::Result<()> {
    let planner = repo.join("plugins/planner");
    copy_plugin(&planner, "planner", &plugins.join("planner"))?;
    for index in 1..PLUGINS {
        let id = format!("planner{index}");
        copy_plugin(&planner, &id, &plugins.join(&id))?;
    }
    Ok(())
}

/// Starts the server `config.starts` times; prints spawn → listening and
/// spawn → ready.
async fn measure_start(
    http: &reqwest::Client,
    dirs: &ServerDirs,
    llm: &FakeLlmProcess,
    starts: usize,
    no_watch: bool,
) -> anyhow::Result<Duration> {
    let mut ready = Vec::with_capacity(starts);
    let mut listening = Vec::with_capacity(starts);
    let mut rss = 0;
    for _ in 0..starts {
        let server = ServerProcess::spawn(dirs, llm.base_url(), no_watch).await?;
        ready.push(server.wait_ready(http).await?);
        listening.push(server.listening_after);
        rss = settled_memory(&server).await?.rss;
        server.stop().await?;
    }
    ready.sort();
    listening.sort();
    let p50 = percentile(&ready, 0.5);
    println!(
        "  {:<24} ready p50 {:>9}  min {:>9}  max {:>9}   (listening p50 {}, RSS when ready {})   target ≤ {}: {}",
        if no_watch {
            "--no-watch"
        } else {
            "default (watcher on)"
        },
        ms(p50),
        ms(ready.first().copied().unwrap_or_default()),
        ms(ready.last().copied().unwrap_or_default()),
        ms(percentile(&listening, 0.5)),
        mib(rss),
        ms(START_TARGET),
        verdict(
            p50 <= START_TARGET,
            p50.as_secs_f64() / START_TARGET.as_secs_f64()
        )
    );
    Ok(p50)
}

fn verdict(met: bool, ratio: f64) -> String {
    if met {
        "met".to_owned()
    } else {
        format!("NOT met ({ratio:.1}× the target)")
    }
}

/// Opens idle chats until the server holds `target` of them; keeps their
/// sockets open in `sockets` when `keep_open`, closes them otherwise.
async fn fill_idle(
    http: &reqwest::Client,
    server: &ServerProcess,
    sockets: &mut Vec<Socket>,
    created: &mut usize,
    target: usize,
    keep_open: bool,
) -> anyhow::Result<()> {
    while *created < target {
        let batch = CREATE_AT_ONCE.min(target - *created);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let (http, base, ws) = (http.clone(), server.base().to_owned(), server.ws_base());
            tasks.spawn(
                async move { open_chat(&http, &base, &ws, IDLE, Until::WaitingForUser).await },
            );
        }
        while let Some(done) = tasks.join_next().await {
            let (_, mut socket) = done.context("a chat task panicked")??;
            *created += 1;
            if keep_open {
                sockets.push(socket);
            } else {
                let _ = socket.close(None).await;
            }
        }
    }
    Ok(())
}

async fn settled_memory(server: &ServerProcess) -> anyhow::Result<Memory> {
    tokio::time::sleep(SETTLE).await;
    server.memory()
}

/// RSS of a fresh server as it fills with idle chats, their sockets open
/// or closed.
async fn measure_idle(
    http: &reqwest::Client,
    dirs: &ServerDirs,
    config: &Config,
    keep_open: bool,
) -> anyhow::Result<()> {
    let llm = FakeLlmProcess::spawn(Duration::ZERO).await?;
    let server = ServerProcess::spawn(dirs, llm.base_url(), false).await?;
    server.wait_ready(http).await?;
    let base = settled_memory(&server).await?;
    println!(
        "
RSS with chats waiting for their user, {} (a fresh server):",
        if keep_open {
            "each with its WebSocket open"
        } else {
            "no client connected (each socket closed once the chat waited)"
        }
    );
    println!("  {:>5} chats: RSS {:>10}", 0, mib(base.rss));
    let mut sockets = Vec::new();
    let mut created = 0;
    for &step in &config.idle_steps {
        fill_idle(http, &server, &mut sockets, &mut created, step, keep_open).await?;
        let memory = settled_memory(&server).await?;
        let per_chat = memory.rss.saturating_sub(base.rss) / step.max(1) as u64;
        let target = if step >= 1000 {
            format!(
                "   ({:.0} MB) target ≤ 100 MB: {}",
                memory.rss as f64 / 1e6,
                verdict(
                    memory.rss <= IDLE_TARGET,
                    memory.rss as f64 / IDLE_TARGET as f64
                )
            )
        } else {
            String::new()
        };
        println!(
            "  {step:>5} chats: RSS {:>10}   (+{:.1} KiB per chat over none){target}",
            mib(memory.rss),
            per_chat as f64 / 1024.0
        );
    }
    for mut socket in sockets.drain(..) {
        let _ = socket.close(None).await;
    }
    server.stop().await?;
    Ok(())
}

/// RSS with idle chats (sockets closed, then open), then with chats
/// running.
async fn measure_memory(
    http: &reqwest::Client,
    dirs: &ServerDirs,
    config: &Config,
) -> anyhow::Result<()> {
    measure_idle(http, dirs, config, false).await?;
    measure_idle(http, dirs, config, true).await?;

    let llm = FakeLlmProcess::spawn(RUNNING_LLM_DELAY).await?;
    let server = ServerProcess::spawn(dirs, llm.base_url(), false).await?;
    server.wait_ready(http).await?;
    let before = settled_memory(&server).await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..config.running {
        let (http, base, ws) = (http.clone(), server.base().to_owned(), server.ws_base());
        tasks.spawn(async move { run_chat(&http, &base, &ws, PLAIN, Until::Completed).await });
    }
    let mut highest = before.rss;
    let mut sampler = tokio::time::interval(Duration::from_millis(10));
    let mut finished = 0;
    while finished < config.running {
        tokio::select! {
            done = tasks.join_next() => {
                done.context("no chat left")?.context("a chat task panicked")??;
                finished += 1;
            }
            _ = sampler.tick() => highest = highest.max(server.memory()?.rss),
        }
    }
    let memory = server.memory()?;
    println!(
        "\nRSS with {} chats running at once (fake LLM answers after {}, {} s for all): \
         before {}, highest sampled {}, VmHWM {}",
        config.running,
        ms(RUNNING_LLM_DELAY),
        started.elapsed().as_secs(),
        mib(before.rss),
        mib(highest),
        mib(memory.peak)
    );
    server.stop().await?;
    Ok(())
}

async fn run(config: Config, repo: PathBuf, quick: bool) -> anyhow::Result<()> {
    println!(
        "footprint benchmark ({}): {}; {}",
        if quick { "quick" } else { "full" },
        describe_machine(),
        load_average()
    );
    let scratch = Scratch::new("footprint")?;
    let plugins = scratch.path().join("plugins");
    write_plugins(&repo, &plugins)?;
    let workflows = scratch.path().join("workflows");
    bench_workflows::write(&workflows, 20, "planner")?;
    let dirs = ServerDirs {
        workflows,
        plugins,
        data: scratch.path().join("data"),
        stderr: scratch.path().join("server.log"),
    };
    let http = reqwest::Client::new();
    let llm = FakeLlmProcess::spawn(Duration::ZERO).await?;

    let filling = ServerProcess::spawn(&dirs, llm.base_url(), false).await?;
    let first = filling.wait_ready(&http).await?;
    filling.stop().await?;
    println!(
        "\ncold start to ready, {PLUGINS} plugins ({} starts each; the first start, compiling all {PLUGINS}: {}):",
        config.starts,
        ms(first)
    );
    measure_start(&http, &dirs, &llm, config.starts, false).await?;
    measure_start(&http, &dirs, &llm, config.starts, true).await?;
    drop(llm);
    // The memory figures with the one plugin the workflows use, as the
    // end-to-end benchmark serves them.
    let one_plugin = scratch.path().join("one-plugin");
    copy_plugin(
        &repo.join("plugins/planner"),
        "planner",
        &one_plugin.join("planner"),
    )?;
    let dirs = ServerDirs {
        plugins: one_plugin,
        data: scratch.path().join("data-memory"),
        ..dirs
    };
    measure_memory(&http, &dirs, &config).await
}

fn main() -> anyhow::Result<()> {
    fake_llm_process::serve_if_asked();
    // reqwest is built on rustls without a default provider (as the
    // server's own LLM client is: llm.rs installs ring the same way).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("MOZAIKS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let config = if quick {
        Config {
            starts: 3,
            idle_steps: vec![100],
            running: 100,
        }
    } else {
        Config {
            starts: 10,
            idle_steps: vec![100, 1000],
            running: 100,
        }
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if !repo.join("plugins/planner/planner.wasm").is_file() {
        anyhow::bail!("plugins/planner/planner.wasm is missing: run scripts/build-plugins first");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(run(config, repo, quick))
}
