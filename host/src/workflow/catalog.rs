//! What validation needs to know about plugins: which functions exist.
//!
//! Validation takes a [`ToolCatalog`] so it can run against the loaded
//! plugins in production and against a plain map in tests.

#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::HashMap;

use mozaiks_plugin_host::{FunctionSpec, Plugin};

use super::diagnostic::list;

/// Why a tool's plugin function could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No plugin has this id.
    #[error("unknown plugin \"{plugin}\"")]
    UnknownPlugin {
        /// The id asked for.
        plugin: String,
        /// The ids that exist, sorted.
        available: Vec<String>,
    },
    /// The plugin exists but has no such function.
    #[error("plugin \"{plugin}\" has no function \"{function}\"")]
    UnknownFunction {
        /// The plugin.
        plugin: String,
        /// The function asked for.
        function: String,
        /// The functions it has, sorted.
        available: Vec<String>,
    },
}

impl LookupError {
    /// A help line listing what exists.
    pub fn help(&self) -> String {
        match self {
            Self::UnknownPlugin { available, .. } => {
                format!("loaded plugins are {}", list(available))
            }
            Self::UnknownFunction {
                plugin, available, ..
            } => {
                format!("{plugin} has {}", list(available))
            }
        }
    }
}

/// Looks up plugin functions by plugin id and function name.
pub trait ToolCatalog {
    /// The spec of `function` in `plugin`.
    fn function(&self, plugin: &str, function: &str) -> Result<&FunctionSpec, LookupError>;
}

/// `names`, sorted and without repeats, for "available: …" lists.
pub(crate) fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = names.map(str::to_owned).collect();
    names.sort();
    names.dedup();
    names
}

/// Finds `function` of the plugin with id `plugin` among `plugins()`
/// (called again, on a miss, to list the ids there are).
pub(crate) fn find_function<'a, I>(
    plugins: impl Fn() -> I,
    plugin: &str,
    function: &str,
) -> Result<&'a FunctionSpec, LookupError>
where
    I: Iterator<Item = &'a Plugin>,
{
    let found = plugins()
        .find(|p| p.id() == plugin)
        .ok_or_else(|| LookupError::UnknownPlugin {
            plugin: plugin.to_owned(),
            available: sorted(plugins().map(Plugin::id)),
        })?;
    found
        .function(function)
        .ok_or_else(|| LookupError::UnknownFunction {
            plugin: plugin.to_owned(),
            function: function.to_owned(),
            available: sorted(found.functions().map(|f| f.name.as_str())),
        })
}

/// Loaded plugins by id.
impl ToolCatalog for HashMap<String, Plugin> {
    fn function(&self, plugin: &str, function: &str) -> Result<&FunctionSpec, LookupError> {
        find_function(|| self.values(), plugin, function)
    }
}

/// A catalog held in memory: plugin id → its functions. For tests and for
/// the fuzz targets.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct InMemoryCatalog {
    plugins: BTreeMap<String, Vec<FunctionSpec>>,
}

#[cfg(test)]
impl InMemoryCatalog {
    /// An empty catalog.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a plugin with its functions.
    #[must_use]
    pub(crate) fn plugin(mut self, id: impl Into<String>, functions: Vec<FunctionSpec>) -> Self {
        self.plugins.insert(id.into(), functions);
        self
    }
}

#[cfg(test)]
impl ToolCatalog for InMemoryCatalog {
    fn function(&self, plugin: &str, function: &str) -> Result<&FunctionSpec, LookupError> {
        let functions = self
            .plugins
            .get(plugin)
            .ok_or_else(|| LookupError::UnknownPlugin {
                plugin: plugin.to_owned(),
                available: self.plugins.keys().cloned().collect(),
            })?;
        functions
            .iter()
            .find(|f| f.name == function)
            .ok_or_else(|| LookupError::UnknownFunction {
                plugin: plugin.to_owned(),
                function: function.to_owned(),
                available: sorted(functions.iter().map(|f| f.name.as_str())),
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(name: &str) -> FunctionSpec {
        FunctionSpec {
            name: name.to_owned(),
            description: String::new(),
            parameters: json!({"type": "object"}),
        }
    }

    #[test]
    fn tells_unknown_plugins_from_unknown_functions() {
        let catalog =
            InMemoryCatalog::new().plugin("planner", vec![spec("echo"), spec("add_task")]);
        assert_eq!(catalog.function("planner", "echo").unwrap().name, "echo");
        let err = catalog.function("plan", "echo").unwrap_err();
        assert_eq!(err.to_string(), "unknown plugin \"plan\"");
        assert_eq!(err.help(), "loaded plugins are planner");
        let err = catalog.function("planner", "ecko").unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin \"planner\" has no function \"ecko\""
        );
        assert_eq!(err.help(), "planner has add_task, echo");
    }
}
