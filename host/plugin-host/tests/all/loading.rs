//! Loading rejects what is not a usable plugin, saying which file and why.

use mozaiks_plugin_host::{
    ChildCompiler, CompileLimits, Compiler, EngineConfig, LoadError, Manifest, PluginEngine,
};

use crate::support::engine;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mozaiks-loading-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_malformed_manifest_names_the_file_and_the_key() {
    let dir = scratch("manifest");
    std::fs::write(
        dir.join("plugin.toml"),
        "id = \"x\"\nversion = \"1\"\nmemory = 5\n",
    )
    .unwrap();
    let err = engine().load_dir(&dir).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LoadError::Manifest(_)), "{err:?}");
    assert!(
        text.contains("plugin.toml") && text.contains("memory"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_component_names_the_path() {
    let dir = scratch("missing");
    std::fs::write(dir.join("plugin.toml"), "id = \"ghost\"\nversion = \"1\"\n").unwrap();
    let err = engine().load_dir(&dir).await.unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("ghost.wasm"), "{err}");
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_a_compile_error() {
    let dir = scratch("garbage");
    for (name, bytes) in [
        ("garbage", b"definitely not wasm".to_vec()),
        // A valid but empty core module: wasm, yet not a component.
        ("core", b"\0asm\x01\0\0\0".to_vec()),
    ] {
        let err = engine()
            .load_bytes(
                Manifest::new(name),
                dir.join("plugin.toml"),
                dir.join(format!("{name}.wasm")),
                bytes,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, LoadError::Compile { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(&format!("{name}.wasm")), "{err}");
    }
}

#[tokio::test]
async fn a_component_that_exports_no_tool_interface_is_refused() {
    // The smallest valid component: it neither imports nor exports anything.
    let dir = scratch("empty");
    let err = engine()
        .load_bytes(
            Manifest::new("empty"),
            dir.join("plugin.toml"),
            dir.join("empty.wasm"),
            b"\0asm\x0d\0\x01\0".to_vec(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::World { .. }), "{err:?}");
    assert!(err.to_string().contains("mozaiks:plugin"), "{err}");
}

#[tokio::test]
async fn a_compiled_component_is_reused_from_the_cache_and_a_bad_entry_is_replaced() {
    use mozaiks_plugin_host::{CacheOutcome, EngineConfig, PluginEngine};

    let cache_dir = scratch("cache").join("components");
    let cached_engine = || {
        PluginEngine::new(EngineConfig {
            max_concurrent_calls: 4,
            cache_dir: Some(cache_dir.clone()),
            ..EngineConfig::default()
        })
        .unwrap()
    };
    let planner = crate::support::planner_dir();

    let first = cached_engine().load_dir(&planner).await.unwrap();
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    let entries: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert!(
        entry
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(first.hash()),
        "the entry is named by the component's hash: {entry:?}"
    );

    // A new engine (a restart) loads it without compiling, and it works.
    let second = cached_engine().load_dir(&planner).await.unwrap();
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(second.hash(), first.hash());
    let report = crate::support::call(&second, "echo", serde_json::json!({"x": 1})).await;
    crate::support::ok(&report);

    // A corrupt entry is refused, compiled again and replaced.
    std::fs::write(entry, b"not native code").unwrap();
    let third = cached_engine().load_dir(&planner).await.unwrap();
    assert_eq!(third.cache_outcome(), CacheOutcome::Miss);
    let fourth = cached_engine().load_dir(&planner).await.unwrap();
    assert_eq!(fourth.cache_outcome(), CacheOutcome::Hit);
}

#[cfg(unix)]
#[tokio::test]
async fn a_cache_directory_others_can_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;

    use mozaiks_plugin_host::{CacheOutcome, EngineConfig, PluginEngine};

    let cache_dir = scratch("cache-open").join("components");
    let engine = || {
        PluginEngine::new(EngineConfig {
            max_concurrent_calls: 4,
            cache_dir: Some(cache_dir.clone()),
            ..EngineConfig::default()
        })
        .unwrap()
    };
    let planner = crate::support::planner_dir();
    engine().load_dir(&planner).await.unwrap();
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let reloaded = engine().load_dir(&planner).await.unwrap();
    assert_eq!(reloaded.cache_outcome(), CacheOutcome::Miss);
}

#[test]
fn a_component_cut_short_is_told_from_a_complete_or_foreign_file() {
    let bytes = std::fs::read(crate::support::planner_dir().join("planner.wasm")).unwrap();
    assert!(!mozaiks_plugin_host::is_truncated(&bytes));
    for cut in [0, 3, 8, 100, bytes.len() / 3, bytes.len() - 1] {
        assert!(
            mozaiks_plugin_host::is_truncated(&bytes[..cut]),
            "cut at {cut} of {}",
            bytes.len()
        );
    }
    assert!(!mozaiks_plugin_host::is_truncated(b"not wasm at all"));
}

/// `describe()` (and the instantiation before it) runs under the host's own
/// budget, not the deadline the manifest asks for (here the longest allowed,
/// 600 s): a component that never describes itself fails to load promptly.
#[tokio::test]
async fn a_describe_that_never_returns_fails_within_the_hosts_budget() {
    let dir = crate::support::repo_root().join("tests/components/slow-describe");
    assert!(
        dir.join("slow-describe.wasm").is_file(),
        "build the test components with scripts/build-plugins"
    );
    // A bound for the test only (the fault is the wait, not its length).
    let loaded = tokio::time::timeout(std::time::Duration::from_secs(60), engine().load_dir(&dir))
        .await
        .expect("loading must not wait out the manifest's 600 s deadline");
    let err = loaded.unwrap_err();
    assert!(matches!(err, LoadError::Describe { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(
            &mozaiks_plugin_host::DESCRIBE_DEADLINE
                .as_millis()
                .to_string()
        ) && text.contains("describe"),
        "{text}"
    );
}

/// Loads `big-describe` with `/config/mode` saying how to be too large.
async fn big_describe(mode: &str) -> Result<mozaiks_plugin_host::Plugin, LoadError> {
    use mozaiks_plugin_host::{DirGrant, DirMode};
    let dir = scratch(&format!("big-describe-{mode}"));
    std::fs::write(dir.join("mode"), mode).unwrap();
    let mut m = Manifest::new("big-describe");
    m.capabilities.fs.push(DirGrant {
        host: dir.clone(),
        guest: "/config".into(),
        mode: DirMode::ReadOnly,
    });
    let component = crate::support::repo_root().join("tests/components/big-describe");
    assert!(
        component.join("big-describe.wasm").is_file(),
        "build the test components with scripts/build-plugins"
    );
    engine()
        .load(
            m,
            dir.join("plugin.toml"),
            &component.join("big-describe.wasm"),
        )
        .await
}

/// What `describe()` returns goes into every prompt: the number of
/// functions, each description and each schema are bounded.
#[tokio::test]
async fn an_oversized_description_of_the_functions_is_refused_naming_the_limit() {
    use mozaiks_plugin_host::{
        MAX_DESCRIPTION_BYTES, MAX_FUNCTIONS_PER_PLUGIN, MAX_PARAMETERS_BYTES,
    };
    big_describe("small").await.unwrap();
    for (mode, limit) in [
        ("functions", MAX_FUNCTIONS_PER_PLUGIN),
        ("description", MAX_DESCRIPTION_BYTES),
        ("schema", MAX_PARAMETERS_BYTES),
    ] {
        let err = big_describe(mode).await.unwrap_err();
        assert!(matches!(err, LoadError::Describe { .. }), "{mode}: {err:?}");
        assert!(
            err.to_string().contains(&limit.to_string()),
            "{mode}: {err}"
        );
    }
}

/// A compiler process that cannot be started is the host's failure, and the
/// error says so instead of blaming the component (which is valid here).
#[tokio::test]
async fn a_compiler_that_cannot_start_is_not_reported_as_an_invalid_component() {
    let dir = scratch("no-compiler");
    let missing = dir.join("no-such-compiler");
    let engine = PluginEngine::new(EngineConfig {
        compiler: Compiler::Child(ChildCompiler {
            program: missing.clone(),
            args: Vec::new(),
            limits: CompileLimits::default(),
        }),
        ..EngineConfig::default()
    })
    .unwrap();
    // The smallest valid component: one empty core module.
    let mut component = wasm_encoder::Component::new();
    component.section(&wasm_encoder::ModuleSection(&wasm_encoder::Module::new()));
    let err = engine
        .load_bytes(
            Manifest::new("fine"),
            dir.join("plugin.toml"),
            dir.join("fine.wasm"),
            component.finish(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LoadError::Compiler { .. }), "{err:?}");
    assert!(
        text.contains("fine.wasm")
            && text.contains("cannot start the compiler")
            && text.contains(&missing.display().to_string())
            && !text.contains("not a valid component"),
        "{text}"
    );
}
