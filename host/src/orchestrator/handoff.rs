//! Handoffs evaluated in Rust against the chat's context variables: no LLM
//! call is made for them. LLM-decided handoffs are offered as transfer tools
//! ([`transfer_tools`]) and resolved when the agent calls one.

use serde_json::{Map, Value};

use crate::event::HandoffReason;
use crate::llm::ToolDefinition;
use crate::workflow::model::{Handoffs, Target};

/// Prefix of the transfer tools offered for LLM conditions.
pub(crate) const TRANSFER_PREFIX: &str = "transfer_to_";

/// A decided handoff.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// Where control goes.
    pub target: Target,
    /// Why.
    pub reason: HandoffReason,
}

/// Which conditions to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Before the source replies.
    Pre,
    /// After the source replied.
    Post,
}

/// The first context condition of `scope` that holds.
pub(crate) fn by_context(
    handoffs: &Handoffs,
    scope: Scope,
    context: &Map<String, Value>,
) -> Option<Decision> {
    let rules = match scope {
        Scope::Pre => &handoffs.pre,
        Scope::Post => &handoffs.post,
    };
    let lookup = |name: &str| context.get(name).cloned();
    rules
        .iter()
        .find(|(condition, _)| condition.evaluate(&lookup))
        .map(|(condition, target)| Decision {
            target: target.clone(),
            reason: HandoffReason::Context {
                condition: condition.to_string(),
                scope: match scope {
                    Scope::Pre => "pre",
                    Scope::Post => "post",
                }
                .to_owned(),
            },
        })
}

/// The source's after-work fallback.
pub(crate) fn after_work(handoffs: &Handoffs) -> Option<Decision> {
    handoffs.after_work.clone().map(|target| Decision {
        target,
        reason: HandoffReason::AfterWork,
    })
}

/// The name of the transfer tool for `target`.
pub(crate) fn transfer_tool_name(target: &Target) -> String {
    match target {
        Target::Agent(name) => format!("{TRANSFER_PREFIX}{name}"),
        Target::User => format!("{TRANSFER_PREFIX}user"),
        Target::Terminate => "terminate_chat".to_owned(),
    }
}

/// The transfer tools for the source's LLM conditions.
pub(crate) fn transfer_tools(handoffs: &Handoffs) -> Vec<ToolDefinition> {
    handoffs
        .llm
        .iter()
        .map(|(condition, target)| ToolDefinition {
            name: transfer_tool_name(target),
            description: format!("Call this when: {condition}"),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        })
        .collect()
}

/// The target of the transfer tool `name`, if it is one of the source's.
pub(crate) fn transfer_target(handoffs: &Handoffs, name: &str) -> Option<Target> {
    handoffs
        .llm
        .iter()
        .map(|(_, target)| target)
        .find(|target| transfer_tool_name(target) == name)
        .cloned()
}

/// The wire name of a target: the agent, `user` or `terminate`.
pub(crate) fn target_name(target: &Target) -> String {
    match target {
        Target::Agent(name) => name.clone(),
        Target::User => "user".to_owned(),
        Target::Terminate => "terminate".to_owned(),
    }
}

/// The target a wire name stands for.
pub(crate) fn parse_target(name: &str) -> Target {
    match name {
        "user" => Target::User,
        "terminate" => Target::Terminate,
        agent => Target::Agent(agent.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::condition::Condition;
    use serde_json::json;

    fn handoffs() -> Handoffs {
        Handoffs {
            llm: vec![("the user is unhappy".into(), Target::Agent("Fixer".into()))],
            pre: vec![],
            post: vec![
                (
                    Condition::parse("${done} == true").unwrap(),
                    Target::Terminate,
                ),
                (
                    Condition::parse("${count} >= 2").unwrap(),
                    Target::Agent("B".into()),
                ),
            ],
            after_work: Some(Target::User),
        }
    }

    #[test]
    fn first_holding_condition_wins_in_file_order() {
        let context = json!({"done": true, "count": 5});
        let decision = by_context(&handoffs(), Scope::Post, context.as_object().unwrap()).unwrap();
        assert_eq!(decision.target, Target::Terminate);
        let context = json!({"done": false, "count": 5});
        let decision = by_context(&handoffs(), Scope::Post, context.as_object().unwrap()).unwrap();
        assert_eq!(decision.target, Target::Agent("B".into()));
        assert!(by_context(&handoffs(), Scope::Pre, context.as_object().unwrap()).is_none());
    }

    #[test]
    fn transfer_tools_round_trip_to_their_targets() {
        let tools = transfer_tools(&handoffs());
        assert_eq!(tools[0].name, "transfer_to_Fixer");
        assert_eq!(
            transfer_target(&handoffs(), "transfer_to_Fixer"),
            Some(Target::Agent("Fixer".into()))
        );
        assert_eq!(transfer_target(&handoffs(), "transfer_to_B"), None);
    }
}
