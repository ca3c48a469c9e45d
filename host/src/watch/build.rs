//! `mozaiks dev`: rebuilding a plugin when its sources change.
//!
//! A Rust crate (a folder with `Cargo.toml`) is built by the SDK's build
//! script; a folder of another language (Python, JavaScript, TypeScript, C,
//! Go) by the tool build command (`mozaiks tool build`, the same code as on
//! the command line). Either writes the component into the plugin folder; the watcher then reloads it like any other change,
//! through the same gate. A failed build is reported the way a refused
//! reload is, with the compiler's messages, and the served version stays.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::hub::{ReloadEvent, ReloadHub, ReloadKind, ReloadOutcome};

/// The most lines of a failed build's output kept in its event.
const OUTPUT_LINES: usize = 40;

/// Builds plugin folders one at a time; a folder changed again while it
/// builds is built once more afterwards.
#[derive(Debug, Clone)]
pub(super) struct Builder {
    queue: mpsc::UnboundedSender<PathBuf>,
}

impl Builder {
    /// Starts the build task with `script` (usually `sdk/build-plugin`) for
    /// Rust crates and `tool_build` (program, then arguments; the folder is
    /// appended) for the other languages.
    pub(super) fn spawn(script: PathBuf, tool_build: Vec<OsString>, hub: Arc<ReloadHub>) -> Self {
        let (queue, mut requests) = mpsc::unbounded_channel::<PathBuf>();
        tokio::spawn(async move {
            while let Some(first) = requests.recv().await {
                let mut folders = BTreeSet::from([first]);
                while let Ok(more) = requests.try_recv() {
                    folders.insert(more);
                }
                for folder in folders {
                    build(&script, &tool_build, &folder, &hub).await;
                }
            }
        });
        Self { queue }
    }

    /// Asks for `folder` to be built.
    pub(super) fn request(&self, folder: PathBuf) {
        let _ = self.queue.send(folder);
    }
}

/// The command that builds `folder`: the Rust script for a crate, else the
/// tool build command; `None` when no command builds its language.
fn command_for(
    script: &Path,
    tool_build: &[OsString],
    folder: &Path,
) -> Option<tokio::process::Command> {
    if folder.join("Cargo.toml").is_file() {
        let mut command = tokio::process::Command::new(script);
        command.arg(folder);
        return Some(command);
    }
    let (program, args) = tool_build.split_first()?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).arg(folder);
    Some(command)
}

async fn build(script: &Path, tool_build: &[OsString], folder: &Path, hub: &ReloadHub) {
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(mut command) = command_for(script, tool_build, folder) else {
        tracing::warn!(plugin = %name, "sources changed, but no command builds this folder");
        return;
    };
    let shown = format!("{:?}", command.as_std().get_program());
    tracing::info!(plugin = %name, "sources changed; building with {shown}");
    let started = Instant::now();
    let output = command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let event = match output {
        Ok(output) if output.status.success() => {
            ReloadEvent::new(ReloadKind::Build, &name, ReloadOutcome::Loaded).message(
                format!(
                    "built `{name}` in {:.1} s; the new component is reloaded next",
                    started.elapsed().as_secs_f64()
                ),
                Vec::new(),
            )
        }
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(OUTPUT_LINES)..]
                .iter()
                .map(|l| (*l).to_owned())
                .collect();
            ReloadEvent::new(ReloadKind::Build, &name, ReloadOutcome::Rejected).message(
                format!(
                    "building `{name}` failed ({}); the last good version is still served",
                    output.status
                ),
                tail,
            )
        }
        Err(error) => ReloadEvent::new(ReloadKind::Build, &name, ReloadOutcome::Rejected)
            .message(format!("could not run {shown}: {error}"), Vec::new()),
    };
    hub.publish(event.took(started.elapsed()));
}
