//! Compile bombs under the documented size and function caps: a component
//! whose compilation would take minutes or gigabytes is stopped at
//! `MOZAIKS_COMPILE_MEMORY_MIB` or `MOZAIKS_COMPILE_TIMEOUT_SECS` (the
//! server compiles in a child process), refused with an error naming the
//! plugin and the limit, and the server keeps serving the others without
//! ever holding the compiler's memory.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn leb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(mut n: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// A component holding one core module of `functions` functions
/// `(i32) -> i32`, each `ops` additions long. Valid, well under the size
/// and function caps, and slow to compile: 4 functions of 200,000 took 92 s
/// and 4.2 GB to compile here; 49,000 of 40 over a minute.
fn bomb(functions: u64, ops: u64) -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    // type 0: (func (param i32) (result i32))
    section(1, &[1, 0x60, 1, 0x7f, 1, 0x7f], &mut module);
    let mut funcs = Vec::new();
    leb(functions, &mut funcs);
    funcs.extend(std::iter::repeat_n(0u8, functions as usize));
    section(3, &funcs, &mut module);
    let mut body = vec![0u8]; // no locals
    for k in 0..ops {
        body.extend_from_slice(&[0x20, 0x00, 0x41]); // local.get 0, i32.const
        sleb(k as i64 * 7 + 1, &mut body);
        body.extend_from_slice(&[0x6a, 0x21, 0x00]); // i32.add, local.set 0
    }
    body.extend_from_slice(&[0x20, 0x00, 0x0b]); // local.get 0, end
    let mut code = Vec::new();
    leb(functions, &mut code);
    for _ in 0..functions {
        leb(body.len() as u64, &mut code);
        code.extend_from_slice(&body);
    }
    section(10, &code, &mut module);
    let mut component = b"\0asm\x0d\x00\x01\x00".to_vec();
    section(1, &module, &mut component);
    component
}

/// A plugin folder `id` holding `wasm`.
fn plugin_folder(plugins: &Path, id: &str, wasm: &[u8]) {
    let dir = plugins.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!("id = \"{id}\"\nversion = \"1.0.0\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join(format!("{id}.wasm")), wasm).unwrap();
}

/// The server's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib / 1024
}

fn entry<'a>(plugins: &'a Value, id: &str) -> &'a Value {
    plugins["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == id))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn a_compile_over_the_memory_limit_is_refused_and_the_server_keeps_serving() {
    let scratch = Scratch::new("compile-memory");
    let llm = FakeLlm::start(confirm_asker(200, "Nobody answered.")).await;
    let mut setup = Setup::new(&scratch, &llm);
    plugin_folder(&setup.plugins, "bomb", &bomb(4, 200_000));
    setup
        .extra_env
        .push(("MOZAIKS_COMPILE_MEMORY_MIB".to_owned(), "256".to_owned()));
    let server = Server::start(&setup).await;

    let ready = server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    assert_eq!(ready["plugins"]["served"], json!(["adversary", "planner"]));
    let refused = &ready["plugins"]["unavailable"][0];
    assert_eq!(refused["id"], "bomb", "{ready}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("plugin `bomb`") && error.contains("compile memory limit (256 MiB)"),
        "{error}"
    );

    // The others serve: a chat calls the adversary's tool.
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;

    // The compiler's memory was never the server's (compiling this bomb
    // in the server's process took 4.2 GB): a sanity bound, not a
    // measurement.
    let peak = peak_rss_mib(server.pid());
    assert!(peak < 1024, "the server peaked at {peak} MiB");
}

#[tokio::test]
async fn a_hot_reload_that_compiles_too_long_is_refused_and_the_last_good_version_serves() {
    let scratch = Scratch::new("compile-time");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let plugins = scratch.0.join("plugins");
    let adversary = std::fs::read(repo_root().join("tests/components/adversary/adversary.wasm"))
        .expect("run scripts/build-plugins");
    plugin_folder(&plugins, "adversary", &adversary);
    let setup = Setup {
        workflows: scratch.0.join("workflows"),
        plugins: plugins.clone(),
        data: scratch.0.join("data"),
        llm_url: Some(llm.base_url()),
        // Several times what the real component takes in a debug build.
        extra_env: vec![("MOZAIKS_COMPILE_TIMEOUT_SECS".to_owned(), "5".to_owned())],
        share_component_cache: false,
        stderr: None,
    };
    std::fs::create_dir_all(&setup.workflows).unwrap();
    let server = Server::start(&setup).await;
    let (_, before) = server.get("/api/plugins").await;
    let served_hash = entry(&before, "adversary")["hash"].clone();
    assert_eq!(entry(&before, "adversary")["status"], "loaded", "{before}");

    // A new "version" that would take a minute to compile.
    let temporary = plugins.join("adversary/adversary.wasm.tmp");
    std::fs::write(&temporary, bomb(40_000, 40)).unwrap();
    std::fs::rename(&temporary, plugins.join("adversary/adversary.wasm")).unwrap();

    let after = server
        .eventually("/api/plugins", |_, body| {
            entry(body, "adversary")["status"] == "failed"
        })
        .await;
    let adversary = entry(&after, "adversary");
    let error = adversary["last_error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("plugin `adversary`") && error.contains("compile time limit (5 s)"),
        "{error}"
    );
    assert_eq!(
        adversary["hash"], served_hash,
        "the last good version serves"
    );
    let (_, reloads) = server.get("/api/reloads").await;
    let refused = reloads["reloads"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["kind"] == "plugin" && r["name"] == "adversary")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(refused["outcome"], "rejected", "{reloads}");
}

/// A chat request made while a plugin still compiles, longer than the
/// server waits for its first load (10 s), is answered 503
/// `PLUGINS_LOADING` naming the plugin; health answers throughout.
#[tokio::test]
async fn a_chat_during_a_first_load_longer_than_the_wait_is_answered_plugins_loading() {
    let scratch = Scratch::new("compile-first-load");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let mut setup = Setup::new(&scratch, &llm);
    // Minutes of compiler CPU time, stopped at 12 s of CPU per core: at
    // least 12 s of wall-clock time whatever the machine, longer than the
    // wait.
    plugin_folder(&setup.plugins, "bomb", &bomb(49_000, 80));
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let limit_secs = 12 * cores;
    setup.extra_env.push((
        "MOZAIKS_COMPILE_TIMEOUT_SECS".to_owned(),
        limit_secs.to_string(),
    ));
    let server = Server::start_listening(&setup).await;
    let (status, body) = server
        .post(
            "/api/chats",
            json!({"app_id": "app", "user_id": "alice", "workflow": "UiTimeout"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("PLUGINS_LOADING")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["loading"],
        json!(["bomb"]),
        "{body}"
    );
    assert_eq!(server.get("/health/live").await.0, 200);

    // Once the compiler is stopped (at its CPU limit, or at the wall-clock
    // backstop of 4 times it on a starved machine), the rest serves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4 * limit_secs + 30);
    let ready = loop {
        let (status, body) = server.get("/health/ready").await;
        if status == 200 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready; last answer {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        ready["plugins"]["unavailable"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("compile time limit ({limit_secs} s)"))),
        "{ready}"
    );
    server.start_chat("UiTimeout").await;
}

/// A component cache others may write is never loaded from, and never
/// stops a plugin from loading: the compiler process then writes to a
/// private scratch folder instead.
#[tokio::test]
async fn a_cache_folder_others_can_write_is_bypassed_not_fatal() {
    use std::os::unix::fs::PermissionsExt as _;
    let scratch = Scratch::new("compile-open-cache");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.share_component_cache = false;
    let cache = setup.data.join("component-cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = Server::start(&setup).await;
    let ready = server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    assert_eq!(ready["plugins"]["served"], json!(["adversary", "planner"]));
    let entries = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(entries, 0, "nothing was written to {}", cache.display());
}
