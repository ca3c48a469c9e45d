//! Checks and reads a `file` context source: a JSON or text file inside the
//! workflow folder, read at load so that its bytes are part of the
//! workflow's version (an edited file is a new version, hot-reloaded like
//! any other file of the folder).

use std::path::{Component, Path};

use serde_json::Value;

use super::{CONTEXT_VARIABLES_FILE, Validator};
use crate::workflow::diagnostic::JsonPath;
use crate::workflow::spec::{FileFormat, VariableType};

/// Largest file a `file` source reads: the largest value one context
/// variable may hold (the `context` interface's per-value limit, 1 MiB).
pub(crate) const MAX_FILE_SOURCE_BYTES: u64 = 1024 * 1024;

/// What a `file` source declares.
pub(super) struct FileSourceSpec<'a> {
    pub path: &'a str,
    pub format: Option<FileFormat>,
    pub default: &'a Option<Value>,
    pub required: bool,
    pub var_type: VariableType,
}

impl Validator<'_> {
    /// Reads the file of a `file` source; reports every problem at
    /// `at` (the source's JSON path). Returns the value (the default, or
    /// null, for an absent optional file).
    pub(super) fn file_source(&mut self, spec: &FileSourceSpec<'_>, at: &JsonPath) -> Value {
        let fallback = spec.default.clone().unwrap_or(Value::Null);
        let relative = Path::new(spec.path);
        let inside = !spec.path.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            self.error(
                CONTEXT_VARIABLES_FILE,
                at.key("path"),
                format!("\"{}\" is not a path inside the workflow folder", spec.path),
                Some("give a relative path without `..`, such as data/limits.json".to_owned()),
            );
            return fallback;
        }
        let format =
            spec.format
                .unwrap_or_else(|| match relative.extension().and_then(|e| e.to_str()) {
                    Some("json") => FileFormat::Json,
                    _ => FileFormat::Text,
                });
        if format == FileFormat::Text && spec.var_type != VariableType::String {
            self.error(
                CONTEXT_VARIABLES_FILE,
                at.key("format"),
                "a text file gives a string; declare the variable `\"type\": \"string\"` or read the file as `json`",
                None,
            );
            return fallback;
        }
        let dir = self.files.dir.clone();
        let full = dir.join(relative);
        // A link may point outside the folder: compare the real paths.
        let escapes = match (full.canonicalize(), dir.canonicalize()) {
            (Ok(real), Ok(root)) => !real.starts_with(root),
            _ => false,
        };
        if escapes {
            self.error(
                CONTEXT_VARIABLES_FILE,
                at.key("path"),
                format!("\"{}\" leads outside the workflow folder", spec.path),
                Some("copy the file into the folder instead of linking it".to_owned()),
            );
            return fallback;
        }
        let bytes = match read_bounded(&full, spec.path) {
            Ok(bytes) => bytes,
            Err(ReadProblem::Missing) => {
                self.data_files.push((spec.path.to_owned(), None));
                if spec.required {
                    self.error(
                        CONTEXT_VARIABLES_FILE,
                        at.key("path"),
                        format!("required file {} is missing", spec.path),
                        Some(
                            "create it, or set `required` to false and give a `default`".to_owned(),
                        ),
                    );
                }
                return fallback;
            }
            Err(ReadProblem::Other(message)) => {
                self.error(CONTEXT_VARIABLES_FILE, at.key("path"), message, None);
                return fallback;
            }
        };
        self.data_files
            .push((spec.path.to_owned(), Some(bytes.clone())));
        let value = match format {
            FileFormat::Text => match String::from_utf8(bytes) {
                Ok(text) => Value::String(text),
                Err(_) => {
                    self.error(
                        CONTEXT_VARIABLES_FILE,
                        at.key("path"),
                        format!("{} is not UTF-8 text", spec.path),
                        None,
                    );
                    return fallback;
                }
            },
            FileFormat::Json => match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => value,
                Err(err) => {
                    self.error(
                        CONTEXT_VARIABLES_FILE,
                        at.key("path"),
                        format!(
                            "{}:{}:{}: {}",
                            spec.path,
                            err.line(),
                            err.column(),
                            message_of(&err)
                        ),
                        None,
                    );
                    return fallback;
                }
            },
        };
        if !value.is_null() && !super::context::has_type(&value, spec.var_type) {
            self.error(
                CONTEXT_VARIABLES_FILE,
                at.key("path"),
                format!(
                    "{} holds {}, not a value of type {}",
                    spec.path,
                    super::context::json_type_name(&value),
                    super::context::type_name(spec.var_type)
                ),
                None,
            );
        }
        value
    }
}

enum ReadProblem {
    Missing,
    Other(String),
}

/// serde_json's message without the position it appends.
fn message_of(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

fn read_bounded(path: &Path, shown: &str) -> Result<Vec<u8>, ReadProblem> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(ReadProblem::Missing),
        Err(err) => return Err(ReadProblem::Other(format!("cannot read {shown}: {err}"))),
    };
    if !metadata.is_file() {
        return Err(ReadProblem::Other(format!("{shown} is not a file")));
    }
    if metadata.len() > MAX_FILE_SOURCE_BYTES {
        return Err(ReadProblem::Other(format!(
            "{shown} has {} bytes; a file source holds at most {MAX_FILE_SOURCE_BYTES}",
            metadata.len()
        )));
    }
    std::fs::read(path).map_err(|err| ReadProblem::Other(format!("cannot read {shown}: {err}")))
}

/// The workflow's version: the folder files' hash, then, when `file`
/// sources read files, a hash over it and each file's path and bytes (an
/// absent file counts too), so that editing a data file makes a new version.
pub(super) fn version_with_data_files(
    files_version: &str,
    data_files: &[(String, Option<Vec<u8>>)],
) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    if data_files.is_empty() {
        return files_version.to_owned();
    }
    let mut hasher = Sha256::new();
    hasher.update(files_version.as_bytes());
    for (path, bytes) in data_files {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        match bytes {
            Some(bytes) => {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(bytes);
            }
            None => hasher.update(u64::MAX.to_le_bytes()),
        }
    }
    hasher.finalize().iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
