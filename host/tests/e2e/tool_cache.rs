//! `mozaiks tool describe` and `tool call` keep compiled components in a
//! cache, so a second run of an unchanged component does not compile it again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::cli::{assert_exit, repo_root, stdout_json};

/// A plugin folder `<tmp>/template` holding a copy of the built SDK
/// template, and an empty cache directory beside it.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("mozaiks-tool-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let plugin = root.join("template");
        std::fs::create_dir_all(&plugin).unwrap();
        let template = repo_root().join("sdk/template");
        assert!(
            template.join("template.wasm").is_file(),
            "sdk/template is built by scripts/build-plugins"
        );
        for file in ["plugin.toml", "template.wasm"] {
            std::fs::copy(template.join(file), plugin.join(file)).unwrap();
        }
        Self { root }
    }
    fn plugin(&self) -> PathBuf {
        self.root.join("template")
    }
    fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    /// The cache's entries (compiled components).
    fn entries(&self) -> Vec<PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(self.cache())
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        entries.sort();
        entries
    }
    /// Runs `mozaiks tool <args>` with this cache, from the repository root.
    fn tool(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mozaiks"))
            .arg("tool")
            .args(args)
            .env("MOZAIKS_COMPONENT_CACHE", self.cache())
            .env_remove("MOZAIKS_NO_COMPONENT_CACHE")
            .current_dir(repo_root())
            .output()
            .unwrap()
    }
    fn describe(&self) -> (Value, String) {
        let out = self.tool(&["describe", path(&self.plugin()), "--json"]);
        assert_exit(&out, 0);
        (
            stdout_json(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_second_describe_loads_the_compiled_code_instead_of_compiling() {
    let scratch = Scratch::new("describe");
    let (first, stderr) = scratch.describe();
    assert_eq!(first["compiled_code"], "compiled");
    assert!(
        stderr.contains("compiled template in") && stderr.contains(path(&scratch.cache())),
        "the first run says it compiled and where the code is kept: {stderr}"
    );
    let entries = scratch.entries();
    assert_eq!(entries.len(), 1, "one compiled component: {entries:?}");
    let hash = first["hash"].as_str().unwrap();
    let entry_name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        entry_name.starts_with(hash),
        "{entry_name} is named by {hash}"
    );
    let written = std::fs::read(&entries[0]).unwrap();
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&entries[0]).unwrap());

    let (second, stderr) = scratch.describe();
    assert_eq!(second["compiled_code"], "cached");
    assert!(!stderr.contains("compiled template"), "{stderr}");
    assert_eq!(second["functions"], first["functions"]);
    assert_eq!(scratch.entries(), entries, "no new entry");
    // Read, not rewritten (a rewrite is a new file renamed over it); the
    // hit only marks it as used, its modification time.
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&entries[0]).unwrap()),
        inode,
        "the entry was replaced"
    );
    assert!(
        std::fs::read(&entries[0]).unwrap() == written,
        "the entry's bytes changed"
    );
}

/// Each run prunes the shared cache as the server does: the entry of the
/// tool it loaded stays, an entry of another engine beyond the budget goes.
#[test]
fn a_run_keeps_its_own_entry_and_removes_others_beyond_the_budget() {
    let scratch = Scratch::new("prune");
    scratch.describe();
    let entries = scratch.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    // Sparse: as large as the budget says, without using the disk.
    let other_engine = scratch
        .cache()
        .join(format!("{}-0123456789abcdef.cwasm", "ab".repeat(32)));
    std::fs::File::create(&other_engine)
        .unwrap()
        .set_len(mozaiks_plugin_host::UNUSED_ENTRIES_BUDGET_BYTES + 1)
        .unwrap();

    let (again, _) = scratch.describe();

    assert_eq!(again["compiled_code"], "cached");
    assert_eq!(
        scratch.entries(),
        entries,
        "only the other engine's entry went"
    );
}

#[test]
fn a_call_uses_the_entry_a_describe_left() {
    let scratch = Scratch::new("call");
    let (described, _) = scratch.describe();
    assert_eq!(described["compiled_code"], "compiled");
    let call = scratch.tool(&[
        "call",
        path(&scratch.plugin()),
        "greet",
        "--args",
        r#"{"name":"Ada"}"#,
    ]);
    assert_exit(&call, 0);
    let stderr = String::from_utf8_lossy(&call.stderr);
    assert!(!stderr.contains("compiled template"), "{stderr}");
    assert_eq!(stdout_json(&call)["result"]["ok"]["message"], "Hello, Ada!");
    assert_eq!(scratch.entries().len(), 1);
}

#[test]
fn a_changed_component_is_compiled_again() {
    let scratch = Scratch::new("changed");
    let (before, _) = scratch.describe();
    // Another valid component under the same name: the planner's.
    std::fs::copy(
        repo_root().join("plugins/planner/planner.wasm"),
        scratch.plugin().join("template.wasm"),
    )
    .unwrap();
    let (after, _) = scratch.describe();
    assert_eq!(after["compiled_code"], "compiled");
    assert_ne!(after["hash"], before["hash"]);
    assert!(
        after["functions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "request_approval"),
        "the new component's functions: {after}"
    );
    assert_eq!(scratch.entries().len(), 2, "one entry per component");
}

#[test]
fn no_component_cache_compiles_every_time_and_writes_nothing() {
    let scratch = Scratch::new("off");
    for _ in 0..2 {
        let out = scratch.tool(&[
            "describe",
            path(&scratch.plugin()),
            "--json",
            "--no-component-cache",
        ]);
        assert_exit(&out, 0);
        assert_eq!(stdout_json(&out)["compiled_code"], "disabled");
    }
    assert!(!scratch.cache().exists());
}

#[test]
fn the_cache_is_in_the_users_cache_folder_by_default() {
    let scratch = Scratch::new("default-dir");
    let describe = |envs: &[(&str, PathBuf)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mozaiks"));
        command
            .args(["tool", "describe", path(&scratch.plugin()), "--json"])
            .env_remove("MOZAIKS_COMPONENT_CACHE")
            .env_remove("MOZAIKS_NO_COMPONENT_CACHE")
            .env_remove("XDG_CACHE_HOME")
            .current_dir(repo_root());
        for (name, value) in envs {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        assert_exit(&out, 0);
        stdout_json(&out)
    };
    let xdg = scratch.root.join("xdg");
    assert_eq!(
        describe(&[("XDG_CACHE_HOME", xdg.clone())])["compiled_code"],
        "compiled"
    );
    assert_eq!(
        std::fs::read_dir(xdg.join("mozaiks/component-cache"))
            .unwrap()
            .count(),
        1
    );
    let home = scratch.root.join("home");
    assert_eq!(
        describe(&[("HOME", home.clone())])["compiled_code"],
        "compiled"
    );
    assert_eq!(
        describe(&[("HOME", home.clone())])["compiled_code"],
        "cached"
    );
    assert!(home.join(".cache/mozaiks/component-cache").is_dir());
}
