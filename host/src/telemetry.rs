//! What the server tells its operators: logs ([`logs`], JSON lines in
//! rotated files through [`json`] and [`rotate`]) and metrics
//! ([`metrics()`], served at `GET /metrics` in the format of
//! [`prometheus`]). docs/operations.md shows how to read both.

pub mod json;
pub mod logs;
pub mod metrics;
pub mod prometheus;
pub mod rotate;

pub use metrics::{Metrics, metrics};
