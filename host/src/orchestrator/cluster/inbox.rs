//! Inputs for chats another server runs: checked here against the chat's
//! log, then queued in the database for the owner, whose inbox loop takes
//! them every 25 ms and applies them through the same code as a request
//! made to it. The encoding is this module's own ([`Input`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Membership, Orchestrator, Owner};
use crate::event::{Event, RunStatus, now_ms};
use crate::orchestrator::{ChatError, RunInput, RunPosition};
use crate::store::cluster::InboxItem;

/// How often the owner looks for inputs: the delay an input through
/// another server adds, at most.
const INBOX_PERIOD: Duration = Duration::from_millis(25);

/// A request for a chat's run, as queued for its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Input {
    /// The user said something.
    UserMessage {
        /// What.
        text: String,
    },
    /// ManualPattern: the user picked the next speaker.
    SelectSpeaker {
        /// The agent.
        agent: String,
    },
    /// Continue an interrupted run.
    Continue,
    /// The answer to an open UI request.
    UiAnswer {
        /// The request.
        request_id: String,
        /// The answer.
        answer: Value,
    },
    /// End the chat.
    End,
}

impl From<RunInput> for Input {
    fn from(input: RunInput) -> Self {
        match input {
            RunInput::UserMessage(text) => Self::UserMessage { text },
            RunInput::SelectSpeaker(agent) => Self::SelectSpeaker { agent },
            RunInput::Continue => Self::Continue,
        }
    }
}

impl Orchestrator {
    /// Checks `input` for a chat another server holds against the chat's
    /// log, as the owner would, and queues it for the owner. If the lease
    /// turns out free (its owner gave it up meanwhile), this server takes
    /// the chat and applies what is queued itself.
    pub(crate) async fn send_elsewhere(
        &self,
        chat_id: &str,
        input: Input,
    ) -> Result<(), ChatError> {
        let Some(membership) = self.shared.leases() else {
            return Err(ChatError::Store(crate::store::StoreError::Backend(
                "an input for another server outside cluster mode".to_owned(),
            )));
        };
        let events = self.shared.store.events(chat_id, 0, None).await?;
        match &input {
            Input::UserMessage { text } => {
                let status = last_status(&events);
                if !super::super::check_turn(&RunInput::UserMessage(text.clone()), status)? {
                    return Ok(());
                }
            }
            Input::SelectSpeaker { agent } => {
                let status = last_status(&events);
                if !super::super::check_turn(&RunInput::SelectSpeaker(agent.clone()), status)? {
                    return Ok(());
                }
            }
            Input::Continue => {
                if !super::super::check_turn(&RunInput::Continue, last_status(&events))? {
                    return Ok(());
                }
            }
            Input::UiAnswer { request_id, .. } => {
                if !RunPosition::of(&events)
                    .open_ui_requests
                    .contains(request_id)
                {
                    return Err(ChatError::UiRequestNotOpen(request_id.clone()));
                }
            }
            Input::End => {}
        }
        let item = InboxItem {
            id: uuid::Uuid::new_v4().simple().to_string(),
            chat_id: chat_id.to_owned(),
            input: serde_json::to_value(&input).map_err(|e| {
                ChatError::Store(crate::store::StoreError::Backend(format!(
                    "encoding an input: {e}"
                )))
            })?,
            sent_at: now_ms(),
        };
        membership.store.send_input(&item).await?;
        let lease = membership.store.lease(chat_id).await?;
        if !lease.is_some_and(|l| l.is_held(now_ms())) {
            // Given up meanwhile: nobody would take the input.
            if self.own(chat_id).await? == Owner::Here {
                self.take_own_inputs(membership, &[chat_id.to_owned()])
                    .await?;
            }
        }
        Ok(())
    }

    /// Takes the queued inputs of these chats (held here) and applies them.
    async fn take_own_inputs(
        &self,
        membership: &Membership,
        chat_ids: &[String],
    ) -> Result<(), ChatError> {
        for item in membership.store.take_inputs(chat_ids).await? {
            self.apply_input(item).await;
        }
        Ok(())
    }

    /// Applies an input another server queued, as a request to this server
    /// would be. It was checked when it was sent; one the run no longer
    /// takes is logged and dropped.
    pub(super) fn apply_input(&self, item: InboxItem) -> futures_util::future::BoxFuture<'_, ()> {
        // Boxed: applying an input may route it on (the chat moved again),
        // which may apply inputs.
        Box::pin(self.apply(item))
    }

    async fn apply(&self, item: InboxItem) {
        let input = match serde_json::from_value::<Input>(item.input) {
            Ok(input) => input,
            Err(error) => {
                tracing::warn!(chat_id = item.chat_id, %error, "an unreadable input from another server; dropped");
                return;
            }
        };
        let chat_id = item.chat_id.as_str();
        let applied = match input {
            Input::UserMessage { text } => self.send(chat_id, RunInput::UserMessage(text)).await,
            Input::SelectSpeaker { agent } => {
                self.send(chat_id, RunInput::SelectSpeaker(agent)).await
            }
            Input::Continue => self.send(chat_id, RunInput::Continue).await,
            Input::UiAnswer { request_id, answer } => {
                self.answer_ui(chat_id, &request_id, answer).await
            }
            Input::End => self.end_chat(chat_id).await,
        };
        if let Err(error) = applied {
            tracing::info!(chat_id, %error, "an input sent through another server was not taken");
        }
    }
}

/// The run status the log last recorded.
fn last_status(events: &[crate::event::Envelope]) -> Option<RunStatus> {
    events.iter().rev().find_map(|e| match e.event {
        Event::RunStatus { status, .. } => Some(status),
        _ => None,
    })
}

/// Takes and applies the inputs of the chats this server holds, every
/// [`INBOX_PERIOD`], until aborted. Not while the server stops: the inputs
/// stay queued for the chat's next owner.
pub(super) async fn run(orchestrator: Orchestrator) {
    let Some(membership) = orchestrator.shared.membership.get().cloned() else {
        return;
    };
    let mut ticks = tokio::time::interval(INBOX_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !orchestrator.serving() {
            continue;
        }
        let held = membership.held();
        if held.is_empty() {
            continue;
        }
        if let Err(error) = orchestrator.take_own_inputs(&membership, &held).await {
            tracing::warn!(%error, "reading the inbox failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each input is stored as a small tagged object and read back the
    /// same; an unknown kind or field does not decode (it is dropped with
    /// a warning instead of being guessed at).
    #[test]
    fn inputs_round_trip_through_their_stored_form() {
        let inputs = [
            (
                Input::from(RunInput::UserMessage("hi".into())),
                serde_json::json!({"kind": "user_message", "text": "hi"}),
            ),
            (
                Input::from(RunInput::SelectSpeaker("Writer".into())),
                serde_json::json!({"kind": "select_speaker", "agent": "Writer"}),
            ),
            (
                Input::from(RunInput::Continue),
                serde_json::json!({"kind": "continue"}),
            ),
            (
                Input::UiAnswer {
                    request_id: "r1".into(),
                    answer: serde_json::json!({"approved": true}),
                },
                serde_json::json!({"kind": "ui_answer", "request_id": "r1", "answer": {"approved": true}}),
            ),
            (Input::End, serde_json::json!({"kind": "end"})),
        ];
        for (input, stored) in inputs {
            assert_eq!(serde_json::to_value(&input).unwrap(), stored);
            assert_eq!(serde_json::from_value::<Input>(stored).unwrap(), input);
        }
        for unreadable in [
            serde_json::json!({"kind": "reboot"}),
            serde_json::json!({"kind": "user_message", "text": "hi", "to": "x"}),
        ] {
            assert!(serde_json::from_value::<Input>(unreadable).is_err());
        }
    }
}
