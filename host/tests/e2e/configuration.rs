//! Configuration: every problem refused at start with its own clear line;
//! `mozaiks config` shows every value with its source, secrets redacted.

use serde_json::Value;

use crate::support::*;

/// Runs `mozaiks <args>` in a clean environment plus `env`.
async fn mozaiks(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_configuration_is_refused_at_start_with_one_clear_line_per_problem() {
    let scratch = Scratch::new("bad-config");
    let data = scratch.0.join("data");
    let output = mozaiks(
        &["serve", "--data-dir", data.to_str().unwrap()],
        &[
            ("ENVIRONMENT", "staging"),
            ("MOZAIKS_ADDR", "localhost"),
            ("MOZAIKS_SHUTDOWN_GRACE_SECS", "soon"),
            ("MOZAIKS_CORS_ORIGINS", "https://app.example/path"),
            ("MOZAIKS_API_KEYS", "tiny=app"),
            ("MONGO_URI", "postgres://db"),
            ("LOG_LEVEL", "loud"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the configuration has 7 problem(s)"),
        "{stderr}"
    );
    for expected in [
        "ENVIRONMENT=`staging`: must be `development` or `production`",
        "MOZAIKS_ADDR=`localhost`: must be host:port",
        "MOZAIKS_SHUTDOWN_GRACE_SECS=`soon`: must be a positive whole number of seconds",
        "MOZAIKS_CORS_ORIGINS=`https://app.example/path`: an origin is scheme://host[:port] with no path",
        "MOZAIKS_API_KEYS: entry 1 (app `app`): the key must be at least 16 characters",
        "MONGO_URI: must start with mongodb:// or mongodb+srv://",
        "LOG_LEVEL=`loud`: is not a level",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("tiny"), "a key is never printed: {stderr}");
    assert!(!data.exists(), "nothing was started");
}

#[tokio::test]
async fn outside_development_the_server_refuses_to_start_without_api_keys() {
    let output = mozaiks(
        &["serve", "--addr", "127.0.0.1:0"],
        &[("ENVIRONMENT", "production")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no API keys are configured"), "{stderr}");
    assert!(
        stderr.contains("MOZAIKS_API_KEYS=<key>=<app_id>"),
        "{stderr}"
    );
}

#[tokio::test]
async fn config_prints_each_value_with_its_source_and_never_a_secret() {
    let scratch = Scratch::new("config-print");
    let env_file = scratch.0.join("prod.env");
    std::fs::write(
        &env_file,
        "# the deployment's settings\nOPENAI_API_KEY=sk-very-secret-value-123\nMOZAIKS_ADDR=0.0.0.0:9000\n",
    )
    .unwrap();
    let secrets = scratch.0.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(
        secrets.join("MONGO_URI"),
        "mongodb://app:hunter2-password@db:27017/?authSource=admin\n",
    )
    .unwrap();
    std::fs::write(
        secrets.join("MOZAIKS_API_KEYS"),
        "a-secret-api-key-0001=shop\nanother-secret-key-002=shop:ann\n",
    )
    .unwrap();
    let output = mozaiks(
        &["config", "--json", "--env-file", env_file.to_str().unwrap()],
        &[
            ("ENVIRONMENT", "production"),
            ("MOZAIKS_SECRETS_DIR", secrets.to_str().unwrap()),
            ("MOZAIKS_ADDR", "127.0.0.1:7000"),
            ("MOZAIKS_TYPO_DIR", "x"),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for secret in [
        "sk-very-secret",
        "hunter2",
        "a-secret-api-key",
        "another-secret-key",
    ] {
        assert!(!stdout.contains(secret), "`{secret}` printed:\n{stdout}");
    }
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let setting = |name: &str| {
        report["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .clone()
    };
    assert_eq!(
        setting("MOZAIKS_ADDR")["value"],
        "127.0.0.1:7000",
        "the environment wins over the file"
    );
    assert_eq!(setting("MOZAIKS_ADDR")["source"], "environment");
    assert_eq!(
        setting("OPENAI_API_KEY")["source"],
        env_file.to_str().unwrap()
    );
    assert!(
        setting("OPENAI_API_KEY")["value"]
            .as_str()
            .unwrap()
            .contains("redacted")
    );
    assert_eq!(
        setting("MONGO_URI")["value"],
        "mongodb://app:***@db:27017/?authSource=admin"
    );
    assert_eq!(
        setting("MONGO_URI")["source"],
        secrets.join("MONGO_URI").to_str().unwrap()
    );
    let keys = setting("MOZAIKS_API_KEYS")["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        keys.starts_with("2 key(s)") && keys.contains("app `shop` user `ann`"),
        "{keys}"
    );
    assert_eq!(setting("LOG_LEVEL")["source"], "default");
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("MOZAIKS_TYPO_DIR is not a mozaiks setting"),
        "{warnings}"
    );
}
