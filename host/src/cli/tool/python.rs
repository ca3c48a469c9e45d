//! Building a Python tool folder with componentize-py.
//!
//! The folder holds `app.py` (which defines the exported `Tool` class, made
//! by `mozaiks_tool.Toolbox.export()`) and any modules it imports. The
//! build rewrites `wit/` from the contract this host was built with, so the
//! component always targets this host's version, regenerates `bindings/`
//! (for editors; componentize-py makes its own), and runs componentize-py.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::new::WIT_FILES;

/// The world in `wit/world.wit`.
const WORLD: &str = "plugin";
/// The module componentize-py loads.
const APP_MODULE: &str = "app";

fn componentize_py(bin: &Path) -> PathBuf {
    bin.join("componentize-py")
}

/// Writes the contract into `<dir>/wit`.
pub(crate) fn write_wit(dir: &Path) -> anyhow::Result<()> {
    let wit = dir.join("wit");
    std::fs::create_dir_all(&wit).with_context(|| format!("creating {}", wit.display()))?;
    for (file, text) in WIT_FILES {
        std::fs::write(wit.join(file), text)
            .with_context(|| format!("writing {}", wit.join(file).display()))?;
    }
    Ok(())
}

/// Runs a toolchain command in `dir`; on failure, shows what it printed.
pub(crate) fn run(mut command: Command, dir: &Path, what: &str) -> anyhow::Result<()> {
    let output = command
        .current_dir(dir)
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        bail!(
            "{what} failed in {} (its messages are above)",
            dir.display()
        );
    }
    Ok(())
}

/// Writes `wit/` and the Python bindings of the contract into `bindings/`.
pub(crate) fn generate(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    write_wit(dir)?;
    let bindings = dir.join("bindings");
    if bindings.exists() {
        std::fs::remove_dir_all(&bindings)
            .with_context(|| format!("removing the old {}", bindings.display()))?;
    }
    let mut command = Command::new(componentize_py(bin));
    command.args(["-d", "wit", "-w", WORLD, "bindings", "bindings"]);
    run(command, dir, "componentize-py bindings")
}

/// Builds `<dir>` into the component at `out` (which must be in `dir`).
pub(crate) fn build(bin: &Path, dir: &Path, out: &Path) -> anyhow::Result<()> {
    if !dir.join(format!("{APP_MODULE}.py")).is_file() {
        bail!("{} has no {APP_MODULE}.py", dir.display());
    }
    generate(bin, dir)?;
    let mut command = Command::new(componentize_py(bin));
    command
        .args(["-d", "wit", "-w", WORLD, "componentize", APP_MODULE])
        .args(["-p", "."])
        .arg("-o")
        .arg(out);
    run(command, dir, "componentize-py componentize")
}
