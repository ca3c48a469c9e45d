//! Per-call overhead and load time of the plugin host, printed as figures.
//!
//! Run: `cargo bench -p mozaiks-plugin-host --bench plugin_calls`
//! (after `scripts/build-plugins`). Results go into docs/benchmarks.md.
//!
//! Another tool can be measured with `MOZAIKS_BENCH_PLUGIN=<plugin folder>`,
//! `MOZAIKS_BENCH_FUNCTION=<name>` and `MOZAIKS_BENCH_ARGS=<JSON>`;
//! `MOZAIKS_BENCH_CALLS=<n>` changes the number of measured calls and
//! `MOZAIKS_BENCH_LOADS=<n>` the number of loads (a large component takes
//! seconds to compile; loads after the first come from a compiled-component
//! cache in a temporary folder, and the first load's figure is printed too).
//!
//! Memory per instance: the smallest `memory_mib` limit with which the call
//! still succeeds (a binary search over 1..=64 MiB, each step a load from the
//! cache), i.e. the linear memory one call's instance grows to.
//!
//! What "per call" includes: parse the JSON arguments, validate them against
//! the function's schema, build a fresh store and WASI context, instantiate
//! from the `InstancePre` (pooling allocator), run `call`, parse the JSON
//! result, tear the store down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mozaiks_plugin_host::{CallInfo, EngineConfig, Manifest, PluginEngine};

const WARMUP_CALLS: usize = 500;
const MEASURED_CALLS: usize = 20_000;
const LOADS: usize = 5;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const PARALLEL_TASKS: usize = 2;
const PARALLEL_CALLS_PER_TASK: usize = 2_500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Minor page faults of this process so far (Linux; 0 elsewhere).
fn minor_faults() -> u64 {
    // /proc/self/stat: the 10th field, counted after the command's ")".
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.to_owned();
            after.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
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
    let measured_calls = env_count("MOZAIKS_BENCH_CALLS", MEASURED_CALLS);
    let loads_wanted = env_count("MOZAIKS_BENCH_LOADS", LOADS).max(1);
    let cache_dir =
        std::env::temp_dir().join(format!("mozaiks-bench-cache-{}", std::process::id()));
    runtime.block_on(async {
        let engine = PluginEngine::new(EngineConfig {
            cache_dir: Some(cache_dir.clone()),
            ..EngineConfig::default()
        })?;
        let size = std::fs::metadata(&wasm)?.len();

        let mut loads = Vec::new();
        let mut compiles = Vec::new();
        let mut plugin = None;
        for _ in 0..loads_wanted {
            let started = Instant::now();
            let loaded = engine.load(manifest.clone(), dir.join("plugin.toml"), &wasm).await?;
            loads.push(started.elapsed());
            compiles.push(loaded.compile_time());
            plugin = Some(loaded);
        }
        let plugin = plugin.ok_or("no plugin loaded")?;
        let (first_load, first_compile) = (loads[0], compiles[0]);
        if loads.len() > 1 {
            loads.remove(0);
            compiles.remove(0);
        }
        loads.sort();
        compiles.sort();
        println!("component: {}, {} KiB", wasm.display(), size / 1024);
        println!(
            "first load (read + compile + pre-instantiate + describe): {:.1} ms (compile alone {:.1} ms)",
            first_load.as_secs_f64() * 1e3,
            first_compile.as_secs_f64() * 1e3
        );
        println!(
            "load from the cache, median of {}: {:.1} ms (reading the compiled code alone {:.1} ms)",
            loads.len(),
            percentile(&loads, 0.5).as_secs_f64() * 1e3,
            percentile(&compiles, 0.5).as_secs_f64() * 1e3
        );

        let info = CallInfo { chat_id: "bench".into(), ..Default::default() };
        // An in-memory context, UI and log, as `mozaiks tool call` has.
        let ports = mozaiks_plugin_host::harness::Harness::new().ports();
        for _ in 0..WARMUP_CALLS {
            plugin.call(function, args, info.clone(), ports.clone()).await??;
        }
        let faults_before = minor_faults();
        let mut samples = Vec::with_capacity(measured_calls);
        for _ in 0..measured_calls {
            let started = Instant::now();
            plugin.call(function, args, info.clone(), ports.clone()).await??;
            samples.push(started.elapsed());
        }
        let faults = minor_faults().saturating_sub(faults_before);
        samples.sort();
        println!(
            "page faults per call (minor, whole process): {}",
            faults / measured_calls as u64
        );
        println!(
            "sequential call of `{function}` ({measured_calls} calls): p50 {}  p90 {}  p99 {}  max {}",
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

        // The smallest memory limit that works: one call's linear memory.
        let (mut works, mut fails) = (manifest.limits.memory_mib, 0u32);
        while works - fails > 1 {
            let mid = fails + (works - fails) / 2;
            let mut limited = manifest.clone();
            limited.limits.memory_mib = mid;
            let ok = match engine.load(limited, dir.join("plugin.toml"), &wasm).await {
                Ok(p) => matches!(p.call(function, args, info.clone(), ports.clone()).await, Ok(Ok(_))),
                Err(_) => false,
            };
            if ok { works = mid } else { fails = mid }
        }
        println!("memory per instance (smallest memory_mib that works): {works} MiB");
        let _ = std::fs::remove_dir_all(&cache_dir);
        Ok(())
    })
}
