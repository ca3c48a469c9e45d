//! The failure a tool reports itself (`tool-error` in WIT): a normal result
//! that the agent reads, not a host error.

use crate::bindings::types;

/// A tool's own failure, passed to the agent as the tool's result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The component offers no such function (its `describe()` and `call()` disagree).
    #[error("unknown function: {0}")]
    UnknownFunction(String),
    /// The arguments made no sense to the function.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The user cancelled or did not answer a UI request.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// Any other failure.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// A stable name of the kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownFunction(_) => "unknown_function",
            Self::InvalidArguments(_) => "invalid_arguments",
            Self::Cancelled(_) => "cancelled",
            Self::Failed(_) => "failed",
        }
    }
}

impl From<types::ToolError> for ToolError {
    fn from(e: types::ToolError) -> Self {
        match e {
            types::ToolError::UnknownFunction(m) => Self::UnknownFunction(m),
            types::ToolError::InvalidArguments(m) => Self::InvalidArguments(m),
            // The host turns denials into `CallError::CapabilityDenied` before
            // this conversion; keep the text if one slips through.
            types::ToolError::Denied(m) => Self::Failed(format!("denied: {m}")),
            types::ToolError::Cancelled(m) => Self::Cancelled(m),
            types::ToolError::Failed(m) => Self::Failed(m),
        }
    }
}
