//! Warnings about handoff rules that can never fire.
//!
//! Rules are grouped per source and checked in file order within a group
//! (docs/workflows.md, "handoffs.json"): `pre` expressions, `post`
//! expressions, LLM conditions, then the one `after_work`. A rule is dead
//! when an earlier rule of its group has the same condition, when its
//! expression reads no variable and is false, or when an earlier rule of its
//! group reads no variable and is always true. The workflow still loads:
//! a dead rule is a porter's mistake to hear about, not a broken workflow.

use std::collections::BTreeMap;

use super::{HANDOFFS_FILE, USER, Validator};
use crate::workflow::condition::{Condition, Operand};
use crate::workflow::diagnostic::JsonPath;
use crate::workflow::spec::{ConditionScope, ConditionType, HandoffRule, HandoffType};

/// Which group of a source's rules a rule is checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Pre,
    Post,
    Llm,
    AfterWork,
}

impl Group {
    fn of(rule: &HandoffRule) -> Option<Self> {
        match (rule.handoff_type, rule.condition_type, rule.condition_scope) {
            (HandoffType::AfterWork, _, _) => Some(Self::AfterWork),
            (HandoffType::Condition, Some(ConditionType::Llm), _) => Some(Self::Llm),
            (
                HandoffType::Condition,
                Some(ConditionType::Expression),
                Some(ConditionScope::Pre),
            ) => Some(Self::Pre),
            (HandoffType::Condition, Some(ConditionType::Expression), _) => Some(Self::Post),
            (HandoffType::Condition, None, _) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Pre => "pre",
            Self::Post => "post",
            Self::Llm => "llm",
            Self::AfterWork => "after_work",
        }
    }
}

/// One rule as the check sees it.
struct Seen {
    index: usize,
    group: Group,
    /// The condition, normalised (expressions as parsed and printed).
    key: String,
    /// For expressions that read no variable: their fixed value.
    constant: Option<bool>,
}

impl Validator<'_> {
    /// Warns about every rule of `rules` that can never fire.
    pub(super) fn unreachable_rules(&mut self, rules: &[HandoffRule]) {
        let mut by_source: BTreeMap<&str, Vec<Seen>> = BTreeMap::new();
        for (index, rule) in rules.iter().enumerate() {
            let Some(group) = Group::of(rule) else {
                continue;
            };
            let text = rule.condition.as_deref().unwrap_or("").trim();
            let (key, constant) = match group {
                Group::Pre | Group::Post => match Condition::parse(text) {
                    Ok(condition) => (condition.to_string(), fixed_value(&condition)),
                    // A load error already.
                    Err(_) => continue,
                },
                Group::Llm => (
                    text.split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .to_lowercase(),
                    None,
                ),
                Group::AfterWork => (String::new(), None),
            };
            by_source
                .entry(rule.source_agent.as_str())
                .or_default()
                .push(Seen {
                    index,
                    group,
                    key,
                    constant,
                });
        }
        let before = self.diagnostics.len();
        for (source, seen) in by_source {
            self.check_source(source, &seen);
        }
        // Report in file order, not source by source.
        if let Some(found) = self.diagnostics.get_mut(before..) {
            found.sort_by_key(|d| rule_index(&d.json_path));
        }
    }

    fn check_source(&mut self, source: &str, seen: &[Seen]) {
        let at = |i: usize| JsonPath::root().key("handoff_rules").index(i);
        for (n, rule) in seen.iter().enumerate() {
            let earlier = seen.get(..n).unwrap_or_default();
            if rule.group != Group::AfterWork
                && let Some(same) = earlier
                    .iter()
                    .find(|e| e.group == rule.group && e.key == rule.key)
            {
                self.warn(
                    HANDOFFS_FILE,
                    at(rule.index),
                    format!(
                        "this rule never fires: rule [{}] of \"{source}\" has the same {} condition and is checked first",
                        same.index,
                        rule.group.name()
                    ),
                    Some("remove one of them, or change its target".to_owned()),
                );
                continue;
            }
            if rule.constant == Some(false) {
                self.warn(
                    HANDOFFS_FILE,
                    at(rule.index),
                    "this rule never fires: its condition reads no context variable and is always false",
                    Some("conditions test variables: ${name} == value".to_owned()),
                );
                continue;
            }
            // An always-true expression ends its group, and a `post` one
            // also shadows the LLM conditions' after-reply use and the
            // after_work fallback (a `pre` one: the agent never replies).
            let shadowed_by = earlier.iter().find(|e| {
                e.constant == Some(true)
                    && (e.group == rule.group
                        || e.group == Group::Pre
                        || (e.group == Group::Post && rule.group == Group::AfterWork)
                        // The user's LLM conditions are classified after
                        // its `post` expressions.
                        || (e.group == Group::Post && rule.group == Group::Llm && source == USER))
            });
            if let Some(always) = shadowed_by {
                self.warn(
                    HANDOFFS_FILE,
                    at(rule.index),
                    format!(
                        "this rule never fires: rule [{}] of \"{source}\" ({} `{}`) always holds and is checked first",
                        always.index,
                        always.group.name(),
                        always.key
                    ),
                    Some("a condition that reads no variable is always true or always false".to_owned()),
                );
            }
        }
    }
}

/// `N` of a path `$.handoff_rules[N]`.
fn rule_index(json_path: &str) -> Option<usize> {
    json_path
        .strip_prefix("$.handoff_rules[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// The value of a condition that reads no context variable; `None` when it
/// reads one.
fn fixed_value(condition: &Condition) -> Option<bool> {
    let mut reads_a_variable = false;
    condition.visit(&mut |left, right| {
        let right = right.map(|(_, r)| r);
        for operand in std::iter::once(left).chain(right) {
            if matches!(operand, Operand::Variable(_)) {
                reads_a_variable = true;
            }
        }
    });
    (!reads_a_variable).then(|| condition.evaluate(&|_| None))
}
