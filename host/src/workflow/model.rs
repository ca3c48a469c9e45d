//! The validated, immutable runtime model of a workflow.
//!
//! Only [`super::validate`] builds a [`Workflow`]; holding one means every
//! cross reference in it resolves. These types are deliberately not
//! serde types: the file format lives in [`super::spec`] and may change
//! without touching the runtime (docs/developing.md, house style rule 12).

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::condition::Condition;

use super::diagnostic::Diagnostic;
mod lifecycle;

pub(crate) use lifecycle::{
    Hook, HookType, LifecycleTool, LifecycleTrigger, hook_arguments, lifecycle_arguments,
};

pub(crate) use super::spec::DisplayMode;
pub(crate) use super::spec::HumanInputMode;
pub(crate) use super::spec::OrchestrationPattern;
pub(crate) use super::spec::StartupMode;
pub(crate) use super::spec::UndeclaredContextWrites;
pub(crate) use super::spec::VariableType;
pub(crate) use super::template::FieldPath;

/// A loaded, validated workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) dir: PathBuf,
    pub(super) max_turns: NonZeroU32,
    pub(super) human_in_the_loop: bool,
    pub(super) startup_mode: StartupMode,
    pub(super) pattern: OrchestrationPattern,
    pub(super) initial_agent: String,
    pub(super) initial_message: Option<String>,
    pub(super) user_handoffs: Handoffs,
    pub(super) agents: Vec<Agent>,
    pub(super) tools: Vec<Tool>,
    pub(super) context: Vec<ContextVariable>,
    pub(super) outputs: Vec<OutputModel>,
    pub(super) undeclared_context_writes: UndeclaredContextWrites,
    pub(super) lifecycle_tools: Vec<LifecycleTool>,
    pub(super) hooks: Vec<Hook>,
    pub(super) visual_agents: Vec<String>,
    pub(super) version: String,
    pub(super) warnings: Vec<Diagnostic>,
}

impl Workflow {
    /// `ui_config.json` `visual_agents`: the agents (and `user`) whose
    /// messages front ends show as chat bubbles, the others as a trace;
    /// empty shows every agent.
    pub fn visual_agents(&self) -> &[String] {
        &self.visual_agents
    }

    /// The name from orchestrator.json.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// One line for workflow lists (may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The folder it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Most speaker turns per run.
    pub fn max_turns(&self) -> NonZeroU32 {
        self.max_turns
    }
    /// Whether the user is a separate participant.
    pub fn human_in_the_loop(&self) -> bool {
        self.human_in_the_loop
    }
    /// Who starts a run.
    pub fn startup_mode(&self) -> StartupMode {
        self.startup_mode
    }
    /// How the next speaker is chosen.
    pub fn pattern(&self) -> OrchestrationPattern {
        self.pattern
    }
    /// Name of the agent that speaks first (it exists).
    pub fn initial_agent(&self) -> &str {
        &self.initial_agent
    }
    /// The seed message.
    pub fn initial_message(&self) -> Option<&str> {
        self.initial_message.as_deref()
    }
    /// The agents, in file order (never empty).
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }
    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }
    /// Handoffs whose source is the user.
    pub fn user_handoffs(&self) -> &Handoffs {
        &self.user_handoffs
    }
    /// The tools, in file order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }
    /// The tool called `name`.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }
    /// The declared context variables.
    pub fn context_variables(&self) -> &[ContextVariable] {
        &self.context
    }
    /// The declared context variable called `name`.
    pub fn context_variable(&self, name: &str) -> Option<&ContextVariable> {
        self.context.iter().find(|v| v.name == name)
    }
    /// What a tool's write to an undeclared context variable does.
    pub fn undeclared_context_writes(&self) -> UndeclaredContextWrites {
        self.undeclared_context_writes
    }
    /// The structured-output models.
    pub fn output_models(&self) -> &[OutputModel] {
        &self.outputs
    }
    /// The structured-output model called `name`.
    pub fn output_model(&self, name: &str) -> Option<&OutputModel> {
        self.outputs.iter().find(|m| m.name == name)
    }
    /// The lifecycle tools that run at `trigger` for `agent` (`None` for
    /// the chat triggers), in file order.
    pub fn lifecycle_tools(
        &self,
        trigger: LifecycleTrigger,
        agent: Option<&str>,
    ) -> impl Iterator<Item = &LifecycleTool> {
        self.lifecycle_tools
            .iter()
            .filter(move |t| t.runs_at(trigger, agent))
    }
    /// Every plugin function the workflow calls, as a tool: its tools,
    /// its lifecycle tools and its hooks (what a plugin reload must keep).
    pub fn plugin_functions(&self) -> impl Iterator<Item = Tool> + '_ {
        self.tools
            .iter()
            .cloned()
            .chain(self.lifecycle_tools.iter().map(|l| l.tool.clone()))
            .chain(self.hooks.iter().map(Hook::as_tool))
    }
    /// The hooks of type `hook_type` that apply to `agent`, in file order.
    pub fn hooks(&self, hook_type: HookType, agent: &str) -> impl Iterator<Item = &Hook> {
        self.hooks
            .iter()
            .filter(move |h| h.applies(hook_type, agent))
    }
    /// Hex SHA-256 of the files' names and bytes: changes whenever any file
    /// changes.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// What validation warned about (files nothing reads, handoff rules
    /// that can never fire): the workflow loaded anyway.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
    /// A number derived from [`version`](Self::version) that front ends and
    /// LLM caches use to notice a changed workflow.
    pub fn cache_seed(&self) -> u32 {
        u32::from_str_radix(self.version.get(..8).unwrap_or("0"), 16).unwrap_or(0)
    }
}

/// One agent.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Unique name.
    pub name: String,
    /// The system message (prompt sections already joined), with its
    /// `{{context.name}}` references still in it: they are filled in on
    /// every LLM call.
    pub system_message: String,
    /// Context variables shown with their current values in a section of
    /// the system message on every LLM call (all declared).
    pub context_variables: Vec<String>,
    /// LLM settings; `None` fields take the server's defaults.
    pub llm: LlmSettings,
    /// Names of the tools it may call (all exist in [`Workflow::tools`]).
    pub tools: Vec<String>,
    /// The structured-output model it answers with.
    pub structured_output: Option<String>,
    /// AG2's limit on consecutive automatic replies.
    pub max_consecutive_auto_reply: Option<u32>,
    /// AG2's human input mode.
    pub human_input_mode: Option<HumanInputMode>,
    /// Handoffs from this agent, in evaluation order.
    pub handoffs: Handoffs,
}

/// An agent's LLM settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmSettings {
    /// Model name.
    pub model: Option<String>,
    /// Sampling temperature (0 to 2).
    pub temperature: Option<f64>,
    /// Longest one request may take.
    pub timeout: Option<std::time::Duration>,
    /// Most tokens in one completion.
    pub max_tokens: Option<u32>,
}

/// Where a handoff goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// To this agent.
    Agent(String),
    /// Back to the user.
    User,
    /// End the run.
    Terminate,
}

/// The handoffs of one source (an agent or the user), grouped the way
/// they are evaluated.
#[derive(Debug, Clone, Default)]
pub struct Handoffs {
    /// Offered to the LLM as transfer tools: (description, target).
    pub llm: Vec<(String, Target)>,
    /// Context conditions checked before the agent replies.
    pub pre: Vec<(Condition, Target)>,
    /// Context conditions checked after the agent replied, in order.
    pub post: Vec<(Condition, Target)>,
    /// The fallback when no condition holds.
    pub after_work: Option<Target>,
}

/// A tool bound to a plugin function.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The name agents call it by.
    pub name: String,
    /// The plugin id.
    pub plugin: String,
    /// The plugin function.
    pub function: String,
    /// For the LLM.
    pub description: String,
    /// JSON Schema of the arguments (from the plugin's `describe()`).
    pub parameters: Value,
    /// Agent tool or UI tool.
    pub kind: ToolKind,
}

/// What kind of tool, with what a UI tool needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolKind {
    /// Runs and returns a result.
    Agent,
    /// Shows `component` to the user.
    Ui {
        /// The front-end component.
        component: String,
        /// Where it is shown.
        mode: DisplayMode,
    },
}

/// A declared context variable.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextVariable {
    /// Name.
    pub name: String,
    /// JSON type of its values.
    pub var_type: VariableType,
    /// What it means.
    pub description: String,
    /// Where its value comes from.
    pub source: VariableSource,
}

/// Where a context variable's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VariableSource {
    /// A fixed initial value.
    Static {
        /// The initial value.
        default: Value,
        /// What sets it without a tool.
        triggers: Vec<Trigger>,
    },
    /// A file of the workflow folder, read when the workflow loaded (the
    /// file's bytes are part of the workflow's version).
    File {
        /// The path as written, relative to the workflow folder.
        path: String,
        /// The value read (or the default when the file is absent).
        value: Value,
    },
    /// The server's environment, read when a run starts.
    Environment {
        /// The variable.
        env_var: String,
        /// Used when it is unset.
        default: Option<Value>,
        /// Whether a run may not start without it.
        required: bool,
    },
    /// Set by a tool or an agent during the run.
    Derived {
        /// Who sets it.
        by: Producer,
        /// Where in the output or result the value is; `None`: the field
        /// of the variable's name, else the whole output.
        field: Option<FieldPath>,
        /// Value until then.
        default: Value,
    },
    /// Read from the chat's app's data when a run starts.
    Database(DatabaseSource),
}

/// Where a `database` variable's value is, in the chat's app's documents.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSource {
    /// The collection.
    pub collection: String,
    /// The document id (`_id` of the query), a template.
    pub id: Option<String>,
    /// Dotted path → the value it must equal; string values are templates
    /// (`{{runtime.app_id}}`, `{{runtime.user_id}}`, `{{runtime.chat_id}}`).
    pub filters: Vec<(String, Value)>,
    /// The field taken (the whole document if `None`).
    pub field: Option<String>,
    /// Used when nothing is found.
    pub default: Value,
}

/// Sets a `static` variable without a tool.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// An agent's message matches.
    AgentText {
        /// The agent.
        agent: String,
        /// How its messages are matched.
        matcher: TextMatch,
        /// The value set.
        value: Value,
        /// Whether the matched text is removed from the message clients
        /// (and the log) keep.
        ui_hidden: bool,
    },
    /// A UI tool's answer.
    UiResponse {
        /// The UI tool.
        tool: String,
        /// Where the value is in the answer.
        response_key: FieldPath,
    },
}

/// How an agent's message is matched.
#[derive(Debug, Clone)]
pub enum TextMatch {
    /// The trimmed message, or its trimmed last non-empty line, equals this.
    Equals(String),
    /// The message contains this.
    Contains(String),
    /// This expression matches somewhere in the message.
    Regex(regex::Regex),
}

impl PartialEq for TextMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Equals(a), Self::Equals(b)) | (Self::Contains(a), Self::Contains(b)) => a == b,
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// Who sets a derived variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
    /// This tool.
    Tool(String),
    /// This agent.
    Agent(String),
}

/// A structured-output model.
#[derive(Debug, Clone)]
pub struct OutputModel {
    /// Name.
    pub name: String,
    /// Its JSON Schema (checked against the JSON Schema meta-schema).
    pub schema: Value,
    /// Tools (UI or agent tools) its instances are sent to, inside the
    /// turn, as soon as they are produced.
    pub auto_execute: Vec<String>,
}
