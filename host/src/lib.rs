//! The mozaiks server and CLI: multi-agent LLM workflows whose tools are
//! sandboxed WebAssembly components.
//!
//! Every module is private to the crate; what the `mozaiks` binary
//! (`src/cli/`), the benches and the tests use is re-exported here, and
//! nothing else. ARCHITECTURE.md maps the modules.
//!
//! The server is wired in `app`: workflows (`workflow`) and plugins
//! (`plugins`) kept current by the watcher (`watch`), the `orchestrator`
//! running each chat against the `llm`, the `store` keeping every `event`,
//! and the HTTP/WebSocket `transport`. The wasmtime embedding lives in the
//! `mozaiks-plugin-host` crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Tests may (clippy.toml): a failing test should panic.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub(crate) mod access;
pub(crate) mod app;
pub(crate) mod config;
pub(crate) mod doctor;
pub(crate) mod event;
pub(crate) mod import;
pub(crate) mod llm;
pub(crate) mod maintenance;
pub(crate) mod orchestrator;
pub mod plugin_dir;
pub(crate) mod plugin_secrets;
pub(crate) mod plugin_set;
pub(crate) mod store;
pub(crate) mod telemetry;
pub(crate) mod transport;
pub(crate) mod watch;
pub(crate) mod workflow;

#[cfg(test)]
mod architecture_map;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod golden;

// Serving: `mozaiks serve` and `mozaiks dev`, and the benches.
pub use app::{
    FirstLoad, PluginSlots, ReloadConfig, ServeConfig, ServeOptions, Server, StartupError, build,
    serve, start,
};
pub use maintenance::MaintenanceConfig;
pub use orchestrator::{ClusterError, ClusterSettings, Orchestrator};
pub use transport::{HttpOptions, route_table};
pub use watch::{DEFAULT_QUIET, GateSettings};

// Configuration: `serve`, `dev`, `config`, `doctor`, `chats export`.
pub use access::{Access, ApiKeys, Principal};
pub use config::{Config, ConfigError, ConfigErrors, Environment, Overrides, Setting};
pub use doctor::{Finding, Report as DoctorReport, Status as FindingStatus, run as run_doctor};
pub use telemetry::logs::{LogConfig, LogError, StderrFormat, init_cli, init_server};

// Chats and their stores: `chats export` and the benches.
pub use event::{Envelope, ErrorCode, Event, RunStatus, ToolFailureKind, now_ms};
pub use orchestrator::{ChatError, EmitError, LiveChat, chat_request};
pub use store::{
    Appended, ChatRecord, ChatStatus, ChatStore, EmbeddedStore, MongoConfig, MongoStore,
    StoreConfig, StoreError,
};
pub use transport::routes::chat_json;

// The LLM client: the benches, and TLS set-up for every HTTP client.
pub use llm::{ChatRequest, LlmClient, LlmConfig, LlmError, RetryPolicy, install_crypto_provider};

// Importing other runtimes' workflows: `mozaiks import`.
pub use import::{
    Converted, ImportError, ImportReport, Imported, Note, PortTool, ReadError, Verdict,
    convert as convert_mozaiksai, import_mozaiksai, report_path,
};

// Workflows: `mozaiks validate`. (Plugins: the public `plugin_dir`
// module, every item of which `mozaiks tool` and `validate` use.)
pub use workflow::{Diagnostic, Severity, load_workflow};
