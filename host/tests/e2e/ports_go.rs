//! A Go tool reads its secrets, the app's data and the chat through the Go
//! helper (`sdk/go/mozaiks`), called through `mozaiks tool call` with the
//! harness's `--secret`, `--data-file` and `--transcript-file`.
//!
//! The tool is the Go sample of `languages.rs` with its `app.go` replaced,
//! built once per test binary. `MOZAIKS_SKIP_TOOLCHAINS=go` skips these
//! tests on a laptop without Go's toolchain (never in CI).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::cli::{assert_exit, stdout_json};
use crate::languages::{GO, built_variant, call, skipped, tool_error};
use crate::support::*;

/// The tool's source: a function per wrapper, each returning what the
/// wrapper gave (or its error, as the helper makes it a tool error).
const SOURCE: &str = r#"app.go:package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"mozaiks.local/tool/mozaiks"
)

type target struct {
	Scope      string          `json:"scope"`
	Collection string          `json:"collection"`
	ID         string          `json:"id"`
	Body       json.RawMessage `json:"body"`
	Expected   *uint64         `json:"expected"`
	Catch      bool            `json:"catch"`
}

func scope(name string) mozaiks.Scope {
	if name == "user" {
		return mozaiks.User
	}
	return mozaiks.App
}

func decode(raw json.RawMessage, into any) error {
	if err := json.Unmarshal(raw, into); err != nil {
		return mozaiks.Errorf(mozaiks.InvalidArguments, "%v", err)
	}
	return nil
}

var kinds = map[mozaiks.DataErrorKind]string{mozaiks.Conflict: "conflict",
	mozaiks.TooLarge: "too_large", mozaiks.QuotaExceeded: "quota_exceeded", mozaiks.Invalid: "invalid"}

// caught is a DataError as the result, when the call asks for it; any
// other error as it is.
func caught(err error, catch bool) (any, error) {
	var failure *mozaiks.DataError
	if catch && errors.As(err, &failure) {
		return map[string]any{"kind": kinds[failure.Kind], "found": failure.Found, "message": failure.Error()}, nil
	}
	return nil, err
}

func init() {
	mozaiks.Function("secret", "Reads a secret.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args struct {
				Name    string `json:"name"`
				Require bool   `json:"require"`
			}
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			value, ok, err := "", true, error(nil)
			if args.Require {
				value, err = call.RequireSecret(args.Name)
			} else {
				value, ok, err = call.Secret(args.Name)
			}
			if err != nil {
				return nil, err
			}
			reversed := []byte(value)
			for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
				reversed[i], reversed[j] = reversed[j], reversed[i]
			}
			return map[string]any{"value": value, "ok": ok, "reversed": string(reversed)}, nil
		})
	mozaiks.Function("get", "Reads a document.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args target
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			return call.DataGet(scope(args.Scope), args.Collection, args.ID)
		})
	mozaiks.Function("put", "Writes a document.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args target
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			version, err := call.DataPut(scope(args.Scope), args.Collection, args.ID, args.Body, args.Expected)
			if err != nil {
				return caught(err, args.Catch)
			}
			return map[string]any{"version": version}, nil
		})
	mozaiks.Function("put_new", "Writes a document only if it does not exist.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args target
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			version, err := call.DataPut(mozaiks.App, args.Collection, args.ID, args.Body, mozaiks.IfVersion(0))
			if err != nil {
				return caught(err, true)
			}
			return map[string]any{"version": version}, nil
		})
	mozaiks.Function("put_func", "Writes a body that is not JSON.", `{"type":"object"}`,
		func(_ json.RawMessage, call *mozaiks.Call) (any, error) {
			return call.DataPut(mozaiks.App, "orders", "o-9", func() {}, nil)
		})
	mozaiks.Function("remove", "Removes a document.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args target
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			removed, err := call.DataRemove(scope(args.Scope), args.Collection, args.ID, args.Expected)
			if err != nil {
				return caught(err, args.Catch)
			}
			return map[string]any{"removed": removed}, nil
		})
	mozaiks.Function("query", "Queries documents.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args struct {
				Scope      string `json:"scope"`
				Collection string `json:"collection"`
				Filters    []struct {
					Path  string          `json:"path"`
					Value json.RawMessage `json:"value"`
				} `json:"filters"`
				After string `json:"after"`
				Limit uint32 `json:"limit"`
			}
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			query := mozaiks.Query{After: args.After, Limit: args.Limit}
			for _, f := range args.Filters {
				query.Filters = append(query.Filters, mozaiks.Filter{Path: f.Path, Value: f.Value})
			}
			return call.DataQuery(scope(args.Scope), args.Collection, query)
		})
	mozaiks.Function("wrapped", "Returns a wrapped error.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args struct {
				Kind string `json:"kind"`
			}
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			if args.Kind == "tool" {
				return nil, fmt.Errorf("outer: %w", mozaiks.Errorf(mozaiks.Cancelled, "inner"))
			}
			_, err := call.DataPut(mozaiks.App, "", "x", map[string]any{}, nil)
			return nil, fmt.Errorf("saving: %w", err)
		})
	mozaiks.Function("recent", "Reads the chat's last messages.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args struct {
				Limit uint32 `json:"limit"`
			}
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			return call.RecentMessages(args.Limit), nil
		})
	mozaiks.Function("plan", "Reads an agent's structured output.", `{"type":"object"}`,
		func(raw json.RawMessage, call *mozaiks.Call) (any, error) {
			var args struct {
				Agent string `json:"agent"`
				Wrong bool   `json:"wrong"`
			}
			if err := decode(raw, &args); err != nil {
				return nil, err
			}
			if args.Wrong {
				var plan struct {
					City int `json:"city"`
				}
				_, err := call.StructuredOutput(args.Agent, &plan)
				return plan, err
			}
			var plan struct {
				City string `json:"city"`
				Days int    `json:"days"`
			}
			found, err := call.StructuredOutput(args.Agent, &plan)
			if err != nil {
				return nil, err
			}
			return map[string]any{"found": found, "plan": plan}, nil
		})
}

func main() {}
"#;

/// The secrets the tool's manifest declares: one required, one optional.
const SECRETS: &str = r#"
[secrets.API_TOKEN]
required = true
description = "A token"

[secrets.REGION]
required = false
description = "An optional setting"
"#;

/// The tool, built once per test binary.
fn tool() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| built_variant(&GO, "goports", SOURCE, SECRETS))
}

/// The report of a call that answered a result (exit 0), and the result.
#[track_caller]
fn ok(output: &std::process::Output) -> (Value, Value) {
    assert_exit(output, 0);
    let report = stdout_json(output);
    let result = report["result"]["ok"].clone();
    (report, result)
}

#[test]
fn a_go_tool_reads_its_declared_secrets_and_no_other() {
    if skipped(GO.lang) {
        return;
    }
    let dir = tool();
    let token = ["--secret", "API_TOKEN=tok-8f3e1d"];

    // A declared secret with a value: the tool has it (its reversed text
    // shows), and the value itself is redacted from the result.
    let (_, result) = ok(&call(dir, "secret", json!({"name": "API_TOKEN"}), &token));
    assert_eq!(
        result,
        json!({"value": "[redacted secret API_TOKEN]", "ok": true, "reversed": "d1e3f8-kot"})
    );
    let (_, result) = ok(&call(
        dir,
        "secret",
        json!({"name": "API_TOKEN", "require": true}),
        &token,
    ));
    assert_eq!(result["reversed"], "d1e3f8-kot");

    // An optional secret without a value: ok is false, no error; required,
    // it is an error that names it.
    let (_, result) = ok(&call(dir, "secret", json!({"name": "REGION"}), &token));
    assert_eq!(result, json!({"value": "", "ok": false, "reversed": ""}));
    let (kind, message) = tool_error(&call(
        dir,
        "secret",
        json!({"name": "REGION", "require": true}),
        &token,
    ));
    assert_eq!(kind, "failed");
    assert_eq!(message, "the secret `REGION` has no value");
    let (_, result) = ok(&call(
        dir,
        "secret",
        json!({"name": "REGION", "require": true}),
        &["--secret", "REGION=eu-north"],
    ));
    assert_eq!(result["reversed"], "htron-ue");

    // A required secret without a value: the host's reason.
    let (kind, message) = tool_error(&call(dir, "secret", json!({"name": "API_TOKEN"}), &[]));
    assert_eq!(kind, "failed");
    assert!(
        message.contains("the required secret `API_TOKEN` of plugin `goports` has no value"),
        "{message}"
    );

    // A name the manifest does not declare fails, even with a value.
    let (kind, message) = tool_error(&call(
        dir,
        "secret",
        json!({"name": "OTHER"}),
        &["--secret", "OTHER=visible"],
    ));
    assert_eq!(kind, "failed");
    assert!(
        message.contains("`OTHER` is not a secret of plugin `goports`")
            && message.contains("[secrets.OTHER]"),
        "{message}"
    );
}

/// `data.json` for the data test: three orders and a note of the user.
fn seeded(scratch: &Scratch) -> PathBuf {
    let data = scratch.0.join("data.json");
    std::fs::write(
        &data,
        json!({
            "app": {"orders": {
                "o-1": {"status": "open", "customer": {"id": "c1"}},
                "o-2": {"status": "paid", "customer": {"id": "c1"}},
                "o-3": {"status": "open", "customer": {"id": "c2"}}
            }},
            "user": {"notes": {"n-1": {"text": "mine"}}}
        })
        .to_string(),
    )
    .unwrap();
    data
}

fn with_data(data: &Path) -> [&str; 2] {
    ["--data-file", data.to_str().unwrap()]
}

#[test]
fn a_go_tool_reads_writes_queries_and_removes_its_apps_documents() {
    if skipped(GO.lang) {
        return;
    }
    let dir = tool();
    let scratch = Scratch::new("go-data");
    let data = seeded(&scratch);
    let files = with_data(&data);
    let seed = stdout_json(&call(
        dir,
        "get",
        json!({"collection": "orders", "id": "o-1"}),
        &files,
    ))["data"]
        .clone();

    // Reads: a document of the app, one of the user, one that is not there.
    let (_, result) = ok(&call(
        dir,
        "get",
        json!({"collection": "orders", "id": "o-1"}),
        &files,
    ));
    assert_eq!(
        result,
        json!({"id": "o-1", "version": 1, "body": {"status": "open", "customer": {"id": "c1"}}})
    );
    let (_, result) = ok(&call(
        dir,
        "get",
        json!({"scope": "user", "collection": "notes", "id": "n-1"}),
        &files,
    ));
    assert_eq!(result["body"], json!({"text": "mine"}));
    let (_, result) = ok(&call(
        dir,
        "get",
        json!({"collection": "orders", "id": "o-404"}),
        &files,
    ));
    assert_eq!(result, Value::Null);

    // A write at the expected version raises it; the report shows it.
    let (report, result) = ok(&call(
        dir,
        "put",
        json!({"collection": "orders", "id": "o-1", "body": {"status": "paid"}, "expected": 1}),
        &files,
    ));
    assert_eq!(result, json!({"version": 2}));
    assert_eq!(
        report["data"]["app"]["orders"]["o-1"],
        json!({"version": 2, "body": {"status": "paid"}})
    );
    // No expected version: whatever is there. A new document is version 1.
    let (report, result) = ok(&call(
        dir,
        "put",
        json!({"scope": "user", "collection": "notes", "id": "n-2", "body": {"text": "two"}}),
        &files,
    ));
    assert_eq!(result, json!({"version": 1}));
    assert_eq!(
        report["data"]["user"]["notes"]["n-2"],
        json!({"version": 1, "body": {"text": "two"}})
    );
    let (_, result) = ok(&call(
        dir,
        "put_new",
        json!({"collection": "orders", "id": "o-9", "body": {"status": "new"}}),
        &files,
    ));
    assert_eq!(result, json!({"version": 1}));

    // A write at another version is a Conflict with the version found
    // (errors.As), or none when the document does not exist; nothing is
    // written.
    let (report, result) = ok(&call(
        dir,
        "put",
        json!({"collection": "orders", "id": "o-1", "body": {"status": "paid"}, "expected": 5,
               "catch": true}),
        &files,
    ));
    assert_eq!(
        result,
        json!({"kind": "conflict", "found": 1,
               "message": "version conflict: the document is at version 1"})
    );
    assert_eq!(report["data"], seed);
    let (_, result) = ok(&call(
        dir,
        "put_new",
        json!({"collection": "orders", "id": "o-1", "body": {"status": "new"}}),
        &files,
    ));
    assert_eq!(result["found"], 1);
    let (_, result) = ok(&call(
        dir,
        "put",
        json!({"collection": "orders", "id": "o-404", "body": {}, "expected": 3, "catch": true}),
        &files,
    ));
    assert_eq!(
        result,
        json!({"kind": "conflict", "found": null,
               "message": "version conflict: the document does not exist"})
    );
    // Returned from the function, a conflict is a failed tool error.
    let (kind, message) = tool_error(&call(
        dir,
        "put",
        json!({"collection": "orders", "id": "o-1", "body": {"status": "paid"}, "expected": 5}),
        &files,
    ));
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("failed", "version conflict: the document is at version 1")
    );

    // Invalid (a body that is not a JSON object, here or on the host) is an
    // invalid-arguments tool error, wrapped or not.
    let refused = call(
        dir,
        "put",
        json!({"collection": "orders", "id": "o-1", "body": [1, 2]}),
        &files,
    );
    assert_eq!(stdout_json(&refused)["data"], seed);
    let (_, result) = ok(&call(
        dir,
        "put",
        json!({"collection": "orders", "id": "o-1", "body": [1, 2], "catch": true}),
        &files,
    ));
    assert_eq!(
        result,
        json!({"kind": "invalid", "found": null, "message": "a document body is a JSON object"})
    );
    let (kind, message) = tool_error(&refused);
    assert_eq!(
        (kind.as_str(), message.as_str()),
        (
            "invalid_arguments",
            "invalid arguments: a document body is a JSON object"
        )
    );
    let (kind, message) = tool_error(&call(dir, "put_func", json!({}), &files));
    assert_eq!(kind, "invalid_arguments");
    assert!(
        message.starts_with("invalid arguments: the document body is not JSON: "),
        "{message}"
    );
    let (kind, message) = tool_error(&call(dir, "wrapped", json!({"kind": "data"}), &files));
    assert_eq!(kind, "invalid_arguments");
    assert!(
        message.starts_with("invalid arguments: saving: a collection name is 1 to 128 bytes"),
        "{message}"
    );
    let (kind, message) = tool_error(&call(dir, "wrapped", json!({"kind": "tool"}), &files));
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("cancelled", "cancelled: outer: inner")
    );

    // Removes: at the expected version, at another (a conflict), absent.
    let (report, result) = ok(&call(
        dir,
        "remove",
        json!({"collection": "orders", "id": "o-1", "expected": 1}),
        &files,
    ));
    assert_eq!(result, json!({"removed": true}));
    assert!(
        report["data"]["app"]["orders"].get("o-1").is_none(),
        "{report}"
    );
    let (_, result) = ok(&call(
        dir,
        "remove",
        json!({"collection": "orders", "id": "o-1", "expected": 7, "catch": true}),
        &files,
    ));
    assert_eq!(result["found"], 1);
    let (_, result) = ok(&call(
        dir,
        "remove",
        json!({"collection": "orders", "id": "o-404"}),
        &files,
    ));
    assert_eq!(result, json!({"removed": false}));
    let (report, result) = ok(&call(
        dir,
        "remove",
        json!({"scope": "user", "collection": "notes", "id": "n-1"}),
        &files,
    ));
    assert_eq!(result, json!({"removed": true}));
    assert!(
        report["data"]["user"]["notes"].get("n-1").is_none(),
        "{report}"
    );

    // Queries: every filter matches (a dotted path too), by id, paged.
    let ids = |args: Value| -> Vec<String> {
        let (_, result) = ok(&call(dir, "query", args, &files));
        result
            .as_array()
            .unwrap_or_else(|| panic!("{result}"))
            .iter()
            .map(|doc| doc["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(json!({"collection": "orders"})),
        ["o-1", "o-2", "o-3"],
        "no limit is 100"
    );
    let open = json!([{"path": "status", "value": "open"}]);
    assert_eq!(
        ids(json!({"collection": "orders", "filters": open})),
        ["o-1", "o-3"]
    );
    assert_eq!(
        ids(json!({"collection": "orders", "filters": open, "limit": 1})),
        ["o-1"]
    );
    assert_eq!(
        ids(json!({"collection": "orders", "filters": open, "after": "o-1"})),
        ["o-3"]
    );
    assert_eq!(
        ids(json!({"collection": "orders", "filters": [
            {"path": "customer.id", "value": "c1"}, {"path": "status", "value": "paid"}]})),
        ["o-2"]
    );
    assert!(ids(json!({"collection": "nothing"})).is_empty());
    let (_, result) = ok(&call(
        dir,
        "query",
        json!({"collection": "orders", "filters": open, "limit": 1}),
        &files,
    ));
    assert_eq!(
        result,
        json!([{"id": "o-1", "version": 1, "body": {"status": "open", "customer": {"id": "c1"}}}])
    );
}

#[test]
fn a_go_tool_reads_the_chats_messages_and_an_agents_structured_output() {
    if skipped(GO.lang) {
        return;
    }
    let dir = tool();
    let scratch = Scratch::new("go-chat");
    let chat = scratch.0.join("chat.json");
    std::fs::write(
        &chat,
        json!({
            "messages": [
                {"seq": 1, "role": "user", "content": "plan a trip"},
                {"seq": 3, "role": "agent", "agent": "Planner", "content": "{\"city\": \"Oslo\"}"},
                {"seq": 5, "role": "agent", "agent": "Critic", "content": "Fine."}
            ],
            "structured_outputs": {"Planner": {"city": "Oslo", "days": 3}}
        })
        .to_string(),
    )
    .unwrap();
    let files = ["--transcript-file", chat.to_str().unwrap()];

    // The last messages, oldest first; a person's message has no agent.
    let (_, result) = ok(&call(dir, "recent", json!({"limit": 10}), &files));
    assert_eq!(
        result,
        json!([
            {"seq": 1, "role": "user", "content": "plan a trip"},
            {"seq": 3, "role": "agent", "agent": "Planner", "content": "{\"city\": \"Oslo\"}"},
            {"seq": 5, "role": "agent", "agent": "Critic", "content": "Fine."}
        ])
    );
    let (_, result) = ok(&call(dir, "recent", json!({"limit": 2}), &files));
    let seqs: Vec<u64> = result
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 5]);
    // No chat: no messages (an empty list, not null).
    let (_, result) = ok(&call(dir, "recent", json!({"limit": 10}), &[]));
    assert_eq!(result, json!([]));

    // An agent's structured output, decoded; none for an agent without one.
    let (_, result) = ok(&call(dir, "plan", json!({"agent": "Planner"}), &files));
    assert_eq!(
        result,
        json!({"found": true, "plan": {"city": "Oslo", "days": 3}})
    );
    let (_, result) = ok(&call(dir, "plan", json!({"agent": "Critic"}), &files));
    assert_eq!(
        result,
        json!({"found": false, "plan": {"city": "", "days": 0}})
    );
    // One that does not fit what the tool expected is a failed tool error
    // naming the agent.
    let (kind, message) = tool_error(&call(
        dir,
        "plan",
        json!({"agent": "Planner", "wrong": true}),
        &files,
    ));
    assert_eq!(kind, "failed");
    assert!(
        message.starts_with("the structured output of `Planner` is not what was expected"),
        "{message}"
    );
}

/// At the server's quota of documents (10,000 per app by default), a new
/// document is a QuotaExceeded, a failed tool error; a query returns at
/// most 100 documents, with or without a limit.
#[test]
fn a_go_tool_meets_the_quota_of_documents_and_the_most_a_query_returns() {
    if skipped(GO.lang) {
        return;
    }
    let dir = tool();
    let scratch = Scratch::new("go-quota");
    let data = scratch.0.join("data.json");
    let bulk: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("d-{i:05}"), json!({"n": i})))
        .collect();
    std::fs::write(&data, json!({"app": {"bulk": bulk}}).to_string()).unwrap();
    let files = with_data(&data);

    let new = json!({"collection": "bulk", "id": "d-new", "body": {"n": -1}, "catch": true});
    let (_, result) = ok(&call(dir, "put", new.clone(), &files));
    assert_eq!(result["kind"], "quota_exceeded", "{result}");
    let quota =
        "already holds 10000 documents, the most allowed (MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP)";
    assert!(
        result["message"].as_str().unwrap().ends_with(quota),
        "{result}"
    );
    let mut thrown = new;
    thrown["catch"] = json!(false);
    let (kind, message) = tool_error(&call(dir, "put", thrown, &files));
    assert_eq!(kind, "failed");
    assert!(message.ends_with(quota), "{message}");

    for limit in [json!(null), json!(150)] {
        let (_, result) = ok(&call(
            dir,
            "query",
            json!({"collection": "bulk", "limit": limit}),
            &files,
        ));
        let docs = result.as_array().unwrap();
        assert_eq!(docs.len(), 100, "limit {limit}");
        assert_eq!(docs[99]["id"], "d-00099");
    }
}
