//! Memory for the WASI preview1 adapter of a Go tool that Go's runtime
//! never uses.
//!
//! The adapter (which turns the module's WASI preview1 calls into WASI 0.2
//! ones) needs two 64 KiB pages of the module's memory: its stack and its
//! state. Left to itself, or when the module exports no allocator it may
//! call before the module's runtime started, it takes them with
//! `memory.grow`. Go's runtime cannot share the memory that way: it counts
//! every page present when it starts as heap, and grows the memory as if
//! nobody else did (`sbrk` in Go's `mem_wasm.go`), so both pages end up
//! inside Go's heap and a call that allocates a few hundred KiB overwrites
//! the adapter's stack or state.
//!
//! The Go helper (`sdk/go/mozaiks/abi.go`) therefore reserves a static
//! array, `adapterArena`, that starts with [`MARKER`], then its size (u32,
//! little-endian), then a u32 of bytes handed out (zero). Go never writes
//! it. [`serve_adapter_from_arena`] finds that array in the module's data
//! and adds an export `cabi_realloc_adapter`, plain WebAssembly that needs
//! no Go runtime, which hands out the array's bytes; `wit-component` gives
//! the adapter that allocator instead of `memory.grow`.

use anyhow::{Context as _, bail};
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, MemArg, ValType,
};
use wasmparser::{ConstExpr, DataKind, ExternalKind, Operator, Parser, Payload};

use super::wasm_sections::{push, push_unchanged};

/// The first bytes of the Go helper's `adapterArena`.
pub(crate) const MARKER: &[u8] = b"mozaiks:adapter-arena:v1";
/// Where the arena's size is, from its start.
const SIZE_AT: u32 = 24;
/// Where the count of bytes handed out is, from its start.
const USED_AT: u32 = 28;
/// Where the bytes handed out begin, from its start.
const DATA_AT: u32 = 32;
/// The export `wit-component` gives the adapter as its allocator.
const EXPORT: &str = "cabi_realloc_adapter";
/// The export whose type (`(i32, i32, i32, i32) -> i32`) the allocator shares.
const MAIN_REALLOC: &str = "cabi_realloc";

/// `module` with an export `cabi_realloc_adapter` that hands out the bytes
/// of its adapter arena. Fails, saying what is missing, when the module has
/// no arena (a helper older than this build) or no `cabi_realloc`.
pub(crate) fn serve_adapter_from_arena(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    let layout = Layout::read(module)?;
    let arena = layout.arena()?;
    let mut out = Vec::with_capacity(module.len() + 256);
    out.extend_from_slice(&module[..8]);
    let mut defined_before = 0u32;
    let mut code: Option<(CodeSection, u32)> = None;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.context("reading the Go module")?;
        match payload {
            Payload::FunctionSection(reader) => {
                let mut functions = FunctionSection::new();
                for ty in reader {
                    functions.function(ty?);
                    defined_before += 1;
                }
                functions.function(layout.realloc_type);
                push(&mut out, &functions);
            }
            Payload::ExportSection(reader) => {
                let mut exports = ExportSection::new();
                for export in reader {
                    let export = export?;
                    exports.export(export.name, export_kind(export.kind), export.index);
                }
                exports.export(
                    EXPORT,
                    ExportKind::Func,
                    layout.imported_functions + defined_before,
                );
                push(&mut out, &exports);
            }
            Payload::CodeSectionStart { count, .. } => {
                code = Some((CodeSection::new(), count));
                if count == 0 {
                    finish_code(&mut out, &mut code, &arena);
                }
            }
            Payload::CodeSectionEntry(body) => {
                let Some((section, left)) = code.as_mut() else {
                    bail!("a function body outside the code section");
                };
                section.raw(body.as_bytes());
                *left -= 1;
                if *left == 0 {
                    finish_code(&mut out, &mut code, &arena);
                }
            }
            Payload::Version { .. } | Payload::End(_) => {}
            other => push_unchanged(&mut out, module, &other),
        }
    }
    Ok(out)
}

/// Ends the code section with the allocator's body and writes it.
fn finish_code(out: &mut Vec<u8>, code: &mut Option<(CodeSection, u32)>, arena: &Arena) {
    if let Some((mut section, _)) = code.take() {
        section.function(&arena.allocator());
        push(out, &section);
    }
}

fn export_kind(kind: ExternalKind) -> ExportKind {
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
    }
}

/// What the rewrite needs to know of the module.
struct Layout {
    imported_functions: u32,
    realloc_type: u32,
    /// The active data segments of memory 0: where each starts, its bytes.
    data: Vec<(u32, Vec<u8>)>,
}

impl Layout {
    fn read(module: &[u8]) -> anyhow::Result<Self> {
        let mut imported_functions = 0;
        let mut function_types = Vec::new();
        let mut realloc = None;
        let mut data = Vec::new();
        for payload in Parser::new(0).parse_all(module) {
            match payload.context("reading the Go module")? {
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        if matches!(import?.ty, wasmparser::TypeRef::Func(_)) {
                            imported_functions += 1;
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        function_types.push(ty?);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        if export.name == EXPORT {
                            bail!("the module already exports `{EXPORT}`");
                        }
                        if export.name == MAIN_REALLOC && export.kind == ExternalKind::Func {
                            realloc = Some(export.index);
                        }
                    }
                }
                Payload::DataSection(reader) => {
                    for segment in reader {
                        let segment = segment?;
                        if let DataKind::Active {
                            memory_index: 0,
                            offset_expr,
                        } = segment.kind
                        {
                            data.push((constant(&offset_expr)?, segment.data.to_vec()));
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(realloc) = realloc else {
            bail!(
                "the module exports no `{MAIN_REALLOC}` (is sdk/go/mozaiks/abi.go in the folder?)"
            );
        };
        let realloc_type = realloc
            .checked_sub(imported_functions)
            .and_then(|i| function_types.get(i as usize).copied())
            .with_context(|| format!("`{MAIN_REALLOC}` is not a function the module defines"))?;
        Ok(Self {
            imported_functions,
            realloc_type,
            data,
        })
    }

    /// The one array that starts with [`MARKER`].
    fn arena(&self) -> anyhow::Result<Arena> {
        let mut found = self.data.iter().flat_map(|(start, bytes)| {
            bytes
                .windows(MARKER.len())
                .enumerate()
                .filter(|(_, window)| *window == MARKER)
                .map(move |(at, _)| start + at as u32)
        });
        let Some(start) = found.next() else {
            bail!(
                "the module has no adapter arena: its `mozaiks/` package is older than this \
                 mozaiks (copy sdk/go/mozaiks/abi.go of this version into the folder)"
            );
        };
        if found.next().is_some() {
            bail!("the module's data holds the adapter arena's marker more than once");
        }
        let size = u32::from_le_bytes([0, 1, 2, 3].map(|i| self.byte(start + SIZE_AT + i)));
        if size < DATA_AT + 2 * 64 * 1024 || self.byte(start + USED_AT) != 0 {
            bail!("the module's adapter arena is malformed (size {size})");
        }
        Ok(Arena { start, size })
    }

    /// The byte at `address` when the module starts (zero outside its data).
    fn byte(&self, address: u32) -> u8 {
        self.data
            .iter()
            .find_map(|(start, bytes)| {
                let at = address.checked_sub(*start)? as usize;
                bytes.get(at).copied()
            })
            .unwrap_or(0)
    }
}

fn constant(expr: &ConstExpr<'_>) -> anyhow::Result<u32> {
    let mut reader = expr.get_operators_reader();
    match reader.read()? {
        Operator::I32Const { value } => Ok(value as u32),
        other => bail!("a data segment's offset is not a constant: {other:?}"),
    }
}

/// The adapter arena of a module: where it starts and its size.
struct Arena {
    start: u32,
    size: u32,
}

impl Arena {
    /// `cabi_realloc_adapter(old_ptr, old_len, align, new_len) -> ptr`: a
    /// bump allocator over the arena. The adapter only ever asks for new
    /// blocks; anything else, or more than the arena holds, traps.
    fn allocator(&self) -> Function {
        let (used, data, end) = (
            self.start + USED_AT,
            self.start + DATA_AT,
            self.start + self.size,
        );
        let (old_ptr, align, new_len, at) = (0, 2, 3, 4);
        let word = MemArg {
            offset: 0,
            align: 2,
            memory_index: 0,
        };
        let mut f = Function::new([(1, ValType::I32)]);
        let mut i = f.instructions();
        // A reallocation: the adapter never asks for one.
        i.local_get(old_ptr)
            .if_(wasm_encoder::BlockType::Empty)
            .unreachable()
            .end();
        // More than the arena holds (also keeps the sums below from wrapping).
        i.local_get(new_len)
            .i32_const(self.size as i32)
            .i32_gt_u()
            .if_(wasm_encoder::BlockType::Empty)
            .unreachable()
            .end();
        // at = align_up(data + used, align)
        i.i32_const(used as i32)
            .i32_load(word)
            .i32_const(data as i32)
            .i32_add()
            .local_get(align)
            .i32_add()
            .i32_const(1)
            .i32_sub()
            .i32_const(0)
            .local_get(align)
            .i32_sub()
            .i32_and()
            .local_set(at);
        // at + new_len past the arena's end: out of arena.
        i.local_get(at)
            .local_get(new_len)
            .i32_add()
            .i32_const(end as i32)
            .i32_gt_u()
            .if_(wasm_encoder::BlockType::Empty)
            .unreachable()
            .end();
        // used = at + new_len - data
        i.i32_const(used as i32)
            .local_get(at)
            .local_get(new_len)
            .i32_add()
            .i32_const(data as i32)
            .i32_sub()
            .i32_store(word);
        i.local_get(at).end();
        f
    }
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        DataSection, ExportSection, FunctionSection, MemorySection, MemoryType, Module, TypeSection,
    };
    use wasmtime::{Engine, Instance, Store, TypedFunc};

    use super::*;

    /// Where the test modules' arena starts.
    const AT: u32 = 1024;
    /// The arena's size: the header, two pages and a little.
    const SIZE: u32 = DATA_AT + 2 * 65536 + 64;

    /// A module with a memory of 4 pages, a `cabi_realloc` that answers
    /// 0, and `data` as its data segments `(offset, bytes)`.
    fn module(data: &[(u32, Vec<u8>)], with_realloc: bool) -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32; 4], [ValType::I32]);
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 4,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = ExportSection::new();
        exports.export("memory", ExportKind::Memory, 0);
        if with_realloc {
            exports.export(MAIN_REALLOC, ExportKind::Func, 0);
        }
        let mut code = CodeSection::new();
        let mut realloc = Function::new([]);
        realloc.instructions().i32_const(0).end();
        code.function(&realloc);
        let mut segments = DataSection::new();
        for (offset, bytes) in data {
            segments.active(
                0,
                &wasm_encoder::ConstExpr::i32_const(*offset as i32),
                bytes.iter().copied(),
            );
        }
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&memories)
            .section(&exports)
            .section(&code)
            .section(&segments);
        module.finish()
    }

    /// The arena's header as the Go helper writes it.
    fn header() -> Vec<u8> {
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&SIZE.to_le_bytes());
        bytes
    }

    /// `cabi_realloc(old_ptr, old_len, align, new_len) -> ptr`.
    type Realloc = TypedFunc<(i32, i32, i32, i32), i32>;

    fn allocator(module: &[u8]) -> (Store<()>, Realloc) {
        let engine = Engine::default();
        let module = wasmtime::Module::new(&engine, module).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let realloc = instance
            .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, EXPORT)
            .unwrap();
        (store, realloc)
    }

    /// The adapter's two pages come from the arena, aligned, one after
    /// the other; a third does not fit and traps, as does a reallocation.
    #[test]
    fn the_adapter_gets_its_pages_from_the_arena_and_no_more() {
        let rewritten = serve_adapter_from_arena(&module(&[(AT, header())], true)).unwrap();
        let (mut store, realloc) = allocator(&rewritten);
        let first = realloc.call(&mut store, (0, 0, 8, 65536)).unwrap() as u32;
        let second = realloc.call(&mut store, (0, 0, 16, 65536)).unwrap() as u32;
        assert_eq!(first, AT + DATA_AT);
        assert_eq!(first % 8, 0);
        assert_eq!(second, first + 65536);
        assert_eq!(second % 16, 0);
        assert!(second + 65536 <= AT + SIZE);
        assert!(
            realloc.call(&mut store, (0, 0, 8, 65536)).is_err(),
            "out of arena"
        );
        let (mut store, realloc) = allocator(&rewritten);
        assert!(
            realloc.call(&mut store, (64, 8, 8, 16)).is_err(),
            "a reallocation"
        );
        let (mut store, realloc) = allocator(&rewritten);
        assert!(
            realloc.call(&mut store, (0, 0, 8, -1)).is_err(),
            "more than the arena"
        );
    }

    /// A module whose helper has no arena, has it twice, or has no
    /// `cabi_realloc` is refused with the reason.
    #[test]
    fn a_module_without_one_arena_or_cabi_realloc_is_refused() {
        let error = |module: Vec<u8>| serve_adapter_from_arena(&module).unwrap_err().to_string();
        assert!(error(module(&[], true)).contains("no adapter arena"));
        assert!(
            error(module(&[(AT, header()), (AT + SIZE, header())], true))
                .contains("more than once")
        );
        assert!(error(module(&[(AT, header())], false)).contains("no `cabi_realloc`"));
        let mut small = MARKER.to_vec();
        small.extend_from_slice(&64u32.to_le_bytes());
        assert!(error(module(&[(AT, small)], true)).contains("malformed"));
    }
}
