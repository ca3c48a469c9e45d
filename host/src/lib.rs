//! The mozaiks server and CLI: multi-agent LLM workflows whose tools are
//! sandboxed WebAssembly components.
//!
//! The server is wired in [`app`]: workflows ([`workflow`]) and plugins
//! ([`plugins`]) kept current by the watcher ([`watch`]), the
//! [`orchestrator`] running each chat against the [`llm`], the [`store`]
//! keeping every [`event`], and the HTTP/WebSocket [`transport`]. The
//! wasmtime embedding lives in the `mozaiks-plugin-host` crate.
//! ARCHITECTURE.md maps the modules.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod app;
pub mod config;
pub mod doctor;
pub mod event;
pub mod llm;
pub mod maintenance;
pub mod orchestrator;
pub mod plugin_dir;
pub mod plugin_secrets;
pub mod plugins;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod watch;
pub mod workflow;

#[cfg(test)]
mod fuzz;
