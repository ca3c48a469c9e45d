//! Structured logs, written into the host's logs.
//!
//! The host tags every record with the plugin, the function and the chat of
//! the current call, so a tool never repeats them. `fields` are extra
//! key/value pairs kept with the record:
//!
//! ```no_run
//! mozaiks_sdk::log::info("task added", &[("title", "Buy milk"), ("count", "3")]);
//! ```
//!
//! Text a tool prints to stdout or stderr is not a log record; use these.

use crate::__private::bindings::mozaiks::plugin::log as wit;

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing, usually off.
    Trace,
    /// Diagnostics for the tool's author.
    Debug,
    /// Normal operation worth recording.
    Info,
    /// Something unexpected that the tool recovered from.
    Warn,
    /// A failure.
    Error,
}

/// Writes one record at `level`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let level = match level {
        Level::Trace => wit::Level::Trace,
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warn => wit::Level::Warn,
        Level::Error => wit::Level::Error,
    };
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wit::log(level, message, &fields);
}

/// Writes a [`Level::Trace`] record.
pub fn trace(message: &str, fields: &[(&str, &str)]) {
    log(Level::Trace, message, fields);
}

/// Writes a [`Level::Debug`] record.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    log(Level::Debug, message, fields);
}

/// Writes a [`Level::Info`] record.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    log(Level::Info, message, fields);
}

/// Writes a [`Level::Warn`] record.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    log(Level::Warn, message, fields);
}

/// Writes a [`Level::Error`] record.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    log(Level::Error, message, fields);
}
