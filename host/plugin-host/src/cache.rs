//! The on-disk cache of compiled components, so a restart with unchanged
//! plugins does not compile them again.
//!
//! An entry is the native code wasmtime made from one component, named by
//! the SHA-256 of the component's bytes and a fingerprint of the engine's
//! settings and version: `<sha256>-<engine>.cwasm`. A changed component, a
//! changed engine configuration or a new wasmtime each miss and compile
//! afresh. A miss writes the entry atomically (temporary file, then rename),
//! so a crash never leaves a half-written entry behind. A compiler process
//! ([`crate::Compiler::Child`]) writes the temporary file itself.
//!
//! # Housekeeping
//!
//! Every new version of a plugin, and every new engine, leaves the entries
//! of the old ones behind (a Python tool's is about 35 MB). The host says
//! which components its loaded plugins use ([`ComponentCache::prune`]),
//! after its first load and after each hot reload: the entries of those
//! are kept; of the others, the most recently used are kept up to
//! [`UNUSED_ENTRIES_BUDGET_BYTES`], entries of another engine going first.
//! A hit refreshes its entry's modification time, which is what "recently
//! used" reads.
//!
//! # Trust
//!
//! Loading an entry runs its native code without the checks wasmtime applies
//! to WebAssembly. The cache directory must be writable only by the server:
//! it is created with mode 0700, and an entry is loaded only from a
//! directory that is not writable by group or others. Wasmtime still
//! refuses entries made by another version or configuration, and an entry
//! it refuses is compiled again and replaced.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of cache entries that no loaded plugin uses which
/// [`PluginEngine::prune_component_cache`](crate::PluginEngine::prune_component_cache)
/// keeps, the most recently used first: a version rolled back to, or a
/// plugin loaded again, loads from them.
pub const UNUSED_ENTRIES_BUDGET_BYTES: u64 = 1024 * 1024 * 1024;

/// How old a compiler's temporary file must be before
/// [`ComponentCache::prune`] takes it for a crash's leftover.
const STALE_TEMPORARY: Duration = Duration::from_secs(24 * 60 * 60);

/// What [`PluginEngine::prune_component_cache`](crate::PluginEngine::prune_component_cache)
/// removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePruned {
    /// Entries (and stale temporary files) removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Where compiled components are kept, for one engine.
#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_fingerprint: String,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// There is no cache.
    Disabled,
    /// It was compiled and stored.
    Miss,
    /// It was loaded from the cache.
    Hit,
}

impl ComponentCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_fingerprint: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry(&self, component_hash: &str) -> PathBuf {
        self.dir.join(format!(
            "{component_hash}-{}.cwasm",
            self.engine_fingerprint
        ))
    }

    /// The entry of the component whose source hashes to `component_hash`,
    /// if the cache has a usable one. Blocking.
    pub(crate) fn hit(&self, engine: &Engine, component_hash: &str) -> Option<Component> {
        let entry = self.entry(component_hash);
        if !entry.is_file() {
            return None;
        }
        match load_artifact(engine, &self.dir, &entry) {
            Ok(component) => {
                touch(&entry);
                Some(component)
            }
            Err(error) => {
                tracing::debug!(path = %entry.display(), %error, "cache entry refused; compiling again");
                None
            }
        }
    }

    /// Stores a component compiled in this process as the entry of
    /// `component_hash`; a failure is logged (the next start compiles it
    /// again).
    pub(crate) fn store(&self, component_hash: &str, component: &Component) {
        let entry = self.entry(component_hash);
        let stored = component
            .serialize()
            .map_err(std::io::Error::other)
            .and_then(|serialized| {
                let artifact = self.artifact_path(component_hash);
                std::fs::write(&artifact.temporary, serialized)?;
                std::fs::rename(&artifact.temporary, &artifact.entry).inspect_err(|_| {
                    let _ = std::fs::remove_file(&artifact.temporary);
                })
            });
        if let Err(error) = stored {
            tracing::warn!(path = %entry.display(), %error, "could not write the compiled component to the cache; the next start compiles it again");
        }
    }

    /// Where a compiler writes the artifact of `component_hash` (a
    /// temporary file in the cache folder, created if need be), and the
    /// entry it becomes.
    pub(crate) fn artifact_path(&self, component_hash: &str) -> Artifact {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if let Err(error) = create_private_dir(&self.dir) {
            tracing::warn!(path = %self.dir.display(), %error, "cannot create the component cache");
        }
        let entry = self.entry(component_hash);
        let temporary = entry.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Artifact { temporary, entry }
    }

    /// True if the cache folder is missing (it is created with mode 0700)
    /// or only this user may write to it: its entries may be loaded.
    pub(crate) fn writable_only_by_us(&self) -> bool {
        !self.dir.exists() || private(&self.dir)
    }

    /// Makes the artifact a compiler wrote the cache's entry, and loads it.
    pub(crate) fn adopt(&self, engine: &Engine, artifact: &Artifact) -> Result<Component, String> {
        std::fs::rename(&artifact.temporary, &artifact.entry).map_err(|e| {
            let _ = std::fs::remove_file(&artifact.temporary);
            format!("{}: {e}", artifact.entry.display())
        })?;
        load_artifact(engine, &self.dir, &artifact.entry)
    }
}

impl ComponentCache {
    /// Removes the entries that no component hash of `in_use` needs,
    /// beyond `budget` bytes of them: entries of another engine first,
    /// then the least recently used. Compilers' temporary files older than
    /// a day (a crash's leftovers) go too; other files are left alone.
    /// Blocking.
    pub(crate) fn prune(&self, in_use: &HashSet<&str>, budget: u64) -> CachePruned {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return CachePruned::default();
        };
        let now = SystemTime::now();
        let mut pruned = CachePruned::default();
        let mut unused = Vec::new();
        for file in listing.flatten() {
            let path = file.path();
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            let modified = metadata.modified().unwrap_or(now);
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            match entry_name(name) {
                EntryName::Entry { component, engine } => {
                    let ours = engine == self.engine_fingerprint;
                    if !(ours && in_use.contains(component)) {
                        unused.push((!ours, modified, metadata.len(), path));
                    }
                }
                EntryName::Temporary => {
                    let stale = now
                        .duration_since(modified)
                        .is_ok_and(|age| age >= STALE_TEMPORARY);
                    if stale && std::fs::remove_file(&path).is_ok() {
                        pruned.files += 1;
                        pruned.bytes += metadata.len();
                    }
                }
                EntryName::Other => {}
            }
        }
        // Kept first: this engine's, most recently used first. Once one
        // does not fit, it and every one after it go.
        unused.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut kept = 0u64;
        let mut full = false;
        for (_, _, bytes, path) in unused {
            if !full && kept.saturating_add(bytes) <= budget {
                kept += bytes;
                continue;
            }
            full = true;
            if std::fs::remove_file(&path).is_ok() {
                pruned.files += 1;
                pruned.bytes += bytes;
            }
        }
        pruned
    }
}

/// What a file in the cache folder is, by its name.
#[derive(Debug, PartialEq, Eq)]
enum EntryName<'a> {
    /// `<component sha256>-<engine fingerprint>.cwasm`.
    Entry { component: &'a str, engine: &'a str },
    /// `<entry>.tmp<pid>-<n>`: a compiler's output on its way in.
    Temporary,
    /// Anything else: not the cache's.
    Other,
}

fn entry_name(name: &str) -> EntryName<'_> {
    if let Some(stem) = name.strip_suffix(".cwasm") {
        return match stem.rsplit_once('-') {
            Some((component, engine)) => EntryName::Entry { component, engine },
            None => EntryName::Other,
        };
    }
    match name.rsplit_once('.') {
        Some((stem, extension)) if extension.starts_with("tmp") && stem.contains('-') => {
            EntryName::Temporary
        }
        _ => EntryName::Other,
    }
}

/// Marks `entry` as just used (its modification time), for
/// [`ComponentCache::prune`]; a failure only makes it look older.
fn touch(entry: &Path) {
    let _ = std::fs::File::options()
        .write(true)
        .open(entry)
        .and_then(|file| file.set_modified(SystemTime::now()));
}

/// A compiled artifact on its way into the cache.
#[derive(Debug)]
pub(crate) struct Artifact {
    /// Where the compiler writes it.
    pub(crate) temporary: PathBuf,
    /// The cache entry it becomes.
    pub(crate) entry: PathBuf,
}

/// Loads the compiled component in `file`, which must be in `dir`, a
/// folder only this user can write.
pub(crate) fn load_artifact(engine: &Engine, dir: &Path, file: &Path) -> Result<Component, String> {
    if !private(dir) {
        return Err(format!(
            "{} may be written by others: its compiled code is not loaded",
            dir.display()
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    // SAFETY: `bytes` was written by `Component::serialize` or
    // `Engine::precompile_component` (this engine or the compiler process,
    // with the same settings), in a directory only this user can write
    // (checked just above). Wasmtime checks the header, the version and the
    // settings, and refuses an artifact that does not match; `deserialize`
    // copies the bytes, so later changes to the file cannot affect the
    // loaded code.
    #[allow(
        unsafe_code,
        reason = "loading native code the host's own compiler wrote"
    )]
    let loaded = unsafe { Component::deserialize(engine, &bytes) };
    loaded.map_err(|e| format!("{}: {e:#}", file.display()))
}

#[cfg(unix)]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// True if only the owner may write to `dir`.
#[cfg(unix)]
fn private(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o022 == 0)
}

#[cfg(not(unix))]
fn private(_dir: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh private folder under the system's temporary folder.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mozaiks-cache-{name}-{}-{:?}",
            std::process::id(),
            SystemTime::now()
        ));
        create_private_dir(&dir).unwrap();
        dir
    }

    /// Writes `bytes` bytes to `dir/name`, last modified `age` ago.
    fn file(dir: &Path, name: &str, bytes: usize, age: Duration) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
        path
    }

    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn prune_keeps_what_is_used_then_the_most_recently_used_within_the_budget() {
        let dir = scratch("prune");
        let cache = ComponentCache::new(dir.clone(), &Engine::default());
        let ours = |component: &str| format!("{component}-{}.cwasm", cache.engine_fingerprint);
        let in_use = file(&dir, &ours("a"), 100, 10 * DAY);
        let newest = file(&dir, &ours("b"), 100, HOUR);
        let second = file(&dir, &ours("c"), 100, 2 * HOUR);
        let oldest = file(&dir, &ours("d"), 100, 3 * HOUR);
        let small_after_full = file(&dir, &ours("e"), 10, 4 * HOUR);
        let other_engine = file(&dir, "f-0123456789abcdef.cwasm", 10, MINUTE);
        let crashed = file(&dir, &format!("{}.tmp42-0", ours("g")), 50, 2 * DAY);
        let compiling = file(&dir, &format!("{}.tmp43-1", ours("h")), 50, MINUTE);
        let not_ours = file(&dir, "notes.txt", 10, 30 * DAY);

        let pruned = cache.prune(&HashSet::from(["a"]), 250);

        assert_eq!(
            pruned,
            CachePruned {
                files: 4,
                bytes: 100 + 10 + 10 + 50
            }
        );
        for kept in [&in_use, &newest, &second, &compiling, &not_ours] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        for removed in [&oldest, &small_after_full, &other_engine, &crashed] {
            assert!(!removed.exists(), "{} was kept", removed.display());
        }
        // Within the budget, nothing more goes; another engine's entries
        // go before this one's.
        assert_eq!(
            cache.prune(&HashSet::from(["a"]), 250),
            CachePruned::default()
        );
        let other_engine = file(&dir, "f-0123456789abcdef.cwasm", 10, MINUTE);
        assert_eq!(
            cache.prune(&HashSet::new(), 300),
            CachePruned {
                files: 1,
                bytes: 10
            }
        );
        assert!(!other_engine.exists() && in_use.exists() && second.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hit_marks_its_entry_as_recently_used() {
        let dir = scratch("touch");
        let engine = Engine::default();
        let cache = ComponentCache::new(dir.clone(), &engine);
        let bytes = wasm_encoder::Component::new().finish();
        let component = Component::new(&engine, &bytes).unwrap();
        cache.store("abc", &component);
        let entry = cache.entry("abc");
        std::fs::File::options()
            .write(true)
            .open(&entry)
            .unwrap()
            .set_modified(SystemTime::now() - 30 * DAY)
            .unwrap();

        assert!(cache.hit(&engine, "abc").is_some());

        let age = std::fs::metadata(&entry)
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .unwrap_or_default();
        assert!(age < HOUR, "the hit left the entry {age:?} old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_names_are_told_apart() {
        assert_eq!(
            entry_name("abc-0123.cwasm"),
            EntryName::Entry {
                component: "abc",
                engine: "0123"
            }
        );
        assert_eq!(entry_name("abc-0123.tmp7-1"), EntryName::Temporary);
        assert_eq!(entry_name("abc.cwasm"), EntryName::Other);
        assert_eq!(entry_name("README.md"), EntryName::Other);
        assert_eq!(entry_name("tmp"), EntryName::Other);
    }
}
