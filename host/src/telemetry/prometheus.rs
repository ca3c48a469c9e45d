//! A small Prometheus registry: counters, gauges and histograms with
//! labels, rendered in the text exposition format (version 0.0.4).
//!
//! In-house rather than the `prometheus` or `metrics` crates: the server
//! needs a dozen metric families and one text endpoint, which is less code
//! than the glue to either crate. Series are kept under one mutex per
//! family; updates are a map lookup and an add, far below the cost of the
//! LLM calls, tool calls and store writes they measure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Label values of one series, in the family's label order.
type Key = Vec<String>;

/// A family of series that share a name, help text and label names.
#[derive(Debug)]
pub(crate) struct Family<S> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Key, S>>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// The state of one histogram series.
#[derive(Debug, Clone, Default)]
pub(crate) struct HistogramSeries {
    /// Observations per bucket (not cumulative), one per bound, plus the
    /// overflow bucket.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl<S: Default> Family<S> {
    fn with_kind(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        kind: Kind,
    ) -> Self {
        Self {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
            kind,
        }
    }

    fn update(&self, values: &[&str], f: impl FnOnce(&mut S)) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Key = values.iter().map(|v| (*v).to_owned()).collect();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        f(series.entry(key).or_default());
    }
}

impl Family<u64> {
    /// A counter family.
    pub(crate) fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::with_kind(name, help, labels, Kind::Counter)
    }

    /// Adds `n` to the series with these label values.
    pub(crate) fn add(&self, values: &[&str], n: u64) {
        self.update(values, |c| *c = c.saturating_add(n));
    }

    /// Adds one.
    pub(crate) fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }
}

impl Family<i64> {
    /// A gauge family.
    pub(crate) fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::with_kind(name, help, labels, Kind::Gauge)
    }

    /// Adds `delta` (negative to decrease).
    pub(crate) fn add(&self, values: &[&str], delta: i64) {
        self.update(values, |g| *g = g.saturating_add(delta));
    }

    /// Sets the value.
    pub(crate) fn set(&self, values: &[&str], value: i64) {
        self.update(values, |g| *g = value);
    }

    /// The current value (0 for a series never touched).
    #[cfg(test)]
    pub(crate) fn get(&self, values: &[&str]) -> i64 {
        let key: Key = values.iter().map(|v| (*v).to_owned()).collect();
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied()
            .unwrap_or(0)
    }
}

impl Family<HistogramSeries> {
    /// A histogram family with these upper bucket bounds (ascending;
    /// `+Inf` is implied).
    pub(crate) fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Self::with_kind(name, help, labels, Kind::Histogram(bounds))
    }

    /// Records one observation.
    pub(crate) fn observe(&self, values: &[&str], value: f64) {
        let Kind::Histogram(bounds) = self.kind else {
            return;
        };
        let bucket = bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(bounds.len());
        self.update(values, |h| {
            if h.buckets.len() != bounds.len() + 1 {
                h.buckets = vec![0; bounds.len() + 1];
            }
            if let Some(slot) = h.buckets.get_mut(bucket) {
                *slot += 1;
            }
            h.sum += value;
            h.count += 1;
        });
    }

    /// Records a duration in seconds.
    pub(crate) fn observe_duration(&self, values: &[&str], duration: Duration) {
        self.observe(values, duration.as_secs_f64());
    }
}

/// Something that renders itself in the text format.
pub(crate) trait Render {
    /// Appends `# HELP`, `# TYPE` and every series to `out`.
    fn render(&self, out: &mut String);
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Render for Family<u64> {
    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in series.iter() {
            let _ = writeln!(
                out,
                "{}{} {value}",
                self.name,
                labels(self.labels, key, None)
            );
        }
    }
}

impl Render for Family<i64> {
    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.is_empty() && self.labels.is_empty() {
            let _ = writeln!(out, "{} 0", self.name);
        }
        for (key, value) in series.iter() {
            let _ = writeln!(
                out,
                "{}{} {value}",
                self.name,
                labels(self.labels, key, None)
            );
        }
    }
}

impl Render for Family<HistogramSeries> {
    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let Kind::Histogram(bounds) = self.kind else {
            return;
        };
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, h) in series.iter() {
            let mut cumulative = 0;
            for (i, count) in h.buckets.iter().enumerate() {
                cumulative += count;
                let le = bounds
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |b| format_float(*b));
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    self.name,
                    labels(self.labels, key, Some(&le))
                );
            }
            let plain = labels(self.labels, key, None);
            let _ = writeln!(out, "{}_sum{plain} {}", self.name, format_float(h.sum));
            let _ = writeln!(out, "{}_count{plain} {}", self.name, h.count);
        }
    }
}

/// `{a="x",b="y"}` (with `le` last for buckets), or nothing without labels.
fn labels(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_float(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_renders_one_line_per_label_set_with_escaped_values() {
        let family = Family::counter("x_total", "Things.\nMore.", &["name"]);
        family.inc(&["a\"b"]);
        family.add(&["plain"], 3);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP x_total Things.\\nMore.\n# TYPE x_total counter\n\
             x_total{name=\"a\\\"b\"} 1\nx_total{name=\"plain\"} 3\n"
        );
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let family = Family::histogram("d_seconds", "Durations.", &["op"], &[0.1, 1.0]);
        family.observe(&["w"], 0.05);
        family.observe(&["w"], 0.5);
        family.observe(&["w"], 5.0);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{op=\"w\",le=\"0.1\"} 1\n\
             d_seconds_bucket{op=\"w\",le=\"1\"} 2\n\
             d_seconds_bucket{op=\"w\",le=\"+Inf\"} 3\n\
             d_seconds_sum{op=\"w\"} 5.55\nd_seconds_count{op=\"w\"} 3\n"
        );
    }

    #[test]
    fn a_gauge_without_labels_shows_zero_before_its_first_update() {
        let family = Family::gauge("g", "A gauge.", &[]);
        let mut out = String::new();
        family.render(&mut out);
        assert!(out.ends_with("g 0\n"), "{out}");
        family.add(&[], 2);
        family.add(&[], -1);
        assert_eq!(family.get(&[]), 1);
    }
}
