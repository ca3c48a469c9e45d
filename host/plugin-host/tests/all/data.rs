//! The `data` and `chat` imports through a real component (`records`):
//! versions and conflicts, quotas, queries, user scope, the bounds checked
//! at the boundary, chat reads; and components built against
//! `mozaiks:plugin@0.1.0` and `0.1.1` still loading and running on this host.

use std::sync::Arc;

use mozaiks_plugin_host::harness::Harness;
use mozaiks_plugin_host::{
    ChatMessage, DataLimits, DataScope, Manifest, MemoryAppData, MessageRole, Plugin, ScriptedChat,
};
use serde_json::{Value, json};

use crate::support::{engine, ok, repo_root};

async fn records() -> Plugin {
    engine()
        .load_dir(&repo_root().join("tests/components/records"))
        .await
        .unwrap()
}

async fn call(plugin: &Plugin, harness: &Harness, function: &str, args: Value) -> Value {
    let report = harness.call(plugin, function, &args).await;
    ok(&report).clone()
}

#[tokio::test]
async fn a_tool_writes_reads_and_removes_documents_with_optimistic_versions() {
    let plugin = records().await;
    let data = Arc::new(MemoryAppData::default());
    let h = Harness::new().data(Arc::clone(&data));
    let key = json!({ "collection": "orders", "id": "o1" });
    let put = |body: Value, expected: Option<u64>| {
        let mut args = key.clone();
        args["body"] = body;
        if let Some(e) = expected {
            args["expected_version"] = json!(e);
        }
        args
    };
    assert_eq!(
        call(&plugin, &h, "get", key.clone()).await,
        json!({ "document": null })
    );
    assert_eq!(
        call(&plugin, &h, "put", put(json!({ "n": 1 }), Some(0))).await,
        json!({ "version": 1 })
    );
    assert_eq!(
        call(&plugin, &h, "put", put(json!({ "n": 2 }), None)).await,
        json!({ "version": 2 })
    );
    let conflict = call(&plugin, &h, "put", put(json!({ "n": 3 }), Some(1))).await;
    assert_eq!(conflict["error"], "conflict");
    assert_eq!(conflict["found"], 2);
    assert_eq!(
        call(&plugin, &h, "get", key.clone()).await,
        json!({ "document": { "id": "o1", "version": 2, "body": { "n": 2 } } })
    );
    // The caller sees what the call wrote, in the app's scope.
    let stored = data.documents();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].0, stored[0].1.as_str(), stored[0].2.version),
        (DataScope::App, "orders", 2)
    );
    let mut remove = key.clone();
    remove["expected_version"] = json!(1);
    assert_eq!(
        call(&plugin, &h, "remove", remove).await["error"],
        "conflict"
    );
    assert_eq!(
        call(&plugin, &h, "remove", key.clone()).await,
        json!({ "removed": true })
    );
    assert_eq!(
        call(&plugin, &h, "get", key).await,
        json!({ "document": null })
    );
}

#[tokio::test]
async fn user_scoped_documents_are_apart_from_the_apps() {
    let plugin = records().await;
    let data = Arc::new(MemoryAppData::default());
    data.seed(DataScope::User, "notes", "n1", json!({ "mine": true }));
    let h = Harness::new().data(Arc::clone(&data));
    let app = call(
        &plugin,
        &h,
        "get",
        json!({ "collection": "notes", "id": "n1" }),
    )
    .await;
    assert_eq!(app, json!({ "document": null }));
    let user = call(
        &plugin,
        &h,
        "get",
        json!({ "scope": "user", "collection": "notes", "id": "n1" }),
    )
    .await;
    assert_eq!(user["document"]["body"], json!({ "mine": true }));
}

#[tokio::test]
async fn a_query_matches_dotted_fields_in_id_order_and_pages() {
    let plugin = records().await;
    let data = Arc::new(MemoryAppData::default());
    for (id, status, customer) in [
        ("c", "open", "k1"),
        ("a", "open", "k2"),
        ("b", "paid", "k1"),
    ] {
        data.seed(
            DataScope::App,
            "orders",
            id,
            json!({ "status": status, "customer": { "id": customer } }),
        );
    }
    let h = Harness::new().data(data);
    let ids = |v: Value| -> Vec<String> {
        v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let open =
        json!({ "collection": "orders", "filters": [{ "path": "status", "value": "open" }] });
    assert_eq!(ids(call(&plugin, &h, "query", open).await), ["a", "c"]);
    let k1 =
        json!({ "collection": "orders", "filters": [{ "path": "customer.id", "value": "k1" }] });
    assert_eq!(ids(call(&plugin, &h, "query", k1).await), ["b", "c"]);
    let page = json!({ "collection": "orders", "after": "a", "limit": 1 });
    assert_eq!(ids(call(&plugin, &h, "query", page).await), ["b"]);
}

#[tokio::test]
async fn quotas_and_bad_arguments_are_typed_errors_the_tool_can_read() {
    let plugin = records().await;
    let limits = DataLimits {
        max_document_bytes: 64,
        max_documents_per_app: 1,
    };
    let h = Harness::new().data(Arc::new(MemoryAppData::new(limits)));
    let put = |id: &str, body: Value| json!({ "collection": "c", "id": id, "body": body });
    let big = call(
        &plugin,
        &h,
        "put",
        put("big", json!({ "t": "x".repeat(100) })),
    )
    .await;
    assert_eq!(big["error"], "too_large", "{big}");
    assert!(big["message"].as_str().unwrap().contains("64"), "{big}");
    assert_eq!(
        call(&plugin, &h, "put", put("one", json!({}))).await,
        json!({ "version": 1 })
    );
    let full = call(&plugin, &h, "put", put("two", json!({}))).await;
    assert_eq!(full["error"], "quota_exceeded", "{full}");
    let long_id = call(
        &plugin,
        &h,
        "get",
        json!({ "collection": "c", "id": "x".repeat(300) }),
    )
    .await;
    assert_eq!(long_id["error"], "invalid", "{long_id}");
    assert!(
        long_id["message"].as_str().unwrap().contains("256"),
        "{long_id}"
    );
    let no_collection = call(&plugin, &h, "get", json!({ "collection": "", "id": "a" })).await;
    assert_eq!(no_collection["error"], "invalid", "{no_collection}");
}

#[tokio::test]
async fn a_call_without_a_chat_has_no_data() {
    let plugin = records().await;
    let report = plugin
        .call(
            "get",
            &json!({ "collection": "c", "id": "a" }).to_string(),
            Default::default(),
            mozaiks_plugin_host::Ports::no_chat(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report["error"], "invalid", "{report}");
}

#[tokio::test]
async fn a_tool_reads_recent_messages_and_an_agents_latest_structured_output() {
    let plugin = records().await;
    let message = |seq, role, agent: Option<&str>, content: &str| ChatMessage {
        seq,
        role,
        agent: agent.map(str::to_owned),
        content: content.to_owned(),
    };
    let chat = ScriptedChat {
        messages: vec![
            message(1, MessageRole::User, None, "plan a trip"),
            message(
                3,
                MessageRole::Agent,
                Some("Planner"),
                "{\"city\":\"Oslo\"}",
            ),
            message(5, MessageRole::Agent, Some("Writer"), &"é".repeat(40_000)),
        ],
        structured_outputs: [("Planner".to_owned(), json!({ "city": "Oslo" }))].into(),
    };
    let h = Harness::new().chat(chat);
    let recent = call(&plugin, &h, "recent_messages", json!({ "limit": 2 })).await;
    let messages = recent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0],
        json!({ "seq": 3, "role": "agent", "agent": "Planner", "content": "{\"city\":\"Oslo\"}" })
    );
    // 80,000 bytes, cut at 64 KiB with a note.
    let long = messages[1]["content"].as_str().unwrap();
    assert!(
        long.len() < 66_000 && long.ends_with("passed to tools]"),
        "{}",
        long.len()
    );
    assert_eq!(
        call(
            &plugin,
            &h,
            "structured_output",
            json!({ "agent": "Planner" })
        )
        .await,
        json!({ "output": { "city": "Oslo" } })
    );
    assert_eq!(
        call(
            &plugin,
            &h,
            "structured_output",
            json!({ "agent": "Nobody" })
        )
        .await,
        json!({ "output": null })
    );
}

/// `tests/components/prebuilt/probe-v1-wit-<version>.wasm`, committed as
/// built against an older `mozaiks:plugin`: it loads and runs on this host.
/// `absent` names an interface that version did not have yet.
async fn prebuilt_probe_loads_and_runs(version: &str, absent: &str) {
    let dir = repo_root().join("tests/components/prebuilt");
    let wasm = dir.join(format!("probe-v1-wit-{version}.wasm"));
    let bytes = std::fs::read(&wasm).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains(&format!("mozaiks:plugin/types@{version}")),
        "not a {version} component"
    );
    assert!(
        !text.contains(&format!("mozaiks:plugin/{absent}")),
        "not a {version} component"
    );
    let manifest = Manifest::new("probe");
    let plugin = engine()
        .load(manifest, dir.join("plugin.toml"), &wasm)
        .await
        .unwrap();
    assert_eq!(plugin.sdk_version(), Some(version));
    let report = Harness::new().call(&plugin, "version", &json!({})).await;
    assert_eq!(ok(&report), &json!({ "version": 1 }));
}

/// `probe-v1` as built against `mozaiks:plugin@0.1.0` (before `data` and
/// `chat`).
#[tokio::test]
async fn a_component_built_against_wit_0_1_0_loads_and_runs() {
    prebuilt_probe_loads_and_runs("0.1.0", "data").await;
}

/// `probe-v1` as built against `mozaiks:plugin@0.1.1` (before `invocation`).
#[tokio::test]
async fn a_component_built_against_wit_0_1_1_loads_and_runs() {
    prebuilt_probe_loads_and_runs("0.1.1", "invocation").await;
}

#[tokio::test]
async fn a_call_makes_a_bounded_number_of_data_operations() {
    let plugin = records().await;
    let h = Harness::new();
    let out = call(&plugin, &h, "get_many", json!({ "count": 1_005 })).await;
    assert_eq!(
        out["refused_after"],
        mozaiks_plugin_host::MAX_DATA_OPS_PER_CALL,
        "{out}"
    );
    assert!(out["message"].as_str().unwrap().contains("1000"), "{out}");
}

#[tokio::test]
async fn a_query_page_stops_past_its_bytes_and_refuses_too_many_filters_and_a_non_object_body() {
    // Room for the page in the tool's result.
    let dir = repo_root().join("tests/components/records");
    let mut manifest = Manifest::new("records");
    manifest.limits.max_output_kib = 8 * 1024;
    let plugin = engine()
        .load(manifest, dir.join("plugin.toml"), &dir.join("records.wasm"))
        .await
        .unwrap();
    let data = Arc::new(MemoryAppData::default());
    let mib = "x".repeat(1024 * 1024);
    for id in ["a", "b", "c", "d", "e"] {
        data.seed(DataScope::App, "big", id, json!({ "text": mib }));
    }
    let h = Harness::new().data(data);
    let page = call(&plugin, &h, "query", json!({ "collection": "big" })).await;
    // Each body is a little over 1 MiB: the fourth would pass 4 MiB.
    assert_eq!(page["documents"].as_array().unwrap().len(), 3);
    let filters: Vec<Value> = (0..17)
        .map(|n| json!({ "path": format!("f{n}"), "value": n }))
        .collect();
    let many = call(
        &plugin,
        &h,
        "query",
        json!({ "collection": "big", "filters": filters }),
    )
    .await;
    assert_eq!(many["error"], "invalid", "{many}");
    assert!(many["message"].as_str().unwrap().contains("16"), "{many}");
    let array = call(
        &plugin,
        &h,
        "put",
        json!({ "collection": "c", "id": "a", "body": [1] }),
    )
    .await;
    assert_eq!(array["error"], "invalid", "{array}");
    assert!(
        array["message"].as_str().unwrap().contains("JSON object"),
        "{array}"
    );
}

#[tokio::test]
async fn a_tool_gets_at_most_100_messages_a_read() {
    let plugin = records().await;
    let messages = (1..=150)
        .map(|seq| ChatMessage {
            seq,
            role: MessageRole::User,
            agent: None,
            content: format!("m{seq}"),
        })
        .collect();
    let h = Harness::new().chat(ScriptedChat {
        messages,
        structured_outputs: Default::default(),
    });
    let out = call(&plugin, &h, "recent_messages", json!({ "limit": 1000 })).await;
    let got = out["messages"].as_array().unwrap();
    assert_eq!(got.len(), mozaiks_plugin_host::MAX_CHAT_MESSAGES);
    assert_eq!(got[0]["seq"], 51);
    assert_eq!(got[99]["seq"], 150);
}
