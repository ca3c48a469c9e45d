//! The `mozaiks` binary: parses the command line, sets up logging, and maps
//! errors to exit codes. Everything else lives in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(args).await,
        Command::Chats(command) => cli::chats::run(command).await,
        Command::Tool(command) => cli::tool::run(command).await,
        Command::Validate {
            workflows,
            plugins_dir,
            json,
        } => cli::validate::run(&workflows, &plugins_dir, json).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
