//! A `tracing` layer that writes one flat JSON object per event:
//!
//! ```json
//! {"ts":"2026-11-29T09:41:07.120Z","level":"WARN","target":"mozaiks_host::orchestrator::run",
//!  "message":"tool call failed","chat_id":"3f…","workflow":"PlanReview","agent":"Planner",
//!  "plugin":"planner","function":"add_task",
//!  "error":{"type":"Deadline","message":"…","chain":["…"]}}
//! ```
//!
//! Fields of every enclosing span (outermost first) are merged into the
//! object, so an event inside a chat's run carries `chat_id`, `workflow`
//! and `agent`, and one inside a tool call also `plugin` and `function`,
//! without each call site repeating them. Flat keys keep the `jq` recipes
//! in docs/operations.md short: `select(.chat_id == "…")`.
//!
//! An error recorded as a `&dyn Error` field becomes `{type, message,
//! chain}`: the type is the head of its `Debug` form (the enum variant for
//! our `thiserror` errors), the chain is every `source()` below it.

use std::error::Error;
use std::fmt;
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::rotate::RotatingFile;

/// Where JSON lines go.
pub(crate) trait LineSink: Send + Sync + 'static {
    /// Writes one line (ending in `\n`). Failures are dropped: logging
    /// must never stop the server.
    fn write_line(&self, line: &[u8]);
}

impl LineSink for Mutex<RotatingFile> {
    fn write_line(&self, line: &[u8]) {
        let _ = self
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_line(line);
    }
}

/// Standard error, for containers that collect JSON from it.
#[derive(Debug)]
pub(crate) struct Stderr;

impl LineSink for Stderr {
    fn write_line(&self, line: &[u8]) {
        let _ = std::io::stderr().lock().write_all(line);
    }
}

/// Several sinks fed by one layer: standard error and the file get the
/// same line, formatted once. (Two JSON layers on one subscriber would each
/// keep their span fields in the span's extensions, and `tracing-subscriber`
/// panics on the second insert of one type.)
pub(crate) struct Fanout(pub Vec<Box<dyn LineSink>>);

impl fmt::Debug for Fanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fanout").field(&self.0.len()).finish()
    }
}

impl LineSink for Fanout {
    fn write_line(&self, line: &[u8]) {
        for sink in &self.0 {
            sink.write_line(line);
        }
    }
}

/// The layer; see the module docs.
pub(crate) struct JsonLayer<W> {
    sink: W,
}

impl<W> fmt::Debug for JsonLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLayer").finish_non_exhaustive()
    }
}

impl<W: LineSink> JsonLayer<W> {
    /// A layer writing to `sink`.
    pub(crate) fn new(sink: W) -> Self {
        Self { sink }
    }
}

/// The fields recorded on a span, kept in its extensions.
#[derive(Debug, Default)]
struct SpanFields(Map<String, Value>);

struct Visitor<'a>(&'a mut Map<String, Value>);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        self.0.insert(field.name().to_owned(), error_json(value));
    }
}

/// `{type, message, chain}` of an error.
pub(crate) fn error_json(error: &(dyn Error + 'static)) -> Value {
    let debug = format!("{error:?}");
    let kind: String = debug
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(Value::String(cause.to_string()));
        source = cause.source();
    }
    serde_json::json!({"type": kind, "message": error.to_string(), "chain": chain})
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: LineSink,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut Visitor(&mut fields));
        let mut extensions = span.extensions_mut();
        // Another layer of this type on the same subscriber keeps the same
        // fields: `insert` would panic on the second one.
        match extensions.get_mut::<SpanFields>() {
            Some(existing) => existing.0.extend(fields),
            None => extensions.insert(SpanFields(fields)),
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Visitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut object = Map::new();
        object.insert("ts".into(), Value::String(rfc3339_now()));
        object.insert("level".into(), Value::String(metadata.level().to_string()));
        object.insert("target".into(), Value::String(metadata.target().to_owned()));
        if let Some(scope) = ctx.event_scope(event) {
            let mut spans = Vec::new();
            for span in scope.from_root() {
                spans.push(Value::String(span.name().to_owned()));
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (key, value) in &fields.0 {
                        object.insert(key.clone(), value.clone());
                    }
                }
            }
            object.insert("spans".into(), Value::Array(spans));
        }
        event.record(&mut Visitor(&mut object));
        let mut line = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
        line.push(b'\n');
        self.sink.write_line(&line);
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn rfc3339_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_millis())
}

fn rfc3339(ms: u128) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let millis = ms % 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<Value>>>);

    impl LineSink for Lines {
        fn write_line(&self, line: &[u8]) {
            self.0
                .lock()
                .unwrap()
                .push(serde_json::from_slice(line).unwrap());
        }
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("saving the chat")]
        Save(#[source] std::io::Error),
    }

    #[test]
    fn events_carry_the_fields_of_their_spans_and_errors_their_chain() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let chat = tracing::info_span!(
                "chat",
                chat_id = "c1",
                workflow = "W",
                agent = tracing::field::Empty
            );
            let _chat = chat.enter();
            chat.record("agent", "Planner");
            let tool = tracing::info_span!("tool", plugin = "planner", function = "add_task");
            let _tool = tool.enter();
            let error = Outer::Save(std::io::Error::other("disk full"));
            tracing::warn!(error = &error as &dyn Error, "tool call failed");
        });
        let lines = lines.0.lock().unwrap();
        let line = &lines[0];
        assert_eq!(line["message"], "tool call failed");
        assert_eq!(line["level"], "WARN");
        for (key, value) in [
            ("chat_id", "c1"),
            ("workflow", "W"),
            ("agent", "Planner"),
            ("plugin", "planner"),
            ("function", "add_task"),
        ] {
            assert_eq!(line[key], value, "{key}");
        }
        assert_eq!(
            line["error"],
            serde_json::json!({"type": "Save", "message": "saving the chat", "chain": ["disk full"]})
        );
        assert_eq!(line["spans"], serde_json::json!(["chat", "tool"]));
    }

    #[test]
    fn timestamps_are_utc_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_945_267_123), "2026-11-29T09:41:07.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
