//! The host side of the WIT imports: one file per interface, each forwarding
//! to a port (see [`crate::ports`]) with the call's scope attached.

mod chat;
mod context;
mod data;
mod invocation;
mod log;
mod secrets;
mod ui;

use crate::bindings::types;
use crate::state::CallState;

impl types::Host for CallState {}

/// Aborts the call because the embedder failed; see `call.rs` for the mapping
/// into [`crate::CallError::Host`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostFailure(pub(crate) String);
