//! Loading rejects what is not a usable plugin, saying which file and why.

use mozaiks_plugin_host::{LoadError, Manifest};

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
