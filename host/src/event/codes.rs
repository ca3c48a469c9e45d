//! The stable words of the protocol: [`ErrorCode`] (every `code` a client
//! can read, in an HTTP error, a WebSocket reply or an `error` event) and
//! [`ToolFailureKind`] (why a tool call failed). Both serialise as the
//! strings docs/protocol.md lists, and each is made by the typed error that
//! causes it (`ChatError::code`, `LlmError::code`, …), never written by hand
//! at the place that answers.

use std::fmt;

use mozaiks_plugin_host::{CallError, ToolError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a closed set of stable words: the enum, its strings, the list
/// of all of them, and serde as those strings (an unknown word does not
/// decode).
macro_rules! stable_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$doc:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$doc])* $variant,)*
        }

        impl $name {
            /// Every value, in the order docs/protocol.md lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The word as it is sent and stored.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value this word names, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!("unknown ", stringify!($name), " `{}`"),
                        text
                    ))
                })
            }
        }
    };
}

stable_words! {
    /// A stable error code a client reads (`code` of an HTTP error, a
    /// WebSocket reply or an `error` event). docs/protocol.md's "Error codes"
    /// table lists exactly these.
    pub enum ErrorCode {
        /// The request body is not JSON, not JSON content or lacks/has a field.
        BadRequestBody = "BAD_REQUEST_BODY",
        /// The request body is larger than `MOZAIKS_MAX_BODY_BYTES`.
        PayloadTooLarge = "PAYLOAD_TOO_LARGE",
        /// An unknown or malformed query parameter.
        BadQuery = "BAD_QUERY",
        /// No such workflow is loaded.
        UnknownWorkflow = "UNKNOWN_WORKFLOW",
        /// The workflow does not validate.
        InvalidWorkflow = "INVALID_WORKFLOW",
        /// A required environment variable of a context variable is unset.
        MissingEnvironment = "MISSING_ENVIRONMENT",
        /// No API key, or not a configured one.
        Unauthenticated = "UNAUTHENTICATED",
        /// The browser page's origin may not open sockets here.
        OriginNotAllowed = "ORIGIN_NOT_ALLOWED",
        /// The key does not reach the app or user named.
        Forbidden = "FORBIDDEN",
        /// The server is stopping.
        ShuttingDown = "SHUTTING_DOWN",
        /// Another server took the chat's run over while this one handled
        /// the request (several servers on one database).
        ChatMoved = "CHAT_MOVED",
        /// The server's first load of plugins did not finish in time.
        PluginsLoading = "PLUGINS_LOADING",
        /// The store does not answer.
        StoreUnavailable = "STORE_UNAVAILABLE",
        /// No such chat (or not the caller's).
        ChatNotFound = "CHAT_NOT_FOUND",
        /// The chat ended and takes no input.
        ChatEnded = "CHAT_ENDED",
        /// The run does not wait for this input now.
        NotYourTurn = "NOT_YOUR_TURN",
        /// The UI request is unknown or no longer open.
        UiRequestNotOpen = "UI_REQUEST_NOT_OPEN",
        /// A workflow component file that is not served.
        ComponentNotFound = "COMPONENT_NOT_FOUND",
        /// No route serves this path (or a developer-console file that does
        /// not exist).
        NotFound = "NOT_FOUND",
        /// A route serves this path, but not with this method.
        MethodNotAllowed = "METHOD_NOT_ALLOWED",
        /// A MozaiksAI route the compatibility layer has no counterpart for.
        NotSupported = "NOT_SUPPORTED",
        /// A client message that does not decode.
        BadMessage = "BAD_MESSAGE",
        /// A WebSocket route asked without an upgrade.
        WebsocketRequired = "WEBSOCKET_REQUIRED",
        /// A server fault (the log has the `error_id`).
        Internal = "INTERNAL",
        /// `/ws/chat` could not tell which chat is meant.
        WsSessionDeterminationFailed = "WS_SESSION_DETERMINATION_FAILED",
        /// No LLM is configured.
        LlmNotConfigured = "LLM_NOT_CONFIGURED",
        /// The LLM call outlived its timeout.
        LlmTimeout = "LLM_TIMEOUT",
        /// The LLM server answered 429 on every attempt.
        LlmRateLimited = "LLM_RATE_LIMITED",
        /// The LLM server answered another HTTP error.
        LlmHttpError = "LLM_HTTP_ERROR",
        /// The LLM server could not be reached.
        LlmUnreachable = "LLM_UNREACHABLE",
        /// The LLM stream broke off or carried an error.
        LlmStreamError = "LLM_STREAM_ERROR",
        /// Not an OpenAI chat completion.
        LlmBadResponse = "LLM_BAD_RESPONSE",
        /// Two replies in a row did not match the structured-output schema.
        StructuredOutputInvalid = "STRUCTURED_OUTPUT_INVALID",
        /// Too many handoffs in a row without an agent speaking.
        HandoffLoop = "HANDOFF_LOOP",
        /// The chat names an agent its workflow no longer has.
        AgentGone = "AGENT_GONE",
        /// Too many tool rounds in one turn.
        ToolRoundLimit = "TOOL_ROUND_LIMIT",
        /// `select_speaker` named a non-candidate.
        UnknownSpeaker = "UNKNOWN_SPEAKER",
        /// A hook failed or timed out; the message went on unchanged.
        HookFailed = "HOOK_FAILED",
    }
}

stable_words! {
    /// Why a tool call failed (`error.kind` of a `tool_result`).
    pub enum ToolFailureKind {
        /// The tool's own error: it offers no such function.
        UnknownFunction = "unknown_function",
        /// The tool's own error, or the host's schema check refused the call.
        InvalidArguments = "invalid_arguments",
        /// The tool's own error: the user cancelled or did not answer.
        Cancelled = "cancelled",
        /// The tool's own error, any other.
        Failed = "failed",
        /// The host saw the guest trap.
        Trap = "trap",
        /// The call outlived its CPU budget.
        DeadlineExceeded = "deadline_exceeded",
        /// The call wanted more memory than allowed.
        MemoryLimit = "memory_limit",
        /// The tool used a capability its manifest does not grant.
        CapabilityDenied = "capability_denied",
        /// The tool's result is not what it must be.
        BadOutput = "bad_output",
        /// The tool's result is larger than allowed.
        OutputTooLarge = "output_too_large",
        /// No instance slot was free.
        Busy = "busy",
        /// The host failed to serve the call.
        Host = "host",
        /// The agent named a tool it does not have.
        UnknownTool = "unknown_tool",
        /// The tool's plugin is not loaded.
        PluginUnavailable = "plugin_unavailable",
    }
}

impl From<&ToolError> for ToolFailureKind {
    fn from(error: &ToolError) -> Self {
        match error {
            ToolError::UnknownFunction(_) => Self::UnknownFunction,
            ToolError::InvalidArguments(_) => Self::InvalidArguments,
            ToolError::Cancelled(_) => Self::Cancelled,
            ToolError::Failed(_) => Self::Failed,
        }
    }
}

impl From<&CallError> for ToolFailureKind {
    fn from(error: &CallError) -> Self {
        match error {
            CallError::UnknownFunction { .. } => Self::UnknownFunction,
            CallError::InvalidArguments { .. } => Self::InvalidArguments,
            CallError::Trap { .. } => Self::Trap,
            CallError::DeadlineExceeded { .. } => Self::DeadlineExceeded,
            CallError::MemoryLimit { .. } => Self::MemoryLimit,
            CallError::CapabilityDenied { .. } => Self::CapabilityDenied,
            CallError::BadOutput { .. } => Self::BadOutput,
            CallError::OutputTooLarge { .. } => Self::OutputTooLarge,
            CallError::Busy { .. } => Self::Busy,
            CallError::Host { .. } => Self::Host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_and_an_unknown_one_does_not_decode() {
        for code in ErrorCode::ALL {
            let text = serde_json::to_string(code).unwrap();
            assert_eq!(text, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&text).unwrap(), *code);
        }
        for kind in ToolFailureKind::ALL {
            let text = serde_json::to_string(kind).unwrap();
            assert_eq!(
                serde_json::from_str::<ToolFailureKind>(&text).unwrap(),
                *kind
            );
        }
        assert!(serde_json::from_str::<ErrorCode>("\"NO_SUCH_CODE\"").is_err());
        assert!(serde_json::from_str::<ToolFailureKind>("\"nope\"").is_err());
    }

    /// The plugin host names its failures itself; ours must agree word for
    /// word, or a tool's failure would change its name on the way.
    #[test]
    fn tool_failure_kinds_agree_with_the_plugin_hosts_names() {
        for error in [
            ToolError::UnknownFunction(String::new()),
            ToolError::InvalidArguments(String::new()),
            ToolError::Cancelled(String::new()),
            ToolError::Failed(String::new()),
        ] {
            assert_eq!(ToolFailureKind::from(&error).as_str(), error.kind());
        }
    }

    /// docs/protocol.md's "Error codes" table lists exactly the codes the
    /// server sends: one row per [`ErrorCode`], and no other row.
    #[test]
    fn the_protocol_documents_exactly_these_error_codes() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md"),
        )
        .unwrap();
        let table = doc
            .split("## Error codes")
            .nth(1)
            .expect("docs/protocol.md has an `## Error codes` section");
        let documented: Vec<&str> = table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|row| row.strip_prefix("| `")?.split('`').next())
            .collect();
        let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted_doc = documented.clone();
        sorted_doc.sort_unstable();
        let mut sorted_ours = ours.clone();
        sorted_ours.sort_unstable();
        assert_eq!(
            sorted_doc, sorted_ours,
            "docs/protocol.md's table vs ErrorCode"
        );
    }
}
