//! The golden MongoDB documents (`tests/golden/mongo/*.json`, the
//! documents as serde writes them in JSON): a `chat_sessions` document and an `events`
//! document, written and read back by the functions the store uses.

use mongodb::bson::Document;

use super::documents::{chat_document, decode_chat, decode_event, event_document};
use crate::golden;
use crate::store::golden::{chat_record, stored_envelope};

fn extjson(document: Document) -> String {
    serde_json::to_string_pretty(&document).unwrap()
}

fn read(name: &str) -> Document {
    let text = std::fs::read_to_string(golden::dir("mongo").join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn mongo_documents_match_their_golden_files() {
    let chat = chat_document("test", &chat_record()).unwrap();
    let event = event_document("test", "insert-id-1", &stored_envelope()).unwrap();
    let cases = vec![
        ("chat_session".to_owned(), extjson(chat)),
        ("event".to_owned(), extjson(event)),
    ];
    golden::check(&golden::dir("mongo"), &cases);
    if std::env::var_os("MOZAIKS_BLESS").is_none() {
        let stored = decode_chat(&read("chat_session")).unwrap();
        assert_eq!(stored.record, chat_record());
        assert_eq!(stored.applied_seq, chat_record().last_seq);
        let envelope = decode_event(&read("event"), &stored_envelope().chat_id).unwrap();
        assert_eq!(envelope, stored_envelope());
    }
}
