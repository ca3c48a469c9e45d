//! Limits of a call and the resource limiter that enforces memory.
//!
//! Every number here is a named constant with the reason it has that value.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

/// Default linear memory per call. Enough for JSON-heavy tools written in
/// Rust (a few MiB of heap) with room to spare; small enough that hundreds of
/// concurrent calls fit in a server's memory.
pub const DEFAULT_MEMORY_MIB: u32 = 64;
/// Largest memory a manifest may ask for; also the pooling allocator's slot size.
pub const MAX_MEMORY_MIB: u32 = 1024;
/// Default CPU time per call. Tools do small, deterministic work; anything
/// slower belongs in a service the tool calls through a granted host.
pub const DEFAULT_DEADLINE_MS: u32 = 5_000;
/// Largest CPU deadline a manifest may ask for.
pub const MAX_DEADLINE_MS: u32 = 600_000;
/// Default largest result. A tool result goes into an LLM prompt, where
/// anything beyond a few hundred KiB is noise and cost.
pub const DEFAULT_MAX_OUTPUT_KIB: u32 = 1024;
/// Largest result a manifest may allow.
pub const MAX_OUTPUT_KIB: u32 = 64 * 1024;
/// Default wall time of one outbound HTTP request, sending to last byte:
/// long enough for a slow API, short enough that a hung one fails the call
/// in good time.
pub const DEFAULT_HTTP_DEADLINE_MS: u32 = 30_000;
/// Longest outbound HTTP request a manifest may allow.
pub const MAX_HTTP_DEADLINE_MS: u32 = 600_000;
/// Default largest outbound HTTP response body: an API answer, not a
/// download. The guest holds it in its memory.
pub const DEFAULT_MAX_RESPONSE_KIB: u32 = 10 * 1024;
/// Largest response body a manifest may allow (a guest has at most
/// `MAX_MEMORY_MIB` of memory to hold it).
pub const MAX_RESPONSE_KIB: u32 = 256 * 1024;
/// Default outbound HTTP requests one call may have in flight at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 4;
/// Most requests in flight per call a manifest may allow.
pub const MAX_CONCURRENT_REQUESTS: u32 = 32;
/// Largest arguments a caller may pass, checked before a call starts.
pub const MAX_ARGUMENTS_BYTES: usize = 4 * 1024 * 1024;
/// Longest a `ui.ask` may wait, whatever the tool asks for: a request
/// nobody answers for an hour is abandoned.
pub const MAX_UI_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long after a UI request's timeout the host stops waiting for a
/// bridge that has not returned. Bridges that enforce the timeout
/// themselves (the server's records the timeout before the tool sees it)
/// get to do so first; a bridge that never returns is still bounded.
pub const UI_TIMEOUT_GRACE: Duration = Duration::from_millis(250);
/// Most `ui.ask` requests one call may make. A tool that needs more
/// questions than this asks them in one form; beyond it `ask` fails at once
/// with `invalid-request` naming the limit, without reaching the user.
pub const MAX_UI_ASKS_PER_CALL: u32 = 20;
/// Most UI events (asks and notifications) one call may send. Each is stored
/// in the chat and sent to every client; notifications beyond this are
/// dropped, with one warning in the tool's log.
pub const MAX_UI_EVENTS_PER_CALL: u32 = 100;
/// Longest message of a tool's own error (`tool-error`) passed on; the
/// rest is cut, with a note saying how much. Never more than the plugin's
/// `max_output_kib`, since the message goes to the agent like a result.
pub const MAX_TOOL_ERROR_BYTES: usize = 64 * 1024;
/// Largest payload of one `ui.ask` or `ui.notify`, as the JSON text the tool
/// sends. It is stored in the chat and sent to every client: a form's input,
/// not a file. A larger `ask` fails with `invalid-request`; a larger
/// `notify` is dropped with a warning in the tool's log.
pub const MAX_UI_PAYLOAD_BYTES: usize = 256 * 1024;
/// Longest UI component name.
pub const MAX_UI_COMPONENT_BYTES: usize = 128;
/// Longest message kept from one log record; the rest is cut.
pub const MAX_LOG_MESSAGE_BYTES: usize = 16 * 1024;
/// Fields kept from one log record; the rest are dropped (a field
/// `fields_dropped` says how many).
pub const MAX_LOG_FIELDS: usize = 32;
/// Longest field name kept in a log record; longer names are cut.
pub const MAX_LOG_FIELD_KEY_BYTES: usize = 64;
/// Longest field value kept in a log record; the rest is cut.
pub const MAX_LOG_FIELD_BYTES: usize = 1024;
/// Log records (through the `log` import) one call may write; later ones
/// are dropped, with one warning.
pub const MAX_LOG_RECORDS_PER_CALL: usize = 1000;
/// Largest value of one context variable, as JSON text.
pub const MAX_CONTEXT_VALUE_BYTES: usize = 1024 * 1024;
/// Longest context variable name.
pub const MAX_CONTEXT_KEY_BYTES: usize = 256;
/// Most context a chat may hold: the names and JSON values of all its
/// variables together. Context goes into prompts and every change into the
/// chat's stored log; a set that would take a chat beyond this is refused.
pub const MAX_CONTEXT_TOTAL_BYTES: usize = 8 * 1024 * 1024;
/// Most context changes (sets and removes) one call may make: each is an
/// event stored in the chat's log.
pub const MAX_CONTEXT_CHANGES_PER_CALL: usize = 100;
/// Most bytes of values one call may set, all sets together (the same key
/// set again counts again: each set is stored).
pub const MAX_CONTEXT_WRITE_BYTES_PER_CALL: usize = 8 * 1024 * 1024;

/// Longest collection name of the `data` import: a name, not data.
pub const MAX_DATA_COLLECTION_BYTES: usize = 128;
/// Longest document id of the `data` import.
pub const MAX_DATA_ID_BYTES: usize = 256;
/// Most filters in one `data.query`: each is checked against every
/// document of the collection.
pub const MAX_DATA_FILTERS: usize = 16;
/// Most documents one `data.query` returns, whatever `limit` asks.
pub const MAX_DATA_QUERY_LIMIT: usize = 100;
/// A `data.query` stops adding documents once their bodies pass this
/// total, so a page of large documents cannot fill the guest's memory;
/// the tool pages on with `after-id`.
pub const MAX_DATA_QUERY_BYTES: usize = 4 * 1024 * 1024;
/// Most `data` operations in one call: a loop that never ends still ends.
pub const MAX_DATA_OPS_PER_CALL: usize = 1_000;
/// Most messages one `chat.recent-messages` returns.
pub const MAX_CHAT_MESSAGES: usize = 100;
/// A message text passed to a tool is cut at this size, with a note.
pub const MAX_CHAT_MESSAGE_BYTES: usize = 64 * 1024;
/// CPU time for loading a plugin: instantiating it and running its
/// `describe()`, whatever deadline its manifest asks for calls. Describing
/// is building a list; a component that takes longer does not load (and
/// cannot hold up the others, or a reload, for longer than this).
pub const DESCRIBE_DEADLINE: Duration = Duration::from_secs(2);
/// Most functions one plugin may offer: what OpenAI-compatible APIs take
/// as the tools of one request.
pub const MAX_FUNCTIONS_PER_PLUGIN: usize = 128;
/// Longest description of one function (it goes into every prompt).
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// Largest parameter schema of one function, as JSON text (it goes into
/// every prompt too).
pub const MAX_PARAMETERS_BYTES: usize = 64 * 1024;
/// Largest component a plugin may be, checked before anything else. Tool
/// components are a few MiB (with line tables); this bounds the memory and
/// the time compiling one can take.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;
/// Most functions (bodies of code, all core modules together) a component
/// may define, counted before compiling. Compile time and memory grow with
/// them (a million empty functions took minutes and gigabytes); a Rust
/// tool has a few thousand.
pub const MAX_COMPONENT_FUNCTIONS: u32 = 50_000;
/// Compilations that run at once; the others wait their turn. Each can use
/// every core and hundreds of MiB for a while.
pub const MAX_CONCURRENT_COMPILES: usize = 2;
/// Elements one table may have (a Rust tool's function table has a few
/// thousand): a module declaring a larger table does not instantiate, and
/// `table.grow` beyond it fails (returns -1), so tables cannot be grown as
/// a memory bomb. It is also what the instance pool reserves for every
/// table (8 bytes an element), so it is the pool's setting and the
/// limiter's at once.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Native stack guest code may use. Deep recursion traps with "call stack
/// exhausted" (a `CallError::Trap`) well before the host thread's own stack
/// is at risk.
pub const MAX_WASM_STACK_BYTES: usize = 1024 * 1024;
/// Bytes of a call's stdout and of its stderr kept for the logs; the rest is
/// dropped (and said so) so a chatty tool cannot fill the host's memory.
pub const MAX_CAPTURED_OUTPUT_BYTES: usize = 64 * 1024;

/// Bytes in a MiB.
pub(crate) const MIB: usize = 1024 * 1024;

/// Cuts `text` to at most `max` bytes (at a character boundary) and, if
/// anything was cut, says how much in a short note after it.
pub(crate) fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let cut_bytes = text.len() - floor_boundary(text, max);
    text.truncate(text.len() - cut_bytes);
    text.push_str(&format!(" [{cut_bytes} bytes cut]"));
}

/// Cuts `text` to at most `max` bytes (at a character boundary), silently:
/// for names, where a note would not fit.
pub(crate) fn clip(text: &mut String, max: usize) {
    if text.len() > max {
        text.truncate(floor_boundary(text, max));
    }
}

fn floor_boundary(text: &str, max: usize) -> usize {
    let mut at = max.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Enforces a plugin's memory limit and remembers whether it was hit, so a
/// guest that aborts after a refused allocation is reported as such.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit_bytes: usize,
    /// The size a refused growth asked for, if any.
    pub(crate) refused: Option<usize>,
    /// The largest size a memory of the instance was allowed to grow to
    /// (its initial size counts as a growth from 0).
    pub(crate) peak: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(limit_mib: u32) -> Self {
        Self {
            limit_bytes: limit_mib as usize * MIB,
            refused: None,
            peak: 0,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.refused = Some(desired);
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// CPU budget of one call: wall time since the call started, minus the time
/// the guest spent blocked on the user in `ui.ask`.
#[derive(Debug)]
pub(crate) struct CpuBudget {
    started: Instant,
    waited: Duration,
    deadline: Duration,
}

impl CpuBudget {
    pub(crate) fn new(deadline: Duration) -> Self {
        Self {
            started: Instant::now(),
            waited: Duration::ZERO,
            deadline,
        }
    }

    /// Records time the guest spent waiting on the host for a human.
    pub(crate) fn add_wait(&mut self, waited: Duration) {
        self.waited += waited;
    }

    pub(crate) fn used(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.waited)
    }

    /// Whether the budget is spent once `network` (time with an outbound
    /// request in flight) is left out too.
    pub(crate) fn exhausted_besides(&self, network: Duration) -> bool {
        self.used().saturating_sub(network) > self.deadline
    }

    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_growth_beyond_the_limit_and_remembers_it() {
        let mut limiter = MemoryLimiter::new(1);
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        assert!(limiter.refused.is_none());
        assert!(!limiter.memory_growing(MIB, 2 * MIB, None).unwrap());
        assert_eq!(limiter.refused, Some(2 * MIB));
        assert_eq!(limiter.peak, MIB, "the largest growth allowed");
    }

    #[test]
    fn cutting_keeps_whole_characters_and_says_how_much_was_cut() {
        let mut text = "é".repeat(10);
        cut(&mut text, 5);
        assert_eq!(text, "éé [16 bytes cut]");
        let mut short = "abc".to_owned();
        cut(&mut short, 3);
        assert_eq!(short, "abc");
        let mut name = "ééé".to_owned();
        clip(&mut name, 3);
        assert_eq!(name, "é");
    }

    #[test]
    fn waiting_for_the_user_does_not_use_the_budget() {
        let mut budget = CpuBudget::new(Duration::from_millis(1));
        budget.add_wait(Duration::from_secs(60));
        assert!(!budget.exhausted_besides(Duration::ZERO));
    }
}
