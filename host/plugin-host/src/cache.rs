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
//! # Trust
//!
//! Loading an entry runs its native code without the checks wasmtime applies
//! to WebAssembly. The cache directory must be writable only by the server:
//! it is created with mode 0700, and an entry is loaded only from a
//! directory that is not writable by group or others. Wasmtime still
//! refuses entries made by another version or configuration, and an entry
//! it refuses is compiled again and replaced.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::Component;

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
            Ok(component) => Some(component),
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
