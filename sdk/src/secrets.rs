//! The plugin's secrets: API keys and tokens declared in its `plugin.toml`
//! (`[secrets.NAME]`), with values the server's operator gives.
//!
//! ```no_run
//! # fn run() -> Result<(), mozaiks_sdk::ToolError> {
//! let token = mozaiks_sdk::secrets::require("WEATHER_TOKEN")?;
//! let region = mozaiks_sdk::secrets::get("WEATHER_REGION")?; // optional
//! # Ok(()) }
//! ```
//!
//! The host replaces every value it handed out with `[redacted secret
//! NAME]` in the call's logs, stdout, stderr, result and error message.

use crate::__private::bindings::mozaiks::plugin::secrets as wit;
use crate::ToolError;

/// The secret `name`: `None` when it is optional and has no value. Fails
/// when the manifest does not declare it, or it is required and has none.
pub fn get(name: &str) -> Result<Option<String>, ToolError> {
    wit::get(name).map_err(ToolError::Failed)
}

/// The secret `name`, which must have a value.
pub fn require(name: &str) -> Result<String, ToolError> {
    get(name)?.ok_or_else(|| ToolError::Failed(format!("the secret `{name}` has no value")))
}
