//! `mozaiks compile-component` (hidden): the compiler process of
//! `mozaiks_plugin_host::Compiler::Child`. It limits its own memory and CPU
//! time first, reads a component on standard input and writes the compiled
//! artifact to `--out`. Every command that loads plugins runs it through
//! [`child_compiler`]: a runaway compile is stopped and its memory returned
//! with the process.

use std::path::PathBuf;
use std::process::ExitCode;

use mozaiks_plugin_host::{ChildCompiler, CompileLimits, Compiler};

/// The hidden command's arguments, added by the engine.
#[derive(Debug, clap::Args)]
pub(crate) struct CompileArgs {
    /// Data memory limit of this process, MiB.
    #[arg(long)]
    memory_mib: u32,
    /// CPU time limit of this process, seconds.
    #[arg(long)]
    cpu_secs: u64,
    /// Where the artifact goes.
    #[arg(long)]
    out: PathBuf,
}

/// Runs the compiler: exit 0 with the artifact written, 1 with the reason
/// on standard error.
pub(crate) fn run(args: &CompileArgs) -> ExitCode {
    match mozaiks_plugin_host::compile_child(args.memory_mib, args.cpu_secs, &args.out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// This binary as the compiler of an engine, under `limits`.
pub(crate) fn child_compiler(limits: CompileLimits) -> anyhow::Result<Compiler> {
    Ok(Compiler::Child(ChildCompiler {
        program: std::env::current_exe()?,
        args: vec!["compile-component".into()],
        limits,
    }))
}
