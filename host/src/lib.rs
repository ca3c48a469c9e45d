//! The mozaiks server and CLI: multi-agent LLM workflows whose tools are
//! sandboxed WebAssembly components.
//!
//! So far this crate holds the tool-author commands (`mozaiks tool ...`)
//! and workflow loading and validation ([`workflow`], `mozaiks validate`);
//! the orchestrator, transport and store arrive with their issues. The
//! wasmtime embedding lives in the `mozaiks-plugin-host` crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod event;
pub mod llm;
pub mod maintenance;
pub mod orchestrator;
pub mod plugin_dir;
pub mod store;
pub mod transport;
pub mod workflow;
