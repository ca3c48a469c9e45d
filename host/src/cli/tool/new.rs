//! `mozaiks new tool <name> --lang <language>`: a plugin folder to start from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use mozaiks_plugin_host::{MANIFEST_FILE, Manifest};

use super::language::Language;
use super::python;

/// The WIT contract, as the host was built with it: `(file name, text)`.
pub(crate) const WIT_FILES: &[(&str, &str)] = &[
    ("world.wit", include_str!("../../../../wit/world.wit")),
    ("types.wit", include_str!("../../../../wit/types.wit")),
    ("context.wit", include_str!("../../../../wit/context.wit")),
    ("ui.wit", include_str!("../../../../wit/ui.wit")),
    ("log.wit", include_str!("../../../../wit/log.wit")),
    ("secrets.wit", include_str!("../../../../wit/secrets.wit")),
    ("data.wit", include_str!("../../../../wit/data.wit")),
    ("chat.wit", include_str!("../../../../wit/chat.wit")),
    (
        "invocation.wit",
        include_str!("../../../../wit/invocation.wit"),
    ),
];

/// The Python template (`sdk/python/`), with `template` where the id goes.
const PYTHON_TEMPLATE: &[(&str, &str)] = &[
    (
        "app.py",
        include_str!("../../../../sdk/python/template/app.py"),
    ),
    (
        "plugin.toml",
        include_str!("../../../../sdk/python/template/plugin.toml"),
    ),
    (
        "README.md",
        include_str!("../../../../sdk/python/template/README.md"),
    ),
    (
        "mozaiks_tool.py",
        include_str!("../../../../sdk/python/mozaiks_tool.py"),
    ),
    (".gitignore", "/template.wasm\n__pycache__/\n"),
];

/// The JavaScript template (`sdk/js/`), with `template` where the id goes.
const JS_TEMPLATE: &[(&str, &str)] = &[
    ("app.js", include_str!("../../../../sdk/js/template/app.js")),
    (
        "plugin.toml",
        include_str!("../../../../sdk/js/template/plugin.toml"),
    ),
    (
        "README.md",
        include_str!("../../../../sdk/js/template/README.md"),
    ),
    (
        "mozaiks_tool.js",
        include_str!("../../../../sdk/js/mozaiks_tool.js"),
    ),
    (".gitignore", "/template.wasm\n"),
];

/// The TypeScript template (`sdk/ts/`), with `template` where the id goes.
const TS_TEMPLATE: &[(&str, &str)] = &[
    ("app.ts", include_str!("../../../../sdk/ts/template/app.ts")),
    (
        "tsconfig.json",
        include_str!("../../../../sdk/ts/template/tsconfig.json"),
    ),
    (
        "plugin.toml",
        include_str!("../../../../sdk/ts/template/plugin.toml"),
    ),
    (
        "README.md",
        include_str!("../../../../sdk/ts/template/README.md"),
    ),
    (
        "mozaiks_tool.ts",
        include_str!("../../../../sdk/ts/mozaiks_tool.ts"),
    ),
    (".gitignore", "/template.wasm\n/build/\n"),
];

/// The C template (`sdk/c/`), with `template` where the id goes.
const C_TEMPLATE: &[(&str, &str)] = &[
    ("app.c", include_str!("../../../../sdk/c/template/app.c")),
    (
        "plugin.toml",
        include_str!("../../../../sdk/c/template/plugin.toml"),
    ),
    (
        "README.md",
        include_str!("../../../../sdk/c/template/README.md"),
    ),
    (
        "mozaiks_tool.h",
        include_str!("../../../../sdk/c/mozaiks_tool.h"),
    ),
    (
        "mozaiks_tool.c",
        include_str!("../../../../sdk/c/mozaiks_tool.c"),
    ),
    (".gitignore", "/template.wasm\n/bindings/\n"),
];

/// The Go template (`sdk/go/`), with `template` where the id goes.
const GO_TEMPLATE: &[(&str, &str)] = &[
    ("app.go", include_str!("../../../../sdk/go/template/app.go")),
    ("go.mod", include_str!("../../../../sdk/go/template/go.mod")),
    (
        "plugin.toml",
        include_str!("../../../../sdk/go/template/plugin.toml"),
    ),
    (
        "README.md",
        include_str!("../../../../sdk/go/template/README.md"),
    ),
    (
        "mozaiks/tool.go",
        include_str!("../../../../sdk/go/mozaiks/tool.go"),
    ),
    (
        "mozaiks/abi.go",
        include_str!("../../../../sdk/go/mozaiks/abi.go"),
    ),
    (
        "mozaiks/data.go",
        include_str!("../../../../sdk/go/mozaiks/data.go"),
    ),
    (
        "mozaiks/reseed.go",
        include_str!("../../../../sdk/go/mozaiks/reseed.go"),
    ),
    (
        "mozaiks/warm.go",
        include_str!("../../../../sdk/go/mozaiks/warm.go"),
    ),
    (".gitignore", "/template.wasm\n"),
];

/// The files of the Rust template (`sdk/template/`) that a new tool copies.
const RUST_TEMPLATE: &[&str] = &["Cargo.toml", "Cargo.lock", "plugin.toml", "src/lib.rs"];

/// What `new tool` needs besides the name and language.
#[derive(Debug)]
pub(crate) struct NewTool<'a> {
    pub(crate) name: &'a str,
    pub(crate) language: Language,
    pub(crate) parent: &'a Path,
    pub(crate) sdk: &'a Path,
    pub(crate) toolchain_script: &'a Path,
}

/// Makes the plugin folder and says how to build and call it.
pub(crate) fn run(new: &NewTool<'_>) -> anyhow::Result<ExitCode> {
    // The id rules are the manifest's: check them before writing anything.
    Manifest::parse(
        &format!("id = {:?}\nversion = \"0.1.0\"\n", new.name),
        Path::new(MANIFEST_FILE),
    )
    .with_context(|| format!("`{}` cannot be a tool's name", new.name))?;
    let dir = if new.parent == Path::new(".") {
        PathBuf::from(new.name)
    } else {
        new.parent.join(new.name)
    };
    if dir.exists() {
        bail!(
            "{} already exists; pick another name or folder",
            dir.display()
        );
    }
    let made = match new.language {
        Language::Rust => rust(new, &dir),
        Language::Python => python(new, &dir),
        Language::Js => js(&dir, new.name),
        Language::Ts => ts(new, &dir),
        Language::C => c(&dir, new.name),
        Language::Go => go(&dir, new.name),
    };
    if let Err(error) = made {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(error);
    }
    let shown = dir.display();
    println!("made {shown} ({} tool)", new.language.name());
    println!("next: mozaiks tool build {shown}");
    println!("      mozaiks tool call {shown} greet --args '{{\"name\":\"Ada\"}}'");
    Ok(ExitCode::SUCCESS)
}

fn write(dir: &Path, file: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Sets the id (and a Rust crate's name) in a template file.
fn named(text: &str, name: &str) -> String {
    text.replace("id = \"template\"", &format!("id = {name:?}"))
        .replace("name = \"template\"", &format!("name = {name:?}"))
        .replace("/template.wasm", &format!("/{name}.wasm"))
        .replace("# template\n", &format!("# {name}\n"))
        .replace("tool template ", &format!("tool {name} "))
        .replace("build template\n", &format!("build {name}\n"))
        .replace("call template ", &format!("call {name} "))
        .replace("`template.wasm`", &format!("`{name}.wasm`"))
}

fn python(new: &NewTool<'_>, dir: &Path) -> anyhow::Result<()> {
    for (file, text) in PYTHON_TEMPLATE {
        write(dir, file, &named(text, new.name))?;
    }
    let bin = super::toolchain::install(new.toolchain_script, Language::Python)?;
    python::generate(&bin, dir)
}

fn js(dir: &Path, name: &str) -> anyhow::Result<()> {
    for (file, text) in JS_TEMPLATE {
        write(dir, file, &named(text, name))?;
    }
    super::js::write_wit(dir)
}

fn c(dir: &Path, name: &str) -> anyhow::Result<()> {
    for (file, text) in C_TEMPLATE {
        write(dir, file, &named(text, name))?;
    }
    super::c::generate(dir)
}

fn go(dir: &Path, name: &str) -> anyhow::Result<()> {
    for (file, text) in GO_TEMPLATE {
        write(dir, file, &named(text, name))?;
    }
    super::js::write_wit(dir)
}

fn ts(new: &NewTool<'_>, dir: &Path) -> anyhow::Result<()> {
    for (file, text) in TS_TEMPLATE {
        write(dir, file, &named(text, new.name))?;
    }
    let bin = super::toolchain::install(new.toolchain_script, Language::Ts)?;
    super::ts::generate(&bin, dir)
}

fn rust(new: &NewTool<'_>, dir: &Path) -> anyhow::Result<()> {
    let template = new.sdk.join("template");
    if !template.join("Cargo.toml").is_file() {
        bail!(
            "the Rust template is not at {}: run this from the mozaiks repository root or pass --sdk",
            template.display()
        );
    }
    let sdk: PathBuf = new
        .sdk
        .canonicalize()
        .with_context(|| format!("finding {}", new.sdk.display()))?;
    for file in RUST_TEMPLATE {
        let text = std::fs::read_to_string(template.join(file))
            .with_context(|| format!("reading {}", template.join(file).display()))?;
        let text = named(&text, new.name).replace("path = \"..\"", &format!("path = {sdk:?}"));
        write(dir, file, &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod wit_files_tests {
    /// A new WIT file in `wit/` that `mozaiks new tool` would not copy
    /// breaks every scaffolded tool's build (its world names it).
    #[test]
    fn every_file_of_the_contract_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = super::WIT_FILES
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }
}
