//! Per-call overhead and load time of the plugin host, printed as figures.
//!
//! Run: `cargo bench -p mozaiks-plugin-host --bench plugin_calls`
//! (after `scripts/build-plugins`). Results go into docs/benchmarks.md.
//!
//! Another tool can be measured with `MOZAIKS_BENCH_PLUGIN=<plugin folder>`,
//! `MOZAIKS_BENCH_FUNCTION=<name>` and `MOZAIKS_BENCH_ARGS=<JSON>`.
//!
//! What "per call" includes: parse the JSON arguments, validate them against
//! the function's schema, build a fresh store and WASI context, instantiate
//! from the `InstancePre` (pooling allocator), run `call`, parse the JSON
//! result, tear the store down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mozaiks_plugin_host::{CallInfo, EngineConfig, Manifest, PluginEngine, Ports};

const WARMUP_CALLS: usize = 500;
const MEASURED_CALLS: usize = 20_000;
const LOADS: usize = 5;
const PARALLEL_TASKS: usize = 2;
const PARALLEL_CALLS_PER_TASK: usize = 2_500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("MOZAIKS_BENCH_PLUGIN")
        .map_or_else(|| root.join("plugins/planner"), PathBuf::from);
    let function = std::env::var("MOZAIKS_BENCH_FUNCTION").unwrap_or_else(|_| "echo".to_owned());
    let args =
        std::env::var("MOZAIKS_BENCH_ARGS").unwrap_or_else(|_| r#"{"text":"hello"}"#.to_owned());
    // Leaked once so the spawned tasks can borrow them for 'static.
    let args: &'static str = Box::leak(args.into_boxed_str());
    let function: &'static str = Box::leak(function.into_boxed_str());
    let manifest = Manifest::read(&dir.join("plugin.toml"))?;
    let wasm = dir.join(format!("{}.wasm", manifest.id));
    if !wasm.is_file() {
        return Err(format!(
            "{} is missing: run scripts/build-plugins first",
            wasm.display()
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let engine = PluginEngine::new(EngineConfig::default())?;
        let size = std::fs::metadata(&wasm)?.len();

        let mut loads = Vec::new();
        let mut compiles = Vec::new();
        let mut plugin = None;
        for _ in 0..LOADS {
            let started = Instant::now();
            let loaded = engine.load(manifest.clone(), dir.join("plugin.toml"), &wasm).await?;
            loads.push(started.elapsed());
            compiles.push(loaded.compile_time());
            plugin = Some(loaded);
        }
        let plugin = plugin.ok_or("no plugin loaded")?;
        loads.sort();
        compiles.sort();
        println!("component: {}, {} KiB", wasm.display(), size / 1024);
        println!(
            "load (read + compile + pre-instantiate + describe), median of {LOADS}: {:.1} ms (compile alone {:.1} ms)",
            percentile(&loads, 0.5).as_secs_f64() * 1e3,
            percentile(&compiles, 0.5).as_secs_f64() * 1e3
        );

        let info = CallInfo { chat_id: "bench".into(), ..Default::default() };
        let ports = Ports::no_chat();
        for _ in 0..WARMUP_CALLS {
            plugin.call(function, args, info.clone(), ports.clone()).await??;
        }
        let mut samples = Vec::with_capacity(MEASURED_CALLS);
        for _ in 0..MEASURED_CALLS {
            let started = Instant::now();
            plugin.call(function, args, info.clone(), ports.clone()).await??;
            samples.push(started.elapsed());
        }
        samples.sort();
        println!(
            "sequential call of `{function}` ({MEASURED_CALLS} calls): p50 {}  p90 {}  p99 {}  max {}",
            micros(percentile(&samples, 0.5)),
            micros(percentile(&samples, 0.9)),
            micros(percentile(&samples, 0.99)),
            micros(percentile(&samples, 1.0)),
        );

        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..PARALLEL_TASKS {
            let plugin = plugin.clone();
            let info = info.clone();
            let ports = ports.clone();
            tasks.spawn(async move {
                for _ in 0..PARALLEL_CALLS_PER_TASK {
                    plugin.call(function, args, info.clone(), ports.clone()).await??;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done?.map_err(|e| e.to_string())?;
        }
        let total = PARALLEL_TASKS * PARALLEL_CALLS_PER_TASK;
        let elapsed = started.elapsed();
        println!(
            "throughput, {PARALLEL_TASKS} tasks on 2 workers: {total} calls in {:.2} s = {:.0} calls/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
        Ok(())
    })
}
