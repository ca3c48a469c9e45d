//! The on-disk cache of compiled components, so a restart with unchanged
//! plugins does not compile them again.
//!
//! An entry is the native code wasmtime made from one component, named by
//! the SHA-256 of the component's bytes and a fingerprint of the engine's
//! settings and version: `<sha256>-<engine>.cwasm`. A changed component, a
//! changed engine configuration or a new wasmtime each miss and compile
//! afresh. A miss writes the entry atomically (temporary file, then rename),
//! so a crash never leaves a half-written entry behind.
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

    /// The compiled component whose source hashes to `component_hash`,
    /// from the cache or compiled from `bytes` (then stored). Blocking: call
    /// it off the async runtime.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        component_hash: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let entry = self.entry(component_hash);
        if let Some(component) = self.load(engine, &entry) {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(error) = self.store(&entry, &component) {
            tracing::warn!(path = %entry.display(), %error, "could not write the compiled component to the cache; the next start compiles it again");
        }
        Ok((component, CacheOutcome::Miss))
    }

    fn load(&self, engine: &Engine, entry: &Path) -> Option<Component> {
        if !entry.is_file() || !private(&self.dir) {
            return None;
        }
        let bytes = std::fs::read(entry).ok()?;
        // SAFETY: `bytes` is a file this cache wrote with
        // `Component::serialize` of this engine's configuration (the name
        // carries the engine's fingerprint), in a directory only this user
        // can write (checked just above). Wasmtime checks the header, the
        // version and the settings, and refuses an entry that does not match;
        // `deserialize` copies the bytes, so later changes to the file cannot
        // affect the loaded code.
        #[allow(unsafe_code, reason = "loading native code the cache itself wrote")]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::debug!(path = %entry.display(), error = %format!("{error:#}"), "cache entry refused; compiling again");
                None
            }
        }
    }

    fn store(&self, entry: &Path, component: &Component) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let serialized = component.serialize().map_err(std::io::Error::other)?;
        let temporary = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, serialized)?;
        std::fs::rename(&temporary, entry).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
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
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
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
