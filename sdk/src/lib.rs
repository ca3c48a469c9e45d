#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`Toolbox`]: the functions a tool offers; [`export_toolbox!`] exports it.
//! - [`Call`]: who is calling, the call's idempotency key and attempt
//!   ([`Call::idempotency_key`], [`Call::attempt`]); [`Call::context`] gives the chat's context
//!   variables ([`Context`]) and [`Call::ui`] its UI ([`Ui`]).
//! - [`ToolError`]: why a call produced no result; `?` converts I/O and JSON
//!   errors into it.
//! - [`log`]: structured logs into the host's logs.
//! - [`http`]: outbound HTTP requests to the hosts the manifest allows.
//! - [`secrets`]: the plugin's declared secrets.
//! - [`data`]: documents of the calling chat's app (get, put, remove, query).
//! - [`chat`]: the calling chat's recent messages and agents' structured outputs.

mod call;
pub mod chat;
pub mod data;
mod error;
mod export;
pub mod http;
pub mod log;
pub mod secrets;
mod toolbox;
mod ui;

pub use call::{Call, Context};
pub use error::ToolError;
pub use serde_json::{self, Value, json};
pub use toolbox::{Schema, Toolbox};
pub use ui::{Display, Ui, UiError};

/// The version of the WIT package (`mozaiks:plugin`) this SDK implements,
/// stamped into every tool's `mozaiks:sdk-version` custom section.
pub const WIT_VERSION: &str = "0.1.2";

/// Used by `export_toolbox!`; not part of the API.
#[doc(hidden)]
pub mod __private;
