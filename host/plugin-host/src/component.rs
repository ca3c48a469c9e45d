//! Loading a plugin: manifest + component bytes → compiled, checked,
//! pre-instantiated [`Plugin`] whose functions are known.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::bindings::PluginPre;
use crate::cache::CacheOutcome;
use crate::compile::{self, CompileFailure};
use crate::describe::{self, Function};
use crate::engine::PluginEngine;
use crate::error::LoadError;
use crate::limits::{MAX_COMPONENT_BYTES, MAX_COMPONENT_FUNCTIONS};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::policy::SandboxPolicy;
use crate::start_cost::StartCost;
use crate::state::CallState;
use sha2::{Digest, Sha256};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.2";
/// Custom section in which `mozaiks-sdk` records the WIT version it was built for.
pub const SDK_VERSION_SECTION: &str = "mozaiks:sdk-version";

/// A loaded plugin. Cheap to clone; calls on clones share the compiled code
/// but never an instance.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    pub(crate) id: Arc<str>,
    pub(crate) manifest: Manifest,
    pub(crate) manifest_path: PathBuf,
    pub(crate) wasm_path: PathBuf,
    pub(crate) hash: String,
    pub(crate) sdk_version: Option<String>,
    pub(crate) loaded_at: SystemTime,
    pub(crate) compile_time: Duration,
    pub(crate) cache_outcome: CacheOutcome,
    pub(crate) pre: PluginPre<CallState>,
    pub(crate) policy: SandboxPolicy,
    pub(crate) functions: Vec<Function>,
    pub(crate) start_cost: StartCost,
    pub(crate) engine: PluginEngine,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.inner.id)
            .field("version", &self.inner.manifest.version)
            .field("hash", &self.inner.hash)
            .field("functions", &self.function_names())
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Loads the plugin in `dir`: `dir/plugin.toml` and `dir/<id>.wasm`.
    pub async fn load_dir(&self, dir: &Path) -> Result<Plugin, LoadError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = Manifest::read(&manifest_path)?;
        let wasm_path = dir.join(format!("{}.wasm", manifest.id));
        self.load(manifest, manifest_path, &wasm_path).await
    }

    /// Loads the component at `wasm_path` under `manifest`. Relative paths in
    /// the manifest are resolved against `manifest_path`'s folder.
    pub async fn load(
        &self,
        manifest: Manifest,
        manifest_path: PathBuf,
        wasm_path: &Path,
    ) -> Result<Plugin, LoadError> {
        let bytes = tokio::fs::read(wasm_path)
            .await
            .map_err(|source| LoadError::Read {
                plugin: manifest.id.clone(),
                path: wasm_path.to_owned(),
                source,
            })?;
        self.load_bytes(manifest, manifest_path, wasm_path.to_owned(), bytes)
            .await
    }

    /// Loads a component from bytes already in memory; `wasm_path` is only
    /// used in messages.
    pub async fn load_bytes(
        &self,
        manifest: Manifest,
        manifest_path: PathBuf,
        wasm_path: PathBuf,
        bytes: Vec<u8>,
    ) -> Result<Plugin, LoadError> {
        let id: Arc<str> = Arc::from(manifest.id.as_str());
        let base_dir = manifest_path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        let policy = SandboxPolicy::resolve(&manifest, &base_dir)?;

        let too_large = |what, size: usize, limit: usize| LoadError::TooLarge {
            plugin: id.to_string(),
            path: wasm_path.clone(),
            what,
            size,
            limit,
        };
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(too_large("bytes", bytes.len(), MAX_COMPONENT_BYTES));
        }
        let functions = function_count(&bytes);
        if functions > u64::from(MAX_COMPONENT_FUNCTIONS) {
            return Err(too_large(
                "functions",
                usize::try_from(functions).unwrap_or(usize::MAX),
                MAX_COMPONENT_FUNCTIONS as usize,
            ));
        }
        let sdk_version = sdk_version(&bytes);
        if let Some(found) = &sdk_version
            && !compatible(found)
        {
            return Err(LoadError::IncompatibleVersion {
                plugin: id.to_string(),
                found: found.clone(),
                supported: WIT_VERSION,
            });
        }
        let hash = content_hash(&bytes);

        // Compilation takes milliseconds to seconds of CPU: keep it off the
        // async workers.
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let component_hash = hash.clone();
        let compiles = Arc::clone(&self.compiles);
        // A turn among MAX_CONCURRENT_COMPILES, held until the compiler is
        // done even if this load is given up meanwhile.
        let turn = Arc::clone(&compiles.turns)
            .acquire_owned()
            .await
            .map_err(|e| LoadError::Compiler {
                plugin: id.to_string(),
                path: wasm_path.clone(),
                cause: format!("waiting for the compiler: {e}"),
            })?;
        let started = Instant::now();
        let compiler = Arc::clone(&self.compiler);
        let compiled = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            compiles.run(|| {
                compile::compile(
                    &engine,
                    &compiler,
                    cache.as_deref(),
                    &component_hash,
                    &bytes,
                )
            })
        })
        .await
        .map_err(|e| LoadError::Compiler {
            plugin: id.to_string(),
            path: wasm_path.clone(),
            cause: format!("compiler task failed: {e}"),
        })?;
        let (component, cache_outcome) = compiled.map_err(|failure| match failure {
            CompileFailure::Limit { what, detail } => LoadError::CompileLimit {
                plugin: id.to_string(),
                path: wasm_path.clone(),
                limit: what,
                detail,
            },
            CompileFailure::Invalid(cause) => LoadError::Compile {
                plugin: id.to_string(),
                path: wasm_path.clone(),
                cause,
            },
            CompileFailure::Io(cause) => LoadError::Compiler {
                plugin: id.to_string(),
                path: wasm_path.clone(),
                cause,
            },
        })?;
        let compile_time = started.elapsed();

        let world_error = |e: wasmtime::Error| LoadError::World {
            plugin: id.to_string(),
            cause: format!("{e:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(world_error)?;
        let pre = PluginPre::new(instance_pre).map_err(world_error)?;

        let (functions, start_cost) =
            describe::describe(self, &id, &manifest, &policy, &pre).await?;
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                id,
                manifest,
                manifest_path,
                wasm_path,
                hash,
                sdk_version,
                loaded_at: SystemTime::now(),
                compile_time,
                cache_outcome,
                pre,
                policy,
                functions,
                start_cost,
                engine: self.clone(),
            }),
        })
    }
}

impl Plugin {
    /// The plugin id from its manifest.
    pub fn id(&self) -> &str {
        &self.inner.id
    }
    /// The manifest it was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }
    /// Where the manifest lives (used in hints on how to grant capabilities).
    pub fn manifest_path(&self) -> &Path {
        &self.inner.manifest_path
    }
    /// Where the component was read from.
    pub fn wasm_path(&self) -> &Path {
        &self.inner.wasm_path
    }
    /// SHA-256 of the component bytes, hex: identifies this exact build.
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }
    /// The WIT version stamped by `mozaiks-sdk`, if the component has one.
    pub fn sdk_version(&self) -> Option<&str> {
        self.inner.sdk_version.as_deref()
    }
    /// When this version was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.inner.loaded_at
    }
    /// How long compiling the component took (or loading it from the
    /// cache, see [`cache_outcome`](Self::cache_outcome)).
    pub fn compile_time(&self) -> Duration {
        self.inner.compile_time
    }
    /// Whether the compiled code came from the on-disk cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache_outcome
    }
    /// What starting one instance cost when the plugin was loaded (its
    /// `describe()` instance); [`StartCost::warnings`] says whether that
    /// fits the limits.
    pub fn start_cost(&self) -> StartCost {
        self.inner.start_cost
    }
    /// The functions the plugin offers, in the order it describes them.
    pub fn functions(&self) -> impl Iterator<Item = &crate::FunctionSpec> {
        self.inner.functions.iter().map(|f| &f.spec)
    }
    /// The spec of `name`, if offered.
    pub fn function(&self, name: &str) -> Option<&crate::FunctionSpec> {
        self.find(name).map(|f| &f.spec)
    }
    pub(crate) fn find(&self, name: &str) -> Option<&Function> {
        self.inner.functions.iter().find(|f| f.spec.name == name)
    }
    /// The names of the functions it offers, in `describe()` order.
    pub fn function_names(&self) -> Vec<&str> {
        self.inner
            .functions
            .iter()
            .map(|f| f.spec.name.as_str())
            .collect()
    }
}

/// Reads the SDK's version stamp from any custom section of the component,
/// including those of nested core modules (where `#[link_section]` puts it).
/// True if `bytes` look like the start of a WebAssembly binary whose end
/// has not been written yet: the header is there but a section runs past
/// the end. A file watcher uses it to wait for a writer to finish rather
/// than report a half-written component as broken.
pub fn is_truncated(bytes: &[u8]) -> bool {
    const MAGIC: &[u8] = b"\0asm";
    // A header alone (8 bytes) is a valid but empty binary: nobody means it.
    if bytes.len() <= 8 {
        return MAGIC.starts_with(bytes.get(..4.min(bytes.len())).unwrap_or_default());
    }
    if !bytes.starts_with(MAGIC) {
        return false;
    }
    // A cut exactly between two top-level sections parses as complete; the
    // compiler then refuses it and the watcher reports that.
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .find_map(Result::err)
        .is_some_and(|error| error.message().contains("unexpected end"))
}

/// Function bodies in all the component's core modules, counted from the
/// section headers without parsing any code. A component that does not
/// parse counts what it has so far; the compiler reports the rest.
fn function_count(bytes: &[u8]) -> u64 {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .map_while(Result::ok)
        .map(|payload| match payload {
            wasmparser::Payload::CodeSectionStart { count, .. } => u64::from(count),
            _ => 0,
        })
        .sum()
}

fn sdk_version(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() == SDK_VERSION_SECTION {
            return std::str::from_utf8(section.data())
                .ok()
                .map(|s| s.trim_end_matches('\0').trim().to_owned());
        }
    }
    None
}

/// 0.x versions are compatible within the same minor version, as in Cargo.
fn compatible(found: &str) -> bool {
    let major_minor = |v: &str| {
        let mut parts = v.split('.');
        (
            parts.next().map(str::to_owned),
            parts.next().map(str::to_owned),
        )
    };
    major_minor(found) == major_minor(WIT_VERSION)
}

/// The hex SHA-256 of a component's bytes: its [`Plugin::hash`] once loaded.
pub fn content_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compatible_within_a_minor_release() {
        assert!(compatible("0.1.0"));
        assert!(compatible("0.1.7"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("1.1.0"));
    }
}
