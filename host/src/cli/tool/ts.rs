//! Building a TypeScript tool folder: declarations of the contract by jco's
//! `guest-types`, type-checking and emitting by tsc (the folder's strict
//! `tsconfig.json`; a type error fails the build), then componentize-qjs on
//! the emitted `build/app.js`, as for JavaScript.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use super::python::{run, write_wit};

/// The world in `wit/world.wit`.
const WORLD: &str = "plugin";
/// The module the tool starts from, and what tsc makes of it.
const APP_MODULE: &str = "app.ts";
const EMITTED_APP: &str = "build/app.js";

/// Writes `wit/` and the TypeScript declarations of the contract into `types/`.
pub(crate) fn generate(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    write_wit(dir)?;
    let mut command = Command::new(bin.join("jco"));
    command.args(["guest-types", "wit", "--world-name", WORLD, "-o", "types"]);
    run(command, dir, "jco guest-types")
}

/// Builds `<dir>` into the component at `out`.
pub(crate) fn build(bin: &Path, dir: &Path, out: &Path) -> anyhow::Result<()> {
    if !dir.join(APP_MODULE).is_file() {
        bail!("{} has no {APP_MODULE}", dir.display());
    }
    generate(bin, dir)?;
    let mut tsc = Command::new(bin.join("tsc"));
    tsc.args(["-p", "."]);
    run(tsc, dir, "tsc (type-checking)")?;
    let mut command = Command::new(bin.join("componentize-qjs"));
    command
        .args([
            "--wit",
            "wit",
            "--world",
            WORLD,
            "--js",
            EMITTED_APP,
            "--sync",
        ])
        .arg("--output")
        .arg(out);
    run(command, dir, "componentize-qjs")
}
