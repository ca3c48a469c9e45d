//! What an import could not carry over, and the tools still to be ported.
//!
//! Every [`Note`] names the MozaiksAI file and the key path of what it is
//! about, and why it was dropped or changed; [`PortTool`]s are the Python
//! functions the new `tools.json` (and `hooks.json`) point at, whose
//! plugins do not exist yet.

use std::fmt::Write as _;

/// One thing the importer could not map as it was, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The MozaiksAI file, e.g. `agents.yaml`.
    pub file: String,
    /// The key path in that file, e.g. `$.agents[0].image_generation_enabled`
    /// (`$` for the whole file).
    pub path: String,
    /// What happened to it, and why.
    pub reason: String,
}

/// A Python function of the MozaiksAI workflow that the imported workflow
/// calls as a plugin function, to be written as a mozaiks plugin.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortTool {
    /// The plugin id the imported files use.
    pub plugin: String,
    /// The plugin function (the Python function's name).
    pub function: String,
    /// The Python file MozaiksAI named (`file` or `filename`).
    pub python_file: String,
    /// What the workflow uses it as: `tool`, `lifecycle tool` or `hook`.
    pub used_as: &'static str,
}

/// Everything an import reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The keys not mapped as they were, in the order they were met.
    pub notes: Vec<Note>,
    /// The functions still to be ported, sorted, without repeats.
    pub to_port: Vec<PortTool>,
}

impl ImportReport {
    /// Records a note about `path` in `file`.
    pub(crate) fn note(
        &mut self,
        file: &str,
        path: impl std::fmt::Display,
        reason: impl Into<String>,
    ) {
        self.notes.push(Note {
            file: file.to_owned(),
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    /// Records a function to port (once).
    pub(crate) fn port(&mut self, tool: PortTool) {
        if let Err(at) = self.to_port.binary_search(&tool) {
            self.to_port.insert(at, tool);
        }
    }

    /// The plugin functions still to be ported, as `plugin.function`.
    pub fn to_port_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .to_port
            .iter()
            .map(|t| format!("{}.{}", t.plugin, t.function))
            .collect();
        names.dedup();
        names
    }

    /// The report as text: one line per note, then the tools to port.
    pub fn render(&self, source: &str) -> String {
        let mut out = format!("Import of the MozaiksAI workflow {source}\n\n");
        if self.notes.is_empty() {
            out.push_str("Every key was mapped.\n");
        } else {
            let _ = writeln!(
                out,
                "Not mapped as it was ({} key(s)): MozaiksAI file: key path: what happened and why",
                self.notes.len()
            );
            for note in &self.notes {
                let _ = writeln!(out, "- {}: {}: {}", note.file, note.path, note.reason);
            }
        }
        out.push('\n');
        if self.to_port.is_empty() {
            out.push_str("No Python tools to port.\n");
        } else {
            let _ = writeln!(
                out,
                "Tools still to be ported ({}): plugin.function <- Python file (used as)",
                self.to_port.len()
            );
            for t in &self.to_port {
                let _ = writeln!(
                    out,
                    "- {}.{} <- {} ({})",
                    t.plugin, t.function, t.python_file, t.used_as
                );
            }
        }
        out
    }
}
