//! The user's `llm` handoff conditions in the run: classified once per user
//! message ([`crate::orchestrator::user_conditions`]), the outcome persisted
//! as a `user_conditions_checked` event, which a resumed run reads instead of
//! asking again.

use super::{Run, RunError, turn};
use crate::event::{Event, HandoffReason};
use crate::orchestrator::handoff::Decision;
use crate::orchestrator::user_conditions::{self, CLASSIFIER};
use crate::workflow::model::Handoffs;

impl Run {
    /// The handoff an `llm` condition of the user's rules decides after the
    /// user's message, if one holds. Makes the classification call unless
    /// the log already has its outcome for this message.
    pub(super) async fn by_user_llm_condition(
        &mut self,
        user: &Handoffs,
    ) -> Result<Option<Decision>, RunError> {
        if user.llm.is_empty() {
            return Ok(None);
        }
        let holds = match self.state.user_conditions.clone() {
            Some(holds) => holds,
            None => self.classify(user).await?,
        };
        Ok(holds.and_then(|condition| {
            let (_, target) = user.llm.iter().find(|(text, _)| *text == condition)?;
            Some(Decision {
                target: target.clone(),
                reason: HandoffReason::UserCondition { condition },
            })
        }))
    }

    async fn classify(&mut self, user: &Handoffs) -> Result<Option<String>, RunError> {
        let conditions: Vec<String> = user.llm.iter().map(|(text, _)| text.clone()).collect();
        let events: Vec<&Event> = self.events.iter().map(|e| &e.event).collect();
        let request = user_conditions::request(
            self.shared.llm.default_model(),
            &conditions,
            &events,
            Some(i64::from(self.chat.cache_seed)),
            self.shared.llm_timeout,
        );
        let llm = self.shared.llm.clone();
        let mut on_retry = turn::retry_reporter(&self.live, CLASSIFIER);
        let response = llm
            .complete_with_retries(request, &mut |_| {}, &mut on_retry)
            .await
            .map_err(|error| RunError::Llm {
                agent: CLASSIFIER.to_owned(),
                error,
            })?;
        if let Some(usage) = response.usage {
            self.emit(Event::Usage {
                agent: CLASSIFIER.to_owned(),
                model: response.model.clone(),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            })
            .await?;
        }
        let holds = user_conditions::read_answer(&response.content, conditions.len())
            .and_then(|i| conditions.get(i).cloned());
        self.emit(Event::UserConditionsChecked {
            conditions,
            holds: holds.clone(),
            answer: response.content,
        })
        .await?;
        Ok(holds)
    }
}
