//! `mozaiks tool build <dir>...`: the toolchain is picked from each folder,
//! installed on first use, run, and what it made is checked and loaded.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};
use mozaiks_plugin_host::{MANIFEST_FILE, Manifest};

use super::language::Language;
use super::{c, check, go, js, python, toolchain, ts};
use crate::cli::ComponentCacheArgs;

/// Where `tool build` finds its scripts and keeps compiled code.
#[derive(Debug)]
pub(crate) struct BuildSettings<'a> {
    /// sdk/build-plugin, for Rust.
    pub(crate) rust_script: &'a Path,
    /// scripts/setup-tool-toolchain, for the other languages.
    pub(crate) toolchain_script: &'a Path,
    pub(crate) cache: &'a ComponentCacheArgs,
}

/// Builds every folder; stops at the first that fails.
pub(crate) async fn run(
    dirs: &[PathBuf],
    settings: &BuildSettings<'_>,
) -> anyhow::Result<ExitCode> {
    let mut rust = Vec::new();
    let mut others = Vec::new();
    for dir in dirs {
        match Language::of_folder(dir)? {
            Language::Rust => rust.push(dir.clone()),
            language => others.push((dir.clone(), language)),
        }
    }
    if !rust.is_empty() && !build_rust(&rust, settings.rust_script)? {
        return Ok(ExitCode::FAILURE);
    }
    for dir in &rust {
        finish(dir, settings.cache, None).await?;
    }
    for (dir, language) in &others {
        let started = Instant::now();
        let wasm = component_path(dir)?;
        let bin = toolchain::install(settings.toolchain_script, *language)?;
        eprintln!("mozaiks: building {} ({})", dir.display(), language.name());
        let partial = wasm.with_extension("wasm.partial");
        let built = match language {
            Language::Python => python::build(&bin, dir, &absolute(&partial)?),
            Language::Js => js::build(&bin, dir, &absolute(&partial)?),
            Language::Ts => ts::build(&bin, dir, &absolute(&partial)?),
            Language::C => c::build(&bin, dir, &absolute(&partial)?),
            Language::Go => go::build(&bin, dir, &absolute(&partial)?),
            Language::Rust => unreachable!("Rust folders are built above"),
        };
        let checked = built.and_then(|()| stamp(&partial, &wasm));
        let _ = std::fs::remove_file(&partial);
        checked?;
        finish(dir, settings.cache, Some(started)).await?;
    }
    Ok(ExitCode::SUCCESS)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// `<dir>/<id>.wasm`, after checking that the folder is named by its id.
fn component_path(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::read(&dir.join(MANIFEST_FILE))?;
    let folder = absolute(dir)?;
    let folder_name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if folder_name != manifest.id {
        bail!(
            "{}: plugin.toml says id = {:?} but the folder is {folder_name}; they must be equal",
            dir.display(),
            manifest.id
        );
    }
    Ok(dir.join(format!("{}.wasm", manifest.id)))
}

/// Checks the toolchain's output, stamps the WIT version in, and moves it
/// to `wasm` (atomically: a server watching the folder never sees half).
fn stamp(partial: &Path, wasm: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(partial).with_context(|| format!("reading {}", partial.display()))?;
    let stamped = check::check_and_stamp(bytes)
        .with_context(|| format!("the toolchain's output {} is not a tool", partial.display()))?;
    let temporary = wasm.with_extension("wasm.tmp");
    std::fs::write(&temporary, stamped)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, wasm).with_context(|| format!("writing {}", wasm.display()))
}

/// Checks the built component and loads it in the real engine, which
/// compiles it once (kept in the cache for the `tool call` that follows)
/// and asks it to describe itself; prints what it offers.
async fn finish(
    dir: &Path,
    cache: &ComponentCacheArgs,
    started: Option<Instant>,
) -> anyhow::Result<()> {
    let wasm = component_path(dir)?;
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    check::check_and_stamp(bytes)
        .with_context(|| format!("{} is not a tool component", wasm.display()))?;
    let plugin = super::load(&dir.to_string_lossy(), Path::new("."), cache)
        .await
        .with_context(|| format!("{} was built but does not load", wasm.display()))?;
    let size_kib = std::fs::metadata(&wasm)
        .map(|m| m.len() / 1024)
        .unwrap_or(0);
    let functions = plugin.function_names().join(", ");
    let took = started.map_or_else(String::new, |s| {
        format!(" in {:.1} s", s.elapsed().as_secs_f64())
    });
    eprintln!(
        "mozaiks: built {} ({size_kib} KiB){took}; functions: {functions}",
        wasm.display()
    );
    Ok(())
}

/// Runs sdk/build-plugin on the Rust folders; false if it failed.
fn build_rust(crates: &[PathBuf], script: &Path) -> anyhow::Result<bool> {
    if !script.is_file() {
        bail!(
            "{} not found: run this from the mozaiks repository root or pass --script",
            script.display()
        );
    }
    let status = Command::new("bash")
        .arg(script)
        .args(crates)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    Ok(status.success())
}
