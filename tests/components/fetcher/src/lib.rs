//! Test component for outbound HTTP: fetches a URL with the SDK's helper
//! and returns what came back.

use mozaiks_sdk::http::Request;
use mozaiks_sdk::{Call, ToolError, Toolbox, Value, json};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fetch {
    url: String,
    #[serde(default)]
    max_redirects: Option<u32>,
}

/// GETs `url` (following redirects) and returns status, final URL and body.
fn fetch(args: Fetch, _call: &Call) -> Result<Value, ToolError> {
    let mut request = Request::get(&args.url);
    if let Some(n) = args.max_redirects {
        request = request.max_redirects(n);
    }
    let response = request.send()?;
    Ok(json!({
        "status": response.status,
        "url": response.url,
        "body": response.text(),
    }))
}

/// Burns CPU for `ms` milliseconds of wall time, then fetches `url`:
/// the network wait must not count against the CPU deadline.
#[derive(Deserialize)]
struct SpinThenFetch {
    spin_ms: u64,
    url: String,
}

fn spin_then_fetch(args: SpinThenFetch, _call: &Call) -> Result<Value, ToolError> {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed().as_millis() < u128::from(args.spin_ms) {
        x = x.wrapping_add(1);
    }
    let response = Request::get(&args.url).send()?;
    Ok(json!({ "status": response.status, "spins": x > 0 }))
}

#[derive(Deserialize)]
struct FetchMany {
    urls: Vec<String>,
}

/// Sends a GET to every URL before waiting for any response (raw
/// wasi:http), then says how each went: `ok <status>` or the error code.
fn fetch_many(args: FetchMany, _call: &Call) -> Result<Value, ToolError> {
    use wasip2::http::{outgoing_handler, types};
    let mut pending = Vec::new();
    for url in &args.urls {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let request = types::OutgoingRequest::new(types::Fields::new());
        let scheme = if scheme == "https" {
            types::Scheme::Https
        } else {
            types::Scheme::Http
        };
        let _ = request.set_scheme(Some(&scheme));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(&format!("/{path}")));
        pending.push(outgoing_handler::handle(request, None));
    }
    let mut outcomes = Vec::new();
    for future in pending {
        let outcome = match future {
            Err(code) => format!("{code:?}"),
            Ok(future) => loop {
                match future.get() {
                    Some(Ok(Ok(response))) => break format!("ok {}", response.status()),
                    Some(Ok(Err(code))) => break format!("{code:?}"),
                    Some(Err(())) => break "taken".to_owned(),
                    None => future.subscribe().block(),
                }
            },
        };
        outcomes.push(outcome);
    }
    Ok(json!({ "outcomes": outcomes }))
}

#[derive(Deserialize)]
struct SecretName {
    name: String,
}

/// Reads a secret, then leaks it every way it can: a log record, stdout,
/// stderr, and the result.
fn leak_secret(args: SecretName, _call: &Call) -> Result<Value, ToolError> {
    let value = mozaiks_sdk::secrets::get(&args.name)?;
    let Some(value) = value else {
        return Ok(json!({ "value": null }));
    };
    mozaiks_sdk::log::info(
        &format!("the secret is {value}"),
        &[("secret", value.as_str())],
    );
    println!("stdout: {value}");
    eprintln!("stderr: {value}");
    Ok(json!({ "value": value, "length": value.len() }))
}

fn toolbox() -> Toolbox {
    Toolbox::new()
        .function(
            "fetch",
            "GETs `url`, following up to `max_redirects` redirects (default 5).",
            || {
                json!({
                    "type": "object",
                    "properties": {
                        "url": { "type": "string" },
                        "max_redirects": { "type": "integer", "minimum": 0 }
                    },
                    "required": ["url"]
                })
            },
            fetch,
        )
        .function(
            "spin_then_fetch",
            "Uses the CPU for `spin_ms`, then GETs `url`.",
            || {
                json!({
                    "type": "object",
                    "properties": {
                        "spin_ms": { "type": "integer", "minimum": 0 },
                        "url": { "type": "string" }
                    },
                    "required": ["spin_ms", "url"]
                })
            },
            spin_then_fetch,
        )
        .function(
            "fetch_many",
            "Sends a GET to every URL at once, then reports each outcome.",
            || {
                json!({
                    "type": "object",
                    "properties": { "urls": { "type": "array", "items": { "type": "string" } } },
                    "required": ["urls"]
                })
            },
            fetch_many,
        )
        .function(
            "leak_secret",
            "Reads the secret `name` and writes it to its logs, output and result.",
            || {
                json!({
                    "type": "object",
                    "properties": { "name": { "type": "string" } },
                    "required": ["name"]
                })
            },
            leak_secret,
        )
}

mozaiks_sdk::export_toolbox!(toolbox);
