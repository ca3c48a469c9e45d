//! Building a Go tool folder: `go build` for `GOOS=wasip1 GOARCH=wasm` as a
//! c-shared module (a reactor: Go's runtime starts in `_initialize`, then
//! the exports of the `mozaiks` package are called), and the module made
//! into a component in-process (`componentize.rs`). The adapter allocates
//! from an array of the Go helper (`adapter_arena.rs`): Go's allocator
//! cannot serve it before Go's runtime ran, and pages it added with
//! `memory.grow` would be taken by Go's heap.
//!
//! Go's runtime start-up is snapshotted at build time (`preinit.rs`) unless
//! the manifest grants files or environment variables.
//!
//! The glue to the WIT's canonical ABI is the folder's `mozaiks/` package
//! (sdk/go/mozaiks, standard library only: Go modules are never fetched).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use mozaiks_plugin_host::{MANIFEST_FILE, Manifest};

use super::adapter_arena;
use super::componentize;
use super::preinit;
use super::python::{run, write_wit};

/// The file that marks a Go tool folder.
pub(crate) const APP_FILE: &str = "app.go";

/// The environment of every `go` run: the target, caches beside the
/// toolchain (not in the user's home), and nothing from the network (the
/// tool's module has no dependency to fetch, and a newer toolchain is
/// never downloaded).
fn go_command(bin: &Path) -> Command {
    let home = bin.parent().unwrap_or(bin);
    let mut go = Command::new(bin.join("go"));
    go.env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GOCACHE", home.join("go-build-cache"))
        .env("GOPATH", home.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0");
    go
}

/// Builds `<dir>` into the component at `out`.
pub(crate) fn build(bin: &Path, dir: &Path, out: &Path) -> anyhow::Result<()> {
    if !dir.join(APP_FILE).is_file() {
        bail!("{} has no {APP_FILE}", dir.display());
    }
    write_wit(dir)?;
    // Not `.wasm`: a server watching the folder reloads on `.wasm` files.
    let core = out.with_extension("core");
    let mut go = go_command(bin);
    go.args([
        "build",
        "-buildmode=c-shared",
        "-trimpath",
        // -checklinkname=0: the helper's reseed.go reaches into the
        // runtime's random generator (`preinit.rs`).
        "-ldflags=-s -w -checklinkname=0",
        "-o",
    ])
    .arg(&core)
    .arg(".");
    let built = run(go, dir, "go build").and_then(|()| {
        let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
        let module = pre_initialised(dir, module)?;
        let module = adapter_arena::serve_adapter_from_arena(&module)?;
        let component = componentize::component(module)?;
        std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
    });
    let _ = std::fs::remove_file(&core);
    built
}

/// `module` with Go's runtime already started, when the manifest and the
/// helper allow it ([`preinit::applies`]); else as it is, with a line
/// saying why. A snapshot that fails is reported and the module is used as
/// it is.
fn pre_initialised(dir: &Path, module: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let manifest = Manifest::read(&dir.join(MANIFEST_FILE))?;
    if let Err(why) = preinit::applies(&manifest, &module) {
        eprintln!(
            "mozaiks: {}: Go's runtime starts on every call: {why}",
            manifest.id
        );
        return Ok(module);
    }
    match preinit::snapshot(&module) {
        Ok(snapshot) => Ok(snapshot),
        Err(error) => {
            eprintln!(
                "mozaiks: {}: Go's runtime starts on every call: no snapshot ({error:#})",
                manifest.id
            );
            Ok(module)
        }
    }
}
