//! Golden files: checked-in examples of every serialised form a client or a
//! stored chat depends on (`tests/golden/`). A test serialises each example
//! and compares it with its file, so a renamed field, a changed word or a
//! reordered key shows up as a failing test and, once intended, as a
//! reviewed diff. `MOZAIKS_BLESS=1` rewrites the files (and removes those no
//! example produces any more), as it does for the workflow fixtures.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The folder of one kind of golden file, `tests/golden/<kind>/`.
pub(crate) fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(kind)
}

/// Compares every `(name, text)` with `<dir>/<name>.json`, or rewrites the
/// files when `MOZAIKS_BLESS` is set. Fails listing every difference, every
/// missing file and every file no case produces.
pub(crate) fn check(dir: &Path, cases: &[(String, String)]) {
    let bless = std::env::var_os("MOZAIKS_BLESS").is_some();
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for (name, text) in cases {
        assert!(
            names.insert(name.clone()),
            "two golden cases are named `{name}`"
        );
        let path = dir.join(format!("{name}.json"));
        let text = format!("{text}\n");
        if bless {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == text => {}
            Ok(expected) => problems.push(format!(
                "{} changed:\n--- expected\n{expected}--- got\n{text}",
                path.display()
            )),
            Err(_) => problems.push(format!("{} is missing; got:\n{text}", path.display())),
        }
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let stem = file.strip_suffix(".json").unwrap_or(&file);
        if !names.contains(stem) {
            if bless {
                std::fs::remove_file(entry.path()).unwrap();
            } else {
                problems.push(format!(
                    "{} is no case's golden file",
                    entry.path().display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(after an intended change, run with MOZAIKS_BLESS=1 and review the diff)",
        problems.join("\n")
    );
}
