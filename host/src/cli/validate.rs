//! `mozaiks validate <workflow-dir>...`: load and check workflow folders
//! against the plugins in the plugins directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use mozaiks_host::plugin_dir;
use mozaiks_host::{Diagnostic, load_workflow};
use mozaiks_plugin_host::{CompileLimits, EngineConfig, PluginEngine};
use serde_json::json;

pub(crate) async fn run(
    workflows: &[PathBuf],
    plugins_dir: &Path,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = PluginEngine::new(EngineConfig {
        compiler: super::compile::child_compiler(CompileLimits::default())?,
        ..EngineConfig::default()
    })?;
    let (plugins, failures) = plugin_dir::load_all(&engine, plugins_dir)
        .await
        .with_context(|| format!("reading the plugins directory {}", plugins_dir.display()))?;
    let plugins: std::collections::HashMap<String, _> = plugins
        .into_iter()
        .map(|(_, plugin)| (plugin.id().to_owned(), plugin))
        .collect();
    for (dir, err) in &failures {
        eprintln!(
            "warning: plugin {} not loaded, its tools will be reported unknown: {err}",
            dir.display()
        );
    }
    let mut all_valid = true;
    let mut reports = Vec::new();
    for dir in workflows {
        let result = load_workflow(dir, &plugins);
        all_valid &= result.is_ok();
        if as_json {
            reports.push(match &result {
                Ok(w) => json!({
                    "dir": dir, "valid": true, "name": w.name(), "version": w.version(),
                    "cache_seed": w.cache_seed(),
                    "diagnostics": w.warnings().iter().map(diagnostic_json).collect::<Vec<_>>(),
                }),
                Err(diagnostics) => json!({
                    "dir": dir, "valid": false,
                    "diagnostics": diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
                }),
            });
            continue;
        }
        match result {
            Ok(w) => {
                for d in w.warnings() {
                    println!("{d}");
                }
                println!(
                    "{}: valid ({}: {} agents, {} tools, version {}){}",
                    dir.display(),
                    w.name(),
                    w.agents().len(),
                    w.tools().len(),
                    w.version().get(..12).unwrap_or_default(),
                    warning_count(w.warnings())
                );
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    println!("{d}");
                }
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                println!(
                    "{}: invalid, {errors} problem(s){}",
                    dir.display(),
                    warning_count(&diagnostics)
                );
            }
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `, 2 warning(s)`, or nothing when there are none.
fn warning_count(diagnostics: &[Diagnostic]) -> String {
    match diagnostics.iter().filter(|d| !d.is_error()).count() {
        0 => String::new(),
        n => format!(", {n} warning(s)"),
    }
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    json!({
        "severity": d.severity.as_str(),
        "file": d.file,
        "line": d.position.map(|(line, _)| line),
        "column": d.position.map(|(_, column)| column),
        "json_path": d.json_path,
        "message": d.message,
        "help": d.help,
        "text": d.to_string(),
    })
}
