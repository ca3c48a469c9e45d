//! MozaiksAI's client messages (`user.input.submit`, `ui_tool_response`,
//! `client.resume`, …) decoded into what the socket does with them. A
//! message that does not decode, or one of MozaiksAI's tab and Ask-mode
//! messages (one socket serves one chat in mozaiks), is a [`Refusal`]: the
//! client gets a `chat.error` with MozaiksAI's error code, never silence.

use serde_json::{Map, Value};

/// A decoded client message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientMessage {
    /// `user.input.submit`: text for the run, answering `input_request_id`
    /// when given.
    Submit {
        /// The text.
        text: String,
        /// `input_request_id` (or `request_id`).
        request_id: Option<String>,
    },
    /// `ui_tool_response`: an answer to a UI tool.
    UiToolResponse {
        /// `eventId` (or `event_id`, `ui_tool_id`).
        event_id: String,
        /// The component's answer.
        response: Value,
    },
    /// `client.resume`: replay what follows `last_index` (a `seq`).
    Resume {
        /// `lastClientIndex`; below 0 means nothing seen.
        last_index: i64,
    },
}

/// Why a message is not acted on: `chat.error` with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// MozaiksAI's `error_code`.
    pub(crate) code: &'static str,
    /// What to fix.
    pub(crate) message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// MozaiksAI messages mozaiks does not serve, each with the code MozaiksAI
/// answers its failure with.
const UNSUPPORTED: [(&str, &str, &str); 6] = [
    (
        "chat.switch_workflow",
        "SWITCH_WORKFLOW_FAILED",
        "one socket serves one chat in mozaiks: open the other chat's socket",
    ),
    (
        "chat.start_workflow",
        "START_WORKFLOW_FAILED",
        "one socket serves one chat in mozaiks: start a chat with POST /api/chats/{app_id}/{workflow}/start and open its socket",
    ),
    (
        "chat.start_workflow_batch",
        "START_WORKFLOW_BATCH_FAILED",
        "one socket serves one chat in mozaiks: start each chat with POST /api/chats/{app_id}/{workflow}/start",
    ),
    (
        "chat.enter_general_mode",
        "GENERAL_MODE_FAILED",
        "mozaiks has no Ask (general) mode",
    ),
    (
        "chat.start_general_chat",
        "GENERAL_CHAT_CREATE_FAILED",
        "mozaiks has no Ask (general) mode",
    ),
    (
        "chat.artifact_action",
        "ARTIFACT_ACTION_FAILED",
        "mozaiks has no artifact actions: answer the artifact's UI tool with ui_tool_response",
    ),
];

/// Decodes one text frame for the chat `chat_id`.
pub(crate) fn decode(text: &str, chat_id: &str) -> Result<ClientMessage, Refusal> {
    let schema = |message: String| refuse("SCHEMA_VALIDATION_FAILED", message);
    let fields: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(schema("a client message is a JSON object".to_owned())),
        Err(error) => return Err(schema(format!("not JSON: {error}"))),
    };
    let string = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
    let kind = string("type")
        .or_else(|| string("kind"))
        .ok_or_else(|| schema("the message has no `type`".to_owned()))?;
    let same_chat = || match string("chat_id") {
        Some(other) if other != chat_id => Err(schema(format!(
            "`chat_id` `{other}` is not this socket's chat `{chat_id}`"
        ))),
        _ => Ok(()),
    };
    match kind.as_str() {
        "user.input.submit" => {
            if string("chat_id").is_none() {
                return Err(schema("user.input.submit needs `chat_id`".to_owned()));
            }
            same_chat()?;
            let text = string("text")
                .ok_or_else(|| schema("user.input.submit needs `text`".to_owned()))?;
            Ok(ClientMessage::Submit {
                text,
                request_id: string("input_request_id").or_else(|| string("request_id")),
            })
        }
        "ui_tool_response" => {
            let event_id = string("eventId")
                .or_else(|| string("event_id"))
                .or_else(|| string("ui_tool_id"))
                .ok_or_else(|| schema("ui_tool_response needs `eventId`".to_owned()))?;
            let response = fields
                .get("response")
                .cloned()
                .ok_or_else(|| schema("ui_tool_response needs `response`".to_owned()))?;
            Ok(ClientMessage::UiToolResponse { event_id, response })
        }
        "client.resume" => {
            same_chat()?;
            let last_index = match fields.get("lastClientIndex") {
                None | Some(Value::Null) => -1,
                Some(value) => value.as_i64().ok_or_else(|| {
                    schema("`lastClientIndex` must be an integer (-1: nothing seen)".to_owned())
                })?,
            };
            Ok(ClientMessage::Resume { last_index })
        }
        other => match UNSUPPORTED.iter().find(|(name, _, _)| *name == other) {
            Some((_, code, why)) => Err(refuse(code, format!("`{other}` is not supported: {why}"))),
            None => Err(schema(format!(
                "unknown message type `{other}`; mozaiks takes user.input.submit, ui_tool_response and client.resume"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn messages_decode_and_the_rest_is_refused_with_a_code() {
        let submit = decode(
            &format!(
                r#"{{"type":"user.input.submit","chat_id":"{CHAT}","text":"hi","input_request_id":"x"}}"#
            ),
            CHAT,
        );
        assert_eq!(
            submit,
            Ok(ClientMessage::Submit {
                text: "hi".into(),
                request_id: Some("x".into())
            })
        );
        assert_eq!(
            decode(r#"{"type":"client.resume","lastClientIndex":4}"#, CHAT),
            Ok(ClientMessage::Resume { last_index: 4 })
        );
        assert_eq!(
            decode(
                r#"{"kind":"ui_tool_response","eventId":"e","response":{}}"#,
                CHAT
            ),
            Ok(ClientMessage::UiToolResponse {
                event_id: "e".into(),
                response: serde_json::json!({})
            })
        );
        for (text, code) in [
            ("nope", "SCHEMA_VALIDATION_FAILED"),
            (
                r#"{"type":"user.input.submit","text":"hi"}"#,
                "SCHEMA_VALIDATION_FAILED",
            ),
            (
                r#"{"type":"user.input.submit","chat_id":"other","text":"hi"}"#,
                "SCHEMA_VALIDATION_FAILED",
            ),
            (r#"{"type":"whatever"}"#, "SCHEMA_VALIDATION_FAILED"),
            (
                r#"{"type":"chat.enter_general_mode"}"#,
                "GENERAL_MODE_FAILED",
            ),
            (
                r#"{"type":"chat.start_workflow","workflow_name":"x"}"#,
                "START_WORKFLOW_FAILED",
            ),
        ] {
            assert_eq!(decode(text, CHAT).unwrap_err().code, code, "{text}");
        }
    }
}
