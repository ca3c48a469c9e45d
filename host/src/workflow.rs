//! Workflows: folders of JSON or YAML files (`workflows/<Name>/`) that declare the
//! agents of a multi-agent chat, their tools, handoffs, context variables
//! and structured outputs.
//!
//! Loading goes through three stages, each with its own types:
//!
//! 1. [`load`] reads the folder into the [`spec`] types (the file format),
//!    reporting syntax errors with line and column and type errors with the
//!    JSON path;
//! 2. [`validate`] checks every cross reference (agents, tools against the
//!    plugins' functions, handoff targets, conditions, context variables,
//!    structured-output schemas) and reports *all* problems at once;
//! 3. only then is the immutable runtime [`model::Workflow`] built.
//!
//! [`load_workflow`] runs the three; [`WorkflowRegistry`] holds the
//! workflows of a directory. docs/workflows.md describes the format.

pub(crate) mod catalog;
pub(crate) mod condition;
pub(crate) mod deserialize;
pub(crate) mod diagnostic;
pub(crate) mod format;
pub(crate) mod load;
pub(crate) mod model;
pub(crate) mod registry;
pub(crate) mod spec;
pub(crate) mod template;
pub(crate) mod unread;
pub(crate) mod validate;

#[cfg(test)]
mod fixtures;

use std::path::Path;

#[cfg(test)]
pub(crate) use catalog::InMemoryCatalog;
pub(crate) use catalog::LookupError;
pub(crate) use catalog::ToolCatalog;
pub use diagnostic::{Diagnostic, Severity};
pub(crate) use model::Workflow;
pub(crate) use registry::WorkflowRegistry;

/// Loads and validates the workflow folder `dir`, resolving its tools in
/// `catalog`. Returns the workflow (its `warnings()` beside it),
/// or every problem found: the errors, then the warnings.
pub fn load_workflow(dir: &Path, catalog: &dyn ToolCatalog) -> Result<Workflow, Vec<Diagnostic>> {
    let (files, mut diagnostics) = load::read_folder(dir);
    if !diagnostics.is_empty() {
        diagnostics.extend(files.warnings);
        return Err(diagnostics);
    }
    validate::validate(&files, catalog)
}
