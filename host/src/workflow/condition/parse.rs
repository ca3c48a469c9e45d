//! The condition parser: recursive descent over characters, one function
//! per grammar rule (see the grammar in the parent module).

use serde_json::Value;

use super::{CompareOp, Condition, ConditionError, Operand};

/// How deep parentheses and `!`/`not` may nest: far more than a handoff
/// condition needs, far less than would overflow a thread's stack.
pub(super) const MAX_DEPTH: usize = 64;

/// How many `&&`/`||` operators one condition may have (each adds a level
/// to the tree that `Display`, `evaluate` and drop walk recursively).
pub(super) const MAX_OPERATORS: usize = 256;

/// Parses a whole condition; trailing text is an error.
pub(super) fn parse(text: &str) -> Result<Condition, ConditionError> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
        operators: 0,
    };
    let condition = parser.or()?;
    parser.skip_ws();
    if parser.pos < parser.chars.len() {
        return Err(parser.error("unexpected text after the end of the condition"));
    }
    Ok(condition)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// Open parentheses and `!`s around the current position.
    depth: usize,
    /// `&&`/`||` operators so far.
    operators: usize,
}

impl Parser {
    fn error(&self, message: impl Into<String>) -> ConditionError {
        ConditionError {
            column: self.pos + 1,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Consumes identifier characters and returns them (possibly empty).
    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_ident) {
            self.pos += 1;
        }
        self.text_from(start)
    }

    /// The source text from `start` to the current position.
    fn text_from(&self, start: usize) -> String {
        self.chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect()
    }

    /// Consumes `token` (after whitespace) if it is next; a word token must
    /// not be followed by an identifier character.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        let len = token.chars().count();
        let matches = token
            .chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(self.pos + i) == Some(&c));
        let is_word = token.chars().all(|c| c.is_ascii_alphabetic());
        let boundary = !is_word || !self.chars.get(self.pos + len).is_some_and(|c| is_ident(*c));
        if matches && boundary {
            self.pos += len;
        }
        matches && boundary
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.and()?;
        while self.eat("||") || self.eat("or") {
            self.count_operator()?;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.unary()?;
        while self.eat("&&") || self.eat("and") {
            self.count_operator()?;
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn count_operator(&mut self) -> Result<(), ConditionError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(self.error(format!(
                "more than {MAX_OPERATORS} `&&`/`||` operators; split the condition into several handoff rules"
            )));
        }
        Ok(())
    }

    /// Runs `rule` one nesting level deeper.
    fn nested(
        &mut self,
        rule: impl FnOnce(&mut Self) -> Result<Condition, ConditionError>,
    ) -> Result<Condition, ConditionError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!(
                "parentheses and `!` nested more than {MAX_DEPTH} deep"
            )));
        }
        self.depth += 1;
        let result = rule(self);
        self.depth -= 1;
        result
    }

    fn unary(&mut self) -> Result<Condition, ConditionError> {
        if self.eat("!=") {
            return Err(self.error("`!=` needs a left-hand operand"));
        }
        if self.eat("!") || self.eat("not") {
            let inner = self.nested(Self::unary)?;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, ConditionError> {
        if self.eat("(") {
            let inner = self.nested(Self::or)?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        let Some(op) = self.operator() else {
            return Ok(Condition::Truthy(left));
        };
        let right = self.operand()?;
        if self.operator().is_some() {
            return Err(self.error("comparisons do not chain; combine them with `&&`"));
        }
        Ok(Condition::Compare(left, op, right))
    }

    fn operator(&mut self) -> Option<CompareOp> {
        let ops = [
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<=", CompareOp::Le),
            (">=", CompareOp::Ge),
            ("<", CompareOp::Lt),
            (">", CompareOp::Gt),
        ];
        ops.into_iter()
            .find(|(text, _)| self.eat(text))
            .map(|(_, op)| op)
    }

    fn operand(&mut self) -> Result<Operand, ConditionError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(self.error("expected a variable `${name}` or a literal, found the end")),
            Some('$') => self.variable(),
            Some('"') => self.string(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if is_ident(c) => {
                let word = self.ident();
                match word.as_str() {
                    "true" | "True" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" | "False" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" | "None" => Ok(Operand::Literal(Value::Null)),
                    _ => {
                        self.pos = start;
                        Err(self.error(format!(
                            "unknown word `{word}`; write variables as ${{{word}}} and strings in double quotes"
                        )))
                    }
                }
            }
            Some(c) => Err(self.error(format!("unexpected `{c}`"))),
        }
    }

    fn variable(&mut self) -> Result<Operand, ConditionError> {
        if !self.eat("${") {
            return Err(self.error("expected `${` to start a variable"));
        }
        let name = self.ident();
        if name.is_empty() {
            return Err(self.error("expected a variable name after `${`"));
        }
        if self.peek() != Some('}') {
            return Err(self.error("expected `}` to close the variable"));
        }
        self.pos += 1;
        Ok(Operand::Variable(name))
    }

    fn string(&mut self) -> Result<Operand, ConditionError> {
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\\' => self.pos += 1,
                '"' => {
                    let text = self.text_from(start);
                    return serde_json::from_str(&text)
                        .map(Operand::Literal)
                        .map_err(|err| ConditionError {
                            column: start + 1,
                            message: format!("invalid string literal: {err}"),
                        });
                }
                _ => {}
            }
        }
        self.pos = start;
        Err(self.error("unterminated string"))
    }

    fn number(&mut self) -> Result<Operand, ConditionError> {
        let start = self.pos;
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        {
            self.pos += 1;
        }
        let text = self.text_from(start);
        match serde_json::from_str::<Value>(&text) {
            Ok(value @ Value::Number(_)) => Ok(Operand::Literal(value)),
            _ => {
                self.pos = start;
                Err(self.error(format!("invalid number `{text}`")))
            }
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_conditions_with_a_column() {
        let cases = [
            (
                "${plan_ready} ==",
                "at column 17: expected a variable `${name}` or a literal, found the end",
            ),
            (
                "${plan_ready == true",
                "at column 13: expected `}` to close the variable",
            ),
            (
                "plan_ready == true",
                "at column 1: unknown word `plan_ready`; write variables as ${plan_ready} and strings in double quotes",
            ),
            (
                "${a} < ${b} < 3",
                "at column 14: comparisons do not chain; combine them with `&&`",
            ),
            ("(${a} == 1", "at column 11: expected `)`"),
            ("${a} == 'x'", "at column 9: unexpected `'`"),
            (
                "${a} == 1 1",
                "at column 11: unexpected text after the end of the condition",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Condition::parse(text).unwrap_err().to_string(),
                expected,
                "{text}"
            );
        }
    }

    /// Found by the condition fuzz target (host/src/fuzz): deep nesting
    /// overflowed the stack of the parser (then of `Display`, `evaluate`
    /// and drop), aborting the process that loads the workflow. Each of
    /// these is now a load error.
    #[test]
    fn deep_nesting_and_long_chains_are_errors_not_stack_overflows() {
        let deep = 200_000;
        let cases = [
            "(".repeat(deep) + "${a}" + &")".repeat(deep),
            "!".repeat(deep) + "${a}",
            "not ".repeat(deep) + "${a}",
            vec!["${a}"; deep].join(" && "),
            vec!["${a}"; deep].join(" || "),
        ];
        for text in cases {
            let error = Condition::parse(&text).unwrap_err();
            assert!(
                error.message.contains("nested") || error.message.contains("operators"),
                "{error}"
            );
        }
        let nested = "(".repeat(MAX_DEPTH) + "${a}" + &")".repeat(MAX_DEPTH);
        assert!(
            Condition::parse(&nested).is_ok(),
            "{MAX_DEPTH} levels are fine"
        );
        let chain = vec!["${a}"; MAX_OPERATORS + 1].join(" && ");
        assert!(
            Condition::parse(&chain).is_ok(),
            "{MAX_OPERATORS} operators are fine"
        );
    }
}
