//! The example plugin `plugins/tickets` and its demo workflow
//! `workflows/TicketDesk`: the agent's tool calls a ticket service over
//! HTTP with its bearer-token secret. A local server on loopback stands in
//! for the service; the plugin's allowed host and base URL point at it.
//! The token reaches the service and nothing the server stores or logs.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::cli::{assert_exit, mozaiks, stdout_json};
use crate::support::*;

/// The operator's token for the ticket service.
const TOKEN: &str = "tk-e2e-51f0c2aa7d";
/// A part of [`TOKEN`] that nothing else in a chat or a log would hold.
const TOKEN_CORE: &str = "51f0c2aa7d";

/// A ticket service on 127.0.0.1: `POST /api/tickets` with the right
/// bearer token answers 201 `{"id": "T-42", ...}`, `GET /api/tickets/T-42`
/// the ticket, anything else 401 or 404. Records every request
/// (head and body) it served.
struct TicketService {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TicketService {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let request = read_request(&mut stream);
                seen.lock().unwrap().push(request.clone());
                let authorized = request.to_ascii_lowercase().contains(&format!(
                    "authorization: bearer {}",
                    TOKEN.to_ascii_lowercase()
                ));
                let (status, body) = if !authorized {
                    ("401 Unauthorized", json!({"error": "bad token"}))
                } else if request.starts_with("POST /api/tickets ") {
                    (
                        "201 Created",
                        json!({"id": "T-42", "url": "https://tickets.example.com/T-42"}),
                    )
                } else if request.starts_with("GET /api/tickets/T-42 ") {
                    ("200 OK", json!({"id": "T-42", "status": "open"}))
                } else {
                    ("404 Not Found", json!({"error": "no such ticket"}))
                };
                let body = body.to_string();
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Self { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }
}

/// One line of `stream`, up to and without its CRLF.
fn read_line(stream: &mut std::net::TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_owned()
}

/// One HTTP/1.1 request: its head and its body (by `content-length`, or
/// chunked).
fn read_request(stream: &mut std::net::TcpStream) -> String {
    let mut head = String::new();
    loop {
        let line = read_line(stream);
        if line.is_empty() {
            break;
        }
        head.push_str(&line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, value) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let size = usize::from_str_radix(&read_line(stream), 16).unwrap_or(0);
            if size == 0 {
                let _ = read_line(stream);
                break;
            }
            let mut chunk = vec![0u8; size];
            let _ = stream.read_exact(&mut chunk);
            body.extend_from_slice(&chunk);
            let _ = read_line(stream);
        }
    } else {
        let length = header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        body.resize(length, 0);
        let _ = stream.read_exact(&mut body);
    }
    head + &String::from_utf8_lossy(&body)
}

/// A copy of `plugins/tickets` whose manifest lists `service` instead of
/// the placeholder host, under `<scratch>/plugins`.
fn tickets_plugin(scratch: &Scratch, service: &TicketService) -> PathBuf {
    let source = repo_root().join("plugins/tickets");
    let wasm = source.join("tickets.wasm");
    assert!(
        wasm.is_file(),
        "{} is missing: run scripts/build-plugins (scripts/test does)",
        wasm.display()
    );
    let plugins = scratch.0.join("plugins");
    let dir = plugins.join("tickets");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&wasm, dir.join("tickets.wasm")).unwrap();
    let manifest = std::fs::read_to_string(source.join("plugin.toml")).unwrap();
    let placeholder = r#"allowed_outbound_hosts = ["https://tickets.example.com"]"#;
    assert!(manifest.contains(placeholder), "{manifest}");
    let listed = format!(
        r#"allowed_outbound_hosts = ["http://127.0.0.1:{}"]"#,
        service.port
    );
    std::fs::write(
        dir.join("plugin.toml"),
        manifest.replace(placeholder, &listed),
    )
    .unwrap();
    plugins
}

/// A workflows folder holding a copy of the demo workflow `TicketDesk`.
fn ticket_desk(scratch: &Scratch) -> PathBuf {
    let workflows = scratch.0.join("workflows");
    let dir = workflows.join("TicketDesk");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(demo_workflows().join("TicketDesk")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    workflows
}

/// The Dispatcher files a ticket, then tells the user its id.
fn dispatcher(call: &ChatCall) -> Reply {
    match call.tool_results().len() {
        0 => Reply::tool_call(
            "create_ticket",
            json!({"title": "Printer on fire", "description": "The printer on floor 3 is on fire.",
                   "priority": "high"}),
        ),
        _ => Reply::text("Filed as T-42."),
    }
}

#[tokio::test]
async fn the_ticket_desk_agent_calls_the_api_with_its_token_and_the_token_stays_secret() {
    let scratch = Scratch::new("example-plugin");
    let service = TicketService::start();
    let secrets = scratch.0.join("secrets");
    let own = secrets.join("plugins/tickets");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("TICKETS_TOKEN"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(own.join("TICKETS_API_URL"), service.base_url()).unwrap();
    let llm = FakeLlm::start(dispatcher).await;
    let stderr = scratch.0.join("stderr.log");
    let setup = Setup {
        workflows: ticket_desk(&scratch),
        plugins: tickets_plugin(&scratch, &service),
        data: scratch.0.join("data"),
        llm_url: Some(llm.base_url()),
        extra_env: vec![
            (
                "MOZAIKS_SECRETS_DIR".to_owned(),
                secrets.to_str().unwrap().to_owned(),
            ),
            ("LOG_LEVEL".to_owned(), "debug".to_owned()),
            ("MOZAIKS_LOG_FORMAT".to_owned(), "text".to_owned()),
        ],
        share_component_cache: true,
        stderr: Some(stderr.clone()),
    };
    let server = Server::start(&setup).await;

    let chat = server.start_chat("TicketDesk").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "The printer on floor 3 is on fire"}))
        .await;
    let result = ws.until_type("tool_result").await;
    assert_eq!(result["ok"], true, "{result}");
    let content: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content,
        json!({"id": "T-42", "url": "https://tickets.example.com/T-42"})
    );
    ws.until_status("waiting_for_user").await;

    // The service got the request with the bearer token and the agent's arguments.
    let requests = service.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert!(
        request.starts_with("POST /api/tickets HTTP/1.1"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains(&format!("authorization: bearer {TOKEN}")),
        "{request}"
    );
    assert!(request.contains(r#""priority":"high""#), "{request}");
    // The LLM read the ticket's id.
    let told = &llm.calls()[1].tool_results()[0].1;
    assert!(told.contains("T-42"), "{told}");

    // The token is nowhere but in the request: not in the stored events,
    // not in what the LLM saw, not in the server's stderr or log files.
    let events = server.events(&chat).await;
    let stored = serde_json::to_string(&events).unwrap();
    assert!(!stored.contains(TOKEN_CORE), "stored events leak: {stored}");
    for call in llm.calls() {
        let sent = serde_json::to_string(call.messages()).unwrap();
        assert!(!sent.contains(TOKEN_CORE), "the LLM saw it: {sent}");
    }
    drop(ws);
    server.kill().await;
    let logged = std::fs::read_to_string(&stderr).unwrap();
    assert!(!logged.contains(TOKEN_CORE), "stderr leaks: {logged}");
    let files = all_files(&setup.logs_dir());
    assert!(!files.contains(TOKEN_CORE), "log files leak: {files}");
}

/// The `mozaiks tool call` example of docs/tool-authors.md, against a
/// local service: with `--allow-host` and the secrets the call reaches it;
/// without the token the tool answers an error naming the secret.
#[test]
fn tool_call_runs_the_example_plugin_against_a_local_service() {
    let service = TicketService::start();
    let allow = format!("http://127.0.0.1:{}", service.port);
    let token = format!("TICKETS_TOKEN={TOKEN}");
    let base = format!("TICKETS_API_URL={}", service.base_url());
    let args = r#"{"title":"Printer on fire","description":"Floor 3"}"#;
    let out = mozaiks(&[
        "tool",
        "call",
        "plugins/tickets",
        "create_ticket",
        "--args",
        args,
        "--allow-host",
        &allow,
        "--secret",
        &token,
        "--secret",
        &base,
    ]);
    assert_exit(&out, 0);
    let report = stdout_json(&out);
    assert_eq!(report["result"]["ok"]["id"], "T-42", "{report}");
    let requests = service.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].contains(r#""priority":"normal""#),
        "{}",
        requests[0]
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains(TOKEN_CORE), "{printed}");

    let get = mozaiks(&[
        "tool",
        "call",
        "plugins/tickets",
        "get_ticket",
        "--args",
        r#"{"id":"T-42"}"#,
        "--allow-host",
        &allow,
        "--secret",
        &token,
        "--secret",
        &base,
    ]);
    assert_exit(&get, 0);
    assert_eq!(stdout_json(&get)["result"]["ok"]["status"], "open");

    // A status outside 2xx is a tool error naming it.
    let missing = mozaiks(&[
        "tool",
        "call",
        "plugins/tickets",
        "get_ticket",
        "--args",
        r#"{"id":"T-99"}"#,
        "--allow-host",
        &allow,
        "--secret",
        &token,
        "--secret",
        &base,
    ]);
    let report = stdout_json(&missing);
    let message = report["result"]["tool_error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        message.contains("the ticket service answered 404"),
        "{message}"
    );

    // No token: a tool error the agent can relay, and no request made.
    let bare = mozaiks(&[
        "tool",
        "call",
        "plugins/tickets",
        "create_ticket",
        "--args",
        args,
        "--allow-host",
        &allow,
        "--secret",
        &base,
    ]);
    let report = stdout_json(&bare);
    let message = report["result"]["tool_error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        message.contains("the operator sets the secret TICKETS_TOKEN"),
        "{message}"
    );
    assert_eq!(service.requests().len(), 3, "no request without a token");
}
