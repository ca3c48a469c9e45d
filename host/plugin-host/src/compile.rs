//! Compiling a component, in the server's process or in a child process
//! under limits of time and memory.
//!
//! Compile time and memory grow with what a component holds, and no cap
//! checked beforehand bounds them well (a million tiny functions took
//! minutes and gigabytes). With [`Compiler::Child`] the engine runs a
//! program (the `mozaiks` binary, re-executed with a hidden command) that
//! reads the component on stdin, limits its own data memory
//! (`RLIMIT_DATA`) and CPU time (`RLIMIT_CPU`) before anything else, and
//! writes the compiled artifact to a file in the component cache. The time
//! limit counts the compiler's CPU time (all its threads), not the wall
//! clock, so a legitimate compile on a busy machine is not stopped for
//! waiting; the engine still kills a compiler that has run for
//! [`WALL_CLOCK_FACTOR`] times the limit, whatever it did. A compile that
//! runs away is stopped and its memory goes back to the system with the
//! process; the server then loads the artifact like any cache entry.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::cache::{CacheOutcome, ComponentCache, create_private_dir};
use crate::limits::{MAX_COMPONENT_BYTES, MIB};

/// Default memory a compilation may use: the data (heap and private
/// mappings) of the compiler process. A Rust tool of a few MiB needs a few
/// hundred MiB.
pub const DEFAULT_COMPILE_MEMORY_MIB: u32 = 2048;
/// Least memory limit accepted: below it the compiler cannot start.
pub const MIN_COMPILE_MEMORY_MIB: u32 = 256;
/// Largest memory limit accepted (64 GiB).
pub const MAX_COMPILE_MEMORY_MIB: u32 = 64 * 1024;
/// Default CPU time a compilation may use, across all its threads. A Rust
/// tool compiles in about a second, a Python one (17 MiB) in about 20 s.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest compile time limit accepted.
pub const MAX_COMPILE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Bytes of the compiler's standard error kept for the error message.
const MAX_COMPILER_STDERR: usize = 4096;
/// A compiler still running after this many times its CPU-time limit, in
/// wall-clock time, is killed (it is stuck, or the machine is starved).
pub const WALL_CLOCK_FACTOR: u32 = 4;
/// How often the engine looks whether the compiler has finished.
const POLL: Duration = Duration::from_millis(10);

/// How much time and memory one compilation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// Memory of the compiler process (its data: heap and private
    /// mappings), in MiB; see [`DEFAULT_COMPILE_MEMORY_MIB`].
    pub memory_mib: u32,
    /// CPU time of the compiler, all its threads together (`RLIMIT_CPU`);
    /// see [`DEFAULT_COMPILE_TIMEOUT`] and [`WALL_CLOCK_FACTOR`].
    pub timeout: Duration,
}

impl Default for CompileLimits {
    fn default() -> Self {
        Self {
            memory_mib: DEFAULT_COMPILE_MEMORY_MIB,
            timeout: DEFAULT_COMPILE_TIMEOUT,
        }
    }
}

impl CompileLimits {
    /// Checks that both limits are within what is accepted.
    pub fn check(&self) -> Result<(), String> {
        if !(MIN_COMPILE_MEMORY_MIB..=MAX_COMPILE_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(format!(
                "the compile memory limit must be {MIN_COMPILE_MEMORY_MIB} to {MAX_COMPILE_MEMORY_MIB} MiB, not {}",
                self.memory_mib
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_COMPILE_TIMEOUT {
            return Err(format!(
                "the compile time limit must be 1 to {} s, not {} s",
                MAX_COMPILE_TIMEOUT.as_secs(),
                self.timeout.as_secs_f64()
            ));
        }
        Ok(())
    }

    /// CPU seconds the compiler may use (`RLIMIT_CPU`, which counts every
    /// thread of the process): the limit itself. Counting CPU rather than
    /// wall-clock time keeps the limit a measure of the component, not of
    /// how busy the machine is.
    fn cpu_secs(&self) -> u64 {
        self.timeout.as_secs().max(1)
    }

    /// Wall-clock time after which the compiler is killed whatever it did.
    fn wall_clock(&self) -> Duration {
        self.timeout.saturating_mul(WALL_CLOCK_FACTOR)
    }
}

/// Where an engine compiles components.
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// On a thread of this process: only the size and function caps apply
    /// (a library user without a compiler program: the plugin host's own
    /// tests, benchmarks).
    #[default]
    InProcess,
    /// In a child process under [`CompileLimits`].
    Child(ChildCompiler),
}

/// A compiler program and the limits it runs under.
#[derive(Debug, Clone)]
pub struct ChildCompiler {
    /// The program: the `mozaiks` binary.
    pub program: PathBuf,
    /// Its arguments before the ones the engine adds
    /// (`--memory-mib <n> --cpu-secs <n> --out <file>`): the hidden command
    /// that calls [`compile_child`].
    pub args: Vec<OsString>,
    /// The limits.
    pub limits: CompileLimits,
}

/// Why a compilation did not produce code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CompileFailure {
    /// The compiler refused the component.
    #[error("{0}")]
    Invalid(String),
    /// The compiler was stopped at a limit.
    #[error("{what}")]
    Limit {
        /// Which limit, with its value.
        what: String,
        /// What was seen.
        detail: String,
    },
    /// The compiler could not be run, or its artifact not read.
    #[error("{0}")]
    Io(String),
}

/// Compiles `bytes` (whose hash is `hash`) with `compiler`: from the cache
/// when it has the entry, else compiled and stored there. Blocking.
pub(crate) fn compile(
    engine: &Engine,
    compiler: &Compiler,
    cache: Option<&ComponentCache>,
    hash: &str,
    bytes: &[u8],
) -> Result<(Component, CacheOutcome), CompileFailure> {
    if let Some(component) = cache.and_then(|cache| cache.hit(engine, hash)) {
        return Ok((component, CacheOutcome::Hit));
    }
    let outcome = if cache.is_some() {
        CacheOutcome::Miss
    } else {
        CacheOutcome::Disabled
    };
    match compiler {
        Compiler::InProcess => {
            let component = Component::new(engine, bytes)
                .map_err(|e| CompileFailure::Invalid(format!("{e:#}")))?;
            if let Some(cache) = cache {
                cache.store(hash, &component);
            }
            Ok((component, outcome))
        }
        Compiler::Child(child) => {
            let component = match cache.filter(|cache| cache.writable_only_by_us()) {
                Some(cache) => {
                    let artifact = cache.artifact_path(hash);
                    let compiled = run_child(child, bytes, &artifact.temporary);
                    compiled
                        .and_then(|()| cache.adopt(engine, &artifact).map_err(CompileFailure::Io))
                }
                None => compile_to_scratch(engine, child, bytes),
            }?;
            Ok((component, outcome))
        }
    }
}

/// Without a cache (or with one others may write, whose entries are never
/// loaded): the artifact goes to a private scratch folder and is removed
/// once loaded.
fn compile_to_scratch(
    engine: &Engine,
    child: &ChildCompiler,
    bytes: &[u8],
) -> Result<Component, CompileFailure> {
    static SCRATCH: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mozaiks-compile-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed)
    ));
    create_private_dir(&dir).map_err(|e| CompileFailure::Io(format!("{}: {e}", dir.display())))?;
    let file = dir.join("component.cwasm");
    let loaded = run_child(child, bytes, &file).and_then(|()| {
        crate::cache::load_artifact(engine, &dir, &file).map_err(CompileFailure::Io)
    });
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

/// Runs the compiler on `bytes`, writing the artifact to `out`; it stops
/// itself at its CPU-time limit, and is killed after
/// [`CompileLimits::wall_clock`].
fn run_child(child: &ChildCompiler, bytes: &[u8], out: &Path) -> Result<(), CompileFailure> {
    let limits = child.limits;
    let mut process = Command::new(&child.program)
        .args(&child.args)
        .arg("--memory-mib")
        .arg(limits.memory_mib.to_string())
        .arg("--cpu-secs")
        .arg(limits.cpu_secs().to_string())
        .arg("--out")
        .arg(out)
        // Few malloc arenas: their reservations count against the limit.
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CompileFailure::Io(format!(
                "cannot start the compiler {}: {e}",
                child.program.display()
            ))
        })?;
    let started = Instant::now();
    let stdin = process.stdin.take();
    let input = bytes.to_vec();
    // A compiler that stops reading (it died) must not block the engine.
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let stderr = process.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(stderr) = stderr {
            let _ = stderr
                .take(MAX_COMPILER_STDERR as u64)
                .read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).trim().to_owned()
    });
    let status = loop {
        match process.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limits.wall_clock() => {
                let _ = process.kill();
                let _ = process.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                let _ = process.kill();
                let _ = process.wait();
                return Err(CompileFailure::Io(format!("waiting for the compiler: {e}")));
            }
        }
    };
    let _ = writer.join();
    let stderr = reader.join().unwrap_or_default();
    let Some(status) = status else {
        let _ = std::fs::remove_file(out);
        return Err(time_limit(
            limits,
            format!(
                "stopped after {:.1} s of wall-clock time",
                started.elapsed().as_secs_f64()
            ),
        ));
    };
    if status.success() {
        return Ok(());
    }
    let _ = std::fs::remove_file(out);
    Err(classify(limits, status, &stderr))
}

fn time_limit(limits: CompileLimits, detail: String) -> CompileFailure {
    CompileFailure::Limit {
        what: format!("compile time limit ({} s)", limits.timeout.as_secs_f64()),
        detail,
    }
}

/// Why the compiler failed: a limit it hit, or its own error.
fn classify(limits: CompileLimits, status: ExitStatus, stderr: &str) -> CompileFailure {
    let out_of_memory = [
        "memory allocation of",
        "Cannot allocate memory",
        "out of memory",
    ]
    .iter()
    .any(|sign| stderr.contains(sign));
    if out_of_memory {
        return CompileFailure::Limit {
            what: format!("compile memory limit ({} MiB)", limits.memory_mib),
            detail: last_line(stderr),
        };
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        // SIGXCPU at the CPU limit, SIGKILL just after it.
        if matches!(status.signal(), Some(24 | 9)) {
            return time_limit(limits, "its CPU time ran out".to_owned());
        }
    }
    if stderr.is_empty() {
        CompileFailure::Io(format!("the compiler failed ({status}) and said nothing"))
    } else {
        CompileFailure::Invalid(stderr.to_owned())
    }
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap_or_default().to_owned()
}

/// Why [`compile_child`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildCompileError {
    /// A limit could not be set.
    #[error("cannot set the compiler's {what} limit: {source}")]
    Limit {
        /// `memory` or `CPU time`.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The component could not be read, or the artifact written.
    #[error("{0}")]
    Io(String),
    /// The component does not compile.
    #[error("{0}")]
    Compile(String),
}

/// The compiler process's side of [`Compiler::Child`]: limits its own data
/// memory to `memory_mib` MiB and its CPU time to `cpu_secs`, reads a
/// component from standard input, compiles it for the engine's settings
/// and writes the artifact to `out`.
pub fn compile_child(memory_mib: u32, cpu_secs: u64, out: &Path) -> Result<(), ChildCompileError> {
    limit_self(memory_mib, cpu_secs)?;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_COMPONENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ChildCompileError::Io(format!("reading the component: {e}")))?;
    let engine = Engine::new(&crate::engine::compile_config())
        .map_err(|e| ChildCompileError::Compile(format!("{e:#}")))?;
    let artifact = engine
        .precompile_component(&bytes)
        .map_err(|e| ChildCompileError::Compile(format!("{e:#}")))?;
    std::fs::write(out, artifact)
        .map_err(|e| ChildCompileError::Io(format!("writing {}: {e}", out.display())))
}

#[cfg(unix)]
fn limit_self(memory_mib: u32, cpu_secs: u64) -> Result<(), ChildCompileError> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    // A compiler whose server died stops with it.
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let memory = u64::from(memory_mib) * MIB as u64;
    setrlimit(
        Resource::Data,
        Rlimit {
            current: Some(memory),
            maximum: Some(memory),
        },
    )
    .map_err(|e| ChildCompileError::Limit {
        what: "memory",
        source: e.into(),
    })?;
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(cpu_secs),
            maximum: Some(cpu_secs + 1),
        },
    )
    .map_err(|e| ChildCompileError::Limit {
        what: "CPU time",
        source: e.into(),
    })
}

#[cfg(not(unix))]
fn limit_self(_memory_mib: u32, _cpu_secs: u64) -> Result<(), ChildCompileError> {
    // Only the wall-clock limit applies here.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_out_of_range_are_refused() {
        assert_eq!(CompileLimits::default().check(), Ok(()));
        for limits in [
            CompileLimits {
                memory_mib: MIN_COMPILE_MEMORY_MIB - 1,
                ..CompileLimits::default()
            },
            CompileLimits {
                memory_mib: MAX_COMPILE_MEMORY_MIB + 1,
                ..CompileLimits::default()
            },
            CompileLimits {
                timeout: Duration::ZERO,
                ..CompileLimits::default()
            },
            CompileLimits {
                timeout: MAX_COMPILE_TIMEOUT + Duration::from_secs(1),
                ..CompileLimits::default()
            },
        ] {
            assert!(limits.check().is_err(), "{limits:?}");
        }
        let engine = crate::PluginEngine::new(crate::EngineConfig {
            max_concurrent_calls: 1,
            compiler: Compiler::Child(ChildCompiler {
                program: "mozaiks".into(),
                args: Vec::new(),
                limits: CompileLimits {
                    memory_mib: 1,
                    ..CompileLimits::default()
                },
            }),
            ..crate::EngineConfig::default()
        });
        assert!(engine.is_err(), "the engine refuses them too");
    }

    /// What a compiler process makes (with `compile_config`) loads in the
    /// engine, whose instance pool it does not have.
    #[test]
    fn an_artifact_of_the_compiler_settings_loads_in_the_engine() {
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::ModuleSection(&wasm_encoder::Module::new()));
        let compiler = Engine::new(&crate::engine::compile_config()).unwrap();
        let artifact = compiler.precompile_component(&component.finish()).unwrap();
        let engine = crate::PluginEngine::new(crate::EngineConfig {
            max_concurrent_calls: 1,
            ..crate::EngineConfig::default()
        })
        .unwrap();
        // SAFETY: the artifact was made just above by wasmtime itself.
        #[allow(unsafe_code, reason = "loading an artifact this test made")]
        let loaded = unsafe { Component::deserialize(&engine.engine, &artifact) };
        loaded.unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_compiler_that_ran_out_of_memory_or_cpu_is_told_from_one_that_refused() {
        use std::os::unix::process::ExitStatusExt as _;
        let limits = CompileLimits::default();
        let aborted = ExitStatus::from_raw(6);
        let failed = ExitStatus::from_raw(1 << 8);
        let memory = classify(
            limits,
            aborted,
            "memory allocation of 51380240 bytes failed",
        );
        assert!(
            memory
                .to_string()
                .contains("compile memory limit (2048 MiB)"),
            "{memory}"
        );
        let cpu = classify(limits, ExitStatus::from_raw(24), "");
        assert!(
            cpu.to_string().contains("compile time limit (60 s)"),
            "{cpu}"
        );
        let invalid = classify(limits, failed, "failed to parse WebAssembly module");
        assert!(matches!(invalid, CompileFailure::Invalid(_)), "{invalid}");
    }

    /// The limit is CPU time, so waiting is not stopped at the limit; a
    /// compiler that neither works nor ends is killed at
    /// `WALL_CLOCK_FACTOR` times it.
    #[cfg(unix)]
    #[test]
    fn a_compiler_that_neither_works_nor_ends_is_killed_at_the_wall_clock_backstop() {
        let limits = CompileLimits {
            timeout: Duration::from_secs(1),
            ..CompileLimits::default()
        };
        // `sh -c 'exec sleep 30' compiler --memory-mib …`: the engine's own
        // arguments land in $1…, and the script ignores them.
        let child = ChildCompiler {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), "exec sleep 30".into(), "compiler".into()],
            limits,
        };
        let out = std::env::temp_dir().join(format!("mozaiks-stuck-{}", std::process::id()));
        let started = Instant::now();
        let failure = run_child(&child, b"", &out).unwrap_err();
        let waited = started.elapsed();
        assert!(
            matches!(&failure, CompileFailure::Limit { what, detail }
                if what == "compile time limit (1 s)" && detail.contains("wall-clock")),
            "{failure:?}"
        );
        assert!(
            waited >= limits.timeout * WALL_CLOCK_FACTOR,
            "killed after {waited:?}, before the backstop"
        );
        assert!(waited < Duration::from_secs(30), "never killed: {waited:?}");
    }
}
