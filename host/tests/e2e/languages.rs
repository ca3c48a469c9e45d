//! Tools written in other languages than Rust (Python, JavaScript,
//! TypeScript, C, Go), from `mozaiks new tool` to a
//! workflow run: each sample is scaffolded, built from source by
//! `mozaiks tool build` (which installs its toolchain on first use), called
//! through `mozaiks tool call`, and used by an agent in a real server.
//!
//! `MOZAIKS_SKIP_TOOLCHAINS=python,js,ts,c,go` skips a language's tests on a laptop
//! that has not installed its toolchain; in CI (`CI` set) skipping is
//! refused, so CI runs them all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::cli::{assert_exit, mozaiks, repo_root, stdout_json};
use crate::support::*;

/// True when this language's tests are to be skipped here (never in CI).
pub(crate) fn skipped(language: &str) -> bool {
    let listed = std::env::var("MOZAIKS_SKIP_TOOLCHAINS")
        .unwrap_or_default()
        .split(',')
        .any(|l| l.trim() == language);
    assert!(
        !(listed && std::env::var_os("CI").is_some()),
        "MOZAIKS_SKIP_TOOLCHAINS={language} is refused in CI: CI builds every language"
    );
    if listed {
        eprintln!("skipped: the {language} tool tests (MOZAIKS_SKIP_TOOLCHAINS)");
    }
    listed
}

/// A language's sample tool: `mozaiks new tool <id> --lang <lang>`, then
/// `mozaiks tool build`, once per test binary and language.
pub(crate) struct Sample {
    pub(crate) lang: &'static str,
    pub(crate) id: &'static str,
    /// Files `new` must have made besides plugin.toml, README.md and wit/.
    made: &'static [&'static str],
}

pub(crate) const PYTHON: Sample = Sample {
    lang: "python",
    id: "pysample",
    made: &[
        "app.py",
        "mozaiks_tool.py",
        "bindings/wit_world/imports/context.py",
    ],
};

pub(crate) const JS: Sample = Sample {
    lang: "js",
    id: "jssample",
    made: &["app.js", "mozaiks_tool.js"],
};

pub(crate) const TS: Sample = Sample {
    lang: "ts",
    id: "tssample",
    made: &[
        "app.ts",
        "mozaiks_tool.ts",
        "tsconfig.json",
        "types/plugin.d.ts",
    ],
};

pub(crate) const C: Sample = Sample {
    lang: "c",
    id: "csample",
    made: &[
        "app.c",
        "mozaiks_tool.h",
        "mozaiks_tool.c",
        "bindings/plugin.h",
        "bindings/plugin.c",
    ],
};

pub(crate) const GO: Sample = Sample {
    lang: "go",
    id: "gosample",
    made: &[
        "app.go",
        "go.mod",
        "mozaiks/tool.go",
        "mozaiks/abi.go",
        "mozaiks/data.go",
        "mozaiks/reseed.go",
        "mozaiks/warm.go",
    ],
};

impl Sample {
    pub(crate) fn built(&self) -> &'static PathBuf {
        static PYTHON_BUILT: OnceLock<PathBuf> = OnceLock::new();
        static JS_BUILT: OnceLock<PathBuf> = OnceLock::new();
        static TS_BUILT: OnceLock<PathBuf> = OnceLock::new();
        static C_BUILT: OnceLock<PathBuf> = OnceLock::new();
        static GO_BUILT: OnceLock<PathBuf> = OnceLock::new();
        let cell = match self.lang {
            "python" => &PYTHON_BUILT,
            "js" => &JS_BUILT,
            "c" => &C_BUILT,
            "go" => &GO_BUILT,
            _ => &TS_BUILT,
        };
        cell.get_or_init(|| self.build())
    }

    fn build(&self) -> PathBuf {
        let parent = repo_root().join("target/e2e-tools").join(self.lang);
        let _ = std::fs::remove_dir_all(&parent);
        std::fs::create_dir_all(&parent).unwrap();
        let parent_arg = parent.to_str().unwrap();
        let new = mozaiks(&[
            "new", "tool", self.id, "--lang", self.lang, "--dir", parent_arg,
        ]);
        assert_exit(&new, 0);
        let dir = parent.join(self.id);
        for file in ["plugin.toml", "README.md", "wit/world.wit"]
            .iter()
            .chain(self.made)
        {
            assert!(dir.join(file).is_file(), "new made no {file}");
        }
        let build = mozaiks(&["tool", "build", dir.to_str().unwrap()]);
        assert_exit(&build, 0);
        let stderr = String::from_utf8_lossy(&build.stderr);
        assert!(
            stderr.contains("functions: greet, request_approval"),
            "the build loads and describes the component: {stderr}"
        );
        dir
    }
}

pub(crate) fn call(
    dir: &Path,
    function: &str,
    args: Value,
    extra: &[&str],
) -> std::process::Output {
    let args = args.to_string();
    let mut argv = vec![
        "tool",
        "call",
        dir.to_str().unwrap(),
        function,
        "--args",
        &args,
    ];
    argv.extend_from_slice(extra);
    mozaiks(&argv)
}

fn builds_into_a_stamped_component_of_our_world(sample: &Sample, broken_source: &str, error: &str) {
    if skipped(sample.lang) {
        return;
    }
    let dir = sample.built();
    let described = mozaiks(&["tool", "describe", dir.to_str().unwrap(), "--json"]);
    assert_exit(&described, 0);
    let described = stdout_json(&described);
    assert_eq!(described["id"], sample.id);
    assert_eq!(
        described["sdk_version"], "0.1.2",
        "the build stamped the WIT version"
    );
    assert_eq!(
        described["compiled_code"], "cached",
        "the build compiled it once, for every later run"
    );
    let greet = described["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "greet")
        .unwrap();
    assert_eq!(greet["parameters"]["required"], json!(["name"]));

    // A failing source is a build error, not a component.
    let broken = variant(sample, "broken", broken_source);
    let build = mozaiks(&["tool", "build", broken.to_str().unwrap()]);
    assert_exit(&build, 1);
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(stderr.contains(error), "{stderr}");
    assert!(!broken.join("broken.wasm").exists());
}

/// A copy of the built sample named `id`, with `file:source` written over
/// one of its files.
pub(crate) fn variant(sample: &Sample, id: &str, file_and_source: &str) -> PathBuf {
    let dir = sample.built().with_file_name(id);
    let _ = std::fs::remove_dir_all(&dir);
    let copy = Command::new("cp")
        .arg("-r")
        .arg(sample.built())
        .arg(&dir)
        .status()
        .unwrap();
    assert!(copy.success());
    let _ = std::fs::remove_file(dir.join(format!("{}.wasm", sample.id)));
    let manifest = std::fs::read_to_string(dir.join("plugin.toml"))
        .unwrap()
        .replace(
            &format!("id = \"{}\"", sample.id),
            &format!("id = \"{id}\""),
        );
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    let (file, source) = file_and_source.split_once(':').unwrap();
    std::fs::write(dir.join(file), source).unwrap();
    dir
}

/// A copy of the built sample named `id`, with `file:source` written over
/// one of its files and `manifest_tail` (say `[secrets.NAME]` tables)
/// appended to its plugin.toml, built.
pub(crate) fn built_variant(
    sample: &Sample,
    id: &str,
    file_and_source: &str,
    manifest_tail: &str,
) -> PathBuf {
    let dir = variant(sample, id, file_and_source);
    let manifest = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap() + manifest_tail;
    std::fs::write(&manifest, text).unwrap();
    let build = mozaiks(&["tool", "build", dir.to_str().unwrap()]);
    assert_exit(&build, 0);
    dir
}

/// The tool error of a `tool call` that answered one (exit 3): (kind,
/// message).
#[track_caller]
pub(crate) fn tool_error(output: &std::process::Output) -> (String, String) {
    assert_exit(output, 3);
    let report = stdout_json(output);
    let error = &report["result"]["tool_error"];
    let field = |name: &str| {
        error[name]
            .as_str()
            .unwrap_or_else(|| panic!("{report}"))
            .to_owned()
    };
    (field("kind"), field("message"))
}

/// A tool that says who called, with its call's idempotency key and
/// attempt (fresh, then given with `--idempotency-key` and `--attempt`),
/// one whose function throws something that is not a ToolError (the call
/// is a trap that names the error), and one that sets a context value the
/// host refuses. The tool's folder, to call it again; `None` when the
/// language is skipped.
fn call_info_and_uncaught_errors(sample: &Sample, source: &str) -> Option<PathBuf> {
    if skipped(sample.lang) {
        return None;
    }
    let dir = variant(sample, "quirks", source);
    let build = mozaiks(&["tool", "build", dir.to_str().unwrap()]);
    assert_exit(&build, 0);
    let who = call(&dir, "who", json!({}), &[]);
    assert_exit(&who, 0);
    let report = stdout_json(&who);
    let fresh = report["idempotency_key"].as_str().unwrap();
    assert_eq!(fresh.len(), 32, "{report}");
    assert_eq!(
        report["result"]["ok"],
        json!({"chat": "harness", "workflow": "harness", "agent": "harness", "call": "call_1",
               "key": fresh, "attempt": 1})
    );
    let replay = call(
        &dir,
        "who",
        json!({}),
        &["--idempotency-key", "order-7", "--attempt", "2"],
    );
    assert_exit(&replay, 0);
    let report = stdout_json(&replay);
    assert_eq!(report["idempotency_key"], "order-7");
    assert_eq!(report["result"]["ok"]["key"], "order-7");
    assert_eq!(report["result"]["ok"]["attempt"], 2);
    let boom = call(&dir, "boom", json!({}), &[]);
    assert_exit(&boom, 2);
    let report = stdout_json(&boom);
    assert_eq!(report["result"]["call_error"]["kind"], "trap", "{report}");
    let message = report["result"]["call_error"]["message"].as_str().unwrap();
    assert!(message.contains("kaboom"), "{message}");
    // The host refuses a context value over its limit; the helper makes
    // that a ToolError (failed) that names the variable.
    let big = call(&dir, "big", json!({}), &[]);
    assert_exit(&big, 3);
    let report = stdout_json(&big);
    assert_eq!(report["result"]["tool_error"]["kind"], "failed", "{report}");
    let message = report["result"]["tool_error"]["message"].as_str().unwrap();
    assert!(message.contains("`big` not set"), "{message}");
    assert!(report["context_changes"].as_array().unwrap().is_empty());
    Some(dir)
}

/// The tool at `dir` has a function `fallback` that reads the unset
/// variable `notes` with the fallback `[]` and pushes onto it, as
/// docs/tool-authors.md's example does.
fn a_missing_variable_reads_as_the_fallback(dir: &Path) {
    let output = call(dir, "fallback", json!({}), &[]);
    assert_exit(&output, 0);
    assert_eq!(stdout_json(&output)["result"]["ok"], json!(["first"]));
}

/// The tool at `dir` has a function `random` that returns a number from the
/// language's everyday generator (Python's `random`, JavaScript's
/// `Math.random`, Go's `math/rand/v2`). Each call starts a fresh instance
/// from the same build (for Python, JavaScript and TypeScript a snapshot
/// taken after the runtime started, generator included), yet two calls draw
/// different numbers, even as two attempts of one tool call with the same
/// key and attempt number.
fn draws_differ_between_calls(dir: &Path) {
    let draw = || {
        let output = call(
            dir,
            "random",
            json!({}),
            &["--idempotency-key", "same", "--attempt", "1"],
        );
        assert_exit(&output, 0);
        let report = stdout_json(&output);
        report["result"]["ok"]
            .as_f64()
            .unwrap_or_else(|| panic!("{report}"))
    };
    let (first, second) = (draw(), draw());
    assert!((0.0..1.0).contains(&first), "{first}");
    assert_ne!(first, second, "two calls drew the same number");
}

#[test]
fn a_python_tool_sees_who_called_and_an_uncaught_exception_is_a_trap() {
    call_info_and_uncaught_errors(
        &PYTHON,
        r#"app.py:from mozaiks_tool import Toolbox
toolbox = Toolbox()

@toolbox.function("who", "Says who called.", {"type": "object"})
def who(args, call):
    return {"chat": call.chat_id, "workflow": call.workflow, "agent": call.agent, "call": call.tool_call_id,
            "key": call.idempotency_key(), "attempt": call.attempt()}

@toolbox.function("boom", "Raises.", {"type": "object"})
def boom(args, call):
    raise ValueError("kaboom")

@toolbox.function("big", "Sets a value over the host's limit.", {"type": "object"})
def big(args, call):
    call.context.set("big", "x" * (2 * 1024 * 1024))
    return "unreachable"

@toolbox.function("random", "Draws a number.", {"type": "object"})
def draw(args, call):
    import random
    return random.random()

Tool = toolbox.export()
"#,
    )
    .inspect(|dir| draws_differ_between_calls(dir));
}

#[test]
fn a_ts_tool_sees_who_called_and_an_uncaught_exception_is_a_trap() {
    call_info_and_uncaught_errors(
        &TS,
        r#"app.ts:import { Toolbox } from './mozaiks_tool.js';
export const tool = new Toolbox()
  .function('who', 'Says who called.', { type: 'object' }, (_args: unknown, call) => ({
    chat: call.info.chatId, workflow: call.info.workflow, agent: call.info.agent, call: call.info.toolCallId,
    key: call.idempotencyKey(), attempt: call.attempt(),
  }))
  .function('boom', 'Throws.', { type: 'object' }, (): never => { throw new Error('kaboom'); })
  .function('big', 'Sets a value over the limit.', { type: 'object' }, (_args: unknown, call) => {
    call.context.set('big', 'x'.repeat(2 * 1024 * 1024));
    return 'unreachable';
  })
  .function('random', 'Draws a number.', { type: 'object' }, () => Math.random())
  .function('fallback', 'Reads a variable that is not set.', { type: 'object' }, (_args: unknown, call) => {
    const notes = call.context.get('notes', [] as string[]);
    notes.push('first');
    return notes;
  })
  .export();
"#,
    )
    .inspect(|dir| {
        draws_differ_between_calls(dir);
        a_missing_variable_reads_as_the_fallback(dir);
    });
}

#[test]
fn a_js_tool_sees_who_called_and_an_uncaught_exception_is_a_trap() {
    call_info_and_uncaught_errors(
        &JS,
        r#"app.js:import { Toolbox } from './mozaiks_tool.js';
export const tool = new Toolbox()
  .function('who', 'Says who called.', { type: 'object' }, (args, call) => ({
    chat: call.info.chatId, workflow: call.info.workflow, agent: call.info.agent, call: call.info.toolCallId,
    key: call.idempotencyKey(), attempt: call.attempt(),
  }))
  .function('boom', 'Throws.', { type: 'object' }, () => { throw new Error('kaboom'); })
  .function('big', 'Sets a value over the limit.', { type: 'object' }, (args, call) => {
    call.context.set('big', 'x'.repeat(2 * 1024 * 1024));
    return 'unreachable';
  })
  .function('random', 'Draws a number.', { type: 'object' }, () => Math.random())
  .function('fallback', 'Reads a variable that is not set.', { type: 'object' }, (args, call) => {
    const notes = call.context.get('notes', []);
    notes.push('first');
    return notes;
  })
  .export();
"#,
    )
    .inspect(|dir| {
        draws_differ_between_calls(dir);
        a_missing_variable_reads_as_the_fallback(dir);
    });
}

#[test]
fn a_c_tool_sees_who_called_and_an_abort_is_a_trap() {
    call_info_and_uncaught_errors(
        &C,
        r#"app.c:#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mozaiks_tool.h"

static mozaiks_result who(const char *args, const mozaiks_call *call) {
    (void)args;
    char *key = mozaiks_idempotency_key();
    mozaiks_result result = mozaiks_ok(mozaiks_format(
        "{\"chat\":\"%s\",\"workflow\":\"%s\",\"agent\":\"%s\",\"call\":\"%s\","
        "\"key\":\"%s\",\"attempt\":%u}",
        call->chat_id, call->workflow, call->agent, call->tool_call_id, key,
        (unsigned)mozaiks_attempt()));
    free(key);
    return result;
}

static mozaiks_result boom(const char *args, const mozaiks_call *call) {
    (void)args;
    (void)call;
    fprintf(stderr, "kaboom\n");
    abort();
}

static mozaiks_result big(const char *args, const mozaiks_call *call) {
    (void)args;
    (void)call;
    size_t len = 2 * 1024 * 1024;
    char *value = malloc(len + 3);
    value[0] = '"';
    memset(value + 1, 'x', len);
    value[len + 1] = '"';
    value[len + 2] = 0;
    char *why = mozaiks_context_set("big", value);
    if (why) return mozaiks_error(MOZAIKS_FAILED, "context variable `big` not set: %s", why);
    return mozaiks_ok(mozaiks_format("\"unreachable\""));
}

MOZAIKS_TOOLBOX({"who", "Says who called.", "{\"type\":\"object\"}", who},
                {"boom", "Aborts.", "{\"type\":\"object\"}", boom},
                {"big", "Sets a value over the host's limit.", "{\"type\":\"object\"}", big});
"#,
    );
}

/// A C tool's stack is 1 MiB (tool-authors.md): a function with 512 KiB of
/// locals runs, one with 2 MiB traps.
#[test]
fn a_c_tools_stack_is_1_mib() {
    if skipped(C.lang) {
        return;
    }
    let dir = variant(
        &C,
        "cstack",
        r#"app.c:#include <string.h>
#include "mozaiks_tool.h"

static int fill(volatile char *buffer, size_t len) {
    memset((char *)buffer, 1, len);
    return buffer[len / 2];
}

static mozaiks_result locals(const char *args, const mozaiks_call *call) {
    (void)call;
    long long kib = 0;
    mozaiks_json_int(args, "kib", &kib);
    volatile char buffer[kib * 1024];
    return mozaiks_ok(mozaiks_format("%d", fill(buffer, sizeof buffer)));
}

MOZAIKS_TOOLBOX({"locals", "Uses kib KiB of stack.", "{\"type\":\"object\"}", locals});
"#,
    );
    let build = mozaiks(&["tool", "build", dir.to_str().unwrap()]);
    assert_exit(&build, 0);
    let fits = call(&dir, "locals", json!({"kib": 512}), &[]);
    assert_exit(&fits, 0);
    assert_eq!(stdout_json(&fits)["result"]["ok"], 1);
    let overflows = call(&dir, "locals", json!({"kib": 2048}), &[]);
    assert_exit(&overflows, 2);
    assert_eq!(
        stdout_json(&overflows)["result"]["call_error"]["kind"],
        "trap"
    );
}

/// A C compile error is a build error that shows the compiler's message.
#[test]
fn a_c_tool_made_by_new_builds_into_a_stamped_component_of_our_world() {
    builds_into_a_stamped_component_of_our_world(
        &C,
        "app.c:#include \"mozaiks_tool.h\"\nint x = no_such_symbol;\n",
        "no_such_symbol",
    );
}

#[test]
fn a_go_tool_sees_who_called_and_a_panic_is_a_trap() {
    call_info_and_uncaught_errors(
        &GO,
        r#"app.go:package main

import (
	"encoding/json"
	"math/rand/v2"
	"strings"

	"mozaiks.local/tool/mozaiks"
)

func init() {
	mozaiks.Function("who", "Says who called.", `{"type":"object"}`,
		func(_ json.RawMessage, call *mozaiks.Call) (any, error) {
			return map[string]any{"chat": call.ChatID, "workflow": call.Workflow,
				"agent": call.Agent, "call": call.ToolCallID,
				"key": call.IdempotencyKey(), "attempt": call.Attempt()}, nil
		})
	mozaiks.Function("boom", "Panics.", `{"type":"object"}`,
		func(json.RawMessage, *mozaiks.Call) (any, error) { panic("kaboom") })
	mozaiks.Function("big", "Sets a value over the host's limit.", `{"type":"object"}`,
		func(_ json.RawMessage, call *mozaiks.Call) (any, error) {
			if err := call.ContextSet("big", strings.Repeat("x", 2*1024*1024)); err != nil {
				return nil, err
			}
			return "unreachable", nil
		})
	mozaiks.Function("random", "Draws a number.", `{"type":"object"}`,
		func(json.RawMessage, *mozaiks.Call) (any, error) { return rand.Float64(), nil })
}

func main() {}
"#,
    )
    .inspect(|dir| draws_differ_between_calls(dir));
}

/// A Go tool is snapshotted after Go's runtime started (`preinit.rs`),
/// and the variable that told its helper to warm caches there is gone by
/// the call; one whose manifest grants environment variables is not
/// snapshotted, since Go reads them as it starts: the build says so, and a
/// call sees the variable's value from the call's environment. What a
/// package computes as it starts (the time, a random number) is the
/// build's in the snapshot and each call's without it.
#[test]
fn a_go_tool_granted_an_env_var_starts_go_at_each_call_and_reads_it() {
    if skipped(GO.lang) {
        return;
    }
    const SOURCE: &str = r#"app.go:package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"time"

	"mozaiks.local/tool/mozaiks"
)

var started = time.Now().UnixMilli()

var drawn = rand.Float64()

func init() {
	mozaiks.Function("env", "Lists the environment.", `{"type":"object"}`,
		func(json.RawMessage, *mozaiks.Call) (any, error) { return os.Environ(), nil })
	mozaiks.Function("started", "When the package started.", `{"type":"object"}`,
		func(json.RawMessage, *mozaiks.Call) (any, error) { return started, nil })
	mozaiks.Function("drawn", "A number drawn as the package started.", `{"type":"object"}`,
		func(json.RawMessage, *mozaiks.Call) (any, error) { return drawn, nil })
}

func main() {}
"#;
    let snapshotted = variant(&GO, "gosnapshot", SOURCE);
    let build = mozaiks(&["tool", "build", snapshotted.to_str().unwrap()]);
    assert_exit(&build, 0);
    let built = now_ms();
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(!stderr.contains("starts on every call"), "{stderr}");
    let report = stdout_json(&call(&snapshotted, "env", json!({}), &[]));
    assert_eq!(
        report["result"]["ok"],
        json!([]),
        "nothing granted, and the snapshot's MOZAIKS_SNAPSHOT is gone: {report}"
    );
    // What `init` computed is the build's (docs/tool-authors.md, Go).
    assert!(
        started_ms(&snapshotted) < built,
        "a package variable set to time.Now() holds the build's time"
    );
    assert_eq!(
        drawn(&snapshotted),
        drawn(&snapshotted),
        "a number drawn in init is the build's"
    );

    let granted = variant(&GO, "goenv", SOURCE);
    let manifest = granted.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text + "\n[capabilities]\nenv = [\"CARGO_PKG_NAME\"]\n",
    )
    .unwrap();
    let build = mozaiks(&["tool", "build", granted.to_str().unwrap()]);
    assert_exit(&build, 0);
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(
        stderr.contains(
            "goenv: Go's runtime starts on every call: it is granted environment variables"
        ),
        "{stderr}"
    );
    let built = now_ms();
    let output = call(&granted, "env", json!({}), &[]);
    assert_exit(&output, 0);
    assert!(started_ms(&granted) >= built, "Go started at the call");
    assert_ne!(
        drawn(&granted),
        drawn(&granted),
        "drawn as each call started"
    );
    assert_eq!(
        stdout_json(&output)["result"]["ok"],
        json!([concat!("CARGO_PKG_NAME=", env!("CARGO_PKG_NAME"))]),
        "the call's environment"
    );
}

/// What the `started` function of the tool at `dir` answers: when its
/// package started, in milliseconds since the epoch.
fn started_ms(dir: &Path) -> u64 {
    let report = stdout_json(&call(dir, "started", json!({}), &[]));
    report["result"]["ok"]
        .as_u64()
        .unwrap_or_else(|| panic!("{report}"))
}

/// What the `drawn` function of the tool at `dir` answers: a number drawn
/// from `math/rand/v2` as its package started.
fn drawn(dir: &Path) -> f64 {
    let report = stdout_json(&call(dir, "drawn", json!({}), &[]));
    report["result"]["ok"]
        .as_f64()
        .unwrap_or_else(|| panic!("{report}"))
}

/// Now, in milliseconds since the epoch.
fn now_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since_epoch.as_millis()).unwrap()
}

/// Go's heap grows past the pages of the WASI adapter without touching
/// them (`adapter_arena.rs`): a function that allocates and fills 24 MiB,
/// far past the memory Go starts with, then makes WASI calls (the clock,
/// stdout) and host calls still answers. Before the arena, the adapter's
/// pages were inside Go's heap and such a call trapped in the adapter.
#[test]
fn a_go_tools_heap_grows_without_overwriting_the_wasi_adapter() {
    if skipped(GO.lang) {
        return;
    }
    let dir = variant(
        &GO,
        "goheap",
        r#"app.go:package main

import (
	"encoding/json"
	"fmt"
	"time"

	"mozaiks.local/tool/mozaiks"
)

func init() {
	mozaiks.Function("fill", "Allocates and fills mib MiB.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args struct{ Mib int }
			if err := json.Unmarshal(raw, &args); err != nil {
				return nil, err
			}
			blocks := make([][]byte, args.Mib)
			sum := 0
			for i := range blocks {
				blocks[i] = make([]byte, 1<<20)
				for j := range blocks[i] {
					blocks[i][j] = byte(i + j)
				}
				sum += int(blocks[i][12345])
				_ = time.Now()
			}
			fmt.Println("filled", len(blocks), "MiB")
			call.Log(mozaiks.Info, "filled", "mib", len(blocks))
			if err := call.ContextSet("filled", len(blocks)); err != nil {
				return nil, err
			}
			return sum, nil
		})
}

func main() {}
"#,
    );
    let build = mozaiks(&["tool", "build", dir.to_str().unwrap()]);
    assert_exit(&build, 0);
    let filled = call(&dir, "fill", json!({"mib": 24}), &[]);
    assert_exit(&filled, 0);
    let report = stdout_json(&filled);
    let expected: u64 = (0..24u64).map(|i| (i + 12345) % 256).sum();
    assert_eq!(report["result"]["ok"], expected, "{report}");
    assert_eq!(report["context"]["filled"], 24, "{report}");
    let logs = report["logs"].to_string();
    assert!(
        logs.contains("filled 24 MiB"),
        "stdout reached the host: {logs}"
    );
}

/// A Go compile error is a build error that shows the compiler's message.
#[test]
fn a_go_tool_made_by_new_builds_into_a_stamped_component_of_our_world() {
    builds_into_a_stamped_component_of_our_world(
        &GO,
        "app.go:package main\n\nvar x = noSuchSymbol\n\nfunc main() {}\n",
        "noSuchSymbol",
    );
}

#[test]
fn a_python_tool_made_by_new_builds_into_a_stamped_component_of_our_world() {
    builds_into_a_stamped_component_of_our_world(
        &PYTHON,
        "app.py:import no_such_module\n",
        "no_such_module",
    );
}

#[test]
fn a_js_tool_made_by_new_builds_into_a_stamped_component_of_our_world() {
    builds_into_a_stamped_component_of_our_world(
        &JS,
        "app.js:import { x } from './no_such_module.js';\nexport const tool = x;\n",
        "no_such_module",
    );
}

/// The TypeScript build type-checks: a type error is a build error.
#[test]
fn a_ts_tool_made_by_new_builds_into_a_stamped_component_of_our_world() {
    builds_into_a_stamped_component_of_our_world(
        &TS,
        "app.ts:const tool: number = 'not a number';\nexport { tool };\n",
        "TS2322",
    );
}

fn agent_function_uses_context_and_log(sample: &Sample) {
    if skipped(sample.lang) {
        return;
    }
    let out = call(
        sample.built(),
        "greet",
        json!({"name": "Ada"}),
        &["--context", r#"{"greetings":41}"#],
    );
    assert_exit(&out, 0);
    let report = stdout_json(&out);
    assert_eq!(
        report["result"]["ok"],
        json!({"message": "Hello, Ada!", "greetings": 42})
    );
    assert_eq!(
        report["context_changes"],
        json!([{"op": "set", "key": "greetings", "value": 42}])
    );
    assert_eq!(report["logs"][0]["message"], "greeted");
    assert_eq!(report["logs"][0]["fields"]["name"], "Ada");
}

#[test]
fn a_python_tools_agent_function_uses_context_and_log() {
    agent_function_uses_context_and_log(&PYTHON);
}

#[test]
fn a_js_tools_agent_function_uses_context_and_log() {
    agent_function_uses_context_and_log(&JS);
}

#[test]
fn a_ts_tools_agent_function_uses_context_and_log() {
    agent_function_uses_context_and_log(&TS);
}

#[test]
fn a_c_tools_agent_function_uses_context_and_log() {
    agent_function_uses_context_and_log(&C);
}

#[test]
fn a_go_tools_agent_function_uses_context_and_log() {
    agent_function_uses_context_and_log(&GO);
}

fn ui_function_asks_and_keeps_the_answer(sample: &Sample) {
    if skipped(sample.lang) {
        return;
    }
    let out = call(
        sample.built(),
        "request_approval",
        json!({"question": "Ship it?"}),
        &[
            "--answers",
            r#"{"ApprovalForm":{"approved":true,"comment":"go"}}"#,
        ],
    );
    assert_exit(&out, 0);
    let report = stdout_json(&out);
    assert_eq!(
        report["result"]["ok"],
        json!({"approved": true, "comment": "go"})
    );
    assert_eq!(report["context"]["approved"], true);
    let ui: Vec<(&str, &str)> = report["ui"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["component"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ui, [("notify", "Progress"), ("ask", "ApprovalForm")]);
    assert_eq!(report["ui"][1]["payload"]["question"], "Ship it?");
    assert_eq!(report["logs"][0]["fields"]["approved"], "true");

    // Nobody answers: the helper turns the UI error into a ToolError.
    let unanswered = call(
        sample.built(),
        "request_approval",
        json!({"question": "Ship it?"}),
        &[],
    );
    assert_exit(&unanswered, 3);
    let report = stdout_json(&unanswered);
    assert_eq!(report["result"]["tool_error"]["kind"], "cancelled");
    assert!(report["context_changes"].as_array().unwrap().is_empty());
}

#[test]
fn a_python_tools_ui_function_asks_and_keeps_the_answer() {
    ui_function_asks_and_keeps_the_answer(&PYTHON);
}

#[test]
fn a_js_tools_ui_function_asks_and_keeps_the_answer() {
    ui_function_asks_and_keeps_the_answer(&JS);
}

#[test]
fn a_ts_tools_ui_function_asks_and_keeps_the_answer() {
    ui_function_asks_and_keeps_the_answer(&TS);
}

#[test]
fn a_c_tools_ui_function_asks_and_keeps_the_answer() {
    ui_function_asks_and_keeps_the_answer(&C);
}

#[test]
fn a_go_tools_ui_function_asks_and_keeps_the_answer() {
    ui_function_asks_and_keeps_the_answer(&GO);
}

/// An agent that greets, then asks for approval, then says it is done.
fn sample_agent(call: &ChatCall) -> Reply {
    let results = call.tool_results();
    match results.len() {
        0 => Reply::tool_call("greet", json!({"name": "Ada"})),
        1 => Reply::tool_call("request_approval", json!({"question": "Greeted Ada. OK?"})),
        _ => Reply::text("Done."),
    }
}

/// A workflow whose one agent uses a sample's two functions.
fn sample_workflow(scratch: &Scratch, plugin: &str) -> PathBuf {
    let dir = scratch.0.join("workflows/SampleTools");
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        (
            "agents.json",
            json!({"agents": [{"name": "Helper", "system_message": "You are Helper.",
                "tools": ["greet", "request_approval"]}]}),
        ),
        (
            "orchestrator.json",
            json!({"workflow_name": "SampleTools", "max_turns": 6, "startup_mode": "AgentDriven",
                "orchestration_pattern": "DefaultPattern", "initial_agent": "Helper",
                "initial_message": "Greet Ada, then ask for approval."}),
        ),
        (
            "tools.json",
            json!({"tools": [
                {"plugin": plugin, "function": "greet", "tool_type": "Agent_Tool", "agent": "Helper"},
                {"plugin": plugin, "function": "request_approval", "tool_type": "UI_Tool",
                 "agent": "Helper", "ui": {"component": "ApprovalForm", "mode": "inline"}}]}),
        ),
    ];
    for (file, value) in files {
        std::fs::write(dir.join(file), value.to_string()).unwrap();
    }
    dir.parent().unwrap().to_owned()
}

async fn runs_in_a_workflow_with_its_ui_answered_by_the_client(sample: &Sample) {
    if skipped(sample.lang) {
        return;
    }
    let built = sample.built().clone();
    let scratch = Scratch::new(&format!("{}-workflow", sample.lang));
    let llm = FakeLlm::start(sample_agent).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.workflows = sample_workflow(&scratch, sample.id);
    std::os::unix::fs::symlink(&built, setup.plugins.join(sample.id)).unwrap();
    let server = Server::start(&setup).await;
    let chat = server.start_chat("SampleTools").await;
    let mut ws = server.ws(&chat, 0).await;
    let request = ws.until_type("ui_request").await;
    assert_eq!(request["component"], "ApprovalForm");
    assert_eq!(request["payload"]["question"], "Greeted Ada. OK?");
    let request_id = request["request_id"].as_str().unwrap().to_owned();
    ws.send(json!({"type": "ui_response", "request_id": request_id, "answer": {"approved": true}}))
        .await;
    ws.until_status("completed").await;
    let results = of_type(&ws.seen, "tool_result");
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["greetings"], 1);
    assert_eq!(context["context"]["approved"], true);
    // The agent read both results.
    let last = llm.calls().last().unwrap().tool_results();
    assert!(last[0].1.contains("Hello, Ada!"), "{last:?}");
    assert!(
        last[1].1.contains("\"approved\":true") || last[1].1.contains("\"approved\": true"),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_python_tool_runs_in_a_workflow_with_its_ui_answered_by_the_client() {
    runs_in_a_workflow_with_its_ui_answered_by_the_client(&PYTHON).await;
}

#[tokio::test]
async fn a_js_tool_runs_in_a_workflow_with_its_ui_answered_by_the_client() {
    runs_in_a_workflow_with_its_ui_answered_by_the_client(&JS).await;
}

#[tokio::test]
async fn a_ts_tool_runs_in_a_workflow_with_its_ui_answered_by_the_client() {
    runs_in_a_workflow_with_its_ui_answered_by_the_client(&TS).await;
}

#[tokio::test]
async fn a_c_tool_runs_in_a_workflow_with_its_ui_answered_by_the_client() {
    runs_in_a_workflow_with_its_ui_answered_by_the_client(&C).await;
}

#[tokio::test]
async fn a_go_tool_runs_in_a_workflow_with_its_ui_answered_by_the_client() {
    runs_in_a_workflow_with_its_ui_answered_by_the_client(&GO).await;
}

/// One run of the sample workflow with the approval answered; what the
/// agent read from `greet`.
async fn greeting_of_a_run(server: &Server, llm: &FakeLlm) -> String {
    let chat = server.start_chat("SampleTools").await;
    let mut ws = server.ws(&chat, 0).await;
    let request = ws.until_type("ui_request").await;
    let request_id = request["request_id"].as_str().unwrap().to_owned();
    ws.send(json!({"type": "ui_response", "request_id": request_id, "answer": {"approved": true}}))
        .await;
    ws.until_status("completed").await;
    let last = llm.calls().last().unwrap().tool_results();
    last[0].1.clone()
}

/// Waits until the rebuild after a source change is reported: a build
/// that failed, or a build and the reload of what it made (in either order:
/// `tool build` loads what it wrote while the server reloads it).
async fn rebuilt(events: &mut Ws) -> Result<(), Value> {
    let (mut built, mut reloaded) = (false, false);
    while !(built && reloaded) {
        let frame = events.until_type("reload").await;
        match (frame["kind"].as_str(), frame["outcome"].as_str()) {
            (Some("build"), Some("rejected")) => return Err(frame),
            (Some("build"), Some("loaded")) => built = true,
            (Some("plugin"), Some("loaded")) => reloaded = true,
            _ => panic!("unexpected reload: {frame}"),
        }
    }
    Ok(())
}

/// `mozaiks dev` over a sample's folder: a broken source is a failed build
/// whose compiler messages reach clients while the last good version
/// serves; a fixed source is rebuilt by `tool build` and swapped in.
async fn dev_rebuilds_on_source_changes(sample: &Sample, file: &str, broken: &str, error: &str) {
    if skipped(sample.lang) {
        return;
    }
    let scratch = Scratch::new(&format!("{}-dev", sample.lang));
    let llm = FakeLlm::start(sample_agent).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.workflows = sample_workflow(&scratch, sample.id);
    let folder = setup.plugins.join(sample.id);
    let copy = Command::new("cp")
        .arg("-r")
        .arg(sample.built())
        .arg(&folder)
        .status()
        .unwrap();
    assert!(copy.success());
    let server = Server::start_dev_for_every_language(&setup).await;
    assert!(
        greeting_of_a_run(&server, &llm)
            .await
            .contains("Hello, Ada!")
    );
    let mut events = server.ws_path("/api/events/ws").await;
    events.until_type("hello").await;
    let source = std::fs::read_to_string(folder.join(file)).unwrap();

    std::fs::write(folder.join(file), broken).unwrap();
    let failed = rebuilt(&mut events)
        .await
        .expect_err("a broken source builds");
    let output = failed["errors"].to_string();
    assert!(output.contains(error), "{failed}");
    assert!(
        greeting_of_a_run(&server, &llm)
            .await
            .contains("Hello, Ada!"),
        "the last good version serves"
    );

    let changed = source.replace("Hello, ", "Howdy, ");
    assert_ne!(changed, source, "the sample greets with Hello");
    std::fs::write(folder.join(file), changed).unwrap();
    if let Err(frame) = rebuilt(&mut events).await {
        panic!("the fixed source did not build: {frame}");
    }
    assert!(
        greeting_of_a_run(&server, &llm)
            .await
            .contains("Howdy, Ada!")
    );
}

#[tokio::test]
async fn dev_mode_rebuilds_a_c_tool_when_its_source_changes() {
    dev_rebuilds_on_source_changes(
        &C,
        "app.c",
        "#include \"mozaiks_tool.h\"\nint x = no_such_symbol;\n",
        "no_such_symbol",
    )
    .await;
}

#[tokio::test]
async fn dev_mode_rebuilds_a_js_tool_when_its_source_changes() {
    dev_rebuilds_on_source_changes(
        &JS,
        "app.js",
        "import { x } from './no_such_module.js';\nexport const tool = x;\n",
        "no_such_module",
    )
    .await;
}

/// `new --lang rust` copies sdk/template, named and pointing at the SDK;
/// `tool build` runs sdk/build-plugin, then checks and loads the result.
#[test]
fn a_rust_tool_made_by_new_builds_and_runs() {
    let parent = repo_root().join("target/e2e-tools/rust");
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    let new = mozaiks(&[
        "new",
        "tool",
        "rsample",
        "--lang",
        "rust",
        "--dir",
        parent.to_str().unwrap(),
    ]);
    assert_exit(&new, 0);
    let dir = parent.join("rsample");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    assert!(manifest.contains("id = \"rsample\""), "{manifest}");
    let build = Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(["tool", "build", dir.to_str().unwrap()])
        .env("CARGO_NET_OFFLINE", "true")
        .env(
            "MOZAIKS_COMPONENT_CACHE",
            crate::support::shared_component_cache::shared_dir(),
        )
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert_exit(&build, 0);
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(stderr.contains("functions: greet"), "{stderr}");
    let out = call(&dir, "greet", json!({"name": "Grace"}), &[]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_json(&out)["result"]["ok"]["message"],
        "Hello, Grace!"
    );
    // The name is taken.
    let again = mozaiks(&[
        "new",
        "tool",
        "rsample",
        "--lang",
        "rust",
        "--dir",
        parent.to_str().unwrap(),
    ]);
    assert_exit(&again, 1);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn new_refuses_a_name_that_is_not_a_plugin_id() {
    let out = mozaiks(&["new", "tool", "Bad Name", "--lang", "js", "--dir", "target"]);
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be a tool's name"), "{stderr}");
    assert!(!repo_root().join("target/Bad Name").exists());
}

/// The Python sample as `mozaiks tool build` made it, for other modules'
/// tests; `None` when Python's tests are skipped here.
pub(crate) fn built_python_sample() -> Option<&'static PathBuf> {
    (!skipped(PYTHON.lang)).then(|| PYTHON.built())
}
