//! Checks of `handoffs.json`: sources and targets exist, conditions parse
//! and use declared variables of fitting types.

use std::collections::BTreeMap;

use super::{CONTEXT_VARIABLES_FILE, HANDOFFS_FILE, TERMINATE, USER, Validator, context};
use crate::workflow::condition::{Condition, Operand};
use crate::workflow::diagnostic::{Diagnostic, JsonPath, list};
use crate::workflow::model::{ContextVariable, Handoffs, Target};
use crate::workflow::spec::{ConditionScope, ConditionType, HandoffRule, HandoffType};

impl Validator<'_> {
    pub(super) fn handoff(
        &mut self,
        rule: &HandoffRule,
        path: &JsonPath,
        agents: &[&str],
        declared: &[ContextVariable],
        out: &mut BTreeMap<String, Handoffs>,
    ) {
        let before = self.diagnostics.len();
        self.agent_exists(
            HANDOFFS_FILE,
            path.key("source_agent"),
            &rule.source_agent,
            agents,
            true,
        );
        let target = match rule.target_agent.as_str() {
            USER => Target::User,
            TERMINATE => Target::Terminate,
            name if agents.contains(&name) => Target::Agent(name.to_owned()),
            name => {
                let help = format!("agents are {}; or `user`, `terminate`", list(agents));
                self.error(
                    HANDOFFS_FILE,
                    path.key("target_agent"),
                    format!("unknown agent \"{name}\""),
                    Some(help),
                );
                Target::Terminate
            }
        };
        let entry = out.entry(rule.source_agent.clone()).or_default();
        match rule.handoff_type {
            HandoffType::AfterWork => {
                for (field, set) in [
                    ("condition", rule.condition.is_some()),
                    ("condition_type", rule.condition_type.is_some()),
                    ("condition_scope", rule.condition_scope.is_some()),
                ] {
                    if set {
                        let help = "set \"handoff_type\": \"condition\" or remove it";
                        self.diagnostics.push(
                            Diagnostic::new(
                                self.files.path(HANDOFFS_FILE),
                                path.key(field),
                                format!("an after_work rule has no {field}"),
                            )
                            .with_help(help),
                        );
                    }
                }
                if entry.after_work.is_some() {
                    let message = format!("second after_work rule for \"{}\"", rule.source_agent);
                    self.diagnostics.push(
                        Diagnostic::new(self.files.path(HANDOFFS_FILE), path.clone(), message)
                            .with_help("an agent has one after_work fallback; remove one"),
                    );
                } else if self.diagnostics.len() == before {
                    entry.after_work = Some(target);
                }
            }
            HandoffType::Condition => {
                let text = rule.condition.as_deref().unwrap_or("").trim();
                if text.is_empty() {
                    self.diagnostics.push(Diagnostic::new(
                        self.files.path(HANDOFFS_FILE),
                        path.key("condition"),
                        "a condition rule needs a condition",
                    ));
                    return;
                }
                match rule.condition_type {
                    None => self.diagnostics.push(
                        Diagnostic::new(self.files.path(HANDOFFS_FILE), path.key("condition_type"), "condition_type is missing")
                            .with_help("\"expression\" for ${variable} conditions, \"llm\" for conditions the agent decides"),
                    ),
                    Some(ConditionType::Llm) => {
                        if rule.condition_scope.is_some() {
                            self.diagnostics.push(Diagnostic::new(self.files.path(HANDOFFS_FILE), path.key("condition_scope"), "condition_scope applies to expression conditions only"));
                        }
                        if self.diagnostics.len() == before {
                            entry.llm.push((text.to_owned(), target));
                        }
                    }
                    Some(ConditionType::Expression) => {
                        let Some(condition) = self.expression(text, &path.key("condition"), declared) else {
                            return;
                        };
                        if self.diagnostics.len() == before {
                            let list = if rule.condition_scope == Some(ConditionScope::Pre) { &mut entry.pre } else { &mut entry.post };
                            list.push((condition, target));
                        }
                    }
                }
            }
        }
    }

    fn expression(
        &mut self,
        text: &str,
        path: &JsonPath,
        declared: &[ContextVariable],
    ) -> Option<Condition> {
        let condition = match Condition::parse(text) {
            Ok(c) => c,
            Err(err) => {
                let help = "conditions look like ${plan_ready} == true && ${count} >= 2";
                self.error(
                    HANDOFFS_FILE,
                    path.clone(),
                    format!("invalid condition {text:?}: {err}"),
                    Some(help.to_owned()),
                );
                return None;
            }
        };
        let before = self.diagnostics.len();
        let mut problems = Vec::new();
        condition.visit(&mut |left, right| {
            let pairs = match right {
                Some((op, right)) => vec![(left, Some((op, right))), (right, Some((op, left)))],
                None => vec![(left, None)],
            };
            for (operand, other) in pairs {
                let Operand::Variable(name) = operand else {
                    continue;
                };
                let Some(var) = declared.iter().find(|d| &d.name == name) else {
                    let help = format!(
                        "{CONTEXT_VARIABLES_FILE} declares {}",
                        list(declared.iter().map(|d| d.name.as_str()))
                    );
                    problems.push((
                        format!("undeclared context variable \"{name}\""),
                        Some(help),
                    ));
                    continue;
                };
                if let Some((op, Operand::Literal(literal))) = other
                    && let Some(message) = context::type_mismatch(var, op, literal)
                {
                    problems.push((message, None));
                }
            }
        });
        for (message, help) in problems {
            self.error(HANDOFFS_FILE, path.clone(), message, help);
        }
        (self.diagnostics.len() == before).then_some(condition)
    }
}
