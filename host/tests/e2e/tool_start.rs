//! What starting a tool's instance costs, and what the Python helper does to
//! keep it small: `tool describe` shows the memory and time one instance
//! took to start at load and warns when they exceed the default memory or
//! the deadline (doctor's side is in `doctor.rs`); a Python tool's calls
//! start from a frozen heap with the cyclic collector off
//! (`sdk/python/mozaiks_tool.py`, docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::json;

use crate::cli::{assert_exit, mozaiks, stdout_json};
use crate::languages::built_python_sample;

/// A copy of the built Python sample named `id`, with the same component
/// (renamed to `<id>.wasm`) and `limits` appended to its plugin.toml.
pub(crate) fn python_sample_with_limits(id: &str, limits: &str) -> Option<PathBuf> {
    let sample = built_python_sample()?;
    let dir = sample.with_file_name(id);
    let _ = std::fs::remove_dir_all(&dir);
    let copy = Command::new("cp")
        .arg("-r")
        .arg(sample)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(copy.success());
    let sample_id = sample.file_name().unwrap().to_str().unwrap();
    std::fs::rename(
        dir.join(format!("{sample_id}.wasm")),
        dir.join(format!("{id}.wasm")),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(dir.join("plugin.toml"))
        .unwrap()
        .replace(&format!("id = \"{sample_id}\""), &format!("id = \"{id}\""));
    std::fs::write(
        dir.join("plugin.toml"),
        format!("{manifest}\n[limits]\n{limits}\n"),
    )
    .unwrap();
    Some(dir)
}

fn describe_json(dir: &Path) -> std::process::Output {
    mozaiks(&["tool", "describe", dir.to_str().unwrap(), "--json"])
}

#[test]
fn describe_shows_what_an_instance_took_to_start_and_no_warning_within_the_defaults() {
    let Some(sample) = built_python_sample() else {
        return;
    };
    let described = describe_json(sample);
    assert_exit(&described, 0);
    let report = stdout_json(&described);
    let mib = report["start"]["memory_mib"].as_u64().unwrap();
    // CPython and its heap: about 13 MiB (docs/benchmarks.md).
    assert!((8..=64).contains(&mib), "{report:#}");
    assert!(report["start"]["ms"].as_u64().is_some(), "{report:#}");
    assert_eq!(report["warnings"], json!([]), "{report:#}");

    let text = mozaiks(&["tool", "describe", sample.to_str().unwrap()]);
    assert_exit(&text, 0);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(&format!("start: an instance took {mib} MiB and ")),
        "{stdout}"
    );
    assert!(!String::from_utf8_lossy(&text.stderr).contains("warning"));
}

#[test]
fn describe_warns_when_an_instance_takes_longer_than_the_deadline_to_start() {
    let Some(dir) = python_sample_with_limits("slowstart", "deadline_ms = 1") else {
        return;
    };
    let described = describe_json(&dir);
    assert_exit(&described, 0);
    let report = stdout_json(&described);
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report:#}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("more than the 1 ms deadline of a call")
            && warning.contains("raise `deadline_ms`"),
        "{warning}"
    );
    let stderr = String::from_utf8_lossy(&described.stderr);
    assert!(
        stderr.contains("warning: plugin `slowstart`: starting an instance took"),
        "{stderr}"
    );
}

/// A Python tool whose function reports the collector's state.
fn gc_probe() -> Option<&'static PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = python_sample_with_limits("gcprobe", "")?;
            std::fs::remove_file(dir.join("gcprobe.wasm")).unwrap();
            std::fs::write(
                dir.join("app.py"),
                r#"import gc
from mozaiks_tool import Toolbox
toolbox = Toolbox()

@toolbox.function("gc_state", "Says how the cyclic collector is set.", {"type": "object"})
def gc_state(args, call):
    return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}

Tool = toolbox.export()
"#,
            )
            .unwrap();
            let build = mozaiks(&["tool", "build", dir.to_str().unwrap()]);
            assert_exit(&build, 0);
            Some(dir)
        })
        .as_ref()
}

#[test]
fn a_python_tools_calls_start_from_a_frozen_heap_with_the_cyclic_collector_off() {
    let Some(dir) = gc_probe() else {
        return;
    };
    for _ in 0..2 {
        let out = mozaiks(&[
            "tool",
            "call",
            dir.to_str().unwrap(),
            "gc_state",
            "--args",
            "{}",
        ]);
        assert_exit(&out, 0);
        let result = &stdout_json(&out)["result"]["ok"];
        assert_eq!(result["enabled"], false, "{result}");
        // Everything the build made: the interpreter's modules, the
        // helper, the app. Thousands of objects.
        let frozen = result["frozen"].as_u64().unwrap();
        assert!(frozen > 1_000, "{result}");
    }
}
