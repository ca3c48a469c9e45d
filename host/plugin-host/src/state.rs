//! The data of one call's `Store`: created fresh for every call and dropped
//! with it, so nothing a call does survives into the next.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::limits::{CpuBudget, MemoryLimiter};
use crate::manifest::SecretDecl;
use crate::outbound::send::{NetworkClock, OutboundCall};
use crate::ports::{CallInfo, Ports};
use crate::redact::Redactor;
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
    /// `wasi:http` state of the call.
    pub(crate) http: WasiHttpCtx,
    /// Where this call's outbound requests are checked and sent.
    pub(crate) outbound: OutboundCall,
    /// Time with an outbound request in flight, left out of the CPU budget.
    pub(crate) network: Arc<NetworkClock>,
    /// The secrets the plugin declares.
    pub(crate) declared_secrets: Arc<BTreeMap<String, SecretDecl>>,
    /// Secrets handed to this call, redacted from what it sends out.
    pub(crate) redactor: Redactor,
    /// `data` operations made so far (bounded by `MAX_DATA_OPS_PER_CALL`).
    pub(crate) data_ops: usize,
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

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
