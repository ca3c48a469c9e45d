//! Append and load latency of both chat stores, printed as figures.
//!
//! Run: `cargo bench -p mozaiks-host --bench stores` (after
//! `scripts/setup-mongo-test-server`, which installs the MongoDB test server
//! nx-27017). `-- --quick` or `MOZAIKS_BENCH_QUICK=1` runs a short
//! configuration. `MONGO_BENCH_URI=mongodb://…` measures the MongoDB store
//! against that server instead of nx-27017 (in a database of its own,
//! `mozaiks_bench_<uuid>`, dropped at the end). Results go into
//! docs/benchmarks.md.
//!
//! Both stores are measured through the `ChatStore` trait, exactly as the
//! server calls them:
//!
//! - the embedded store (`EmbeddedStore`, one redb file in a scratch
//!   directory under the system temp dir). Appends are group-committed: the
//!   appends waiting at a moment share one redb write transaction and one
//!   fsync of the disk holding the temp dir, so one chat alone waits for an
//!   fsync per append and concurrent chats share them;
//! - the MongoDB store (`MongoStore`, write concern `majority`, indexes
//!   created by `prepare`). By default it runs against nx-27017, a MongoDB
//!   wire-protocol server written in Python over SQLite, started here on a
//!   free port and killed at the end. Those figures measure our store code
//!   plus that server, and say nothing about how fast a real MongoDB is.
//!
//! # Append
//!
//! `append` of a realistic cycle of events: an `agent_message` with about
//! 500 characters of text, a `context_changed` (one of ten keys, a small
//! object value) and a `usage`. Each call is timed on its own; the figures
//! are p50, p99, mean and appends per second, for one chat appended to
//! sequentially, and for 8 chats appended to at once (one tokio task each,
//! on a multi-thread runtime with one worker per core; appends/s over the
//! wall time of the whole batch).
//!
//! # Load
//!
//! What the server reads when a chat is resumed or a client reconnects:
//! `chat(id)`, then `events(id, 0, None)`, then `context(id)`, timed
//! together, for chats of 10, 100 and 1,000 events (the same cycle of
//! events); p50 and p99 over repeated loads of the same chat.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

mod common;
use common::{file_system, load_average, mean, ms, percentile};
use mozaiks_host::{ChatRecord, ChatStore, EmbeddedStore, Event, MongoConfig, MongoStore, now_ms};
use mozaiks_test_mongo::NxServer;
use serde_json::json;

/// Events per chat of the load measurements.
const LOAD_SIZES: [usize; 3] = [10, 100, 1_000];
/// Chats appended to at once.
const CONCURRENT_CHATS: usize = 8;
/// Appends before the measured ones, to warm connections and caches.
const WARMUP_APPENDS: usize = 30;
/// Context variables the `context_changed` events cycle through.
const CONTEXT_KEYS: usize = 10;

/// How much to measure.
#[derive(Debug, Clone)]
struct Config {
    /// Appends to one chat, one after another.
    sequential_appends: usize,
    /// Appends to each of the concurrent chats.
    appends_per_concurrent_chat: usize,
    /// Loads of each load chat (after one unmeasured load).
    loads: usize,
}

impl Config {
    fn full() -> Self {
        Self {
            sequential_appends: 2_000,
            appends_per_concurrent_chat: 250,
            loads: 100,
        }
    }

    fn quick() -> Self {
        Self {
            sequential_appends: 200,
            appends_per_concurrent_chat: 25,
            loads: 15,
        }
    }
}

/// A scratch directory under the system temp dir, removed on drop.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "mozaiks-bench-stores-{what}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
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

/// The `i`-th event of the realistic cycle: agent message, context change,
/// usage.
fn event(i: usize) -> Event {
    const SENTENCE: &str = "The itinerary keeps the museum visit on Tuesday morning, moves the \
        harbour tour to Wednesday because of the forecast, and leaves Thursday free. ";
    match i % 3 {
        0 => {
            let mut text = format!("Turn {i}. ");
            while text.len() < 500 {
                text.push_str(SENTENCE);
            }
            text.truncate(500);
            Event::AgentMessage {
                agent: if i.is_multiple_of(2) {
                    "Planner"
                } else {
                    "Critic"
                }
                .to_owned(),
                text,
                tool_calls: Vec::new(),
                structured: None,
                model: None,
            }
        }
        1 => Event::ContextChanged {
            key: format!("step_{}", i % CONTEXT_KEYS),
            value: Some(
                json!({"done": i.is_multiple_of(2), "turn": i, "note": "checked with the user"}),
            ),
            by: "tool:planner".to_owned(),
        },
        _ => Event::Usage {
            agent: "Planner".to_owned(),
            model: "gpt-4o-mini".to_owned(),
            prompt_tokens: 1_200 + i as u64,
            completion_tokens: 180,
        },
    }
}

async fn create_chat(store: &dyn ChatStore, chat_id: &str) -> anyhow::Result<()> {
    let chat = ChatRecord::new(
        chat_id.to_owned(),
        "bench".to_owned(),
        "alice".to_owned(),
        "Travel".to_owned(),
        "1".to_owned(),
        7,
        now_ms(),
    );
    store
        .create_chat(&chat)
        .await
        .with_context(|| format!("creating chat {chat_id}"))
}

/// Appends `count` events of the cycle to `chat_id`, timing each.
async fn append_timed(
    store: &dyn ChatStore,
    chat_id: &str,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let event = event(i);
        let started = Instant::now();
        store
            .append(chat_id, now_ms(), event)
            .await
            .with_context(|| format!("appending to {chat_id}"))?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// "p50 … p99 … mean … = N appends/s".
fn append_line(samples: &[Duration], wall: Duration) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    format!(
        "p50 {:>9}  p99 {:>9}  mean {:>9}  = {:>6.0} appends/s",
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.99)),
        ms(mean(&sorted)),
        sorted.len() as f64 / wall.as_secs_f64()
    )
}

/// Runs every measurement on `store`, printing the figures.
async fn measure(store: Arc<dyn ChatStore>, config: &Config) -> anyhow::Result<()> {
    // Keeps this run's chat ids apart from any others in the store.
    let prefix = uuid::Uuid::new_v4().simple().to_string();

    create_chat(&*store, &format!("{prefix}-warmup")).await?;
    append_timed(&*store, &format!("{prefix}-warmup"), WARMUP_APPENDS).await?;

    // Sequential appends to one chat.
    let chat_id = format!("{prefix}-sequential");
    create_chat(&*store, &chat_id).await?;
    let started = Instant::now();
    let samples = append_timed(&*store, &chat_id, config.sequential_appends).await?;
    let wall = started.elapsed();
    println!(
        "  append, 1 chat, sequential ({} appends):  {}",
        samples.len(),
        append_line(&samples, wall)
    );

    // Concurrent appends, one task per chat.
    let mut chat_ids = Vec::new();
    for c in 0..CONCURRENT_CHATS {
        let chat_id = format!("{prefix}-concurrent-{c}");
        create_chat(&*store, &chat_id).await?;
        chat_ids.push(chat_id);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chat_id in chat_ids {
        let store = Arc::clone(&store);
        let count = config.appends_per_concurrent_chat;
        tasks.spawn(async move { append_timed(&*store, &chat_id, count).await });
    }
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done??);
    }
    let wall = started.elapsed();
    println!(
        "  append, {CONCURRENT_CHATS} chats at once ({} appends):  {}",
        samples.len(),
        append_line(&samples, wall)
    );

    // Loads as on resume or reconnect.
    for size in LOAD_SIZES {
        let chat_id = format!("{prefix}-load-{size}");
        create_chat(&*store, &chat_id).await?;
        append_timed(&*store, &chat_id, size).await?;
        let mut samples = Vec::with_capacity(config.loads);
        for round in 0..=config.loads {
            let started = Instant::now();
            let chat = store.chat(&chat_id).await?;
            let events = store.events(&chat_id, 0, None).await?;
            let context = store.context(&chat_id).await?;
            let elapsed = started.elapsed();
            let Some(chat) = chat else {
                bail!("chat {chat_id} vanished");
            };
            if events.len() != size || chat.last_seq != size as u64 || context.is_empty() {
                bail!(
                    "chat {chat_id} loaded wrong: {} events, last_seq {}, {} context variables",
                    events.len(),
                    chat.last_seq,
                    context.len()
                );
            }
            // The first load is unmeasured (cold caches).
            if round > 0 {
                samples.push(elapsed);
            }
        }
        samples.sort();
        println!(
            "  load (chat + events + context), {size:>5} events ({} loads):  p50 {:>9}  p99 {:>9}",
            samples.len(),
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.99)),
        );
    }
    Ok(())
}

async fn embedded(config: &Config) -> anyhow::Result<()> {
    let scratch = Scratch::new("embedded")?;
    let dir = scratch.0.clone();
    println!(
        "embedded store (redb file in {}, {}; appends are group-committed: one fdatasync per batch of waiting appends); {}",
        dir.display(),
        file_system(&dir),
        load_average()
    );
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir)).await??;
    // `measure` drops the store before the scratch directory goes.
    measure(Arc::new(store), config).await
}

async fn mongo(config: &Config) -> anyhow::Result<()> {
    let external = std::env::var("MONGO_BENCH_URI")
        .ok()
        .map(|uri| uri.trim().to_owned())
        .filter(|uri| !uri.is_empty());
    let (server, uri) = match external {
        Some(uri) => (None, uri),
        None => {
            // The tests' server (tests/test-mongo): it panics with what to
            // do when nx-27017 is not installed.
            let server = tokio::task::spawn_blocking(NxServer::start_temporary).await?;
            let uri = server.uri();
            (Some(server), uri)
        }
    };
    let database = format!("mozaiks_bench_{}", uuid::Uuid::new_v4().simple());
    let mongo_config = MongoConfig {
        database: database.clone(),
        server_selection_timeout: Duration::from_secs(10),
        ..MongoConfig::new(uri)
    };
    match &server {
        Some(_) => println!(
            "MongoDB store on nx-27017 (a MongoDB wire-protocol server in Python over SQLite, \
             local): these figures measure our store code plus that server, NOT real MongoDB"
        ),
        None => println!(
            "MongoDB store on {} (MONGO_BENCH_URI), database {database}",
            mongo_config.redacted_uri()
        ),
    }
    println!(
        "  write concern {:?}; {}",
        mongo_config.write_concern,
        load_average()
    );
    let store = MongoStore::connect(&mongo_config).await?;
    store.ping().await?;
    store.prepare().await?;
    let outcome = measure(Arc::new(store), config).await;
    // Leave nothing behind on a server that outlives the benchmark.
    if server.is_none() {
        let client = mongodb::Client::with_uri_str(&mongo_config.uri).await?;
        client.database(&database).drop().await?;
    }
    drop(server);
    outcome
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("MOZAIKS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let config = if quick {
        Config::quick()
    } else {
        Config::full()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "chat stores{}: {} worker threads; events cycle agent_message (500 chars) / \
         context_changed / usage",
        if quick { " (quick)" } else { "" },
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    runtime.block_on(async {
        embedded(&config).await?;
        mongo(&config).await
    })
}
