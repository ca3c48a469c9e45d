//! Setting up `tracing` for the process: human-readable lines on standard
//! error (coloured on a terminal) or JSON lines there for containers, and
//! JSON lines in rotated files under the logs directory
//! ([`super::json`], [`super::rotate`]).

use std::borrow::Cow;
use std::fmt;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

use super::json::{Fanout, JsonLayer, LineSink, Stderr};
use super::rotate::RotatingFile;

/// How the server logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// An `EnvFilter` directive (`LOG_LEVEL`): `info`, `debug`,
    /// `info,mozaiks_host::orchestrator=debug`...
    pub level: String,
    /// Where the JSON files go; `None` writes none.
    pub dir: Option<PathBuf>,
    /// A file is rotated when it would grow past this size.
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one.
    pub keep_files: usize,
    /// What standard error gets.
    pub stderr: StderrFormat,
}

/// The format of the log lines on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrFormat {
    /// Human-readable, coloured on a terminal.
    Text,
    /// JSON lines, as in the files (for containers).
    Json,
    /// Nothing (the files only).
    Off,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `LOG_LEVEL` does not parse.
    #[error(
        "LOG_LEVEL=`{level}` is not a level or filter ({source}); use error, warn, info, debug or trace"
    )]
    Filter {
        /// The directive.
        level: String,
        /// Why.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The logs directory or file cannot be written.
    #[error("cannot write logs in {}: {source}; set MOZAIKS_LOG_DIR to a writable directory (or to `off`)", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Our crates: a bare `LOG_LEVEL` applies to them, dependencies stay at
/// `warn` ([`directives`]).
const OWN_TARGETS: [&str; 3] = ["mozaiks", "mozaiks_host", "mozaiks_plugin_host"];

/// The filter directives for `LOG_LEVEL`. A bare level more verbose than
/// `warn` (`info`, `debug`, `trace`) applies to our own crates only, with
/// every dependency (the WASM compiler, HTTP clients, the database driver)
/// at `warn`: at `debug`, cranelift alone would write thousands of lines
/// per compiled component. Any other level, or a filter with targets, is
/// used as written.
pub(crate) fn directives(level: &str) -> String {
    let bare = level.trim().to_ascii_lowercase();
    if matches!(bare.as_str(), "info" | "debug" | "trace") {
        let own: Vec<String> = OWN_TARGETS.iter().map(|t| format!("{t}={bare}")).collect();
        format!("warn,{}", own.join(","))
    } else {
        level.to_owned()
    }
}

/// Parses `LOG_LEVEL` (through [`directives`]).
pub(crate) fn filter(level: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(directives(level)).map_err(|source| LogError::Filter {
        level: level.to_owned(),
        source,
    })
}

/// Standard error only, for the short-lived commands (`validate`, `tool`,
/// `chats`): `LOG_LEVEL` from the environment, `info` when unset or bad.
pub fn init_cli() {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    let filter = filter(&level).unwrap_or_else(|_| EnvFilter::new(directives("info")));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text_layer())
        .try_init();
}

/// Human-readable lines on standard error, coloured on a terminal, with
/// every field escaped ([`escaped_fields`]).
fn text_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .fmt_fields(escaped_fields())
}

/// Field formatting for the text format: one record is one line, and its
/// `key=value` pairs are the host's. Text a tool controls (its log messages
/// and fields, its stderr inside an error) cannot start a line of its own,
/// send terminal escapes, or pass for a field:
///
/// - a field value with a space, `=`, `"`, `\` or a control character, or
///   an empty one, is written quoted and escaped as a Rust string
///   (`echo="a plugin=x"`);
/// - the message is written quoted the same way when it holds an `=` or a
///   `"` (`"done plugin=x"`), else as it is with control characters escaped
///   (`\n`, `\u{1b}`).
fn escaped_fields() -> EscapedFields {
    EscapedFields
}

/// The [`FormatFields`](tracing_subscriber::fmt::FormatFields) of the text
/// format ([`escaped_fields`]).
#[derive(Debug, Clone, Copy)]
struct EscapedFields;

impl<'w> MakeVisitor<Writer<'w>> for EscapedFields {
    type Visitor = EscapedVisitor<'w>;

    fn make_visitor(&self, writer: Writer<'w>) -> EscapedVisitor<'w> {
        EscapedVisitor {
            writer,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one record's fields for [`EscapedFields`].
struct EscapedVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl EscapedVisitor<'_> {
    fn write(&mut self, field: &Field, text: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", quote_message(text))
        } else {
            write!(
                self.writer,
                "{separator}{}={}",
                field.name(),
                quote_value(text)
            )
        };
    }
}

impl Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for EscapedVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A field value as the text format writes it (see [`escaped_fields`]).
fn quote_value(text: &str) -> Cow<'_, str> {
    let plain = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | '"' | '\\'));
    if plain {
        text.into()
    } else {
        format!("{text:?}").into()
    }
}

/// A message as the text format writes it (see [`escaped_fields`]).
fn quote_message(text: &str) -> Cow<'_, str> {
    if text.contains(['=', '"']) {
        format!("{text:?}").into()
    } else {
        escape_control(text)
    }
}

/// `text` with control characters escaped as Rust would write them.
fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.into()
}

/// The server's logging. Call once, before anything logs.
pub fn init_server(config: &LogConfig) -> Result<(), LogError> {
    // `try_init` also forwards the `log` records of dependencies.
    let _ = subscriber(config)?.try_init();
    Ok(())
}

/// The subscriber [`init_server`] installs: the `LOG_LEVEL` filter, the
/// standard error format and the rotated JSON file, built the same way for
/// the server and for `mozaiks doctor`'s logging check. One [`JsonLayer`]
/// feeds every JSON destination.
pub(crate) fn subscriber(
    config: &LogConfig,
) -> Result<Box<dyn Subscriber + Send + Sync>, LogError> {
    build(config, filter(&config.level)?)
}

/// The target of `mozaiks doctor`'s logging check, logged at `info`
/// whatever `LOG_LEVEL` says.
pub(crate) const PROBE_TARGET: &str = "mozaiks_host::doctor::probe";

/// [`subscriber`], with [`PROBE_TARGET`] enabled: what `mozaiks doctor`
/// runs one probe line through.
pub(crate) fn probe_subscriber(
    config: &LogConfig,
) -> Result<Box<dyn Subscriber + Send + Sync>, LogError> {
    let directive = format!("{PROBE_TARGET}=info")
        .parse()
        .map_err(|source| LogError::Filter {
            level: config.level.clone(),
            source,
        })?;
    build(config, filter(&config.level)?.add_directive(directive))
}

fn build(
    config: &LogConfig,
    filter: EnvFilter,
) -> Result<Box<dyn Subscriber + Send + Sync>, LogError> {
    let mut json_sinks: Vec<Box<dyn LineSink>> = Vec::new();
    let text = match config.stderr {
        StderrFormat::Json => {
            json_sinks.push(Box::new(Stderr));
            None
        }
        StderrFormat::Text => Some(text_layer()),
        StderrFormat::Off => None,
    };
    if let Some(dir) = &config.dir {
        json_sinks.push(Box::new(Mutex::new(open(dir, config)?)));
    }
    let json = (!json_sinks.is_empty()).then(|| JsonLayer::new(Fanout(json_sinks)));
    Ok(Box::new(
        tracing_subscriber::registry()
            .with(filter)
            .with(text)
            .with(json),
    ))
}

fn open(dir: &Path, config: &LogConfig) -> Result<RotatingFile, LogError> {
    RotatingFile::open(dir, config.max_file_bytes, config.keep_files).map_err(|source| {
        LogError::Dir {
            dir: dir.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_keeps_dependencies_at_warn_and_a_filter_is_taken_as_written() {
        assert_eq!(
            directives("debug"),
            "warn,mozaiks=debug,mozaiks_host=debug,mozaiks_plugin_host=debug"
        );
        assert_eq!(
            directives("INFO"),
            "warn,mozaiks=info,mozaiks_host=info,mozaiks_plugin_host=info"
        );
        for as_written in ["warn", "error", "off", "info,wasmtime=debug"] {
            assert_eq!(directives(as_written), as_written);
        }
    }

    #[test]
    fn a_value_that_could_pass_for_more_than_one_field_is_quoted() {
        assert_eq!(quote_value("adversary"), "adversary");
        assert_eq!(quote_value("é-1.5"), "é-1.5");
        assert_eq!(quote_value(""), "\"\"");
        assert_eq!(quote_value("a plugin=x"), "\"a plugin=x\"");
        assert_eq!(quote_value("a=b"), "\"a=b\"");
        assert_eq!(quote_value("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote_value("a\\b"), "\"a\\\\b\"");
        assert_eq!(quote_value("a\nb\u{1b}"), "\"a\\nb\\u{1b}\"");
    }

    #[test]
    fn a_message_is_quoted_only_when_it_could_hold_a_field() {
        assert_eq!(quote_message("plugin loaded"), "plugin loaded");
        assert_eq!(quote_message("a\nb"), "a\\nb");
        assert_eq!(
            quote_message("done plugin=x chat_id=y"),
            "\"done plugin=x chat_id=y\""
        );
        assert_eq!(quote_message("a \" b"), "\"a \\\" b\"");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_control("plain é"), "plain é");
        assert_eq!(
            escape_control("a\nb\r\tc\u{1b}[31m\u{7}\u{85}"),
            "a\\nb\\r\\tc\\u{1b}[31m\\u{7}\\u{85}"
        );
    }
}
