//! Command-line interface: argument types and dispatch.

pub(crate) mod chats;
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
    /// Work with stored chats.
    #[command(subcommand)]
    Chats(ChatsCommand),
    /// Work with tool components: describe, call, build.
    #[command(subcommand)]
    Tool(ToolCommand),
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
        /// Directory that holds plugin folders.
        #[arg(long, default_value = "plugins")]
        plugins_dir: PathBuf,
    },
    /// Build a Rust tool crate into a component (runs sdk/build-plugin).
    Build {
        /// The tool crate's folder(s).
        #[arg(required = true)]
        crates: Vec<PathBuf>,
        /// Path of the build script.
        #[arg(long, default_value = "sdk/build-plugin")]
        script: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) addr: String,
    /// Directory that holds workflow folders.
    #[arg(long, default_value = "workflows")]
    pub(crate) workflows_dir: PathBuf,
    /// Directory that holds plugin folders.
    #[arg(long, default_value = "plugins")]
    pub(crate) plugins_dir: PathBuf,
    /// Where chats are stored (one file, created if missing).
    #[arg(long, default_value = "data")]
    pub(crate) data_dir: PathBuf,
    /// Delete chats that ended more than this many days ago (default: keep
    /// them).
    #[arg(long, env = "MOZAIKS_RETENTION_DAYS")]
    pub(crate) retention_days: Option<u64>,
    /// How often the retention job runs, in seconds.
    #[arg(long, env = "MOZAIKS_RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub(crate) retention_interval_secs: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChatsCommand {
    /// Print a chat (record, context variables, every event) as JSON, for
    /// support. Reads the store the server uses (MONGO_URI, else the
    /// embedded store in --data-dir), or a running server with --server.
    Export {
        /// The chat's id.
        chat_id: String,
        /// The embedded store's directory.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Ask a running server instead (e.g. http://127.0.0.1:8080); needed
        /// for the embedded store while a server has it open.
        #[arg(long)]
        server: Option<String>,
    },
}
