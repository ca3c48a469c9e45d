//! Orchestration overhead per agent turn, and turns per second with many
//! concurrent chats, printed as figures.
//!
//! Run: `cargo bench -p mozaiks-host --bench orchestration` (after
//! `scripts/build-plugins`, for the tool-call figures). `-- --quick` or
//! `MOZAIKS_BENCH_QUICK=1` runs a small configuration that finishes in
//! seconds. Results go into docs/benchmarks.md.
//!
//! Everything runs in this process: an in-process fake OpenAI-compatible
//! server (`mozaiks-fake-llm`) that answers at once, and the real server
//! parts from `mozaiks_host::build` (plugins, workflows, the embedded
//! store in a scratch directory under the system temp dir). No HTTP API or
//! WebSocket is involved: chats are started on the orchestrator directly and
//! followed through its broadcast.
//!
//! # Overhead per turn, excluding LLM time
//!
//! A chat of a RoundRobin workflow (2 agents, `AgentDriven`, no human,
//! `max_turns` = N) runs to its end; its wall time divided by N is W, the
//! time per turn. Then the exact requests that chat sent (rebuilt from its
//! stored events with the orchestrator's own transcript function) are sent
//! again with `LlmClient::complete` alone, one after another, to the same
//! fake: their total divided by N is L. The overhead is W − L, per chat;
//! the figures are its median and mean over the measured chats.
//!
//! The same is measured with one WASM tool call per turn (`planner`'s
//! `echo`): the fake asks for the tool unless the last message is a tool
//! result, so each turn makes two LLM calls, and L replays both.
//!
//! What the overhead holds: persisting every event to the embedded store
//! (through its group commit: one redb write transaction and one fdatasync
//! for all the appends waiting at that moment, which for one chat alone is
//! one per event; from a task of its own), broadcasting it (the benchmark
//! is the one subscriber, as a client would be), the chat's context
//! variables for the handoff checks (read once, then the run's own copy),
//! building the transcript and the request, turn-position
//! bookkeeping and handoff evaluation, text deltas, and for the tool
//! workflow the plugin call (schema check, fresh instance, guest run). The
//! fixed cost of a chat (creating it, its initial context variables, the
//! final status) is spread over its N turns. The fake's and the HTTP
//! client's work is in L and so subtracted; all of it shares the machine's
//! cores with the orchestrator, as a local model server would.
//!
//! To attribute the overhead the benchmark also prints:
//!
//! - what one persisted event costs alone: `EmbeddedStore::append`,
//!   `LiveChat::emit` (the run's path: append and broadcast), a raw 4 KiB
//!   write + `fdatasync` in the same directory, and a context read;
//! - the process's CPU time per turn (all threads, from `/proc/self/stat`),
//!   for the chats and for the LLM-only replay;
//! - where a turn's wall time goes: the mean time from one event to the next
//!   as the subscriber receives them, by event type.
//!
//! # Throughput
//!
//! C chats of N turns start at once (C = 1, 8, 32, 128) on a multi-thread
//! runtime with one worker per core; the figures are turns per second over
//! the whole batch and the median and 99th percentile of chat completion
//! time, plus the fake LLM and client alone at the same concurrency as the
//! ceiling they set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

mod common;
use common::bench_workflows::{PLAIN, TOOLS};
use common::{core_count, describe_machine, file_system, mean, micros, ms, percentile};
use mozaiks_fake_llm::{ChatCall, FakeLlm, Reply};
use mozaiks_host::{
    ChatRecord, ChatRequest, ChatStore, EmbeddedStore, Envelope, Event, LiveChat, LlmClient,
    LlmConfig, RunStatus, ServeConfig, Server, StoreConfig, build, chat_request, now_ms,
};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

/// What every agent says (the fake's text reply).
const REPLY_TEXT: &str = "Noted. Here is my contribution to the discussion, in one sentence.";
/// The longest a chat may go without an event before the benchmark gives up.
const EVENT_WAIT: Duration = Duration::from_secs(60);

/// How much to measure.
#[derive(Debug, Clone)]
struct Config {
    /// Agent turns per chat (`max_turns`).
    turns: u32,
    /// Chats run and discarded before each overhead measurement.
    warmup_chats: usize,
    /// Chats measured one after another for the overhead.
    measured_chats: usize,
    /// Concurrent chats for the throughput runs.
    concurrency: Vec<usize>,
    /// Sequential store appends (and fdatasyncs) measured.
    appends: usize,
}

impl Config {
    fn full() -> Self {
        Self {
            turns: 20,
            warmup_chats: 2,
            measured_chats: 30,
            concurrency: vec![1, 8, 32, 128],
            appends: 500,
        }
    }

    fn quick() -> Self {
        Self {
            turns: 5,
            warmup_chats: 1,
            measured_chats: 3,
            concurrency: vec![1, 8],
            appends: 50,
        }
    }
}

/// A scratch directory under the system temp dir, removed on drop.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mozaiks-bench-orchestration-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CPU time of this process so far, user + system, every thread, from
/// `/proc/self/stat` (in ticks of 10 ms: USER_HZ is 100 on Linux). Zero
/// where there is no procfs.
fn cpu_time() -> Duration {
    let ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name (in parentheses, may hold spaces) come the
        // fields from the 3rd on; utime and stime are the 14th and 15th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user: u64 = fields.get(11)?.parse().ok()?;
        let system: u64 = fields.get(12)?.parse().ok()?;
        Some(user + system)
    };
    Duration::from_millis(ticks().unwrap_or(0) * 10)
}

/// "p50 X  mean Y" of unsorted samples.
fn p50_mean(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    format!(
        "p50 {:>9}   mean {:>9}",
        ms(percentile(&sorted, 0.5)),
        ms(mean(&sorted))
    )
}

/// The fake model: asks for `echo` when it is offered and the last message
/// is not a tool result; otherwise answers with text.
fn respond(call: &ChatCall) -> Reply {
    let offers_echo = call.tool_names().iter().any(|n| n == "echo");
    let after_tool = call.last_message().get("role").and_then(Value::as_str) == Some("tool");
    if offers_echo && !after_tool {
        Reply::tool_call("echo", json!({"text": "a note for the record"}))
    } else {
        Reply::text(REPLY_TEXT)
    }
}

/// Whether the chat's run ended; an error if it failed or was interrupted.
fn ended(envelope: &Envelope) -> anyhow::Result<bool> {
    match &envelope.event {
        Event::RunStatus {
            status: RunStatus::Completed,
            ..
        } => Ok(true),
        Event::RunStatus {
            status: status @ (RunStatus::Failed | RunStatus::Interrupted),
            reason,
        } => bail!(
            "chat {}: run {status:?}: {}",
            envelope.chat_id,
            reason.as_deref().unwrap_or("no reason")
        ),
        _ => Ok(false),
    }
}

/// The wire name of an event's type.
fn kind(event: &Event) -> &'static str {
    match event {
        Event::RunStatus { .. } => "run_status",
        Event::UserMessage { .. } => "user_message",
        Event::Speaker { .. } => "speaker",
        Event::TextDelta { .. } => "text_delta",
        Event::AgentMessage { .. } => "agent_message",
        Event::ToolCall { .. } => "tool_call",
        Event::ToolResult { .. } => "tool_result",
        Event::ContextChanged { .. } => "context_changed",
        Event::Handoff { .. } => "handoff",
        Event::Usage { .. } => "usage",
        Event::Error { .. } => "error",
        _ => "other",
    }
}

/// When each event of a chat reached a subscriber, from the start of
/// `create_chat`; its first entry is `create_chat` returning. Events read
/// back from the store (emitted before the subscription) are left out.
type Trace = Vec<(Duration, &'static str)>;

/// Waits until the chat's run completes. Subscribes first, then reads what
/// the store already has, so no event falls in between.
async fn wait_for_end(
    server: &Server,
    chat_id: &str,
    started: Instant,
    trace: &mut Trace,
) -> anyhow::Result<()> {
    let mut events = server.orchestrator().live(chat_id).subscribe();
    let mut seen = 0;
    loop {
        for envelope in server.store().events(chat_id, seen, None).await? {
            if ended(&envelope)? {
                return Ok(());
            }
            seen = envelope.seq.unwrap_or(seen);
        }
        loop {
            match tokio::time::timeout(EVENT_WAIT, events.recv()).await {
                Err(_) => bail!("chat {chat_id}: no event for {EVENT_WAIT:?}"),
                Ok(Ok(envelope)) => {
                    trace.push((started.elapsed(), kind(&envelope.event)));
                    if ended(&envelope)? {
                        return Ok(());
                    }
                    seen = envelope.seq.unwrap_or(seen);
                }
                // Fell behind: read the rest from the store.
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) => bail!("chat {chat_id}: its broadcast closed"),
            }
        }
    }
}

/// One chat of `workflow` from `create_chat` to its `completed` status:
/// its id, wall time and event trace.
async fn run_chat(server: &Server, workflow: &str) -> anyhow::Result<(String, Duration, Trace)> {
    let started = Instant::now();
    let chat = server
        .orchestrator()
        .create_chat("bench", "bench", workflow)
        .await?;
    let mut trace = vec![(started.elapsed(), "create_chat")];
    wait_for_end(server, &chat.chat_id, started, &mut trace).await?;
    Ok((chat.chat_id, started.elapsed(), trace))
}

/// Per event type: how many per turn, and the mean time from the entry
/// before it in the trace to it, over `traces` (`create_chat` counts from
/// the chat's start). Printed sorted by time per turn; the LLM calls fall in
/// the gaps before `text_delta` and `usage`.
fn print_breakdown(traces: &[Trace], turns: u32) {
    let mut totals: Vec<(&'static str, u32, Duration)> = Vec::new();
    for trace in traces {
        let mut previous = Duration::ZERO;
        for &(at, kind) in trace {
            let gap = at.saturating_sub(previous);
            previous = at;
            match totals.iter_mut().find(|(k, _, _)| *k == kind) {
                Some((_, count, sum)) => {
                    *count += 1;
                    *sum += gap;
                }
                None => totals.push((kind, 1, gap)),
            }
        }
    }
    let all_turns = f64::from(turns) * traces.len().max(1) as f64;
    let mut rows: Vec<(&'static str, f64, f64)> = totals
        .into_iter()
        .map(|(kind, count, sum)| {
            let per_turn = f64::from(count) / all_turns;
            let mean_ms = sum.as_secs_f64() * 1e3 / f64::from(count.max(1));
            (kind, per_turn, mean_ms)
        })
        .collect();
    rows.sort_by(|a, b| (b.1 * b.2).total_cmp(&(a.1 * a.2)));
    println!(
        "     where a turn goes (time from the previous event to this one, as a subscriber sees them):"
    );
    let mut total = 0.0;
    for (kind, per_turn, mean_ms) in rows {
        total += per_turn * mean_ms;
        println!(
            "       {kind:<16} {per_turn:>4.1} per turn × {mean_ms:>6.3} ms = {:>6.3} ms",
            per_turn * mean_ms
        );
    }
    println!("       {:<42} {total:>6.3} ms (= mean W)", "total");
}

/// What a finished chat did, read back from the store (outside any timing).
#[derive(Debug)]
struct Finished {
    chat: ChatRecord,
    events: Vec<Envelope>,
}

impl Finished {
    async fn load(server: &Server, chat_id: &str) -> anyhow::Result<Self> {
        let chat = server.orchestrator().chat(chat_id).await?;
        let events = server.store().events(chat_id, 0, None).await?;
        Ok(Self { chat, events })
    }

    /// Fails unless the chat took `turns` turns, each with `tools_per_turn`
    /// successful tool calls, and reported no error.
    fn check(&self, turns: u32, tools_per_turn: u32) -> anyhow::Result<()> {
        let mut speakers = 0;
        let mut tools_ok = 0;
        for envelope in &self.events {
            match &envelope.event {
                Event::Speaker { .. } => speakers += 1,
                Event::ToolResult { ok: true, .. } => tools_ok += 1,
                Event::ToolResult {
                    ok: false, content, ..
                } => bail!("chat {}: a tool call failed: {content}", self.chat.chat_id),
                Event::Error { code, message } => {
                    bail!("chat {}: {code}: {message}", self.chat.chat_id)
                }
                _ => {}
            }
        }
        if speakers != turns || tools_ok != turns * tools_per_turn {
            bail!(
                "chat {}: {speakers} turns and {tools_ok} tool calls, expected {turns} and {}",
                self.chat.chat_id,
                turns * tools_per_turn
            );
        }
        Ok(())
    }

    /// The LLM requests the run sent, rebuilt the way the run builds them:
    /// each `usage` event follows one call, whose transcript is every event
    /// before it.
    fn requests(&self, server: &Server) -> anyhow::Result<Vec<ChatRequest>> {
        let workflow = server
            .workflow(&self.chat.workflow)
            .context("the workflow is gone")?;
        let llm = server.llm();
        let mut requests = Vec::new();
        for (index, envelope) in self.events.iter().enumerate() {
            let Event::Usage { agent, .. } = &envelope.event else {
                continue;
            };
            let agent = workflow
                .agent(agent)
                .with_context(|| format!("no agent `{agent}`"))?;
            requests.push(chat_request(
                &workflow,
                agent,
                self.events.iter().take(index),
                llm.default_model(),
                llm.default_timeout(),
                self.chat.cache_seed,
            ));
        }
        Ok(requests)
    }
}

/// Sends `requests` one after another; returns the total and each call.
async fn replay(
    llm: &LlmClient,
    requests: &[ChatRequest],
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let mut calls = Vec::with_capacity(requests.len());
    let started = Instant::now();
    for request in requests {
        let call = Instant::now();
        llm.complete(request.clone(), &mut |_| {}).await?;
        calls.push(call.elapsed());
    }
    Ok((started.elapsed(), calls))
}

/// Runs chats of `workflow` one after another and prints W, L and W − L.
async fn measure_overhead(
    server: &Server,
    config: &Config,
    workflow: &str,
    tools_per_turn: u32,
    cost: EventCost,
) -> anyhow::Result<Vec<ChatRequest>> {
    let turns = config.turns;
    let per_turn = |d: Duration| d / turns;
    let mut wall = Vec::new();
    let mut llm_only = Vec::new();
    let mut overhead = Vec::new();
    let mut calls = Vec::new();
    let mut events_per_chat = 0;
    let mut requests = Vec::new();
    let mut traces = Vec::new();
    let mut chat_cpu = Duration::ZERO;
    let mut replay_cpu = Duration::ZERO;
    for round in 0..config.warmup_chats + config.measured_chats {
        let cpu = cpu_time();
        let (chat_id, elapsed, trace) = run_chat(server, workflow).await?;
        let run_cpu = cpu_time().saturating_sub(cpu);
        let finished = Finished::load(server, &chat_id).await?;
        finished.check(turns, tools_per_turn)?;
        requests = finished.requests(server)?;
        let expected = usize::try_from(turns * (1 + tools_per_turn))?;
        if requests.len() != expected {
            bail!(
                "chat {chat_id}: {} LLM calls, expected {expected}",
                requests.len()
            );
        }
        let cpu = cpu_time();
        let (replayed, each) = replay(server.llm(), &requests).await?;
        let llm_cpu = cpu_time().saturating_sub(cpu);
        if round < config.warmup_chats {
            continue;
        }
        chat_cpu += run_cpu;
        replay_cpu += llm_cpu;
        events_per_chat = finished.events.len();
        traces.push(trace);
        wall.push(per_turn(elapsed));
        llm_only.push(per_turn(replayed));
        overhead.push(per_turn(elapsed.saturating_sub(replayed)));
        calls.extend(each);
    }
    calls.sort();
    let mut overhead_sorted = overhead.clone();
    overhead_sorted.sort();
    let p50 = percentile(&overhead_sorted, 0.5);
    let tool_note = if tools_per_turn == 0 {
        "no tools, 1 LLM call per turn".to_owned()
    } else {
        format!("{tools_per_turn} `echo` WASM tool call and 2 LLM calls per turn")
    };
    println!(
        "\nworkflow `{workflow}` (RoundRobin, 2 agents, {turns} turns, {tool_note}), {} chats one after another:",
        config.measured_chats
    );
    println!("  W  chat wall time / turns        {}", p50_mean(&wall));
    println!(
        "  L  LLM client alone / turns     {}   (per call p50 {}, p99 {})",
        p50_mean(&llm_only),
        ms(percentile(&calls, 0.5)),
        ms(percentile(&calls, 0.99))
    );
    // docs/benchmarks.md's targets: 0.5 ms per turn without tools, 1 ms
    // with one tool call.
    let target = if tools_per_turn == 0 {
        Duration::from_micros(500)
    } else {
        Duration::from_millis(1)
    };
    println!(
        "  W − L  overhead per turn        {}   target ≤ {}: {}",
        p50_mean(&overhead),
        ms(target),
        if p50 <= target { "met" } else { "NOT met" }
    );
    let all_turns = turns * u32::try_from(config.measured_chats)?;
    let (chat_cpu, replay_cpu) = (chat_cpu / all_turns, replay_cpu / all_turns);
    println!(
        "     process CPU time / turn (all threads, 10 ms ticks summed): chats {}, LLM alone {}, \
         difference {}",
        ms(chat_cpu),
        ms(replay_cpu),
        ms(chat_cpu.saturating_sub(replay_cpu))
    );
    let events_per_turn = events_per_chat as f64 / f64::from(turns);
    println!(
        "     persisted events: {events_per_chat} per chat = {events_per_turn:.1} per turn; \
         × append p50 = {:.2} ms, × LiveChat::emit p50 = {:.2} ms per turn",
        events_per_turn * cost.append.as_secs_f64() * 1e3,
        events_per_turn * cost.emit.as_secs_f64() * 1e3
    );
    print_breakdown(&traces, turns);
    Ok(requests)
}

/// Starts `chats` chats at once and prints turns/s and completion times.
async fn measure_throughput(server: &Server, turns: u32, chats: usize) -> anyhow::Result<()> {
    let cpu = cpu_time();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..chats {
        let server = server.clone();
        tasks.spawn(async move { run_chat(&server, PLAIN).await });
    }
    let mut durations = Vec::with_capacity(chats);
    let mut ids = Vec::with_capacity(chats);
    while let Some(done) = tasks.join_next().await {
        let (chat_id, elapsed, _) = done??;
        durations.push(elapsed);
        ids.push(chat_id);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    for chat_id in &ids {
        Finished::load(server, chat_id).await?.check(turns, 0)?;
    }
    durations.sort();
    let total = chats as f64 * f64::from(turns);
    let cores = core_count();
    println!(
        "  C = {chats:>3}: {total:>5} turns in {:>6.2} s = {:>6.0} turns/s;  chat completion p50 {:>10}  p99 {:>10};  CPU {:>3.0}% of {cores} cores",
        elapsed.as_secs_f64(),
        total / elapsed.as_secs_f64(),
        ms(percentile(&durations, 0.5)),
        ms(percentile(&durations, 0.99)),
        100.0 * cpu.as_secs_f64() / (elapsed.as_secs_f64() * cores as f64),
    );
    Ok(())
}

/// The fake LLM and client alone: `callers` tasks each sending `requests`.
async fn llm_ceiling(
    llm: &LlmClient,
    requests: &[ChatRequest],
    callers: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let llm = llm.clone();
        let requests = requests.to_vec();
        tasks.spawn(async move { replay(&llm, &requests).await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((callers * requests.len()) as f64 / started.elapsed().as_secs_f64())
}

/// One event as the run appends it: an agent's reply.
fn sample_event(index: usize) -> Event {
    Event::AgentMessage {
        agent: if index.is_multiple_of(2) {
            "Alpha"
        } else {
            "Beta"
        }
        .to_owned(),
        text: REPLY_TEXT.to_owned(),
        tool_calls: Vec::new(),
        structured: None,
        model: None,
    }
}

/// What one persisted event costs, measured alone.
#[derive(Debug, Clone, Copy)]
struct EventCost {
    /// `EmbeddedStore::append`, median.
    append: Duration,
    /// `LiveChat::emit` (what the run calls), median.
    emit: Duration,
}

/// Prints percentiles of unsorted samples on one line.
fn print_row(label: &str, samples: &mut [Duration], unit: fn(Duration) -> String) {
    samples.sort();
    println!(
        "  {label:<58} p50 {:>9}   p90 {:>9}   p99 {:>9}",
        unit(percentile(samples, 0.5)),
        unit(percentile(samples, 0.9)),
        unit(percentile(samples, 0.99)),
    );
}

/// Times `EmbeddedStore::append`, a context read, `LiveChat::emit` over
/// the same store (with one subscriber), and a raw fdatasync in the same
/// directory.
async fn measure_store(dir: &Path, appends: usize) -> anyhow::Result<EventCost> {
    let store = EmbeddedStore::open(dir)?;
    let chat = ChatRecord::new(
        "store-bench".to_owned(),
        "bench".to_owned(),
        "bench".to_owned(),
        PLAIN.to_owned(),
        "1".to_owned(),
        0,
        now_ms(),
    );
    store.create_chat(&chat).await?;
    let warmup = appends / 10;
    let mut append = Vec::with_capacity(appends);
    let mut context = Vec::with_capacity(appends);
    for index in 0..warmup + appends {
        let started = Instant::now();
        store
            .append(&chat.chat_id, now_ms(), sample_event(index))
            .await?;
        let appended = started.elapsed();
        let started = Instant::now();
        store.context(&chat.chat_id).await?;
        let read = started.elapsed();
        if index >= warmup {
            append.push(appended);
            context.push(read);
        }
    }

    let shared: Arc<dyn ChatStore> = Arc::new(store.clone());
    let live = Arc::new(LiveChat::new(chat.chat_id.clone(), shared));
    let mut receiver = live.subscribe();
    let subscriber =
        tokio::spawn(
            async move { while !matches!(receiver.recv().await, Err(RecvError::Closed)) {} },
        );
    let mut emit = Vec::with_capacity(appends);
    for index in 0..warmup + appends {
        let started = Instant::now();
        live.emit(sample_event(index)).await?;
        if index >= warmup {
            emit.push(started.elapsed());
        }
    }
    subscriber.abort();

    let path = dir.join("fdatasync-probe");
    let block = vec![7_u8; 4096];
    let fdatasync = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Duration>> {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::File::create(&path)?;
        let mut syncs = Vec::with_capacity(appends);
        for index in 0..warmup + appends {
            let started = Instant::now();
            file.write_all_at(&block, 0)?;
            file.sync_data()?;
            if index >= warmup {
                syncs.push(started.elapsed());
            }
        }
        std::fs::remove_file(&path)?;
        Ok(syncs)
    });
    let mut syncs = fdatasync.await??;

    println!(
        "\none persisted event, {appends} in a row, in {} ({}):",
        dir.display(),
        file_system(dir)
    );
    print_row(
        "EmbeddedStore::append (one redb write txn + fdatasync)",
        &mut append,
        ms,
    );
    print_row(
        "LiveChat::emit (own task, append, broadcast to 1 client)",
        &mut emit,
        ms,
    );
    print_row("raw 4 KiB pwrite + fdatasync, no redb", &mut syncs, ms);
    print_row(
        "EmbeddedStore::context (read, for handoff checks)",
        &mut context,
        micros,
    );
    Ok(EventCost {
        append: percentile(&append, 0.5),
        emit: percentile(&emit, 0.5),
    })
}

/// Where the benchmark finds and keeps its files.
#[derive(Debug, Clone)]
struct Paths {
    scratch: PathBuf,
    workflows: PathBuf,
    plugins: PathBuf,
}

/// Every measurement, in order. Runs in a spawned task, on a runtime
/// worker like the server's request handlers.
async fn run_all(config: Config, quick: bool, paths: Paths) -> anyhow::Result<()> {
    println!(
        "orchestration benchmark ({}): {}",
        if quick { "quick" } else { "full" },
        describe_machine()
    );
    println!(
        "The fake LLM answers at once, in process. \"Overhead\" is everything but the LLM call: \
         persisting each event (redb + fdatasync), broadcasting it, context reads for handoffs, \
         transcript and request building, and for tools the WASM call (fresh instance per call)."
    );
    let cost = measure_store(&paths.scratch.join("store-bench"), config.appends).await?;

    let fake = FakeLlm::start(respond).await;
    let server = build(&ServeConfig {
        workflows_dir: paths.workflows,
        plugins_dir: paths.plugins,
        store: StoreConfig::Embedded {
            data_dir: paths.scratch.join("data"),
        },
        llm: LlmConfig {
            api_key: Some("bench".into()),
            base_url: Some(fake.base_url()),
            default_model: "fake-model".into(),
            default_timeout: Duration::from_secs(30),
            retry: mozaiks_host::RetryPolicy::default(),
        },
        component_cache: None,
        reload: mozaiks_host::ReloadConfig {
            watch: false,
            ..Default::default()
        },
        plugin_slots: Default::default(),
        // In process: a benchmark binary is no compiler.
        compiler: mozaiks_plugin_host::Compiler::InProcess,
        outbound: Default::default(),
        secrets_dir: None,
    })
    .await?;
    for name in [PLAIN, TOOLS] {
        if server.workflow(name).is_none() {
            bail!("workflow `{name}` did not load (is plugins/planner built and valid?)");
        }
    }

    println!(
        "\noverhead per agent turn, excluding LLM time (W − L per chat; p50 and mean over chats):"
    );
    let requests = measure_overhead(&server, &config, PLAIN, 0, cost).await?;
    measure_overhead(&server, &config, TOOLS, 1, cost).await?;

    println!(
        "\nthroughput: C chats of `{PLAIN}` ({} turns each) started at once, {} tokio workers:",
        config.turns,
        core_count()
    );
    for &chats in &config.concurrency {
        measure_throughput(&server, config.turns, chats).await?;
    }
    println!(
        "  the fake LLM and client alone, same concurrency and requests (the ceiling they set):"
    );
    for &chats in &config.concurrency {
        let rate = llm_ceiling(server.llm(), &requests, chats).await?;
        println!("  C = {chats:>3}: {rate:>6.0} LLM calls/s");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("MOZAIKS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let config = if quick {
        Config::quick()
    } else {
        Config::full()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = root.join("plugins");
    let planner = plugins.join("planner/planner.wasm");
    if !planner.is_file() {
        eprintln!(
            "{} is missing: run scripts/build-plugins first (the tool-call figures need the planner plugin)",
            planner.display()
        );
        std::process::exit(2);
    }
    let scratch = Scratch::new()?;
    let workflows = scratch.0.join("workflows");
    // The two workflows the process benchmarks run too (and their idle one).
    common::bench_workflows::write(&workflows, config.turns, "planner")?;
    let paths = Paths {
        scratch: scratch.0.clone(),
        workflows,
        plugins,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async { tokio::spawn(run_all(config, quick, paths)).await? });
    // Runs still holding the store close before the scratch folder goes.
    drop(runtime);
    drop(scratch);
    outcome
}
