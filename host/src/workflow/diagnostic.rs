//! One problem found in a workflow folder, with where it is and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a workflow file: which file, where in it, what is wrong and,
/// when we can tell, what to do about it.
///
/// Displayed as
///
/// ```text
/// workflows/Demo/handoffs.json: $.handoff_rules[2].target_agent: unknown agent "Reviwer" (help: agents are Planner, Reviewer)
/// workflows/Demo/agents.json:4:7: expected `,` or `}`
/// ```
///
/// (syntax errors carry a line and column instead of a JSON path). A
/// [`Severity::Warning`] is displayed with a `warning: ` prefix; it never
/// stops a workflow from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// An error (the workflow does not load) or a warning (it does).
    pub severity: Severity,
    /// The file, as the workflow folder path joined with the file name.
    pub file: PathBuf,
    /// 1-based line and column, for errors found while reading the JSON.
    pub position: Option<(usize, usize)>,
    /// JSON path of the offending value (`$.agents[0].name`); empty when the
    /// problem concerns the whole file.
    pub json_path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem at `json_path` in `file`.
    pub fn new(
        file: impl Into<PathBuf>,
        json_path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            file: file.into(),
            position: None,
            json_path: json_path.into(),
            message: message.into(),
            help: None,
        }
    }

    /// A warning at `json_path` in `file`: something a porter should look
    /// at that does not stop the workflow from loading.
    pub fn warning(
        file: impl Into<PathBuf>,
        json_path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::new(file, json_path, message)
        }
    }

    /// True for an error, false for a warning.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Adds a help line.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a line and column.
    #[must_use]
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.position = Some((line, column));
        self
    }

    /// The display text with `dir/` removed from the front of the file path,
    /// so that output does not depend on where the folder was read from.
    pub fn display_relative_to(&self, dir: &Path) -> String {
        let file = self.file.strip_prefix(dir).unwrap_or(&self.file);
        Self {
            file: file.to_owned(),
            ..self.clone()
        }
        .to_string()
    }
}

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The workflow does not load.
    Error,
    /// The workflow loads; the author should still look (a file nothing
    /// reads, a handoff rule that can never fire).
    Warning,
}

impl Severity {
    /// `error` or `warning`, as `mozaiks validate --json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if !self.json_path.is_empty() {
            write!(f, ": {}", self.json_path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// Builds JSON paths like `$.handoff_rules[2].condition` without string
/// juggling at every call site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    /// The root, `$`.
    pub fn root() -> Self {
        Self("$".to_owned())
    }

    /// `self.key`.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        let plain = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if plain {
            Self(format!("{}.{key}", self.0))
        } else {
            Self(format!("{}[{key:?}]", self.0))
        }
    }

    /// `self[index]`.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<JsonPath> for String {
    fn from(path: JsonPath) -> Self {
        path.0
    }
}

/// Joins names for a help line: `Planner, Reviewer`, or `none` when empty.
pub(crate) fn list<I, S>(names: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let joined = names
        .into_iter()
        .map(|n| n.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if joined.is_empty() {
        "none".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_path_message_and_help() {
        let d = Diagnostic::new(
            "workflows/Demo/handoffs.json",
            JsonPath::root()
                .key("handoff_rules")
                .index(2)
                .key("target_agent"),
            "unknown agent \"Reviwer\"",
        )
        .with_help("agents are Planner, Reviewer");
        assert_eq!(
            d.to_string(),
            "workflows/Demo/handoffs.json: $.handoff_rules[2].target_agent: unknown agent \"Reviwer\" (help: agents are Planner, Reviewer)"
        );
    }

    #[test]
    fn displays_line_and_column_for_syntax_errors() {
        let d = Diagnostic::new("w/agents.json", "", "expected `,` or `}`").at(4, 7);
        assert_eq!(d.to_string(), "w/agents.json:4:7: expected `,` or `}`");
    }

    #[test]
    fn displays_warnings_with_a_prefix() {
        let d = Diagnostic::warning("w/hooks.json", "", "nothing reads this file");
        assert!(!d.is_error());
        assert_eq!(
            d.to_string(),
            "warning: w/hooks.json: nothing reads this file"
        );
    }

    #[test]
    fn quotes_keys_that_are_not_identifiers() {
        assert_eq!(
            JsonPath::root().key("a b").key("c").to_string(),
            "$[\"a b\"].c"
        );
    }
}
