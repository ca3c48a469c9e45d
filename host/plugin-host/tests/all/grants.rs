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

fn grant(host: impl Into<std::path::PathBuf>, guest: &str, mode: DirMode) -> DirGrant {
    DirGrant {
        host: host.into(),
        guest: guest.into(),
        mode,
    }
}

/// Enough `..` to climb from any temporary folder to `/`.
const CLIMB_TO_ETC: &str = "../../../../../../../../../../../../etc";

fn assert_not_passwd(report: &mozaiks_plugin_host::harness::CallReport) {
    if let Ok(Ok(value)) = &report.result {
        let contents = value["contents"].as_str().unwrap_or_default();
        assert!(
            !contents.contains("root:"),
            "the guest read the host's /etc/passwd: {contents:.80}"
        );
    }
}

#[tokio::test]
async fn nested_grants_in_one_manifest_are_refused_at_load_naming_both() {
    let base = temp_dir("nested");
    std::fs::create_dir_all(base.join("data/inner")).unwrap();
    let mut m = manifest();
    m.capabilities
        .fs
        .push(grant("data", "/out", DirMode::ReadWrite));
    m.capabilities
        .fs
        .push(grant("data/inner", "/inner", DirMode::ReadOnly));
    let err = crate::support::engine()
        .load(
            m,
            base.join("plugin.toml"),
            &crate::support::adversary_dir().join("adversary.wasm"),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("overlap") && text.contains("/out") && text.contains("/inner"),
        "{text}"
    );

    // The same directory granted twice overlaps too, and so does a parent
    // written after its child.
    for grants in [
        [("data", "/a"), ("data", "/b")],
        [("data/inner", "/a"), ("data", "/b")],
        [("data/inner", "/a"), ("./data/../data", "/b")],
    ] {
        let mut m = manifest();
        for (host, guest) in grants {
            m.capabilities
                .fs
                .push(grant(host, guest, DirMode::ReadOnly));
        }
        let err = crate::support::engine()
            .load(
                m,
                base.join("plugin.toml"),
                &crate::support::adversary_dir().join("adversary.wasm"),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("overlap"), "{grants:?}: {err}");
    }
}

#[tokio::test]
async fn sibling_grants_in_one_manifest_load_and_stay_apart() {
    let base = temp_dir("siblings");
    std::fs::create_dir_all(base.join("other")).unwrap();
    std::fs::write(base.join("other/note.txt"), "other").unwrap();
    let mut m = manifest();
    m.capabilities
        .fs
        .push(grant("data", "/out", DirMode::ReadWrite));
    m.capabilities
        .fs
        .push(grant("other", "/other", DirMode::ReadOnly));
    let plugin = adversary_with(m, &base).await;

    // A link from the writable grant to its read-only sibling does not
    // lend the sibling's files write access, nor any reach at all.
    let link = call(
        &plugin,
        "symlink",
        json!({"target": "../other", "link": "/out/other"}),
    )
    .await;
    assert_eq!(ok(&link)["linked"], true);
    let through = call(&plugin, "read_file", json!({"path": "/out/other/note.txt"})).await;
    assert!(
        !matches!(through.result, Ok(Ok(_))),
        "a link climbing out of a grant must not be followed: {:?}",
        through.result
    );
    let write = call(
        &plugin,
        "write_file",
        json!({"path": "/out/other/note.txt", "contents": "x"}),
    )
    .await;
    assert!(!matches!(write.result, Ok(Ok(_))), "{:?}", write.result);
    assert_eq!(
        std::fs::read_to_string(base.join("other/note.txt")).unwrap(),
        "other"
    );
}

#[tokio::test]
async fn a_link_climbing_out_of_a_writable_grant_is_not_followed() {
    let base = temp_dir("climb");
    let mut m = manifest();
    m.capabilities
        .fs
        .push(grant("data", "/out", DirMode::ReadWrite));
    let plugin = adversary_with(m, &base).await;
    let link = call(
        &plugin,
        "symlink",
        json!({"target": CLIMB_TO_ETC, "link": "/out/etc"}),
    )
    .await;
    assert_eq!(ok(&link)["linked"], true);
    for _ in 0..2 {
        let read = call(&plugin, "read_file", json!({"path": "/out/etc/passwd"})).await;
        assert_not_passwd(&read);
        assert!(!matches!(read.result, Ok(Ok(_))), "{:?}", read.result);
    }
}

/// Plugin `writer` may write `data`; plugin `reader` may read `data/inner`.
/// The writer swaps `inner` for a link climbing to `/etc`: the reader keeps
/// the directory it was given at load, and a reload of the reader refuses
/// the link instead of following it.
#[tokio::test]
async fn a_grant_inside_another_plugins_writable_grant_survives_a_swap_for_a_link() {
    let base = temp_dir("swap");
    std::fs::create_dir_all(base.join("data/inner")).unwrap();
    std::fs::write(base.join("data/inner/note.txt"), "granted").unwrap();
    let mut w = manifest();
    w.capabilities
        .fs
        .push(grant("data", "/out", DirMode::ReadWrite));
    let writer = adversary_with(w, &base).await;
    let mut r = manifest();
    r.capabilities
        .fs
        .push(grant("data/inner", "/inner", DirMode::ReadOnly));
    let reader = adversary_with(r.clone(), &base).await;
    let read = call(&reader, "read_file", json!({"path": "/inner/note.txt"})).await;
    assert_eq!(ok(&read)["contents"], "granted");

    let moved = call(
        &writer,
        "rename",
        json!({"from": "/out/inner", "to": "/out/moved"}),
    )
    .await;
    assert_eq!(ok(&moved)["renamed"], true);
    let link = call(
        &writer,
        "symlink",
        json!({"target": CLIMB_TO_ETC, "link": "/out/inner"}),
    )
    .await;
    assert_eq!(ok(&link)["linked"], true);

    // The next calls (two, as in the report) see the directory given at load.
    for _ in 0..2 {
        let escaped = call(&reader, "read_file", json!({"path": "/inner/passwd"})).await;
        assert_not_passwd(&escaped);
        let read = call(&reader, "read_file", json!({"path": "/inner/note.txt"})).await;
        assert_eq!(ok(&read)["contents"], "granted");
    }

    // Loading the reader again goes through the link: refused, naming it.
    let err = crate::support::engine()
        .load(
            r.clone(),
            base.join("plugin.toml"),
            &crate::support::adversary_dir().join("adversary.wasm"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    // Swapped for a real directory: the reader still has its own, and a
    // reload gets the new one, which is the writer's to fill.
    std::fs::remove_file(base.join("data/inner")).unwrap();
    std::fs::create_dir(base.join("data/inner")).unwrap();
    std::fs::write(base.join("data/inner/note.txt"), "new").unwrap();
    let read = call(&reader, "read_file", json!({"path": "/inner/note.txt"})).await;
    assert_eq!(ok(&read)["contents"], "granted");
    let reloaded = adversary_with(r, &base).await;
    let read = call(&reloaded, "read_file", json!({"path": "/inner/note.txt"})).await;
    assert_eq!(ok(&read)["contents"], "new");
}

#[cfg(unix)]
#[tokio::test]
async fn a_grant_whose_path_goes_through_a_link_is_refused_at_load() {
    let base = temp_dir("linked-path");
    std::fs::create_dir_all(base.join("data/real")).unwrap();
    std::os::unix::fs::symlink("real", base.join("data/alias")).unwrap();
    for host in [base.join("data/alias"), "data/alias".into()] {
        let mut m = manifest();
        m.capabilities
            .fs
            .push(grant(host, "/alias", DirMode::ReadOnly));
        let err = crate::support::engine()
            .load(
                m,
                base.join("plugin.toml"),
                &crate::support::adversary_dir().join("adversary.wasm"),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}

/// The grant's directory renamed by someone else after load: the plugin
/// keeps the directory it was given, wherever it now is, and nothing that
/// takes its old name.
#[cfg(unix)]
#[tokio::test]
async fn a_grant_renamed_on_the_host_after_load_keeps_its_directory() {
    let base = temp_dir("renamed");
    std::fs::write(base.join("data/note.txt"), "granted").unwrap();
    let mut m = manifest();
    m.capabilities
        .fs
        .push(grant("data", "/data", DirMode::ReadOnly));
    let plugin = adversary_with(m, &base).await;
    std::fs::rename(base.join("data"), base.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("/etc", base.join("data")).unwrap();
    let escaped = call(&plugin, "read_file", json!({"path": "/data/passwd"})).await;
    assert_not_passwd(&escaped);
    let read = call(&plugin, "read_file", json!({"path": "/data/note.txt"})).await;
    assert_eq!(ok(&read)["contents"], "granted");
}
