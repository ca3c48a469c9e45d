//! Where secrets come from. [`SecretProvider`] is the seam a vault
//! (Azure Key Vault, HashiCorp Vault, AWS Secrets Manager) plugs into;
//! the server ships two providers and asks them in order:
//!
//! 1. [`VarsProvider`]: the environment and `.env`.
//! 2. [`DirProvider`]: one file per secret in `MOZAIKS_SECRETS_DIR`
//!    (`/run/secrets/OPENAI_API_KEY`, as Docker and Kubernetes mount them),
//!    trailing newline removed.

use std::fmt;
use std::path::PathBuf;

use super::vars::{Source, Vars};

/// A secret's value; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub(crate) fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that uses it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} characters>", self.0.chars().count())
    }
}

/// Why a provider could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{provider}: cannot read secret `{name}`: {message}")]
pub(crate) struct SecretError {
    /// The provider.
    pub provider: String,
    /// The secret asked for.
    pub name: String,
    /// Why.
    pub message: String,
}

/// A source of secrets.
pub(crate) trait SecretProvider: Send + Sync + fmt::Debug {
    /// The secret `name` and where it came from, or `None` when this
    /// provider does not have it.
    fn secret(&self, name: &str) -> Result<Option<(Secret, Source)>, SecretError>;
}

/// Secrets from the environment and `.env`.
#[derive(Debug)]
pub(crate) struct VarsProvider<'a>(pub &'a Vars);

impl SecretProvider for VarsProvider<'_> {
    fn secret(&self, name: &str) -> Result<Option<(Secret, Source)>, SecretError> {
        Ok(self.0.get(name).map(|(v, s)| (Secret::new(v), s)))
    }
}

/// Secrets as files named after them in a directory.
#[derive(Debug)]
pub(crate) struct DirProvider {
    /// The directory.
    pub dir: PathBuf,
}

impl SecretProvider for DirProvider {
    fn secret(&self, name: &str) -> Result<Option<(Secret, Source)>, SecretError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let value = text.trim_end_matches(['\n', '\r']).trim().to_owned();
                Ok((!value.is_empty()).then(|| (Secret::new(value), Source::SecretsDir(path))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SecretError {
                provider: format!("secrets directory {}", self.dir.display()),
                name: name.to_owned(),
                message: e.to_string(),
            }),
        }
    }
}

/// Providers asked in order; the first that has a secret wins.
#[derive(Debug, Default)]
pub(crate) struct Chain<'a>(pub Vec<Box<dyn SecretProvider + 'a>>);

impl SecretProvider for Chain<'_> {
    fn secret(&self, name: &str) -> Result<Option<(Secret, Source)>, SecretError> {
        for provider in &self.0 {
            if let Some(found) = provider.secret(name)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_over_the_secrets_dir_and_files_lose_their_newline() {
        let dir = std::env::temp_dir().join(format!("mozaiks-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("OPENAI_API_KEY"), "sk-from-file\n").unwrap();
        std::fs::write(dir.join("MONGO_URI"), "mongodb://db\n").unwrap();
        let vars = Vars::from_pairs([("OPENAI_API_KEY", "sk-from-env")]);
        let chain = Chain(vec![
            Box::new(VarsProvider(&vars)),
            Box::new(DirProvider { dir: dir.clone() }),
        ]);
        let (key, source) = chain.secret("OPENAI_API_KEY").unwrap().unwrap();
        assert_eq!((key.expose(), source), ("sk-from-env", Source::Env));
        let (uri, source) = chain.secret("MONGO_URI").unwrap().unwrap();
        assert_eq!(uri.expose(), "mongodb://db");
        assert_eq!(source, Source::SecretsDir(dir.join("MONGO_URI")));
        assert!(chain.secret("MOZAIKS_API_KEYS").unwrap().is_none());
        assert_eq!(
            format!("{key:?} {key}"),
            "Secret(<redacted>) <redacted, 11 characters>"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
