//! The golden stored documents: the shapes the stores keep on disk
//! (`tests/golden/stored/`), so that a change that would make old chats
//! unreadable shows up as a failing test and a reviewed diff. The events
//! inside are those of `tests/golden/events/`; here it is the wrapping
//! that is checked.

use crate::event::golden::examples;
use crate::event::{Envelope, Event, RunStatus};
use crate::golden;
use crate::store::format::{decode_event, encode_event};
use crate::store::{ChatRecord, ChatStatus};

/// A chat as both stores know it.
pub(crate) fn chat_record() -> ChatRecord {
    ChatRecord {
        chat_id: "f15dbebbc8b44d7abd2d8583219702b6".into(),
        app_id: "acme".into(),
        user_id: "alice".into(),
        workflow: "Approval".into(),
        workflow_version: "3f2a9c1d".into(),
        cache_seed: 678_326_244,
        status: ChatStatus::Completed,
        ended_reason: Some("terminated by handoff".into()),
        created_at: 1_795_936_178_000,
        updated_at: 1_795_936_179_000,
        last_seq: 12,
        prompt_tokens: 120,
        completion_tokens: 45,
    }
}

/// One persisted event, as stored.
pub(crate) fn stored_envelope() -> Envelope {
    Envelope {
        seq: Some(3),
        chat_id: "f15dbebbc8b44d7abd2d8583219702b6".into(),
        ts: 1_795_936_178_543,
        event: Event::RunStatus {
            status: RunStatus::WaitingForUser,
            reason: None,
        },
    }
}

/// The embedded store's `chats` value and `events` value (the latter is
/// also the `json` field of a MongoDB event document).
#[test]
fn stored_records_match_their_golden_files() {
    let event = encode_event(&stored_envelope()).unwrap();
    let cases = vec![
        (
            "chat_record".to_owned(),
            serde_json::to_string_pretty(&chat_record()).unwrap(),
        ),
        ("event".to_owned(), event),
    ];
    golden::check(&golden::dir("stored"), &cases);
}

/// Every persisted golden event survives the stored form, and the stored
/// form of the golden files still reads (the round trip of old chats).
#[test]
fn every_golden_event_reads_back_from_its_stored_form() {
    for (name, envelope) in examples() {
        if !envelope.event.is_persisted() {
            continue;
        }
        let stored = encode_event(&envelope).unwrap();
        assert_eq!(decode_event(&stored).unwrap(), envelope, "{name}");
        // The wire form is what servers before `format_version` stored.
        let old = serde_json::to_string(&envelope).unwrap();
        assert_eq!(decode_event(&old).unwrap(), envelope, "{name} (old format)");
    }
    if std::env::var_os("MOZAIKS_BLESS").is_none() {
        let text = std::fs::read_to_string(golden::dir("stored").join("event.json")).unwrap();
        assert_eq!(decode_event(text.trim_end()).unwrap(), stored_envelope());
        let text = std::fs::read_to_string(golden::dir("stored").join("chat_record.json")).unwrap();
        assert_eq!(
            serde_json::from_str::<ChatRecord>(&text).unwrap(),
            chat_record()
        );
    }
}
