//! Plugin secrets on the server: one file per secret under the secrets
//! directory, `<MOZAIKS_SECRETS_DIR>/plugins/<plugin id>/<NAME>`, as Docker
//! and Kubernetes mount secrets. Read at each `secrets.get`, so a changed
//! file is seen by the next call.

use std::path::{Path, PathBuf};

use mozaiks_plugin_host::{Manifest, SecretStore};

/// The folder of `plugin`'s secrets under `secrets_dir`.
pub(crate) fn plugin_dir(secrets_dir: &Path, plugin: &str) -> PathBuf {
    secrets_dir.join("plugins").join(plugin)
}

/// Plugin secrets as files under a secrets directory.
#[derive(Debug, Clone)]
pub(crate) struct DirSecrets {
    dir: PathBuf,
}

impl DirSecrets {
    /// Secrets under `secrets_dir` (`MOZAIKS_SECRETS_DIR`).
    pub(crate) fn new(secrets_dir: &Path) -> Self {
        Self {
            dir: secrets_dir.to_owned(),
        }
    }
}

impl SecretStore for DirSecrets {
    fn secret(&self, plugin: &str, name: &str) -> Option<String> {
        // Names are checked when the manifest loads (letters, digits, `_`),
        // and plugin ids are too: neither can leave the folder.
        let path = plugin_dir(&self.dir, plugin).join(name);
        let text = std::fs::read_to_string(path).ok()?;
        let value = text.trim_end_matches(['\n', '\r']).to_owned();
        (!value.is_empty()).then_some(value)
    }
}

/// The required secrets `manifest` declares that have no value under
/// `secrets_dir` (or all of them when there is no secrets directory).
pub(crate) fn missing_required(manifest: &Manifest, secrets_dir: Option<&Path>) -> Vec<String> {
    let store = secrets_dir.map(DirSecrets::new);
    manifest
        .secrets
        .iter()
        .filter(|(_, decl)| decl.required)
        .filter(|(name, _)| {
            store
                .as_ref()
                .and_then(|s| s.secret(&manifest.id, name))
                .is_none()
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_reads_its_own_folder_and_missing_required_ones_are_listed() {
        let dir =
            std::env::temp_dir().join(format!("mozaiks-plugin-secrets-{}", std::process::id()));
        let own = plugin_dir(&dir, "weather");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("TOKEN"), "abc\n").unwrap();
        std::fs::create_dir_all(plugin_dir(&dir, "other")).unwrap();
        std::fs::write(plugin_dir(&dir, "other").join("KEY"), "x").unwrap();
        let store = DirSecrets::new(&dir);
        assert_eq!(store.secret("weather", "TOKEN").as_deref(), Some("abc"));
        assert_eq!(
            store.secret("weather", "KEY"),
            None,
            "another plugin's secret"
        );
        let mut manifest = Manifest::new("weather");
        for (name, required) in [("TOKEN", true), ("KEY", true), ("REGION", false)] {
            manifest.secrets.insert(
                name.to_owned(),
                mozaiks_plugin_host::SecretDecl {
                    required,
                    description: String::new(),
                },
            );
        }
        assert_eq!(missing_required(&manifest, Some(&dir)), ["KEY"]);
        assert_eq!(missing_required(&manifest, None), ["KEY", "TOKEN"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
