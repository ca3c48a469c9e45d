//! The server's configuration: read once from flags, the environment, an
//! optional `.env` file and the secrets providers ([`secrets`]), checked
//! completely (every problem reported at once, each naming its variable
//! and what to write instead), then handed out in parts.
//!
//! [`Config::settings`] is what `mozaiks config` prints: every setting
//! with its effective value (secrets redacted) and where it came from.
//! docs/operations.md lists the variables.

mod cluster;
pub(crate) mod secrets;
#[cfg(test)]
mod tests;
pub(crate) mod vars;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::access::{Access, ApiKeys};
use crate::llm::LlmConfig;
use crate::maintenance::MaintenanceConfig;
use crate::store::MongoConfig;
use crate::store::StoreConfig;
use crate::telemetry::logs::{LogConfig, StderrFormat};
use crate::transport::DEFAULT_MAX_BODY_BYTES;
use secrets::{Chain, DirProvider, Secret, SecretProvider, VarsProvider};
use vars::{Source, Vars};

/// How long a stopping server lets runs reach a stored point and clients
/// hear about it. Kubernetes sends SIGKILL 30 s after SIGTERM by default;
/// 20 s leaves room for the process to exit on its own.
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// How long a run may wait for its user before it leaves memory: a chat
/// nobody answers costs nothing after ten minutes, and the next message
/// resumes it from the store as a restart would.
pub(crate) const DEFAULT_IDLE_RUN: Duration = Duration::from_secs(600);

/// A log file is rotated past this size (10 MiB: a day of a busy server's
/// info logs is a few files, each quick to `jq`).
pub(crate) const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Rotated log files kept (with the current one: ~60 MiB at most).
pub(crate) const DEFAULT_LOG_KEEP: usize = 5;

/// Where the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine: auth off by default, any CORS origin allowed.
    Development,
    /// Everything else: auth on, CORS only for listed origins.
    Production,
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Environment::Development => "development",
            Environment::Production => "production",
        })
    }
}

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}{}: {message}", value.as_ref().map(|v| format!("=`{v}`")).unwrap_or_default())]
pub struct ConfigError {
    /// The variable (or `file:line` of the env file).
    pub variable: String,
    /// Its value, when showing it helps and it is not a secret.
    pub value: Option<String>,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &str, value: Option<String>, message: String) -> Self {
        Self {
            variable: variable.to_owned(),
            value,
            message,
        }
    }
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the configuration has {} problem(s):", self.0.len())?;
        for error in &self.0 {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Values given on the command line; they win over the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--addr`.
    pub addr: Option<String>,
    /// `--workflows-dir`.
    pub workflows_dir: Option<PathBuf>,
    /// `--plugins-dir`.
    pub plugins_dir: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--retention-days`.
    pub retention_days: Option<u64>,
    /// `--retention-interval-secs`.
    pub retention_interval_secs: Option<u64>,
    /// `--env-file`.
    pub env_file: Option<PathBuf>,
    /// `ENVIRONMENT` defaults to development instead of production
    /// (`mozaiks dev`).
    pub development_by_default: bool,
}

/// One setting as `mozaiks config` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    /// The variable.
    pub name: &'static str,
    /// The effective value, secrets redacted.
    pub value: String,
    /// Where it came from.
    pub source: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Development or production.
    pub environment: Environment,
    /// Where to listen (`host:port`).
    pub addr: String,
    /// Folder of workflow folders.
    pub workflows_dir: PathBuf,
    /// Folder of plugin folders.
    pub plugins_dir: PathBuf,
    /// The embedded store's folder (unused with MongoDB).
    pub data_dir: PathBuf,
    /// Where chats are kept.
    pub store: StoreConfig,
    /// The LLM endpoint.
    pub llm: LlmConfig,
    /// Logging.
    pub log: LogConfig,
    /// Authentication.
    pub access: Access,
    /// Origins allowed to call the API from a browser; `["*"]`: any
    /// (development only).
    pub cors_origins: Vec<String>,
    /// Bound on a graceful shutdown.
    pub shutdown_grace: Duration,
    /// How long a run waits for its user before it is unloaded from memory
    /// (`MOZAIKS_IDLE_RUN_SECS`; 0: never).
    pub idle_run: Option<Duration>,
    /// Several servers on one database (`MOZAIKS_CLUSTER`,
    /// `MOZAIKS_SERVER_ID`, `MOZAIKS_LEASE_SECS`).
    pub cluster: crate::orchestrator::ClusterSettings,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Tool calls that may run at once, across all plugins
    /// (`MOZAIKS_PLUGIN_SLOTS`).
    pub plugin_slots: u32,
    /// Tool calls of one plugin that may run at once
    /// (`MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN`, no more than `plugin_slots`).
    pub plugin_slots_per_plugin: u32,
    /// How much memory and time compiling one plugin may take
    /// (`MOZAIKS_COMPILE_MEMORY_MIB`, `MOZAIKS_COMPILE_TIMEOUT_SECS`).
    pub compile_limits: mozaiks_plugin_host::CompileLimits,
    /// Outbound HTTP of tools: extra CA files trusted for `https`
    /// (`MOZAIKS_OUTBOUND_CA_FILES`, paths separated by `:`), on top of
    /// the system's roots.
    pub outbound: mozaiks_plugin_host::OutboundConfig,
    /// Retention.
    pub maintenance: MaintenanceConfig,
    /// The secrets directory, if any.
    pub secrets_dir: Option<PathBuf>,
    /// Quotas of the per-app data tools keep (`MOZAIKS_DATA_MAX_DOCUMENT_BYTES`,
    /// `MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP`).
    pub data_limits: mozaiks_plugin_host::DataLimits,
    /// Things that are allowed but probably not meant (unknown `MOZAIKS_*`
    /// variables, auth switched off in production).
    pub warnings: Vec<String>,
    settings: Vec<Setting>,
}

/// The variables [`Config`] reads; an unknown `MOZAIKS_*` variable is
/// reported as a probable typo.
const KNOWN: &[&str] = &[
    "MOZAIKS_ADDR",
    "MOZAIKS_WORKFLOWS_DIR",
    "MOZAIKS_PLUGINS_DIR",
    "MOZAIKS_DATA_DIR",
    "MOZAIKS_LOG_DIR",
    "MOZAIKS_LOG_MAX_BYTES",
    "MOZAIKS_LOG_KEEP",
    "MOZAIKS_LOG_FORMAT",
    "MOZAIKS_AUTH",
    "MOZAIKS_API_KEYS",
    "MOZAIKS_CORS_ORIGINS",
    "MOZAIKS_SECRETS_DIR",
    "MOZAIKS_SHUTDOWN_GRACE_SECS",
    "MOZAIKS_IDLE_RUN_SECS",
    "MOZAIKS_CLUSTER",
    "MOZAIKS_SERVER_ID",
    "MOZAIKS_LEASE_SECS",
    "MOZAIKS_MAX_BODY_BYTES",
    "MOZAIKS_PLUGIN_SLOTS",
    "MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN",
    "MOZAIKS_COMPILE_MEMORY_MIB",
    "MOZAIKS_COMPILE_TIMEOUT_SECS",
    "MOZAIKS_OUTBOUND_CA_FILES",
    "MOZAIKS_DATA_MAX_DOCUMENT_BYTES",
    "MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP",
    "MOZAIKS_RETENTION_DAYS",
    "MOZAIKS_RETENTION_INTERVAL_SECS",
    "MOZAIKS_DEFAULT_MODEL",
    "MOZAIKS_LLM_TIMEOUT_SECS",
    "MOZAIKS_LLM_MAX_RETRIES",
    "MOZAIKS_LLM_RETRY_BACKOFF_MS",
    "MOZAIKS_MONGO_WRITE_CONCERN",
    "MOZAIKS_ENV_FILE",
    // Hot reload (read by `mozaiks serve`'s flags).
    "MOZAIKS_NO_WATCH",
    "MOZAIKS_RELOAD_ALLOW_NEW_CAPABILITIES",
    "MOZAIKS_NO_COMPONENT_CACHE",
    // Read by `mozaiks tool describe|call|build|new`.
    "MOZAIKS_COMPONENT_CACHE",
    // Read by the tests, scripts and tools around the server, not by it.
    "MOZAIKS_TEST_LOG",
    "MOZAIKS_BLESS",
    "MOZAIKS_API_KEY",
    "MOZAIKS_CHROMIUM",
    "MOZAIKS_WASM_CARGO",
    "MOZAIKS_WASM_CARGO_FLAGS",
    "MOZAIKS_WASM_TOOLCHAIN",
    "MOZAIKS_SKIP_TOOLCHAINS",
];

/// Reads values, remembering sources and collecting problems.
struct Reader<'a> {
    vars: &'a Vars,
    secrets: &'a dyn SecretProvider,
    errors: Vec<ConfigError>,
    settings: Vec<Setting>,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<(String, Source)> {
        self.vars.get(name)
    }

    fn error(&mut self, name: &str, value: Option<&str>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(
            name,
            value.map(str::to_owned),
            message.into(),
        ));
    }

    fn show(&mut self, name: &'static str, value: impl Into<String>, source: &Source) {
        self.settings.push(Setting {
            name,
            value: value.into(),
            source: source.to_string(),
        });
    }

    /// A string with a default.
    fn text(&mut self, name: &'static str, flag: Option<String>, default: &str) -> String {
        let (value, source) = match (flag, self.raw(name)) {
            (Some(v), _) => (v, Source::Flag),
            (None, Some(found)) => found,
            (None, None) => (default.to_owned(), Source::Default),
        };
        self.show(name, value.clone(), &source);
        value
    }

    /// A positive whole number with a default.
    fn number(&mut self, name: &'static str, flag: Option<u64>, default: u64, unit: &str) -> u64 {
        let (value, source) = match (flag, self.raw(name)) {
            (Some(v), _) => (v, Source::Flag),
            (None, Some((text, source))) => match text.parse::<u64>() {
                Ok(v) if v > 0 => (v, source),
                _ => {
                    self.error(
                        name,
                        Some(&text),
                        format!("must be a positive whole number of {unit}"),
                    );
                    (default, source)
                }
            },
            (None, None) => (default, Source::Default),
        };
        self.show(name, value.to_string(), &source);
        value
    }

    /// [`Reader::number`], 0 allowed.
    fn count(&mut self, name: &'static str, default: u64, unit: &str) -> u64 {
        let (value, source) = match self.raw(name) {
            Some((text, source)) => match text.parse::<u64>() {
                Ok(v) => (v, source),
                Err(_) => {
                    self.error(
                        name,
                        Some(&text),
                        format!("must be a whole number of {unit} (0 or more)"),
                    );
                    (default, source)
                }
            },
            None => (default, Source::Default),
        };
        self.show(name, value.to_string(), &source);
        value
    }

    fn secret(&mut self, name: &'static str) -> Option<(Secret, Source)> {
        match self.secrets.secret(name) {
            Ok(found) => found,
            Err(error) => {
                self.error(name, None, error.to_string());
                None
            }
        }
    }
}

impl Config {
    /// Reads the process environment (and `.env`, and the secrets
    /// directory) under `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigErrors> {
        let vars = Vars::from_process(overrides.env_file.as_deref()).map_err(ConfigErrors)?;
        Self::from_vars(&vars, overrides)
    }

    /// Only where chats are kept, read from the same sources as
    /// [`Config::load`] (flags, environment, `.env`, the secrets directory)
    /// by the same code: for commands that open the store and nothing else
    /// (`mozaiks chats export`), which a problem elsewhere in the
    /// configuration (no API keys, say) must not stop.
    pub fn load_store(overrides: &Overrides) -> Result<StoreConfig, ConfigErrors> {
        let vars = Vars::from_process(overrides.env_file.as_deref()).map_err(ConfigErrors)?;
        Self::store_from_vars(&vars, overrides)
    }

    /// [`Config::load_store`] over given variables.
    pub fn store_from_vars(
        vars: &Vars,
        overrides: &Overrides,
    ) -> Result<StoreConfig, ConfigErrors> {
        let sources = Sources::new(vars);
        let mut r = sources.reader();
        let data_dir = read_data_dir(&mut r, overrides);
        let store = read_store(&mut r, &data_dir);
        if r.errors.is_empty() {
            Ok(store)
        } else {
            Err(ConfigErrors(r.errors))
        }
    }

    /// [`Config::load`] over given variables.
    pub fn from_vars(vars: &Vars, overrides: &Overrides) -> Result<Config, ConfigErrors> {
        let sources = Sources::new(vars);
        let mut r = sources.reader();
        let secrets_dir = sources.secrets_dir.clone();
        let default_environment = if overrides.development_by_default {
            "development"
        } else {
            "production"
        };
        let environment = match r
            .text("ENVIRONMENT", None, default_environment)
            .to_ascii_lowercase()
            .as_str()
        {
            "development" => Environment::Development,
            "production" => Environment::Production,
            other => {
                let other = other.to_owned();
                r.error(
                    "ENVIRONMENT",
                    Some(&other),
                    "must be `development` or `production`",
                );
                Environment::Production
            }
        };
        let dev = environment == Environment::Development;
        let addr = r.text("MOZAIKS_ADDR", overrides.addr.clone(), "127.0.0.1:8080");
        if !valid_addr(&addr) {
            r.error(
                "MOZAIKS_ADDR",
                Some(&addr),
                "must be host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
            );
        }
        let workflows_dir = PathBuf::from(r.text(
            "MOZAIKS_WORKFLOWS_DIR",
            path_flag(&overrides.workflows_dir),
            "workflows",
        ));
        let plugins_dir = PathBuf::from(r.text(
            "MOZAIKS_PLUGINS_DIR",
            path_flag(&overrides.plugins_dir),
            "plugins",
        ));
        let data_dir = read_data_dir(&mut r, overrides);
        let log = read_log(&mut r);
        let store = read_store(&mut r, &data_dir);
        let cluster = cluster::read_cluster(&mut r, &store, &addr);
        let llm = read_llm(&mut r);
        let access = read_access(&mut r, dev);
        let cors_origins = read_cors(&mut r, dev);
        let shutdown_grace = Duration::from_secs(r.number(
            "MOZAIKS_SHUTDOWN_GRACE_SECS",
            None,
            DEFAULT_SHUTDOWN_GRACE.as_secs(),
            "seconds",
        ));
        let idle_run = match r.count(
            "MOZAIKS_IDLE_RUN_SECS",
            DEFAULT_IDLE_RUN.as_secs(),
            "seconds (0: never unload)",
        ) {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        let max_body_bytes = usize::try_from(r.number(
            "MOZAIKS_MAX_BODY_BYTES",
            None,
            DEFAULT_MAX_BODY_BYTES as u64,
            "bytes",
        ))
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        let plugin_slots = u32::try_from(r.number(
            "MOZAIKS_PLUGIN_SLOTS",
            None,
            u64::from(mozaiks_plugin_host::DEFAULT_MAX_CONCURRENT_CALLS),
            "calls",
        ))
        .unwrap_or(u32::MAX);
        let plugin_slots_per_plugin = u32::try_from(r.number(
            "MOZAIKS_PLUGIN_SLOTS_PER_PLUGIN",
            None,
            u64::from(mozaiks_plugin_host::DEFAULT_MAX_CALLS_PER_PLUGIN),
            "calls",
        ))
        .unwrap_or(u32::MAX);
        let compile_limits = read_compile_limits(&mut r);
        let outbound = read_outbound(&mut r);
        let data_limits = mozaiks_plugin_host::DataLimits {
            max_document_bytes: usize::try_from(r.number(
                "MOZAIKS_DATA_MAX_DOCUMENT_BYTES",
                None,
                mozaiks_plugin_host::DEFAULT_MAX_DOCUMENT_BYTES as u64,
                "bytes",
            ))
            .unwrap_or(usize::MAX),
            max_documents_per_app: r.number(
                "MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP",
                None,
                mozaiks_plugin_host::DEFAULT_MAX_DOCUMENTS_PER_APP,
                "documents",
            ),
        };
        let retention_days = match (overrides.retention_days, r.raw("MOZAIKS_RETENTION_DAYS")) {
            (Some(days), _) => {
                r.show("MOZAIKS_RETENTION_DAYS", days.to_string(), &Source::Flag);
                Some(days)
            }
            (None, Some((text, source))) => {
                r.show("MOZAIKS_RETENTION_DAYS", text.clone(), &source);
                text.parse::<u64>()
                    .map_err(|_| {
                        r.error(
                            "MOZAIKS_RETENTION_DAYS",
                            Some(&text),
                            "must be a whole number of days (0 or more)",
                        )
                    })
                    .ok()
            }
            (None, None) => {
                r.show(
                    "MOZAIKS_RETENTION_DAYS",
                    "keep chats forever",
                    &Source::Default,
                );
                None
            }
        };
        let retention_interval = Duration::from_secs(r.number(
            "MOZAIKS_RETENTION_INTERVAL_SECS",
            overrides.retention_interval_secs,
            3600,
            "seconds",
        ));
        let mut warnings: Vec<String> = vars
            .names_with_prefix("MOZAIKS_")
            .into_iter()
            .filter(|name| !KNOWN.contains(&name.as_str()))
            .map(|name| {
                format!("{name} is not a mozaiks setting (a typo?); docs/operations.md lists them")
            })
            .collect();
        if !access.enabled && !dev {
            warnings.push("MOZAIKS_AUTH=off outside development: anyone who reaches the port can read and drive every chat".to_owned());
        }
        if !r.errors.is_empty() {
            return Err(ConfigErrors(r.errors));
        }
        Ok(Config {
            environment,
            addr,
            workflows_dir,
            plugins_dir,
            data_dir,
            store,
            llm,
            log,
            access,
            cors_origins,
            shutdown_grace,
            idle_run,
            cluster,
            max_body_bytes,
            plugin_slots,
            plugin_slots_per_plugin,
            compile_limits,
            outbound,
            maintenance: MaintenanceConfig {
                retention_days,
                retention_interval,
            },
            secrets_dir,
            data_limits,
            warnings,
            settings: r.settings,
        })
    }

    /// Every setting with its effective value and source, secrets
    /// redacted, for `mozaiks config`.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }
}

/// Where values come from: the variables, then the secrets directory for
/// secrets ([`SecretProvider`] chain).
struct Sources<'a> {
    vars: &'a Vars,
    secrets_dir: Option<PathBuf>,
    chain: Chain<'a>,
}

impl<'a> Sources<'a> {
    fn new(vars: &'a Vars) -> Self {
        let secrets_dir = vars
            .get("MOZAIKS_SECRETS_DIR")
            .map(|(d, _)| PathBuf::from(d));
        let mut providers: Vec<Box<dyn SecretProvider + 'a>> = vec![Box::new(VarsProvider(vars))];
        if let Some(dir) = &secrets_dir {
            providers.push(Box::new(DirProvider { dir: dir.clone() }));
        }
        Self {
            vars,
            secrets_dir,
            chain: Chain(providers),
        }
    }

    /// A reader over these sources; a secrets directory that is not one is
    /// its first problem.
    fn reader(&self) -> Reader<'_> {
        let mut r = Reader {
            vars: self.vars,
            secrets: &self.chain,
            errors: Vec::new(),
            settings: Vec::new(),
        };
        if let Some(dir) = &self.secrets_dir
            && !dir.is_dir()
        {
            r.error(
                "MOZAIKS_SECRETS_DIR",
                Some(&dir.display().to_string()),
                "is not a directory",
            );
        }
        r
    }
}

fn read_data_dir(r: &mut Reader<'_>, overrides: &Overrides) -> PathBuf {
    PathBuf::from(r.text("MOZAIKS_DATA_DIR", path_flag(&overrides.data_dir), "data"))
}

fn path_flag(flag: &Option<PathBuf>) -> Option<String> {
    flag.as_ref().map(|p| p.display().to_string())
}

fn valid_addr(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// `MOZAIKS_OUTBOUND_CA_FILES`: each file must exist (the engine reads it
/// when it starts, and refuses one without a PEM certificate).
fn read_outbound(r: &mut Reader<'_>) -> mozaiks_plugin_host::OutboundConfig {
    let mut extra_ca_files = Vec::new();
    match r.raw("MOZAIKS_OUTBOUND_CA_FILES") {
        Some((text, source)) => {
            r.show("MOZAIKS_OUTBOUND_CA_FILES", text.clone(), &source);
            for path in text.split(':').filter(|p| !p.is_empty()) {
                if std::path::Path::new(path).is_file() {
                    extra_ca_files.push(PathBuf::from(path));
                } else {
                    r.error(
                        "MOZAIKS_OUTBOUND_CA_FILES",
                        Some(&text),
                        format!("{path} is not a file"),
                    );
                }
            }
        }
        None => r.show(
            "MOZAIKS_OUTBOUND_CA_FILES",
            "the system's roots only",
            &Source::Default,
        ),
    }
    mozaiks_plugin_host::OutboundConfig { extra_ca_files }
}

/// `MOZAIKS_COMPILE_MEMORY_MIB` and `MOZAIKS_COMPILE_TIMEOUT_SECS`, each
/// refused outside what the engine accepts.
fn read_compile_limits(r: &mut Reader<'_>) -> mozaiks_plugin_host::CompileLimits {
    use mozaiks_plugin_host::{
        CompileLimits, DEFAULT_COMPILE_MEMORY_MIB, DEFAULT_COMPILE_TIMEOUT, MAX_COMPILE_MEMORY_MIB,
        MAX_COMPILE_TIMEOUT, MIN_COMPILE_MEMORY_MIB,
    };
    let memory = r.number(
        "MOZAIKS_COMPILE_MEMORY_MIB",
        None,
        u64::from(DEFAULT_COMPILE_MEMORY_MIB),
        "MiB",
    );
    let memory_range = u64::from(MIN_COMPILE_MEMORY_MIB)..=u64::from(MAX_COMPILE_MEMORY_MIB);
    let memory_mib = if memory_range.contains(&memory) {
        u32::try_from(memory).unwrap_or(DEFAULT_COMPILE_MEMORY_MIB)
    } else {
        r.error(
            "MOZAIKS_COMPILE_MEMORY_MIB",
            Some(&memory.to_string()),
            format!(
                "must be {MIN_COMPILE_MEMORY_MIB} to {MAX_COMPILE_MEMORY_MIB} MiB: the compiler needs a few hundred MiB to start"
            ),
        );
        DEFAULT_COMPILE_MEMORY_MIB
    };
    let secs = r.number(
        "MOZAIKS_COMPILE_TIMEOUT_SECS",
        None,
        DEFAULT_COMPILE_TIMEOUT.as_secs(),
        "seconds",
    );
    let timeout = if secs <= MAX_COMPILE_TIMEOUT.as_secs() {
        Duration::from_secs(secs)
    } else {
        r.error(
            "MOZAIKS_COMPILE_TIMEOUT_SECS",
            Some(&secs.to_string()),
            format!("must be 1 to {} seconds", MAX_COMPILE_TIMEOUT.as_secs()),
        );
        DEFAULT_COMPILE_TIMEOUT
    };
    CompileLimits {
        memory_mib,
        timeout,
    }
}

fn read_log(r: &mut Reader<'_>) -> LogConfig {
    let level = r.text("LOG_LEVEL", None, "info");
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    // A bare word that is no level would be read as a target name and
    // silently log nothing: refuse it.
    let bare = !level.contains(['=', ',', ':']);
    if bare && !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        r.error("LOG_LEVEL", Some(&level), "is not a level: use off, error, warn, info, debug or trace (or a filter such as info,mozaiks_host::orchestrator=debug)");
    } else if let Err(crate::telemetry::logs::LogError::Filter { source, .. }) =
        crate::telemetry::logs::filter(&level)
    {
        r.error("LOG_LEVEL", Some(&level), format!("is not a level or filter ({source}); use error, warn, info, debug or trace (or a filter such as info,mozaiks_host::orchestrator=debug)"));
    }
    let dir = r.text("MOZAIKS_LOG_DIR", None, "logs");
    let dir = (!dir.eq_ignore_ascii_case("off")).then(|| PathBuf::from(dir));
    let max_file_bytes = r.number(
        "MOZAIKS_LOG_MAX_BYTES",
        None,
        DEFAULT_LOG_MAX_BYTES,
        "bytes",
    );
    let keep_files =
        usize::try_from(r.number("MOZAIKS_LOG_KEEP", None, DEFAULT_LOG_KEEP as u64, "files"))
            .unwrap_or(DEFAULT_LOG_KEEP);
    let format = r.text("MOZAIKS_LOG_FORMAT", None, "text");
    let stderr = match format.as_str() {
        "text" => StderrFormat::Text,
        "json" => StderrFormat::Json,
        "off" => StderrFormat::Off,
        other => {
            let other = other.to_owned();
            r.error(
                "MOZAIKS_LOG_FORMAT",
                Some(&other),
                "must be `text`, `json` or `off` (what standard error gets; files are always JSON)",
            );
            StderrFormat::Text
        }
    };
    LogConfig {
        level,
        dir,
        max_file_bytes,
        keep_files,
        stderr,
    }
}

fn read_store(r: &mut Reader<'_>, data_dir: &std::path::Path) -> StoreConfig {
    let uri = r.secret("MONGO_URI");
    let Some((uri, source)) = uri else {
        return StoreConfig::Embedded {
            data_dir: data_dir.to_owned(),
        };
    };
    let value = uri.expose().to_owned();
    if !(value.starts_with("mongodb://") || value.starts_with("mongodb+srv://")) {
        r.error("MONGO_URI", None, "must start with mongodb:// or mongodb+srv:// (e.g. mongodb://user:password@host:27017/?authSource=admin)");
    }
    let vars = r.vars;
    let lookup = |name: &str| {
        if name == "MONGO_URI" {
            Some(value.clone())
        } else {
            vars.get(name).map(|(v, _)| v)
        }
    };
    match MongoConfig::from_vars(lookup) {
        Ok(Some(config)) => {
            r.show("MONGO_URI", config.redacted_uri(), &source);
            r.show(
                "MONGO_DB",
                config.database.clone(),
                &if r.raw("MONGO_DB").is_some() {
                    Source::Env
                } else {
                    Source::Default
                },
            );
            StoreConfig::Mongo(config)
        }
        Ok(None) => StoreConfig::Embedded {
            data_dir: data_dir.to_owned(),
        },
        Err(error) => {
            r.error(
                error.variable,
                Some(&error.value),
                format!("must be {}", error.expected),
            );
            StoreConfig::Embedded {
                data_dir: data_dir.to_owned(),
            }
        }
    }
}

fn read_llm(r: &mut Reader<'_>) -> LlmConfig {
    let key = r.secret("OPENAI_API_KEY");
    if let Some((key, source)) = &key {
        if key.expose().chars().any(char::is_whitespace) {
            r.error(
                "OPENAI_API_KEY",
                None,
                "contains spaces or line breaks; copy the key again",
            );
        }
        r.show("OPENAI_API_KEY", key.to_string(), source);
    } else {
        r.show("OPENAI_API_KEY", "not set", &Source::Default);
    }
    let base_url = r.raw("OPENAI_BASE_URL");
    match &base_url {
        Some((url, source)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                r.error(
                    "OPENAI_BASE_URL",
                    Some(url),
                    "must be an http:// or https:// URL, usually ending in /v1",
                );
            }
            r.show("OPENAI_BASE_URL", url.clone(), source);
        }
        None => r.show(
            "OPENAI_BASE_URL",
            "https://api.openai.com/v1",
            &Source::Default,
        ),
    }
    r.text("MOZAIKS_DEFAULT_MODEL", None, crate::llm::DEFAULT_MODEL);
    r.number(
        "MOZAIKS_LLM_TIMEOUT_SECS",
        None,
        crate::llm::DEFAULT_TIMEOUT.as_secs(),
        "seconds",
    );
    let defaults = crate::llm::RetryPolicy::default();
    r.count(
        "MOZAIKS_LLM_MAX_RETRIES",
        u64::from(defaults.max_retries),
        "retries",
    );
    r.count(
        "MOZAIKS_LLM_RETRY_BACKOFF_MS",
        u64::try_from(defaults.backoff.as_millis()).unwrap_or(u64::MAX),
        "milliseconds",
    );
    let key = key.map(|(k, _)| k.expose().to_owned());
    let vars = r.vars;
    LlmConfig::from_lookup(|name| match name {
        "OPENAI_API_KEY" => key.clone(),
        other => vars.get(other).map(|(v, _)| v),
    })
}

fn read_access(r: &mut Reader<'_>, dev: bool) -> Access {
    let auth = r.text("MOZAIKS_AUTH", None, if dev { "off" } else { "on" });
    let enabled = match auth.as_str() {
        "on" => true,
        "off" => false,
        other => {
            let other = other.to_owned();
            r.error("MOZAIKS_AUTH", Some(&other), "must be `on` or `off`");
            true
        }
    };
    let keys = match r.secret("MOZAIKS_API_KEYS") {
        Some((text, source)) => match ApiKeys::parse(text.expose()) {
            Ok(keys) => {
                r.show("MOZAIKS_API_KEYS", keys.describe(), &source);
                keys
            }
            Err(problems) => {
                for problem in problems {
                    r.error("MOZAIKS_API_KEYS", None, problem);
                }
                ApiKeys::default()
            }
        },
        None => {
            r.show("MOZAIKS_API_KEYS", "none", &Source::Default);
            ApiKeys::default()
        }
    };
    let has_key_errors = r.errors.iter().any(|e| e.variable == "MOZAIKS_API_KEYS");
    if enabled && keys.is_empty() && !has_key_errors {
        r.error(
            "MOZAIKS_API_KEYS",
            None,
            "auth is on (ENVIRONMENT is not development) but no API keys are configured: set MOZAIKS_API_KEYS=<key>=<app_id>[:<user_id>],... (or a file MOZAIKS_API_KEYS in MOZAIKS_SECRETS_DIR), or ENVIRONMENT=development on a developer machine",
        );
    }
    Access { enabled, keys }
}

fn read_cors(r: &mut Reader<'_>, dev: bool) -> Vec<String> {
    let Some((text, source)) = r.raw("MOZAIKS_CORS_ORIGINS") else {
        let shown = if dev {
            "any origin (development)"
        } else {
            "none (same origin only)"
        };
        r.show("MOZAIKS_CORS_ORIGINS", shown, &Source::Default);
        return Vec::new();
    };
    r.show("MOZAIKS_CORS_ORIGINS", text.clone(), &source);
    let origins: Vec<String> = text
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    for origin in &origins {
        if origin == "*" {
            if !dev {
                r.error("MOZAIKS_CORS_ORIGINS", Some(origin), "`*` is allowed only with ENVIRONMENT=development; list the front ends' origins, e.g. https://app.example.com");
            }
            continue;
        }
        let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
            matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
        }) && axum::http::HeaderValue::from_str(origin).is_ok();
        if !well_formed {
            r.error("MOZAIKS_CORS_ORIGINS", Some(origin), "an origin is scheme://host[:port] with no path, e.g. https://app.example.com or http://localhost:3000");
        }
    }
    origins
}
