//! Pre-initialising a Go tool's core module at build time: Go's runtime
//! starts (`_initialize`: the heap, the scheduler, every package's `init`)
//! once, in wasmtime, and the module is rewritten with the memory and
//! globals it left (`wasmtime-wizer`). Every call's fresh instance then
//! starts from that snapshot instead of starting Go again.
//!
//! What Go reads while it starts is frozen in the snapshot:
//! - its arguments, environment and preopened folders: none here but
//!   `MOZAIKS_SNAPSHOT`, which tells the Go helper to fill encoding/json's
//!   caches (sdk/go/mozaiks/warm.go) and which the helper removes. A tool
//!   whose manifest grants files or environment variables is therefore not
//!   pre-initialised ([`applies`]).
//! - its random generator's state: the Go helper (sdk/go/mozaiks/reseed.go)
//!   seeds it anew from `random_get` at the start of every call. A module
//!   whose helper does not say so ([`RESEED_MARKER`]) is not
//!   pre-initialised. Maps made while starting keep the seed they got here.
//! - the clocks: the monotonic clock counts from the start of the
//!   snapshot's instance, as a call's counts from the start of its own, so
//!   Go's start time stays small and monotonic readings of a call stay
//!   consistent with it. Wall-clock readings taken while starting (a
//!   package variable set to `time.Now()`) are the build's.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use mozaiks_plugin_host::Manifest;
use wasm_encoder::{DataCountSection, DataSection};
use wasmparser::{Data, DataKind, Operator, Parser, Payload};
use wasmtime::error::Context as _;
use wasmtime::{
    Caller, Config, Engine, Extern, Instance, Linker, Memory, Module, OptLevel, Store, Val,
};
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

use super::wasm_sections::{push, push_unchanged};

/// WASI errno `badf`: the answer to "is there a preopen at fd N?".
const ERRNO_BADF: i32 = 8;
/// WASI filetype `character_device`.
const FILETYPE_CHARACTER_DEVICE: u8 = 2;
/// The one environment variable of the snapshot's sandbox (NUL-ended, as
/// WASI hands it out): the Go helper warms encoding/json's caches when it
/// sees it, and removes it (sdk/go/mozaiks/warm.go).
const SNAPSHOT_ENVIRONMENT: &[u8] = b"MOZAIKS_SNAPSHOT=1\0";
/// WASI's wall clock; the others (monotonic, CPU time) count from the
/// start of the snapshot's instance.
const CLOCK_REALTIME: i32 = 0;
/// The module's start function of a WASI reactor.
const INIT_FUNC: &str = "_initialize";

/// The bytes the Go helper keeps in its static data to say that it reseeds
/// the runtime's random generator at every call (sdk/go/mozaiks/reseed.go).
pub(crate) const RESEED_MARKER: &[u8] = b"mozaiks:reseeds-runtime-rand:v1";

/// Whether `module`, a tool of `manifest`, may be pre-initialised, and if
/// not why.
pub(crate) fn applies(manifest: &Manifest, module: &[u8]) -> Result<(), &'static str> {
    if !module
        .windows(RESEED_MARKER.len())
        .any(|window| window == RESEED_MARKER)
    {
        return Err(
            "its mozaiks/ helper does not reseed Go's random generator (copy mozaiks/reseed.go from `mozaiks new tool x --lang go`)",
        );
    }
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
    let snapshot = started(module).map_err(|error| anyhow::anyhow!("{error:#}"))?;
    without_empty_passive_data(&snapshot)
}

/// `module` without its empty passive data segments, when no instruction
/// names a data segment (`memory.init`, `data.drop`).
///
/// wasmtime-wizer keeps every data segment the module had, so that their
/// indices stay valid: the active ones it applied become empty passive
/// ones. A Go tool has about 45,000 of them, and wasmtime sets up every
/// passive segment of a module on each instantiation: about 100 µs of each
/// call. Without instructions that name them, nothing can tell them apart.
fn without_empty_passive_data(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut kept = 0u32;
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::CodeSectionEntry(body) => {
                let mut operators = body.get_operators_reader()?;
                while !operators.eof() {
                    if let Operator::MemoryInit { .. } | Operator::DataDrop { .. } =
                        operators.read()?
                    {
                        return Ok(module.to_vec());
                    }
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    if !is_empty_passive(&data?) {
                        kept += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = module[..8].to_vec();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        match &payload {
            Payload::DataCountSection { .. } => {
                push(&mut out, &DataCountSection { count: kept });
            }
            Payload::DataSection(reader) => {
                let mut section = DataSection::new();
                for data in reader.clone() {
                    let data = data?;
                    if !is_empty_passive(&data) {
                        section.raw(&module[data.range.clone()]);
                    }
                }
                push(&mut out, &section);
            }
            other => push_unchanged(&mut out, module, other),
        }
    }
    Ok(out)
}

fn is_empty_passive(data: &Data<'_>) -> bool {
    matches!(data.kind, DataKind::Passive) && data.data.is_empty()
}

fn started(module: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    wizer.init_func(INIT_FUNC);
    let (cx, instrumented) = wizer
        .instrument(module)
        .context("preparing the module for its snapshot")?;
    // Go's start-up runs once here: compiling fast matters more than
    // running fast.
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::None);
    let engine = Engine::new(&config)?;
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
        failure: None,
    };
    let snapshot = ready(wizer.snapshot(&cx, &mut state)).context("writing the snapshot")?;
    match state.failure {
        Some(failure) => wasmtime::bail!("{failure}"),
        None => Ok(snapshot),
    }
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

/// The instance wizer reads the snapshot from. It asks only for what its
/// instrumentation exported; anything it cannot read is recorded in
/// `failure` (the trait has no error path) and fails the snapshot.
struct Snapshotted<'a> {
    store: &'a mut Store<()>,
    instance: Instance,
    failure: Option<String>,
}

impl InstanceState for Snapshotted<'_> {
    async fn global_get(&mut self, name: &str, _: wasmparser::ValType) -> SnapshotVal {
        let value = self
            .instance
            .get_global(&mut *self.store, name)
            .map(|global| global.get(&mut *self.store));
        match value {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            other => {
                self.failure = Some(format!(
                    "the global `{name}` cannot be snapshotted ({other:?})"
                ));
                SnapshotVal::I32(0)
            }
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.failure = Some(format!("no memory `{name}` to snapshot"));
                contents(&[]);
            }
        }
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
/// tool without arguments or preopened folders, whose environment is
/// [`SNAPSHOT_ENVIRONMENT`] alone. Anything else traps, and the build goes
/// on without a snapshot.
fn start_up_wasi(linker: &mut Linker<()>) -> wasmtime::Result<()> {
    const WASI: &str = "wasi_snapshot_preview1";
    let counts = |n: u32, bytes: usize| {
        move |mut caller: Caller<'_, ()>, count: i32, size: i32| -> wasmtime::Result<i32> {
            write(&mut caller, count, &n.to_le_bytes())?;
            write(&mut caller, size, &u32::try_from(bytes)?.to_le_bytes())?;
            Ok(0)
        }
    };
    linker.func_wrap(WASI, "args_sizes_get", counts(0, 0))?;
    linker.func_wrap(WASI, "args_get", |_: i32, _: i32| 0i32)?;
    linker.func_wrap(
        WASI,
        "environ_sizes_get",
        counts(1, SNAPSHOT_ENVIRONMENT.len()),
    )?;
    linker.func_wrap(
        WASI,
        "environ_get",
        |mut caller: Caller<'_, ()>, pointers: i32, buffer: i32| -> wasmtime::Result<i32> {
            write(&mut caller, buffer, SNAPSHOT_ENVIRONMENT)?;
            write(&mut caller, pointers, &buffer.to_le_bytes())?;
            Ok(0)
        },
    )?;
    let started = std::time::Instant::now();
    linker.func_wrap(
        WASI,
        "clock_time_get",
        move |mut caller: Caller<'_, ()>,
              id: i32,
              _precision: i64,
              out: i32|
              -> wasmtime::Result<i32> {
            let now = if id == CLOCK_REALTIME {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
            } else {
                started.elapsed()
            };
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

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        CodeSection, ConstExpr, DataCountSection, DataSection, Function, FunctionSection,
        Instruction, MemorySection, MemoryType, Module, TypeSection,
    };
    use wasmparser::{DataKind, Parser, Payload};

    use super::without_empty_passive_data;

    /// A module as wasmtime-wizer leaves it: empty passive segments where
    /// the applied ones were, one passive segment with bytes, the
    /// snapshot's active one; `body` is its one function's code.
    fn snapshot_like(body: &[Instruction<'_>]) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        module.section(&types);
        let mut functions = FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        module.section(&memories);
        module.section(&DataCountSection { count: 5 });
        let mut code = CodeSection::new();
        let mut function = Function::new([]);
        for instruction in body {
            function.instruction(instruction);
        }
        function.instruction(&Instruction::End);
        code.function(&function);
        module.section(&code);
        let mut data = DataSection::new();
        data.passive([]);
        data.passive([]);
        data.passive([7u8]);
        data.passive([]);
        data.active(0, &ConstExpr::i32_const(16), [1u8, 2, 3]);
        module.section(&data);
        module.finish()
    }

    /// The data segments' kinds and lengths, and the data count.
    fn data_of(module: &[u8]) -> (Vec<(bool, usize)>, Option<u32>) {
        wasmparser::validate(module).expect("a valid module");
        let mut segments = Vec::new();
        let mut count = None;
        for payload in Parser::new(0).parse_all(module) {
            match payload.unwrap() {
                Payload::DataCountSection { count: n, .. } => count = Some(n),
                Payload::DataSection(reader) => {
                    for data in reader {
                        let data = data.unwrap();
                        let active = matches!(data.kind, DataKind::Active { .. });
                        segments.push((active, data.data.len()));
                    }
                }
                _ => {}
            }
        }
        (segments, count)
    }

    #[test]
    fn empty_passive_segments_go_when_no_instruction_names_a_segment() {
        let module = snapshot_like(&[]);
        let (segments, count) = data_of(&without_empty_passive_data(&module).unwrap());
        assert_eq!(segments, [(false, 1), (true, 3)]);
        assert_eq!(count, Some(2));
    }

    #[test]
    fn a_module_that_names_a_segment_is_left_as_it_is() {
        for instruction in [
            Instruction::DataDrop(3),
            Instruction::MemoryInit {
                mem: 0,
                data_index: 2,
            },
        ] {
            let body = match instruction {
                Instruction::DataDrop(_) => vec![instruction],
                _ => vec![
                    Instruction::I32Const(0),
                    Instruction::I32Const(0),
                    Instruction::I32Const(1),
                    instruction,
                ],
            };
            let module = snapshot_like(&body);
            assert_eq!(without_empty_passive_data(&module).unwrap(), module);
        }
    }
}
