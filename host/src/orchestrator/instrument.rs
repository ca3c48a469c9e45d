//! What a run records for operators around its steps: the `tool` span
//! (so a plugin's own log lines and the host's carry `plugin` and
//! `function`) and the tool, turn metrics.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument as _;

use super::tools::ToolReport;
use crate::telemetry::metrics;

/// Runs one tool call in a `tool` span and counts it by outcome (`ok`, or
/// the failure kind the agent reads).
pub(super) async fn tool_call(
    plugin: &str,
    function: &str,
    call: impl Future<Output = ToolReport>,
) -> ToolReport {
    let started = Instant::now();
    let _in_flight = InFlight::start(plugin);
    let span = tracing::info_span!("tool", plugin, function);
    let report = call.instrument(span.clone()).await;
    let outcome = match (&report.ok, &report.error) {
        (true, _) => "ok",
        (false, Some(failure)) => failure.kind.as_str(),
        (false, None) => "failed",
    };
    let elapsed = started.elapsed();
    metrics().tool_call(plugin, function, outcome, elapsed);
    tracing::info!(
        parent: &span,
        outcome,
        duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "tool call"
    );
    report
}

/// Counts a call of a plugin as running until dropped (also when the run
/// drops the call unfinished).
struct InFlight<'a>(&'a str);

impl<'a> InFlight<'a> {
    fn start(plugin: &'a str) -> Self {
        metrics().plugin_calls_in_flight(plugin, 1);
        Self(plugin)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        metrics().plugin_calls_in_flight(self.0, -1);
    }
}

/// The clock of the agent turn in progress.
#[derive(Debug, Default)]
pub(super) struct TurnClock(Option<Instant>);

impl TurnClock {
    /// A turn of `agent` starts: counted and logged (in the turn's span,
    /// which names the agent).
    pub(super) fn start(&mut self, workflow: &str, agent: &str) {
        metrics().turn_started(workflow, agent);
        tracing::info!("turn started");
        self.0 = Some(Instant::now());
    }

    /// The turn ended (its agent replied or handed off).
    pub(super) fn end(&mut self, workflow: &str) {
        if let Some(started) = self.0.take() {
            let elapsed = started.elapsed();
            metrics().turn_ended(workflow, elapsed);
            tracing::info!(
                duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "turn ended"
            );
        }
    }
}
