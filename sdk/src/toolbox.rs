//! [`Toolbox`]: the functions a tool offers, and how calls reach them.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Call, ToolError};

type Handler = Box<dyn Fn(&str, &Call) -> Result<String, ToolError>>;

struct Function {
    name: String,
    description: String,
    parameters: Schema,
    handler: Handler,
}

/// A function's parameter schema: a JSON value, or a closure that builds it.
///
/// Prefer the closure, `|| json!({...})`: the toolbox is rebuilt in a fresh
/// instance for every call, and a closure defers building the schema to the
/// one moment it is needed, when the host asks the tool to describe itself.
/// A tool with many functions saves tens of microseconds per call this way.
pub enum Schema {
    /// A schema built already.
    Value(Value),
    /// A schema built on demand.
    Lazy(Box<dyn Fn() -> Value>),
}

impl Schema {
    fn build(&self) -> Value {
        match self {
            Self::Value(value) => value.clone(),
            Self::Lazy(build) => build(),
        }
    }
}

impl From<Value> for Schema {
    fn from(value: Value) -> Self {
        Self::Value(value)
    }
}

impl<F: Fn() -> Value + 'static> From<F> for Schema {
    fn from(build: F) -> Self {
        Self::Lazy(Box::new(build))
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(value) => f.debug_tuple("Value").field(value).finish(),
            Self::Lazy(_) => f.write_str("Lazy"),
        }
    }
}

/// The functions a tool offers to agents.
///
/// Build it in a function and export that function with
/// [`export_toolbox!`](crate::export_toolbox); see the crate docs for a
/// complete tool. The host calls the builder once to list the functions and
/// once per call, each time in a fresh instance, so it should do nothing but
/// register functions.
pub struct Toolbox {
    functions: Vec<Function>,
}

impl Toolbox {
    /// A toolbox with no functions.
    pub fn new() -> Self {
        Self {
            functions: Vec::new(),
        }
    }

    /// Adds the function `name`, whose arguments are decoded into `A` and whose
    /// result is encoded from `R`.
    ///
    /// - `name`: what agents call it: ASCII letters, digits, `_` and `-`, at
    ///   most 64 characters (the host checks this when it loads the tool).
    /// - `description`: what it does and when to use it; the LLM reads this.
    /// - `parameters`: the JSON Schema (draft 2020-12) of the arguments object,
    ///   as a closure `|| json!({...})` (preferred, see [`Schema`]) or a value.
    ///   The host checks every call's arguments against it, so `f` only sees
    ///   arguments that satisfy it.
    ///
    /// Arguments that do not fit `A` fail the call with
    /// [`ToolError::InvalidArguments`] and serde's message. A function that
    /// takes no arguments can take `serde_json::Value` or an empty struct.
    ///
    /// # Panics
    ///
    /// If a function of that name was already added: a programming error,
    /// which the host reports as a failure to load the tool.
    #[must_use]
    pub fn function<A, R, F>(
        self,
        name: &str,
        description: &str,
        parameters: impl Into<Schema>,
        f: F,
    ) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(A, &Call) -> Result<R, ToolError> + 'static,
    {
        self.raw_function(name, description, parameters, move |arguments, call| {
            let arguments: A = serde_json::from_str(arguments)
                .map_err(|err| ToolError::InvalidArguments(err.to_string()))?;
            let result = f(arguments, call)?;
            serde_json::to_string(&result).map_err(|err| {
                ToolError::Failed(format!("cannot encode the result as JSON: {err}"))
            })
        })
    }

    /// Adds the function `name`, which takes the arguments object as JSON text
    /// and returns its result as JSON text, passed on as it is (the host checks
    /// that it is JSON).
    ///
    /// `name`, `description` and `parameters` are as for
    /// [`function`](Self::function).
    ///
    /// # Panics
    ///
    /// If a function of that name was already added.
    #[must_use]
    pub fn raw_function<F>(
        mut self,
        name: &str,
        description: &str,
        parameters: impl Into<Schema>,
        f: F,
    ) -> Self
    where
        F: Fn(&str, &Call) -> Result<String, ToolError> + 'static,
    {
        assert!(
            self.functions.iter().all(|function| function.name != name),
            "mozaiks-sdk: the function `{name}` is added to the toolbox twice"
        );
        self.functions.push(Function {
            name: name.to_owned(),
            description: description.to_owned(),
            parameters: parameters.into(),
            handler: Box::new(f),
        });
        self
    }

    /// The names of the functions, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|function| function.name.as_str())
    }

    /// (name, description, parameter schema as JSON text) of every function.
    pub(crate) fn specs(&self) -> impl Iterator<Item = (&str, &str, String)> {
        self.functions.iter().map(|function| {
            (
                function.name.as_str(),
                function.description.as_str(),
                function.parameters.build().to_string(),
            )
        })
    }

    /// Calls the function `name` with the arguments object as JSON text.
    pub(crate) fn call(
        &self,
        name: &str,
        arguments: &str,
        call: &Call,
    ) -> Result<String, ToolError> {
        let function = self
            .functions
            .iter()
            .find(|function| function.name == name)
            .ok_or_else(|| {
                ToolError::UnknownFunction(format!("this tool has no function `{name}`"))
            })?;
        (function.handler)(arguments, call)
    }
}

impl Default for Toolbox {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Toolbox")
            .field("functions", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }

    fn call() -> Call {
        Call::new_for_tests()
    }

    fn toolbox() -> Toolbox {
        Toolbox::new()
            .function(
                "add",
                "Adds",
                json!({"type": "object"}),
                |args: Add, _: &Call| Ok(args.a + args.b),
            )
            .raw_function(
                "raw",
                "Raw",
                json!({"type": "object"}),
                |args: &str, _: &Call| Ok(args.to_owned()),
            )
    }

    #[test]
    fn a_lazy_schema_is_built_only_when_described() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        let toolbox = || {
            Toolbox::new().function(
                "add",
                "Adds",
                || {
                    BUILT.fetch_add(1, Ordering::SeqCst);
                    json!({"type": "object"})
                },
                |args: Add, _: &Call| Ok(args.a + args.b),
            )
        };
        assert_eq!(
            toolbox().call("add", r#"{"a":1,"b":1}"#, &call()),
            Ok("2".to_owned())
        );
        assert_eq!(
            BUILT.load(Ordering::SeqCst),
            0,
            "a call must not build schemas"
        );
        let specs: Vec<_> = toolbox().specs().map(|(_, _, schema)| schema).collect();
        assert_eq!(specs, vec![r#"{"type":"object"}"#.to_owned()]);
        assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn decodes_arguments_and_encodes_the_result() {
        assert_eq!(
            toolbox().call("add", r#"{"a":2,"b":3}"#, &call()),
            Ok("5".to_owned())
        );
    }

    #[test]
    fn raw_functions_return_their_text_as_it_is() {
        assert_eq!(
            toolbox().call("raw", "not json", &call()),
            Ok("not json".to_owned())
        );
    }

    #[test]
    fn arguments_that_do_not_fit_are_invalid_arguments() {
        let err = toolbox()
            .call("add", r#"{"a":"two","b":3}"#, &call())
            .unwrap_err();
        assert!(
            matches!(&err, ToolError::InvalidArguments(msg) if msg.contains("invalid type")),
            "{err}"
        );
    }

    #[test]
    fn unknown_names_are_unknown_functions() {
        let err = toolbox().call("nope", "{}", &call()).unwrap_err();
        assert!(matches!(err, ToolError::UnknownFunction(_)));
    }

    #[test]
    fn specs_list_functions_in_order() {
        let specs: Vec<_> = toolbox()
            .specs()
            .map(|(name, _, schema)| (name.to_owned(), schema))
            .collect();
        assert_eq!(
            specs,
            [
                ("add".to_owned(), r#"{"type":"object"}"#.to_owned()),
                ("raw".to_owned(), r#"{"type":"object"}"#.to_owned())
            ]
        );
    }
}
