//! AG2's `max_consecutive_auto_reply`: an agent's turns since the user last
//! spoke.
//!
//! What counts: every turn the agent starts (a `speaker` event naming it)
//! after the chat's last `user_message`; a user message sets every agent's
//! count back to zero, as human input resets AG2's counter. A `pre`
//! handoff that skips the agent is no reply and does not count. When an
//! agent with a limit is about to start a turn and already has `limit` of
//! them, it does not start it: the run hands off to the user (or, without
//! `human_in_the_loop`, to `terminate`), as AG2 stops an agent's automatic
//! replies there. The count is read from the event log, so a resumed run
//! counts the same.

use crate::event::Event;

/// The agent's turns since the last user message in `events` (oldest
/// first).
pub(crate) fn consecutive_turns<'a>(
    events: impl DoubleEndedIterator<Item = &'a Event>,
    agent: &str,
) -> u32 {
    let mut turns = 0;
    for event in events.rev() {
        match event {
            Event::UserMessage { .. } => break,
            Event::Speaker { agent: speaker, .. } if speaker == agent => turns += 1,
            _ => {}
        }
    }
    turns
}

/// `Some(limit)` when `agent`, with this `limit`, may not start another
/// turn now.
pub(crate) fn limit_reached<'a>(
    events: impl DoubleEndedIterator<Item = &'a Event>,
    agent: &str,
    limit: Option<u32>,
) -> Option<u32> {
    let limit = limit?;
    (consecutive_turns(events, agent) >= limit).then_some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speaker(agent: &str, turn: u32) -> Event {
        Event::Speaker {
            agent: agent.into(),
            turn,
        }
    }

    #[test]
    fn counts_the_agents_turns_since_the_last_user_message() {
        let events = [
            speaker("A", 1),
            Event::UserMessage { text: "hi".into() },
            speaker("A", 2),
            speaker("B", 3),
            speaker("A", 4),
        ];
        assert_eq!(consecutive_turns(events.iter(), "A"), 2);
        assert_eq!(consecutive_turns(events.iter(), "B"), 1);
        assert_eq!(limit_reached(events.iter(), "A", Some(2)), Some(2));
        assert_eq!(limit_reached(events.iter(), "A", Some(3)), None);
        assert_eq!(limit_reached(events.iter(), "A", None), None);
    }
}
