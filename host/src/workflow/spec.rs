//! The workflow *file format*: serde types for the files of
//! `workflows/<Name>/` (JSON or YAML, the same keys), read strictly
//! (`deny_unknown_fields`; [`super::deserialize`] reports every unknown key).
//!
//! These types mirror the files and nothing more; the runtime works on
//! [`super::model`], which validation builds from them. Field names follow
//! MozaiksAI's files where they exist; docs/workflows.md lists the
//! differences and their reasons.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

mod lifecycle;
mod ui_config;

pub(crate) use lifecycle::{HookType, LifecycleTrigger};
pub(crate) use lifecycle::{HooksFile, LifecycleToolSpec};
pub(crate) use ui_config::UiConfigFile;

/// `orchestrator.json`: how a run starts and who speaks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrchestratorFile {
    /// The workflow's name, as APIs show it.
    pub workflow_name: String,
    /// One line for workflow lists.
    #[serde(default)]
    pub description: Option<String>,
    /// Most speaker turns a run may take (MozaiksAI's default: 50).
    #[serde(default = "default_max_turns")]
    pub max_turns: i64,
    /// Whether the user takes part as a separate participant.
    #[serde(default)]
    pub human_in_the_loop: bool,
    /// Who starts the run.
    #[serde(default)]
    pub startup_mode: StartupMode,
    /// How the next speaker is chosen.
    #[serde(default)]
    pub orchestration_pattern: OrchestrationPattern,
    /// The agent that speaks first; the first agent in agents.json if absent.
    #[serde(default)]
    pub initial_agent: Option<String>,
    /// The seed message, sent as a user message before the first turn.
    #[serde(default)]
    pub initial_message: Option<String>,
    /// Whether tools may write context variables that context_variables.json
    /// does not declare.
    #[serde(default)]
    pub undeclared_context_writes: UndeclaredContextWrites,
}

/// What a tool's write to an undeclared context variable does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndeclaredContextWrites {
    /// The write is stored like any other (MozaiksAI's behaviour).
    #[default]
    Allow,
    /// The write is refused with a message naming the variable.
    Refuse,
}

fn default_max_turns() -> i64 {
    50
}

/// Who starts a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum StartupMode {
    /// The run starts when the chat is created.
    #[default]
    AgentDriven,
    /// The run starts with the user's first message.
    UserDriven,
}

/// How the next speaker is chosen (AG2's pattern names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[expect(
    clippy::enum_variant_names,
    reason = "the names the workflow files use (AG2's)"
)]
pub enum OrchestrationPattern {
    /// Handoff rules decide.
    DefaultPattern,
    /// The LLM picks the next speaker.
    #[default]
    AutoPattern,
    /// Agents speak in file order.
    RoundRobinPattern,
    /// A random agent speaks.
    RandomPattern,
    /// The user picks the next speaker.
    ManualPattern,
}

/// `agents.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentsFile {
    /// The agents, in order (the order matters for RoundRobinPattern and the
    /// default initial agent).
    pub agents: Vec<AgentSpec>,
}

/// One agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentSpec {
    /// Unique name, used in handoffs, tools and structured outputs.
    pub name: String,
    /// The system message. Exactly one of this and `prompt_sections`.
    #[serde(default)]
    pub system_message: Option<String>,
    /// The system message in sections, joined as heading + content.
    #[serde(default)]
    pub prompt_sections: Option<Vec<PromptSection>>,
    /// LLM settings; absent fields take the server's defaults.
    #[serde(default)]
    pub llm_config: Option<LlmConfigSpec>,
    /// Tools this agent may call, in addition to those whose `agent` in
    /// tools.json names it.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Name of the structured-output model this agent answers with.
    #[serde(default)]
    pub structured_output: Option<String>,
    /// AG2's limit on consecutive automatic replies.
    #[serde(default)]
    pub max_consecutive_auto_reply: Option<u32>,
    /// AG2's human input mode for this agent.
    #[serde(default)]
    pub human_input_mode: Option<HumanInputMode>,
    /// Context variables shown, with their current values, in a section of
    /// this agent's system message on every LLM call.
    #[serde(default)]
    pub context_variables: Vec<String>,
}

/// One section of a system message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromptSection {
    /// Section id (`role`, `objective`, ...), informational.
    #[expect(
        dead_code,
        reason = "informational: required in the file, never acted on"
    )]
    pub id: String,
    /// Heading line, e.g. `[ROLE]`.
    #[serde(default)]
    pub heading: Option<String>,
    /// The text.
    pub content: String,
}

/// An agent's LLM settings (AG2's `llm_config` names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LlmConfigSpec {
    /// Model name, e.g. `gpt-4o-mini`.
    #[serde(default)]
    pub model: Option<String>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Seconds one LLM request may take.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Most tokens in one completion.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// AG2's `human_input_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HumanInputMode {
    /// Never ask the human.
    Never,
    /// Ask the human when the agent would terminate.
    Terminate,
    /// Ask the human after every reply.
    Always,
}

/// `handoffs.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HandoffsFile {
    /// Rules in order; the order matters within one source agent.
    pub handoff_rules: Vec<HandoffRule>,
}

/// One handoff rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HandoffRule {
    /// The agent whose turn ends, or `user`.
    pub source_agent: String,
    /// An agent, `user` (revert to the user) or `terminate` (end the run).
    pub target_agent: String,
    /// Unconditional or conditional.
    #[serde(default)]
    pub handoff_type: HandoffType,
    /// How `condition` is read; required for `condition` rules.
    #[serde(default)]
    pub condition_type: Option<ConditionType>,
    /// A context expression or, for LLM conditions, the text offered to the
    /// agent as a transfer tool's description.
    #[serde(default)]
    pub condition: Option<String>,
    /// For expressions: evaluated before (`pre`) or after (`post`, default)
    /// the source agent replies.
    #[serde(default)]
    pub condition_scope: Option<ConditionScope>,
    /// Informational.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "informational: allowed in the file, never acted on"
    )]
    pub description: Option<String>,
}

/// Whether a rule has a condition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HandoffType {
    /// The fallback when the agent finishes and no condition matched.
    #[default]
    AfterWork,
    /// Taken when `condition` holds.
    Condition,
}

/// How a condition is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConditionType {
    /// A context expression, evaluated by the runtime without an LLM call.
    Expression,
    /// Natural language, offered to the agent's LLM as a transfer tool.
    Llm,
}

/// When an expression condition is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConditionScope {
    /// Before the source agent replies.
    Pre,
    /// After the source agent replied.
    Post,
}

/// `context_variables.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextVariablesFile {
    /// The declared variables.
    pub definitions: Vec<ContextVariableSpec>,
}

/// One declared context variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextVariableSpec {
    /// Name, as written in conditions (`${name}`).
    pub name: String,
    /// JSON type of its values.
    #[serde(rename = "type")]
    pub var_type: VariableType,
    /// What it means.
    #[serde(default)]
    pub description: Option<String>,
    /// Where its value comes from.
    pub source: VariableSourceSpec,
}

/// JSON type of a context variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariableType {
    /// A JSON string.
    String,
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

/// Where a context variable's value comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum VariableSourceSpec {
    /// A fixed initial value that tools may change (MozaiksAI's `state`).
    Static {
        /// The initial value (null if absent).
        #[serde(default)]
        default: Option<Value>,
        /// What sets it without a tool.
        #[serde(default)]
        triggers: Vec<TriggerSpec>,
    },
    /// Read from the server's environment when a run starts (MozaiksAI's
    /// `config`).
    Environment {
        /// The environment variable.
        env_var: String,
        /// Used when the variable is unset.
        #[serde(default)]
        default: Option<Value>,
        /// A run cannot start when the variable is unset and has no default.
        #[serde(default)]
        required: bool,
    },
    /// Set during the run by a tool or an agent (MozaiksAI's `computed`).
    Derived {
        /// The tool that sets it.
        #[serde(default)]
        tool: Option<String>,
        /// The agent whose output sets it.
        #[serde(default)]
        agent: Option<String>,
        /// Value before it is set (null if absent).
        #[serde(default)]
        default: Option<Value>,
        /// Dotted path into the agent's structured output or the tool's
        /// result (`review.score`); absent: the field of the variable's name.
        #[serde(default)]
        field: Option<String>,
    },
    /// One document, or one field of it, of the chat's app's data (the
    /// documents tools keep through the `data` import), read when a run
    /// starts (MozaiksAI's `data_reference`).
    Database {
        /// The collection.
        collection: String,
        /// Field → value the document must have (`_id`: its id); string
        /// values may hold `{{runtime.app_id}}`, `{{runtime.user_id}}`,
        /// `{{runtime.chat_id}}`.
        #[serde(default)]
        query: serde_json::Map<String, Value>,
        /// Dotted path of the field to take (the whole document if absent).
        #[serde(default)]
        field: Option<String>,
        /// Used when no document (or no such field) is found.
        #[serde(default)]
        default: Option<Value>,
    },
    /// A file of the workflow folder, read when the workflow loads.
    File {
        /// Relative to the workflow folder, never outside it.
        path: String,
        /// How the file is read; from the extension when absent.
        #[serde(default)]
        format: Option<FileFormat>,
        /// Used when the file does not exist (and is not required).
        #[serde(default)]
        default: Option<Value>,
        /// A missing file is a load error.
        #[serde(default)]
        required: bool,
    },
}

/// How a `file` source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileFormat {
    /// Parsed as JSON.
    Json,
    /// The text as a string.
    Text,
}

/// Something that sets a `static` variable without a tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum TriggerSpec {
    /// An agent's message matches.
    AgentText {
        /// The agent whose messages are matched.
        agent: String,
        /// How they are matched.
        #[serde(rename = "match")]
        matcher: TextMatchSpec,
        /// The value set (true if absent).
        #[serde(default)]
        value: Option<Value>,
        /// Whether the matched text is removed from the message clients see.
        #[serde(default)]
        ui_hidden: bool,
    },
    /// A UI tool's answer.
    UiResponse {
        /// The UI tool.
        tool: String,
        /// Dotted path of the value in the answer.
        response_key: String,
    },
}

/// How an agent's message is matched: exactly one key.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum TextMatchSpec {
    /// The trimmed message, or its last non-empty line, equals this.
    Equals(String),
    /// The message contains this.
    Contains(String),
    /// This regular expression matches somewhere in the message.
    Regex(String),
}

/// `structured_outputs.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StructuredOutputsFile {
    /// Model name → JSON Schema (an object schema).
    pub models: BTreeMap<String, Value>,
    /// Agent name → model name: which agent answers with which model.
    #[serde(default)]
    pub registry: BTreeMap<String, String>,
    /// Outputs sent to a UI tool as soon as they are produced.
    #[serde(default)]
    pub auto_execute: Vec<AutoExecuteSpec>,
}

/// Sends a structured output to a tool (UI or agent tool) inside the turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoExecuteSpec {
    /// The model whose instances are sent.
    pub model: String,
    /// The tool that receives them as arguments.
    pub tool: String,
}

/// `tools.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolsFile {
    /// The tools.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// Plugin functions the runtime calls at fixed points of a run.
    #[serde(default)]
    pub lifecycle_tools: Vec<LifecycleToolSpec>,
}

/// One tool: a plugin function offered to agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolSpec {
    /// The name agents call it by; the function name if absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Id of the plugin that implements it.
    pub plugin: String,
    /// The plugin function.
    pub function: String,
    /// For the LLM; the plugin's own description if absent.
    #[serde(default)]
    pub description: Option<String>,
    /// Agent tool or UI tool.
    #[serde(default)]
    pub tool_type: ToolType,
    /// The agent or agents that get it.
    #[serde(default)]
    pub agent: Option<AgentList>,
    /// For UI tools: the component and how it is shown.
    #[serde(default)]
    pub ui: Option<UiSpec>,
}

/// One agent name or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "an agent name or a list of agent names")]
pub(crate) enum AgentList {
    /// `"Planner"`.
    One(String),
    /// `["Planner", "Reviewer"]`.
    Many(Vec<String>),
}

impl AgentList {
    /// The names, in order.
    pub(crate) fn names(&self) -> &[String] {
        match self {
            Self::One(name) => std::slice::from_ref(name),
            Self::Many(names) => names,
        }
    }
}

/// Kind of tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) enum ToolType {
    /// Runs and returns a result to the agent.
    #[default]
    #[serde(rename = "Agent_Tool")]
    AgentTool,
    /// Shows a UI component to the user, usually waiting for an answer.
    #[serde(rename = "UI_Tool")]
    UiTool,
}

/// A UI tool's component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UiSpec {
    /// Name of the front-end component.
    pub component: String,
    /// Where it is shown.
    #[serde(default)]
    pub mode: DisplayMode,
}

/// Where a UI component is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayMode {
    /// In the chat flow.
    #[default]
    Inline,
    /// In the side panel.
    Artifact,
}
