//! Building a JavaScript tool folder with componentize-qjs (QuickJS).
//!
//! The folder holds `app.js`, an ES module that exports `tool` (made by
//! `Toolbox.export()` of `mozaiks_tool.js`), and the modules it imports by
//! relative path. The build rewrites `wit/` from the contract this host was
//! built with and runs componentize-qjs with `--sync`: its components then
//! use the component model's synchronous ABI, which the host runs (the
//! async ABI is not enabled in the engine).

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use super::python::run;
pub(crate) use super::python::write_wit;

/// The world in `wit/world.wit`.
const WORLD: &str = "plugin";
/// The module componentize-qjs loads.
const APP_MODULE: &str = "app.js";

/// Builds `<dir>` into the component at `out`.
pub(crate) fn build(bin: &Path, dir: &Path, out: &Path) -> anyhow::Result<()> {
    if !dir.join(APP_MODULE).is_file() {
        bail!("{} has no {APP_MODULE}", dir.display());
    }
    write_wit(dir)?;
    let mut command = Command::new(bin.join("componentize-qjs"));
    command
        .args([
            "--wit", "wit", "--world", WORLD, "--js", APP_MODULE, "--sync",
        ])
        .arg("--output")
        .arg(out);
    run(command, dir, "componentize-qjs")
}
