//! What the server tells its operators: logs ([`logs`], JSON lines in
//! rotated files through [`json`] and [`rotate`]) and metrics
//! ([`metrics()`], served at `GET /metrics` in the format of
//! [`prometheus`]). docs/operations.md shows how to read both.

pub(crate) mod json;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod prometheus;
pub(crate) mod rotate;

pub(crate) use metrics::metrics;
