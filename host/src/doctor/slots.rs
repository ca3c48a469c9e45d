//! The `slots` check of `mozaiks doctor`: the instance pool as configured
//! (`MOZAIKS_PLUGIN_SLOTS`, `MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN`) and, when a
//! mozaiks server answers at the configured address, how many slots each
//! plugin holds there now (read from its `/metrics`); and whether swap is on,
//! which makes every call's reset slower.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Finding;
use crate::config::Config;

/// How long a server at the configured address gets to answer `/metrics`.
const METRICS_WAIT: Duration = Duration::from_secs(2);

/// The configured pool, then the live use or a plain note that no server
/// answers. A plugin that holds its whole share is a warning: its next calls
/// fail `busy`.
pub(super) async fn slots(config: &Config) -> Vec<Finding> {
    let per_plugin = config.plugin_slots_per_plugin.min(config.plugin_slots);
    let mut findings = vec![Finding::ok(
        "slots",
        format!(
            "configured: {} instance slots in all (MOZAIKS_PLUGIN_SLOTS), at most {per_plugin} per plugin (MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN)",
            config.plugin_slots
        ),
    )];
    if let Some(warning) = swap_warning(mozaiks_plugin_host::swap_is_on()) {
        findings.push(warning);
    }
    let Some(live) = live_use(&config.addr).await else {
        findings.push(Finding::ok(
            "slots",
            format!(
                "no mozaiks server answers at {}: live slot use not shown",
                config.addr
            ),
        ));
        return findings;
    };
    findings.push(Finding::ok("slots", live.describe(&config.addr)));
    for (plugin, held) in &live.in_use {
        if live.per_plugin > 0 && *held >= live.per_plugin {
            findings.push(Finding::warn(
                "slots",
                format!(
                    "`{plugin}` holds all {held} of its slots on the server at {}: its next calls fail `busy`",
                    config.addr
                ),
                "find what its calls wait for (a `ui.ask` nobody answers holds a slot until its timeout), or raise MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN",
            ));
        }
    }
    findings
}

/// A warning when swap is on: the server then resets each call's instance
/// slot without `PAGEMAP_SCAN` (`mozaiks_plugin_host::swap_is_on`).
fn swap_warning(swap_on: bool) -> Option<Finding> {
    swap_on.then(|| {
        Finding::warn(
            "slots",
            "swap is on (/proc/swaps): the server resets each call's instance slot without \
             PAGEMAP_SCAN, which would miss dirty pages that were swapped out, so tool calls \
             are slower (Rust 28 → 47 µs, Python 1.7 → 2.2 ms per call)",
            "run the server on a machine or container without swap (`swapoff -a`) for the fast reset",
        )
    })
}

/// The slots of a running server, from its `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LiveUse {
    total: u64,
    per_plugin: u64,
    /// Slots held now, by plugin (every plugin called since it started).
    in_use: BTreeMap<String, u64>,
}

impl LiveUse {
    /// Reads the pool's gauges from a Prometheus text exposition; `None`
    /// when it has none (not a mozaiks server).
    fn parse(metrics: &str) -> Option<Self> {
        let mut live = Self::default();
        let mut found = false;
        for line in metrics.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            // Gauges of whole slots.
            let value = value.max(0.0) as u64;
            if let Some(plugin) = label(series, "mozaiks_plugin_calls_in_flight", "plugin") {
                live.in_use.insert(plugin.to_owned(), value);
            } else if label(series, "mozaiks_plugin_slots", "kind") == Some("total") {
                live.total = value;
                found = true;
            } else if label(series, "mozaiks_plugin_slots", "kind") == Some("per_plugin") {
                live.per_plugin = value;
            }
        }
        found.then_some(live)
    }

    fn describe(&self, addr: &str) -> String {
        let held: u64 = self.in_use.values().sum();
        let mut text = format!(
            "the server at {addr} uses {held} of its {} slots (at most {} per plugin)",
            self.total, self.per_plugin
        );
        let plugins: Vec<String> = self
            .in_use
            .iter()
            .map(|(plugin, held)| format!("{plugin} {held} of {}", self.per_plugin))
            .collect();
        if !plugins.is_empty() {
            text.push_str(": ");
            text.push_str(&plugins.join(", "));
        }
        text
    }
}

/// The value of label `name` in `series` when it is `metric{name="…"}`.
fn label<'a>(series: &'a str, metric: &str, name: &str) -> Option<&'a str> {
    series
        .strip_prefix(metric)?
        .strip_prefix('{')?
        .strip_prefix(name)?
        .strip_prefix("=\"")?
        .strip_suffix("\"}")
}

/// The slots of the server answering at `addr`, if one does.
async fn live_use(addr: &str) -> Option<LiveUse> {
    let addr = addr.replacen("0.0.0.0:", "127.0.0.1:", 1);
    let url = format!("http://{addr}/metrics");
    // reqwest needs it even for plain HTTP; the LLM check installs it only
    // when an endpoint is configured.
    crate::llm::install_crypto_provider();
    let response = tokio::time::timeout(METRICS_WAIT, reqwest::Client::new().get(&url).send())
        .await
        .ok()?
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = tokio::time::timeout(METRICS_WAIT, response.text())
        .await
        .ok()?
        .ok()?;
    LiveUse::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_and_each_plugins_use_are_read_from_the_metrics() {
        let metrics = "# HELP mozaiks_plugin_slots Instance slots.\n\
            mozaiks_plugin_slots{kind=\"total\"} 256\n\
            mozaiks_plugin_slots{kind=\"per_plugin\"} 64\n\
            mozaiks_plugin_calls_in_flight{plugin=\"adversary\"} 3\n\
            mozaiks_plugin_calls_in_flight{plugin=\"planner\"} 0\n\
            mozaiks_plugin_calls_in_flight_other{plugin=\"x\"} 9\n";
        let live = LiveUse::parse(metrics).unwrap();
        assert_eq!((live.total, live.per_plugin), (256, 64));
        assert_eq!(
            live.in_use,
            BTreeMap::from([("adversary".to_owned(), 3), ("planner".to_owned(), 0)])
        );
        assert_eq!(
            live.describe("127.0.0.1:8080"),
            "the server at 127.0.0.1:8080 uses 3 of its 256 slots (at most 64 per plugin): adversary 3 of 64, planner 0 of 64"
        );
        assert_eq!(LiveUse::parse("up 1\n"), None);
    }

    #[test]
    fn swap_is_a_warning_with_its_fix() {
        assert!(swap_warning(false).is_none());
        let warning = swap_warning(true).unwrap();
        assert_eq!(warning.status, crate::doctor::Status::Warn);
        assert!(
            warning.message.contains("swap is on"),
            "{}",
            warning.message
        );
        assert!(warning.fix.unwrap().contains("swapoff"));
    }
}
