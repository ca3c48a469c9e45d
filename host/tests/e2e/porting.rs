//! What a porter of a MozaiksAI workflow meets, with the real binary: YAML
//! workflow files (loaded, their errors with line and column, hot reloaded),
//! `mozaiks validate` reporting every unknown key at once and warnings
//! (files nothing reads) apart from errors, in text and in JSON.

use std::path::Path;

use serde_json::{Value, json};

use crate::cli::{assert_exit, mozaiks};
use crate::support::*;

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn validate_reports_every_unknown_key_and_warns_about_files_nothing_reads() {
    let out = mozaiks(&["validate", "tests/fixtures/workflows/every_unknown_key"]);
    assert_exit(&out, 1);
    let text = output_text(&out);
    for expected in [
        "orchestrator.json: $.initial_message_to_user: unknown field `initial_message_to_user`",
        "orchestrator.json: $.runtime_extensions: unknown field",
        "orchestrator.json: $.metadata: unknown field",
        "agents.json: $.agents[0].auto_tool_mode: unknown field",
        "agents.json: $.agents[0].image_generation_enabled: unknown field",
        "agents.json: $.agents[1].llm_config.cache_seed: unknown field",
        "agents.json: $.agents[1].auto_tool_mode: unknown field",
        "tools.json: $.tools[0].auto_invoke: unknown field",
        "handoffs.json: $.handoff_rules[0].transition_target: unknown field",
        "warning: tests/fixtures/workflows/every_unknown_key/tools: nothing reads this folder",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // expected_error.txt is a second entry nothing reads (its
    // ui_config.yaml is read: visual_agents).
    assert!(
        text.contains("invalid, 11 problem(s), 2 warning(s)"),
        "{text}"
    );

    let out = mozaiks(&[
        "validate",
        "--json",
        "tests/fixtures/workflows/every_unknown_key",
    ]);
    assert_exit(&out, 1);
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let diagnostics = reports[0]["diagnostics"].as_array().unwrap();
    let count = |severity: &str| {
        diagnostics
            .iter()
            .filter(|d| d["severity"] == severity)
            .count()
    };
    // expected_error.txt is a second entry nothing reads.
    assert_eq!(
        (count("error"), count("warning")),
        (11, 2),
        "{diagnostics:#?}"
    );
}

#[test]
fn validate_reads_yaml_files_and_names_the_line_and_column_of_their_errors() {
    let ok = mozaiks(&["validate", "tests/fixtures/workflows/valid_all_features"]);
    assert_exit(&ok, 0);
    let text = output_text(&ok);
    assert!(
        text.contains("valid (MiniReview: 2 agents, 5 tools"),
        "{text}"
    );

    let bad = mozaiks(&["validate", "--json", "tests/fixtures/workflows/yaml_errors"]);
    assert_exit(&bad, 1);
    let reports: Value = serde_json::from_slice(&bad.stdout).unwrap();
    let diagnostics = reports[0]["diagnostics"].as_array().unwrap();
    let find = |file: &str| {
        diagnostics
            .iter()
            .find(|d| d["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("nothing about {file}: {diagnostics:#?}"))
    };
    // A syntax error: line and column.
    let syntax = find("handoffs.yml");
    assert_eq!(
        (syntax["line"].as_u64(), syntax["column"].as_u64()),
        (Some(4), Some(19)),
        "{syntax}"
    );
    // A type error: the path, and line and column in the YAML text.
    let typed = find("agents.yaml");
    assert_eq!(typed["json_path"], "$.agents[1].max_consecutive_auto_reply");
    assert_eq!(
        (typed["line"].as_u64(), typed["column"].as_u64()),
        (Some(7), Some(33)),
        "{typed}"
    );
    // Both spellings of one file.
    let both = find("tools.json");
    assert!(
        both["message"]
            .as_str()
            .unwrap()
            .contains("both tools.json and tools.yaml are present"),
        "{both}"
    );
}

fn write(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[tokio::test]
async fn a_yaml_workflow_is_hot_reloaded_and_its_errors_name_the_yaml_file() {
    let scratch = Scratch::new("yaml-reload");
    let llm = FakeLlm::start(|call| Reply::text(format!("{} here", agent_of(call)))).await;
    let workflows = scratch.0.join("workflows");
    let dir = workflows.join("Yaml");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir.join("orchestrator.yaml"),
        "workflow_name: Yaml\nmax_turns: 5\nhuman_in_the_loop: true\nstartup_mode: UserDriven\norchestration_pattern: DefaultPattern\n",
    );
    let agents = |text: &str| format!("agents:\n  - name: Helper\n    system_message: {text}\n");
    write(
        &dir.join("agents.yml"),
        &agents("You are Helper. Version one."),
    );
    let mut setup = Setup {
        workflows,
        ..Setup::new(&scratch, &llm)
    };
    setup.extra_env.push(("LOG_LEVEL".into(), "warn".into()));
    // A leftover of a MozaiksAI folder: a warning, the workflow still loads.
    write(&dir.join("requirements.txt"), "ag2==0.9.9\n");
    let server = Server::start(&setup).await;
    let (_, listed) = server.get("/api/workflows").await;
    assert_eq!(listed["workflows"][0]["valid"], true, "{listed}");
    assert_eq!(listed["workflows"][0]["errors"], json!([]), "{listed}");
    let warnings = listed["workflows"][0]["warnings"].to_string();
    assert!(
        warnings.contains("requirements.txt: nothing reads this file"),
        "{warnings}"
    );
    // The server logs it too, at `warn` (the file is written in the
    // background: wait for the line).
    let log_file = setup.logs_dir().join("mozaiks.log");
    let logged = |text: &str| {
        text.lines().any(|l| {
            l.contains("requirements.txt: nothing reads this file")
                && l.to_lowercase().contains("warn")
        })
    };
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&log_file).unwrap_or_default();
        if logged(&log) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logged(&log), "no warning in {}:\n{log}", log_file.display());
    let first = listed["workflows"][0]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut reloads = server.ws_path("/api/events/ws").await;

    // A type error in the YAML file: rejected, naming agents.yml, its path,
    // line and column.
    write(
        &dir.join("agents.yml"),
        "agents:\n  - name: Helper\n    system_message: [1, 2]\n",
    );
    let rejected = reloads.until_type("reload").await;
    assert_eq!(rejected["outcome"], "rejected", "{rejected}");
    let errors = rejected["errors"].to_string();
    assert!(
        errors.contains("agents.yml:3:21: $.agents[0].system_message: invalid type: sequence"),
        "{errors}"
    );

    write(
        &dir.join("agents.yml"),
        &agents("You are Helper. Version two."),
    );
    let loaded = reloads
        .until("the fixed workflow", |e| {
            e["kind"] == "workflow" && e["outcome"] == "loaded"
        })
        .await;
    assert_ne!(loaded["version"], json!(first));
    let chat = server.start_chat("Yaml").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "hi"})).await;
    ws.until_type("agent_message").await;
    let system = llm.calls().last().unwrap().system().to_owned();
    assert!(system.contains("Version two"), "{system}");
}
