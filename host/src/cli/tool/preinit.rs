//! Pre-initialising a Go tool's core module at build time: Go's runtime
//! starts (`_initialize`: the heap, the scheduler, every package's `init`)
//! once, in wasmtime, and the module is rewritten with the memory and
//! globals it left (`wasmtime-wizer`). Every call's fresh instance then
//! starts from that snapshot instead of starting Go again.
//!
//! Go reads its arguments, environment and preopened folders while it
//! starts, so what the snapshot holds is what it saw here: none. A tool
//! whose manifest grants files or environment variables is therefore not
//! pre-initialised (`applies`). The snapshot also fixes what Go seeded
//! from `random_get` at start-up (its map hash seed): every instance of one
//! build shares it.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use mozaiks_plugin_host::Manifest;
use wasmtime::error::Context as _;
use wasmtime::{Caller, Engine, Extern, Instance, Linker, Memory, Module, Store, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

/// WASI errno `badf`: the answer to "is there a preopen at fd N?".
const ERRNO_BADF: i32 = 8;
/// WASI filetype `character_device`.
const FILETYPE_CHARACTER_DEVICE: u8 = 2;
/// The module's start function of a WASI reactor.
const INIT_FUNC: &str = "_initialize";

/// Whether a tool of `manifest` may be pre-initialised, and if not why.
pub(crate) fn applies(manifest: &Manifest) -> Result<(), &'static str> {
    let capabilities = &manifest.capabilities;
    if !capabilities.fs.is_empty() {
        return Err("it is granted files, which Go looks up as it starts");
    }
    if !capabilities.env.is_empty() {
        return Err("it is granted environment variables, which Go reads as it starts");
    }
    Ok(())
}

/// `module` after its `_initialize` ran, without `_initialize`.
pub(crate) fn snapshot(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    started(module).map_err(|error| anyhow::anyhow!("{error:#}"))
}

fn started(module: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    wizer.init_func(INIT_FUNC);
    let (cx, instrumented) = wizer
        .instrument(module)
        .context("preparing the module for its snapshot")?;
    let engine = Engine::default();
    let compiled = Module::new(&engine, &instrumented).context("compiling the module")?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    start_up_wasi(&mut linker)?;
    linker.define_unknown_imports_as_traps(&compiled)?;
    let instance = linker
        .instantiate(&mut store, &compiled)
        .context("instantiating the module")?;
    instance
        .get_typed_func::<(), ()>(&mut store, INIT_FUNC)
        .context("the module has no `_initialize`")?
        .call(&mut store, ())
        .context("Go's start-up failed in the snapshot's sandbox")?;
    let mut state = Snapshotted {
        store: &mut store,
        instance,
    };
    ready(wizer.snapshot(&cx, &mut state)).context("writing the snapshot")
}

/// Runs a future that never waits (wizer's snapshot over an in-memory
/// instance) to its end.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

struct Snapshotted<'a> {
    store: &'a mut Store<()>,
    instance: Instance,
}

impl InstanceState for Snapshotted<'_> {
    async fn global_get(&mut self, name: &str, _: wasmparser::ValType) -> SnapshotVal {
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("wizer names the globals it exported");
        match global.get(&mut *self.store) {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("a global of type {other:?} cannot be snapshotted"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("wizer names the memories it exported");
        contents(memory.data(&*self.store));
    }
}

fn memory(caller: &mut Caller<'_, ()>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => wasmtime::bail!("the module exports no memory"),
    }
}

fn write(caller: &mut Caller<'_, ()>, at: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    let memory = memory(caller)?;
    memory
        .write(caller, usize::try_from(at)?, bytes)
        .context("writing outside the module's memory")
}

/// The WASI preview1 calls Go makes while it starts, answered as for a
/// tool without arguments, environment or preopened folders. Anything else
/// traps, and the build goes on without a snapshot.
fn start_up_wasi(linker: &mut Linker<()>) -> wasmtime::Result<()> {
    const WASI: &str = "wasi_snapshot_preview1";
    let zero_counts =
        |mut caller: Caller<'_, ()>, count: i32, size: i32| -> wasmtime::Result<i32> {
            write(&mut caller, count, &0u32.to_le_bytes())?;
            write(&mut caller, size, &0u32.to_le_bytes())?;
            Ok(0)
        };
    linker.func_wrap(WASI, "args_sizes_get", zero_counts)?;
    linker.func_wrap(WASI, "environ_sizes_get", zero_counts)?;
    linker.func_wrap(WASI, "args_get", |_: i32, _: i32| 0i32)?;
    linker.func_wrap(WASI, "environ_get", |_: i32, _: i32| 0i32)?;
    linker.func_wrap(
        WASI,
        "clock_time_get",
        |mut caller: Caller<'_, ()>,
         _id: i32,
         _precision: i64,
         out: i32|
         -> wasmtime::Result<i32> {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
            write(&mut caller, out, &nanos.to_le_bytes())?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        WASI,
        "random_get",
        |mut caller: Caller<'_, ()>, at: i32, len: i32| -> wasmtime::Result<i32> {
            let mut bytes = vec![0u8; usize::try_from(len)?];
            rand::fill(&mut bytes[..]);
            write(&mut caller, at, &bytes)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(WASI, "fd_prestat_get", |_: i32, _: i32| ERRNO_BADF)?;
    linker.func_wrap(WASI, "sched_yield", || 0i32)?;
    // Go asks what its standard streams are: character devices, as when
    // the host runs the tool.
    linker.func_wrap(
        WASI,
        "fd_fdstat_get",
        |mut caller: Caller<'_, ()>, fd: i32, out: i32| -> wasmtime::Result<i32> {
            if !(0..=2).contains(&fd) {
                return Ok(ERRNO_BADF);
            }
            let mut stat = [0u8; 24];
            stat[0] = FILETYPE_CHARACTER_DEVICE;
            stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            write(&mut caller, out, &stat)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(WASI, "fd_fdstat_set_flags", |_: i32, _: i32| 0i32)?;
    Ok(())
}
