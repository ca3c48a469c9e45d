//! Cross-reference checks over a workflow's parsed files. Every check runs;
//! every problem is returned (rust-analyzer's `(T, Vec<Error>)` shape), and a
//! [`Workflow`] exists only when there are none.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use super::catalog::ToolCatalog;
use super::diagnostic::{Diagnostic, JsonPath, list};
use super::load::{
    AGENTS_FILE, CONTEXT_VARIABLES_FILE, HANDOFFS_FILE, HOOKS_FILE, ORCHESTRATOR_FILE,
    STRUCTURED_OUTPUTS_FILE, TOOLS_FILE, UI_CONFIG_FILE, WorkflowFiles,
};
use super::model::{Handoffs, Workflow};
use super::spec::ToolSpec;
use super::unread;

mod ag2_knobs;
mod agents;
mod auto_execute;
pub(crate) mod context;
mod database_source;
mod file_source;
mod handoffs;
mod lifecycle;
mod output_schema;
mod outputs;
mod reachability;
mod tools;
mod triggers;
mod visibility;
mod visual_agents;

/// The name handoffs use for the human user.
pub(crate) const USER: &str = "user";
/// The handoff target that ends the run.
pub(crate) const TERMINATE: &str = "terminate";

/// Validates `files` against each other and against the plugins in
/// `catalog`. Returns the runtime model, or every problem found.
pub(crate) fn validate(
    files: &WorkflowFiles,
    catalog: &dyn ToolCatalog,
) -> Result<Workflow, Vec<Diagnostic>> {
    let (Some(orchestrator), Some(agents_file)) = (&files.orchestrator, &files.agents) else {
        let missing = if files.orchestrator.is_none() {
            ORCHESTRATOR_FILE
        } else {
            AGENTS_FILE
        };
        let message = "required file is missing or did not load";
        return Err(vec![Diagnostic::new(files.path(missing), "", message)]);
    };
    let mut v = Validator {
        files,
        diagnostics: Vec::new(),
        data_files: Vec::new(),
    };
    let agent_names = unique(agents_file.agents.iter().map(|a| a.name.as_str()));
    let tool_specs = files.tools.as_ref().map_or(&[][..], |t| &t.tools[..]);

    // orchestrator.json
    let at = |field: &str| JsonPath::root().key(field);
    if orchestrator.workflow_name.trim().is_empty() {
        v.error(
            ORCHESTRATOR_FILE,
            at("workflow_name"),
            "workflow_name is empty",
            None,
        );
    }
    let max_turns = u32::try_from(orchestrator.max_turns)
        .ok()
        .and_then(NonZeroU32::new);
    if max_turns.is_none() {
        let help = "a run needs at least one turn";
        v.error(
            ORCHESTRATOR_FILE,
            at("max_turns"),
            format!(
                "max_turns must be between 1 and {}, not {}",
                u32::MAX,
                orchestrator.max_turns
            ),
            Some(help.to_owned()),
        );
    }
    if let Some(initial) = &orchestrator.initial_agent {
        v.agent_exists(
            ORCHESTRATOR_FILE,
            at("initial_agent"),
            initial,
            &agent_names,
            false,
        );
    }

    // structured_outputs.json, before agents.json: agents name its models.
    let tool_names: Vec<String> = unique(tool_specs.iter().map(tool_name));
    let (outputs, registry) = match &files.structured_outputs {
        Some(file) => outputs::check(&mut v, file, &agent_names, tool_specs, catalog),
        None => (Vec::new(), BTreeMap::new()),
    };
    let model_names: Vec<&str> = files
        .structured_outputs
        .iter()
        .flat_map(|f| f.models.keys().map(String::as_str))
        .collect();
    // agents.json
    if agents_file.agents.is_empty() {
        v.error(
            AGENTS_FILE,
            at("agents"),
            "a workflow needs at least one agent",
            None,
        );
    }
    let mut seen = BTreeSet::new();
    let mut agents = Vec::new();
    for (i, spec) in agents_file.agents.iter().enumerate() {
        let path = at("agents").index(i);
        if let Some(agent) = v.agent(spec, &path, &mut seen, &tool_names, &model_names, &registry) {
            agents.push(agent);
        }
    }

    // tools.json
    let mut tools = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, spec) in tool_specs.iter().enumerate() {
        if let Some(tool) = v.tool(
            spec,
            &at("tools").index(i),
            &mut seen,
            &agent_names,
            catalog,
        ) {
            tools.push(tool);
        }
    }
    for agent in &mut agents {
        for spec in tool_specs {
            let named = spec
                .agent
                .as_ref()
                .is_some_and(|a| a.names().contains(&agent.name));
            let name = tool_name(spec);
            if named && !agent.tools.contains(&name) {
                agent.tools.push(name);
            }
        }
    }

    // tools.json `lifecycle_tools`, hooks.json
    let lifecycle_specs = files
        .tools
        .as_ref()
        .map_or(&[][..], |t| &t.lifecycle_tools[..]);
    let lifecycle_tools =
        lifecycle::lifecycle_tools(&mut v, lifecycle_specs, &agent_names, catalog);
    let hooks = files.hooks.as_ref().map_or(Vec::new(), |file| {
        lifecycle::hooks(&mut v, file, &agent_names, catalog)
    });
    // ui_config.json
    let visual_agents = files.ui_config.as_ref().map_or(Vec::new(), |file| {
        visual_agents::check(&mut v, file, &agent_names)
    });

    // context_variables.json
    let ui_tools: Vec<String> = tool_specs
        .iter()
        .filter(|t| t.tool_type == crate::workflow::spec::ToolType::UiTool)
        .map(tool_name)
        .collect();
    let declared = files.context_variables.as_ref().map_or(Vec::new(), |cv| {
        context::check(&mut v, cv, &agent_names, &tool_names, &ui_tools)
    });
    // agents.json `context_variables` and `{{context.name}}`, once the
    // variables are known.
    let variable_names: Vec<&str> = files
        .context_variables
        .iter()
        .flat_map(|cv| cv.definitions.iter().map(|d| d.name.as_str()))
        .collect();
    for (i, spec) in agents_file.agents.iter().enumerate() {
        let path = at("agents").index(i);
        let visible = v.visibility(spec, &path, &variable_names);
        if let Some(agent) = agents.iter_mut().find(|a| a.name == spec.name) {
            agent.context_variables = visible;
        }
    }

    // handoffs.json
    let mut handoffs: BTreeMap<String, Handoffs> = BTreeMap::new();
    if let Some(file) = &files.handoffs {
        for (i, rule) in file.handoff_rules.iter().enumerate() {
            v.handoff(
                rule,
                &at("handoff_rules").index(i),
                &agent_names,
                &declared,
                &mut handoffs,
            );
        }
        v.unreachable_rules(&file.handoff_rules);
    }
    for agent in &mut agents {
        agent.handoffs = handoffs.remove(&agent.name).unwrap_or_default();
    }

    let data_files = std::mem::take(&mut v.data_files);
    let (mut diagnostics, mut own_warnings): (Vec<_>, Vec<_>) =
        v.diagnostics.into_iter().partition(Diagnostic::is_error);
    // Report in file order (then check order), whatever order the checks ran in.
    let rank = |d: &Diagnostic| {
        REPORT_ORDER
            .iter()
            .position(|f| d.file.file_stem() == std::path::Path::new(f).file_stem())
    };
    diagnostics.sort_by_key(rank);
    own_warnings.sort_by_key(rank);
    // The folder's warnings (files nothing reads) first, as they were found
    // first; an entry a `file` context source reads is read after all.
    let warnings: Vec<Diagnostic> = files
        .warnings
        .iter()
        .filter(|w| !unread::read_by_file_sources(w, &files.dir, &data_files))
        .cloned()
        .chain(own_warnings)
        .collect();
    let Some(max_turns) = max_turns.filter(|_| diagnostics.is_empty()) else {
        diagnostics.extend(warnings);
        return Err(diagnostics);
    };
    let Some(first) = agents.first() else {
        diagnostics.extend(warnings);
        return Err(diagnostics);
    };
    let version = file_source::version_with_data_files(&files.version, &data_files);
    let initial_agent = orchestrator
        .initial_agent
        .clone()
        .unwrap_or_else(|| first.name.clone());
    Ok(Workflow {
        name: orchestrator.workflow_name.clone(),
        description: orchestrator.description.clone().unwrap_or_default(),
        dir: files.dir.clone(),
        max_turns,
        human_in_the_loop: orchestrator.human_in_the_loop,
        startup_mode: orchestrator.startup_mode,
        pattern: orchestrator.orchestration_pattern,
        initial_agent,
        initial_message: orchestrator.initial_message.clone(),
        user_handoffs: handoffs.remove(USER).unwrap_or_default(),
        agents,
        tools,
        context: declared,
        outputs,
        undeclared_context_writes: orchestrator.undeclared_context_writes,
        lifecycle_tools,
        hooks,
        visual_agents,
        version,
        warnings,
    })
}

/// The order in which files' diagnostics are reported: the order an author
/// reads the folder in.
const REPORT_ORDER: [&str; 8] = [
    ORCHESTRATOR_FILE,
    AGENTS_FILE,
    TOOLS_FILE,
    CONTEXT_VARIABLES_FILE,
    HANDOFFS_FILE,
    STRUCTURED_OUTPUTS_FILE,
    HOOKS_FILE,
    UI_CONFIG_FILE,
];

/// The distinct items, in first-seen order.
fn unique<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn tool_name(spec: &ToolSpec) -> String {
    spec.name.clone().unwrap_or_else(|| spec.function.clone())
}

/// Collects diagnostics for one workflow folder.
pub(super) struct Validator<'a> {
    files: &'a WorkflowFiles,
    diagnostics: Vec<Diagnostic>,
    /// The files `file` sources read (path as written, bytes or `None` when
    /// absent): part of the workflow's version.
    data_files: Vec<(String, Option<Vec<u8>>)>,
}

impl Validator<'_> {
    pub(super) fn error(
        &mut self,
        file: &str,
        path: JsonPath,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::new(self.files.path(file), path, message);
        d.help = help;
        self.diagnostics.push(d);
    }

    /// Reports something that does not stop the workflow from loading.
    pub(super) fn warn(
        &mut self,
        file: &str,
        path: JsonPath,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::warning(self.files.path(file), path, message);
        d.help = help;
        self.diagnostics.push(d);
    }

    /// Reports `name` unless it is an agent (or, with `allow_user`, `user`).
    pub(super) fn agent_exists(
        &mut self,
        file: &str,
        path: JsonPath,
        name: &str,
        agents: &[&str],
        allow_user: bool,
    ) -> bool {
        if agents.contains(&name) || (allow_user && name == USER) {
            return true;
        }
        let help = if allow_user {
            format!("agents are {}; or `user`", list(agents))
        } else {
            format!("agents are {}", list(agents))
        };
        self.error(file, path, format!("unknown agent \"{name}\""), Some(help));
        false
    }
}
