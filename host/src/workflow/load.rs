//! Reading a workflow folder into its [`spec`](super::spec) types.
//!
//! Each file may be written as JSON (`agents.json`) or YAML (`agents.yaml`,
//! `agents.yml`) with the same keys ([`format`](super::format)). Every file
//! is read and parsed even when an earlier one failed, so one pass reports
//! every syntax and type error. A syntax error names the line and column; a
//! type error names the JSON path of the field (and, in YAML, its line and
//! column); every unknown key of a file is reported, not only the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::deserialize::{deserialize_reporting_every_unknown_key, to_json_path};
use super::diagnostic::Diagnostic;
use super::format::{self, Format};
use super::spec::{
    AgentsFile, ContextVariablesFile, HandoffsFile, HooksFile, OrchestratorFile,
    StructuredOutputsFile, ToolsFile, UiConfigFile,
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
/// `ui_config.json` (optional: every agent's messages are chat bubbles).
pub(crate) const UI_CONFIG_FILE: &str = "ui_config.json";

/// Every file of a workflow folder the loader reads, by its JSON name (each
/// may also be `.yaml`/`.yml`). The one list: the fuzz targets mutate each,
/// and [`unread`](super::unread) warns about any other file in the folder.
/// A new workflow file is added here and read in [`read_folder`].
pub(crate) const WORKFLOW_FILES: [&str; 8] = [
    ORCHESTRATOR_FILE,
    AGENTS_FILE,
    HANDOFFS_FILE,
    CONTEXT_VARIABLES_FILE,
    STRUCTURED_OUTPUTS_FILE,
    TOOLS_FILE,
    HOOKS_FILE,
    UI_CONFIG_FILE,
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
    /// `ui_config.json`.
    pub ui_config: Option<UiConfigFile>,
    /// Hex SHA-256 over the names and bytes of the files present.
    pub version: String,
    /// JSON name → the name of the file present, when it is written as
    /// YAML (`agents.json` → `agents.yaml`), so diagnostics name the file
    /// the author edits.
    pub spelled: BTreeMap<&'static str, String>,
    /// Problems that do not stop the workflow from loading (files nothing
    /// reads).
    pub warnings: Vec<Diagnostic>,
}

impl WorkflowFiles {
    /// The path of `file` (a JSON name such as [`AGENTS_FILE`]) in this
    /// folder, as the author wrote it (`agents.yaml` for a YAML file).
    pub(crate) fn path(&self, file: &str) -> PathBuf {
        match self.spelled.get(file) {
            Some(name) => self.dir.join(name),
            None => self.dir.join(file),
        }
    }
}

/// One file found in the folder.
#[derive(Debug)]
struct Source {
    /// Its name (`agents.yaml`).
    name: String,
    format: Format,
    bytes: Vec<u8>,
}

/// Reads and parses every file of the folder `dir`. Returns the files and
/// every problem found; the files are only usable when the list is empty.
pub(crate) fn read_folder(dir: &Path) -> (WorkflowFiles, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut hasher = Sha256::new();
    let mut spelled = BTreeMap::new();
    if !dir.is_dir() {
        diagnostics.push(
            Diagnostic::new(dir, "", "not a directory")
                .with_help("give the path of a workflow folder such as workflows/PlanReview"),
        );
    }
    let mut read = |name: &'static str, required: bool| -> Option<Source> {
        let located = match format::locate(dir, name) {
            Ok(located) => located,
            Err(both) => {
                diagnostics.push(*both);
                return None;
            }
        };
        let Some(located) = located else {
            hasher.update(name.as_bytes());
            hasher.update(u64::MAX.to_le_bytes());
            if required && dir.is_dir() {
                diagnostics.push(
                    Diagnostic::new(dir.join(name), "", "required file is missing").with_help(
                        format!(
                            "every workflow folder needs {ORCHESTRATOR_FILE} and {AGENTS_FILE} (or their .yaml spellings)"
                        ),
                    ),
                );
            }
            return None;
        };
        let path = dir.join(&located.name);
        // The name as found: renaming agents.json to agents.yaml is a change.
        hasher.update(located.name.as_bytes());
        if located.format == Format::Yaml {
            spelled.insert(name, located.name.clone());
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
                Some(Source {
                    name: located.name,
                    format: located.format,
                    bytes,
                })
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
    let hooks = if !matches!(format::locate(dir, HOOKS_FILE), Ok(None)) {
        read(HOOKS_FILE, false)
    } else {
        None
    };
    let ui_config = if !matches!(format::locate(dir, UI_CONFIG_FILE), Ok(None)) {
        read(UI_CONFIG_FILE, false)
    } else {
        None
    };

    let d = &mut diagnostics;
    let mut files = WorkflowFiles {
        dir: dir.to_owned(),
        orchestrator: parse_present(dir, ORCHESTRATOR_FILE, orchestrator, d),
        agents: parse_present(dir, AGENTS_FILE, agents, d),
        handoffs: parse_present(dir, HANDOFFS_FILE, handoffs, d),
        context_variables: parse_present(dir, CONTEXT_VARIABLES_FILE, context_variables, d),
        structured_outputs: parse_present(dir, STRUCTURED_OUTPUTS_FILE, structured_outputs, d),
        tools: parse_present(dir, TOOLS_FILE, tools, d),
        hooks: parse_present(dir, HOOKS_FILE, hooks, d),
        ui_config: parse_present(dir, UI_CONFIG_FILE, ui_config, d),
        version: hex(&hasher.finalize()),
        spelled,
        warnings: Vec::new(),
    };
    if dir.is_dir() {
        files.warnings = super::unread::unread_files(&files);
    }
    (files, diagnostics)
}

fn parse_present<T: DeserializeOwned>(
    dir: &Path,
    _name: &str,
    source: Option<Source>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    let source = source?;
    parse(&dir.join(&source.name), source.format, &source.bytes)
        .map_err(|d| diagnostics.extend(d))
        .ok()
}

/// Parses one file: syntax first (line and column), then the types (JSON
/// path of the field, every unknown key).
fn parse<T: DeserializeOwned>(
    path: &Path,
    format: Format,
    bytes: &[u8],
) -> Result<T, Vec<Diagnostic>> {
    let value = format::to_value(path, format, bytes).map_err(|d| vec![*d])?;
    deserialize_reporting_every_unknown_key::<T>(value).map_err(|problems| {
        // YAML: the position of a type error, from reading the YAML text
        // straight into the type (the JSON value has no positions).
        let yaml_position = match format {
            Format::Yaml => format::yaml_type_error_position::<T>(bytes)
                .map(|(serde_path, at)| (to_json_path(&serde_path), at)),
            Format::Json => None,
        };
        problems
            .into_iter()
            .map(|problem| {
                let d = Diagnostic::new(path, problem.json_path.clone(), problem.message);
                match &yaml_position {
                    Some((json_path, (line, column))) if *json_path == problem.json_path => {
                        d.at(*line, *column)
                    }
                    _ => d,
                }
            })
            .collect()
    })
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
            Format::Json,
            b"{\n  \"agents\": [\n    {\"name\": }\n",
        )
        .unwrap_err();
        assert_eq!(err[0].to_string(), "a.json:3:14: expected value");
    }

    #[test]
    fn reports_type_errors_with_the_json_path() {
        let err = parse::<AgentsFile>(
            Path::new("a.json"),
            Format::Json,
            br#"{"agents": [{"name": "A", "system_message": "x"}, {"name": 7}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "a.json: $.agents[1].name: invalid type: integer `7`, expected a string"
        );
    }

    #[test]
    fn reports_yaml_type_errors_with_the_path_and_the_line_and_column() {
        let err = parse::<AgentsFile>(
            Path::new("a.yaml"),
            Format::Yaml,
            b"agents:\n  - name: A\n    system_message: x\n  - name: [7]\n",
        )
        .unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "a.yaml:4:11: $.agents[1].name: invalid type: sequence, expected a string"
        );
    }

    #[test]
    fn reports_every_unknown_key_of_a_yaml_file() {
        let err = parse::<AgentsFile>(
            Path::new("a.yml"),
            Format::Yaml,
            b"agents:\n  - name: A\n    system_message: x\n    auto_tool_mode: true\nmetadata: {}\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = err.iter().map(|d| d.json_path.as_str()).collect();
        assert_eq!(paths, ["$.agents[0].auto_tool_mode", "$.metadata"]);
    }

    #[test]
    fn the_version_changes_when_a_file_changes_its_spelling() {
        let dir =
            std::env::temp_dir().join(format!("mozaiks-load-spelling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = "{\"workflow_name\": \"W\"}";
        std::fs::write(dir.join("orchestrator.json"), text).unwrap();
        let (json, _) = read_folder(&dir);
        std::fs::rename(dir.join("orchestrator.json"), dir.join("orchestrator.yaml")).unwrap();
        let (yaml, problems) = read_folder(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            yaml.orchestrator.as_ref().map(|o| o.workflow_name.as_str()),
            Some("W")
        );
        assert_ne!(json.version, yaml.version);
        assert_eq!(
            yaml.path(ORCHESTRATOR_FILE)
                .file_name()
                .and_then(|n| n.to_str()),
            Some("orchestrator.yaml")
        );
        assert_eq!(problems.len(), 1, "agents.json is missing: {problems:?}");
    }
}
