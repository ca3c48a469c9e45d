//! The languages a tool can be written in, and how a plugin folder says
//! which one it is.

use std::path::Path;

/// A language `mozaiks new tool` scaffolds and `mozaiks tool build` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Language {
    /// A Rust crate on the mozaiks SDK, built by `sdk/build-plugin`.
    Rust,
    /// A Python module `app.py` on `mozaiks_tool.py`, built by componentize-py.
    Python,
    /// A JavaScript module `app.js` on `mozaiks_tool.js`, built by
    /// componentize-qjs (QuickJS).
    Js,
    /// A TypeScript module `app.ts` on `mozaiks_tool.ts`, type-checked and
    /// emitted by tsc, then built by componentize-qjs (QuickJS).
    Ts,
    /// C sources (`app.c` and any other `*.c`) on `mozaiks_tool.h`, with
    /// bindings generated from the contract, built by `zig cc`.
    C,
    /// A Go package `main` (`app.go`) on the `mozaiks` package of sdk/go,
    /// built by Go for `wasip1` as a c-shared module.
    Go,
}

/// The file whose presence in a plugin folder names its language.
const MARKERS: &[(&str, Language)] = &[
    ("Cargo.toml", Language::Rust),
    ("app.py", Language::Python),
    ("app.js", Language::Js),
    ("app.ts", Language::Ts),
    ("app.c", Language::C),
    ("app.go", Language::Go),
];

impl Language {
    /// The language of the plugin folder `dir`, from the first marker file
    /// found in it.
    pub(crate) fn of_folder(dir: &Path) -> anyhow::Result<Self> {
        MARKERS
            .iter()
            .find(|(file, _)| dir.join(file).is_file())
            .map(|&(_, language)| language)
            .ok_or_else(|| {
                let markers: Vec<String> = MARKERS
                    .iter()
                    .map(|(file, language)| format!("{file} ({})", language.name()))
                    .collect();
                anyhow::anyhow!(
                    "{} is not a tool folder of a known language: it has none of {}",
                    dir.display(),
                    markers.join(", ")
                )
            })
    }

    /// The name `--lang` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Js => "js",
            Self::Ts => "ts",
            Self::C => "c",
            Self::Go => "go",
        }
    }
}
