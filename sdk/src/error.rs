//! [`ToolError`]: why a call produced no result, as decided by the tool.

use std::fmt;
use std::io;

/// Why a tool call did not produce a result.
///
/// The agent sees the error as the tool's result and may retry or change
/// course, so the message should say what went wrong in words an LLM can act
/// on. Failures the tool does not choose (a panic, the deadline, the memory
/// limit) are reported by the host and never pass through this type.
///
/// `?` converts [`std::io::Error`] and [`serde_json::Error`] into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// No function of that name is offered by this tool.
    UnknownFunction(String),
    /// The arguments did not make sense to the function (for example they do
    /// not fit its argument type).
    InvalidArguments(String),
    /// The sandbox denied something the function needed (a file, a host, an
    /// environment variable, a context variable). The message names it.
    Denied(String),
    /// The user cancelled or did not answer a UI request the function needed.
    Cancelled(String),
    /// Any other failure; the message is shown to the agent.
    Failed(String),
}

impl ToolError {
    /// A [`ToolError::Failed`] with the given message.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// Converts an I/O error from the operation `what` (for example
    /// `"reading /data/notes.txt"`), naming it in the message.
    ///
    /// Errors that mean the sandbox refused access become
    /// [`ToolError::Denied`], all others [`ToolError::Failed`].
    pub fn io(what: impl fmt::Display, err: &io::Error) -> Self {
        if is_sandbox_denial(err) {
            Self::Denied(format!(
                "{what}: denied by the sandbox ({err}); the plugin's manifest does not grant it"
            ))
        } else {
            Self::Failed(format!("{what}: {err}"))
        }
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::UnknownFunction(m)
            | Self::InvalidArguments(m)
            | Self::Denied(m)
            | Self::Cancelled(m)
            | Self::Failed(m) => m,
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::UnknownFunction(_) => "unknown function",
            Self::InvalidArguments(_) => "invalid arguments",
            Self::Denied(_) => "denied",
            Self::Cancelled(_) => "cancelled",
            Self::Failed(_) => "failed",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for ToolError {}

/// `ENOTCAPABLE` in WASI: what wasi-libc reports when a path lies outside every
/// preopened directory (a tool with no `fs` capability has none) or a handle
/// lacks the right. std has no `io::ErrorKind` for it.
const WASI_ENOTCAPABLE: i32 = 76;

fn is_sandbox_denial(err: &io::Error) -> bool {
    if err.kind() == io::ErrorKind::PermissionDenied {
        return true;
    }
    // Raw codes are WASI's only on WASI; std maps EACCES and EPERM to
    // PermissionDenied already.
    cfg!(target_os = "wasi") && err.raw_os_error() == Some(WASI_ENOTCAPABLE)
}

/// Errors that mean the sandbox refused access become [`ToolError::Denied`]
/// (wasi-libc's `ENOTCAPABLE`, which opening a path outside every granted
/// directory gives, and [`io::ErrorKind::PermissionDenied`]); all others
/// [`ToolError::Failed`]. Use [`ToolError::io`] to name the operation.
impl From<io::Error> for ToolError {
    fn from(err: io::Error) -> Self {
        Self::io("I/O operation", &err)
    }
}

/// Becomes [`ToolError::Failed`]: by the time a tool handles JSON itself, the
/// arguments have been checked, so bad JSON is the tool's own failure.
impl From<serde_json::Error> for ToolError {
    fn from(err: serde_json::Error) -> Self {
        Self::Failed(format!("JSON error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_becomes_denied() {
        let err = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(ToolError::from(err), ToolError::Denied(_)));
    }

    #[test]
    fn not_found_becomes_failed() {
        let err = io::Error::from(io::ErrorKind::NotFound);
        assert!(matches!(ToolError::from(err), ToolError::Failed(_)));
    }

    #[test]
    fn display_starts_with_the_kind() {
        assert_eq!(
            ToolError::Cancelled("no answer".into()).to_string(),
            "cancelled: no answer"
        );
    }
}
