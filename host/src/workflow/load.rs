//! Reading a workflow folder into its [`spec`](super::spec) types.
//!
//! Every file is read and parsed even when an earlier one failed, so one
//! pass reports every syntax and type error. A syntax error names the line
//! and column; a type error names the JSON path of the field.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use sha2::{Digest, Sha256};

use super::diagnostic::{Diagnostic, JsonPath};
use super::spec::{
    AgentsFile, ContextVariablesFile, HandoffsFile, HooksFile, OrchestratorFile,
    StructuredOutputsFile, ToolsFile,
};

/// `orchestrator.json` (required).
pub(crate) const ORCHESTRATOR_FILE: &str = "orchestrator.json";
/// `agents.json` (required).
pub(crate) const AGENTS_FILE: &str = "agents.json";
/// `handoffs.json` (optional: no handoff rules).
pub(crate) const HANDOFFS_FILE: &str = "handoffs.json";
/// `context_variables.json` (optional: no declared variables).
pub(crate) const CONTEXT_VARIABLES_FILE: &str = "context_variables.json";
/// `structured_outputs.json` (optional: no structured outputs).
pub(crate) const STRUCTURED_OUTPUTS_FILE: &str = "structured_outputs.json";
/// `tools.json` (optional: no tools).
pub(crate) const TOOLS_FILE: &str = "tools.json";
/// `hooks.json` (optional: no hooks).
pub(crate) const HOOKS_FILE: &str = "hooks.json";

/// Every file of a workflow folder (the fuzz targets mutate each).
#[cfg(test)]
pub(crate) const WORKFLOW_FILES: [&str; 7] = [
    ORCHESTRATOR_FILE,
    AGENTS_FILE,
    HANDOFFS_FILE,
    CONTEXT_VARIABLES_FILE,
    STRUCTURED_OUTPUTS_FILE,
    TOOLS_FILE,
    HOOKS_FILE,
];

/// The parsed files of one workflow folder. A file that is absent (and
/// optional) or failed to parse is `None`; the failure is in the
/// diagnostics returned beside it.
#[derive(Debug, Clone)]
pub(crate) struct WorkflowFiles {
    /// The folder.
    pub dir: PathBuf,
    /// `orchestrator.json`.
    pub orchestrator: Option<OrchestratorFile>,
    /// `agents.json`.
    pub agents: Option<AgentsFile>,
    /// `handoffs.json`.
    pub handoffs: Option<HandoffsFile>,
    /// `context_variables.json`.
    pub context_variables: Option<ContextVariablesFile>,
    /// `structured_outputs.json`.
    pub structured_outputs: Option<StructuredOutputsFile>,
    /// `tools.json`.
    pub tools: Option<ToolsFile>,
    /// `hooks.json`.
    pub hooks: Option<HooksFile>,
    /// Hex SHA-256 over the names and bytes of the files present.
    pub version: String,
}

impl WorkflowFiles {
    /// The path of `file` in this folder.
    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// Reads and parses every file of the folder `dir`. Returns the files and
/// every problem found; the files are only usable when the list is empty.
pub(crate) fn read_folder(dir: &Path) -> (WorkflowFiles, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut hasher = Sha256::new();
    if !dir.is_dir() {
        diagnostics.push(
            Diagnostic::new(dir, "", "not a directory")
                .with_help("give the path of a workflow folder such as workflows/PlanReview"),
        );
    }
    let mut read = |name: &str, required: bool| -> Option<Vec<u8>> {
        let path = dir.join(name);
        hasher.update(name.as_bytes());
        match std::fs::read(&path) {
            Ok(bytes) => {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
                Some(bytes)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                hasher.update(u64::MAX.to_le_bytes());
                if required && dir.is_dir() {
                    diagnostics.push(
                        Diagnostic::new(path, "", "required file is missing").with_help(format!(
                            "every workflow folder needs {ORCHESTRATOR_FILE} and {AGENTS_FILE}"
                        )),
                    );
                }
                None
            }
            Err(err) => {
                diagnostics.push(Diagnostic::new(path, "", format!("cannot read: {err}")));
                None
            }
        }
    };
    let orchestrator = read(ORCHESTRATOR_FILE, true);
    let agents = read(AGENTS_FILE, true);
    let handoffs = read(HANDOFFS_FILE, false);
    let context_variables = read(CONTEXT_VARIABLES_FILE, false);
    let structured_outputs = read(STRUCTURED_OUTPUTS_FILE, false);
    let tools = read(TOOLS_FILE, false);
    // Hashed only when present, so that adding this optional file to the
    // format did not change the version of every existing workflow.
    let hooks = if dir.join(HOOKS_FILE).exists() {
        read(HOOKS_FILE, false)
    } else {
        None
    };

    let d = &mut diagnostics;
    let files = WorkflowFiles {
        dir: dir.to_owned(),
        orchestrator: parse_present(dir, ORCHESTRATOR_FILE, orchestrator, d),
        agents: parse_present(dir, AGENTS_FILE, agents, d),
        handoffs: parse_present(dir, HANDOFFS_FILE, handoffs, d),
        context_variables: parse_present(dir, CONTEXT_VARIABLES_FILE, context_variables, d),
        structured_outputs: parse_present(dir, STRUCTURED_OUTPUTS_FILE, structured_outputs, d),
        tools: parse_present(dir, TOOLS_FILE, tools, d),
        hooks: parse_present(dir, HOOKS_FILE, hooks, d),
        version: hex(&hasher.finalize()),
    };
    (files, diagnostics)
}

fn parse_present<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
    bytes: Option<Vec<u8>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    parse(&dir.join(name), &bytes?)
        .map_err(|d| diagnostics.push(d))
        .ok()
}

/// Parses one file: syntax first (line and column), then the types (JSON
/// path of the field).
fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, Diagnostic> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| Diagnostic::new(path, "", message_of(&err)).at(err.line(), err.column()))?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        let json_path = to_json_path(err.path());
        Diagnostic::new(path, json_path, message_of(err.inner()))
    })
}

/// serde_json's message without the ` at line L column C` it appends.
fn message_of(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

fn to_json_path(path: &serde_path_to_error::Path) -> String {
    let mut out = JsonPath::root();
    for segment in path.iter() {
        out = match segment {
            Segment::Seq { index } => out.index(*index),
            Segment::Map { key } => out.key(key),
            Segment::Enum { variant } => out.key(variant),
            Segment::Unknown => out.key("?"),
        };
    }
    out.into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_syntax_errors_with_line_and_column() {
        let err = parse::<AgentsFile>(
            Path::new("a.json"),
            b"{\n  \"agents\": [\n    {\"name\": }\n",
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "a.json:3:14: expected value");
    }

    #[test]
    fn reports_type_errors_with_the_json_path() {
        let err = parse::<AgentsFile>(
            Path::new("a.json"),
            br#"{"agents": [{"name": "A", "system_message": "x"}, {"name": 7}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.json: $.agents[1].name: invalid type: integer `7`, expected a string"
        );
    }
}
