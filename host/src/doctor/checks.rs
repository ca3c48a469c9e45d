//! The checks of `mozaiks doctor`, one function each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mozaiks_plugin_host::DirMode;
use mozaiks_plugin_host::{ChildCompiler, Compiler, EngineConfig, Plugin, PluginEngine};

use super::Finding;
use crate::config::{Config, Environment};
use crate::plugin_dir;
use crate::store::StoreConfig;
use crate::workflow::model::ToolKind;
use crate::workflow::{Workflow, load_workflow};

/// How long the store and the LLM endpoint get to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// How long an occupied port gets to say whether it is a mozaiks server.
const PORT_PROBE_WAIT: Duration = Duration::from_secs(2);

/// Less free space than this fails: the store cannot append events and
/// log files cannot rotate.
const MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// Less free space than this warns: a day of a busy server's logs and
/// chats.
const LOW_FREE_BYTES: u64 = 1024 * 1024 * 1024;

/// What a workflow folder holds for the console: `components/<Name>.js`.
const COMPONENTS_DIR: &str = "components";

pub(super) fn config(config: &Config) -> Finding {
    let auth = if config.access.enabled {
        format!("auth on ({})", config.access.keys.describe())
    } else {
        "auth off".to_owned()
    };
    let mut message = format!(
        "configuration valid: environment {}, {auth}, {}",
        config.environment,
        config.store.describe()
    );
    if config.environment == Environment::Production && config.cors_origins.is_empty() {
        message.push_str(", no CORS origins (browsers on other origins are refused)");
    }
    Finding::ok("config", message)
}

pub(super) async fn llm(config: &Config) -> Vec<Finding> {
    let llm = &config.llm;
    if llm.api_key.is_none() && llm.base_url.is_none() {
        return vec![Finding::fail(
            "llm",
            "no LLM configured: OPENAI_API_KEY is not set, so every chat reports LLM_NOT_CONFIGURED",
            "set OPENAI_API_KEY (environment, .env, or a file OPENAI_API_KEY in MOZAIKS_SECRETS_DIR), or OPENAI_BASE_URL for a local OpenAI-compatible server",
        )];
    }
    let mut findings = Vec::new();
    if llm.base_url.is_none()
        && llm
            .api_key
            .as_deref()
            .is_some_and(|k| !k.starts_with("sk-"))
    {
        findings.push(Finding::warn(
            "llm",
            "OPENAI_API_KEY does not look like an OpenAI key (they start with sk-)",
            "copy the key again from https://platform.openai.com/api-keys",
        ));
    }
    let base = llm
        .base_url
        .clone()
        .unwrap_or_else(|| "https://api.openai.com/v1".to_owned());
    let url = format!("{}/models", base.trim_end_matches('/'));
    crate::llm::install_crypto_provider();
    let mut request = reqwest::Client::new().get(&url).timeout(ANSWER_WAIT);
    if let Some(key) = &llm.api_key {
        request = request.bearer_auth(key);
    }
    findings.push(match request.send().await {
        Ok(response) => match response.status().as_u16() {
            200..=299 => Finding::ok("llm", format!("the LLM endpoint {base} answers and accepts the key")),
            401 | 403 => Finding::fail(
                "llm",
                format!("the LLM endpoint {base} refused the key (HTTP {})", response.status()),
                "check OPENAI_API_KEY: it may be mistyped, revoked or for another endpoint",
            ),
            404 => Finding::warn(
                "llm",
                format!("the LLM endpoint {base} has no /models route (HTTP 404); the key could not be checked"),
                "check that OPENAI_BASE_URL ends in /v1",
            ),
            _ => Finding::warn(
                "llm",
                format!("GET {url} answered HTTP {}", response.status()),
                "check the endpoint's status page; chats will retry",
            ),
        },
        Err(error) => Finding::fail(
            "llm",
            format!("the LLM endpoint {base} cannot be reached: {}", error_chain(&error)),
            "check OPENAI_BASE_URL, DNS and the network (a proxy or firewall?)",
        ),
    });
    findings
}

pub(super) async fn store(config: &Config) -> Finding {
    let opened = tokio::time::timeout(ANSWER_WAIT, config.store.open()).await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(error)) => return store_failure(config, &error.to_string()),
        Err(_) => return store_failure(config, "no answer within 15 s"),
    };
    match tokio::time::timeout(ANSWER_WAIT, store.ping()).await {
        Ok(Ok(())) => Finding::ok("store", format!("the {} answers", config.store.describe())),
        Ok(Err(error)) => store_failure(config, &error.to_string()),
        Err(_) => store_failure(config, "no answer within 15 s"),
    }
}

fn store_failure(config: &Config, cause: &str) -> Finding {
    let fix = match &config.store {
        StoreConfig::Embedded { .. }
            if cause.contains("lock") || cause.contains("already open") =>
        {
            "a server (or another command) has the embedded store open: stop it, or use `--server` where a command offers it"
        }
        StoreConfig::Embedded { .. } => {
            "check that MOZAIKS_DATA_DIR is writable by this user and its disk is not full"
        }
        StoreConfig::Mongo(_) => {
            "start MongoDB or correct MONGO_URI (host, port, user, password, authSource); the cause above says which"
        }
    };
    Finding::fail(
        "store",
        format!("the {} does not work: {cause}", config.store.describe()),
        fix,
    )
}

pub(super) async fn port(addr: &str) -> Finding {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => Finding::ok("port", format!("{addr} is free")),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            let who = if answers_as_mozaiks(addr).await {
                "a mozaiks server already runs there"
            } else {
                "another program listens there"
            };
            let port = addr.rsplit_once(':').map_or("", |(_, p)| p);
            Finding::fail(
                "port",
                format!("{addr} is in use: {who}"),
                format!(
                    "stop it (`ss -ltnp 'sport = :{port}'` shows which process) or set MOZAIKS_ADDR to a free port"
                ),
            )
        }
        Err(error) => Finding::fail(
            "port",
            format!("cannot listen on {addr}: {error}"),
            "check MOZAIKS_ADDR: the host must be an address of this machine; ports below 1024 need privileges",
        ),
    }
}

async fn answers_as_mozaiks(addr: &str) -> bool {
    let addr = addr.replacen("0.0.0.0:", "127.0.0.1:", 1);
    let url = format!("http://{addr}/health/live");
    let Ok(Ok(response)) =
        tokio::time::timeout(PORT_PROBE_WAIT, reqwest::Client::new().get(&url).send()).await
    else {
        return false;
    };
    response
        .json::<serde_json::Value>()
        .await
        .is_ok_and(|body| body["status"] == "ok")
}

/// Every required secret a loaded plugin declares has a value under
/// `MOZAIKS_SECRETS_DIR/plugins/<id>/`.
pub(super) fn plugin_secrets(config: &Config, catalog: &HashMap<String, Plugin>) -> Vec<Finding> {
    let mut ids: Vec<&String> = catalog.keys().collect();
    ids.sort();
    let mut findings = Vec::new();
    for id in ids {
        let Some(plugin) = catalog.get(id) else {
            continue;
        };
        let manifest = plugin.manifest();
        let missing =
            crate::plugin_secrets::missing_required(manifest, config.secrets_dir.as_deref());
        if missing.is_empty() {
            continue;
        }
        let folder = match &config.secrets_dir {
            Some(dir) => crate::plugin_secrets::plugin_dir(dir, &manifest.id)
                .display()
                .to_string(),
            None => format!("$MOZAIKS_SECRETS_DIR/plugins/{}", manifest.id),
        };
        findings.push(Finding::fail(
            "plugin secrets",
            format!(
                "plugin `{}` requires the secret(s) {} and has no value for them",
                manifest.id,
                missing.join(", ")
            ),
            format!(
                "write each value to a file named after it in {folder} (set MOZAIKS_SECRETS_DIR)"
            ),
        ));
    }
    if findings.is_empty() {
        findings.push(Finding::ok(
            "plugin secrets",
            "every required plugin secret has a value",
        ));
    }
    findings
}

pub(super) async fn plugins(config: &Config) -> (Vec<Finding>, HashMap<String, Plugin>) {
    let mut catalog = HashMap::new();
    let dir = &config.plugins_dir;
    // The server's compiler: this binary, under the configured limits.
    let compiler = match std::env::current_exe() {
        Ok(program) => Compiler::Child(ChildCompiler {
            program,
            args: vec!["compile-component".into()],
            limits: config.compile_limits,
        }),
        Err(_) => Compiler::InProcess,
    };
    let engine = match PluginEngine::new(EngineConfig {
        compiler,
        outbound: config.outbound.clone(),
        ..EngineConfig::default()
    }) {
        Ok(engine) => engine,
        Err(error) => {
            let finding = Finding::fail(
                "plugins",
                format!("the WebAssembly engine cannot start: {error}"),
                "the machine needs virtual memory for the engine's pool (check `ulimit -v`)",
            );
            return (vec![finding], catalog);
        }
    };
    let (loaded, failures) = match plugin_dir::load_all(&engine, dir).await {
        Ok(result) => result,
        Err(error) => {
            let finding = Finding::fail(
                "plugins",
                format!(
                    "cannot read the plugins directory {}: {error}",
                    dir.display()
                ),
                "set MOZAIKS_PLUGINS_DIR (or --plugins-dir) to the folder of plugin folders",
            );
            return (vec![finding], catalog);
        }
    };
    let mut findings = Vec::new();
    for (folder, error) in failures {
        findings.push(Finding::fail(
            "plugins",
            format!("plugin {} does not load: {error}", folder.display()),
            "rebuild it (scripts/build-plugins or `mozaiks tool build`) or fix its plugin.toml",
        ));
    }
    for (folder, plugin) in loaded {
        findings.extend(start_cost(&plugin));
        findings.extend(grants(&folder, &plugin));
        catalog.insert(plugin.id().to_owned(), plugin);
    }
    if catalog.is_empty() && findings.is_empty() {
        findings.push(Finding::warn(
            "plugins",
            format!("no plugin in {}", dir.display()),
            "workflows with tools need their plugins there",
        ));
    }
    (findings, catalog)
}

/// A plugin whose instances need more than the default memory, or more
/// than a deadline, just to start (measured when it loaded).
fn start_cost(plugin: &Plugin) -> Vec<Finding> {
    let manifest = plugin.manifest();
    plugin
        .start_cost()
        .warnings(&manifest.limits)
        .into_iter()
        .map(|warning| {
            Finding::warn(
                "plugins",
                format!("plugin `{}`: {warning}", manifest.id),
                format!(
                    "set the limits in {} (docs/tool-authors.md lists sane limits per language)",
                    plugin.manifest_path().display()
                ),
            )
        })
        .collect()
}

/// A plugin's grants: listed, and checked against this machine.
fn grants(folder: &Path, plugin: &Plugin) -> Vec<Finding> {
    let manifest = plugin.manifest();
    let caps = &manifest.capabilities;
    let mut findings = Vec::new();
    for var in &caps.env {
        if std::env::var_os(var).is_none() {
            findings.push(Finding::warn(
                "plugins",
                format!(
                    "plugin `{}` is granted the environment variable {var}, which is not set",
                    manifest.id
                ),
                format!(
                    "set {var} in the server's environment, or remove it from {}",
                    plugin.manifest_path().display()
                ),
            ));
        }
    }
    for grant in &caps.fs {
        let host = if grant.host.is_absolute() {
            grant.host.clone()
        } else {
            folder.join(&grant.host)
        };
        let problem = match std::fs::metadata(&host) {
            Err(error) => Some(format!("does not exist or cannot be read ({error})")),
            Ok(meta) if !meta.is_dir() => Some("is not a directory".to_owned()),
            Ok(meta) if grant.mode == DirMode::ReadWrite && meta.permissions().readonly() => {
                Some("is read-only but granted read-write".to_owned())
            }
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            findings.push(Finding::fail(
                "plugins",
                format!(
                    "plugin `{}` is granted the directory {}, which {problem}",
                    manifest.id,
                    host.display()
                ),
                format!(
                    "create it with the right permissions, or correct `fs` in {}",
                    plugin.manifest_path().display()
                ),
            ));
        }
    }
    let mut granted: Vec<String> = Vec::new();
    if !caps.env.is_empty() {
        granted.push(format!("env {}", caps.env.join(", ")));
    }
    if !caps.net.is_empty() {
        granted.push(format!("net {}", caps.net.join(", ")));
    }
    if !caps.allowed_outbound_hosts.is_empty() {
        granted.push(format!(
            "outbound HTTP {}",
            caps.allowed_outbound_hosts.join(", ")
        ));
    }
    for grant in &caps.fs {
        let mode = if grant.mode == DirMode::ReadWrite {
            "rw"
        } else {
            "ro"
        };
        granted.push(format!(
            "fs {} as {} ({mode})",
            grant.host.display(),
            grant.guest
        ));
    }
    if findings.iter().all(|f| f.status != super::Status::Fail) {
        let granted = if granted.is_empty() {
            "no capabilities".to_owned()
        } else {
            granted.join("; ")
        };
        findings.push(Finding::ok(
            "plugins",
            format!(
                "plugin `{}` {} loads ({} function(s)); grants: {granted}",
                manifest.id,
                manifest.version,
                plugin.functions().count()
            ),
        ));
    }
    findings
}

pub(super) fn workflows(
    config: &Config,
    catalog: &HashMap<String, Plugin>,
) -> (Vec<Finding>, Vec<(PathBuf, Workflow)>) {
    let root = &config.workflows_dir;
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| crate::workflow::format::holds(p, "orchestrator.json"))
            .collect(),
        Err(error) => {
            let finding = Finding::fail(
                "workflows",
                format!(
                    "cannot read the workflows directory {}: {error}",
                    root.display()
                ),
                "set MOZAIKS_WORKFLOWS_DIR (or --workflows-dir) to the folder of workflow folders",
            );
            return (vec![finding], Vec::new());
        }
    };
    dirs.sort();
    let mut findings = Vec::new();
    let mut valid = Vec::new();
    for dir in dirs {
        match load_workflow(&dir, catalog) {
            Ok(workflow) => {
                findings.push(Finding::ok(
                    "workflows",
                    format!(
                        "workflow `{}` is valid ({} agents, {} tools, each resolved to a plugin function)",
                        workflow.name(),
                        workflow.agents().len(),
                        workflow.tools().len()
                    ),
                ));
                valid.push((dir, workflow));
            }
            Err(diagnostics) => {
                for diagnostic in diagnostics {
                    findings.push(Finding::fail(
                        "workflows",
                        diagnostic.to_string(),
                        format!("fix the workflow ({} checks it alone); docs/workflows.md has the format", format_args!("`mozaiks validate {}`", dir.display())),
                    ));
                }
            }
        }
    }
    if findings.is_empty() {
        findings.push(Finding::warn(
            "workflows",
            format!("no workflow folder in {}", root.display()),
            "a workflow folder holds orchestrator.json, agents.json, ... (docs/workflows.md)",
        ));
    }
    (findings, valid)
}

pub(super) fn components(workflows: &[(PathBuf, Workflow)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (dir, workflow) in workflows {
        // Tools and lifecycle tools alike may show a component.
        let wanted: Vec<(String, String)> = workflow
            .plugin_functions()
            .filter_map(|t| match t.kind {
                ToolKind::Ui { component, .. } => Some((t.name, component)),
                ToolKind::Agent => None,
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let folder = dir.join(COMPONENTS_DIR);
        if !folder.is_dir() {
            findings.push(Finding::ok(
                "components",
                format!("workflow `{}` ships no components/ folder: its UI tools show forms generated from their schemas", workflow.name()),
            ));
            continue;
        }
        let mut missing = false;
        for (tool, component) in wanted {
            // What the console renders (docs/workflows.md, components/):
            // the workflow's own module, or the schema of a generated form.
            let present = ["js", "mjs", "schema.json"]
                .iter()
                .any(|ext| folder.join(format!("{component}.{ext}")).is_file());
            if !present {
                missing = true;
                findings.push(Finding::fail(
                    "components",
                    format!(
                        "UI tool `{tool}` of workflow `{}` shows component `{component}`, but {} has neither {component}.js nor {component}.schema.json",
                        workflow.name(),
                        folder.display()
                    ),
                    format!("add {component}.js (or {component}.schema.json for a generated form) to {}, or correct `ui.component` in tools.json", folder.display()),
                ));
            }
        }
        if !missing {
            findings.push(Finding::ok(
                "components",
                format!(
                    "workflow `{}`: every UI tool's component is in components/",
                    workflow.name()
                ),
            ));
        }
    }
    findings
}

pub(super) fn disk(config: &Config) -> Vec<Finding> {
    let mut places = vec![("data", config.data_dir.clone())];
    if let Some(logs) = &config.log.dir {
        places.push(("logs", logs.clone()));
    }
    places
        .into_iter()
        .map(|(what, path)| {
            let existing = nearest_existing(&path);
            match rustix::fs::statvfs(&existing) {
                Ok(stats) => {
                    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
                    let shown = format!(
                        "{:.1} GiB free for {what} ({})",
                        free as f64 / 1_073_741_824.0,
                        path.display()
                    );
                    if free < MIN_FREE_BYTES {
                        Finding::fail(
                            "disk",
                            shown,
                            "free disk space or move the directory to a larger disk",
                        )
                    } else if free < LOW_FREE_BYTES {
                        Finding::warn(
                            "disk",
                            shown,
                            "less than 1 GiB: set MOZAIKS_RETENTION_DAYS or free space",
                        )
                    } else {
                        Finding::ok("disk", shown)
                    }
                }
                Err(error) => Finding::warn(
                    "disk",
                    format!(
                        "cannot tell the free space for {what} at {}: {error}",
                        existing.display()
                    ),
                    "check the path",
                ),
            }
        })
        .collect()
}

/// The path, or its closest ancestor that exists.
fn nearest_existing(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    absolute
        .ancestors()
        .find(|p| p.exists())
        .map_or_else(|| PathBuf::from("/"), Path::to_owned)
}

pub(super) fn logs_dir(config: &Config) -> Finding {
    let Some(dir) = &config.log.dir else {
        return Finding::ok(
            "logs",
            "file logs are off (MOZAIKS_LOG_DIR=off); logs go to standard error only",
        );
    };
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"probe"))
        .and_then(|()| std::fs::remove_file(&probe));
    match written {
        Ok(()) => Finding::ok(
            "logs",
            format!("the logs directory {} is writable", dir.display()),
        ),
        Err(error) => Finding::fail(
            "logs",
            format!(
                "cannot write in the logs directory {}: {error}",
                dir.display()
            ),
            "make it writable by the server's user, or set MOZAIKS_LOG_DIR elsewhere (or to `off`)",
        ),
    }
}

/// Starts the server's real logging (filter, standard error format, log
/// file) and logs one line through it inside nested spans, as a request
/// does: a setup that panics or fails here would take the server down.
pub(super) fn logging(config: &Config) -> Finding {
    use crate::telemetry::logs::{self, StderrFormat};
    let subscriber = match logs::probe_subscriber(&config.log) {
        Ok(subscriber) => subscriber,
        Err(error) => {
            return Finding::fail(
                "logging",
                format!("logging cannot start: {}", error_chain(&error)),
                "correct LOG_LEVEL or MOZAIKS_LOG_DIR",
            );
        }
    };
    let format = match config.log.stderr {
        StderrFormat::Text => "text",
        StderrFormat::Json => "json",
        StderrFormat::Off => "off",
    };
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                target: logs::PROBE_TARGET,
                "doctor",
                format,
                key_id = tracing::field::Empty
            );
            let _outer = outer.enter();
            outer.record("key_id", "doctor");
            let inner = tracing::info_span!(target: logs::PROBE_TARGET, "check", check = "logging");
            let _inner = inner.enter();
            tracing::info!(target: logs::PROBE_TARGET, "logging check by mozaiks doctor");
        });
    }));
    let destinations = match &config.log.dir {
        Some(dir) => format!("standard error: {format}, files in {}", dir.display()),
        None => format!("standard error: {format}, no files"),
    };
    match probe {
        Ok(()) => Finding::ok(
            "logging",
            format!("logging starts as the server starts it ({destinations})"),
        ),
        Err(_) => Finding::fail(
            "logging",
            format!(
                "logging panics on a log line ({destinations}); the server would fail every request"
            ),
            "set MOZAIKS_LOG_FORMAT=text or MOZAIKS_LOG_DIR=off, and report the problem",
        ),
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
