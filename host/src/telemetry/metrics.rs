//! The server's metrics, served at `GET /metrics` (docs/operations.md
//! lists them with what to alert on).
//!
//! One process-wide [`Metrics`] ([`metrics()`]): every part of the server
//! records into it without a handle being threaded through, and the
//! values are plain counters that no code path reads to decide anything.
//! Labels never carry app, user or chat ids, so the endpoint leaks no
//! tenant data and the number of series stays bounded by the workflows,
//! plugins and models that are deployed.

use std::sync::OnceLock;
use std::time::Duration;

use super::prometheus::{Family, HistogramSeries, Render};

/// Bounds for calls that take seconds to minutes: turns, LLM requests.
const SLOW_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// Bounds for tool calls and instantiation: a few milliseconds when
/// warm, up to the default 5 s CPU budget (waiting for the user excluded
/// from the budget but not from the wall-clock duration, hence the tail).
const TOOL_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
];

/// Bounds for store operations: sub-millisecond on the embedded store,
/// milliseconds on a MongoDB replica set, seconds during an outage.
const STORE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Bounds for the number of appends one group commit writes: 1 on an idle
/// server, up to the embedded store's cap of 1024 under a burst.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Every metric of the server.
#[derive(Debug)]
pub(crate) struct Metrics {
    chats_started: Family<u64>,
    active_runs: Family<i64>,
    turns: Family<u64>,
    turn_duration: Family<HistogramSeries>,
    llm_duration: Family<HistogramSeries>,
    llm_tokens: Family<u64>,
    llm_retries: Family<u64>,
    tool_calls: Family<u64>,
    tool_duration: Family<HistogramSeries>,
    instantiation: Family<HistogramSeries>,
    plugin_calls_in_flight: Family<i64>,
    plugin_slots: Family<i64>,
    reloads: Family<u64>,
    websockets: Family<i64>,
    store_duration: Family<HistogramSeries>,
    commit_batch: Family<HistogramSeries>,
    commit_duration: Family<HistogramSeries>,
    http_requests: Family<u64>,
    build_info: Family<i64>,
}

/// The process-wide metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics (tests make their own; the server uses [`metrics()`]).
    pub(crate) fn new() -> Self {
        let build_info = Family::gauge(
            "mozaiks_build_info",
            "The running version (always 1).",
            &["version"],
        );
        build_info.set(&[env!("CARGO_PKG_VERSION")], 1);
        Self {
            chats_started: Family::counter(
                "mozaiks_chats_started_total",
                "Chats created.",
                &["workflow"],
            ),
            active_runs: Family::gauge(
                "mozaiks_active_runs",
                "Chat runs in progress in this process (running or waiting for input).",
                &[],
            ),
            turns: Family::counter(
                "mozaiks_turns_total",
                "Agent turns started.",
                &["workflow", "agent"],
            ),
            turn_duration: Family::histogram(
                "mozaiks_turn_duration_seconds",
                "Wall-clock time of an agent turn: LLM calls and tool calls until the agent hands off.",
                &["workflow"],
                SLOW_BUCKETS,
            ),
            llm_duration: Family::histogram(
                "mozaiks_llm_request_duration_seconds",
                "Time of one LLM request, streaming included, by model and outcome (ok or an LLM error code).",
                &["model", "outcome"],
                SLOW_BUCKETS,
            ),
            llm_tokens: Family::counter(
                "mozaiks_llm_tokens_total",
                "Tokens reported by the LLM, by model and kind (prompt or completion).",
                &["model", "kind"],
            ),
            llm_retries: Family::counter(
                "mozaiks_llm_retries_total",
                "LLM requests retried by the retry policy, by model and the code of the failure retried.",
                &["model", "code"],
            ),
            tool_calls: Family::counter(
                "mozaiks_tool_calls_total",
                "Tool calls by plugin, function and outcome (ok, or the failure kind: trap, deadline, tool_error...).",
                &["plugin", "function", "outcome"],
            ),
            tool_duration: Family::histogram(
                "mozaiks_tool_call_duration_seconds",
                "Wall-clock time of a tool call, instantiation and UI waits included.",
                &["plugin", "function"],
                TOOL_BUCKETS,
            ),
            instantiation: Family::histogram(
                "mozaiks_plugin_instantiation_seconds",
                "Time to make a plugin callable (compile or load from cache, pre-instantiate).",
                &["plugin"],
                TOOL_BUCKETS,
            ),
            plugin_calls_in_flight: Family::gauge(
                "mozaiks_plugin_calls_in_flight",
                "Tool calls running now by plugin, each holding one instance slot (waits for the user included).",
                &["plugin"],
            ),
            plugin_slots: Family::gauge(
                "mozaiks_plugin_slots",
                "Instance slots: `total` (MOZAIKS_PLUGIN_SLOTS) and `per_plugin`, the most one plugin may hold (MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN).",
                &["kind"],
            ),
            reloads: Family::counter(
                "mozaiks_reloads_total",
                "Hot reloads by kind (plugin, workflow, build) and outcome (loaded, rejected, removed).",
                &["kind", "outcome"],
            ),
            websockets: Family::gauge(
                "mozaiks_websocket_connections",
                "Open chat WebSocket connections.",
                &[],
            ),
            store_duration: Family::histogram(
                "mozaiks_store_operation_duration_seconds",
                "Chat store operations by operation and outcome (ok, error).",
                &["operation", "outcome"],
                STORE_BUCKETS,
            ),
            commit_batch: Family::histogram(
                "mozaiks_store_commit_batch_size",
                "Appends written by one group commit of the chat store (one transaction and one fdatasync on the embedded store, one bulk write on MongoDB), by store.",
                &["store"],
                BATCH_BUCKETS,
            ),
            commit_duration: Family::histogram(
                "mozaiks_store_commit_duration_seconds",
                "Time of one group commit of the chat store: writing its appends and making them durable, by store.",
                &["store"],
                STORE_BUCKETS,
            ),
            http_requests: Family::counter(
                "mozaiks_http_requests_total",
                "HTTP requests by method, route template and status.",
                &["method", "route", "status"],
            ),
            build_info,
        }
    }

    /// A chat of `workflow` was created.
    pub(crate) fn chat_started(&self, workflow: &str) {
        self.chats_started.inc(&[workflow]);
    }

    /// A run started (+1) or ended (-1) in this process.
    pub(crate) fn active_runs(&self, delta: i64) {
        self.active_runs.add(&[], delta);
    }

    /// An agent turn started.
    pub(crate) fn turn_started(&self, workflow: &str, agent: &str) {
        self.turns.inc(&[workflow, agent]);
    }

    /// An agent turn ended after `duration`.
    pub(crate) fn turn_ended(&self, workflow: &str, duration: Duration) {
        self.turn_duration.observe_duration(&[workflow], duration);
    }

    /// One LLM request to `model` ended with `outcome` (`ok` or an error
    /// code) after `duration`.
    pub(crate) fn llm_request(&self, model: &str, outcome: &str, duration: Duration) {
        self.llm_duration
            .observe_duration(&[model, outcome], duration);
    }

    /// Tokens the LLM reported for one request.
    pub(crate) fn llm_tokens(&self, model: &str, prompt: u64, completion: u64) {
        self.llm_tokens.add(&[model, "prompt"], prompt);
        self.llm_tokens.add(&[model, "completion"], completion);
    }

    /// An LLM request to `model` failed with `code` and is retried.
    pub(crate) fn llm_retry(&self, model: &str, code: &str) {
        self.llm_retries.inc(&[model, code]);
    }

    /// A tool call ended with `outcome` (`ok` or the failure kind).
    pub(crate) fn tool_call(
        &self,
        plugin: &str,
        function: &str,
        outcome: &str,
        duration: Duration,
    ) {
        self.tool_calls.inc(&[plugin, function, outcome]);
        self.tool_duration
            .observe_duration(&[plugin, function], duration);
    }

    /// Making `plugin` callable took `duration` (at start or on reload).
    pub(crate) fn instantiation(&self, plugin: &str, duration: Duration) {
        self.instantiation.observe_duration(&[plugin], duration);
    }

    /// A call of `plugin` started (+1) or ended (-1).
    pub(crate) fn plugin_calls_in_flight(&self, plugin: &str, delta: i64) {
        self.plugin_calls_in_flight.add(&[plugin], delta);
    }

    /// The instance pool's size and each plugin's share.
    pub(crate) fn plugin_slots(&self, total: u32, per_plugin: u32) {
        self.plugin_slots.set(&["total"], i64::from(total));
        self.plugin_slots
            .set(&["per_plugin"], i64::from(per_plugin));
    }

    /// A hot reload of `kind` (`plugin`, `workflow`, `build`) ended with
    /// `outcome` (`loaded`, `rejected`, `removed`).
    pub(crate) fn reloads(&self, kind: &str, outcome: &str) {
        self.reloads.inc(&[kind, outcome]);
    }

    /// A chat WebSocket opened (+1) or closed (-1).
    pub(crate) fn websockets(&self, delta: i64) {
        self.websockets.add(&[], delta);
    }

    /// A store operation ended after `duration`.
    pub(crate) fn store_operation(&self, operation: &str, ok: bool, duration: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.store_duration
            .observe_duration(&[operation, outcome], duration);
    }

    /// One group commit of `store` wrote `appends` appends in `duration`.
    pub(crate) fn store_commit(&self, store: &str, appends: usize, duration: Duration) {
        // Exact: a batch is capped far below f64's integer range.
        #[expect(
            clippy::cast_precision_loss,
            reason = "batches are at most a few thousand"
        )]
        let appends = appends as f64;
        self.commit_batch.observe(&[store], appends);
        self.commit_duration.observe_duration(&[store], duration);
    }

    /// An HTTP request was answered.
    pub(crate) fn http_request(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .inc(&[method, route, &status.to_string()]);
    }

    /// Everything in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let families: [&dyn Render; 19] = [
            &self.build_info,
            &self.chats_started,
            &self.active_runs,
            &self.turns,
            &self.turn_duration,
            &self.llm_duration,
            &self.llm_tokens,
            &self.llm_retries,
            &self.tool_calls,
            &self.tool_duration,
            &self.instantiation,
            &self.plugin_calls_in_flight,
            &self.plugin_slots,
            &self.reloads,
            &self.websockets,
            &self.store_duration,
            &self.commit_batch,
            &self.commit_duration,
            &self.http_requests,
        ];
        for family in families {
            family.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_its_type() {
        let metrics = Metrics::new();
        metrics.tool_call("planner", "add_task", "ok", Duration::from_millis(3));
        metrics.llm_tokens("m", 10, 5);
        metrics.store_commit("embedded", 3, Duration::from_micros(300));
        let text = metrics.render();
        for family in [
            "mozaiks_chats_started_total counter",
            "mozaiks_plugin_calls_in_flight gauge",
            "mozaiks_plugin_slots gauge",
            "mozaiks_active_runs gauge",
            "mozaiks_turn_duration_seconds histogram",
            "mozaiks_llm_tokens_total counter",
            "mozaiks_reloads_total counter",
            "mozaiks_websocket_connections gauge",
            "mozaiks_store_operation_duration_seconds histogram",
            "mozaiks_store_commit_batch_size histogram",
            "mozaiks_store_commit_duration_seconds histogram",
        ] {
            assert!(text.contains(&format!("# TYPE {family}\n")), "{family}");
        }
        assert!(text.contains(
            "mozaiks_tool_calls_total{plugin=\"planner\",function=\"add_task\",outcome=\"ok\"} 1\n"
        ));
        assert!(text.contains("mozaiks_llm_tokens_total{model=\"m\",kind=\"prompt\"} 10\n"));
        assert!(text.contains("mozaiks_active_runs 0\n"));
        assert!(
            text.contains(
                "mozaiks_store_commit_batch_size_bucket{store=\"embedded\",le=\"2\"} 0\n"
            )
        );
        assert!(
            text.contains(
                "mozaiks_store_commit_batch_size_bucket{store=\"embedded\",le=\"4\"} 1\n"
            )
        );
        assert!(text.contains("mozaiks_store_commit_batch_size_sum{store=\"embedded\"} 3\n"));
    }
}
