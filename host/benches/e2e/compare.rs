//! The AG2 side of `bench/compare/run`: bare AG2 driven by
//! `bench/compare/ag2_chats.py` against a fake LLM process of its own
//! (the same program and answers as the mozaiks side's), timed the same
//! way, then both printed side by side with ratios.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::Command;

use crate::Config;
use crate::common::fake_llm_process::{FakeLlmProcess, replay};
use crate::common::ms;
use crate::common::server_process::mib;
use crate::measure::{Batch, Figures, Mode, Overhead};

/// AG2's `max_turns` (round trips of `initiate_chat`) that give about 20
/// agent turns: without tools, the initiator's opening message is not an
/// LLM turn, so 10 round trips make 19 answered turns (11 would make 21);
/// with the tool, the executor's tool run is a reply of its own, and 31
/// round trips make 20 answered turns. Every figure is divided by the
/// turns actually answered, counted in the chat's history.
const AG2_MAX_TURNS: [(Mode, u32); 2] = [(Mode::Text, 10), (Mode::Tools, 31)];

fn max_turns(mode: Mode) -> u32 {
    AG2_MAX_TURNS
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or(10, |(_, n)| *n)
}

fn mode_of(record: &Value) -> anyhow::Result<Mode> {
    match record.get("mode").and_then(Value::as_str) {
        Some("text") => Ok(Mode::Text),
        Some("tools") => Ok(Mode::Tools),
        other => bail!("unknown mode {other:?} from the AG2 script"),
    }
}

fn number(record: &Value, key: &str) -> anyhow::Result<f64> {
    record
        .get(key)
        .and_then(Value::as_f64)
        .with_context(|| format!("no `{key}` in {record}"))
}

/// Runs the AG2 script with `python` and measures it as the mozaiks side
/// was measured.
pub(crate) async fn run_ag2(python: &Path, config: &Config) -> anyhow::Result<Figures> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/compare/ag2_chats.py");
    let mut llm = FakeLlmProcess::spawn(Duration::ZERO).await?;
    let http = reqwest::Client::new();
    let settings = json!({
        "max_turns": {"text": max_turns(Mode::Text), "tools": max_turns(Mode::Tools)},
        "warmup": config.warmup_chats,
        "measured": config.measured_chats,
        "concurrency": config.concurrency,
    });
    println!(
        "\nbare AG2 ({}), two ConversableAgents, initiate_chat (max_turns {} / {} with the tool), \
         its own fake LLM process:",
        python.display(),
        max_turns(Mode::Text),
        max_turns(Mode::Tools)
    );
    let spawned = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let mut child = Command::new(python)
        .arg(&script)
        .arg(format!("{}/", llm.base_url()))
        .arg(settings.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let mut stdin = child.stdin.take().context("python stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("python stdout")?).lines();
    let mut figures = Figures::default();
    let mut overhead: Vec<(Mode, Overhead)> = Mode::BOTH
        .iter()
        .map(|&m| (m, Overhead::default()))
        .collect();
    loop {
        let line = lines
            .next_line()
            .await?
            .context("the AG2 script exited early (its error is above)")?;
        let record: Value = serde_json::from_str(&line)
            .with_context(|| format!("the AG2 script printed: {line}"))?;
        let requests = llm.take_requests().await?;
        match record.get("phase").and_then(Value::as_str) {
            Some("first_answer") => {
                let at = Duration::from_secs_f64(number(&record, "epoch")?);
                figures.first_answer = at.saturating_sub(spawned);
                println!(
                    "  first answer {} after spawning python",
                    ms(figures.first_answer)
                );
            }
            Some("overhead") => {
                let mode = mode_of(&record)?;
                let llm_time = replay(&http, llm.base_url(), &requests).await?;
                // The fake recorded the replay too.
                llm.take_requests().await?;
                let turns = u32::try_from(number(&record, "turns")? as u64)?;
                if record.get("warmup") != Some(&Value::Bool(true))
                    && let Some((_, o)) = overhead.iter_mut().find(|(m, _)| *m == mode)
                {
                    o.push(
                        Duration::from_secs_f64(number(&record, "wall")?),
                        llm_time,
                        turns,
                    );
                }
            }
            Some("throughput") => {
                let mode = mode_of(&record)?;
                let chats = number(&record, "chats")? as usize;
                let turns = number(&record, "turns")?;
                let elapsed = number(&record, "elapsed")?;
                let mut walls: Vec<Duration> = record
                    .get("walls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .map(Duration::from_secs_f64)
                    .collect();
                walls.sort();
                let turns_per_s = turns / elapsed;
                println!(
                    "  {:<14} C = {chats:>3}: {turns_per_s:>6.0} turns/s ({turns} turns);  chat completion p50 {:>10}  p99 {:>10}",
                    mode.label(),
                    ms(crate::common::percentile(&walls, 0.5)),
                    ms(crate::common::percentile(&walls, 0.99)),
                );
                figures.throughput.push(Batch {
                    mode,
                    chats,
                    turns_per_s,
                });
            }
            Some("done") => {
                figures.peak_rss = number(&record, "peak_rss")? as u64;
                break;
            }
            _ => bail!("unexpected line from the AG2 script: {line}"),
        }
        stdin.write_all(b"\n").await?;
        stdin.flush().await?;
    }
    drop(stdin);
    child.wait().await?;
    for (mode, o) in &overhead {
        o.print(mode.label());
    }
    println!("  peak RSS {}", mib(figures.peak_rss));
    figures.overhead = overhead;
    Ok(figures)
}

/// Prints both sides and the ratio AG2 / mozaiks (above 1: mozaiks is
/// better).
pub(crate) fn print(mozaiks: &Figures, ag2: &Figures) {
    println!("\nside by side (same run, same machine, same fake LLM program):");
    println!(
        "  {:<44} {:>12} {:>12} {:>18}",
        "measure", "mozaiks", "AG2 0.14", "AG2 / mozaiks"
    );
    let row = |label: String, m: f64, a: f64, unit: &str, higher_is_better: bool| {
        let ratio = if higher_is_better { m / a } else { a / m };
        let better = if higher_is_better {
            "mozaiks / AG2"
        } else {
            "AG2 / mozaiks"
        };
        println!("  {label:<44} {m:>9.2} {unit:<3} {a:>9.2} {unit:<3} {ratio:>9.1}× ({better})");
    };
    for mode in Mode::BOTH {
        let find = |f: &Figures| {
            f.overhead
                .iter()
                .find(|(m, _)| *m == mode)
                .map(|(_, o)| o.clone())
        };
        if let (Some(m), Some(a)) = (find(mozaiks), find(ag2)) {
            row(
                format!("overhead per turn p50, {}", mode.label()),
                m.p50().as_secs_f64() * 1e3,
                a.p50().as_secs_f64() * 1e3,
                "ms",
                false,
            );
            row(
                format!("overhead per turn p99, {}", mode.label()),
                m.p99().as_secs_f64() * 1e3,
                a.p99().as_secs_f64() * 1e3,
                "ms",
                false,
            );
        }
    }
    for batch in &mozaiks.throughput {
        if let Some(other) = ag2
            .throughput
            .iter()
            .find(|b| b.mode == batch.mode && b.chats == batch.chats)
        {
            row(
                format!("turns/s at {} chats, {}", batch.chats, batch.mode.label()),
                batch.turns_per_s,
                other.turns_per_s,
                "/s",
                true,
            );
        }
    }
    let to_mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    row(
        "peak RSS".to_owned(),
        to_mib(mozaiks.peak_rss),
        to_mib(ag2.peak_rss),
        "MiB",
        false,
    );
    row(
        "time to the first answered chat".to_owned(),
        mozaiks.first_answer.as_secs_f64() * 1e3,
        ag2.first_answer.as_secs_f64() * 1e3,
        "ms",
        false,
    );
}
