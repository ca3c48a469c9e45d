//! `mozaiks config`: the effective configuration, secrets redacted, with
//! where each value came from; or every problem with it.

use std::process::ExitCode;

use mozaiks_host::Config;
use serde_json::json;

use super::ConfigArgs;

pub(crate) fn run(args: &ConfigArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.overrides());
    if as_json {
        let value = match &config {
            Ok(config) => json!({
                "valid": true, "settings": config.settings(), "warnings": config.warnings,
                "problems": [],
            }),
            Err(errors) => json!({
                "valid": false,
                "problems": errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        match &config {
            Ok(config) => {
                let width = config
                    .settings()
                    .iter()
                    .map(|s| s.name.len())
                    .max()
                    .unwrap_or(0);
                for setting in config.settings() {
                    println!(
                        "{:<width$}  {}  ({})",
                        setting.name, setting.value, setting.source
                    );
                }
                for warning in &config.warnings {
                    println!("warning: {warning}");
                }
            }
            Err(errors) => println!("{errors}"),
        }
    }
    Ok(if config.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
