//! The process's one [`wasmtime::Engine`], its linker, and the epoch ticker
//! that lets deadlines interrupt guest code.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::backtrace::CAPTURED_FRAMES;
use crate::bindings::Plugin as WitPlugin;
use crate::cache::ComponentCache;
use crate::limits::{MAX_CONCURRENT_COMPILES, MAX_MEMORY_MIB, MIB};
use crate::state::CallState;

/// How often the epoch advances. Deadlines are checked at this granularity,
/// and a running guest yields to the async executor this often, so one busy
/// tool cannot starve the server's other tasks for longer than this.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default number of calls that may run at once across all plugins. Each
/// takes one pooled instance slot (virtual memory is reserved per slot, and
/// physical memory is used only as a guest touches it).
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 256;

/// Default share of the slots one plugin may hold at once: a quarter of the
/// default pool. A call waiting in `ui.ask` keeps its instance (and so its
/// slot) for as long as the person takes, up to an hour; with a share, one
/// plugin whose calls all wait (or loop) leaves the rest of the pool to the
/// others.
pub const DEFAULT_MAX_CALLS_PER_PLUGIN: u32 = 64;

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
    /// Calls of one plugin (by id, across its versions) that may run at
    /// once; see [`DEFAULT_MAX_CALLS_PER_PLUGIN`]. No more than
    /// `max_concurrent_calls` is used.
    pub max_calls_per_plugin: u32,
    /// Where compiled components are kept between runs, keyed by content
    /// hash; `None` compiles every time. The directory must be writable only
    /// by the server (it is created with mode 0700).
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            max_calls_per_plugin: DEFAULT_MAX_CALLS_PER_PLUGIN,
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
    pub(crate) slots: Arc<Slots>,
    pub(crate) compiles: Arc<Compiles>,
    _ticker: Arc<Ticker>,
}

/// At most [`MAX_CONCURRENT_COMPILES`] compilations at once.
#[derive(Debug)]
pub(crate) struct Compiles {
    pub(crate) turns: Arc<tokio::sync::Semaphore>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Compiles {
    /// Runs `compile` (on a blocking thread, holding a turn).
    pub(crate) fn run<T>(&self, compile: impl FnOnce() -> T) -> T {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let result = compile();
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// How the instance slots are used right now (see [`PluginEngine::slots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotUse {
    /// Slots in all: calls that may run at once.
    pub total: u32,
    /// Slots one plugin may hold at once.
    pub per_plugin: u32,
    /// Slots held, by plugin id; plugins holding none are absent.
    pub in_use: BTreeMap<String, u32>,
}

/// The per-plugin shares of the instance pool.
#[derive(Debug)]
pub(crate) struct Slots {
    total: u32,
    per_plugin: u32,
    in_use: Mutex<BTreeMap<Arc<str>, u32>>,
}

/// A slot held by one call; given back when dropped.
#[derive(Debug)]
pub(crate) struct SlotGuard {
    slots: Arc<Slots>,
    plugin: Arc<str>,
}

impl Slots {
    /// Takes one of `plugin`'s slots, or says why not.
    pub(crate) fn take(self: &Arc<Self>, plugin: &Arc<str>) -> Result<SlotGuard, String> {
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        let held = in_use.entry(Arc::clone(plugin)).or_insert(0);
        if *held >= self.per_plugin {
            return Err(format!(
                "`{plugin}` already runs {held} calls, its share of the {} instance slots \
                 (max_calls_per_plugin = {})",
                self.total, self.per_plugin
            ));
        }
        *held += 1;
        Ok(SlotGuard {
            slots: Arc::clone(self),
            plugin: Arc::clone(plugin),
        })
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut in_use = self
            .slots
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = in_use.get_mut(&self.plugin) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                in_use.remove(&self.plugin);
            }
        }
    }
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
            compiles: Arc::new(Compiles {
                turns: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_COMPILES)),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
            slots: Arc::new(Slots {
                total: slots,
                per_plugin: settings.max_calls_per_plugin.clamp(1, slots),
                in_use: Mutex::default(),
            }),
            _ticker: Arc::new(ticker),
        })
    }

    /// The most compilations that have run at once since the engine
    /// started (at most [`MAX_CONCURRENT_COMPILES`]).
    pub fn compiles_peak(&self) -> usize {
        self.compiles.peak.load(Ordering::SeqCst)
    }

    /// The instance slots: how many, each plugin's share and who holds
    /// them now.
    pub fn slots(&self) -> SlotUse {
        let in_use = self
            .slots
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(plugin, held)| (plugin.to_string(), *held))
            .collect();
        SlotUse {
            total: self.slots.total,
            per_plugin: self.slots.per_plugin,
            in_use,
        }
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
