//! The data of one call's `Store`: created fresh for every call and dropped
//! with it, so nothing a call does survives into the next.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::{CpuBudget, MemoryLimiter};
use crate::ports::{CallInfo, Ports};
use crate::stdio::Capture;

/// Identifies the call for logs and errors.
#[derive(Debug, Clone)]
pub(crate) struct CallScope {
    pub(crate) plugin: Arc<str>,
    pub(crate) function: String,
    pub(crate) info: CallInfo,
}

/// Everything the host knows during one call.
pub(crate) struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) budget: CpuBudget,
    pub(crate) scope: CallScope,
    pub(crate) ports: Ports,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    /// Destinations the sandbox refused, in order; filled by the socket check.
    pub(crate) denied_connects: Arc<Mutex<Vec<String>>>,
    /// UI requests and events made so far, against the per-call limits.
    pub(crate) ui: UiCounts,
    /// Records the `log` import received so far.
    pub(crate) log_records: usize,
    /// Context changes so far, against the per-call limits.
    pub(crate) context: ContextCounts,
}

/// What a call has changed in the context, against
/// [`crate::MAX_CONTEXT_CHANGES_PER_CALL`] and
/// [`crate::MAX_CONTEXT_WRITE_BYTES_PER_CALL`].
#[derive(Debug, Default)]
pub(crate) struct ContextCounts {
    pub(crate) changes: usize,
    pub(crate) written: usize,
}

/// What a call has sent to the UI, against [`crate::MAX_UI_ASKS_PER_CALL`]
/// and [`crate::MAX_UI_EVENTS_PER_CALL`].
#[derive(Debug, Default)]
pub(crate) struct UiCounts {
    pub(crate) asks: u32,
    pub(crate) events: u32,
    /// Events refused so far (the first one is logged).
    pub(crate) dropped: u32,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
