//! The process's one [`wasmtime::Engine`], its linker, and the epoch ticker
//! that lets deadlines interrupt guest code.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::backtrace::CAPTURED_FRAMES;
use crate::bindings::Plugin as WitPlugin;
use crate::cache::ComponentCache;
use crate::limits::{MAX_MEMORY_MIB, MIB};
use crate::state::CallState;

/// How often the epoch advances. Deadlines are checked at this granularity,
/// and a running guest yields to the async executor this often, so one busy
/// tool cannot starve the server's other tasks for longer than this.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default number of calls that may run at once across all plugins. Each
/// takes one pooled instance slot (virtual memory is reserved per slot, and
/// physical memory is used only as a guest touches it).
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 256;

/// Core instances one component may create. A Rust `wasm32-wasip2` tool is
/// one core module plus a few adapter shims; this leaves ample headroom.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// Linear memories per component: tools have one; two leaves room for shims.
const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables per component: the main module's and the shims' indirect tables.
const MAX_TABLES_PER_COMPONENT: u32 = 8;
/// Guest stack. Deep recursion traps with "call stack exhausted" well before
/// the host thread's own stack is at risk.
const MAX_WASM_STACK: usize = 1024 * 1024;

/// Bytes of a freed memory or table slot that are reset in place and kept
/// mapped instead of being returned to the kernel with `madvise`. With
/// `PAGEMAP_SCAN` (Linux 6.7+) only the pages a call really dirtied are
/// reset, so the next call in the slot takes no page faults and no TLB
/// shootdown for them (p50 per call 59 µs → 35 µs, docs/benchmarks.md). The
/// price is resident memory: up to this much per warm slot, and wasmtime
/// keeps at most 100 warm slots, so at most 200 MiB.
const KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;

/// Settings of a [`PluginEngine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Calls that may run at once; see [`DEFAULT_MAX_CONCURRENT_CALLS`].
    pub max_concurrent_calls: u32,
    /// Where compiled components are kept between runs, keyed by content
    /// hash; `None` compiles every time. The directory must be writable only
    /// by the server (it is created with mode 0700).
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            cache_dir: None,
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(String);

/// The compilation and execution engine shared by every plugin.
///
/// Cheap to clone. Creates the pooling allocator, turns on epoch interruption
/// and starts a ticker thread that stops when the last clone is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<CallState>>,
    pub(crate) cache: Option<Arc<ComponentCache>>,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Starts an engine with these settings.
    pub fn new(settings: EngineConfig) -> Result<Self, EngineError> {
        let slots = settings.max_concurrent_calls.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
            .total_memories(slots.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
            .total_tables(slots.saturating_mul(MAX_TABLES_PER_COMPONENT))
            .total_stacks(slots)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .max_memory_size(MAX_MEMORY_MIB as usize * MIB)
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable)
            .wasm_backtrace_max_frames(NonZeroUsize::new(CAPTURED_FRAMES))
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| EngineError(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("linking WASI: {e:#}")))?;
        WitPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| EngineError(format!("linking mozaiks:plugin: {e:#}")))?;

        let ticker = Ticker::start(engine.clone())?;
        let cache = settings
            .cache_dir
            .map(|dir| Arc::new(ComponentCache::new(dir, &engine)));
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
            _ticker: Arc::new(ticker),
        })
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Sender<()>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Self, EngineError> {
        let (stop, stopped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("mozaiks-epoch".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| EngineError(format!("starting the epoch thread: {e}")))?;
        Ok(Self { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // The thread also stops when the sender is dropped; sending makes it prompt.
        let _ = self.stop.send(());
    }
}
