//! Loads an imported folder with the real workflow loader and sorts what
//! it says: the plugins still to be ported are expected to be unknown;
//! anything else is a problem the porter must fix.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use mozaiks_plugin_host::Plugin;

use super::report::ImportReport;
use crate::workflow::{Diagnostic, load_workflow};

/// What the workflow loader says of an imported folder, loaded without
/// any plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It loads as it is (it calls no plugin).
    Valid,
    /// It loads once these plugin functions exist (`plugin.function`).
    ValidExceptToolsToPort(Vec<String>),
    /// Other problems too: every diagnostic that is not a plugin to port.
    Problems {
        /// The plugin functions still to port.
        to_port: Vec<String>,
        /// The other problems, as the loader prints them.
        problems: Vec<String>,
    },
}

impl Verdict {
    /// Whether the folder loads once its tools are ported.
    pub fn is_valid_except_tools(&self) -> bool {
        !matches!(self, Self::Problems { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Valid => write!(f, "The result validates."),
            Self::ValidExceptToolsToPort(tools) => write!(
                f,
                "The result validates except for the tools still to be ported: {}",
                tools.join(", ")
            ),
            Self::Problems { to_port, problems } => {
                writeln!(
                    f,
                    "The result does not validate yet; besides the tools still to be ported ({}), the loader reports:",
                    if to_port.is_empty() {
                        "none".to_owned()
                    } else {
                        to_port.join(", ")
                    }
                )?;
                for p in problems {
                    writeln!(f, "  {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// Loads `dir` with no plugins and sorts the diagnostics.
pub(crate) fn verify(dir: &Path, report: &ImportReport) -> Verdict {
    let no_plugins: HashMap<String, Plugin> = HashMap::new();
    let to_port = report.to_port_names();
    let diagnostics = match load_workflow(dir, &no_plugins) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics,
    };
    let problems: Vec<String> = diagnostics
        .iter()
        .filter(|d| !is_plugin_to_port(d, report))
        .map(|d| d.display_relative_to(dir.parent().unwrap_or(dir)))
        .collect();
    match (problems.is_empty(), to_port.is_empty()) {
        (true, true) => Verdict::Valid,
        (true, false) => Verdict::ValidExceptToolsToPort(to_port),
        (false, _) => Verdict::Problems { to_port, problems },
    }
}

/// Whether `d` says that a plugin still to be ported is unknown.
fn is_plugin_to_port(d: &Diagnostic, report: &ImportReport) -> bool {
    report.to_port.iter().any(|t| {
        d.message
            .contains(&format!("unknown plugin \"{}\"", t.plugin))
    })
}
