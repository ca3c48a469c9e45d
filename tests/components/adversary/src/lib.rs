//! A tool that misbehaves on request, for the host's tests: every function
//! tries one thing the sandbox or the limits must contain, or exercises one
//! import. `std::hint::black_box` keeps the optimiser from removing the
//! misbehaviour.

use std::hint::black_box;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mozaiks_sdk::{Call, Display, ToolError, Toolbox, UiError, Value, json};
use serde::Deserialize;

const MIB: usize = 1 << 20;

#[derive(Deserialize)]
struct Depth {
    depth: u64,
}

#[derive(Deserialize)]
struct Path {
    path: String,
}

#[derive(Deserialize)]
struct WriteFile {
    path: String,
    contents: String,
}

#[derive(Deserialize)]
struct Rename {
    from: String,
    to: String,
}

#[derive(Deserialize)]
struct Symlink {
    target: String,
    link: String,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
struct Addr {
    addr: SocketAddr,
}

#[derive(Deserialize)]
struct Mib {
    mib: usize,
}

#[derive(Deserialize)]
struct Message {
    message: String,
}

#[derive(Deserialize)]
struct Ask {
    component: String,
    payload: Value,
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct AskLoop {
    times: u32,
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct Times {
    times: u32,
}

#[derive(Deserialize)]
struct Kib {
    kib: usize,
}

#[derive(Deserialize)]
struct UiPayload {
    kib: usize,
    ask: bool,
}

#[derive(Deserialize)]
struct LogFields {
    count: usize,
    kib: usize,
}

#[derive(Deserialize)]
struct ContextFill {
    count: usize,
    kib: usize,
    key: Option<String>,
}

#[derive(Deserialize)]
struct Echo {
    value: Value,
}

#[derive(Deserialize)]
struct FailWith {
    kind: String,
    message: String,
}

#[derive(Deserialize)]
struct Text {
    text: String,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: Value,
}

/// Counts calls within one instance; the host gives every call a fresh one,
/// so it is always 1.
static CALLS: AtomicU64 = AtomicU64::new(0);

fn spin(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn memory_bomb(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // vec![1; n] writes every byte, so every page is really used.
        chunks.push(black_box(vec![1u8; MIB]));
        black_box(&chunks);
    }
}

/// Counts the levels `descend` has returned through. Updating it after the
/// recursive call is what keeps the call from being a tail call.
static UNWOUND: AtomicU64 = AtomicU64::new(0);

/// Recursion that only the call stack can hold: the work after the call
/// rules out turning it into a loop, and no local has its address taken, so
/// every level uses the engine's native stack and nothing of the shadow stack
/// in linear memory. A deep call then hits the engine's stack limit (a stack
/// overflow trap), not the end of the shadow stack (an out-of-bounds access).
fn descend(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    let below = descend(depth - 1);
    UNWOUND.fetch_add(1, Ordering::Relaxed);
    below + 1
}

fn recurse(args: Depth, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "depth": descend(black_box(args.depth)) }))
}

fn read_file(args: Path, _call: &Call) -> Result<Value, ToolError> {
    let contents = std::fs::read_to_string(&args.path)?;
    Ok(json!({ "contents": contents }))
}

fn write_file(args: WriteFile, _call: &Call) -> Result<Value, ToolError> {
    std::fs::write(&args.path, &args.contents)?;
    Ok(json!({ "written": args.contents.len() }))
}

fn rename(args: Rename, _call: &Call) -> Result<Value, ToolError> {
    std::fs::rename(&args.from, &args.to)?;
    Ok(json!({ "renamed": true }))
}

/// Creates the symbolic link `link` (a guest path under a preopened
/// directory) pointing at `target`, written as given: relative targets that
/// climb out of the grant are the interesting ones.
fn symlink(args: Symlink, _call: &Call) -> Result<Value, ToolError> {
    use wasi::filesystem::preopens::get_directories;
    let (dir, rest) = get_directories()
        .into_iter()
        .find_map(|(dir, root)| {
            let rest = args.link.strip_prefix(root.trim_end_matches('/'))?;
            let rest = rest.strip_prefix('/')?.to_owned();
            Some((dir, rest))
        })
        .ok_or_else(|| ToolError::Failed(format!("{} is under no preopen", args.link)))?;
    dir.symlink_at(&args.target, &rest)
        .map_err(|code| ToolError::Failed(format!("symlink {}: {}", args.link, code.name())))?;
    Ok(json!({ "linked": true }))
}

fn read_env(args: Name, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "value": std::env::var(&args.name).ok() }))
}

fn connect(args: Addr, _call: &Call) -> Result<Value, ToolError> {
    tcp_connect(args.addr)?;
    Ok(json!({ "connected": true }))
}

/// What `std::net::TcpStream::connect` does on wasip2, through wasi:sockets.
fn tcp_connect(addr: SocketAddr) -> io::Result<()> {
    use wasi::sockets::instance_network::instance_network;
    use wasi::sockets::network::{
        ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    };
    use wasi::sockets::tcp_create_socket::create_tcp_socket;

    let to_io = |code: ErrorCode| {
        let kind = match code {
            ErrorCode::AccessDenied => io::ErrorKind::PermissionDenied,
            ErrorCode::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            ErrorCode::Timeout => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, format!("connecting to {addr}: {}", code.name()))
    };
    let (family, remote) = match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            (
                IpAddressFamily::Ipv4,
                IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port: v4.port(),
                    address: (a, b, c, d),
                }),
            )
        }
        SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            let address = Ipv6SocketAddress {
                port: v6.port(),
                flow_info: v6.flowinfo(),
                address: (a, b, c, d, e, f, g, h),
                scope_id: v6.scope_id(),
            };
            (IpAddressFamily::Ipv6, IpSocketAddress::Ipv6(address))
        }
    };
    let socket = create_tcp_socket(family).map_err(to_io)?;
    socket
        .start_connect(&instance_network(), remote)
        .map_err(to_io)?;
    loop {
        match socket.finish_connect() {
            Ok(_streams) => return Ok(()),
            Err(ErrorCode::WouldBlock) => socket.subscribe().block(),
            Err(code) => return Err(to_io(code)),
        }
    }
}

fn bad_json(_args: &str, _call: &Call) -> Result<String, ToolError> {
    Ok("this is not json".to_owned())
}

/// Raw, so the text is built once: encoding a huge `Value` would need about
/// twice the memory.
fn huge_output(args: &str, _call: &Call) -> Result<String, ToolError> {
    let Mib { mib } =
        serde_json::from_str(args).map_err(|err| ToolError::InvalidArguments(err.to_string()))?;
    let len = mib
        .checked_mul(MIB)
        .ok_or_else(|| ToolError::InvalidArguments(format!("{mib} MiB is too much")))?;
    let mut text = String::with_capacity(len + 2);
    text.push('"');
    text.extend(std::iter::repeat_n('x', len));
    text.push('"');
    Ok(black_box(text))
}

fn panic(args: Message, _call: &Call) -> Result<Value, ToolError> {
    panic!("{}", args.message);
}

fn counter(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    let count = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(json!({ "count": count }))
}

fn ask(args: Ask, call: &Call) -> Result<Value, ToolError> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let answer = call
        .ui()
        .ask(&args.component, &args.payload, Display::Artifact, timeout)
        .map_err(|err| match err {
            UiError::Timeout => {
                ToolError::Cancelled(format!("no answer within {} ms", args.timeout_ms))
            }
            UiError::Cancelled => ToolError::Cancelled("the user cancelled the request".to_owned()),
            UiError::Unavailable(msg) | UiError::InvalidRequest(msg) => ToolError::Failed(msg),
        })?;
    Ok(json!({ "answer": answer }))
}

/// Asks `times` times, whatever the answers; counts answers and failures
/// and keeps the last failure's text.
fn ask_loop(args: AskLoop, call: &Call) -> Result<Value, ToolError> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let (mut answered, mut failed, mut last_error) = (0u32, 0u32, None);
    for _ in 0..args.times {
        match call
            .ui()
            .ask("Confirm", &json!({}), Display::Inline, timeout)
        {
            Ok(_) => answered += 1,
            Err(err) => {
                failed += 1;
                last_error = Some(format!("{err:?}"));
            }
        }
    }
    Ok(json!({ "answered": answered, "failed": failed, "last_error": last_error }))
}

/// Sends `times` notifications.
fn notify_loop(args: Times, call: &Call) -> Result<Value, ToolError> {
    for n in 0..args.times {
        call.ui()
            .notify("Toast", &json!({ "n": n }), Display::Inline);
    }
    Ok(json!({ "sent": args.times }))
}

fn filler(kib: usize) -> String {
    "x".repeat(kib * 1024)
}

/// Fails with a message of `kib` KiB.
fn huge_error(args: Kib, _call: &Call) -> Result<Value, ToolError> {
    Err(ToolError::Failed(filler(args.kib)))
}

/// Sends a UI payload of `kib` KiB, by `ask` (reporting the outcome) or
/// `notify`.
fn ui_payload(args: UiPayload, call: &Call) -> Result<Value, ToolError> {
    let payload = json!({ "blob": filler(args.kib) });
    if !args.ask {
        call.ui().notify("Toast", &payload, Display::Inline);
        return Ok(json!({}));
    }
    let outcome = call
        .ui()
        .ask("Confirm", &payload, Display::Inline, Duration::from_secs(1));
    Ok(json!({ "outcome": format!("{outcome:?}") }))
}

/// Logs one record with `count` fields of `kib` KiB each.
fn log_fields(args: LogFields, _call: &Call) -> Result<Value, ToolError> {
    let value = filler(args.kib);
    let keys: Vec<String> = (0..args.count).map(|n| format!("field{n}")).collect();
    let fields: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), value.as_str())).collect();
    mozaiks_sdk::log::info("fields", &fields);
    Ok(json!({}))
}

/// Logs `times` records.
fn log_loop(args: Times, _call: &Call) -> Result<Value, ToolError> {
    for n in 0..args.times {
        mozaiks_sdk::log::info(&format!("record {n}"), &[]);
    }
    Ok(json!({ "logged": args.times }))
}

/// Sets `count` variables (`k0`, `k1`, ... or `key` every time) to strings
/// of `kib` KiB; counts the sets that worked and keeps the last refusal.
fn context_fill(args: ContextFill, call: &Call) -> Result<Value, ToolError> {
    let value = Value::String(filler(args.kib));
    let (mut set, mut refused, mut last_error) = (0usize, 0usize, None);
    for n in 0..args.count {
        let key = args.key.clone().unwrap_or_else(|| format!("k{n}"));
        match call.context().set(&key, &value) {
            Ok(()) => set += 1,
            Err(err) => {
                refused += 1;
                last_error = Some(format!("{err:?}"));
            }
        }
    }
    Ok(json!({ "set": set, "refused": refused, "last_error": last_error }))
}

/// Returns `value` as it arrived.
fn echo(args: Echo, _call: &Call) -> Result<Value, ToolError> {
    Ok(args.value)
}

/// Returns `text` itself as the result, JSON or not.
fn echo_raw(args: &str, _call: &Call) -> Result<String, ToolError> {
    let Text { text } =
        serde_json::from_str(args).map_err(|err| ToolError::InvalidArguments(err.to_string()))?;
    Ok(text)
}

/// Fails with a tool error of `kind` carrying `message`.
fn fail_with(args: FailWith, _call: &Call) -> Result<Value, ToolError> {
    Err(match args.kind.as_str() {
        "unknown_function" => ToolError::UnknownFunction(args.message),
        "invalid_arguments" => ToolError::InvalidArguments(args.message),
        "cancelled" => ToolError::Cancelled(args.message),
        _ => ToolError::Failed(args.message),
    })
}

fn print(args: Text, _call: &Call) -> Result<Value, ToolError> {
    println!("{}", args.text);
    eprintln!("{}", args.text);
    Ok(json!({}))
}

fn log(args: Message, _call: &Call) -> Result<Value, ToolError> {
    use mozaiks_sdk::log;
    let fields = [("source", "adversary"), ("echo", args.message.as_str())];
    log::trace(&args.message, &fields);
    log::debug(&args.message, &fields);
    log::info(&args.message, &fields);
    log::warn(&args.message, &fields);
    log::error(&args.message, &fields);
    Ok(json!({}))
}

fn context_roundtrip(args: KeyValue, call: &Call) -> Result<Value, ToolError> {
    let context = call.context();
    context.set(&args.key, &args.value)?;
    let read: Option<Value> = context.get(&args.key)?;
    let keys: Vec<String> = context.list()?.into_iter().map(|(key, _)| key).collect();
    let removed = context.remove(&args.key);
    Ok(json!({ "read": read, "keys": keys, "removed": removed }))
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

fn toolbox() -> Toolbox {
    let none = || object(json!({}), &[]);
    let string = json!({ "type": "string" });
    let integer = json!({ "type": "integer", "minimum": 0 });
    Toolbox::new()
        .function("spin", "Loops forever.", none(), spin)
        .function(
            "memory_bomb",
            "Allocates 1 MiB chunks forever.",
            none(),
            memory_bomb,
        )
        .function(
            "recurse",
            "Recurses `depth` deep; returns the depth.",
            object(json!({ "depth": integer }), &["depth"]),
            recurse,
        )
        .function(
            "read_file",
            "Reads a file.",
            object(json!({ "path": string }), &["path"]),
            read_file,
        )
        .function(
            "write_file",
            "Writes a file.",
            object(
                json!({ "path": string, "contents": string }),
                &["path", "contents"],
            ),
            write_file,
        )
        .function(
            "rename",
            "Renames `from` to `to`.",
            object(json!({ "from": string, "to": string }), &["from", "to"]),
            rename,
        )
        .function(
            "symlink",
            "Creates the symbolic link `link` pointing at `target`.",
            object(
                json!({ "target": string, "link": string }),
                &["target", "link"],
            ),
            symlink,
        )
        .function(
            "read_env",
            "Reads an environment variable.",
            object(json!({ "name": string }), &["name"]),
            read_env,
        )
        .function(
            "connect",
            "Opens a TCP connection to ip:port.",
            object(json!({ "addr": string }), &["addr"]),
            connect,
        )
        .raw_function(
            "bad_json",
            "Returns text that is not JSON.",
            none(),
            bad_json,
        )
        .raw_function(
            "huge_output",
            "Returns a JSON string of `mib` MiB.",
            object(json!({ "mib": integer }), &["mib"]),
            huge_output,
        )
        .function(
            "panic",
            "Panics with `message`.",
            object(json!({ "message": string }), &["message"]),
            panic,
        )
        .function("counter", "Counts calls in this instance.", none(), counter)
        .function(
            "ask",
            "Asks the UI through `component` and returns the answer.",
            object(
                json!({ "component": string, "payload": {}, "timeout_ms": integer }),
                &["component", "payload", "timeout_ms"],
            ),
            ask,
        )
        .function(
            "ask_loop",
            "Asks `times` times with `timeout_ms` each; counts the outcomes.",
            object(
                json!({ "times": integer, "timeout_ms": integer }),
                &["times", "timeout_ms"],
            ),
            ask_loop,
        )
        .function(
            "notify_loop",
            "Sends `times` notifications.",
            object(json!({ "times": integer }), &["times"]),
            notify_loop,
        )
        .function(
            "huge_error",
            "Fails with a message of `kib` KiB.",
            object(json!({ "kib": integer }), &["kib"]),
            huge_error,
        )
        .function(
            "ui_payload",
            "Sends a UI payload of `kib` KiB by ask or notify.",
            object(
                json!({ "kib": integer, "ask": { "type": "boolean" } }),
                &["kib", "ask"],
            ),
            ui_payload,
        )
        .function(
            "log_fields",
            "Logs one record with `count` fields of `kib` KiB.",
            object(
                json!({ "count": integer, "kib": integer }),
                &["count", "kib"],
            ),
            log_fields,
        )
        .function(
            "log_loop",
            "Logs `times` records.",
            object(json!({ "times": integer }), &["times"]),
            log_loop,
        )
        .function(
            "context_fill",
            "Sets `count` context variables of `kib` KiB each.",
            object(
                json!({ "count": integer, "kib": integer, "key": string }),
                &["count", "kib"],
            ),
            context_fill,
        )
        .function(
            "echo",
            "Returns `value`.",
            object(json!({ "value": {} }), &["value"]),
            echo,
        )
        .raw_function(
            "echo_raw",
            "Returns `text` itself as the result.",
            object(json!({ "text": string }), &["text"]),
            echo_raw,
        )
        .function(
            "fail_with",
            "Fails with a tool error of `kind` and `message`.",
            object(
                json!({ "kind": string, "message": string }),
                &["kind", "message"],
            ),
            fail_with,
        )
        .function(
            "print",
            "Prints `text` to stdout and stderr.",
            object(json!({ "text": string }), &["text"]),
            print,
        )
        .function(
            "log",
            "Logs `message` at every level.",
            object(json!({ "message": string }), &["message"]),
            log,
        )
        .function(
            "context_roundtrip",
            "Sets, reads, lists and removes a context variable.",
            object(json!({ "key": string, "value": {} }), &["key", "value"]),
            context_roundtrip,
        )
}

mozaiks_sdk::export_toolbox!(toolbox);
