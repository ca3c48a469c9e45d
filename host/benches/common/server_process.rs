//! The real `mozaiks serve` as a child process of a benchmark, with its
//! default settings but for the folders, the address and the LLM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The longest the server may take to print its address or become ready.
const START_WAIT: Duration = Duration::from_secs(60);
/// How often readiness is polled while waiting for it.
const READY_POLL: Duration = Duration::from_millis(1);

/// Where a server keeps and finds its files.
#[derive(Debug, Clone)]
pub(crate) struct ServerDirs {
    pub(crate) workflows: PathBuf,
    pub(crate) plugins: PathBuf,
    /// The embedded store and the compiled-component cache.
    pub(crate) data: PathBuf,
    /// The server's stderr (its logs) goes to this file.
    pub(crate) stderr: PathBuf,
}

/// A running `mozaiks serve`; killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// When the process was spawned.
    spawned: Instant,
    /// From spawn to the address printed.
    pub(crate) listening_after: Duration,
}

impl ServerProcess {
    /// Spawns `mozaiks serve` on a free loopback port, talking to the LLM
    /// at `llm_url`, and waits until it prints its address. `no_watch`
    /// turns off the folder watcher (a start-up option worth comparing).
    pub(crate) async fn spawn(
        dirs: &ServerDirs,
        llm_url: &str,
        no_watch: bool,
    ) -> anyhow::Result<Self> {
        Self::spawn_with_env(dirs, llm_url, no_watch, &[]).await
    }

    /// [`ServerProcess::spawn`] with more environment variables (a store,
    /// cluster settings), set after the defaults so that they win.
    pub(crate) async fn spawn_with_env(
        dirs: &ServerDirs,
        llm_url: &str,
        no_watch: bool,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mozaiks"));
        command
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .arg("--workflows-dir")
            .arg(&dirs.workflows)
            .arg("--plugins-dir")
            .arg(&dirs.plugins)
            .arg("--data-dir")
            .arg(&dirs.data)
            .env_remove("MONGO_URI")
            .env_remove("MOZAIKS_API_KEYS")
            .env_remove("MOZAIKS_AUTH")
            .env_remove("MOZAIKS_ENV_FILE")
            .env_remove("MOZAIKS_NO_WATCH")
            // No API keys to manage in a benchmark; everything else at its
            // default (logs at info, durable writes, watcher on).
            .env("ENVIRONMENT", "development")
            .env("MOZAIKS_LOG_DIR", dirs.data.join("logs"))
            .env("MOZAIKS_DEFAULT_MODEL", "fake-model")
            .env("OPENAI_BASE_URL", llm_url)
            .env("OPENAI_API_KEY", "bench")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(&dirs.stderr)
                    .with_context(|| format!("creating {}", dirs.stderr.display()))?,
            ))
            .kill_on_drop(true);
        if no_watch {
            command.arg("--no-watch");
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let spawned = Instant::now();
        let mut child = command.spawn().context("starting mozaiks serve")?;
        let stdout = child.stdout.take().context("mozaiks stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_WAIT, lines.next_line())
            .await
            .context("mozaiks did not print its address in time")??
            .with_context(|| {
                format!(
                    "mozaiks exited before listening; its log: {}",
                    dirs.stderr.display()
                )
            })?;
        let listening_after = spawned.elapsed();
        let base = line
            .strip_prefix("mozaiks listening on ")
            .with_context(|| format!("unexpected first line from mozaiks: {line}"))?
            .to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            base,
            spawned,
            listening_after,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `ws://127.0.0.1:PORT`.
    pub(crate) fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("mozaiks has exited")
    }

    /// Polls `/health/ready` until it answers 200; returns the time from
    /// spawn to that answer.
    pub(crate) async fn wait_ready(&self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let url = format!("{}/health/ready", self.base);
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(self.spawned.elapsed());
            }
            if Instant::now() > deadline {
                bail!("{url} did not answer 200 within {START_WAIT:?}");
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// The server's resident memory now and at its peak.
    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid()?)
    }

    /// Stops the server with SIGTERM, as an operator would, and waits.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        // No signal API in the dependencies; `kill` is everywhere.
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        tokio::time::timeout(START_WAIT, self.child.wait())
            .await
            .context("mozaiks did not stop in time")??;
        Ok(())
    }
}

/// Resident set size, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Memory {
    /// `VmRSS`, bytes.
    pub(crate) rss: u64,
    /// `VmHWM`, the peak RSS so far, bytes.
    pub(crate) peak: u64,
}

impl Memory {
    /// The memory of process `pid`.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
            let kib: u64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(kib * 1024)
        };
        Ok(Self {
            rss: field("VmRSS:")?,
            peak: field("VmHWM:")?,
        })
    }
}

/// `12.3 MiB`.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Copies the plugin folder `from` (its `plugin.toml` and component) to
/// `to` under a new id, so a benchmark can serve many plugins.
pub(crate) fn copy_plugin(from: &Path, id: &str, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let original_id = from
        .file_name()
        .and_then(|n| n.to_str())
        .context("plugin folder name")?;
    let manifest = std::fs::read_to_string(from.join("plugin.toml"))?;
    let manifest = manifest.replacen(
        &format!("id = \"{original_id}\""),
        &format!("id = \"{id}\""),
        1,
    );
    std::fs::write(to.join("plugin.toml"), manifest)?;
    std::fs::copy(
        from.join(format!("{original_id}.wasm")),
        to.join(format!("{id}.wasm")),
    )
    .with_context(|| format!("copying {original_id}.wasm (run scripts/build-plugins first)"))?;
    Ok(())
}
