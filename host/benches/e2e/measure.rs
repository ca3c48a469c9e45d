//! The mozaiks side: start-up, overhead per turn and throughput of the
//! real server process, as the client sees them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::Config;
use crate::common::bench_workflows::{PLAIN, TOOLS};
use crate::common::chat_client::{ChatSeen, Until, run_chat};
use crate::common::fake_llm_process::{FakeLlmProcess, asks_for_tool, replay};
use crate::common::scratch::Scratch;
use crate::common::server_process::{ServerDirs, ServerProcess, mib};
use crate::common::{bench_workflows, describe_machine, file_system, load_average, ms, percentile};
use crate::profile;

/// With or without one tool call per turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Text,
    Tools,
}

impl Mode {
    pub(crate) const BOTH: [Mode; 2] = [Mode::Text, Mode::Tools];

    fn workflow(self) -> &'static str {
        match self {
            Mode::Text => PLAIN,
            Mode::Tools => TOOLS,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::Text => "text only",
            Mode::Tools => "+1 tool call",
        }
    }

    /// LLM calls per agent turn.
    fn calls_per_turn(self) -> usize {
        match self {
            Mode::Text => 1,
            Mode::Tools => 2,
        }
    }
}

/// Overhead per turn over chats run one after another.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overhead {
    /// W per turn, per chat.
    pub(crate) wall: Vec<Duration>,
    /// L per turn, per chat.
    pub(crate) llm: Vec<Duration>,
    /// W − L per turn, per chat.
    pub(crate) overhead: Vec<Duration>,
}

impl Overhead {
    /// Adds one chat: its wall time, its LLM replay time and its turns.
    pub(crate) fn push(&mut self, wall: Duration, llm: Duration, turns: u32) {
        let turns = turns.max(1);
        self.wall.push(wall / turns);
        self.llm.push(llm / turns);
        self.overhead.push(wall.saturating_sub(llm) / turns);
    }

    /// p50 of W − L.
    pub(crate) fn p50(&self) -> Duration {
        quantile(&self.overhead, 0.5)
    }

    /// p99 of W − L.
    pub(crate) fn p99(&self) -> Duration {
        quantile(&self.overhead, 0.99)
    }

    pub(crate) fn print(&self, label: &str) {
        println!(
            "  {label:<14} W p50 {:>9}   L p50 {:>9}   W − L p50 {:>9}  p99 {:>9}   ({} chats)",
            ms(quantile(&self.wall, 0.5)),
            ms(quantile(&self.llm, 0.5)),
            ms(self.p50()),
            ms(self.p99()),
            self.overhead.len()
        );
    }
}

/// The `p` quantile of unsorted samples.
pub(crate) fn quantile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    percentile(&sorted, p)
}

/// One throughput batch.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub(crate) mode: Mode,
    pub(crate) chats: usize,
    pub(crate) turns_per_s: f64,
}

/// Everything the mozaiks side measured, for the comparison.
#[derive(Debug, Clone, Default)]
pub(crate) struct Figures {
    pub(crate) overhead: Vec<(Mode, Overhead)>,
    pub(crate) throughput: Vec<Batch>,
    /// The server's peak RSS over the whole run.
    pub(crate) peak_rss: u64,
    /// From spawning the server (compiled components cached) to the first
    /// chat's first `agent_message` at the client.
    pub(crate) first_answer: Duration,
}

/// CPU time (user + system) of process `pid` so far, from
/// `/proc/<pid>/stat`, in 10 ms ticks.
pub(crate) fn cpu_of(pid: u32) -> Duration {
    let ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    Duration::from_millis(ticks().unwrap_or(0) * 10)
}

/// Starts a server on `dirs`, waits until it is ready, and runs one chat
/// until its first answer: the time from spawn to that answer, and the
/// server.
async fn start_and_answer(
    http: &reqwest::Client,
    dirs: &ServerDirs,
    llm: &FakeLlmProcess,
) -> anyhow::Result<(Duration, Duration, ServerProcess)> {
    let spawned = Instant::now();
    let server = ServerProcess::spawn(dirs, llm.base_url(), false).await?;
    let ready = server.wait_ready(http).await?;
    let seen = run_chat(
        http,
        server.base(),
        &server.ws_base(),
        PLAIN,
        Until::Completed,
    )
    .await?;
    let answered = spawned.elapsed() - seen.elapsed + seen.first_answer;
    Ok((ready, answered, server))
}

/// The mozaiks side of every figure, printed as it goes.
pub(crate) async fn run(config: &Config, quick: bool) -> anyhow::Result<Figures> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = root.join("plugins");
    if !plugins.join("planner/planner.wasm").is_file() {
        bail!("plugins/planner/planner.wasm is missing: run scripts/build-plugins first");
    }
    let scratch = Scratch::new("e2e")?;
    let workflows = scratch.path().join("workflows");
    bench_workflows::write(&workflows, config.turns, "planner")?;
    let dirs = ServerDirs {
        workflows,
        plugins,
        data: scratch.path().join("data"),
        stderr: scratch.path().join("server.log"),
    };
    println!(
        "end-to-end benchmark ({}): {}; {}; data dir on {}",
        if quick { "quick" } else { "full" },
        describe_machine(),
        load_average(),
        file_system(scratch.path())
    );
    println!(
        "server: `mozaiks serve` (bench profile), default settings; fake LLM and client: own processes, \
         one tokio worker each; everything over loopback."
    );
    let http = reqwest::Client::new();
    let mut llm = FakeLlmProcess::spawn(Duration::ZERO).await?;

    // Start-up: once with an empty compiled-component cache, then again
    // with it filled (the figure the comparison uses).
    let (cold_ready, cold_answer, server) = start_and_answer(&http, &dirs, &llm).await?;
    server.stop().await?;
    let (ready, first_answer, server) = start_and_answer(&http, &dirs, &llm).await?;
    println!(
        "\nstart-up (spawn → /health/ready 200; spawn → first agent_message of a first chat at the client):"
    );
    println!(
        "  empty component cache: ready {}, first answer {}",
        ms(cold_ready),
        ms(cold_answer)
    );
    println!(
        "  cached components:     ready {}, first answer {}   (listening after {})",
        ms(ready),
        ms(first_answer),
        ms(server.listening_after)
    );
    llm.take_requests().await?;

    let mut figures = Figures {
        first_answer,
        ..Figures::default()
    };
    println!(
        "\noverhead per agent turn ({} turns per chat, chats one after another; W = client wall time / turns, \
         L = the chat's LLM requests replayed alone / turns):",
        config.turns
    );
    let pid = server.pid()?;
    for mode in Mode::BOTH {
        let mut overhead = Overhead::default();
        let (mut server_cpu, mut llm_cpu) = (Duration::ZERO, Duration::ZERO);
        for round in 0..config.warmup_chats + config.measured_chats {
            let (cpu_before, llm_before) = (cpu_of(pid), llm.pid().map_or(Duration::ZERO, cpu_of));
            let seen = run_chat(
                &http,
                server.base(),
                &server.ws_base(),
                mode.workflow(),
                Until::Completed,
            )
            .await?;
            let (cpu_after, llm_after) = (cpu_of(pid), llm.pid().map_or(Duration::ZERO, cpu_of));
            let requests = llm.take_requests().await?;
            check(&seen, &requests, config.turns, mode)?;
            let replayed = replay(&http, llm.base_url(), &requests).await?;
            // The fake recorded the replay too.
            llm.take_requests().await?;
            if round >= config.warmup_chats {
                overhead.push(seen.elapsed, replayed, seen.turns);
                server_cpu += cpu_after.saturating_sub(cpu_before);
                llm_cpu += llm_after.saturating_sub(llm_before);
            }
        }
        overhead.print(mode.label());
        let turns = config.turns * u32::try_from(config.measured_chats)?;
        println!(
            "  {:<14} CPU per turn: server {}, fake LLM {} (10 ms ticks summed)",
            "",
            ms(server_cpu / turns.max(1)),
            ms(llm_cpu / turns.max(1))
        );
        figures.overhead.push((mode, overhead));
    }

    println!("\nthroughput: C chats started at once, each followed over its own WebSocket:");
    for mode in Mode::BOTH {
        for &chats in &config.concurrency {
            let profiling = (mode == Mode::Text && config.perf_at == Some(chats))
                .then(|| profile::Recording::start(pid, scratch.path()))
                .transpose()?;
            let batch = throughput(&http, &server, &llm, mode, chats, config.turns).await?;
            llm.take_requests().await?;
            if let Some(recording) = profiling {
                recording.finish_and_print().await?;
            }
            figures.throughput.push(batch);
        }
    }
    let memory = server.memory()?;
    figures.peak_rss = memory.peak;
    println!(
        "\nserver RSS at the end {}, peak over the run {}",
        mib(memory.rss),
        mib(memory.peak)
    );
    server.stop().await?;
    Ok(figures)
}

/// Fails unless the chat took `turns` turns with the expected tool calls
/// and LLM requests.
fn check(
    seen: &ChatSeen,
    requests: &[serde_json::Value],
    turns: u32,
    mode: Mode,
) -> anyhow::Result<()> {
    let tools = requests.iter().filter(|r| asks_for_tool(r)).count();
    let expected_calls = usize::try_from(turns)? * mode.calls_per_turn();
    let expected_tools = if mode == Mode::Tools { turns } else { 0 };
    if seen.turns != turns
        || requests.len() != expected_calls
        || seen.tool_results != expected_tools
        || tools != usize::try_from(expected_tools)?
    {
        bail!(
            "chat {}: {} turns, {} LLM requests, {} tool results; expected {turns}, {expected_calls}, {expected_tools}",
            seen.chat_id,
            seen.turns,
            requests.len(),
            seen.tool_results
        );
    }
    Ok(())
}

/// C chats at once; prints and returns turns/s.
async fn throughput(
    http: &reqwest::Client,
    server: &ServerProcess,
    llm: &FakeLlmProcess,
    mode: Mode,
    chats: usize,
    turns: u32,
) -> anyhow::Result<Batch> {
    let pid = server.pid()?;
    let (cpu, llm_cpu) = (cpu_of(pid), llm.pid().map_or(Duration::ZERO, cpu_of));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..chats {
        let (http, base, ws) = (http.clone(), server.base().to_owned(), server.ws_base());
        tasks.spawn(
            async move { run_chat(&http, &base, &ws, mode.workflow(), Until::Completed).await },
        );
    }
    let mut done = Vec::with_capacity(chats);
    while let Some(chat) = tasks.join_next().await {
        let seen = chat.context("a chat task panicked")??;
        if seen.turns != turns {
            bail!(
                "chat {}: {} turns, expected {turns}",
                seen.chat_id,
                seen.turns
            );
        }
        done.push(seen.elapsed);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_of(pid).saturating_sub(cpu);
    let llm_cpu = llm
        .pid()
        .map_or(Duration::ZERO, cpu_of)
        .saturating_sub(llm_cpu);
    let total = chats as f64 * f64::from(turns);
    let turns_per_s = total / elapsed.as_secs_f64();
    let share = |d: Duration| 100.0 * d.as_secs_f64() / elapsed.as_secs_f64();
    println!(
        "  {:<14} C = {chats:>3}: {turns_per_s:>6.0} turns/s;  chat completion p50 {:>10}  p99 {:>10};  \
         CPU: server {:>3.0}%, fake LLM {:>3.0}% (of one core)",
        mode.label(),
        ms(quantile(&done, 0.5)),
        ms(quantile(&done, 0.99)),
        share(cpu),
        share(llm_cpu),
    );
    Ok(Batch {
        mode,
        chats,
        turns_per_s,
    })
}
