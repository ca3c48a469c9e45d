//! The `mozaiks` binary: parses the command line, sets up logging, and maps
//! errors to exit codes. Everything else lives in the library.

#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The compiler process runs no async runtime: its memory is limited.
    if let Command::CompileComponent(args) = &cli.command {
        return cli::compile::run(args);
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    // The server sets up its own logging from its configuration.
    if !matches!(cli.command, Command::Serve(_) | Command::Dev(_)) {
        mozaiks_host::init_cli();
    }
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(args, None).await,
        Command::Dev(args) => match cli::serve::tool_build_command(&args.toolchain_script) {
            Ok(tool_build) => {
                cli::serve::run(args.serve, Some((args.build_script, tool_build))).await
            }
            Err(error) => Err(error),
        },
        Command::Config { config, json } => cli::config::run(&config, json),
        Command::Doctor { config, json } => cli::doctor::run(&config, json).await,
        Command::Chats(command) => cli::chats::run(command).await,
        Command::Tool(command) => cli::tool::run(command).await,
        Command::New(command) => cli::tool::new(command),
        Command::Import(cli::ImportCommand::Mozaiksai { folder, out }) => {
            cli::import::mozaiksai(&folder, out)
        }
        Command::Validate {
            workflows,
            plugins_dir,
            json,
        } => cli::validate::run(&workflows, &plugins_dir, json).await,
        Command::CompileComponent(args) => Ok(cli::compile::run(&args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
