//! Starting runs again: the chats that were active when the server last
//! stopped (once, when the store first answers) and those whose run a store
//! outage stopped (each time it answers again). The store monitor
//! (`maintenance`) decides when; this module decides which and how.

use std::sync::PoisonError;

use super::{ChatError, Orchestrator, history};
use crate::event::Envelope;
use crate::store::ChatStatus;

/// Whether a chat with these events needs its run going: it is not waiting
/// for the user or a speaker pick, not interrupted by an error (`continue`
/// starts those), and not ended.
pub(crate) fn needs_run(events: &[Envelope]) -> bool {
    let state = history::RunPosition::of(events);
    !state.interrupted
        && !matches!(
            state.position,
            history::Position::WaitingForUser
                | history::Position::WaitingForSpeaker
                | history::Position::Ended(_)
        )
}

impl Orchestrator {
    /// Starts the runs of chats that were active when the server stopped
    /// (not those waiting for the user: their run starts with the next
    /// message; not those interrupted by an error: `continue` starts them;
    /// in cluster mode, not those another server holds).
    /// Returns how many resumed.
    pub(crate) async fn resume_in_progress(&self) -> Result<usize, ChatError> {
        let filter = crate::store::ChatFilter {
            status: Some(ChatStatus::InProgress),
            ..Default::default()
        };
        let mut resumed = 0;
        for chat in self.shared.store.chats(&filter).await? {
            let events = self.shared.store.events(&chat.chat_id, 0, None).await?;
            if !needs_run(&events) {
                continue;
            }
            let Ok(workflow) = self.workflow(&chat.workflow) else {
                tracing::warn!(
                    chat_id = chat.chat_id,
                    workflow = chat.workflow,
                    "cannot resume: workflow not loaded"
                );
                continue;
            };
            // Cluster mode: another server may run it already.
            if let super::cluster::Owner::Elsewhere(_) = self.own(&chat.chat_id).await? {
                continue;
            }
            let live = self.live(&chat.chat_id);
            self.start_run(&chat, workflow, &live).await?;
            resumed += 1;
        }
        Ok(resumed)
    }

    /// Restarts the runs that stopped because the store failed (call when
    /// the store answers again). Returns how many restarted.
    pub(crate) async fn resume_after_store_failure(&self) -> usize {
        let chats: Vec<String> = std::mem::take(
            &mut *self
                .shared
                .to_resume
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
        .into_iter()
        .collect();
        let mut resumed = 0;
        for chat_id in chats {
            match self.ensure_run(&chat_id).await {
                Ok(_) => resumed += 1,
                Err(ChatError::Store(error)) => {
                    tracing::warn!(chat_id, %error, "store still failing; will retry");
                    self.shared.mark_for_resume(&chat_id);
                }
                // Ended or gone meanwhile: nothing to resume.
                Err(_) => {}
            }
        }
        resumed
    }
}
