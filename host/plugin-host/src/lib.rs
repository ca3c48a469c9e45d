//! The wasmtime embedding of mozaiks: compiles, checks, pre-instantiates and
//! calls tool components under a deny-by-default sandbox with limits.
//!
//! It knows nothing of chats or HTTP. The server and the tool-author harness
//! use the very same code, so a tool behaves identically in both.
//!
//! # What the sandbox guarantees
//!
//! - **A fresh instance per call.** Compiled code is shared; memory, globals
//!   and tables are not. Nothing a call leaves behind is seen by the next one.
//! - **Nothing ambient.** No files, environment variables, sockets, stdin or
//!   inherited stdout/stderr, unless the plugin's [`Manifest`] grants them.
//!   Guest output is captured and sent to the [`LogSink`].
//! - **Bounded.** Memory per call ([`Limits::memory_mib`]), CPU time per call
//!   ([`Limits::deadline_ms`], enforced by epoch interruption; waiting for the
//!   user does not count), result size ([`Limits::max_output_kib`]).
//! - **Typed failures.** Every way a call can fail is a [`CallError`] variant
//!   naming the plugin, the function and the cause. The host never panics
//!   because of a guest.
//!
//! # Example
//!
//! ```no_run
//! use mozaiks_plugin_host::{CallInfo, EngineConfig, PluginEngine, Ports};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = PluginEngine::new(EngineConfig::default())?;
//! let plugin = engine.load_dir("plugins/planner".as_ref()).await?;
//! for f in plugin.functions() {
//!     println!("{}: {}", f.name, f.description);
//! }
//! let info = CallInfo { chat_id: "c1".into(), ..Default::default() };
//! match plugin.call("echo", r#"{"hello":"world"}"#, info, Ports::no_chat()).await? {
//!     Ok(json) => println!("result: {json}"),
//!     Err(tool_error) => println!("the tool said no: {tool_error}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! `engine` (one Engine, pooling, epoch ticker) · `component` (load, version
//! check, compile, pre-instantiate) · `cache` (compiled components on disk) · `describe` (function specs) · `start_cost` (what starting an instance costs, and warnings) · `call`
//! (store per call, error mapping) · `policy` (manifest → WASI context) ·
//! `limits` · `imports/` (one file per imported interface) · `idempotency` (the
//! key of a call across its attempts) · `ports` (traits the embedder
//! implements) · `harness` (in-memory ports for tests and the CLI).

// One `unsafe` block, in `cache`, loads compiled code the cache wrote.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod backtrace;
mod bindings;
mod cache;
mod call;
mod compile;
mod component;
mod describe;
mod engine;
mod error;
pub mod harness;
mod idempotency;
mod imports;
mod limits;
mod manifest;
mod outbound;
mod policy;
mod ports;
mod redact;
mod start_cost;
mod state;
mod stdio;
mod tool_error;

pub use cache::{CacheOutcome, CachePruned, UNUSED_ENTRIES_BUDGET_BYTES};
pub use call::ToolOutcome;
pub use compile::{
    ChildCompileError, ChildCompiler, CompileLimits, Compiler, DEFAULT_COMPILE_MEMORY_MIB,
    DEFAULT_COMPILE_TIMEOUT, MAX_COMPILE_MEMORY_MIB, MAX_COMPILE_TIMEOUT, MIN_COMPILE_MEMORY_MIB,
    WALL_CLOCK_FACTOR, compile_child,
};
pub use component::{Plugin, SDK_VERSION_SECTION, WIT_VERSION, content_hash, is_truncated};
pub use describe::FunctionSpec;
pub use engine::{
    DEFAULT_MAX_CALLS_PER_PLUGIN, DEFAULT_MAX_CONCURRENT_CALLS, EPOCH_TICK, EngineConfig,
    EngineError, MAX_CORE_INSTANCES_PER_COMPONENT, MAX_MEMORIES_PER_COMPONENT,
    MAX_TABLES_PER_COMPONENT, PluginEngine, SlotUse, swap_is_on,
};
pub use error::{CallError, LoadError, ManifestError, PortError};
pub use idempotency::{IDEMPOTENCY_KEY_HEX_DIGITS, idempotency_key};
pub use limits::{
    DEFAULT_DEADLINE_MS, DEFAULT_HTTP_DEADLINE_MS, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_OUTPUT_KIB, DEFAULT_MAX_RESPONSE_KIB, DEFAULT_MEMORY_MIB, DESCRIBE_DEADLINE,
    MAX_ARGUMENTS_BYTES, MAX_CAPTURED_OUTPUT_BYTES, MAX_CHAT_MESSAGE_BYTES, MAX_CHAT_MESSAGES,
    MAX_COMPONENT_BYTES, MAX_COMPONENT_FUNCTIONS, MAX_CONCURRENT_COMPILES, MAX_CONCURRENT_REQUESTS,
    MAX_CONTEXT_CHANGES_PER_CALL, MAX_CONTEXT_KEY_BYTES, MAX_CONTEXT_TOTAL_BYTES,
    MAX_CONTEXT_VALUE_BYTES, MAX_CONTEXT_WRITE_BYTES_PER_CALL, MAX_DATA_COLLECTION_BYTES,
    MAX_DATA_FILTERS, MAX_DATA_ID_BYTES, MAX_DATA_OPS_PER_CALL, MAX_DATA_QUERY_BYTES,
    MAX_DATA_QUERY_LIMIT, MAX_DEADLINE_MS, MAX_DESCRIPTION_BYTES, MAX_FUNCTIONS_PER_PLUGIN,
    MAX_HTTP_DEADLINE_MS, MAX_LOG_FIELD_BYTES, MAX_LOG_FIELD_KEY_BYTES, MAX_LOG_FIELDS,
    MAX_LOG_MESSAGE_BYTES, MAX_LOG_RECORDS_PER_CALL, MAX_MEMORY_MIB, MAX_OUTPUT_KIB,
    MAX_PARAMETERS_BYTES, MAX_RESPONSE_KIB, MAX_TABLE_ELEMENTS, MAX_TOOL_ERROR_BYTES,
    MAX_UI_ASKS_PER_CALL, MAX_UI_COMPONENT_BYTES, MAX_UI_EVENTS_PER_CALL, MAX_UI_PAYLOAD_BYTES,
    MAX_UI_TIMEOUT, MAX_WASM_STACK_BYTES, UI_TIMEOUT_GRACE,
};
pub use manifest::{Capabilities, DirGrant, DirMode, Limits, MANIFEST_FILE, Manifest, SecretDecl};
pub use outbound::OutboundConfig;
pub use ports::{
    AppData, CallInfo, ChatMessage, ChatReader, ContextSetError, ContextStore,
    DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_DOCUMENTS_PER_APP, DataDocument, DataError, DataFilter,
    DataLimits, DataQuery, DataScope, Display, LogLevel, LogRecord, LogSink, LogSource,
    MemoryAppData, MessageRole, NoChat, Ports, ScriptedChat, SecretStore, TracingLogSink, UiBridge,
    UiError, UiRequest, WaitClock, field,
};
pub use start_cost::StartCost;
pub use tool_error::ToolError;
