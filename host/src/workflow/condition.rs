//! Handoff conditions over context variables: a small, strict expression
//! language, parsed once at load time so a typo is a load error, not a
//! handoff that silently never fires.
//!
//! ```text
//! expr       := or
//! or         := and (("||" | "or") and)*
//! and        := unary (("&&" | "and") unary)*
//! unary      := ("!" | "not") unary | comparison
//! comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//! operand    := "(" expr ")" | "${" name "}" | literal
//! literal    := true | false | null | number | "string"
//! ```
//!
//! `True`/`False`/`None` and `and`/`or`/`not` are accepted as well, so that
//! conditions written for MozaiksAI (AG2's `ContextExpression`) keep working.
//! Comparisons do not chain (`a < b < c` is an error).

mod parse;

use std::fmt;

use serde_json::Value;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Both hold.
    And(Box<Condition>, Box<Condition>),
    /// Either holds.
    Or(Box<Condition>, Box<Condition>),
    /// Does not hold.
    Not(Box<Condition>),
    /// A comparison of two operands.
    Compare(Operand, CompareOp, Operand),
    /// A single operand, true when truthy (not null, false, 0, "", [] or {}).
    Truthy(Operand),
}

/// A variable or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `${name}`: a context variable.
    Variable(String),
    /// `true`, `3`, `"done"`, `null`.
    Literal(Value),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// Whether this operator orders its operands (numbers or strings only).
    pub fn is_ordering(self) -> bool {
        !matches!(self, Self::Eq | Self::Ne)
    }
}

/// Why a condition does not parse: what and at which 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct ConditionError {
    /// 1-based character column in the condition text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl Condition {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        parse::parse(text)
    }

    /// Calls `f` for every comparison and bare operand, in text order.
    pub fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Operand, Option<(CompareOp, &'a Operand)>)) {
        match self {
            Self::And(a, b) | Self::Or(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Self::Not(a) => a.visit(f),
            Self::Compare(left, op, right) => f(left, Some((*op, right))),
            Self::Truthy(operand) => f(operand, None),
        }
    }

    /// Evaluates against the chat's context; a missing variable is null.
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> bool {
        match self {
            Self::And(a, b) => a.evaluate(lookup) && b.evaluate(lookup),
            Self::Or(a, b) => a.evaluate(lookup) || b.evaluate(lookup),
            Self::Not(a) => !a.evaluate(lookup),
            Self::Truthy(operand) => truthy(&operand.value(lookup)),
            Self::Compare(left, op, right) => {
                compare(&left.value(lookup), *op, &right.value(lookup))
            }
        }
    }
}

impl fmt::Display for Condition {
    /// The condition in canonical form: `&&`/`||`/`!`, parentheses only
    /// where the structure needs them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grouped = |c: &Condition, f: &mut fmt::Formatter<'_>, parent_is_and: bool| match c {
            Self::Or(..) if parent_is_and => write!(f, "({c})"),
            _ => write!(f, "{c}"),
        };
        match self {
            Self::And(a, b) => {
                grouped(a, f, true)?;
                f.write_str(" && ")?;
                grouped(b, f, true)
            }
            Self::Or(a, b) => write!(f, "{a} || {b}"),
            Self::Not(inner) => match **inner {
                Self::Truthy(_) | Self::Not(_) => write!(f, "!{inner}"),
                _ => write!(f, "!({inner})"),
            },
            Self::Compare(left, op, right) => write!(f, "{left} {op} {right}"),
            Self::Truthy(operand) => write!(f, "{operand}"),
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        })
    }
}

impl Operand {
    fn value(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Value {
        match self {
            Self::Variable(name) => lookup(name).unwrap_or(Value::Null),
            Self::Literal(value) => value.clone(),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Variable(name) => write!(f, "${{{name}}}"),
            Self::Literal(value) => write!(f, "{value}"),
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare(left: &Value, op: CompareOp, right: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ if op.is_ordering() => None,
        _ => Some(if left == right {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
    };
    match (op, ordering) {
        (CompareOp::Eq, o) => o == Some(Ordering::Equal),
        (CompareOp::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(text: &str, context: Value) -> bool {
        Condition::parse(text)
            .unwrap()
            .evaluate(&|name| context.get(name).cloned())
    }

    #[test]
    fn evaluates_comparisons_and_connectives() {
        let ctx = json!({"plan_ready": true, "n": 3, "status": "done"});
        assert!(eval("${plan_ready} == true", ctx.clone()));
        assert!(eval("${n} >= 3 && ${status} != \"open\"", ctx.clone()));
        assert!(eval("!(${n} < 2) || false", ctx.clone()));
        assert!(eval("${missing} == null", ctx.clone()));
        assert!(eval(
            "${plan_ready} == True and not ${missing}",
            ctx.clone()
        ));
        assert!(!eval("${status} > 3", ctx));
    }

    #[test]
    fn displays_in_canonical_form() {
        let text = "not (${a} == True or ${b}) and (${c} < 2 || !${d})";
        let parsed = Condition::parse(text).unwrap();
        assert_eq!(
            parsed.to_string(),
            "!(${a} == true || ${b}) && (${c} < 2 || !${d})"
        );
        assert_eq!(Condition::parse(&parsed.to_string()).unwrap(), parsed);
    }
}
