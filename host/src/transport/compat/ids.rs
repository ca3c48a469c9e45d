//! The ids the compatibility layer hands out, each naming its chat so a
//! MozaiksAI route that carries only the id (`POST /api/ui-tool/submit`,
//! `POST /api/user-input/submit`) finds the chat without memory of its own.
//! Clients treat them as opaque strings, as ChatUI does.

/// A chat id is 32 hex digits (docs/protocol.md, Overview).
const CHAT_ID_LEN: usize = 32;

/// The `corr`/`eventId` of a UI request: `ui-<chat_id>-<request_id>`.
pub(crate) fn ui_event_id(chat_id: &str, request_id: &str) -> String {
    format!("ui-{chat_id}-{request_id}")
}

/// The chat and request of a [`ui_event_id`].
pub(crate) fn parse_ui_event_id(event_id: &str) -> Option<(&str, &str)> {
    split(event_id.strip_prefix("ui-")?)
}

/// The `request_id` of an input request: `input-<chat_id>-<seq>`, the
/// `seq` of the `run_status` that made the run wait for the user.
pub(crate) fn input_request_id(chat_id: &str, seq: u64) -> String {
    format!("input-{chat_id}-{seq}")
}

/// The chat of an [`input_request_id`], and the rest of the id.
pub(crate) fn parse_input_request_id(request_id: &str) -> Option<(&str, &str)> {
    split(request_id.strip_prefix("input-")?)
}

fn split(rest: &str) -> Option<(&str, &str)> {
    let chat = rest.get(..CHAT_ID_LEN)?;
    let tail = rest.get(CHAT_ID_LEN..)?.strip_prefix('-')?;
    (chat.bytes().all(|b| b.is_ascii_hexdigit()) && !tail.is_empty()).then_some((chat, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_chat() {
        let chat = "0123456789abcdef0123456789abcdef";
        let id = ui_event_id(chat, "7e22de1b-e8a0");
        assert_eq!(parse_ui_event_id(&id), Some((chat, "7e22de1b-e8a0")));
        let id = input_request_id(chat, 6);
        assert_eq!(parse_input_request_id(&id), Some((chat, "6")));
        assert_eq!(parse_ui_event_id("ui-short-x"), None);
        assert_eq!(parse_input_request_id(&ui_event_id(chat, "x")), None);
    }
}
