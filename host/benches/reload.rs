//! Hot-reload benchmark: how long from writing a new component to the new
//! version answering calls, and how long a start takes with a cold and a
//! warm compiled-component cache. Prints figures; asserts nothing about
//! time.
//!
//! ```text
//! cargo bench -p mozaiks-host --bench reload            # 10 reloads, 5 starts each
//! cargo bench -p mozaiks-host --bench reload -- --quick # 3 and 2
//! ```
//!
//! Uses the demo plugin (`plugins/planner`, built by scripts/build-plugins)
//! and the demo workflow, in a scratch copy. Each "new version" is the
//! demo component with a different custom section appended: a new content
//! hash, so a full compile and a cache miss, and the same functions, so the
//! reload gate lets it through. The write is a rename into place, as
//! `sdk/build-plugin` does it; the clock stops when a call to the new
//! version has returned.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mozaiks_host::{LlmConfig, ReloadConfig, ServeConfig, Server, StoreConfig, build};
use mozaiks_plugin_host::{CallInfo, Ports};

mod common;
use common::{describe_machine, file_system, mean, ms, percentile};

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// `bytes` with a custom section appended: the same component, another
/// hash. A custom section is id 0, a LEB128 size, a name, then data.
fn variant(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = b"mozaiks-bench";
    let data = format!("variant {n} {}", uuid::Uuid::new_v4());
    let mut payload = vec![u8::try_from(name.len()).unwrap_or(0)];
    payload.extend_from_slice(name);
    payload.extend_from_slice(data.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    let mut size = payload.len();
    loop {
        let byte = u8::try_from(size & 0x7f).unwrap_or(0);
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

fn config(root: &Path, cache: Option<PathBuf>, watch: bool) -> ServeConfig {
    ServeConfig {
        workflows_dir: root.join("workflows"),
        plugins_dir: root.join("plugins"),
        store: StoreConfig::Embedded {
            data_dir: root.join("data"),
        },
        llm: LlmConfig {
            api_key: Some("bench".into()),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            default_model: "fake-model".into(),
            default_timeout: Duration::from_secs(30),
            retry: mozaiks_host::RetryPolicy::default(),
        },
        component_cache: cache,
        reload: ReloadConfig {
            watch,
            ..ReloadConfig::default()
        },
        plugin_slots: Default::default(),
        // In process: a benchmark binary is no compiler.
        compiler: mozaiks_plugin_host::Compiler::InProcess,
        outbound: Default::default(),
        secrets_dir: None,
    }
}

async fn call_echo(server: &Server) -> anyhow::Result<String> {
    let plugin = server
        .plugin("planner")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let info = CallInfo {
        chat_id: "bench".into(),
        ..CallInfo::default()
    };
    match plugin
        .call("echo", r#"{"ping":1}"#, info, Ports::no_chat())
        .await
    {
        Ok(Ok(_)) => Ok(plugin.hash().to_owned()),
        other => bail!("echo failed: {other:?}"),
    }
}

/// Writes variants of the demo component one after another and times each
/// until a call returns from it.
async fn measure_reloads(root: &Path, count: usize) -> anyhow::Result<()> {
    let server = build(&config(root, Some(root.join("cache")), true)).await?;
    let original = std::fs::read(root.join("plugins/planner/planner.wasm"))?;
    let target = root.join("plugins/planner/planner.wasm");
    let mut totals = Vec::new();
    let mut compiles = Vec::new();
    for n in 0..count {
        let bytes = variant(&original, n);
        let hash = mozaiks_plugin_host::content_hash(&bytes);
        let temporary = target.with_extension("wasm.tmp");
        std::fs::write(&temporary, &bytes)?;
        let started = Instant::now();
        std::fs::rename(&temporary, &target)?;
        loop {
            if call_echo(&server).await? == hash {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("variant {n} was not served within 30 s; see the logs (LOG_LEVEL=info)");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        totals.push(started.elapsed());
        let plugin = server
            .plugin("planner")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        compiles.push(plugin.compile_time());
        // Let the file system settle so reloads do not overlap.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    totals.sort();
    compiles.sort();
    println!(
        "\nfile write → new version answering (planner, {} KiB, {count} reloads):",
        original.len() / 1024
    );
    println!(
        "  total        p50 {}  mean {}  max {}",
        ms(percentile(&totals, 0.5)),
        ms(mean(&totals)),
        ms(percentile(&totals, 1.0))
    );
    println!(
        "  of which compile  p50 {}  max {}   (the rest: {} ms quiet period, gate, swap, polling)",
        ms(percentile(&compiles, 0.5)),
        ms(percentile(&compiles, 1.0)),
        mozaiks_host::DEFAULT_QUIET.as_millis()
    );
    Ok(())
}

/// Times `build` (every plugin loaded, workflows validated, store opened).
async fn measure_starts(root: &Path, count: usize) -> anyhow::Result<()> {
    let cache = root.join("start-cache");
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..count {
        let _ = std::fs::remove_dir_all(&cache);
        let started = Instant::now();
        let server = build(&config(root, Some(cache.clone()), false)).await?;
        cold.push(started.elapsed());
        drop(server);
        let started = Instant::now();
        let server = build(&config(root, Some(cache.clone()), false)).await?;
        warm.push(started.elapsed());
        let hit = server
            .plugin("planner")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .cache_outcome();
        if hit != mozaiks_plugin_host::CacheOutcome::Hit {
            bail!("the second start did not use the cache ({hit:?})");
        }
    }
    cold.sort();
    warm.sort();
    println!("\nstart (load plugins, validate workflows, open the store), {count} each:");
    println!(
        "  cold cache   p50 {}  max {}",
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 1.0))
    );
    println!(
        "  warm cache   p50 {}  max {}",
        ms(percentile(&warm, 0.5)),
        ms(percentile(&warm, 1.0))
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (reloads, starts) = if quick { (3, 2) } else { (10, 5) };
    let planner = repo_root().join("plugins/planner");
    if !planner.join("planner.wasm").is_file() {
        bail!("plugins/planner/planner.wasm is missing: run scripts/build-plugins");
    }
    let scratch =
        Scratch(std::env::temp_dir().join(format!("mozaiks-bench-reload-{}", std::process::id())));
    let root = scratch.0.clone();
    copy_dir(&planner, &root.join("plugins/planner")).context("copying the demo plugin")?;
    copy_dir(
        &repo_root().join("workflows/PlanReview"),
        &root.join("workflows/PlanReview"),
    )
    .context("copying the demo workflow")?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "hot-reload benchmark ({}): {}, scratch on {}",
        if quick { "quick" } else { "full" },
        describe_machine(),
        file_system(&root)
    );
    let root = Arc::new(root);
    runtime.block_on(async {
        measure_reloads(&root, reloads).await?;
        measure_starts(&root, starts).await
    })
}
