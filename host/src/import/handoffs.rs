//! `handoffs.yaml` to `handoffs.json`: aliases resolved, rules MozaiksAI
//! skipped left out (and reported), only the last `after_work` of a source
//! kept, as MozaiksAI did.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::normalise::{ConditionKind, Target, condition_kind, is_pre_scope, non_empty, target};
use super::orchestrator::is_empty;
use super::read::SourceFile;
use super::report::ImportReport;
use crate::workflow::condition::{CompareOp, Condition, Operand};
use crate::workflow::diagnostic::JsonPath;

/// The converted rules and the variables their expressions use that no
/// definition declares, with the type their comparisons suggest.
#[derive(Debug, Default)]
pub(crate) struct Handoffs {
    /// The rules of handoffs.json, in file order.
    pub rules: Vec<Value>,
    /// Undeclared variable → JSON type, and the first condition using it.
    pub undeclared: BTreeMap<String, (String, JsonPath)>,
}

/// Converts the rules. `pattern` is the orchestration pattern (MozaiksAI
/// wired handoffs only for `DefaultPattern`); `declared` the variables.
pub(crate) fn convert(
    file: &SourceFile,
    agents: &[String],
    pattern: &str,
    declared: &BTreeMap<String, String>,
    report: &mut ImportReport,
) -> Handoffs {
    let f = file.name.as_str();
    let root = JsonPath::root().key("handoff_rules");
    let mut out = Handoffs::default();
    let Some(rules) = file.value.get("handoff_rules").and_then(Value::as_sequence) else {
        if file
            .value
            .get("handoff_rules")
            .is_some_and(|v| !v.is_null())
        {
            report.note(f, root, "not a list: no rules imported");
        }
        return out;
    };
    if rules.is_empty() {
        return out;
    }
    if pattern != "DefaultPattern" {
        report.note(
            f,
            root,
            format!("not imported: MozaiksAI wires handoff rules only for DefaultPattern, and this workflow uses {pattern}"),
        );
        return out;
    }
    // Index of the rule kept as each source's after_work (the last one).
    let mut last_after_work: BTreeMap<String, usize> = BTreeMap::new();
    let mut converted: Vec<(usize, String, bool, Mapping)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let p = root.index(i);
        let Some(rule) = rule.as_mapping() else {
            report.note(f, p, "not a rule object: skipped");
            continue;
        };
        let source_raw = non_empty(rule.get("source_agent")).unwrap_or_default();
        let source = match target(source_raw, agents) {
            Some(Target::Agent(a)) => a,
            Some(Target::User) => "user".to_owned(),
            _ => {
                report.note(
                    f,
                    p.key("source_agent"),
                    format!("unknown source \"{source_raw}\": rule skipped, as MozaiksAI skips it"),
                );
                continue;
            }
        };
        let target_raw = non_empty(rule.get("target_agent")).unwrap_or_default();
        let Some(to) = target(target_raw, agents) else {
            report.note(
                f,
                p.key("target_agent"),
                format!("unknown target \"{target_raw}\": rule skipped, as MozaiksAI skips it"),
            );
            continue;
        };
        let mut m = Mapping::new();
        m.insert("source_agent".into(), source.clone().into());
        m.insert("target_agent".into(), to.as_str().into());
        let is_condition = match non_empty(rule.get("handoff_type")) {
            None | Some("after_work") => false,
            Some("condition") => true,
            Some(other) => {
                report.note(
                    f,
                    p.key("handoff_type"),
                    format!("unknown \"{other}\": after_work (MozaiksAI's default)"),
                );
                false
            }
        };
        if is_condition {
            let Some(text) = non_empty(rule.get("condition")) else {
                report.note(
                    f,
                    p.key("condition"),
                    "a condition rule without a condition: skipped, as MozaiksAI skips it",
                );
                continue;
            };
            let raw_type = non_empty(rule.get("condition_type"));
            let (kind, guessed_badly) = condition_kind(raw_type, text);
            if guessed_badly {
                report.note(
                    f,
                    p.key("condition_type"),
                    format!(
                        "unknown \"{}\": llm, as MozaiksAI reads it",
                        raw_type.unwrap_or_default()
                    ),
                );
            }
            m.insert("handoff_type".into(), "condition".into());
            match kind {
                ConditionKind::Expression => {
                    match Condition::parse(text) {
                        Ok(condition) => collect_undeclared(
                            &condition,
                            declared,
                            &p.key("condition"),
                            &mut out.undeclared,
                        ),
                        Err(err) => {
                            report.note(
                                f,
                                p.key("condition"),
                                format!("expression not supported ({err}): rule skipped; mozaiks conditions have no len() (docs/workflows.md, condition grammar)"),
                            );
                            continue;
                        }
                    }
                    m.insert("condition_type".into(), "expression".into());
                    m.insert("condition".into(), text.into());
                    if let Some(scope) = non_empty(rule.get("condition_scope")) {
                        if is_pre_scope(scope) {
                            m.insert("condition_scope".into(), "pre".into());
                        } else if scope != "post" {
                            report.note(f, p.key("condition_scope"), format!("\"{scope}\": post, as MozaiksAI reads any scope but pre's aliases"));
                        }
                    }
                }
                ConditionKind::Llm => {
                    m.insert("condition_type".into(), "llm".into());
                    m.insert("condition".into(), text.into());
                    if non_empty(rule.get("condition_scope")).is_some() {
                        report.note(
                            f,
                            p.key("condition_scope"),
                            "dropped: a scope applies to expressions only",
                        );
                    }
                }
            }
        } else {
            for key in ["condition", "condition_type", "condition_scope"] {
                if rule.get(key).is_some_and(|v| !is_empty(v)) {
                    report.note(
                        f,
                        p.key(key),
                        "dropped: an after_work rule has no condition",
                    );
                }
            }
            m.insert("handoff_type".into(), "after_work".into());
            if let Some(previous) = last_after_work.insert(source.clone(), i) {
                report.note(
                    f,
                    root.index(previous),
                    format!(
                        "dropped: a later after_work rule of {source} replaces it, as in MozaiksAI"
                    ),
                );
            }
        }
        if let Some(d) = non_empty(rule.get("description")) {
            m.insert("description".into(), d.into());
        }
        if rule.get("transition_target").is_some_and(|v| !is_empty(v)) {
            report.note(
                f,
                p.key("transition_target"),
                "dropped: MozaiksAI's runtime ignored it (the target comes from target_agent)",
            );
        }
        for (key, value) in rule {
            let key = key.as_str().unwrap_or_default();
            let known = [
                "source_agent",
                "target_agent",
                "handoff_type",
                "condition_type",
                "condition",
                "condition_scope",
                "transition_target",
                "description",
            ];
            if !known.contains(&key) && !is_empty(value) {
                report.note(
                    f,
                    p.key(key),
                    "not a key of a MozaiksAI handoff rule: not imported",
                );
            }
        }
        converted.push((i, source, is_condition, m));
    }
    out.rules = converted
        .into_iter()
        .filter(|(i, source, is_condition, _)| {
            *is_condition || last_after_work.get(source) == Some(i)
        })
        .map(|(_, _, _, m)| Value::Mapping(m))
        .collect();
    out
}

/// Adds each variable of `condition` that is not in `declared`, typed by
/// what it is compared with (a boolean when only tested for truth).
fn collect_undeclared(
    condition: &Condition,
    declared: &BTreeMap<String, String>,
    path: &JsonPath,
    out: &mut BTreeMap<String, (String, JsonPath)>,
) {
    condition.visit(&mut |left, compared| {
        let mut consider = |operand: &Operand, other: Option<(CompareOp, &Operand)>| {
            let Operand::Variable(name) = operand else {
                return;
            };
            if declared.contains_key(name) {
                return;
            }
            let suggested = match other {
                Some((_, Operand::Literal(serde_json::Value::Bool(_)))) => Some("boolean"),
                Some((_, Operand::Literal(serde_json::Value::Number(n)))) if n.is_i64() => {
                    Some("integer")
                }
                Some((_, Operand::Literal(serde_json::Value::Number(_)))) => Some("number"),
                Some((_, Operand::Literal(serde_json::Value::String(_)))) => Some("string"),
                Some((op, _)) if op.is_ordering() => Some("number"),
                Some(_) => None,
                None => Some("boolean"),
            };
            let entry = out
                .entry(name.clone())
                .or_insert_with(|| ("boolean".to_owned(), path.clone()));
            if let Some(t) = suggested {
                entry.0 = t.to_owned();
            }
        };
        consider(left, compared);
        if let Some((op, right)) = compared {
            consider(right, Some((op, left)));
        }
    });
}
