//! Shared setup: the repository paths, a process-wide engine and the two
//! components, compiled once per test binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mozaiks_plugin_host::harness::{CallReport, Harness};
use mozaiks_plugin_host::{CallError, EngineConfig, Manifest, Plugin, PluginEngine, ToolOutcome};
use serde_json::Value;

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub(crate) fn planner_dir() -> PathBuf {
    repo_root().join("plugins/planner")
}

pub(crate) fn adversary_dir() -> PathBuf {
    repo_root().join("tests/components/adversary")
}

/// Fails with the fix when the components have not been built.
fn require_built(dir: &Path, id: &str) {
    let wasm = dir.join(format!("{id}.wasm"));
    assert!(
        wasm.is_file(),
        "{} is missing: build the test components with scripts/build-plugins (the README's test command does this)",
        wasm.display()
    );
}

pub(crate) fn engine() -> PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE
        .get_or_init(|| PluginEngine::new(EngineConfig::default()).unwrap())
        .clone()
}

/// Loads outside the caller's runtime, so a plugin can be shared by tests
/// that each run their own runtime.
fn load_shared(dir: PathBuf, id: &'static str) -> Plugin {
    require_built(&dir, id);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(engine().load_dir(&dir)).unwrap()
    })
    .join()
    .unwrap()
}

pub(crate) fn planner() -> Plugin {
    static PLANNER: OnceLock<Plugin> = OnceLock::new();
    PLANNER
        .get_or_init(|| load_shared(planner_dir(), "planner"))
        .clone()
}

pub(crate) fn adversary() -> Plugin {
    static ADVERSARY: OnceLock<Plugin> = OnceLock::new();
    ADVERSARY
        .get_or_init(|| load_shared(adversary_dir(), "adversary"))
        .clone()
}

/// Loads the adversary component under a manifest written by the test.
pub(crate) async fn adversary_with(manifest: Manifest, base_dir: &Path) -> Plugin {
    require_built(&adversary_dir(), "adversary");
    engine()
        .load(
            manifest,
            base_dir.join("plugin.toml"),
            &adversary_dir().join("adversary.wasm"),
        )
        .await
        .unwrap()
}

pub(crate) async fn call(plugin: &Plugin, function: &str, args: Value) -> CallReport {
    Harness::new().call(plugin, function, &args).await
}

#[track_caller]
pub(crate) fn ok(report: &CallReport) -> &Value {
    match &report.result {
        Ok(Ok(value)) => value,
        other => panic!("expected a result, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn call_error(result: &Result<ToolOutcome, CallError>) -> &CallError {
    match result {
        Err(e) => e,
        other => panic!("expected a call error, got {other:?}"),
    }
}

/// The host is still healthy: a plain call right after succeeds.
pub(crate) async fn assert_host_alive(plugin: &Plugin) {
    let report = call(plugin, "counter", serde_json::json!({})).await;
    assert_eq!(
        ok(&report)["count"],
        1,
        "the next call must run in a fresh, working instance"
    );
}
