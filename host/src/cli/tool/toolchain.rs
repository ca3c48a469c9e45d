//! Installing a language's toolchain on first use, through the project's
//! script (scripts/setup-tool-toolchain), which pins every version and
//! installs into the repository's `target/toolchains`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::language::Language;

/// Runs the toolchain script for `language` (it prints a progress line on
/// stderr when it installs) and returns the folder of the toolchain's
/// executables, which the script prints.
pub(crate) fn install(script: &Path, language: Language) -> anyhow::Result<PathBuf> {
    if !script.is_file() {
        bail!(
            "{} not found: run this from the mozaiks repository root or pass --toolchain-script",
            script.display()
        );
    }
    let output = Command::new("bash")
        .arg(script)
        .arg(language.name())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "the {} toolchain could not be installed ({} failed; its messages are above)",
            language.name(),
            script.display()
        );
    }
    let bin = String::from_utf8(output.stdout)
        .context("the toolchain script printed a path that is not UTF-8")?;
    let bin = PathBuf::from(bin.trim());
    if !bin.is_dir() {
        bail!(
            "{} printed {}, which is not a folder",
            script.display(),
            bin.display()
        );
    }
    Ok(bin)
}
