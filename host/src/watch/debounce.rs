//! Turning a burst of file events into one reload per folder.
//!
//! Editors save in several steps (write a temporary file, rename, touch)
//! and a build writes a `.wasm` in chunks. Each event pushes the folder's
//! reload back by the quiet period, so the reload happens once, after the
//! last write. What a path means ([`classify`]) is decided here too: only
//! the files the server reads trigger a reload.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use mozaiks_plugin_host::MANIFEST_FILE;

use crate::workflow::format::format_of;

/// A folder to act on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ChangedFolder {
    /// A plugin folder: its component or manifest changed.
    Plugin(PathBuf),
    /// A workflow folder: one of its JSON files changed.
    Workflow(PathBuf),
    /// A plugin's sources changed (`mozaiks dev` rebuilds it): Rust's
    /// `Cargo.toml` and `src/**.rs`, or another language's source files
    /// ([`SOURCE_EXTENSIONS`], `go.mod`) outside the folders builds write.
    Source(PathBuf),
}

/// Folders the watcher looks at.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    /// The plugins directory.
    pub plugins: PathBuf,
    /// The workflows directory.
    pub workflows: PathBuf,
    /// Whether source changes count ([`ChangedFolder::Source`]).
    pub sources: bool,
}

/// What a change at `path` means, if anything.
pub(crate) fn classify(path: &Path, roots: &Roots) -> Option<ChangedFolder> {
    if let Ok(rest) = path.strip_prefix(&roots.plugins) {
        let parts = names(rest)?;
        let folder = roots.plugins.join(parts.first()?);
        return match parts.as_slice() {
            [_] => Some(ChangedFolder::Plugin(folder)),
            [_, file] if is_ext(file, "wasm") || *file == OsStr::new(MANIFEST_FILE) => {
                Some(ChangedFolder::Plugin(folder))
            }
            // Not Cargo.lock: cargo itself writes it during a build.
            [_, file] if roots.sources && *file == "Cargo.toml" => {
                Some(ChangedFolder::Source(folder))
            }
            [_, dir, .., file] if roots.sources && *dir == "src" && is_ext(file, "rs") => {
                Some(ChangedFolder::Source(folder))
            }
            [_, file] if roots.sources && *file == "go.mod" => Some(ChangedFolder::Source(folder)),
            [_, inner @ .., file]
                if roots.sources
                    && SOURCE_EXTENSIONS.iter().any(|ext| is_ext(file, ext))
                    && !inner.first().is_some_and(|dir| {
                        GENERATED_DIRS.contains(&dir.to_str().unwrap_or(""))
                    }) =>
            {
                Some(ChangedFolder::Source(folder))
            }
            _ => None,
        };
    }
    if let Ok(rest) = path.strip_prefix(&roots.workflows) {
        let parts = names(rest)?;
        let folder = roots.workflows.join(parts.first()?);
        return match parts.as_slice() {
            [_] => Some(ChangedFolder::Workflow(folder)),
            // Files in subfolders may be read by `file` context sources
            // (data/limits.json); a change that alters nothing the workflow
            // reads leaves its version as it was, and the reload is a no-op.
            // The front-end components are served as they are, never loaded.
            [_, dir, _, ..] if *dir != "components" => Some(ChangedFolder::Workflow(folder)),
            // A workflow file in any spelling (JSON or YAML).
            [_, file] if format_of(&file.to_string_lossy()).is_some() => {
                Some(ChangedFolder::Workflow(folder))
            }
            _ => None,
        };
    }
    None
}

/// The source files of the other languages a tool can be written in
/// (docs/tool-authors.md): Python, JavaScript, TypeScript, C, Go.
pub(crate) const SOURCE_EXTENSIONS: &[&str] = &["py", "js", "mjs", "ts", "c", "h", "go"];

/// Folders of a plugin that builds write (the contract, bindings, tsc's
/// output) or package managers fill: a change there is no edit of the
/// author's, and would rebuild forever.
const GENERATED_DIRS: &[&str] = &[
    "wit",
    "bindings",
    "types",
    "build",
    "node_modules",
    "target",
];

fn names(path: &Path) -> Option<Vec<&OsStr>> {
    let names: Vec<&OsStr> = path
        .components()
        .map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect::<Option<_>>()?;
    // Hidden files and folders are editors' and tools' business.
    if names.iter().any(|n| n.to_string_lossy().starts_with('.')) {
        return None;
    }
    Some(names)
}

fn is_ext(file: &OsStr, ext: &str) -> bool {
    Path::new(file).extension() == Some(OsStr::new(ext))
}

/// Folders waiting for their files to settle, each with the moment it is
/// due.
#[derive(Debug)]
pub(crate) struct Debouncer {
    quiet: Duration,
    pending: BTreeMap<ChangedFolder, Instant>,
}

impl Debouncer {
    /// A debouncer that waits `quiet` after the last event of a folder.
    pub(crate) fn new(quiet: Duration) -> Self {
        Self {
            quiet,
            pending: BTreeMap::new(),
        }
    }

    /// A change to `target` at `now`: it is due a quiet period later.
    pub(crate) fn touch(&mut self, target: ChangedFolder, now: Instant) {
        self.pending.insert(target, now + self.quiet);
    }

    /// Looks at `target` again at `at` (a writer is still busy), unless a
    /// newer change already set a later time.
    pub(crate) fn defer(&mut self, target: ChangedFolder, at: Instant) {
        let due = self.pending.entry(target).or_insert(at);
        *due = (*due).max(at);
    }

    /// Removes and returns the targets due at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<ChangedFolder> {
        let due: Vec<ChangedFolder> = self
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for target in &due {
            self.pending.remove(target);
        }
        due
    }

    /// When the next target is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(sources: bool) -> Roots {
        Roots {
            plugins: PathBuf::from("/srv/plugins"),
            workflows: PathBuf::from("/srv/workflows"),
            sources,
        }
    }

    #[test]
    fn only_files_the_server_reads_are_changes() {
        let r = roots(false);
        let plugin = Some(ChangedFolder::Plugin(PathBuf::from("/srv/plugins/planner")));
        assert_eq!(
            classify(Path::new("/srv/plugins/planner/planner.wasm"), &r),
            plugin
        );
        assert_eq!(
            classify(Path::new("/srv/plugins/planner/plugin.toml"), &r),
            plugin
        );
        assert_eq!(classify(Path::new("/srv/plugins/planner"), &r), plugin);
        for ignored in [
            "/srv/plugins/planner/planner.wasm.tmp",
            "/srv/plugins/planner/src/lib.rs",
            "/srv/plugins/planner/.plugin.toml.swp",
            "/srv/plugins/planner/target/x.wasm",
            "/srv/workflows/Demo/components/Form.js",
            "/srv/workflows/Demo/notes.md",
            "/srv/elsewhere/x.json",
        ] {
            assert_eq!(classify(Path::new(ignored), &r), None, "{ignored}");
        }
        let workflow = Some(ChangedFolder::Workflow(PathBuf::from(
            "/srv/workflows/Demo",
        )));
        for file in ["agents.json", "agents.yaml", "handoffs.yml"] {
            let path = PathBuf::from("/srv/workflows/Demo").join(file);
            assert_eq!(classify(&path, &r), workflow, "{file}");
        }
        assert_eq!(classify(Path::new("/srv/workflows/Demo"), &r), workflow);
        assert_eq!(
            classify(Path::new("/srv/workflows/Demo/data/limits.json"), &r),
            workflow,
            "a file source's file"
        );
        assert_eq!(
            classify(Path::new("/srv/workflows/Demo/data/deep/notes.txt"), &r),
            workflow
        );
    }

    #[test]
    fn sources_count_only_in_dev_mode() {
        let source = Some(ChangedFolder::Source(PathBuf::from("/srv/plugins/planner")));
        let lib = Path::new("/srv/plugins/planner/src/tools/tasks.rs");
        assert_eq!(classify(lib, &roots(true)), source);
        assert_eq!(
            classify(Path::new("/srv/plugins/planner/Cargo.toml"), &roots(true)),
            source
        );
        assert_eq!(classify(lib, &roots(false)), None);
    }

    /// `mozaiks dev` rebuilds tools of every language, but not on the files
    /// a build writes itself (which would rebuild forever).
    #[test]
    fn sources_of_every_language_count_but_not_what_builds_write() {
        let source = Some(ChangedFolder::Source(PathBuf::from("/srv/plugins/tool")));
        for file in [
            "app.py",
            "helpers/text.py",
            "app.js",
            "app.ts",
            "app.c",
            "mozaiks_tool.h",
            "app.go",
            "go.mod",
            "mozaiks/abi.go",
        ] {
            let path = PathBuf::from("/srv/plugins/tool").join(file);
            assert_eq!(classify(&path, &roots(true)), source, "{file}");
            assert_eq!(classify(&path, &roots(false)), None, "{file}");
        }
        for written in [
            "wit/world.wit",
            "bindings/plugin.h",
            "bindings/plugin.c",
            "bindings/wit_world/imports/context.py",
            "types/plugin.d.ts",
            "build/app.js",
            "node_modules/x/index.js",
            "__pycache__/app.cpython-311.pyc",
            "tool.wasm.partial",
        ] {
            let path = PathBuf::from("/srv/plugins/tool").join(written);
            assert_eq!(classify(&path, &roots(true)), None, "{written}");
        }
    }

    #[test]
    fn a_burst_is_one_reload_after_the_last_event() {
        let start = Instant::now();
        let quiet = Duration::from_millis(200);
        let mut debouncer = Debouncer::new(quiet);
        let target = ChangedFolder::Plugin(PathBuf::from("/p/a"));
        for i in 0..5 {
            debouncer.touch(target.clone(), start + Duration::from_millis(i * 100));
        }
        let last = start + Duration::from_millis(400);
        assert_eq!(debouncer.next_due(), Some(last + quiet));
        assert!(
            debouncer
                .take_due(last + quiet - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(debouncer.take_due(last + quiet), vec![target.clone()]);
        assert!(debouncer.take_due(last + quiet * 10).is_empty());
        assert_eq!(debouncer.next_due(), None);

        // Deferring never moves a later deadline earlier.
        debouncer.touch(target.clone(), last);
        debouncer.defer(target.clone(), last);
        assert_eq!(debouncer.next_due(), Some(last + quiet));
    }
}
