//! What the benchmark programs share: summary statistics, units, and a
//! description of the machine and file system the figures come from; and,
//! for the benchmarks of the real `mozaiks` process, the fake LLM as a
//! process, the server as a process, a protocol client and the workflows.
//! (`#[allow(dead_code)]`: each bench uses a different part.)

#![allow(dead_code, reason = "each benchmark uses part of these helpers")]

pub(crate) mod bench_workflows;
pub(crate) mod chat_client;
pub(crate) mod fake_llm_process;
pub(crate) mod scratch;
pub(crate) mod server_process;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The `p` quantile (0.0–1.0) of sorted samples, nearest rank.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// The arithmetic mean.
pub(crate) fn mean(samples: &[Duration]) -> Duration {
    let count = u32::try_from(samples.len().max(1)).unwrap_or(u32::MAX);
    samples.iter().sum::<Duration>() / count
}

/// `12.34 ms`.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `12.3 µs`.
pub(crate) fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Cores this process may use.
pub(crate) fn core_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// "N cores, CPU model, Linux version".
pub(crate) fn describe_machine() -> String {
    let cores = core_count();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mut text = format!("{cores} cores, {model}");
    if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        let _ = write!(text, ", Linux {}", kernel.trim());
    }
    text
}

/// "load average a b c", from /proc/loadavg.
pub(crate) fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("load average {}", load.join(" "))
}

/// The file system holding `path`, as "type on device", from /proc/mounts.
pub(crate) fn file_system(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown file system".to_owned();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?;
            let kind = fields.next()?;
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), format!("{kind} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown file system".to_owned(), |(_, fs)| fs)
}
