//! `mozaiks doctor`: the troubleshooting checklist, run by the program
//! itself. Each check yields [`Finding`]s (ok, warning or failure) with
//! the fix for anything that is wrong; [`Report::healthy`] is false when
//! any check failed.
//!
//! The checks, in order: configuration and secrets; the LLM endpoint and
//! its key; the store (with the real cause: refused, DNS, authentication,
//! timeout, locked); with `MOZAIKS_CLUSTER=on`, the cluster (lease indexes,
//! clock skew against the database, the other servers, version skew); the
//! port; plugins (load, grants); the instance slots
//! (the pool configured, and each plugin's use on a server that answers at
//! the configured address); workflows (every
//! cross reference, every tool against a loaded plugin function); UI
//! components; disk space for data and logs; the logs directory.
//!
//! Doctor is a pre-flight check: run it where and as the server will run,
//! while the server is stopped (a running server holds the port and the
//! embedded store).

mod checks;
mod cluster;
mod slots;

use std::fmt;

use serde::Serialize;

use crate::config::{Config, Overrides};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but probably not as meant.
    Warn,
    /// The server will not work as expected.
    Fail,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check (`config`, `llm`, `store`, `cluster`, `port`, `plugins`,
    /// `slots`, `workflows`, `components`, `disk`, `logs`, `logging`).
    pub check: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub(crate) fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub(crate) fn warn(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check,
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn fail(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check,
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True when no check failed.
    pub healthy: bool,
    /// The findings, in check order.
    pub findings: Vec<Finding>,
}

impl Report {
    fn new(findings: Vec<Finding>) -> Self {
        Self {
            healthy: findings.iter().all(|f| f.status != Status::Fail),
            findings,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let mark = match finding.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            writeln!(f, "{mark} {:<10} {}", finding.check, finding.message)?;
            if let Some(fix) = &finding.fix {
                writeln!(f, "     {:<10} fix: {fix}", "")?;
            }
        }
        let failed = self
            .findings
            .iter()
            .filter(|f| f.status == Status::Fail)
            .count();
        if failed == 0 {
            writeln!(f, "\nnothing wrong found")
        } else {
            writeln!(f, "\n{failed} problem(s) found")
        }
    }
}

/// Runs every check under `overrides` (the flags of `mozaiks doctor`).
pub async fn run(overrides: &Overrides) -> Report {
    let config = match Config::load(overrides) {
        Ok(config) => config,
        Err(errors) => {
            let mut findings: Vec<Finding> = errors
                .0
                .iter()
                .map(|e| {
                    Finding::fail(
                        "config",
                        e.to_string(),
                        "correct it in the environment or .env (`mozaiks config` shows every value and its source)",
                    )
                })
                .collect();
            findings.push(Finding::warn(
                "config",
                "the other checks need a valid configuration; they did not run",
                "fix the configuration, then run `mozaiks doctor` again",
            ));
            return Report::new(findings);
        }
    };
    let mut findings = vec![checks::config(&config)];
    findings.extend(
        config
            .warnings
            .iter()
            .map(|w| Finding::warn("config", w.clone(), "remove or rename it")),
    );
    findings.extend(checks::llm(&config).await);
    findings.push(checks::store(&config).await);
    findings.extend(cluster::section(&config).await);
    findings.push(checks::port(&config.addr).await);
    let (plugin_findings, catalog) = checks::plugins(&config).await;
    findings.extend(plugin_findings);
    findings.extend(checks::plugin_secrets(&config, &catalog));
    findings.extend(slots::slots(&config).await);
    let (workflow_findings, workflows) = checks::workflows(&config, &catalog);
    findings.extend(workflow_findings);
    findings.extend(checks::components(&workflows));
    findings.extend(checks::disk(&config));
    let logs_dir = checks::logs_dir(&config);
    let writable = logs_dir.status != Status::Fail;
    findings.push(logs_dir);
    if writable {
        findings.push(checks::logging(&config));
    }
    Report::new(findings)
}
