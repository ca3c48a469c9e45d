//! `mozaiks doctor` passes on a healthy setup and finds each fault it
//! claims to: a stopped store, a removed key, a broken workflow, a deleted
//! component, an occupied port.

use std::path::{Path, PathBuf};

use mozaiks_test_mongo::{NxServer, free_port};
use serde_json::Value;

use crate::support::*;

/// A setup the test may break: copies of two test workflows and the demo, a copy of
/// the adversary plugin (its files, not a link), the planner linked.
struct Site {
    scratch: Scratch,
    workflows: PathBuf,
    plugins: PathBuf,
    llm: FakeLlm,
    port: u16,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "src" && entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl Site {
    async fn new(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let workflows = scratch.0.join("workflows");
        for workflow in ["UiTimeout", "Handoffs"] {
            copy_dir(&test_workflows().join(workflow), &workflows.join(workflow));
        }
        // The demo, with the components/ folder the console uses: the
        // healthy report covers what `scripts/run` serves.
        for demo in ["PlanReview", "TicketDesk"] {
            copy_dir(&demo_workflows().join(demo), &workflows.join(demo));
        }
        // UiTimeout ships its UI component.
        let components = workflows.join("UiTimeout/components");
        std::fs::create_dir_all(&components).unwrap();
        std::fs::write(
            components.join("Confirm.js"),
            "export default function Confirm() {}\n",
        )
        .unwrap();
        let plugins = scratch.0.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        copy_dir(
            &root.join("tests/components/adversary"),
            &plugins.join("adversary"),
        );
        for demo in ["planner", "tickets"] {
            std::os::unix::fs::symlink(root.join("plugins").join(demo), plugins.join(demo))
                .unwrap();
        }
        let llm = FakeLlm::start(|_| Reply::text("unused")).await;
        Self {
            scratch,
            workflows,
            plugins,
            llm,
            port: free_port(),
        }
    }

    /// Runs `mozaiks doctor --json` with the site's flags and these
    /// variables (over a clean environment with the fake LLM configured).
    async fn doctor(&self, env: &[(&str, &str)], unset: &[&str]) -> (i32, Value) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"));
        command
            .args([
                "doctor",
                "--json",
                "--addr",
                &format!("127.0.0.1:{}", self.port),
            ])
            .arg("--workflows-dir")
            .arg(&self.workflows)
            .arg("--plugins-dir")
            .arg(&self.plugins)
            .arg("--data-dir")
            .arg(self.scratch.0.join("data"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ENVIRONMENT", "development")
            .env("MOZAIKS_LOG_DIR", self.scratch.0.join("logs"))
            .env("OPENAI_BASE_URL", self.llm.base_url())
            .env("OPENAI_API_KEY", "test-key")
            .env("LOG_LEVEL", "off");
        for name in unset {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let output = command.output().await.unwrap();
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        (output.status.code().unwrap(), report)
    }
}

impl Site {
    /// Runs doctor and asserts it exits 1 with only `check` failing, on a
    /// message that mentions `text`.
    async fn fails_only_at(&self, env: &[(&str, &str)], unset: &[&str], check: &str, text: &str) {
        let (code, report) = self.doctor(env, unset).await;
        assert_eq!(code, 1, "{report:#}");
        fails_only(&report, check, text);
    }
}

/// The failures of a report, as `check: message` lines.
fn failures(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| {
            format!(
                "{}: {}",
                f["check"].as_str().unwrap(),
                f["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// Asserts exactly one failing check, `check`, whose messages mention `text`.
fn fails_only(report: &Value, check: &str, text: &str) {
    let failed = failures(report);
    assert!(!failed.is_empty(), "no failure: {report:#}");
    assert!(
        failed.iter().all(|f| f.starts_with(&format!("{check}: "))),
        "only {check} should fail: {failed:#?}"
    );
    assert!(
        failed.iter().any(|f| f.contains(text)),
        "no {check} failure mentions `{text}`: {failed:#?}"
    );
    let fixes = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail");
    assert!(
        fixes.into_iter().all(|f| f["fix"].is_string()),
        "every failure has a fix"
    );
}

#[tokio::test]
async fn doctor_passes_on_a_healthy_setup_and_says_what_it_checked() {
    let site = Site::new("doctor-healthy").await;
    let (code, report) = site.doctor(&[], &[]).await;
    assert_eq!(
        (code, &report["healthy"]),
        (0, &Value::Bool(true)),
        "{:#?}",
        failures(&report)
    );
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for check in [
        "config",
        "llm",
        "store",
        "port",
        "plugins",
        "workflows",
        "components",
        "disk",
        "logs",
    ] {
        assert!(checks.contains(&check), "{check} missing from {checks:?}");
    }
    // The example plugin's secrets are optional: without them the demo
    // TicketDesk is valid and nothing fails, as under `scripts/run`.
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    for line in [
        "workflow `TicketDesk` is valid",
        "outbound HTTP https://tickets.example.com",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(line)),
            "no `{line}` in {messages:#?}"
        );
    }
}

#[tokio::test]
async fn doctor_finds_a_stopped_store_with_its_cause() {
    let site = Site::new("doctor-store").await;
    let mongo = NxServer::start(free_port(), &site.scratch.0.join("mongo"));
    let uri = mongo.uri();
    let env = [
        ("MONGO_URI", uri.as_str()),
        ("MONGO_SERVER_SELECTION_TIMEOUT_MS", "1500"),
    ];
    let (code, report) = site.doctor(&env, &[]).await;
    assert_eq!(code, 0, "{:#?}", failures(&report));
    mongo.stop();
    site.fails_only_at(&env, &[], "store", "refused").await;
}

#[tokio::test]
async fn doctor_finds_a_removed_key() {
    let site = Site::new("doctor-key").await;
    site.fails_only_at(
        &[],
        &["OPENAI_API_KEY", "OPENAI_BASE_URL"],
        "llm",
        "OPENAI_API_KEY is not set",
    )
    .await;
    // Outside development, the API keys of the callers are needed too.
    site.fails_only_at(
        &[("ENVIRONMENT", "production")],
        &[],
        "config",
        "no API keys are configured",
    )
    .await;
}

#[tokio::test]
async fn doctor_finds_a_broken_workflow_with_its_file() {
    let site = Site::new("doctor-workflow").await;
    let agents = site.workflows.join("Handoffs/agents.json");
    let text = std::fs::read_to_string(&agents).unwrap();
    std::fs::write(&agents, text.replacen('{', "{ \"oops\": ", 1)).unwrap();
    site.fails_only_at(&[], &[], "workflows", "agents.json")
        .await;
}

#[tokio::test]
async fn doctor_finds_a_deleted_ui_component_and_a_deleted_plugin_component() {
    let site = Site::new("doctor-components").await;
    std::fs::remove_file(site.workflows.join("UiTimeout/components/Confirm.js")).unwrap();
    site.fails_only_at(&[], &[], "components", "Confirm").await;

    std::fs::write(
        site.workflows.join("UiTimeout/components/Confirm.js"),
        "export default 1;\n",
    )
    .unwrap();
    std::fs::remove_file(site.plugins.join("adversary/adversary.wasm")).unwrap();
    let (code, report) = site.doctor(&[], &[]).await;
    assert_eq!(code, 1);
    let failed = failures(&report);
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("plugins: ") && f.contains("adversary")),
        "{failed:#?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("workflows: ") && f.contains("adversary")),
        "the tool no longer resolves: {failed:#?}"
    );
}

#[tokio::test]
async fn doctor_finds_an_occupied_port_and_says_whether_mozaiks_holds_it() {
    let site = Site::new("doctor-port").await;
    let occupant = std::net::TcpListener::bind(("127.0.0.1", site.port)).unwrap();
    site.fails_only_at(&[], &[], "port", "another program")
        .await;
    drop(occupant);

    let setup = Setup {
        workflows: site.workflows.clone(),
        plugins: site.plugins.clone(),
        data: site.scratch.0.join("server-data"),
        llm_url: Some(site.llm.base_url()),
        extra_env: Vec::new(),
        share_component_cache: true,
        stderr: None,
    };
    let _server = Server::start_at(&setup, &format!("127.0.0.1:{}", site.port)).await;
    site.fails_only_at(&[], &[], "port", "a mozaiks server already runs there")
        .await;
}

#[tokio::test]
async fn doctor_checks_plugin_grants_against_this_machine() {
    let site = Site::new("doctor-grants").await;
    let manifest = site.plugins.join("adversary/plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!(
            "{text}\n[capabilities]\nenv = [\"MOZAIKS_DOCTOR_TEST_UNSET\"]\nfs = [{{ host = \"shared\", guest = \"/shared\" }}]\nallowed_outbound_hosts = [\"https://api.example.org\"]\n"
        ),
    )
    .unwrap();
    let (code, report) = site.doctor(&[], &[]).await;
    assert_eq!(code, 1);
    let failed = failures(&report);
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("plugins: ") && f.contains("shared")),
        "the missing granted directory is named: {failed:#?}"
    );

    std::fs::create_dir(site.plugins.join("adversary/shared")).unwrap();
    let (code, report) = site.doctor(&[], &[]).await;
    assert_eq!(code, 0, "{:#?}", failures(&report));
    let findings = report["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| {
        f["status"] == "warn"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("MOZAIKS_DOCTOR_TEST_UNSET")
    }));
    assert!(findings.iter().any(|f| {
        f["status"] == "ok"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("fs shared as /shared (ro)")
    }));
    // Outbound hosts are grants too, listed with the others.
    assert!(findings.iter().any(|f| {
        f["status"] == "ok"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("outbound HTTP https://api.example.org")
    }));
}

/// Doctor starts the server's real logging (every `MOZAIKS_LOG_FORMAT`,
/// files on): a setup whose logging would take the server down cannot pass,
/// and the probe line it writes shows in the file as the server's would.
#[tokio::test]
async fn doctor_starts_the_real_logging_setup_for_every_format() {
    let site = Site::new("doctor-logging").await;
    for format in ["text", "json", "off"] {
        let (code, report) = site
            .doctor(
                &[("MOZAIKS_LOG_FORMAT", format), ("LOG_LEVEL", "info")],
                &[],
            )
            .await;
        assert_eq!(code, 0, "{format}: {:#?}", failures(&report));
        let logging = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "logging")
            .unwrap_or_else(|| panic!("{format}: no logging finding in {report:#}"));
        assert_eq!(logging["status"], "ok", "{format}: {logging}");
        let file = std::fs::read_to_string(site.scratch.0.join("logs/mozaiks.log")).unwrap();
        let probe = file
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .rfind(|l| l["message"] == "logging check by mozaiks doctor")
            .unwrap_or_else(|| panic!("{format}: no probe line in {file}"));
        assert_eq!(
            probe["spans"],
            serde_json::json!(["doctor", "check"]),
            "{probe}"
        );
        assert_eq!(probe["format"], format, "{probe}");
    }
}

/// The `slots` findings' messages of a report.
fn slot_messages(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "slots")
        .map(|f| format!("{} {}", f["status"], f["message"]))
        .collect()
}

#[tokio::test]
async fn doctor_shows_the_slots_configured_and_each_plugins_use_on_a_running_server() {
    let site = Site::new("doctor-slots").await;
    let addr = format!("127.0.0.1:{}", site.port);
    let env = [
        ("MOZAIKS_PLUGIN_SLOTS", "32"),
        ("MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN", "1"),
    ];
    let (_, report) = site.doctor(&env, &[]).await;
    let slots = slot_messages(&report).join("\n");
    assert!(
        slots.contains("32 instance slots in all") && slots.contains("at most 1 per plugin"),
        "{slots}"
    );
    assert!(
        slots.contains(&format!("no mozaiks server answers at {addr}")),
        "{slots}"
    );

    // A server whose one adversary slot is held by a call waiting in ui.ask.
    let llm = FakeLlm::start(confirm_asker(60_000, "unused")).await;
    let setup = Setup {
        workflows: site.workflows.clone(),
        plugins: site.plugins.clone(),
        data: site.scratch.0.join("server-data"),
        llm_url: Some(llm.base_url()),
        extra_env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        share_component_cache: true,
        stderr: None,
    };
    let server = Server::start_at(&setup, &addr).await;
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_type("ui_request").await;
    let (_, report) = site.doctor(&env, &[]).await;
    let slots = slot_messages(&report).join("\n");
    assert!(
        slots.contains(&format!(
            "the server at {addr} uses 1 of its 32 slots (at most 1 per plugin): adversary 1 of 1"
        )),
        "{slots}"
    );
    assert!(
        slots.contains("\"warn\" \"`adversary` holds all 1 of its slots"),
        "{slots}"
    );
}

#[tokio::test]
async fn doctor_finds_a_required_plugin_secret_without_a_value() {
    let site = Site::new("doctor-plugin-secret").await;
    let manifest = site.plugins.join("adversary/plugin.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[secrets.API_TOKEN]\nrequired = true\n[secrets.REGION]\nrequired = false\n");
    std::fs::write(&manifest, text).unwrap();
    site.fails_only_at(
        &[],
        &[],
        "plugin secrets",
        "`adversary` requires the secret(s) API_TOKEN",
    )
    .await;
}

#[tokio::test]
async fn doctor_finds_the_missing_component_of_a_ui_lifecycle_tool() {
    let site = Site::new("doctor-lifecycle-component").await;
    std::fs::write(
        site.workflows.join("UiTimeout/tools.json"),
        r#"{ "tools": [ { "plugin": "adversary", "function": "ask", "tool_type": "UI_Tool", "agent": "Asker",
              "ui": { "component": "Confirm", "mode": "artifact" } } ],
            "lifecycle_tools": [ { "trigger": "before_chat", "plugin": "adversary", "function": "counter",
              "tool_type": "UI_Tool", "ui": { "component": "Keys" } } ] }"#,
    )
    .unwrap();
    site.fails_only_at(&[], &[], "components", "Keys").await;
    std::fs::write(
        site.workflows.join("UiTimeout/components/Keys.js"),
        "export default 1;\n",
    )
    .unwrap();
    let (code, report) = site.doctor(&[], &[]).await;
    assert_eq!(code, 0, "{report:#}");
}

/// A plugin whose instance takes longer to start than its deadline (the
/// Python sample with `deadline_ms = 1`) is a warning naming the setting;
/// the setup stays healthy.
#[tokio::test]
async fn doctor_warns_of_a_plugin_whose_instance_starts_slower_than_its_deadline() {
    let made = tokio::task::spawn_blocking(|| {
        crate::tool_start::python_sample_with_limits("doctorslow", "deadline_ms = 1")
    });
    let Some(slow) = made.await.unwrap() else {
        return;
    };
    let site = Site::new("doctor-start-cost").await;
    std::os::unix::fs::symlink(&slow, site.plugins.join("doctorslow")).unwrap();
    let (code, report) = site.doctor(&[], &[]).await;
    assert_eq!(code, 0, "{:#?}", failures(&report));
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| {
            let message = f["message"].as_str().unwrap();
            f["status"] == "warn"
                && f["check"] == "plugins"
                && message.contains("plugin `doctorslow`: starting an instance took")
                && message.contains("more than the 1 ms deadline of a call")
                && f["fix"].as_str().unwrap().contains("plugin.toml")
        }),
        "{findings:#?}"
    );
}

/// The `cluster` section's messages of a report.
fn cluster_messages(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "cluster")
        .map(|f| {
            format!(
                "{} {}",
                f["status"].as_str().unwrap(),
                f["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// With `MOZAIKS_CLUSTER=on` beside a server of the cluster: the lease
/// indexes that server made, this machine's clock against the database's,
/// and that server registered and alive, all fine. On a database no server
/// prepared, only `cluster` fails, naming the missing lease indexes.
#[tokio::test]
async fn doctor_checks_the_lease_indexes_clock_and_servers_of_a_cluster() {
    let site = Site::new("doctor-cluster").await;
    let mongo = mongo_env(mozaiks_test_mongo::shared_uri());
    let mut env: Vec<(&str, &str)> = mongo
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([("MOZAIKS_CLUSTER", "on"), ("MOZAIKS_SERVER_ID", "me")]);

    // A database no server in cluster mode has opened.
    site.fails_only_at(&env, &[], "cluster", "lease indexes")
        .await;

    let peer_scratch = Scratch::new("doctor-cluster-peer");
    let mut setup = Setup::new(&peer_scratch, &site.llm);
    setup.extra_env.extend(mongo.iter().cloned());
    setup.extra_env.extend([
        ("MOZAIKS_CLUSTER".to_owned(), "on".to_owned()),
        ("MOZAIKS_SERVER_ID".to_owned(), "peer".to_owned()),
    ]);
    let peer = Server::start(&setup).await;
    let (code, report) = site.doctor(&env, &[]).await;
    assert_eq!(code, 0, "{:#?}", failures(&report));
    let messages = cluster_messages(&report);
    for line in [
        "ok the lease indexes are in place",
        "ok this machine's clock is",
        "ok 1 server(s) registered and alive: `peer`",
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(line)),
            "no `{line}` in {messages:#?}"
        );
    }
    peer.kill().await;
}
