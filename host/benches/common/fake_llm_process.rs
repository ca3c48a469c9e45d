//! The fake OpenAI-compatible server (`tests/fake-llm`) in a process of its
//! own, for the benchmarks that measure the real `mozaiks` binary.
//!
//! A benchmark binary runs it by starting itself again with
//! [`ROLE_ARG`] (see [`serve_if_asked`]), so no other executable is needed.
//! The child prints `fake-llm listening on <base url>` and then takes
//! commands on stdin, one a line:
//!
//! - `take`: prints, as one JSON line, every request body received since
//!   the last `take`, in arrival order (the benchmarks replay them to time
//!   the LLM alone).
//!
//! It exits when its stdin closes, so it never outlives the benchmark.

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use mozaiks_fake_llm::{ChatCall, FakeLlm, Reply};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The argument that makes a benchmark binary serve the fake LLM.
pub(crate) const ROLE_ARG: &str = "--role=fake-llm";
/// The argument that sets the fake's delay before each answer, in ms.
const DELAY_ARG: &str = "--delay-ms=";
/// What every agent says (the fake's text reply), as in the orchestration
/// benchmark.
pub(crate) const REPLY_TEXT: &str =
    "Noted. Here is my contribution to the discussion, in one sentence.";
/// The tool the benchmark workflows offer.
pub(crate) const TOOL_NAME: &str = "echo";

/// The fake model: asks for `echo` when it is offered and the last message
/// is not a tool result; otherwise answers with text. The same rule serves
/// mozaiks and AG2.
pub(crate) fn respond(call: &ChatCall) -> Reply {
    let offers_tool = call.tool_names().iter().any(|n| n == TOOL_NAME);
    let after_tool = call.last_message().get("role").and_then(Value::as_str) == Some("tool");
    if offers_tool && !after_tool {
        Reply::tool_call(TOOL_NAME, json!({"text": "a note for the record"}))
    } else {
        Reply::text(REPLY_TEXT)
    }
}

/// If this process was started with [`ROLE_ARG`], serves the fake LLM
/// until stdin closes and exits; otherwise returns.
pub(crate) fn serve_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == ROLE_ARG) {
        return;
    }
    let delay = args
        .iter()
        .find_map(|a| a.strip_prefix(DELAY_ARG))
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let code = match serve(delay) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("fake-llm: {error:#}");
            1
        }
    };
    std::process::exit(code);
}

fn serve(delay: Duration) -> anyhow::Result<()> {
    // One worker: a local model server shares the machine's two cores with
    // the server and the client, and one core of answers is far more than
    // the benchmarks ask for (see docs/benchmarks.md).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let recorded = Arc::clone(&bodies);
        let fake = FakeLlm::start(move |call| {
            recorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(call.body.clone());
            let reply = respond(call);
            if delay.is_zero() {
                reply
            } else {
                reply.after(delay)
            }
        })
        .await;
        let mut out = tokio::io::stdout();
        out.write_all(format!("fake-llm listening on {}\n", fake.base_url()).as_bytes())
            .await?;
        out.flush().await?;
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            match line.trim() {
                "take" => {
                    let taken =
                        std::mem::take(&mut *bodies.lock().unwrap_or_else(PoisonError::into_inner));
                    let mut text = serde_json::to_string(&taken)?;
                    text.push('\n');
                    out.write_all(text.as_bytes()).await?;
                    out.flush().await?;
                }
                other => bail!("unknown command `{other}`"),
            }
        }
        drop(fake);
        Ok(())
    })
}

/// A running fake LLM child process.
#[derive(Debug)]
pub(crate) struct FakeLlmProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    base_url: String,
}

impl FakeLlmProcess {
    /// Starts this executable again as the fake LLM, answering after
    /// `delay`.
    pub(crate) async fn spawn(delay: Duration) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this benchmark's executable")?;
        let mut child = Command::new(exe)
            .arg(ROLE_ARG)
            .arg(format!("{DELAY_ARG}{}", delay.as_millis()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the fake LLM process")?;
        let stdin = child.stdin.take().context("fake LLM stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("fake LLM stdout")?).lines();
        let line = stdout
            .next_line()
            .await?
            .context("the fake LLM exited before listening")?;
        let base_url = line
            .strip_prefix("fake-llm listening on ")
            .with_context(|| format!("unexpected first line from the fake LLM: {line}"))?
            .to_owned();
        Ok(Self {
            child,
            stdin,
            stdout,
            base_url,
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The process id (for `perf`).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every request body received since the last call.
    pub(crate) async fn take_requests(&mut self) -> anyhow::Result<Vec<Value>> {
        self.stdin.write_all(b"take\n").await?;
        self.stdin.flush().await?;
        let line = self
            .stdout
            .next_line()
            .await?
            .context("the fake LLM exited")?;
        Ok(serde_json::from_str(&line)?)
    }
}

/// Whether the fake answered `body` with a tool call (by [`respond`]'s
/// rule): such a request is the first half of a tool turn.
pub(crate) fn asks_for_tool(body: &Value) -> bool {
    let offers_tool = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| {
            tools
                .iter()
                .any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(TOOL_NAME))
        });
    let after_tool = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("tool");
    offers_tool && !after_tool
}

/// Sends `bodies` to the fake one after another with a plain HTTP client
/// (reading each answer, streamed or not, to its end), the way L is timed
/// for both mozaiks and AG2: the LLM's own time as a client sees it.
pub(crate) async fn replay(
    http: &reqwest::Client,
    base_url: &str,
    bodies: &[Value],
) -> anyhow::Result<Duration> {
    let url = format!("{base_url}/chat/completions");
    let started = std::time::Instant::now();
    for body in bodies {
        let response = http
            .post(&url)
            .bearer_auth("bench")
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "replayed request answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    Ok(started.elapsed())
}
