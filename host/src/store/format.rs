//! The stored form of an event: the wire [`Envelope`] plus a
//! `format_version`, so that a later change to the event format can still
//! read the chats written before it.
//!
//! Both stores keep an event as this JSON text (the embedded store as the
//! value of its `events` table, MongoDB in the event document's `json`
//! field). The version is the stored data's, not the protocol's: it is
//! never sent to clients.
//!
//! | `format_version` | written by | shape |
//! | --- | --- | --- |
//! | absent | mozaiks before the field existed | the envelope as sent |
//! | 1 | now | the envelope as sent, plus `format_version` |
//!
//! A version newer than [`STORED_EVENT_FORMAT`] is refused as corrupt
//! (`written by a newer mozaiks`) rather than read wrongly.

use serde::de::Error as _;
use serde::{Deserialize, Serialize};

use crate::event::Envelope;

/// The version of the stored event format this build writes.
pub(crate) const STORED_EVENT_FORMAT: u32 = 1;

#[derive(Serialize)]
struct Writing<'a> {
    format_version: u32,
    #[serde(flatten)]
    envelope: &'a Envelope,
}

#[derive(Deserialize)]
struct Reading {
    /// Absent in events stored before the field existed: their shape is
    /// that of version 1.
    #[serde(default)]
    format_version: Option<u32>,
    #[serde(flatten)]
    envelope: Envelope,
}

/// The JSON text an event is stored as.
pub(crate) fn encode_event(envelope: &Envelope) -> serde_json::Result<String> {
    serde_json::to_string(&Writing {
        format_version: STORED_EVENT_FORMAT,
        envelope,
    })
}

/// The event a stored JSON text holds, whichever version wrote it.
pub(crate) fn decode_event(json: &str) -> serde_json::Result<Envelope> {
    let reading: Reading = serde_json::from_str(json)?;
    match reading.format_version {
        None | Some(1) => Ok(reading.envelope),
        Some(newer) => Err(serde_json::Error::custom(format!(
            "stored event format {newer} was written by a newer mozaiks (this one reads up to {STORED_EVENT_FORMAT})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{ErrorCode, Event};

    fn envelope() -> Envelope {
        Envelope {
            seq: Some(7),
            chat_id: "c1".into(),
            ts: 1_700_000_000_000,
            event: Event::Error {
                code: ErrorCode::LlmTimeout,
                message: "slow".into(),
            },
        }
    }

    #[test]
    fn a_stored_event_carries_its_format_version_and_the_wire_form_does_not() {
        let stored: serde_json::Value =
            serde_json::from_str(&encode_event(&envelope()).unwrap()).unwrap();
        assert_eq!(stored["format_version"], json!(STORED_EVENT_FORMAT));
        let sent = serde_json::to_value(envelope()).unwrap();
        assert!(sent.get("format_version").is_none(), "{sent}");
        assert_eq!(decode_event(&stored.to_string()).unwrap(), envelope());
    }

    /// Chats stored before the field existed keep reading: this is the text
    /// such a server wrote.
    #[test]
    fn an_event_stored_without_a_format_version_still_reads() {
        let old = r#"{"seq":7,"chat_id":"c1","ts":1700000000000,"type":"error","code":"LLM_TIMEOUT","message":"slow"}"#;
        assert_eq!(decode_event(old).unwrap(), envelope());
    }

    #[test]
    fn an_event_from_a_newer_format_is_refused_not_misread() {
        let newer = r#"{"format_version":2,"seq":7,"chat_id":"c1","ts":1,"type":"error","code":"LLM_TIMEOUT","message":"slow"}"#;
        let error = decode_event(newer).unwrap_err().to_string();
        assert!(error.contains("newer mozaiks"), "{error}");
    }
}
