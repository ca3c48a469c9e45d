//! ARCHITECTURE.md's code map against the tree: every module file of this
//! crate is named where the map describes its folder, and every
//! `host/src/…` path the file names exists. A module added, moved or
//! renamed without updating the map fails here.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn architecture() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
        .unwrap()
}

fn module_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            module_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(src()).unwrap().to_owned());
        }
    }
}

/// The map's bullets (a bullet runs until the next one).
fn bullets(text: &str) -> Vec<String> {
    let mut bullets: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("- ") {
            bullets.push(line.to_owned());
        } else if let Some(last) = bullets.last_mut() {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    bullets
}

/// Whether `bullet` names `file` (`a/b/name.rs`): by name, in a
/// `{x,name,y}.rs` group, or as `b/*`.
fn names(bullet: &str, file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy();
    let stem = file.file_stem().unwrap().to_string_lossy();
    let parent = file
        .parent()
        .and_then(|p| p.file_name())
        .map(|p| p.to_string_lossy().into_owned());
    bullet.contains(&format!("`{name}`"))
        || bullet.contains(&format!("/{name}`"))
        || bullet.contains(&format!("{name}`"))
        || bullet.split('{').skip(1).any(|group| {
            group
                .split('}')
                .next()
                .is_some_and(|items| items.split(',').any(|item| item.trim() == stem))
        })
        || parent.is_some_and(|p| bullet.contains(&format!("{p}/*")))
}

#[test]
fn the_code_map_names_every_module_where_it_says() {
    let text = architecture();
    let bullets = bullets(&text);
    let mut files = Vec::new();
    module_files(&src(), &mut files);
    let mut missing = Vec::new();
    for file in &files {
        // Unit tests sit beside the code they test (the map says so once).
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let top = file
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let home = format!("host/src/{top}");
        let found = bullets
            .iter()
            .filter(|b| b.contains(&format!("`{home}")) || b.contains(&format!("{home}.rs")))
            .any(|b| names(b, file));
        if !found {
            missing.push(file.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name {missing:?} in the bullet of its folder"
    );
}

#[test]
fn every_path_the_map_names_exists() {
    let text = architecture();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut gone = Vec::new();
    for (index, _) in text.match_indices("host/src/") {
        let path: String = text[index..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.'))
            .collect();
        let path = path.trim_end_matches('.');
        if path.ends_with(".rs") && !root.join(path).is_file() {
            gone.push(path.to_owned());
        }
    }
    assert!(
        gone.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {gone:?}"
    );
}

/// The layers of ARCHITECTURE.md's "Layering", lowest first: a module may
/// use only modules of a lower layer.
const LAYERS: &[&[&str]] = &[
    &[
        "event",
        "telemetry",
        "access",
        "plugin_dir",
        "plugin_secrets",
    ],
    &["llm", "store", "workflow"],
    &["plugin_set", "import"],
    &["orchestrator", "watch"],
    &["maintenance"],
    &["transport"],
    &["config"],
    &["app", "doctor"],
];

/// Files that only tests compile (their uses do not count).
const TEST_ONLY: &[&str] = &[
    "tests.rs",
    "golden.rs",
    "conformance.rs",
    "fixtures.rs",
    "architecture_map.rs",
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The crate modules `text` uses (`crate::x`), comments and a trailing
/// `mod tests { … }` left out.
fn uses(text: &str) -> Vec<String> {
    let code = text
        .split("\n#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default();
    let mut found = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (index, _) in line.match_indices("crate::") {
            let name: String = line[index + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn no_module_uses_one_of_its_own_layer_or_above() {
    let mut files = Vec::new();
    module_files(&src(), &mut files);
    let mut against = Vec::new();
    for file in &files {
        let text = file.to_string_lossy();
        let name = file.file_name().unwrap().to_string_lossy();
        if TEST_ONLY.contains(&name.as_ref())
            || text.starts_with("fuzz")
            || text.starts_with("cli")
            || text == "lib.rs"
            || text == "main.rs"
        {
            continue;
        }
        let top = text.split('/').next().unwrap().trim_end_matches(".rs");
        let from = layer(top).unwrap_or_else(|| panic!("module `{top}` has no layer"));
        for used in uses(&std::fs::read_to_string(src().join(file)).unwrap()) {
            if used == top {
                continue;
            }
            let to = layer(&used).unwrap_or_else(|| panic!("module `{used}` has no layer"));
            if to >= from {
                against.push(format!("{} uses crate::{used}", file.display()));
            }
        }
    }
    assert!(
        against.is_empty(),
        "arrows against the layering of ARCHITECTURE.md: {against:?}"
    );
}
