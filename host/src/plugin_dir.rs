//! Finding a plugin on disk from what a user typed: a plugin folder, a
//! `.wasm` file, or a plugin id under the plugins directory.

use std::path::{Path, PathBuf};

use mozaiks_plugin_host::{LoadError, MANIFEST_FILE, Manifest, Plugin, PluginEngine};

/// Where a plugin's manifest and component are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLocation {
    /// The manifest (it may not exist for a bare `.wasm`).
    pub manifest_path: PathBuf,
    /// The component.
    pub wasm_path: PathBuf,
}

/// Why a plugin could not be found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// Nothing matches what was typed.
    #[error(
        "no plugin `{0}`: give a plugin folder (with plugin.toml), a .wasm file, or the id of a folder under the plugins directory"
    )]
    NotFound(String),
    /// The manifest exists but the component has not been built.
    #[error("{} does not exist; build the plugin first: sdk/build-plugin {}", wasm.display(), dir.display())]
    NotBuilt {
        /// The missing component.
        wasm: PathBuf,
        /// The plugin folder.
        dir: PathBuf,
    },
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Resolves `spec` (folder, `.wasm` file or id under `plugins_dir`).
pub fn locate(spec: &str, plugins_dir: &Path) -> Result<PluginLocation, FindError> {
    let path = Path::new(spec);
    if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        return Ok(PluginLocation {
            manifest_path: dir.join(MANIFEST_FILE),
            wasm_path: path.to_owned(),
        });
    }
    let dir = if path.join(MANIFEST_FILE).is_file() {
        path.to_owned()
    } else if plugins_dir.join(spec).join(MANIFEST_FILE).is_file() {
        plugins_dir.join(spec)
    } else {
        return Err(FindError::NotFound(spec.to_owned()));
    };
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = Manifest::read(&manifest_path).map_err(LoadError::from)?;
    let wasm_path = dir.join(format!("{}.wasm", manifest.id));
    if !wasm_path.is_file() {
        return Err(FindError::NotBuilt {
            wasm: wasm_path,
            dir,
        });
    }
    Ok(PluginLocation {
        manifest_path,
        wasm_path,
    })
}

/// Loads the plugin at `location`. A `.wasm` without a manifest beside it
/// gets the default, strict manifest with the file stem as id.
pub async fn load(engine: &PluginEngine, location: &PluginLocation) -> Result<Plugin, FindError> {
    let manifest = manifest_of(location)?;
    Ok(engine
        .load(
            manifest,
            location.manifest_path.clone(),
            &location.wasm_path,
        )
        .await?)
}

/// The manifest of a located plugin: its `plugin.toml`, or for a bare
/// `.wasm` a manifest named after the file with nothing granted.
pub fn manifest_of(location: &PluginLocation) -> Result<Manifest, FindError> {
    if location.manifest_path.is_file() {
        return Ok(Manifest::read(&location.manifest_path).map_err(LoadError::from)?);
    }
    let stem = location
        .wasm_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    Ok(Manifest::new(stem.to_ascii_lowercase()))
}

/// The plugin folders (folders with a manifest) directly under
/// `plugins_dir`, sorted.
pub fn folders(plugins_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(plugins_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join(MANIFEST_FILE).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Loads the plugin folder `dir` of `plugins_dir`.
pub async fn load_folder(
    engine: &PluginEngine,
    dir: &Path,
    plugins_dir: &Path,
) -> Result<Plugin, FindError> {
    let location = locate(&dir.to_string_lossy(), plugins_dir)?;
    load(engine, &location).await
}

/// Loads every plugin folder (a folder with a manifest) directly under
/// `plugins_dir`, each with its folder. Folders that fail to load are
/// returned beside the loaded plugins with their error, so one broken
/// plugin does not hide the others.
pub async fn load_all(
    engine: &PluginEngine,
    plugins_dir: &Path,
) -> std::io::Result<(Vec<(PathBuf, Plugin)>, Vec<(PathBuf, FindError)>)> {
    // All at once: a plugin that is slow to compile or describe itself
    // delays no other (each is bounded by the host's loading budget).
    let loads = folders(plugins_dir)?.into_iter().map(|dir| async move {
        let loaded = load_folder(engine, &dir, plugins_dir).await;
        (dir, loaded)
    });
    let mut plugins = Vec::new();
    let mut failures = Vec::new();
    for (dir, loaded) in futures_util::future::join_all(loads).await {
        match loaded {
            Ok(plugin) => plugins.push((dir, plugin)),
            Err(err) => failures.push((dir, err)),
        }
    }
    Ok((plugins, failures))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plugin folder made from the `rendezvous` test component: `role`
    /// is `wait` (read-only grant of `meeting` at `/wait`) or `signal`
    /// (read-write grant at `/signal`).
    pub(crate) fn rendezvous(plugins: &Path, id: &str, role: &str, meeting: &Path) -> PathBuf {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let wasm = repo.join("tests/components/rendezvous/rendezvous.wasm");
        assert!(
            wasm.is_file(),
            "build the test components with scripts/build-plugins"
        );
        let dir = plugins.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&wasm, dir.join(format!("{id}.wasm"))).unwrap();
        let mode = if role == "signal" {
            "read-write"
        } else {
            "read-only"
        };
        std::fs::write(
            dir.join(MANIFEST_FILE),
            format!(
                "id = \"{id}\"\nversion = \"1.0.0\"\n[[capabilities.fs]]\nhost = \"{}\"\nguest = \"/{role}\"\nmode = \"{mode}\"\n",
                meeting.display()
            ),
        )
        .unwrap();
        dir
    }

    /// The waiter sorts first: loaded one after the other, it would spend
    /// its whole loading budget waiting for a signaller not yet started.
    #[tokio::test]
    async fn plugins_load_independently_of_each_other() {
        let root = std::env::temp_dir().join(format!("mozaiks-load-all-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (plugins, meeting) = (root.join("plugins"), root.join("meeting"));
        std::fs::create_dir_all(&meeting).unwrap();
        rendezvous(&plugins, "a-waiter", "wait", &meeting);
        rendezvous(&plugins, "b-signaller", "signal", &meeting);
        let engine = PluginEngine::new(mozaiks_plugin_host::EngineConfig::default()).unwrap();
        let (loaded, failed) = load_all(&engine, &plugins).await.unwrap();
        let failed: Vec<String> = failed.iter().map(|(_, e)| e.to_string()).collect();
        assert!(failed.is_empty(), "{failed:?}");
        let ids: Vec<&str> = loaded.iter().map(|(_, p)| p.id()).collect();
        assert_eq!(ids, ["a-waiter", "b-signaller"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
