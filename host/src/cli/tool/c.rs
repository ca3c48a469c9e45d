//! Building a C tool folder: C bindings generated from the contract (by the
//! `wit-bindgen-c` library, in-process), every `*.c` of the folder compiled
//! for `wasm32-wasi` by `zig cc` (the `ziglang` wheel from PyPI), and the
//! core module made into a component in-process (`componentize.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::componentize;
use super::python::{run, write_wit};

/// The file that marks a C tool folder.
pub(crate) const APP_FILE: &str = "app.c";
/// Where the generated bindings go (rewritten by every build).
const BINDINGS: &str = "bindings";
/// The stack of the tool's module. zig's default is 16 MiB, which would make
/// every instance reserve 17 MiB of memory; 1 MiB fits the sample with room
/// to spare and lets a tool run in a 2 MiB memory limit.
const STACK_BYTES: u32 = 1024 * 1024;

/// Writes `wit/` and the C bindings of the contract into `bindings/`:
/// `plugin.h` (the types and functions), `plugin.c` (their glue) and
/// `plugin_component_type.o` (the contract, linked into the module).
pub(crate) fn generate(dir: &Path) -> anyhow::Result<()> {
    write_wit(dir)?;
    let (mut resolve, world) = componentize::contract()?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .context("generating the C bindings of the contract")?;
    let bindings = dir.join(BINDINGS);
    if bindings.exists() {
        std::fs::remove_dir_all(&bindings)
            .with_context(|| format!("removing the old {}", bindings.display()))?;
    }
    std::fs::create_dir_all(&bindings)
        .with_context(|| format!("creating {}", bindings.display()))?;
    for (name, bytes) in files.iter() {
        let path = bindings.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The folder's own C sources (`*.c` at its top level), sorted.
fn sources(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "c"))
        .filter_map(|path| path.file_name().map(PathBuf::from))
        .collect();
    sources.sort();
    Ok(sources)
}

/// Builds `<dir>` into the component at `out`.
pub(crate) fn build(bin: &Path, dir: &Path, out: &Path) -> anyhow::Result<()> {
    if !dir.join(APP_FILE).is_file() {
        bail!("{} has no {APP_FILE}", dir.display());
    }
    generate(dir)?;
    // Not `.wasm`: a server watching the folder reloads on `.wasm` files.
    let core = out.with_extension("core");
    let mut zig = Command::new(bin.join("zig"));
    // zig caches what it compiled (wasi-libc, first of all: about 20 s the
    // first time); beside the toolchain, not in the user's home.
    let cache = bin.parent().unwrap_or(bin).join("zig-cache");
    zig.env("ZIG_GLOBAL_CACHE_DIR", &cache)
        .env("ZIG_LOCAL_CACHE_DIR", &cache);
    zig.args([
        "cc",
        "--target=wasm32-wasi",
        "-mexec-model=reactor",
        "-O2",
        "-s",
    ])
    .args(["-Wall", "-Werror=implicit-function-declaration"])
    .arg(format!("-Wl,-z,stack-size={STACK_BYTES}"))
    .arg(format!("-I{BINDINGS}"))
    .args(sources(dir)?)
    .arg(format!("{BINDINGS}/plugin.c"))
    .arg(format!("{BINDINGS}/plugin_component_type.o"))
    .arg("-o")
    .arg(&core);
    let compiled = run(zig, dir, "zig cc").and_then(|()| {
        let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
        let component = componentize::component(module)?;
        std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
    });
    let _ = std::fs::remove_file(&core);
    compiled
}

#[cfg(test)]
mod tests {
    /// The bindings come from this host's contract: the exports a tool
    /// implements and the imports of every interface are declared.
    #[test]
    fn bindings_are_generated_from_the_contract() {
        let dir = std::env::temp_dir().join(format!("mozaiks-c-bindings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        super::generate(&dir).unwrap();
        let header = std::fs::read_to_string(dir.join("bindings/plugin.h")).unwrap();
        for declared in [
            "exports_mozaiks_plugin_tool_describe(",
            "exports_mozaiks_plugin_tool_call(",
            "mozaiks_plugin_context_get(",
            "mozaiks_plugin_ui_ask(",
            "mozaiks_plugin_log_log(",
        ] {
            assert!(header.contains(declared), "plugin.h lacks {declared}");
        }
        assert!(dir.join("bindings/plugin_component_type.o").is_file());
        assert!(dir.join("wit/world.wit").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
