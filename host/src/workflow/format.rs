//! The two spellings of a workflow file: `<name>.json` and `<name>.yaml`
//! (or `.yml`), with the same keys. Which one a folder holds, and reading
//! either into one JSON value with the position of a syntax error.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::diagnostic::Diagnostic;

/// How a workflow file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `<name>.json`.
    Json,
    /// `<name>.yaml` or `<name>.yml`.
    Yaml,
}

/// The extensions a workflow file may have, in the order a folder is
/// searched, with the format each means.
pub(crate) const EXTENSIONS: [(&str, Format); 3] = [
    ("json", Format::Json),
    ("yaml", Format::Yaml),
    ("yml", Format::Yaml),
];

/// The file a folder holds for one logical workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    /// The file name found (`agents.yaml`).
    pub name: String,
    /// How it is written.
    pub format: Format,
}

/// The stem of a logical file name: `agents` for `agents.json`.
pub(crate) fn stem(logical: &str) -> &str {
    logical.strip_suffix(".json").unwrap_or(logical)
}

/// Every spelling of the logical file `logical` (`agents.json`):
/// `agents.json`, `agents.yaml`, `agents.yml`.
pub(crate) fn spellings(logical: &str) -> impl Iterator<Item = (String, Format)> + '_ {
    EXTENSIONS
        .iter()
        .map(move |(ext, format)| (format!("{}.{ext}", stem(logical)), *format))
}

/// Finds which spelling of `logical` the folder `dir` holds. `Ok(None)`
/// when none; an error naming them when there are several (which one is
/// meant cannot be guessed).
pub(crate) fn locate(dir: &Path, logical: &str) -> Result<Option<Located>, Box<Diagnostic>> {
    let present: Vec<Located> = spellings(logical)
        .filter(|(name, _)| dir.join(name).is_file())
        .map(|(name, format)| Located { name, format })
        .collect();
    match present.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        [first, ..] => {
            let names: Vec<&str> = present.iter().map(|l| l.name.as_str()).collect();
            Err(Box::new(Diagnostic::new(
                dir.join(&first.name),
                "",
                format!("both {} are present", names.join(" and ")),
            )
            .with_help(format!(
                "keep one of them: a workflow file is either JSON or YAML, with the same keys; delete {}",
                names.get(1..).unwrap_or_default().join(" and ")
            ))))
        }
    }
}

/// True if `dir` holds the logical file `logical` in any spelling.
pub(crate) fn holds(dir: &Path, logical: &str) -> bool {
    spellings(logical).any(|(name, _)| dir.join(name).is_file())
}

/// The format a file name's extension means, if it is one of a workflow
/// file's.
pub(crate) fn format_of(file_name: &str) -> Option<Format> {
    let (_, ext) = file_name.rsplit_once('.')?;
    EXTENSIONS
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, format)| *format)
}

/// Reads `bytes` (the file `path`) as one JSON value. A syntax error names
/// the line and column.
pub(crate) fn to_value(
    path: &Path,
    format: Format,
    bytes: &[u8],
) -> Result<serde_json::Value, Box<Diagnostic>> {
    match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|err| {
            Box::new(Diagnostic::new(path, "", json_message(&err)).at(err.line(), err.column()))
        }),
        Format::Yaml => {
            serde_yaml_ng::from_slice(bytes).map_err(|err| Box::new(yaml_diagnostic(path, &err)))
        }
    }
}

/// Deserializes `bytes` of a YAML file straight into `T`, to learn the line
/// and column of a type error (the JSON value it was converted to has no
/// positions). Returns the error's path and position, if it fails.
pub(crate) fn yaml_type_error_position<T: DeserializeOwned>(
    bytes: &[u8],
) -> Option<(serde_path_to_error::Path, (usize, usize))> {
    let deserializer = serde_yaml_ng::Deserializer::from_slice(bytes);
    let err = serde_path_to_error::deserialize::<_, T>(deserializer).err()?;
    let location = err.inner().location()?;
    Some((err.path().clone(), (location.line(), location.column())))
}

/// A YAML error as a diagnostic: its message and, when it has one, its
/// line and column.
fn yaml_diagnostic(path: &Path, err: &serde_yaml_ng::Error) -> Diagnostic {
    let d = Diagnostic::new(path, "", yaml_message(err));
    match err.location() {
        Some(location) => d.at(location.line(), location.column()),
        None => d,
    }
}

/// serde_yaml_ng's message without the ` at line L column C` it appends
/// (the diagnostic carries the position).
pub(crate) fn yaml_message(err: &serde_yaml_ng::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(at) => {
            let rest = text.get(at..).unwrap_or_default();
            // libyaml adds the context after the position: keep it.
            let context = rest.split_once(", ").map(|(_, c)| c);
            let head = text.get(..at).unwrap_or_default();
            match context {
                Some(context) => format!("{head}, {}", strip_positions(context)),
                None => head.to_owned(),
            }
        }
        None => text,
    }
}

fn strip_positions(text: &str) -> String {
    match text.find(" at line ") {
        Some(at) => text.get(..at).unwrap_or_default().to_owned(),
        None => text.to_owned(),
    }
}

/// serde_json's message without the ` at line L column C` it appends.
pub(crate) fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// The path of the spelling of `logical` present in `dir`, or the JSON
/// spelling when none is (for messages about a missing file).
pub(crate) fn present_or_json(dir: &Path, logical: &str) -> PathBuf {
    spellings(logical)
        .map(|(name, _)| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join(logical))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_syntax_errors_have_line_and_column() {
        let err = to_value(
            Path::new("a.yaml"),
            Format::Yaml,
            b"agents:\n  - name: A\n   bad: [\n",
        )
        .unwrap_err();
        assert_eq!(err.file, Path::new("a.yaml"));
        assert!(err.position.is_some(), "{err}");
        assert!(!err.message.contains(" at line "), "{err}");
    }

    #[test]
    fn yaml_and_json_give_the_same_value() {
        let yaml = to_value(
            Path::new("a.yaml"),
            Format::Yaml,
            b"agents:\n  - name: A\n    system_message: hi\n    max_consecutive_auto_reply: 3\n",
        )
        .unwrap();
        let json = to_value(
            Path::new("a.json"),
            Format::Json,
            br#"{"agents": [{"name": "A", "system_message": "hi", "max_consecutive_auto_reply": 3}]}"#,
        )
        .unwrap();
        assert_eq!(yaml, json);
    }

    #[test]
    fn two_spellings_of_one_file_are_an_error_naming_both() {
        let dir = std::env::temp_dir().join(format!("mozaiks-format-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("agents.json"), "{}").unwrap();
        std::fs::write(dir.join("agents.yml"), "{}").unwrap();
        let err = locate(&dir, "agents.json").unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.to_string()
                .contains("both agents.json and agents.yml are present"),
            "{err}"
        );
    }
}
