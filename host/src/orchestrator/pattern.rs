//! The orchestration patterns: who speaks next when no handoff rule of the
//! current speaker applies.
//!
//! | pattern | after an agent | after the user |
//! |---|---|---|
//! | `DefaultPattern` | the user with human-in-the-loop, else terminate | the last agent (or the initial one) |
//! | `RoundRobinPattern` | the next agent in file order; the user after the last one with human-in-the-loop | the next agent |
//! | `RandomPattern` | a random other agent | a random agent |
//! | `AutoPattern` | the LLM picks (an agent, or the user with human-in-the-loop) | the LLM picks |
//! | `ManualPattern` | the user picks | the user picks |

use rand::Rng;

use crate::event::HandoffReason;
use crate::workflow::Workflow;
use crate::workflow::model::{OrchestrationPattern, Target};

use super::handoff::Decision;

/// What the pattern says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Choice {
    /// This participant.
    Decided(Decision),
    /// Ask the LLM to pick (AutoPattern).
    AskLlm,
    /// Ask the user to pick (ManualPattern).
    AskUser,
}

fn pattern_name(pattern: OrchestrationPattern) -> String {
    format!("{pattern:?}")
}

fn decided(workflow: &Workflow, target: Target) -> Choice {
    Choice::Decided(Decision {
        target,
        reason: HandoffReason::Pattern {
            pattern: pattern_name(workflow.pattern()),
        },
    })
}

/// The next speaker after `agent` finished and none of its handoffs applied.
pub(crate) fn after_agent(workflow: &Workflow, agent: &str, rng: &mut impl Rng) -> Choice {
    let agents = workflow.agents();
    match workflow.pattern() {
        OrchestrationPattern::DefaultPattern => decided(
            workflow,
            if workflow.human_in_the_loop() {
                Target::User
            } else {
                Target::Terminate
            },
        ),
        OrchestrationPattern::RoundRobinPattern => {
            let index = agents.iter().position(|a| a.name == agent).unwrap_or(0);
            let last = index + 1 == agents.len();
            if last && workflow.human_in_the_loop() {
                decided(workflow, Target::User)
            } else {
                let next = &agents[(index + 1) % agents.len()];
                decided(workflow, Target::Agent(next.name.clone()))
            }
        }
        OrchestrationPattern::RandomPattern => {
            let others: Vec<&str> = agents
                .iter()
                .map(|a| a.name.as_str())
                .filter(|name| *name != agent || agents.len() == 1)
                .collect();
            let pick = others[rng.random_range(0..others.len())];
            decided(workflow, Target::Agent(pick.to_owned()))
        }
        OrchestrationPattern::AutoPattern => Choice::AskLlm,
        OrchestrationPattern::ManualPattern => Choice::AskUser,
    }
}

/// The next speaker after the user spoke and none of the user's handoffs
/// applied.
pub(crate) fn after_user(
    workflow: &Workflow,
    last_agent: Option<&str>,
    rng: &mut impl Rng,
) -> Choice {
    let agents = workflow.agents();
    match workflow.pattern() {
        OrchestrationPattern::DefaultPattern => decided(
            workflow,
            Target::Agent(last_agent.unwrap_or(workflow.initial_agent()).to_owned()),
        ),
        OrchestrationPattern::RoundRobinPattern => {
            let next = match last_agent.and_then(|l| agents.iter().position(|a| a.name == l)) {
                Some(index) => &agents[(index + 1) % agents.len()],
                None => workflow
                    .agent(workflow.initial_agent())
                    .unwrap_or(&agents[0]),
            };
            decided(workflow, Target::Agent(next.name.clone()))
        }
        OrchestrationPattern::RandomPattern => {
            let pick = &agents[rng.random_range(0..agents.len())];
            decided(workflow, Target::Agent(pick.name.clone()))
        }
        OrchestrationPattern::AutoPattern => Choice::AskLlm,
        OrchestrationPattern::ManualPattern => Choice::AskUser,
    }
}

/// The candidates a speaker is picked from (agents, and the user with
/// human-in-the-loop).
pub(crate) fn candidates(workflow: &Workflow) -> Vec<String> {
    let mut names: Vec<String> = workflow.agents().iter().map(|a| a.name.clone()).collect();
    if workflow.human_in_the_loop() {
        names.push("user".to_owned());
    }
    names
}

/// Reads the LLM's pick: the candidate named in `reply` (exact, then
/// case-insensitive, then the first one mentioned).
pub(crate) fn parse_pick(reply: &str, candidates: &[String]) -> Option<String> {
    let reply = reply
        .trim()
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
    if let Some(exact) = candidates.iter().find(|c| c.as_str() == reply) {
        return Some(exact.clone());
    }
    if let Some(folded) = candidates.iter().find(|c| c.eq_ignore_ascii_case(reply)) {
        return Some(folded.clone());
    }
    let lower = reply.to_ascii_lowercase();
    candidates
        .iter()
        .filter_map(|c| lower.find(&c.to_ascii_lowercase()).map(|at| (at, c)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_read_leniently() {
        let candidates = vec!["Planner".to_owned(), "Reviewer".to_owned()];
        assert_eq!(
            parse_pick("Reviewer", &candidates).as_deref(),
            Some("Reviewer")
        );
        assert_eq!(
            parse_pick(" planner.", &candidates).as_deref(),
            Some("Planner")
        );
        assert_eq!(
            parse_pick("I think Reviewer should, not Planner", &candidates).as_deref(),
            Some("Reviewer")
        );
        assert_eq!(parse_pick("nobody", &candidates), None);
    }
}
