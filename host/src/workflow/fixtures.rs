//! Runs every workflow fixture under `tests/fixtures/workflows/<case>/`
//! (Spin runtime-tests style) against the real `planner` plugin: a valid
//! case has `expected.txt` (a summary of the model), an invalid one
//! `expected_error.txt` (every diagnostic, one per line). `MOZAIKS_BLESS=1`
//! rewrites them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mozaiks_plugin_host::{EngineConfig, Plugin, PluginEngine};

use super::load_workflow;
use super::model::{Target, Workflow};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures/workflows")
}

/// The plugins under `plugins/`, loaded once for all tests.
fn plugins() -> &'static HashMap<String, Plugin> {
    static PLUGINS: OnceLock<HashMap<String, Plugin>> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let engine = PluginEngine::new(EngineConfig::default()).unwrap();
            let (plugins, failures) =
                crate::plugin_dir::load_all(&engine, &repo_root().join("plugins"))
                    .await
                    .unwrap();
            let plugins: HashMap<String, Plugin> = plugins
                .into_iter()
                .map(|(_, plugin)| (plugin.id().to_owned(), plugin))
                .collect();
            assert!(
                plugins.contains_key("planner"),
                "the planner plugin did not load (run scripts/build-plugins): {failures:?}"
            );
            plugins
        })
    })
}

fn summary(w: &Workflow) -> String {
    let mut out = String::new();
    let target = |t: &Target| match t {
        Target::Agent(name) => name.clone(),
        Target::User => "user".to_owned(),
        Target::Terminate => "terminate".to_owned(),
    };
    let _ = writeln!(
        out,
        "workflow {}: {:?}, {:?}, max_turns {}, human_in_the_loop {}, initial_agent {}",
        w.name(),
        w.pattern(),
        w.startup_mode(),
        w.max_turns(),
        w.human_in_the_loop(),
        w.initial_agent()
    );
    if w.undeclared_context_writes() != crate::workflow::model::UndeclaredContextWrites::Allow {
        let _ = writeln!(
            out,
            "undeclared_context_writes {:?}",
            w.undeclared_context_writes()
        );
    }
    if !w.visual_agents().is_empty() {
        let _ = writeln!(out, "visual_agents [{}]", w.visual_agents().join(", "));
    }
    for a in w.agents() {
        let _ = writeln!(
            out,
            "agent {}: tools [{}], output {:?}, llm {:?}",
            a.name,
            a.tools.join(", "),
            a.structured_output,
            a.llm
        );
        if !a.context_variables.is_empty() || a.system_message.contains("{{") {
            let _ = writeln!(
                out,
                "  sees [{}], system_message {:?}",
                a.context_variables.join(", "),
                a.system_message
            );
        }
        for (text, t) in &a.handoffs.llm {
            let _ = writeln!(out, "  llm {text:?} -> {}", target(t));
        }
        for (c, t) in &a.handoffs.pre {
            let _ = writeln!(out, "  pre {c} -> {}", target(t));
        }
        for (c, t) in &a.handoffs.post {
            let _ = writeln!(out, "  post {c} -> {}", target(t));
        }
        if let Some(t) = &a.handoffs.after_work {
            let _ = writeln!(out, "  after_work -> {}", target(t));
        }
    }
    for t in w.tools() {
        let _ = writeln!(
            out,
            "tool {}: {}/{} {:?}",
            t.name, t.plugin, t.function, t.kind
        );
    }
    for l in &w.lifecycle_tools {
        let _ = writeln!(
            out,
            "lifecycle {} {}: {}/{} {:?} agents [{}]",
            l.trigger.as_str(),
            l.tool.name,
            l.tool.plugin,
            l.tool.function,
            l.tool.kind,
            l.agents.join(", ")
        );
    }
    for h in &w.hooks {
        let _ = writeln!(
            out,
            "hook {} {}: {}/{}",
            h.hook_type.as_str(),
            h.agent.as_deref().unwrap_or("all"),
            h.plugin,
            h.function
        );
    }
    for v in w.context_variables() {
        let _ = writeln!(out, "variable {}: {:?} {:?}", v.name, v.var_type, v.source);
    }
    for m in w.output_models() {
        let _ = writeln!(
            out,
            "output {}: auto_execute [{}]",
            m.name,
            m.auto_execute.join(", ")
        );
    }
    out
}

#[track_caller]
fn check(case: &str) {
    let dir = fixtures_dir().join(case);
    // The expected files are the test's, not the workflow's: no warning
    // about them.
    let listed = |diagnostics: &[super::Diagnostic]| -> String {
        diagnostics
            .iter()
            .filter(|d| {
                let name = d.file.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !(d.file.parent() == Some(&dir) && name.starts_with("expected"))
            })
            .map(|d| d.display_relative_to(&dir) + "\n")
            .collect()
    };
    let (file, actual) = match load_workflow(&dir, plugins()) {
        Ok(workflow) => (
            "expected.txt",
            summary(&workflow) + &listed(workflow.warnings()),
        ),
        Err(diagnostics) => ("expected_error.txt", listed(&diagnostics)),
    };
    let expected_path = dir.join(file);
    if std::env::var_os("MOZAIKS_BLESS").is_some() {
        let _ = std::fs::remove_file(dir.join("expected.txt"));
        let _ = std::fs::remove_file(dir.join("expected_error.txt"));
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
        panic!("{case}: no {file}; got:\n{actual}\n(run with MOZAIKS_BLESS=1 to write it)")
    });
    assert_eq!(actual, expected, "{case}: output differs from {file}");
}

const CASES: &[&str] = &[
    "valid_all_features",
    "syntax_error",
    "unknown_key",
    "wrong_type",
    "missing_required_file",
    "unknown_agent_in_handoff",
    "bad_condition",
    "undeclared_variable",
    "tool_plugin_missing",
    "tool_function_missing",
    "invalid_output_schema",
    "many_errors",
    "context_sources_and_triggers",
    "context_errors",
    "every_unknown_key",
    "yaml_errors",
    "unsatisfiable_output_schema",
    "unreachable_rules",
    "ag2_knobs_refused",
    "lifecycle_errors",
    "hooks_unknown_type",
    "valid_lifecycle_and_hooks",
    "database_source",
    "database_source_errors",
    "visual_agents_valid",
    "visual_agents_errors",
    "visual_agents_unknown_key",
];

#[test]
fn every_workflow_fixture_matches_its_expected_file() {
    for case in CASES {
        check(case);
    }
}

#[test]
fn every_fixture_folder_is_checked() {
    let mut folders: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut cases: Vec<String> = CASES.iter().map(|c| (*c).to_owned()).collect();
    cases.sort();
    assert_eq!(folders, cases, "add new fixture folders to CASES");
}

/// A plugin reload must keep the functions of lifecycle tools and hooks
/// too (`watch/plugin_reload.rs` asks `plugin_functions`).
#[test]
fn plugin_functions_lists_tools_lifecycle_tools_and_hooks() {
    let dir = fixtures_dir().join("valid_lifecycle_and_hooks");
    let workflow = load_workflow(&dir, plugins()).unwrap();
    let used: Vec<(String, String)> = workflow
        .plugin_functions()
        .map(|t| (t.name, t.function))
        .collect();
    assert_eq!(
        used,
        [
            ("add_task".to_owned(), "add_task".to_owned()),
            ("note_turn".to_owned(), "echo".to_owned()),
            ("echo".to_owned(), "echo".to_owned()),
        ]
    );
    let hook = workflow.plugin_functions().last().unwrap();
    assert_eq!(hook.parameters, serde_json::json!({"type": "object"}));
}

#[test]
fn the_demo_workflows_validate_against_the_real_plugins() {
    let root = repo_root().join("workflows");
    let mut count = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if let Err(diagnostics) = load_workflow(&dir, plugins()) {
            let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("{} is invalid:\n{}", dir.display(), text.join("\n"));
        }
        count += 1;
    }
    assert!(count >= 1, "no demo workflows in {}", root.display());
}

#[test]
fn the_version_changes_with_any_file_and_only_then() {
    let dir = fixtures_dir().join("valid_all_features");
    let a = load_workflow(&dir, plugins()).unwrap();
    let b = load_workflow(&dir, plugins()).unwrap();
    assert_eq!(a.version(), b.version());
    assert_eq!(a.cache_seed(), b.cache_seed());
    let copy = std::env::temp_dir().join(format!("mozaiks-version-{}", std::process::id()));
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    let orchestrator = copy.join("orchestrator.json");
    let text = std::fs::read_to_string(&orchestrator).unwrap();
    std::fs::write(
        &orchestrator,
        text.replace("\"max_turns\": 12", "\"max_turns\": 13"),
    )
    .unwrap();
    let c = load_workflow(&copy, plugins()).unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
    assert_ne!(a.version(), c.version());
}

#[test]
fn the_registry_lists_invalid_folders_with_their_problems_and_keeps_old_snapshots() {
    use super::registry::{Entry, WorkflowRegistry};

    let registry = WorkflowRegistry::load_dir(&repo_root().join("workflows"), plugins()).unwrap();
    let before = registry.snapshot();
    let demo = registry.get("PlanReview").expect("PlanReview is valid");
    assert_eq!(demo.initial_agent(), "Planner");

    // A folder whose workflow_name differs from its name is listed as invalid.
    let entry = registry
        .reload(&fixtures_dir().join("valid_all_features"), plugins())
        .entry;
    let Entry::Invalid { diagnostics, .. } = entry else {
        panic!("expected the name mismatch to be reported");
    };
    assert_eq!(
        diagnostics[0].display_relative_to(&fixtures_dir().join("valid_all_features")),
        "orchestrator.json: $.workflow_name: workflow_name \"MiniReview\" differs from the folder name \"valid_all_features\" (help: rename one of them)"
    );
    let entry = registry
        .reload(&fixtures_dir().join("many_errors"), plugins())
        .entry;
    assert!(
        matches!(entry, Entry::Invalid { ref diagnostics, .. } if diagnostics.iter().filter(|d| d.is_error()).count() == 15)
    );
    assert!(registry.get("many_errors").is_none());
    assert_eq!(registry.snapshot().len(), before.len() + 2);
    assert!(
        !before.contains_key("many_errors"),
        "old snapshots do not change"
    );

    registry.remove("many_errors");
    assert!(!registry.snapshot().contains_key("many_errors"));
}

#[test]
fn a_folder_that_breaks_keeps_serving_its_last_good_version_until_fixed() {
    use super::registry::{Entry, WorkflowRegistry};

    let root = std::env::temp_dir().join(format!("mozaiks-last-good-{}", std::process::id()));
    let dir = root.join("PlanReview");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).unwrap();
    for file in std::fs::read_dir(repo_root().join("workflows/PlanReview")).unwrap() {
        let file = file.unwrap().path();
        if file.is_file() {
            std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
        }
    }
    let registry = WorkflowRegistry::load_dir(&root, plugins()).unwrap();
    let good = registry.get("PlanReview").unwrap();

    let agents = std::fs::read_to_string(dir.join("agents.json")).unwrap();
    std::fs::write(dir.join("agents.json"), &agents[..agents.len() / 2]).unwrap();
    let broken = registry.reload(&dir, plugins());
    assert!(broken.changed);
    let Entry::Invalid {
        diagnostics,
        last_good,
        ..
    } = &broken.entry
    else {
        panic!("a truncated agents.json is invalid");
    };
    assert!(
        diagnostics[0].to_string().contains("agents.json"),
        "{diagnostics:?}"
    );
    assert_eq!(last_good.as_ref().unwrap().version(), good.version());
    assert_eq!(
        registry.get("PlanReview").unwrap().version(),
        good.version()
    );
    assert!(
        !registry.reload(&dir, plugins()).changed,
        "the same problems again are not a change"
    );

    std::fs::write(dir.join("agents.json"), &agents).unwrap();
    let fixed = registry.reload(&dir, plugins());
    assert!(fixed.changed);
    assert!(matches!(fixed.entry, Entry::Valid(_)));
    let _ = std::fs::remove_dir_all(&root);
}

/// Copies the fixture `case` (with its subfolders) to a fresh temporary
/// folder named after `tag`.
fn copy_fixture(case: &str, tag: &str) -> std::path::PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("mozaiks-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy(&fixtures_dir().join(case), &dir);
    dir
}

#[test]
fn a_file_source_is_part_of_the_version_and_stays_inside_the_folder() {
    let dir = copy_fixture("context_sources_and_triggers", "file-source");
    let before = load_workflow(&dir, plugins()).unwrap();
    std::fs::write(dir.join("data/limits.json"), r#"{"max_tasks": 6}"#).unwrap();
    let after = load_workflow(&dir, plugins()).unwrap();
    assert_ne!(before.version(), after.version(), "the data file counts");

    // A link that leads outside the folder is refused, however it is named.
    let outside = dir.with_extension("outside.json");
    std::fs::write(&outside, r#"{"secret": 1}"#).unwrap();
    std::fs::remove_file(dir.join("data/limits.json")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("data/limits.json")).unwrap();
    let errors = load_workflow(&dir, plugins()).unwrap_err();
    // The copied fixture's expected.txt is warned about as unread: errors only.
    let text: Vec<String> = errors
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.display_relative_to(&dir))
        .collect();
    assert_eq!(
        text,
        [
            "context_variables.json: $.definitions[0].source.path: \"data/limits.json\" leads outside the workflow folder (help: copy the file into the folder instead of linking it)"
        ]
    );

    // Invalid JSON names the data file's line and column.
    std::fs::remove_file(dir.join("data/limits.json")).unwrap();
    std::fs::write(dir.join("data/limits.json"), "{\n  \"max_tasks\": }").unwrap();
    let errors = load_workflow(&dir, plugins()).unwrap_err();
    assert_eq!(
        errors[0].message, "data/limits.json:2:16: expected value",
        "{errors:?}"
    );

    // More than 1 MiB is refused.
    std::fs::remove_file(dir.join("data/limits.json")).unwrap();
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024));
    std::fs::write(dir.join("data/limits.json"), big).unwrap();
    let errors = load_workflow(&dir, plugins()).unwrap_err();
    assert!(
        errors[0]
            .message
            .contains("a file source holds at most 1048576"),
        "{errors:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&outside).unwrap();
}
