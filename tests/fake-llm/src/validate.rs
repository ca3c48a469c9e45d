//! The request checks the real API applies and a fake must not skip: each
//! returns OpenAI's wording, so a test against the fake fails the way a
//! run against the real API would.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::call::role;

/// The longest name OpenAI accepts for a message author or a tool.
const MAX_NAME_LEN: usize = 64;

/// The first problem with a chat completion request body, if any.
pub(crate) fn check(body: &Value) -> Result<(), String> {
    if !body.is_object() {
        return Err("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)".to_owned());
    }
    if body
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("you must provide a model parameter".to_owned());
    }
    let messages = match body.get("messages").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => m,
        Some(_) => return Err("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".to_owned()),
        None => return Err("Missing required parameter: 'messages'.".to_owned()),
    };
    if body.get("stream_options").is_some_and(|o| !o.is_null())
        && body.get("stream").and_then(Value::as_bool) != Some(true)
    {
        return Err(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.".to_owned(),
        );
    }
    check_messages(messages)?;
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for (i, tool) in tools.iter().enumerate() {
            let name = tool.pointer("/function/name").and_then(Value::as_str);
            check_name(&format!("tools[{i}].function.name"), name.unwrap_or(""))?;
        }
    }
    if let Some(name) = body
        .pointer("/response_format/json_schema/name")
        .and_then(Value::as_str)
    {
        check_name("response_format.json_schema.name", name)?;
    }
    Ok(())
}

fn check_messages(messages: &[Value]) -> Result<(), String> {
    // Tool call ids announced by the latest assistant message and not yet
    // answered by a `tool` message.
    let mut open: BTreeSet<String> = BTreeSet::new();
    let mut answered_any = false;
    for (i, message) in messages.iter().enumerate() {
        let role = role(message);
        if role != "tool" && !open.is_empty() {
            return Err(format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                open.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        match role {
            "system" | "developer" | "user" => {}
            "assistant" => {
                answered_any = false;
                for call in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let id = call.get("id").and_then(Value::as_str).unwrap_or("");
                    open.insert(id.to_owned());
                }
                let has_content = message.get("content").is_some_and(|c| !c.is_null());
                if !has_content && open.is_empty() {
                    return Err(format!(
                        "Invalid value for 'content': expected a string, got null. (messages[{i}])"
                    ));
                }
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !open.remove(id) {
                    let why = if answered_any {
                        format!("unknown or repeated tool_call_id '{id}'")
                    } else {
                        "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'".to_owned()
                    };
                    return Err(format!("Invalid parameter: {why}. (messages[{i}])"));
                }
                answered_any = true;
            }
            other => {
                return Err(format!(
                    "Invalid value: '{other}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'. (messages[{i}].role)"
                ));
            }
        }
        if let Some(name) = message.get("name").and_then(Value::as_str) {
            check_name(&format!("messages[{i}].name"), name)?;
        }
    }
    if !open.is_empty() {
        return Err(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            open.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

/// `^[a-zA-Z0-9_-]{1,64}$`, the pattern for author, tool and schema names.
fn check_name(field: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Invalid '{field}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,{MAX_NAME_LEN}}}$'. Got '{name}'."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(messages: Value) -> Value {
        json!({"model": "m", "messages": messages})
    }

    #[test]
    fn accepts_a_tool_round_trip() {
        let b = body(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "b", "content": "1"},
            {"role": "tool", "tool_call_id": "a", "content": "2"},
            {"role": "assistant", "name": "Writer_1", "content": "done"}
        ]));
        assert_eq!(check(&b), Ok(()));
    }

    #[test]
    fn rejects_a_tool_message_without_a_preceding_tool_call() {
        let b = body(json!([
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "a", "content": "1"}
        ]));
        let err = check(&b).unwrap_err();
        assert!(
            err.contains("preceeding message with 'tool_calls'"),
            "{err}"
        );
    }

    #[test]
    fn rejects_an_unanswered_tool_call() {
        let b = body(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "user", "content": "well?"}
        ]));
        let err = check(&b).unwrap_err();
        assert!(err.contains("did not have response messages: a"), "{err}");
    }

    #[test]
    fn rejects_a_message_name_with_spaces() {
        let b = body(json!([{"role": "user", "name": "Jane Doe", "content": "hi"}]));
        let err = check(&b).unwrap_err();
        assert!(err.contains("messages[0].name"), "{err}");
    }

    #[test]
    fn rejects_stream_options_without_stream() {
        let mut b = body(json!([{"role": "user", "content": "hi"}]));
        b["stream_options"] = json!({"include_usage": true});
        assert!(check(&b).unwrap_err().contains("stream_options"));
    }
}
