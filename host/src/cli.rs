//! Command-line interface: argument types and dispatch.

pub(crate) mod chats;
pub(crate) mod compile;
pub(crate) mod config;
pub(crate) mod doctor;
pub(crate) mod import;
pub(crate) mod serve;
pub(crate) mod tool;
pub(crate) mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mozaiks: multi-agent LLM workflows with sandboxed WebAssembly tools.
#[derive(Debug, Parser)]
#[command(name = "mozaiks", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server: the workflows' chats over HTTP and WebSocket.
    ///
    /// The LLM comes from OPENAI_API_KEY and OPENAI_BASE_URL (any
    /// OpenAI-compatible server); without them the server starts and says so.
    Serve(ServeArgs),
    /// Develop workflows and tools: `serve` that also rebuilds a plugin
    /// whenever its sources change: a Rust crate with the SDK's build
    /// script, a Python, JavaScript, TypeScript, C or Go tool with `tool
    /// build`; the new component is then hot-reloaded like any other change. Build
    /// errors are reported like refused reloads (logs, /api/reloads,
    /// clients).
    Dev(DevArgs),
    /// Print the effective configuration (flags, environment, .env,
    /// secrets directory, defaults), secrets redacted, with where each
    /// value came from. Exit code 1 when it has problems, each listed.
    Config {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check that the server can run here and now: configuration and
    /// secrets, the store, the port, every workflow, tool and UI
    /// component, plugin grants, disk space, the logs directory. Prints
    /// each finding with its fix.
    ///
    /// Exit code: 0 when nothing is wrong (warnings allowed), 1 otherwise.
    Doctor {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Work with stored chats.
    #[command(subcommand)]
    Chats(ChatsCommand),
    /// Work with tool components: describe, call, build.
    #[command(subcommand)]
    Tool(ToolCommand),
    /// Compile one component for the server, under limits (hidden: the
    /// server runs it; see `mozaiks_plugin_host::compile_child`).
    #[command(name = "compile-component", hide = true)]
    CompileComponent(compile::CompileArgs),
    /// Start something new from a template.
    #[command(subcommand)]
    New(NewCommand),
    /// Convert a workflow folder of another runtime into a mozaiks one.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Check workflow folders: every file, every cross reference, every
    /// tool against the plugins' functions. Prints every problem.
    ///
    /// Exit code: 0 when all are valid, 1 when any is not.
    Validate {
        /// Workflow folders (`workflows/<Name>`).
        #[arg(required = true)]
        workflows: Vec<PathBuf>,
        /// Directory that holds plugin folders.
        #[arg(long, default_value = "plugins")]
        plugins_dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `tool call`'s `--data-file`, `--transcript-file`, `--idempotency-key`
/// and `--attempt`.
#[derive(Debug, clap::Args)]
pub(crate) struct CallFiles {
    /// The calling app's documents for the `data` import, kept in
    /// memory: {"app": {COLLECTION: {ID: {...}}}, "user": {...}}, each at
    /// version 1. The documents after the call are printed as `data`.
    #[arg(long = "data-file", value_name = "FILE")]
    data_file: Option<PathBuf>,
    /// The chat the `chat` import reads: {"messages": [{"seq", "role",
    /// "agent", "content"}], "structured_outputs": {AGENT: {...}}}.
    #[arg(long = "transcript-file", value_name = "FILE")]
    transcript_file: Option<PathBuf>,
    /// The call's idempotency key (what the tool reads through the
    /// `invocation` import), to replay an attempt of a call that had
    /// it. Default: a fresh key for each invocation. Printed as
    /// `idempotency_key`.
    #[arg(long = "idempotency-key", value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Which attempt of its call this is, as the tool reads it
    /// (`invocation.attempt`; 2 and more: run again after a restart).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    attempt: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// Convert a MozaiksAI workflow folder (YAML, or the JSON of before
    /// December 2025) into a mozaiks workflow folder: aliases normalised,
    /// structured outputs as JSON Schema, context sources, triggers,
    /// lifecycle tools, hooks and auto-tool mode mapped, and a tools.json
    /// pointing each Python function at a plugin still to be written.
    /// Prints, and writes beside the folder as `<DIR>.import-report.txt`,
    /// every key it could not map with the reason, then loads the result.
    ///
    /// Exit code: 0 when the result validates except for the tools still
    /// to be ported, 2 when it was written but has other problems
    /// (listed), 1 when nothing was written.
    Mozaiksai {
        /// The MozaiksAI workflow folder (`workflows/<Name>`).
        folder: PathBuf,
        /// The folder to write; it must not exist or be empty. Its name is
        /// the workflow's name [default: the source folder's name, in the
        /// current directory].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ToolCommand {
    /// Print a plugin's functions and their parameter schemas.
    Describe {
        /// Plugin folder, .wasm file, or plugin id under --plugins-dir.
        plugin: String,
        /// Directory that holds plugin folders.
        #[arg(long, default_value = "plugins")]
        plugins_dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: ComponentCacheArgs,
    },
    /// Call one function in the real engine with an in-memory context and
    /// scripted UI answers; print the result, context changes, UI requests and logs.
    ///
    /// Exit code: 0 on success, 1 when the call could not be made (plugin not
    /// found or not loadable, bad --args JSON), 2 when the call failed (trap,
    /// deadline, limit, denial, invalid arguments), 3 when the tool reported
    /// its own error.
    Call {
        /// Plugin folder, .wasm file, or plugin id under --plugins-dir.
        plugin: String,
        /// Function to call.
        function: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Initial context variables as a JSON object (or @file.json).
        #[arg(long, default_value = "{}")]
        context: String,
        /// UI answers as {"Component": answer-or-list-of-answers} (or @file.json).
        #[arg(long, default_value = "{}")]
        answers: String,
        /// Adds an entry to the plugin's `allowed_outbound_hosts` for this
        /// call (`scheme://host[:port]`, e.g. http://127.0.0.1:8080), to test
        /// a tool against a local server. Repeatable.
        #[arg(long = "allow-host", value_name = "URL")]
        allow_hosts: Vec<String>,
        /// A PEM file of a certificate authority trusted for `https`, on top
        /// of the system's (a local test server's own). Repeatable.
        #[arg(long = "ca-file", value_name = "PEM")]
        ca_files: Vec<PathBuf>,
        /// Gives the plugin's declared secret NAME a value for this call
        /// (NAME=VALUE; visible to other users of the machine in the process
        /// list: prefer --secrets-file). Repeatable.
        #[arg(long = "secret", value_name = "NAME=VALUE")]
        secrets: Vec<String>,
        /// A file of NAME=VALUE lines (blank lines and `#` comments
        /// ignored) giving the plugin's secrets values for this call.
        #[arg(long = "secrets-file", value_name = "FILE")]
        secrets_file: Option<PathBuf>,
        /// The in-memory app data and scripted chat of the call, and its
        /// idempotency key and attempt.
        #[command(flatten)]
        files: Box<CallFiles>,
        /// Directory that holds plugin folders.
        #[arg(long, default_value = "plugins")]
        plugins_dir: PathBuf,
        #[command(flatten)]
        cache: ComponentCacheArgs,
    },
    /// Build plugin folders into components. The language comes from the
    /// folder: `Cargo.toml` is Rust (built by sdk/build-plugin), `app.py`
    /// is Python (componentize-py), `app.js` is JavaScript
    /// (componentize-qjs), `app.ts` is TypeScript (tsc, then
    /// componentize-qjs), `app.c` is C (zig cc, on bindings generated from
    /// the WIT) and `app.go` is Go (go build for wasip1). A missing toolchain is installed first
    /// (scripts/setup-tool-toolchain), and the result is checked: a
    /// component of the `mozaiks:plugin` world at this host's version,
    /// loaded and described in the real engine.
    Build {
        /// The plugin folder(s).
        #[arg(required = true)]
        crates: Vec<PathBuf>,
        /// The script that builds Rust crates.
        #[arg(long, default_value = "sdk/build-plugin")]
        script: PathBuf,
        /// The script that installs the other languages' toolchains.
        #[arg(long, default_value = "scripts/setup-tool-toolchain")]
        toolchain_script: PathBuf,
        #[command(flatten)]
        cache: ComponentCacheArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NewCommand {
    /// Make a tool plugin folder `<dir>/<name>`: plugin.toml, a sample
    /// with an agent function and a UI function that use the context, the
    /// UI and the log, a README, and (every language but Rust) the WIT
    /// contract and (Python, TypeScript, C) the bindings or declarations
    /// generated from it; a Go tool gets the `mozaiks` package, the glue to
    /// the contract. Build it with `mozaiks tool build`.
    Tool {
        /// The plugin id and folder name: 1 to 64 lowercase letters,
        /// digits, `-` and `_`.
        name: String,
        /// The language of the tool.
        #[arg(long, value_enum, default_value = "rust")]
        lang: tool::Language,
        /// The folder to create the plugin folder in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Rust SDK (`sdk/` of the mozaiks repository), which a Rust
        /// tool depends on by path.
        #[arg(long, default_value = "sdk")]
        sdk: PathBuf,
        /// The script that installs the other languages' toolchains (for
        /// generating the bindings).
        #[arg(long, default_value = "scripts/setup-tool-toolchain")]
        toolchain_script: PathBuf,
    },
}

/// Where `mozaiks tool describe` and `tool call` keep compiled components,
/// so that a second run of an unchanged component does not compile it again.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ComponentCacheArgs {
    /// Directory of compiled components [default:
    /// $XDG_CACHE_HOME/mozaiks/component-cache, else
    /// ~/.cache/mozaiks/component-cache].
    #[arg(long, env = "MOZAIKS_COMPONENT_CACHE")]
    pub(crate) component_cache: Option<PathBuf>,
    /// Compile the component on every run instead of keeping its compiled
    /// code.
    #[arg(long, env = "MOZAIKS_NO_COMPONENT_CACHE")]
    pub(crate) no_component_cache: bool,
}

/// Settings that can be given as flags; each also has an environment
/// variable (docs/operations.md), and a flag wins over it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigArgs {
    /// Address to listen on (port 0 picks a free port; the address is
    /// printed) [env: MOZAIKS_ADDR; default 127.0.0.1:8080].
    #[arg(long)]
    pub(crate) addr: Option<String>,
    /// Directory that holds workflow folders [env: MOZAIKS_WORKFLOWS_DIR;
    /// default workflows].
    #[arg(long)]
    pub(crate) workflows_dir: Option<PathBuf>,
    /// Directory that holds plugin folders [env: MOZAIKS_PLUGINS_DIR;
    /// default plugins].
    #[arg(long)]
    pub(crate) plugins_dir: Option<PathBuf>,
    /// Where the embedded store keeps chats [env: MOZAIKS_DATA_DIR;
    /// default data].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Delete chats that ended more than this many days ago [env:
    /// MOZAIKS_RETENTION_DAYS; default: keep them].
    #[arg(long)]
    pub(crate) retention_days: Option<u64>,
    /// How often the retention job runs, in seconds [env:
    /// MOZAIKS_RETENTION_INTERVAL_SECS; default 3600].
    #[arg(long)]
    pub(crate) retention_interval_secs: Option<u64>,
    /// The env file to read [env: MOZAIKS_ENV_FILE; default ./.env if it
    /// exists].
    #[arg(long)]
    pub(crate) env_file: Option<PathBuf>,
}

impl ConfigArgs {
    pub(crate) fn overrides(&self) -> mozaiks_host::Overrides {
        mozaiks_host::Overrides {
            addr: self.addr.clone(),
            workflows_dir: self.workflows_dir.clone(),
            plugins_dir: self.plugins_dir.clone(),
            data_dir: self.data_dir.clone(),
            retention_days: self.retention_days,
            retention_interval_secs: self.retention_interval_secs,
            env_file: self.env_file.clone(),
            development_by_default: false,
        }
    }
}

/// The settings that choose the store, as [`ConfigArgs`] has them.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// Where the embedded store keeps chats [env: MOZAIKS_DATA_DIR;
    /// default data].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The env file to read [env: MOZAIKS_ENV_FILE; default ./.env if it
    /// exists].
    #[arg(long)]
    pub(crate) env_file: Option<PathBuf>,
}

impl StoreArgs {
    pub(crate) fn overrides(&self) -> mozaiks_host::Overrides {
        mozaiks_host::Overrides {
            data_dir: self.data_dir.clone(),
            env_file: self.env_file.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Do not watch the plugin and workflow directories (no hot reload).
    #[arg(long, env = "MOZAIKS_NO_WATCH")]
    pub(crate) no_watch: bool,
    /// Let a reloaded plugin ask for more capabilities (env, net, fs) than
    /// the version it replaces. Off: such a version is refused.
    #[arg(long, env = "MOZAIKS_RELOAD_ALLOW_NEW_CAPABILITIES")]
    pub(crate) allow_new_capabilities: bool,
    /// Compile every component at start instead of reusing the compiled
    /// code kept in `<data-dir>/component-cache`.
    #[arg(long, env = "MOZAIKS_NO_COMPONENT_CACHE")]
    pub(crate) no_component_cache: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
    /// The script that builds a Rust plugin folder into its component.
    #[arg(long, default_value = "sdk/build-plugin")]
    pub(crate) build_script: PathBuf,
    /// The script that installs the other languages' toolchains: a Python,
    /// JavaScript, TypeScript, C or Go plugin whose sources change is
    /// rebuilt by this binary's `tool build` with it.
    #[arg(long, default_value = "scripts/setup-tool-toolchain")]
    pub(crate) toolchain_script: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChatsCommand {
    /// Print a chat (record, context variables, every event) as JSON, for
    /// support. Reads the store the server's configuration names (MONGO_URI
    /// from the environment, .env or the secrets directory, else the
    /// embedded store in --data-dir), or a running server with --server.
    Export {
        /// The chat's id.
        chat_id: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Ask a running server instead (e.g. http://127.0.0.1:8080); needed
        /// for the embedded store while a server has it open.
        #[arg(long)]
        server: Option<String>,
        /// The API key for --server when it has authentication on.
        #[arg(long, env = "MOZAIKS_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
}
