//! What a store handle knows of its own leases: whether it joined a
//! cluster, and the fencing token it holds for each chat
//! (`store::cluster`, "Fencing"). Shared by every clone of the handle,
//! the group-commit batcher's included, so an acquisition made through
//! one clone fences the appends of all.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The handle's cluster membership and held tokens.
#[derive(Debug, Default)]
pub(super) struct Fence {
    state: Mutex<State>,
}

/// The guarded part of [`Fence`].
#[derive(Debug, Default)]
struct State {
    /// The server id given to `join`; `None` outside cluster mode.
    member: Option<String>,
    /// Chat id → the token of this handle's last acquisition.
    tokens: HashMap<String, u64>,
}

/// How an append to a chat is fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guard {
    /// Neither joined nor holding a token: appends as a single server does.
    Open,
    /// Holds this token: the event carries it, and the append is refused
    /// once the chat's log holds a larger one.
    Token(u64),
    /// Joined, and holds no lease for the chat: the append is refused.
    NotHeld,
}

impl Fence {
    /// The state, even if a thread panicked while holding the lock (every
    /// update leaves it consistent).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the handle a cluster member called `server_id`.
    pub(super) fn join(&self, server_id: &str) {
        self.state().member = Some(server_id.to_owned());
    }

    /// Records the token of a new acquisition of `chat_id`.
    pub(super) fn hold(&self, chat_id: &str, token: u64) {
        self.state().tokens.insert(chat_id.to_owned(), token);
    }

    /// Forgets the token held for `chat_id`.
    pub(super) fn forget(&self, chat_id: &str) {
        self.state().tokens.remove(chat_id);
    }

    /// How an append to `chat_id` is fenced now.
    pub(super) fn guard(&self, chat_id: &str) -> Guard {
        let state = self.state();
        match state.tokens.get(chat_id) {
            Some(token) => Guard::Token(*token),
            None if state.member.is_some() => Guard::NotHeld,
            None => Guard::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_handle_guards_every_chat_it_holds_no_token_for() {
        let fence = Fence::default();
        assert_eq!(fence.guard("c"), Guard::Open);
        fence.hold("c", 3);
        assert_eq!(fence.guard("c"), Guard::Token(3));
        fence.join("s1");
        assert_eq!(fence.guard("d"), Guard::NotHeld);
        fence.forget("c");
        assert_eq!(fence.guard("c"), Guard::NotHeld);
    }
}
