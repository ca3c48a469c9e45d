//! Idempotency keys: what names one tool call across its attempts (the
//! `invocation` import), derived from the parts the embedder gives.

use sha2::{Digest, Sha256};

/// Hex digits in a key: 128 bits of SHA-256, short enough for a `data`
/// document id, far past any chance of two calls colliding.
pub const IDEMPOTENCY_KEY_HEX_DIGITS: usize = 32;

/// The key of the call named by `parts` (for the server: the chat, the
/// `seq` of the call's first `tool_call` event and its call id): the first
/// [`IDEMPOTENCY_KEY_HEX_DIGITS`] lowercase hex digits of the SHA-256 of the
/// parts, each prefixed with its length so that no two lists of parts give
/// the same bytes.
pub fn idempotency_key(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"mozaiks idempotency key\n");
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()
        .iter()
        .take(IDEMPOTENCY_KEY_HEX_DIGITS / 2)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_stable_for_the_same_parts_and_differs_for_any_other() {
        let key = idempotency_key(&["chat-1", "7", "call_1"]);
        assert_eq!(key, idempotency_key(&["chat-1", "7", "call_1"]));
        assert_eq!(key.len(), IDEMPOTENCY_KEY_HEX_DIGITS);
        assert!(
            key.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{key}"
        );
        for other in [
            idempotency_key(&["chat-2", "7", "call_1"]),
            idempotency_key(&["chat-1", "8", "call_1"]),
            idempotency_key(&["chat-1", "7", "call_2"]),
            // The length prefix: moving a boundary changes the key.
            idempotency_key(&["chat-17", "", "call_1"]),
            idempotency_key(&["chat-1", "7call_1"]),
        ] {
            assert_ne!(key, other);
        }
    }
}
