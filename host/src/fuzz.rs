//! Fuzz targets on a stable toolchain: the inputs the server takes from
//! outside (a workflow folder, a handoff condition, a plugin manifest, a
//! client's WebSocket message, a stored event), each fed mutated and
//! generated inputs for a bounded time inside `cargo test`.
//!
//! Each target starts from its corpus in `host/fuzz/corpus/<target>/`
//! (every file is one input, run first as it is), then runs mutations of
//! it for `MOZAIKS_FUZZ_SECS` seconds (default 2; a CI job can give more).
//! The mutations are chosen by [`arbitrary::Unstructured`] over random
//! bytes from a seeded generator: byte edits, tokens of the input's
//! language, long repetitions, splices of two inputs. A target fails on a
//! panic or a broken property; the message names the seed
//! (`MOZAIKS_FUZZ_SEED=<n>` replays the run) and the input is written to
//! `target/fuzz-failures/<target>/`. Any input that failed becomes a file
//! of the corpus and a test of its own.
//!
//! A stack overflow cannot be caught: the test binary aborts. The seed of
//! the run in progress is in `target/fuzz-failures/<target>/seed`.

mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;

/// The default time each target runs mutations.
const DEFAULT_BUDGET: Duration = Duration::from_secs(2);

/// The longest input a mutation makes.
const MAX_INPUT: usize = 64 * 1024;

/// Where a target's corpus is.
fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn failures_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/fuzz-failures")
        .join(target)
}

/// The corpus files of `target`, sorted by name.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} cannot be read: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// xorshift64*: small, seeded, good enough to drive mutations.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n.div_ceil(8))
            .flat_map(|_| self.next().to_le_bytes())
            .take(n)
            .collect()
    }
}

/// `input` changed by one to four mutations, chosen by `u`.
fn mutate(u: &mut Unstructured<'_>, input: &[u8], corpus: &[Vec<u8>], tokens: &[&str]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = u.int_in_range(1..=4).unwrap_or(1);
    for _ in 0..rounds {
        let at = |u: &mut Unstructured<'_>, len: usize| u.int_in_range(0..=len).unwrap_or(0);
        match u.int_in_range(0..=7).unwrap_or(0) {
            0 if !out.is_empty() => {
                let i = at(u, out.len() - 1);
                out[i] ^= 1 << u.int_in_range(0..=7).unwrap_or(0);
            }
            1 => {
                let i = at(u, out.len());
                out.insert(i, u.arbitrary().unwrap_or(b'"'));
            }
            2 if !out.is_empty() => {
                let start = at(u, out.len() - 1);
                let end = (start + at(u, 16)).min(out.len());
                out.drain(start..end);
            }
            3 | 4 => {
                let token = u.choose(tokens).copied().unwrap_or("");
                let i = at(u, out.len());
                out.splice(i..i, token.bytes());
            }
            5 => {
                // A token many times: deep nesting, long runs.
                let token = u.choose(tokens).copied().unwrap_or("(");
                let times = u.int_in_range(1..=20_000).unwrap_or(1);
                let i = at(u, out.len());
                out.splice(i..i, token.repeat(times).into_bytes());
            }
            6 => {
                let other = u.choose(corpus).map(Vec::as_slice).unwrap_or_default();
                let cut = at(u, out.len());
                let from = at(u, other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                let cut = at(u, out.len());
                out.truncate(cut);
            }
        }
    }
    out.truncate(MAX_INPUT);
    out
}

/// Runs `check` on every corpus input of `target`, then on mutations of
/// them until the budget is spent. Fails with the seed and the input on a
/// panic.
fn fuzz(target: &str, tokens: &[&str], check: impl Fn(&[u8])) {
    let corpus = corpus(target);
    for (i, input) in corpus.iter().enumerate() {
        if let Err(message) = run_one(&check, input) {
            panic!("{target}: corpus file #{i} fails: {message}");
        }
    }
    let seed = std::env::var("MOZAIKS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let budget = std::env::var("MOZAIKS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_BUDGET, Duration::from_secs);
    let failures = failures_dir(target);
    let _ = std::fs::create_dir_all(&failures);
    let _ = std::fs::write(failures.join("seed"), seed.to_string());
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let choice = rng.bytes(256);
        let mut u = Unstructured::new(&choice);
        let base = u.choose(&corpus).map(Vec::as_slice).unwrap_or_default();
        let input = mutate(&mut u, base, &corpus, tokens);
        runs += 1;
        if let Err(message) = run_one(&check, &input) {
            let file = failures.join(format!("input-{seed}-{runs}"));
            let _ = std::fs::write(&file, &input);
            panic!(
                "{target}: input {} fails after {runs} runs (MOZAIKS_FUZZ_SEED={seed}): {message}",
                file.display()
            );
        }
    }
}

fn run_one(check: &impl Fn(&[u8]), input: &[u8]) -> Result<(), String> {
    // The default hook would print every caught panic.
    catch_unwind(AssertUnwindSafe(|| check(input))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

/// A failing mutation's message names the seed that replays the run (the
/// seed is taken from the clock unless `MOZAIKS_FUZZ_SEED` is set).
#[test]
fn a_failure_names_the_seed_that_replays_it() {
    let corpus = corpus("condition");
    let failed = catch_unwind(AssertUnwindSafe(|| {
        fuzz("condition", &[], |input| {
            assert!(corpus.iter().any(|c| c == input), "a mutation");
        });
    }))
    .expect_err("a check that refuses every mutation fails");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("MOZAIKS_FUZZ_SEED="), "{message}");
    let seed = message
        .split("MOZAIKS_FUZZ_SEED=")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|seed| seed.parse::<u64>().ok());
    assert!(seed.is_some(), "the seed is a number: {message}");
}
