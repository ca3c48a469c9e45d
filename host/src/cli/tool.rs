//! `mozaiks tool ...`: the tool author's harness on the command line.

mod adapter_arena;
mod build;
mod c;
mod cache;
mod call_data;
mod check;
mod componentize;
mod go;
mod js;
mod language;
mod new;
mod preinit;
mod python;
mod toolchain;
mod ts;
mod wasm_sections;

pub(crate) use language::Language;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use mozaiks_host::plugin_dir;
use mozaiks_plugin_host::harness::Harness;
use mozaiks_plugin_host::{CompileLimits, EngineConfig, OutboundConfig, PluginEngine};
use serde_json::{Value, json};

use super::{ComponentCacheArgs, NewCommand, ToolCommand};

/// Calls made from the command line run one at a time.
const CLI_CONCURRENT_CALLS: u32 = 4;

pub(crate) async fn run(command: ToolCommand) -> anyhow::Result<ExitCode> {
    match command {
        ToolCommand::Describe {
            plugin,
            plugins_dir,
            json,
            cache,
        } => describe(&plugin, &plugins_dir, json, &cache).await,
        ToolCommand::Call {
            plugin,
            function,
            args,
            context,
            answers,
            allow_hosts,
            ca_files,
            secrets,
            secrets_file,
            files,
            plugins_dir,
            cache,
        } => {
            let inputs = CallInputs {
                idempotency_key: files.idempotency_key.as_deref(),
                attempt: files.attempt,
                args: &args,
                context: &context,
                answers: &answers,
                data_file: files.data_file.as_deref(),
                transcript_file: files.transcript_file.as_deref(),
            };
            let grants = Grants {
                allow_hosts,
                ca_files,
                secrets: secret_values(&secrets, secrets_file.as_deref())?,
            };
            call(&plugin, &function, inputs, &grants, &plugins_dir, &cache).await
        }
        ToolCommand::Build {
            crates,
            script,
            toolchain_script,
            cache,
        } => {
            let settings = build::BuildSettings {
                rust_script: &script,
                toolchain_script: &toolchain_script,
                cache: &cache,
            };
            build::run(&crates, &settings).await
        }
    }
}

/// `mozaiks new ...`.
pub(crate) fn new(command: NewCommand) -> anyhow::Result<ExitCode> {
    match command {
        NewCommand::Tool {
            name,
            lang,
            dir,
            sdk,
            toolchain_script,
        } => new::run(&new::NewTool {
            name: &name,
            language: lang,
            parent: &dir,
            sdk: &sdk,
            toolchain_script: &toolchain_script,
        }),
    }
}

/// What `tool call` grants beyond the plugin's manifest, for offline tests.
#[derive(Debug, Default)]
struct Grants {
    allow_hosts: Vec<String>,
    ca_files: Vec<std::path::PathBuf>,
    /// (name, value) of the plugin's secrets.
    secrets: Vec<(String, String)>,
}

/// `--secret NAME=VALUE` flags, after the lines of `--secrets-file`.
fn secret_values(flags: &[String], file: Option<&Path>) -> anyhow::Result<Vec<(String, String)>> {
    let mut lines: Vec<(String, String)> = Vec::new();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading --secrets-file {}", file.display()))?;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                bail!("{} line {}: not NAME=VALUE", file.display(), index + 1);
            };
            lines.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    for flag in flags {
        let Some((name, value)) = flag.split_once('=') else {
            bail!("--secret takes NAME=VALUE");
        };
        lines.push((name.to_owned(), value.to_owned()));
    }
    Ok(lines)
}

/// Loads a plugin, with its compiled code from the cache when it is there.
async fn load(
    spec: &str,
    plugins_dir: &Path,
    cache_args: &ComponentCacheArgs,
) -> anyhow::Result<mozaiks_plugin_host::Plugin> {
    load_with(spec, plugins_dir, cache_args, &Grants::default()).await
}

/// [`load`], with `grants` added to the plugin's manifest.
async fn load_with(
    spec: &str,
    plugins_dir: &Path,
    cache_args: &ComponentCacheArgs,
    grants: &Grants,
) -> anyhow::Result<mozaiks_plugin_host::Plugin> {
    let cache_dir = cache::dir(cache_args);
    let engine = PluginEngine::new(EngineConfig {
        max_concurrent_calls: CLI_CONCURRENT_CALLS,
        compiler: super::compile::child_compiler(CompileLimits::default())?,
        cache_dir: cache_dir.clone(),
        outbound: OutboundConfig {
            extra_ca_files: grants.ca_files.clone(),
        },
        ..EngineConfig::default()
    })?;
    let location = plugin_dir::locate(spec, plugins_dir)?;
    let plugin = if grants.allow_hosts.is_empty() {
        plugin_dir::load(&engine, &location).await?
    } else {
        let mut manifest = plugin_dir::manifest_of(&location)?;
        manifest
            .capabilities
            .allowed_outbound_hosts
            .extend(grants.allow_hosts.iter().cloned());
        engine
            .load(
                manifest,
                location.manifest_path.clone(),
                &location.wasm_path,
            )
            .await?
    };
    cache::report(&plugin, cache_dir.as_ref());
    // The cache is shared by every tool this user works on: keep what it
    // recently used of the others, within the cache's budget.
    engine.prune_component_cache([plugin.hash()]);
    Ok(plugin)
}

async fn describe(
    spec: &str,
    plugins_dir: &Path,
    as_json: bool,
    cache_args: &ComponentCacheArgs,
) -> anyhow::Result<ExitCode> {
    let plugin = load(spec, plugins_dir, cache_args).await?;
    let functions: Vec<_> = plugin.functions().cloned().collect();
    let start = plugin.start_cost();
    let warnings = start.warnings(&plugin.manifest().limits);
    for warning in &warnings {
        eprintln!("warning: plugin `{}`: {warning}", plugin.id());
    }
    if as_json {
        let out = json!({
            "id": plugin.id(),
            "version": plugin.manifest().version,
            "hash": plugin.hash(),
            "sdk_version": plugin.sdk_version(),
            "compiled_code": cache::outcome_name(plugin.cache_outcome()),
            "start": {
                "memory_mib": start.memory_mib(),
                "ms": u64::try_from(start.time.as_millis()).unwrap_or(u64::MAX),
            },
            "warnings": warnings,
            "functions": functions,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let m = plugin.manifest();
    println!(
        "{} {} ({})",
        plugin.id(),
        m.version,
        plugin.wasm_path().display()
    );
    if !m.description.is_empty() {
        println!("  {}", m.description);
    }
    println!(
        "  limits: {} MiB memory, {} ms CPU per call, {} KiB output",
        m.limits.memory_mib, m.limits.deadline_ms, m.limits.max_output_kib
    );
    println!(
        "  start: an instance took {} MiB and {} ms to start (at load)",
        start.memory_mib(),
        start.time.as_millis()
    );
    for f in &functions {
        println!(
            "\n{}\n  {}\n  parameters: {}",
            f.name,
            f.description,
            serde_json::to_string_pretty(&f.parameters)?.replace('\n', "\n  ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses a JSON argument, or reads it from a file when it starts with `@`.
fn json_arg(name: &str, text: &str) -> anyhow::Result<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --{name} from {path}"))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&text).with_context(|| format!("--{name} is not valid JSON"))
}

/// The JSON flags of `tool call`, as typed.
struct CallInputs<'a> {
    /// `--idempotency-key` (none: the harness's fresh one).
    idempotency_key: Option<&'a str>,
    /// `--attempt`.
    attempt: u32,
    args: &'a str,
    context: &'a str,
    answers: &'a str,
    data_file: Option<&'a Path>,
    transcript_file: Option<&'a Path>,
}

async fn call(
    spec: &str,
    function: &str,
    inputs: CallInputs<'_>,
    grants: &Grants,
    plugins_dir: &Path,
    cache_args: &ComponentCacheArgs,
) -> anyhow::Result<ExitCode> {
    let args = json_arg("args", inputs.args)?;
    let context = json_arg("context", inputs.context)?;
    let answers = json_arg("answers", inputs.answers)?;
    if !context.is_object() {
        bail!("--context must be a JSON object of variable names to values");
    }
    let data = call_data::app_data(inputs.data_file)?;
    let transcript = call_data::transcript(inputs.transcript_file)?;
    let plugin = load_with(spec, plugins_dir, cache_args, grants).await?;
    let harness = grants
        .secrets
        .iter()
        .fold(Harness::new(), |h, (name, value)| h.secret(name, value));
    let harness = match inputs.idempotency_key {
        Some(key) => harness.idempotency_key(key),
        None => harness,
    };
    let report = harness
        .attempt(inputs.attempt)
        .context(context)
        .answers(&answers)
        .data(Arc::clone(&data))
        .chat(transcript)
        .call(&plugin, function, &args)
        .await;
    let mut printed = report.to_json();
    if let (Some(documents), Some(out)) = (call_data::documents(&data), printed.as_object_mut()) {
        out.insert("data".to_owned(), documents);
    }
    println!("{}", serde_json::to_string_pretty(&printed)?);
    Ok(match report.result {
        Ok(Ok(_)) => ExitCode::SUCCESS,
        Ok(Err(_)) => ExitCode::from(3),
        Err(_) => ExitCode::from(2),
    })
}
