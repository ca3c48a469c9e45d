//! What a manifest grants, the guest gets; and nothing more.

use mozaiks_plugin_host::{CallError, DirGrant, DirMode, Manifest};
use serde_json::json;

use crate::support::{adversary_with, call, call_error, ok};

fn manifest() -> Manifest {
    let mut m = Manifest::new("adversary");
    m.limits.deadline_ms = 2000;
    m
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mozaiks-grants-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

#[tokio::test]
async fn a_read_only_directory_can_be_read_but_not_written() {
    let base = temp_dir("ro");
    std::fs::write(base.join("data/note.txt"), "granted").unwrap();
    let mut m = manifest();
    m.capabilities.fs.push(DirGrant {
        host: "data".into(),
        guest: "/data".into(),
        mode: DirMode::ReadOnly,
    });
    let plugin = adversary_with(m, &base).await;

    let read = call(&plugin, "read_file", json!({"path": "/data/note.txt"})).await;
    assert_eq!(ok(&read)["contents"], "granted");
    let write = call(
        &plugin,
        "write_file",
        json!({"path": "/data/new.txt", "contents": "x"}),
    )
    .await;
    assert!(
        write.result.is_err() || matches!(write.result, Ok(Err(_))),
        "{:?}",
        write.result
    );
    assert!(
        !base.join("data/new.txt").exists(),
        "a read-only grant must not allow writes"
    );
    let outside = call(
        &plugin,
        "read_file",
        json!({"path": "/data/../../etc/passwd"}),
    )
    .await;
    assert!(
        matches!(
            call_error(&outside.result),
            CallError::CapabilityDenied { .. }
        ),
        "{:?}",
        outside.result
    );
}

#[tokio::test]
async fn a_read_write_directory_can_be_written() {
    let base = temp_dir("rw");
    let mut m = manifest();
    m.capabilities.fs.push(DirGrant {
        host: base.join("data"),
        guest: "/out".into(),
        mode: DirMode::ReadWrite,
    });
    let plugin = adversary_with(m, &base).await;
    let write = call(
        &plugin,
        "write_file",
        json!({"path": "/out/result.txt", "contents": "written"}),
    )
    .await;
    assert_eq!(ok(&write)["written"], 7);
    assert_eq!(
        std::fs::read_to_string(base.join("data/result.txt")).unwrap(),
        "written"
    );
}

#[tokio::test]
async fn a_granted_environment_variable_is_visible_and_others_are_not() {
    let base = temp_dir("env");
    let mut m = manifest();
    m.capabilities.env.push("PATH".into());
    let plugin = adversary_with(m, &base).await;
    let path = call(&plugin, "read_env", json!({"name": "PATH"})).await;
    assert_eq!(ok(&path)["value"], std::env::var("PATH").unwrap());
    let home = call(&plugin, "read_env", json!({"name": "HOME"})).await;
    assert_eq!(ok(&home)["value"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_granted_destination_can_be_reached_and_no_other() {
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = temp_dir("net");
    let mut m = manifest();
    m.capabilities
        .net
        .push(allowed.local_addr().unwrap().to_string());
    let plugin = adversary_with(m, &base).await;

    let reached = call(
        &plugin,
        "connect",
        json!({"addr": allowed.local_addr().unwrap().to_string()}),
    )
    .await;
    assert_eq!(ok(&reached)["connected"], true);
    allowed.set_nonblocking(true).unwrap();
    assert!(
        allowed.accept().is_ok(),
        "the granted listener saw the connection"
    );

    let denied = call(
        &plugin,
        "connect",
        json!({"addr": other.local_addr().unwrap().to_string()}),
    )
    .await;
    assert!(
        matches!(
            call_error(&denied.result),
            CallError::CapabilityDenied { .. }
        ),
        "{:?}",
        denied.result
    );
}

#[tokio::test]
async fn a_grant_of_a_missing_directory_fails_at_load_naming_it() {
    let base = temp_dir("missing");
    let mut m = manifest();
    m.capabilities.fs.push(DirGrant {
        host: "nope".into(),
        guest: "/nope".into(),
        mode: DirMode::ReadOnly,
    });
    let err = crate::support::engine()
        .load(
            m,
            base.join("plugin.toml"),
            &crate::support::adversary_dir().join("adversary.wasm"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
