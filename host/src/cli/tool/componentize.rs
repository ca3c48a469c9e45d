//! Making a core WebAssembly module (`wasm32-wasip1`, as C and Go compilers
//! make them) into a tool component, in-process: the contract of `wit/` is
//! embedded into the module (unless the compiler linked it in already) and
//! the WASI preview1 adapter of this host's wasmtime turns its WASI imports
//! into WASI 0.2 ones.

use anyhow::Context as _;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{Resolve, SourceMap, WorldId};

use super::new::WIT_FILES;

/// The world every tool implements (`wit/world.wit`).
pub(crate) const WORLD: &str = "plugin";

/// The contract this host was built with, parsed, and its `plugin` world.
pub(crate) fn contract() -> anyhow::Result<(Resolve, WorldId)> {
    let mut sources = SourceMap::new();
    for (file, text) in WIT_FILES {
        sources.push_str(file, *text);
    }
    let group = sources
        .parse()
        .map_err(|(_, error)| anyhow::anyhow!("the embedded WIT does not parse: {error}"))?;
    let mut resolve = Resolve::default();
    let package = resolve
        .push_group(group)
        .context("the embedded WIT does not resolve")?;
    let world = resolve.select_world(&[package], Some(WORLD))?;
    Ok((resolve, world))
}

/// Makes the core module `module` into a component of the `plugin` world.
/// The module exports `cabi_realloc`, through which the host hands it
/// strings and lists, and the adapter allocates with the module's
/// `cabi_realloc_adapter` if it has one (Go: `adapter_arena.rs`), else with
/// its `cabi_realloc` (C), never by growing the memory itself.
pub(crate) fn component(mut module: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let (resolve, world) = contract()?;
    if !has_contract(&module) {
        wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
            .context("embedding the WIT contract into the core module")?;
    }
    ComponentEncoder::default()
        .module(&module)
        .context("the compiler's output is not a core module of the `plugin` world")?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("the WASI preview1 adapter does not fit the module")?
        .validate(true)
        .encode()
        .context("making the core module into a component")
}

/// True when the module already carries a `component-type` custom section
/// (C bindings link one in).
fn has_contract(module: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(module)
        .filter_map(Result::ok)
        .any(|payload| {
            matches!(payload, wasmparser::Payload::CustomSection(section)
                if section.name().starts_with("component-type"))
        })
}
