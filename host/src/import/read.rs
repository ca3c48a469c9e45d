//! Reading a MozaiksAI workflow folder: each section file as YAML
//! (`<section>.yaml` or `.yml`, the current format) or JSON
//! (`<section>.json`, before December 2025), into one ordered value per
//! file.
//!
//! Unlike MozaiksAI, which reads a file it cannot parse as an empty
//! section, a syntax error stops the import, naming the file, the line and
//! the column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// The section files MozaiksAI reads, by stem.
pub(crate) const SECTIONS: [&str; 8] = [
    "orchestrator",
    "agents",
    "handoffs",
    "context_variables",
    "structured_outputs",
    "tools",
    "hooks",
    "ui_config",
];

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One parsed section file.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// Its file name, e.g. `agents.yaml`: how the report names it.
    pub name: String,
    /// Its content, keys in file order.
    pub value: Value,
}

/// A MozaiksAI workflow folder, read.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The folder.
    pub dir: PathBuf,
    /// The section files present, by stem (`agents`, ...).
    pub files: BTreeMap<&'static str, SourceFile>,
    /// Section files not read because another file of the same section
    /// was (`agents.json` beside `agents.yaml`).
    pub shadowed: Vec<String>,
}

impl Source {
    /// The section file `stem`, if present.
    pub(crate) fn file(&self, stem: &str) -> Option<&SourceFile> {
        self.files.get(stem)
    }
}

/// A section file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ReadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column of a syntax error.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads every section file of `dir`. Returns every problem when any file
/// cannot be read or parsed, or when `dir` has no `orchestrator` or
/// `agents` file.
pub(crate) fn read_source(dir: &Path) -> Result<Source, Vec<ReadError>> {
    let mut errors = Vec::new();
    let mut files = BTreeMap::new();
    let mut shadowed = Vec::new();
    if !dir.is_dir() {
        return Err(vec![ReadError {
            file: dir.to_owned(),
            position: None,
            message: "not a directory: give a MozaiksAI workflow folder (workflows/<Name>)"
                .to_owned(),
        }]);
    }
    for stem in SECTIONS {
        let present: Vec<String> = EXTENSIONS
            .iter()
            .map(|ext| format!("{stem}.{ext}"))
            .filter(|name| dir.join(name).is_file())
            .collect();
        let Some(name) = present.first() else {
            continue;
        };
        shadowed.extend(present.iter().skip(1).cloned());
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&path, &text) {
                Ok(value) => {
                    files.insert(
                        stem,
                        SourceFile {
                            name: name.clone(),
                            value,
                        },
                    );
                }
                Err(error) => errors.push(error),
            },
            Err(error) => errors.push(ReadError {
                file: path,
                position: None,
                message: format!("cannot read: {error}"),
            }),
        }
    }
    for required in ["orchestrator", "agents"] {
        if !files.contains_key(required) && !errors.iter().any(|e| is_section(e, required)) {
            errors.push(ReadError {
                file: dir.join(format!("{required}.yaml")),
                position: None,
                message: format!(
                    "missing: a MozaiksAI workflow has {required}.yaml (or {required}.json)"
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(Source {
            dir: dir.to_owned(),
            files,
            shadowed,
        })
    } else {
        Err(errors)
    }
}

fn is_section(error: &ReadError, stem: &str) -> bool {
    error
        .file
        .file_stem()
        .is_some_and(|s| s.to_string_lossy() == stem)
}

/// Parses one file by its extension: JSON (kept in key order), else YAML.
/// A leading byte-order mark is skipped, as MozaiksAI does.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Value, ReadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let is_json = path.extension().is_some_and(|e| e == "json");
    if is_json {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = serde::Deserialize::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
        value.map_err(|err| ReadError {
            file: path.to_owned(),
            position: Some((err.line(), err.column())),
            message: json_message(&err),
        })
    } else {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|err| ReadError {
            file: path.to_owned(),
            position: err.location().map(|l| (l.line(), l.column())),
            message: yaml_message(&err),
        })?;
        Ok(value)
    }
}

/// serde_json's message without the ` at line L column C` it appends.
fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// serde_yaml_ng's message without the ` at line L column C` it appends.
fn yaml_message(err: &serde_yaml_ng::Error) -> String {
    let text = err.to_string();
    match err.location() {
        Some(l) => {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_syntax_errors_name_line_and_column() {
        let err = parse(
            Path::new("w/agents.yaml"),
            "agents:\n  - name: A\n   bad: [\n",
        )
        .unwrap_err();
        assert_eq!(err.file, Path::new("w/agents.yaml"));
        assert!(err.position.is_some(), "{err}");
        assert!(err.to_string().starts_with("w/agents.yaml:"), "{err}");
    }

    #[test]
    fn json_keeps_key_order_and_names_line_and_column() {
        let value = parse(Path::new("a.json"), r#"{"b": 1, "a": 2}"#).unwrap();
        let keys: Vec<_> = value
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, ["b", "a"]);
        let err = parse(Path::new("a.json"), "{\n  \"a\": }").unwrap_err();
        assert_eq!(err.to_string(), "a.json:2:8: expected value");
    }

    #[test]
    fn each_section_is_read_from_yaml_then_yml_then_json() {
        let dir = std::env::temp_dir().join(format!("mozaiks-import-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("orchestrator.yml"), "workflow_name: A\n").unwrap();
        std::fs::write(dir.join("orchestrator.json"), "{}").unwrap();
        std::fs::write(dir.join("agents.json"), r#"{"agents": []}"#).unwrap();
        std::fs::write(dir.join("tools.yaml"), "tools: []\n").unwrap();
        std::fs::write(dir.join("tools.yml"), "tools: []\n").unwrap();
        let source = read_source(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            source.file("orchestrator").unwrap().name,
            "orchestrator.yml"
        );
        assert_eq!(source.file("agents").unwrap().name, "agents.json");
        assert_eq!(source.file("tools").unwrap().name, "tools.yaml");
        assert_eq!(source.shadowed, ["orchestrator.json", "tools.yml"]);
    }

    #[test]
    fn a_folder_without_agents_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("mozaiks-import-noagents-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("orchestrator.yaml"), "workflow_name: A\n").unwrap();
        let errors = read_source(&dir).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().ends_with(
                "agents.yaml: missing: a MozaiksAI workflow has agents.yaml (or agents.json)"
            ),
            "{}",
            errors[0]
        );
    }
}
