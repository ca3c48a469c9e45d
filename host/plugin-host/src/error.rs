//! Typed errors: every variant names the plugin (and the function, for calls)
//! and carries the cause, so the agent, the operator and the tool author can
//! each act on it without parsing text.

use std::path::PathBuf;
use std::time::Duration;

/// A `plugin.toml` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read plugin manifest {path}: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid plugin manifest {path}: {message}")]
    Parse {
        /// The manifest's path.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has a value that cannot be used.
    #[error("invalid plugin manifest {path}: field `{field}`: {message}")]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// The field, as a TOML path such as `limits.memory_mib`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// A plugin that could not be loaded. The previous version, if any, stays in use.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest is unusable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component file could not be read.
    #[error("plugin `{plugin}`: cannot read component {path}: {source}")]
    Read {
        /// Plugin id.
        plugin: String,
        /// The `.wasm` path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a WebAssembly component that wasmtime can compile.
    #[error("plugin `{plugin}`: {path} is not a valid component: {cause}")]
    Compile {
        /// Plugin id.
        plugin: String,
        /// The `.wasm` path.
        path: PathBuf,
        /// Wasmtime's explanation.
        cause: String,
    },
    /// The host's compiler did not work: its process could not be started,
    /// or it failed without a word. The component may well be valid.
    #[error(
        "plugin `{plugin}`: could not compile {path}: {cause} (a failure of the host's compiler, not of the component)"
    )]
    Compiler {
        /// Plugin id.
        plugin: String,
        /// The `.wasm` path.
        path: PathBuf,
        /// What went wrong with the compiler.
        cause: String,
    },
    /// Compiling the component ran past a limit of time or memory; the
    /// compiler process was stopped.
    #[error(
        "plugin `{plugin}`: compiling {path} went past the {limit}; the compiler was stopped ({detail})"
    )]
    CompileLimit {
        /// Plugin id.
        plugin: String,
        /// The `.wasm` path.
        path: PathBuf,
        /// Which limit, with its value: `compile time limit (60 s)`.
        limit: String,
        /// What was seen.
        detail: String,
    },
    /// The component does not implement the `mozaiks:plugin/plugin` world
    /// (a missing export, or an import the host does not provide).
    #[error(
        "plugin `{plugin}` does not implement mozaiks:plugin@{}: {cause}",
        crate::component::WIT_VERSION
    )]
    World {
        /// Plugin id.
        plugin: String,
        /// What is missing or unexpected.
        cause: String,
    },
    /// The component was built with an SDK whose WIT version this host does not speak.
    #[error(
        "plugin `{plugin}` was built for mozaiks:plugin@{found}, this host speaks {supported}; rebuild it with a matching mozaiks-sdk"
    )]
    IncompatibleVersion {
        /// Plugin id.
        plugin: String,
        /// The version stamped into the component.
        found: String,
        /// The version this host implements.
        supported: &'static str,
    },
    /// `describe()` trapped or returned unusable function specs.
    #[error("plugin `{plugin}`: describe() failed: {cause}")]
    Describe {
        /// Plugin id.
        plugin: String,
        /// Why.
        cause: String,
    },
    /// The component is larger than the host compiles: bytes or functions.
    #[error("plugin `{plugin}`: {path} has {size} {what}, more than the {limit} the host compiles")]
    TooLarge {
        /// Plugin id.
        plugin: String,
        /// The component file.
        path: PathBuf,
        /// `bytes` or `functions`.
        what: &'static str,
        /// How many it has.
        size: usize,
        /// How many are allowed.
        limit: usize,
    },
    /// A granted capability could not be set up (a directory that does not
    /// exist, a host name that does not resolve).
    #[error("plugin `{plugin}`: capability `{capability}` cannot be granted: {cause}")]
    Grant {
        /// Plugin id.
        plugin: String,
        /// The capability as written in the manifest.
        capability: String,
        /// Why.
        cause: String,
    },
}

/// A call that did not reach the tool's own result.
///
/// A tool's own failure (`tool-error` in WIT) is not a `CallError`: it is the
/// call's normal result, see [`crate::ToolError`].
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No function of that name is offered by the plugin.
    #[error("plugin `{plugin}` has no function `{function}`; it offers: {available}")]
    UnknownFunction {
        /// Plugin id.
        plugin: String,
        /// The name asked for.
        function: String,
        /// Comma-separated names it does offer.
        available: String,
    },
    /// The arguments do not satisfy the function's parameter schema. Checked
    /// before any guest code runs.
    #[error("plugin `{plugin}` function `{function}`: invalid arguments: {}", problems.join("; "))]
    InvalidArguments {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// Each problem with its JSON pointer into the arguments.
        problems: Vec<String>,
    },
    /// The guest trapped: a panic, an `unreachable`, a stack overflow, an
    /// out-of-bounds access.
    #[error(
        "plugin `{plugin}` function `{function}` crashed: {cause}{}",
        render_details(guest_stderr, backtrace)
    )]
    Trap {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// The trap, e.g. `wasm trap: call stack exhausted`.
        cause: String,
        /// What the guest last wrote to stderr (a Rust panic message lands here).
        guest_stderr: String,
        /// The guest's backtrace, innermost frame first.
        backtrace: String,
    },
    /// The call used more CPU time than its deadline.
    #[error("plugin `{plugin}` function `{function}` exceeded its {} ms CPU deadline (limits.deadline_ms in its plugin.toml)", deadline.as_millis())]
    DeadlineExceeded {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// The deadline it ran into.
        deadline: Duration,
    },
    /// The guest tried to grow its memory beyond its limit and then failed.
    #[error(
        "plugin `{plugin}` function `{function}` hit its memory limit of {limit_mib} MiB (asked for {requested_mib} MiB; limits.memory_mib in its plugin.toml)"
    )]
    MemoryLimit {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// The limit in MiB.
        limit_mib: u32,
        /// What the refused growth asked for, in MiB.
        requested_mib: usize,
    },
    /// The sandbox denied something the call needed.
    #[error("plugin `{plugin}` function `{function}` was denied {capability}; {hint}")]
    CapabilityDenied {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// What was denied, e.g. `connect to 10.0.0.1:80`.
        capability: String,
        /// How an operator grants it, naming the manifest file.
        hint: String,
    },
    /// The result is not JSON.
    #[error("plugin `{plugin}` function `{function}` returned invalid JSON: {cause}")]
    BadOutput {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// The parser's message.
        cause: String,
    },
    /// The result is larger than the plugin may return.
    #[error(
        "plugin `{plugin}` function `{function}` returned {size} bytes, more than its limit of {limit} (limits.max_output_kib in its plugin.toml)"
    )]
    OutputTooLarge {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// Bytes returned.
        size: usize,
        /// Bytes allowed.
        limit: usize,
    },
    /// Too many calls run at once; the caller may retry.
    #[error(
        "plugin `{plugin}` function `{function}`: no instance slot free ({cause}); retry later"
    )]
    Busy {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// Wasmtime's explanation.
        cause: String,
    },
    /// The embedder failed while serving an import (the context store is
    /// unreachable, for example). Not the tool's fault.
    #[error("plugin `{plugin}` function `{function}`: the host failed: {cause}")]
    Host {
        /// Plugin id.
        plugin: String,
        /// Function name.
        function: String,
        /// What failed.
        cause: String,
    },
}

fn render_details(stderr: &str, backtrace: &str) -> String {
    let mut out = String::new();
    if !stderr.trim().is_empty() {
        out.push_str("\nguest stderr:\n");
        out.push_str(stderr.trim_end());
    }
    if !backtrace.trim().is_empty() {
        out.push_str("\nguest backtrace:\n");
        out.push_str(backtrace.trim_end());
    }
    out
}

impl CallError {
    /// The plugin the failed call went to.
    pub fn plugin(&self) -> &str {
        match self {
            Self::UnknownFunction { plugin, .. }
            | Self::InvalidArguments { plugin, .. }
            | Self::Trap { plugin, .. }
            | Self::DeadlineExceeded { plugin, .. }
            | Self::MemoryLimit { plugin, .. }
            | Self::CapabilityDenied { plugin, .. }
            | Self::BadOutput { plugin, .. }
            | Self::OutputTooLarge { plugin, .. }
            | Self::Busy { plugin, .. }
            | Self::Host { plugin, .. } => plugin,
        }
    }

    /// The function the failed call asked for.
    pub fn function(&self) -> &str {
        match self {
            Self::UnknownFunction { function, .. }
            | Self::InvalidArguments { function, .. }
            | Self::Trap { function, .. }
            | Self::DeadlineExceeded { function, .. }
            | Self::MemoryLimit { function, .. }
            | Self::CapabilityDenied { function, .. }
            | Self::BadOutput { function, .. }
            | Self::OutputTooLarge { function, .. }
            | Self::Busy { function, .. }
            | Self::Host { function, .. } => function,
        }
    }

    /// A stable, machine-readable name of the kind of failure, for events,
    /// metrics labels and UIs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownFunction { .. } => "unknown_function",
            Self::InvalidArguments { .. } => "invalid_arguments",
            Self::Trap { .. } => "trap",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::CapabilityDenied { .. } => "capability_denied",
            Self::BadOutput { .. } => "bad_output",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::Busy { .. } => "busy",
            Self::Host { .. } => "host",
        }
    }
}

/// Why the embedder could not serve an import (see [`ContextStore`](crate::ContextStore),
/// [`UiBridge`](crate::UiBridge) and [`LogSink`](crate::LogSink)). The
/// call is aborted and reported as [`CallError::Host`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    /// What failed, for the operator.
    pub message: String,
}

impl PortError {
    /// A port error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}
