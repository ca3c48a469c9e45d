//! The `mozaiks tool` and `mozaiks validate` commands, run as a real process against the real components.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

pub fn mozaiks(args: &[&str]) -> Output {
    let root = repo_root();
    for wasm in [
        "plugins/planner/planner.wasm",
        "tests/components/adversary/adversary.wasm",
    ] {
        assert!(
            root.join(wasm).is_file(),
            "{wasm} is missing: run scripts/build-plugins first"
        );
    }
    Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(args)
        // Compiled components go where the test servers find them, not to
        // the user's cache.
        .env(
            "MOZAIKS_COMPONENT_CACHE",
            crate::support::shared_component_cache::shared_dir(),
        )
        .current_dir(&root)
        .output()
        .unwrap()
}

/// Asserts the exit code, showing both output streams when it differs.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn describe_prints_every_function_with_its_schema() {
    let out = mozaiks(&["tool", "describe", "planner", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout_json(&out);
    assert_eq!(json["id"], "planner");
    let functions = json["functions"].as_array().unwrap();
    let add_task = functions.iter().find(|f| f["name"] == "add_task").unwrap();
    assert_eq!(add_task["parameters"]["type"], "object");

    let text = mozaiks(&["tool", "describe", "plugins/planner"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("request_approval"));
}

#[test]
fn call_reports_result_context_changes_ui_requests_and_logs() {
    let out = mozaiks(&[
        "tool",
        "call",
        "planner",
        "request_approval",
        "--args",
        r#"{"question":"Ship?"}"#,
        "--context",
        r#"{"tasks":[{"title":"a","priority":"low"}]}"#,
        "--answers",
        r#"{"ApprovalForm":{"approved":false,"comment":"not yet"}}"#,
    ]);
    assert_exit(&out, 0);
    let report = stdout_json(&out);
    assert_eq!(report["result"]["ok"]["approved"], false);
    assert_eq!(report["context"]["approved"], false);
    assert_eq!(
        report["context_changes"][0],
        serde_json::json!({"op": "set", "key": "approved", "value": false})
    );
    assert_eq!(report["ui"][0]["component"], "ApprovalForm");
    assert_eq!(report["ui"][0]["payload"]["tasks"][0]["title"], "a");
}

#[test]
fn a_failed_call_exits_2_and_names_plugin_function_and_cause() {
    let out = mozaiks(&[
        "tool",
        "call",
        "tests/components/adversary",
        "panic",
        "--args",
        r#"{"message":"kaboom"}"#,
    ]);
    assert_exit(&out, 2);
    let report = stdout_json(&out);
    assert_eq!(report["result"]["call_error"]["kind"], "trap");
    let message = report["result"]["call_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("adversary") && message.contains("panic") && message.contains("kaboom"),
        "{message}"
    );
}

#[test]
fn a_tool_error_exits_3() {
    let out = mozaiks(&[
        "tool",
        "call",
        "planner",
        "request_approval",
        "--args",
        r#"{"question":"?"}"#,
    ]);
    assert_exit(&out, 3);
    assert_eq!(
        stdout_json(&out)["result"]["tool_error"]["kind"],
        "cancelled"
    );
}

#[test]
fn an_unknown_plugin_exits_1_with_a_hint() {
    let out = mozaiks(&["tool", "describe", "no-such-plugin"]);
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no plugin `no-such-plugin`"), "{stderr}");
}

#[test]
fn malformed_args_exit_1_naming_the_flag() {
    let out = mozaiks(&["tool", "call", "planner", "echo", "--args", "{nope"]);
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--args"));
}

#[test]
fn the_sdk_template_builds_into_a_working_tool() {
    let template = repo_root().join("sdk/template/template.wasm");
    assert!(
        template.is_file(),
        "sdk/template is built by scripts/build-plugins"
    );
    let out = mozaiks(&[
        "tool",
        "call",
        "sdk/template",
        "greet",
        "--args",
        r#"{"name":"Ada"}"#,
        "--context",
        r#"{"greetings":41}"#,
    ]);
    assert_exit(&out, 0);
    let report = stdout_json(&out);
    assert_eq!(report["result"]["ok"]["message"], "Hello, Ada!");
    assert_eq!(report["context"]["greetings"], 42);
}

/// The tool-author flow of docs/tool-authors.md: copy the template, rename
/// it, build it with `mozaiks tool build`, call it.
#[test]
fn a_tool_made_from_the_template_builds_and_runs() {
    let root = repo_root();
    let dir = std::env::temp_dir().join(format!("mozaiks-cli-notes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let template = root.join("sdk/template");
    let cargo = std::fs::read_to_string(template.join("Cargo.toml"))
        .unwrap()
        .replace("name = \"template\"", "name = \"notes\"")
        .replace("path = \"..\"", &format!("path = {:?}", root.join("sdk")));
    std::fs::write(dir.join("Cargo.toml"), cargo).unwrap();
    let manifest = std::fs::read_to_string(template.join("plugin.toml"))
        .unwrap()
        .replace("id = \"template\"", "id = \"notes\"");
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    std::fs::copy(template.join("src/lib.rs"), dir.join("src/lib.rs")).unwrap();
    // The template's lock file pins every dependency, so the build needs no network.
    std::fs::copy(template.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    // The folder name must equal the id.
    let notes = dir.join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    for entry in ["Cargo.toml", "Cargo.lock", "plugin.toml", "src"] {
        std::fs::rename(dir.join(entry), notes.join(entry)).unwrap();
    }
    let notes_arg = notes.to_str().unwrap();

    let build = Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(["tool", "build", notes_arg])
        .env("CARGO_NET_OFFLINE", "true")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    assert!(notes.join("notes.wasm").is_file());

    let out = mozaiks(&[
        "tool",
        "call",
        notes_arg,
        "greet",
        "--args",
        r#"{"name":"Grace"}"#,
    ]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_json(&out)["result"]["ok"]["message"],
        "Hello, Grace!"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_accepts_the_demo_and_reports_every_problem_with_file_and_path() {
    let ok = mozaiks(&["validate", "workflows/PlanReview"]);
    assert_exit(&ok, 0);

    let bad = mozaiks(&["validate", "tests/fixtures/workflows/many_errors"]);
    assert_exit(&bad, 1);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    let expected = std::fs::read_to_string(
        repo_root().join("tests/fixtures/workflows/many_errors/expected_error.txt"),
    )
    .unwrap();
    for line in expected.lines().filter(|l| !l.is_empty()) {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
}

/// A tool's log message or field cannot pass a `key=value` pair of its own
/// for one of the host's in the text log: the record of the `adversary`
/// plugin still has one `plugin`, and it is `adversary`.
#[test]
fn a_tool_cannot_forge_fields_in_the_text_log() {
    let forged = "done plugin=planner chat_id=forged \"x\" function=\"y";
    let args = serde_json::json!({ "message": forged }).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args([
            "tool",
            "call",
            "tests/components/adversary",
            "log",
            "--args",
            &args,
        ])
        .env("LOG_LEVEL", "info")
        .env("NO_COLOR", "1")
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("mozaiks::tool") && line.contains("done"))
        .collect();
    assert!(!lines.is_empty(), "no tool record: {stderr}");
    for line in lines {
        let pairs = top_level_pairs(line);
        let keys = |key: &str| pairs.iter().filter(|(k, _)| k == key).count();
        assert_eq!(keys("plugin"), 1, "{line}\n{pairs:?}");
        assert_eq!(keys("chat_id"), 1, "{line}\n{pairs:?}");
        assert_eq!(keys("function"), 1, "{line}\n{pairs:?}");
        assert!(
            pairs.contains(&("plugin".to_owned(), "adversary".to_owned())),
            "{line}\n{pairs:?}"
        );
        assert!(
            pairs.contains(&("function".to_owned(), "log".to_owned())),
            "{line}\n{pairs:?}"
        );
    }
}

/// The `key=value` pairs of a text log line as a reader splits it: at
/// spaces outside double quotes (a backslash escapes the next character
/// inside them); a word with an `=` outside quotes is a pair.
fn top_level_pairs(line: &str) -> Vec<(String, String)> {
    let mut words = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in line.chars() {
        let word = words.last_mut().unwrap();
        if escaped {
            escaped = false;
            word.push(c);
        } else if quoted && c == '\\' {
            escaped = true;
            word.push(c);
        } else if c == '"' {
            quoted = !quoted;
            word.push(c);
        } else if c == ' ' && !quoted {
            words.push(String::new());
        } else {
            word.push(c);
        }
    }
    words
        .iter()
        .filter(|word| !word.starts_with('"'))
        .filter_map(|word| word.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
        .collect()
}

/// A tool's log message or field cannot forge a line of the host's text
/// log, nor send terminal escapes through it.
#[test]
fn a_tools_newlines_and_escapes_are_escaped_in_the_text_log() {
    let forged = "hello\nFORGED INFO mozaiks: all good\r\u{1b}[31mred\u{7}";
    let args = serde_json::json!({ "message": forged }).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args([
            "tool",
            "call",
            "tests/components/adversary",
            "log",
            "--args",
            &args,
        ])
        .env("LOG_LEVEL", "info")
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hello\\nFORGED"),
        "the message is there, escaped: {stderr}"
    );
    assert!(
        !stderr.lines().any(|line| line.starts_with("FORGED")),
        "a forged line: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r') && !stderr.contains('\u{7}'),
        "raw control characters: {stderr:?}"
    );
}

/// A one-shot HTTP server on loopback answering every request with `hello`;
/// returns its port and how many connections it accepted, once joined.
fn hello_server() -> (u16, std::thread::JoinHandle<usize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut accepted = 0;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < until && accepted < 1 {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    accepted += 1;
                    stream.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    );
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        accepted
    });
    (port, handle)
}

#[test]
fn tool_call_reaches_a_local_server_only_with_allow_host() {
    let (port, server) = hello_server();
    let args = format!(r#"{{"url":"http://127.0.0.1:{port}/ok"}}"#);
    let call = |extra: &[&str]| {
        let mut all = vec![
            "tool",
            "call",
            "tests/components/fetcher",
            "fetch",
            "--args",
            &args,
        ];
        all.extend_from_slice(extra);
        mozaiks(&all)
    };
    let refused = call(&[]);
    assert_exit(&refused, 2);
    let report = stdout_json(&refused);
    let message = report["result"]["call_error"]["message"].as_str().unwrap();
    assert!(message.contains("allowed_outbound_hosts"), "{message}");

    let allow = format!("http://127.0.0.1:{port}");
    let allowed = call(&["--allow-host", &allow]);
    assert_exit(&allowed, 0);
    assert_eq!(stdout_json(&allowed)["result"]["ok"]["body"], "hello");
    assert_eq!(server.join().unwrap(), 1, "only the allowed call connected");
}

#[test]
fn tool_call_gives_secrets_from_a_file_and_masks_them() {
    let dir = std::env::temp_dir().join(format!("mozaiks-cli-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("fetcher");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(
        repo_root().join("tests/components/fetcher/fetcher.wasm"),
        plugin.join("fetcher.wasm"),
    )
    .unwrap();
    std::fs::write(
        plugin.join("plugin.toml"),
        "id = \"fetcher\"\nversion = \"0.1.0\"\n[secrets.API_TOKEN]\nrequired = true\n",
    )
    .unwrap();
    let file = dir.join("secrets.env");
    std::fs::write(&file, "# test\nAPI_TOKEN=tok-7c1d-secret\n").unwrap();
    let out = mozaiks(&[
        "tool",
        "call",
        plugin.to_str().unwrap(),
        "leak_secret",
        "--args",
        r#"{"name":"API_TOKEN"}"#,
        "--secrets-file",
        file.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let report = stdout_json(&out);
    assert_eq!(report["result"]["ok"]["length"], "tok-7c1d-secret".len());
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!everything.contains("7c1d"), "leaked: {everything}");
    assert!(everything.contains("[redacted secret API_TOKEN]"));
    let _ = std::fs::remove_dir_all(&dir);
}
