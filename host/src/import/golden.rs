//! The importer against fixture MozaiksAI folders
//! (`tests/fixtures/import/mozaiksai/workflows/<Case>/`): every file it
//! writes and its report are compared with `tests/golden/import/<Case>/`
//! and `tests/golden/import/<Case>.import-report.txt`, byte for byte.
//! `MOZAIKS_BLESS=1` rewrites them. Then the result is loaded with the real
//! workflow loader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use mozaiks_plugin_host::FunctionSpec;

use super::{Verdict, convert, import_mozaiksai};
use crate::workflow::{InMemoryCatalog, load_workflow};

/// The fixture MozaiksAI repository (its `workflows/` folder holds the
/// cases; file sources resolve from its root, as MozaiksAI resolved them).
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/import/mozaiksai")
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/import")
}

const CASES: [&str; 5] = [
    "AgentGenerator",
    "ValueEngine",
    "HelloWorld",
    "DesignDocs",
    "SubscriptionAdvisor",
];

fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_case_is_a_fixture_folder() {
    let mut found: Vec<String> = std::fs::read_dir(fixtures().join("workflows"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('_'))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut cases = CASES.to_vec();
    cases.sort_unstable();
    assert_eq!(found, cases);
}

#[test]
fn output_and_report_match_the_golden_files() {
    let bless = std::env::var_os("MOZAIKS_BLESS").is_some();
    let mut problems = Vec::new();
    for case in CASES {
        let converted = convert(&fixtures().join("workflows").join(case), case).unwrap();
        let mut expected: BTreeMap<String, Vec<u8>> = converted.files.clone();
        expected.insert(
            format!("../{case}.import-report.txt"),
            converted.report.render(case).into_bytes(),
        );
        let dir = golden().join(case);
        if bless {
            let _ = std::fs::remove_dir_all(&dir);
        }
        for (rel, bytes) in &expected {
            let path = dir.join(rel);
            if bless {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
                continue;
            }
            match std::fs::read(&path) {
                Ok(old) if &old == bytes => {}
                Ok(old) => problems.push(format!(
                    "{} changed:\n--- expected\n{}--- got\n{}",
                    path.display(),
                    String::from_utf8_lossy(&old),
                    String::from_utf8_lossy(bytes)
                )),
                Err(_) => problems.push(format!(
                    "{} is missing; got:\n{}",
                    path.display(),
                    String::from_utf8_lossy(bytes)
                )),
            }
        }
        for extra in files_under(&dir) {
            if !converted.files.contains_key(&extra) {
                problems.push(format!(
                    "{} is written by no import",
                    dir.join(extra).display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(MOZAIKS_BLESS=1 rewrites the golden files)",
        problems.join("\n")
    );
}

/// A catalog holding every function the import points at, with the most
/// permissive parameters: what the porter will have written.
fn ported(converted: &super::Converted) -> InMemoryCatalog {
    let mut by_plugin: HashMap<String, Vec<FunctionSpec>> = HashMap::new();
    for t in &converted.report.to_port {
        by_plugin
            .entry(t.plugin.clone())
            .or_default()
            .push(FunctionSpec {
                name: t.function.clone(),
                description: format!("ported from {}", t.python_file),
                parameters: serde_json::json!({"type": "object"}),
            });
    }
    by_plugin
        .into_iter()
        .fold(InMemoryCatalog::new(), |c, (id, functions)| {
            c.plugin(id, functions)
        })
}

/// Imports `case` into a scratch folder and loads it: without plugins it
/// fails only on the plugins to port (the verdict names them); with them
/// it loads.
fn imports_and_validates(case: &str) {
    let scratch =
        std::env::temp_dir().join(format!("mozaiks-import-{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let out = scratch.join(case);
    let imported = import_mozaiksai(&fixtures().join("workflows").join(case), &out).unwrap();
    let to_port = imported.converted.report.to_port_names();
    assert!(!to_port.is_empty());
    assert_eq!(
        imported.verdict,
        Verdict::ValidExceptToolsToPort(to_port.clone()),
        "{}",
        imported.verdict
    );
    assert!(
        imported
            .verdict
            .to_string()
            .starts_with("The result validates except for the tools still to be ported: ")
    );
    let catalog = ported(&imported.converted);
    let loaded = load_workflow(&out, &catalog);
    let _ = std::fs::remove_dir_all(&scratch);
    let workflow = loaded.unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(workflow.name(), case);
}

#[test]
fn hello_world_validates_except_for_the_tools_to_port() {
    imports_and_validates("HelloWorld");
}

#[test]
fn design_docs_validates_except_for_the_tools_to_port() {
    imports_and_validates("DesignDocs");
}

#[test]
fn subscription_advisor_validates_as_it_is() {
    let scratch = std::env::temp_dir().join(format!("mozaiks-import-sa-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let out = scratch.join("SubscriptionAdvisor");
    let imported =
        import_mozaiksai(&fixtures().join("workflows/SubscriptionAdvisor"), &out).unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    assert_eq!(imported.verdict, Verdict::Valid, "{}", imported.verdict);
    assert_eq!(imported.verdict.to_string(), "The result validates.");
}

#[test]
fn agent_generator_validates_except_for_the_tools_to_port() {
    imports_and_validates("AgentGenerator");
}

#[test]
fn value_engine_validates_except_for_the_tools_to_port() {
    imports_and_validates("ValueEngine");
}

#[test]
fn the_output_folder_must_be_new_or_empty() {
    let scratch =
        std::env::temp_dir().join(format!("mozaiks-import-exists-{}", std::process::id()));
    let out = scratch.join("HelloWorld");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = import_mozaiksai(&fixtures().join("workflows/HelloWorld"), &out).unwrap_err();
    assert!(matches!(err, super::ImportError::OutputExists(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
