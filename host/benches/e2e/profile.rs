//! `perf record` of the whole server process during one throughput batch
//! (`--perf`), reported as the symbols with the most samples.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// How many lines of `perf report` to print.
const REPORT_LINES: usize = 45;

/// A `perf record` attached to a process.
#[derive(Debug)]
pub(crate) struct Recording {
    child: Child,
    data: PathBuf,
}

impl Recording {
    /// Starts `perf record` (call graphs by frame pointers are unavailable
    /// in release builds, so flat samples with the caller-less symbol) on
    /// `pid`, writing into `dir`.
    pub(crate) fn start(pid: u32, dir: &Path) -> anyhow::Result<Self> {
        let data = dir.join("perf.data");
        let child = Command::new("perf")
            .args(["record", "-F", "2000", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting perf (is it installed?)")?;
        Ok(Self { child, data })
    }

    /// Stops the recording (SIGINT, as perf expects) and prints the report.
    pub(crate) async fn finish_and_print(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("perf exited early")?;
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        self.child.wait().await?;
        for (title, sort) in [("by thread", "comm"), ("by symbol", "comm,dso,symbol")] {
            let report = Command::new("perf")
                .args([
                    "report",
                    "--stdio",
                    "--no-children",
                    "--percent-limit",
                    "0.7",
                    "--sort",
                    sort,
                    "-i",
                ])
                .arg(&self.data)
                .output()
                .await?;
            if !report.status.success() {
                bail!(
                    "perf report failed: {}",
                    String::from_utf8_lossy(&report.stderr)
                );
            }
            println!("    perf profile of the server, {title}:");
            for line in String::from_utf8_lossy(&report.stdout)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .take(REPORT_LINES)
            {
                // perf pads its columns to the terminal's width.
                println!("      {}", line.trim_end().trim_end_matches(['-', ' ']));
            }
        }
        Ok(())
    }
}
