//! Building a Go tool folder: `go build` for `GOOS=wasip1 GOARCH=wasm` as a
//! c-shared module (a reactor: Go's runtime starts in `_initialize`, then
//! the exports of the `mozaiks` package are called), and the module made
//! into a component in-process (`componentize.rs`). The adapter allocates
//! from an array of the Go helper (`adapter_arena.rs`): Go's allocator
//! cannot serve it before Go's runtime ran, and pages it added with
//! `memory.grow` would be taken by Go's heap.
//!
//! The glue to the WIT's canonical ABI is the folder's `mozaiks/` package
//! (sdk/go/mozaiks, standard library only: Go modules are never fetched).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use super::adapter_arena;
use super::componentize;
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
        "-ldflags=-s -w",
        "-o",
    ])
    .arg(&core)
    .arg(".");
    let built = run(go, dir, "go build").and_then(|()| {
        let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
        let module = adapter_arena::serve_adapter_from_arena(&module)?;
        let component = componentize::component(module)?;
        std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
    });
    let _ = std::fs::remove_file(&core);
    built
}
