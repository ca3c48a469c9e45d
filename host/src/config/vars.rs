//! The variables configuration is read from: the process environment over
//! an optional `.env` file, each value remembering where it came from so
//! `mozaiks config` can say so.
//!
//! The `.env` file is read, never copied into the process environment
//! (that needs `unsafe` in Rust 2024 and would race with threads). A
//! variable set in the environment wins over the file, as with dotenv.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The process environment.
    Env,
    /// The `.env` file (its path).
    EnvFile(PathBuf),
    /// A file in the secrets directory.
    SecretsDir(PathBuf),
    /// A command-line flag.
    Flag,
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env => f.write_str("environment"),
            Source::EnvFile(path) => write!(f, "{}", path.display()),
            Source::SecretsDir(path) => write!(f, "{}", path.display()),
            Source::Flag => f.write_str("flag"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// Environment over `.env`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    env: BTreeMap<String, String>,
    file: BTreeMap<String, String>,
    file_path: Option<PathBuf>,
}

impl Vars {
    /// The process environment, over `env_file` when given, else over
    /// `./.env` if it exists. A file that was asked for by name must exist.
    pub fn from_process(env_file: Option<&Path>) -> Result<Self, Vec<ConfigError>> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let named = env_file
            .map(Path::to_owned)
            .or_else(|| env.get("MOZAIKS_ENV_FILE").map(PathBuf::from));
        let (path, required) = match named {
            Some(path) => (path, true),
            None => (PathBuf::from(".env"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
            Err(e) => {
                return Err(vec![ConfigError::new(
                    "MOZAIKS_ENV_FILE",
                    Some(path.display().to_string()),
                    format!("cannot read the env file: {e}"),
                )]);
            }
        };
        let mut vars = Self {
            env,
            ..Self::default()
        };
        if let Some(text) = text {
            vars.file = parse_env_file(&path, &text)?;
            vars.file_path = Some(path);
        }
        Ok(vars)
    }

    /// Variables from pairs (tests), as if from the environment.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            env: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Self::default()
        }
    }

    /// The value of `name` and where it came from; empty values count as
    /// unset.
    pub fn get(&self, name: &str) -> Option<(String, Source)> {
        let pick = |map: &BTreeMap<String, String>| {
            map.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(value) = pick(&self.env) {
            return Some((value, Source::Env));
        }
        let path = self.file_path.clone()?;
        pick(&self.file).map(|value| (value, Source::EnvFile(path)))
    }

    /// Every variable name starting with `prefix`, from both layers.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .keys()
            .chain(self.file.keys())
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Parses `KEY=VALUE` lines: `#` comments, blank lines, an optional
/// `export ` prefix, values in double quotes (with `\n`, `\"`, `\\`
/// escapes) or single quotes (literal), or bare (a ` #` starts a comment).
pub(crate) fn parse_env_file(
    path: &Path,
    text: &str,
) -> Result<BTreeMap<String, String>, Vec<ConfigError>> {
    let mut vars = BTreeMap::new();
    let mut errors = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let at = format!("{}:{}", path.display(), number + 1);
        let Some((key, value)) = line.split_once('=') else {
            errors.push(ConfigError::new(
                &at,
                None,
                "not a KEY=VALUE line".to_owned(),
            ));
            continue;
        };
        let key = key.trim();
        let valid_key = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            errors.push(ConfigError::new(
                &at,
                None,
                format!("`{key}` is not a variable name (letters, digits and _)"),
            ));
            continue;
        }
        match unquote(value.trim()) {
            Ok(value) => {
                vars.insert(key.to_owned(), value);
            }
            Err(problem) => errors.push(ConfigError::new(&at, None, problem)),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

fn unquote(value: &str) -> Result<String, String> {
    if let Some(rest) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("a double-quoted value is not closed".to_owned());
    }
    if let Some(rest) = value.strip_prefix('\'') {
        return rest
            .split_once('\'')
            .map(|(inner, _)| inner.to_owned())
            .ok_or_else(|| "a single-quoted value is not closed".to_owned());
    }
    let bare = value.split(" #").next().unwrap_or_default();
    Ok(bare.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_file_reads_comments_exports_and_quotes() {
        let text =
            "# comment\nexport A=1\nB=\"two words\\n\" # c\nC='lit\\n'\nD=bare # note\n\nE=\n";
        let vars = parse_env_file(Path::new(".env"), text).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words\n");
        assert_eq!(vars["C"], "lit\\n");
        assert_eq!(vars["D"], "bare");
        assert_eq!(vars["E"], "");
    }

    #[test]
    fn a_broken_env_file_names_every_bad_line() {
        let errors =
            parse_env_file(Path::new(".env"), "OK=1\nnonsense\n1X=2\nQ=\"open\n").unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].starts_with(".env:2"), "{}", text[0]);
        assert!(
            text[1].contains("`1X` is not a variable name"),
            "{}",
            text[1]
        );
        assert!(text[2].contains("not closed"), "{}", text[2]);
    }
}
