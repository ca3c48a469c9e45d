//! The process's one [`wasmtime::Engine`], its linker, and the epoch ticker
//! that lets deadlines interrupt guest code.

use std::collections::{BTreeMap, HashSet};
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
use crate::cache::{CachePruned, ComponentCache, UNUSED_ENTRIES_BUDGET_BYTES};
use crate::compile::Compiler;
use crate::limits::{
    MAX_CONCURRENT_COMPILES, MAX_MEMORY_MIB, MAX_TABLE_ELEMENTS, MAX_WASM_STACK_BYTES, MIB,
};
use crate::outbound::{OutboundConfig, TlsRoots};
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
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// Linear memories per component (and one per core module, wasmtime's
/// default): tools have one; two leaves room for shims.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables per component (and one per core module, wasmtime's default): the
/// main module's and the shims' indirect tables.
pub const MAX_TABLES_PER_COMPONENT: u32 = 8;

/// Bytes of a freed memory or table slot that are reset in place and kept
/// mapped instead of being returned to the kernel with `madvise`. With
/// `PAGEMAP_SCAN` (Linux 6.7+) only the pages a call really dirtied are
/// reset, so the next call in the slot takes no page faults and no TLB
/// shootdown for them (p50 per call 59 µs → 35 µs, docs/benchmarks.md). The
/// price is resident memory: up to this much per warm slot, and wasmtime
/// keeps at most 100 warm slots, so at most 200 MiB.
const KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;

/// Where Linux lists the swap areas in use.
const PROC_SWAPS: &str = "/proc/swaps";

/// Whether a freed slot may be reset with `PAGEMAP_SCAN`: not while swap
/// is on ([`swap_is_on`]).
///
/// Wasmtime 48.0.10's scan takes a dirty page that the kernel swapped out
/// for a clean one and leaves it as it is, so the next instance in the slot
/// could read what the last call wrote (fixed in wasmtime 48.0.11, which
/// the crate registry this project builds from does not fully have).
/// Without the scan, the slot's first [`KEEP_RESIDENT_BYTES`] are reset by
/// copying and the rest is given back to the kernel, swapped or not:
/// slower calls, never stale memory.
///
/// Logs a warning when it turns the scan off.
fn pagemap_scan(swap_on: bool) -> Enabled {
    if !swap_on {
        return Enabled::Auto;
    }
    tracing::warn!(
        "swap is on ({PROC_SWAPS}): instance slots are reset without PAGEMAP_SCAN, which \
         misses dirty pages that were swapped out; tool calls are slower. Run the server \
         without swap for the fast reset"
    );
    Enabled::No
}

/// Whether the machine has swap on: Linux's `/proc/swaps` lists a swap
/// area. While it does, engines started then reset instance slots without
/// `PAGEMAP_SCAN`, and tool calls are slower (docs/operations.md).
pub fn swap_is_on() -> bool {
    std::fs::read_to_string(PROC_SWAPS).is_ok_and(|text| lists_a_swap_area(&text))
}

/// Whether the text of [`PROC_SWAPS`] lists a swap area: a header line,
/// then one line per area.
fn lists_a_swap_area(proc_swaps: &str) -> bool {
    proc_swaps
        .lines()
        .skip(1)
        .any(|line| !line.trim().is_empty())
}

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
    /// Where components are compiled: in this process (the default) or in
    /// a child process under limits of time and memory.
    pub compiler: Compiler,
    /// Outbound HTTP: the certificate authorities `https` trusts.
    pub outbound: OutboundConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            max_calls_per_plugin: DEFAULT_MAX_CALLS_PER_PLUGIN,
            cache_dir: None,
            compiler: Compiler::InProcess,
            outbound: OutboundConfig::default(),
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
    pub(crate) compiler: Arc<Compiler>,
    pub(crate) tls: TlsRoots,
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
    /// Starts an engine with these settings; refuses compile limits out of
    /// range ([`CompileLimits::check`](crate::CompileLimits::check)).
    pub fn new(settings: EngineConfig) -> Result<Self, EngineError> {
        if let Compiler::Child(child) = &settings.compiler {
            child.limits.check().map_err(EngineError)?;
        }
        let slots = settings.max_concurrent_calls.max(1);
        let pagemap = pagemap_scan(swap_is_on());
        let engine = Engine::new(&wasmtime_config(slots, MAX_WASM_STACK_BYTES, pagemap))
            .map_err(|e| EngineError(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("linking WASI: {e:#}")))?;
        WitPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| EngineError(format!("linking mozaiks:plugin: {e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| EngineError(format!("linking wasi:http: {e:#}")))?;
        let tls = TlsRoots::load(&settings.outbound).map_err(|e| EngineError(e.to_string()))?;

        let ticker = Ticker::start(engine.clone())?;
        let cache = settings
            .cache_dir
            .map(|dir| Arc::new(ComponentCache::new(dir, &engine)));
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
            compiler: Arc::new(settings.compiler),
            tls,
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

    /// Removes from the compiled-component cache what the plugins in use
    /// no longer need: entries of components not in `in_use` (their
    /// [`Plugin::hash`](crate::Plugin::hash)es) beyond
    /// [`UNUSED_ENTRIES_BUDGET_BYTES`], those of another engine first, then
    /// the least recently used (module `cache`). Nothing without a cache.
    /// Blocking: it lists and deletes files.
    pub fn prune_component_cache<'a>(
        &self,
        in_use: impl IntoIterator<Item = &'a str>,
    ) -> CachePruned {
        let Some(cache) = &self.cache else {
            return CachePruned::default();
        };
        let in_use: HashSet<&str> = in_use.into_iter().collect();
        cache.prune(&in_use, UNUSED_ENTRIES_BUDGET_BYTES)
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

/// The settings a compiler process compiles with: the engine's
/// ([`wasmtime_config`]) without the instance pool, which only matters for
/// running code (and reserves address space a compiler does not need), so
/// its artifacts load in the engine.
pub(crate) fn compile_config() -> Config {
    let mut config = wasmtime_config(1, MAX_WASM_STACK_BYTES, Enabled::No);
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    config
}

/// The engine's settings: the component model, epoch interruption, a
/// guest stack of `max_wasm_stack` bytes, backtraces, and a pool of `slots`
/// instance slots, reset with `PAGEMAP_SCAN` where `pagemap` allows it
/// ([`pagemap_scan`]).
fn wasmtime_config(slots: u32, max_wasm_stack: usize, pagemap: Enabled) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(max_wasm_stack)
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable)
        .wasm_backtrace_max_frames(NonZeroUsize::new(CAPTURED_FRAMES))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(
            slots, pagemap,
        )));
    config
}

/// The instance pool of [`wasmtime_config`].
fn pool_config(slots: u32, pagemap: Enabled) -> PoolingAllocationConfig {
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
        .table_elements(MAX_TABLE_ELEMENTS)
        .pagemap_scan(pagemap)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES);
    pool
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

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, Module,
        RefType, TableSection, TableType, TypeSection, ValType,
    };
    use wasmtime::{Instance, Store, TypedFunc};

    use super::*;
    use crate::limits::MemoryLimiter;

    /// A core module with one function table of `table_min` elements that
    /// exports `grow(n)` (`table.grow` by `n`, the old size or -1) and
    /// `depth(n)` (recursion `n` deep that is not a tail call; returns `n`).
    fn module(table_min: u64) -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        let mut functions = FunctionSection::new();
        functions.function(0).function(0);
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: table_min,
            maximum: None,
            shared: false,
        });
        let mut exports = ExportSection::new();
        exports.export("grow", ExportKind::Func, 0);
        exports.export("depth", ExportKind::Func, 1);
        let mut code = CodeSection::new();
        let mut grow = Function::new([]);
        grow.instructions()
            .ref_null(wasm_encoder::HeapType::FUNC)
            .local_get(0)
            .table_grow(0)
            .end();
        code.function(&grow);
        let mut depth = Function::new([]);
        depth
            .instructions()
            .local_get(0)
            .i32_eqz()
            .if_(BlockType::Result(ValType::I32))
            .i32_const(0)
            .else_()
            .local_get(0)
            .i32_const(1)
            .i32_sub()
            .call(1)
            .i32_const(1)
            .i32_add()
            .end()
            .end();
        code.function(&depth);
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&tables)
            .section(&exports)
            .section(&code);
        module.finish()
    }

    fn instantiate(
        engine: &Engine,
        table_min: u64,
    ) -> wasmtime::Result<(Store<MemoryLimiter>, Instance)> {
        let module = wasmtime::Module::new(engine, module(table_min))?;
        let mut store = Store::new(engine, MemoryLimiter::new(64));
        store.limiter(|limiter| limiter);
        store.set_epoch_deadline(1_000_000);
        let instance = Instance::new(&mut store, &module, &[])?;
        Ok((store, instance))
    }

    fn export(
        store: &mut Store<MemoryLimiter>,
        instance: &Instance,
        name: &str,
    ) -> TypedFunc<i32, i32> {
        instance.get_typed_func(&mut *store, name).unwrap()
    }

    fn small_engine() -> PluginEngine {
        PluginEngine::new(EngineConfig {
            max_concurrent_calls: 4,
            ..EngineConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn a_table_holds_at_most_the_limit_of_elements() {
        let engine = small_engine().engine;
        let limit = i32::try_from(MAX_TABLE_ELEMENTS).unwrap();
        let too_big = instantiate(&engine, MAX_TABLE_ELEMENTS as u64 + 1);
        assert!(too_big.is_err(), "a table over the limit instantiated");

        let (mut store, instance) = instantiate(&engine, 10).unwrap();
        let grow = export(&mut store, &instance, "grow");
        assert_eq!(
            grow.call(&mut store, limit - 10).unwrap(),
            10,
            "up to the limit"
        );
        assert_eq!(
            grow.call(&mut store, 1).unwrap(),
            -1,
            "one beyond the limit"
        );

        let (mut store, instance) = instantiate(&engine, MAX_TABLE_ELEMENTS as u64).unwrap();
        let grow = export(&mut store, &instance, "grow");
        assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    }

    /// Wasm pages of [`memory_module`]'s memory: 3 MiB, more than
    /// [`KEEP_RESIDENT_BYTES`], so that part of it is reset by handing it
    /// back to the kernel, not by copying.
    const MEMORY_PAGES: u64 = 48;

    /// A core module with [`MEMORY_PAGES`] pages of memory whose first word
    /// is 7 (a data segment: that page comes from the memory image) and
    /// that exports `read(addr)` (the i32 there) and `write(addr)` (stores
    /// 99 there, returns 0).
    fn memory_module() -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        let mut functions = FunctionSection::new();
        functions.function(0).function(0);
        let mut memories = wasm_encoder::MemorySection::new();
        memories.memory(wasm_encoder::MemoryType {
            minimum: MEMORY_PAGES,
            maximum: Some(MEMORY_PAGES),
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = ExportSection::new();
        exports.export("read", ExportKind::Func, 0);
        exports.export("write", ExportKind::Func, 1);
        let word = wasm_encoder::MemArg {
            offset: 0,
            align: 2,
            memory_index: 0,
        };
        let mut code = CodeSection::new();
        let mut read = Function::new([]);
        read.instructions().local_get(0).i32_load(word).end();
        code.function(&read);
        let mut write = Function::new([]);
        write
            .instructions()
            .local_get(0)
            .i32_const(99)
            .i32_store(word)
            .i32_const(0)
            .end();
        code.function(&write);
        let mut data = wasm_encoder::DataSection::new();
        data.active(
            0,
            &wasm_encoder::ConstExpr::i32_const(0),
            7u32.to_le_bytes(),
        );
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&memories)
            .section(&exports)
            .section(&code)
            .section(&data);
        module.finish()
    }

    #[test]
    fn a_reused_slot_starts_from_the_image_with_or_without_pagemap_scan() {
        // Addresses: in the image's page, then two pages the image leaves
        // zero, the second past the KEEP_RESIDENT_BYTES that are reset in
        // place (by copying when the scan is off).
        const BEYOND_RESIDENT: i32 = KEEP_RESIDENT_BYTES as i32 + 512 * 1024;
        const ADDRESSES: [(i32, i32); 3] = [(0, 7), (8192, 0), (BEYOND_RESIDENT, 0)];
        const _: () = assert!((BEYOND_RESIDENT as u64) < MEMORY_PAGES * 65_536);
        for pagemap in [Enabled::Auto, Enabled::No] {
            // One slot, so every instance reuses the last one's memory.
            let engine = Engine::new(&wasmtime_config(1, MAX_WASM_STACK_BYTES, pagemap)).unwrap();
            let module = wasmtime::Module::new(&engine, memory_module()).unwrap();
            for round in 0..3 {
                let mut store = Store::new(&engine, ());
                store.set_epoch_deadline(1_000_000);
                let instance = Instance::new(&mut store, &module, &[]).unwrap();
                let read: TypedFunc<i32, i32> =
                    instance.get_typed_func(&mut store, "read").unwrap();
                let write: TypedFunc<i32, i32> =
                    instance.get_typed_func(&mut store, "write").unwrap();
                for (address, initial) in ADDRESSES {
                    assert_eq!(
                        read.call(&mut store, address).unwrap(),
                        initial,
                        "pagemap {pagemap:?}, round {round}: address {address} kept the last call's write"
                    );
                    write.call(&mut store, address).unwrap();
                }
            }
        }
    }

    /// What `f` returns and what it logged (as text lines).
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogBuffer(Arc::clone(&writer)))
            .finish();
        let value = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        (value, text)
    }

    /// A [`std::io::Write`] into a shared buffer, for [`logged`].
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn swap_turns_the_pagemap_scan_off() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        let with_swap =
            format!("{header}/swapfile                               file\t\t8388604\t\t0\t\t-2\n");
        assert!(!lists_a_swap_area(header), "no swap area");
        assert!(lists_a_swap_area(&with_swap), "a swap area");
        assert!(!lists_a_swap_area(""), "empty file");
        let (scan, log) = logged(|| pagemap_scan(false));
        assert_eq!((scan, log.as_str()), (Enabled::Auto, ""), "without swap");
        let (scan, log) = logged(|| pagemap_scan(true));
        assert_eq!(scan, Enabled::No, "with swap");
        assert!(
            log.contains("WARN") && log.contains("swap is on"),
            "the log says why: {log}"
        );
        assert_eq!(pool_config(1, Enabled::No).get_pagemap_scan(), Enabled::No);
    }

    /// A component that instantiates `module` `times` times.
    fn instantiating(module: &Module, times: u32) -> Vec<u8> {
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::ModuleSection(module));
        let mut instances = wasm_encoder::InstanceSection::new();
        for _ in 0..times {
            instances.instantiate(0, Vec::<(&str, wasm_encoder::ModuleArg)>::new());
        }
        component.section(&instances);
        component.finish()
    }

    /// True if `component` loads (the pool checks what it can when it is
    /// compiled) and instantiates.
    fn instantiates(engine: &Engine, component: &[u8]) -> bool {
        let Ok(component) = wasmtime::component::Component::new(engine, component) else {
            return false;
        };
        let mut store = Store::new(engine, ());
        store.set_epoch_deadline(1_000_000);
        wasmtime::component::Linker::<()>::new(engine)
            .instantiate(&mut store, &component)
            .is_ok()
    }

    fn with_memories(n: u32) -> Module {
        let mut memories = wasm_encoder::MemorySection::new();
        for _ in 0..n {
            memories.memory(wasm_encoder::MemoryType {
                minimum: 1,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
        }
        let mut module = Module::new();
        module.section(&memories);
        module
    }

    fn with_table() -> Module {
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: 1,
            maximum: None,
            shared: false,
        });
        let mut module = Module::new();
        module.section(&tables);
        module
    }

    #[test]
    fn a_component_has_at_most_the_limits_of_core_instances_memories_and_tables() {
        let engine = small_engine().engine;
        let (instances, memories, tables) = (
            MAX_CORE_INSTANCES_PER_COMPONENT,
            MAX_MEMORIES_PER_COMPONENT,
            MAX_TABLES_PER_COMPONENT,
        );
        assert!(instantiates(
            &engine,
            &instantiating(&Module::new(), instances)
        ));
        assert!(!instantiates(
            &engine,
            &instantiating(&Module::new(), instances + 1)
        ));
        assert!(instantiates(
            &engine,
            &instantiating(&with_memories(1), memories)
        ));
        assert!(!instantiates(
            &engine,
            &instantiating(&with_memories(1), memories + 1)
        ));
        assert!(
            !instantiates(&engine, &instantiating(&with_memories(2), 1)),
            "one a module"
        );
        assert!(instantiates(&engine, &instantiating(&with_table(), tables)));
        assert!(!instantiates(
            &engine,
            &instantiating(&with_table(), tables + 1)
        ));
    }

    /// The deepest `depth(n)` that returns rather than trapping.
    fn deepest(engine: &Engine) -> i32 {
        let (mut store, instance) = instantiate(engine, 1).unwrap();
        let depth = export(&mut store, &instance, "depth");
        let (mut works, mut traps) = (1, 100_000_000);
        while traps - works > 1 {
            let n = works + (traps - works) / 2;
            match depth.call(&mut store, n) {
                Ok(got) => {
                    assert_eq!(got, n);
                    works = n;
                }
                Err(error) => {
                    let trap = error.downcast_ref::<wasmtime::Trap>();
                    assert_eq!(trap, Some(&wasmtime::Trap::StackOverflow), "{error:#}");
                    traps = n;
                }
            }
        }
        works
    }

    /// Guest code gets `MAX_WASM_STACK_BYTES` of stack: the engine's calls
    /// recurse twice as deep as the same engine's with half of it.
    #[test]
    fn the_guest_stack_is_the_limit() {
        let full = deepest(&small_engine().engine);
        let half = deepest(
            &Engine::new(&wasmtime_config(4, MAX_WASM_STACK_BYTES / 2, Enabled::Auto)).unwrap(),
        );
        let ratio = f64::from(full) / f64::from(half);
        assert!(
            (1.8..2.2).contains(&ratio),
            "{full} levels deep with the engine's stack, {half} with half of {MAX_WASM_STACK_BYTES} bytes"
        );
        assert!(full > 1_000, "{full}");
    }
}
