//! Plugin secrets: a tool reads only the secrets its manifest declares,
//! and every value handed out is masked in its logs, output and result.

use mozaiks_plugin_host::harness::Harness;
use mozaiks_plugin_host::{Manifest, Plugin, SecretDecl};
use serde_json::json;

use crate::support::{engine, repo_root};

const VALUE: &str = "sk-test-\"4f9a\"-ultra";

async fn fetcher_with_secrets(secrets: &[(&str, bool)]) -> Plugin {
    let dir = repo_root().join("tests/components/fetcher");
    let mut manifest = Manifest::new("fetcher");
    for (name, required) in secrets {
        manifest.secrets.insert(
            (*name).to_owned(),
            SecretDecl {
                required: *required,
                description: String::new(),
            },
        );
    }
    engine()
        .load(manifest, dir.join("plugin.toml"), &dir.join("fetcher.wasm"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_secret_is_read_and_never_leaks_into_logs_output_or_result() {
    let plugin = fetcher_with_secrets(&[("API_TOKEN", true)]).await;
    let report = Harness::new()
        .secret("API_TOKEN", VALUE)
        .call(&plugin, "leak_secret", &json!({ "name": "API_TOKEN" }))
        .await;
    let value = match &report.result {
        Ok(Ok(value)) => value.clone(),
        other => panic!("expected a result, got {other:?}"),
    };
    // The tool had the real value (its length), and the result is masked.
    assert_eq!(value["length"], VALUE.len());
    assert_eq!(value["value"], "[redacted secret API_TOKEN]");
    let everything = format!("{:?} {}", report.logs, report.to_json());
    assert!(!everything.contains("4f9a"), "leaked: {everything}");
    for source in ["the secret is", "stdout:", "stderr:"] {
        assert!(
            report
                .logs
                .iter()
                .any(|r| r.message.contains(source)
                    && r.message.contains("[redacted secret API_TOKEN]")),
            "{source}: {:?}",
            report.logs
        );
    }
    assert!(
        report
            .logs
            .iter()
            .any(|r| r.fields.get("secret").map(String::as_str)
                == Some("[redacted secret API_TOKEN]"))
    );
}

#[tokio::test]
async fn only_declared_secrets_are_read_and_a_missing_required_one_fails() {
    let plugin = fetcher_with_secrets(&[("API_TOKEN", true), ("REGION", false)]).await;
    let harness = || {
        Harness::new()
            .secret("OTHER", "x")
            .secret("API_TOKEN", VALUE)
    };
    // Declared by no manifest: refused, even though the store has a value.
    let report = harness()
        .call(&plugin, "leak_secret", &json!({ "name": "OTHER" }))
        .await;
    match &report.result {
        Ok(Err(e)) => assert!(e.to_string().contains("[secrets.OTHER]"), "{e}"),
        other => panic!("expected the tool's error, got {other:?}"),
    }
    // Optional without a value: none.
    let report = harness()
        .call(&plugin, "leak_secret", &json!({ "name": "REGION" }))
        .await;
    assert_eq!(
        report.result.as_ref().unwrap().as_ref().unwrap()["value"],
        json!(null)
    );
    // Required without a value: an error saying who sets it.
    let report = Harness::new()
        .call(&plugin, "leak_secret", &json!({ "name": "API_TOKEN" }))
        .await;
    match &report.result {
        Ok(Err(e)) => assert!(e.to_string().contains("has no value"), "{e}"),
        other => panic!("expected the tool's error, got {other:?}"),
    }
}
