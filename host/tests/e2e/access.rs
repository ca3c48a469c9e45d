//! Access control: API keys mapped to apps (and users), on every HTTP route
//! and every WebSocket form; CORS for the configured origins only.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::*;

const KEY_A: &str = "key-of-app-a-0000001";
const KEY_B: &str = "key-of-app-b-0000001";
const KEY_BOB: &str = "key-of-bob-in-b-0001";

/// A production server with three keys: app-a, app-b, and app-b's user bob.
fn with_auth(scratch: &Scratch, llm: &FakeLlm) -> Setup {
    let mut setup = Setup::new(scratch, llm);
    setup.extra_env.extend([
        ("ENVIRONMENT".into(), "production".into()),
        (
            "MOZAIKS_API_KEYS".into(),
            format!("{KEY_A}=app-a, {KEY_B}=app-b, {KEY_BOB}=app-b:bob"),
        ),
        (
            "MOZAIKS_CORS_ORIGINS".into(),
            "https://console.example".into(),
        ),
    ]);
    setup
}

async fn call(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", server.base);
    let mut request = match method {
        "POST" => client.post(&url).json(&body.unwrap_or_else(|| json!({}))),
        _ => client.get(&url),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Opens a WebSocket at `path`; the HTTP status of a refused handshake, or
/// the first message of an accepted one.
async fn socket(server: &Server, path: &str, header_key: Option<&str>) -> Result<Value, u16> {
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(key) = header_key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut stream, _)) => {
            use futures_util::StreamExt;
            loop {
                let message = tokio::time::timeout(EVENT_WAIT, stream.next())
                    .await
                    .expect("no message in time")
                    .expect("closed before a message")
                    .unwrap();
                if let Message::Text(text) = message {
                    return Ok(serde_json::from_str(&text).unwrap());
                }
            }
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("ws {path}: {other}"),
    }
}

#[tokio::test]
async fn a_key_of_one_app_gets_404_or_403_on_every_chat_route_of_another_app() {
    let scratch = Scratch::new("access-apps");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let server = Server::start(&with_auth(&scratch, &llm)).await;
    let (status, chat) = call(
        &server,
        "POST",
        "/api/chats",
        Some(KEY_B),
        Some(json!({"user_id": "alice", "workflow": "Handoffs"})),
    )
    .await;
    assert_eq!(status, 201, "{chat}");
    assert_eq!(chat["app_id"], "app-b", "the key says the app");
    let b = chat["chat_id"].as_str().unwrap().to_owned();

    for (method, path) in [
        ("GET", format!("/api/chats/{b}")),
        ("GET", format!("/api/chats/{b}/events")),
        ("GET", format!("/api/chats/{b}/context")),
        ("POST", format!("/api/chats/{b}/messages")),
        ("POST", format!("/api/chats/{b}/ui/some-request")),
        ("POST", format!("/api/chats/{b}/continue")),
        ("POST", format!("/api/chats/{b}/end")),
    ] {
        let body = match path.rsplit('/').next() {
            Some("messages") => Some(json!({"text": "hi"})),
            _ if path.contains("/ui/") => Some(json!({"answer": true})),
            _ => None,
        };
        let (status, answer) = call(&server, method, &path, Some(KEY_A), body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("CHAT_NOT_FOUND")),
            "{method} {path}: {answer}"
        );
    }
    let (status, answer) = call(&server, "GET", "/api/chats?app_id=app-b", Some(KEY_A), None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{answer}"
    );
    let (status, answer) = call(&server, "GET", "/api/chats", Some(KEY_A), None).await;
    assert_eq!(
        (status, answer["chats"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{answer}"
    );
    let (status, answer) = call(
        &server,
        "POST",
        "/api/chats",
        Some(KEY_A),
        Some(json!({"app_id": "app-b", "user_id": "x", "workflow": "Handoffs"})),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{answer}"
    );

    // The three WebSocket forms, key in the query as browsers send it.
    let token = format!("access_token={KEY_A}");
    assert_eq!(
        socket(&server, &format!("/api/chats/{b}/ws?{token}"), None).await,
        Err(404)
    );
    assert_eq!(
        socket(
            &server,
            &format!("/ws/Handoffs/app-b/{b}/alice?{token}"),
            None
        )
        .await,
        Err(404)
    );
    let refused = socket(
        &server,
        &format!("/ws/chat?chat_id={b}&workflow_name=Handoffs&{token}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(refused["code"], "WS_SESSION_DETERMINATION_FAILED");
    assert!(
        refused["message"].as_str().unwrap().contains("not found"),
        "{refused}"
    );

    // The owner gets through, with the key in the query or in the header.
    let hello = socket(
        &server,
        &format!("/api/chats/{b}/ws?access_token={KEY_B}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (hello["type"].as_str(), hello["chat_id"].as_str()),
        (Some("hello"), Some(b.as_str()))
    );
    let hello = socket(
        &server,
        &format!("/ws/chat?chat_id={b}&workflow_name=Handoffs"),
        Some(KEY_B),
    )
    .await
    .unwrap();
    assert_eq!(hello["type"], "hello");
    let (status, answer) = call(
        &server,
        "GET",
        &format!("/api/chats/{b}"),
        Some(KEY_B),
        None,
    )
    .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("in_progress")),
        "app A changed nothing: {answer}"
    );
    let (status, answer) = call(&server, "GET", "/api/chats", Some(KEY_B), None).await;
    assert_eq!(
        (status, answer["chats"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{answer}"
    );

    // Support tooling carries the key too.
    let export = |key: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"))
            .args(["chats", "export", &b, "--server", &server.base])
            .env("MOZAIKS_API_KEY", key)
            .output()
    };
    let exported = export(KEY_B).await.unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let refused = export(KEY_A).await.unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("404"));
}

#[tokio::test]
async fn a_user_key_reaches_only_that_users_chats_and_no_key_reaches_nothing() {
    let scratch = Scratch::new("access-users");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let server = Server::start(&with_auth(&scratch, &llm)).await;
    let (_, alice) = call(
        &server,
        "POST",
        "/api/chats",
        Some(KEY_B),
        Some(json!({"user_id": "alice", "workflow": "Handoffs"})),
    )
    .await;
    let alice = alice["chat_id"].as_str().unwrap().to_owned();
    let (status, bobs) = call(
        &server,
        "POST",
        "/api/chats",
        Some(KEY_BOB),
        Some(json!({"workflow": "Handoffs"})),
    )
    .await;
    assert_eq!(
        (status, bobs["user_id"].as_str()),
        (201, Some("bob")),
        "{bobs}"
    );
    let (status, _) = call(
        &server,
        "GET",
        &format!("/api/chats/{alice}"),
        Some(KEY_BOB),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, answer) = call(
        &server,
        "POST",
        "/api/chats",
        Some(KEY_BOB),
        Some(json!({"user_id": "alice", "workflow": "Handoffs"})),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let (_, listed) = call(&server, "GET", "/api/chats", Some(KEY_BOB), None).await;
    assert_eq!(listed["chats"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        socket(
            &server,
            &format!("/api/chats/{alice}/ws?access_token={KEY_BOB}"),
            None
        )
        .await,
        Err(404)
    );

    for path in [
        "/api/workflows",
        "/api/chats",
        &format!("/api/chats/{alice}"),
        "/health/active-runs",
    ] {
        let (status, answer) = call(&server, "GET", path, None, None).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (401, Some("UNAUTHENTICATED")),
            "{path}: {answer}"
        );
        let (status, _) = call(
            &server,
            "GET",
            path,
            Some("not-a-configured-key-at-all"),
            None,
        )
        .await;
        assert_eq!(status, 401, "{path}");
    }
    assert_eq!(
        socket(&server, &format!("/api/chats/{alice}/ws"), None).await,
        Err(401)
    );
    for path in ["/health", "/health/live", "/health/ready", "/metrics"] {
        let response = reqwest::get(format!("{}{path}", server.base))
            .await
            .unwrap();
        assert_ne!(response.status().as_u16(), 401, "{path} is public");
    }
}

#[tokio::test]
async fn browsers_may_call_only_from_the_configured_origins() {
    let scratch = Scratch::new("access-cors");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let server = Server::start(&with_auth(&scratch, &llm)).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/chats", server.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://console.example").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://console.example")
    );
    let allowed_headers = allowed
        .headers()
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let refused = preflight("https://elsewhere.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// What a route gives each caller of the route × caller matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// No key needed; every caller gets the same answer, naming no chat.
    Public,
    /// Needs a key; the same for every app (workflows, plugins, reloads,
    /// the cluster's servers).
    ServerWide,
    /// Needs a key; lists only the caller's app's chats.
    Tenant,
    /// Needs a key; creates a chat of the caller's app.
    Create,
    /// Needs a key; one chat, named in the path or query: another app's
    /// chat is not found.
    Chat,
    /// A route of the MozaiksAI compatibility layer: needs a key here;
    /// its own and other apps' answers are tested in `chatui.rs`.
    Compat,
}

/// The matrix's row of every route `mozaiks_host::route_table`
/// lists: a route missing here fails the test.
fn reach(method: &str, path: &str) -> Option<(Reach, bool)> {
    let socket = path.ends_with("/ws") || path.starts_with("/ws/");
    let reach = match (method, path) {
        ("GET", "/health" | "/health/live" | "/health/ready" | "/metrics" | "/") => Reach::Public,
        ("GET", "/console/{file}") => Reach::Public,
        ("GET", "/api/workflows/{name}/components" | "/api/workflows/{name}/components/{file}") => {
            Reach::Public
        }
        (
            "GET",
            "/api/workflows" | "/api/plugins" | "/api/reloads" | "/api/events/ws" | "/api/cluster",
        ) => Reach::ServerWide,
        ("GET", "/health/active-runs" | "/api/chats") => Reach::Tenant,
        ("POST", "/api/chats") => Reach::Create,
        ("GET" | "POST", p) if p.starts_with("/api/chats/{chat_id}") => Reach::Chat,
        ("GET" | "POST", p) if p.starts_with("/mozaiksai/") => Reach::Compat,
        ("GET", "/ws/chat" | "/ws/{workflow}/{app_id}/{chat_id}/{user_id}") => Reach::Chat,
        _ => return None,
    };
    Some((reach, socket))
}

/// A concrete path for a route template, about app A's chat `chat`.
fn concrete(template: &str, chat: &str) -> String {
    let path = template
        .replace("{chat_id}", chat)
        .replace("{request_id}", "no-such-request")
        .replace("{name}", "Handoffs")
        .replace("{file}", "console.js")
        .replace("{workflow}", "Handoffs")
        .replace("{app_id}", "app-a")
        .replace("{user_id}", "alice");
    if template == "/ws/chat" {
        format!("{path}?chat_id={chat}&workflow_name=Handoffs")
    } else {
        path
    }
}

/// Every route × (own app, other app, no key, wrong key), over HTTP and,
/// for the sockets, over a WebSocket handshake too. Nothing another app,
/// or no key, gets names app A's chat unless the caller named it.
#[tokio::test]
async fn every_route_answers_each_caller_only_with_what_it_may_see() {
    let scratch = Scratch::new("access-matrix");
    let llm = FakeLlm::start(|_| Reply::text("Hello.")).await;
    let server = Server::start(&with_auth(&scratch, &llm)).await;
    server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    let (status, chat) = call(
        &server,
        "POST",
        "/api/chats",
        Some(KEY_A),
        Some(json!({"user_id": "alice", "workflow": "Handoffs"})),
    )
    .await;
    assert_eq!(status, 201, "{chat}");
    let a = chat["chat_id"].as_str().unwrap().to_owned();
    // A's run is in memory, waiting for alice, with a client attached.
    let watcher = socket_of(&server, &format!("/api/chats/{a}/ws?access_token={KEY_A}")).await;
    let (status, _) = call(
        &server,
        "POST",
        &format!("/api/chats/{a}/messages"),
        Some(KEY_A),
        Some(json!({"text": "hi"})),
    )
    .await;
    assert_eq!(status, 202);
    loop {
        let (_, runs) = call(&server, "GET", "/health/active-runs", Some(KEY_A), None).await;
        if runs.to_string().contains(&a) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let callers = [
        ("own app", Some(KEY_A)),
        ("other app", Some(KEY_B)),
        ("no key", None),
        ("wrong key", Some("not-a-configured-key-at-all")),
    ];
    let table = mozaiks_host::route_table();
    assert!(table.len() >= 25, "{table:?}");
    // `end` last: it changes what the other chat routes answer the owner.
    let (mut table, ends): (Vec<_>, Vec<_>) =
        table.into_iter().partition(|(_, p)| !p.ends_with("/end"));
    table.extend(ends);
    for (method, template) in table {
        let method = method.as_str();
        let (reach, is_socket) = reach(method, template).unwrap_or_else(|| {
            panic!("{method} {template} has no row in the route × caller table: add one")
        });
        let path = concrete(template, &a);
        let names_the_chat = path.contains(&a);
        let body = match template.rsplit('/').next() {
            Some("messages") => Some(json!({"text": "again"})),
            Some("{request_id}") => Some(json!({"answer": true})),
            _ if reach == Reach::Create => {
                Some(json!({"user_id": "carol", "workflow": "Handoffs"}))
            }
            _ => None,
        };
        let mut own_status = None;
        for (who, key) in callers {
            let case = format!("{method} {path} as {who}");
            let (status, answer) = call(&server, method, &path, key, body.clone()).await;
            let leaks = answer.to_string().contains(&a);
            let needs_key = reach != Reach::Public;
            match (who, reach) {
                (_, Reach::Public) => {
                    assert!(status < 400 || status == 404, "{case}: {status} {answer}");
                    assert!(!leaks, "{case} names A's chat: {answer}");
                    assert_eq!(
                        *own_status.get_or_insert(status),
                        status,
                        "{case}: same for all"
                    );
                }
                ("no key" | "wrong key", _) if needs_key => {
                    assert_eq!(
                        (status, answer["error"]["code"].as_str()),
                        (401, Some("UNAUTHENTICATED")),
                        "{case}: {answer}"
                    );
                }
                ("own app", Reach::Tenant) => {
                    assert_eq!(status, 200, "{case}: {answer}");
                    assert!(leaks, "{case} should list A's chat: {answer}");
                }
                ("other app", Reach::Tenant) => {
                    assert_eq!(status, 200, "{case}: {answer}");
                    assert!(!leaks, "{case} names A's chat: {answer}");
                }
                (_, Reach::Create) => {
                    assert_eq!(status, 201, "{case}: {answer}");
                    let app = if who == "own app" { "app-a" } else { "app-b" };
                    assert_eq!(answer["app_id"], app, "{case}: {answer}");
                }
                (_, Reach::Compat) => {}
                ("own app", Reach::ServerWide | Reach::Chat) => {
                    assert!(
                        ![401, 403, 404].contains(&status) && status < 500,
                        "{case}: {status} {answer}"
                    );
                    own_status = Some(status);
                }
                ("other app", Reach::ServerWide) => {
                    assert_eq!(Some(status), own_status, "{case}: {answer}");
                    assert!(!leaks, "{case} names A's chat: {answer}");
                }
                ("other app", Reach::Chat) => {
                    assert!(names_the_chat, "{case}");
                    let code = answer["error"]["code"].as_str();
                    assert!(
                        (status, code) == (404, Some("CHAT_NOT_FOUND"))
                            || (status, code) == (400, Some("WS_SESSION_DETERMINATION_FAILED")),
                        "{case}: {status} {answer}"
                    );
                    assert!(
                        !answer.to_string().contains("alice"),
                        "{case} tells about the chat: {answer}"
                    );
                }
                other => unreachable!("{other:?}"),
            }
        }
        if !is_socket {
            continue;
        }
        // The WebSocket handshake, the key in the query as browsers send it.
        for (who, key) in callers {
            let case = format!("WebSocket {path} as {who}");
            let with_key = match key {
                Some(key) if path.contains('?') => format!("{path}&access_token={key}"),
                Some(key) => format!("{path}?access_token={key}"),
                None => path.clone(),
            };
            let answer = socket(&server, &with_key, None).await;
            match (who, reach) {
                ("no key" | "wrong key", _) => assert_eq!(answer, Err(401), "{case}"),
                (_, Reach::Compat) => {}
                ("own app", _) => {
                    let hello = answer.unwrap_or_else(|s| panic!("{case}: refused with {s}"));
                    assert_eq!(hello["type"], "hello", "{case}: {hello}");
                }
                ("other app", Reach::ServerWide) => {
                    let hello = answer.unwrap_or_else(|s| panic!("{case}: refused with {s}"));
                    assert_eq!(hello["type"], "hello", "{case}: {hello}");
                    assert!(!hello.to_string().contains(&a), "{case}: {hello}");
                }
                ("other app", Reach::Chat) => match answer {
                    Err(status) => assert_eq!(status, 404, "{case}"),
                    Ok(refused) => {
                        assert_eq!(refused["code"], "WS_SESSION_DETERMINATION_FAILED", "{case}");
                        assert!(!refused.to_string().contains("alice"), "{case}: {refused}");
                    }
                },
                other => unreachable!("{other:?}"),
            }
        }
    }
    watcher.close().await;
}

/// An accepted WebSocket at `path`.
async fn socket_of(server: &Server, path: &str) -> Ws {
    server.ws_path(path).await
}

/// The handshake status of a WebSocket at `path` sent with `origin`.
async fn upgrade_status(server: &Server, path: &str, origin: Option<&str>) -> u16 {
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((response_stream, response)) => {
            drop(response_stream);
            response.status().as_u16()
        }
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("ws {path}: {other}"),
    }
}

/// In development (no keys), a web page the developer visits must not
/// drive a chat: sockets open only from loopback pages and the console
/// itself, unless MOZAIKS_CORS_ORIGINS says otherwise.
#[tokio::test]
async fn websocket_upgrades_are_refused_from_origins_not_allowed() {
    let scratch = Scratch::new("ws-origin");
    let llm = FakeLlm::start(|_| Reply::text("Hello.")).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("Handoffs").await;
    let console = server.base.clone();
    for path in [format!("/api/chats/{chat}/ws"), "/api/events/ws".to_owned()] {
        for (origin, status) in [
            (None, 101),
            (Some(console.as_str()), 101),
            (Some("http://localhost:5173"), 101),
            (Some("http://127.0.0.1:3000"), 101),
            (Some("http://[::1]:8080"), 101),
            (Some("https://evil.example"), 403),
            (Some("http://localhost.evil.example"), 403),
            (Some("null"), 403),
        ] {
            assert_eq!(
                upgrade_status(&server, &path, origin).await,
                status,
                "{path} from {origin:?}"
            );
        }
    }
    let (status, answer) = {
        let response = reqwest::Client::new()
            .get(format!("{}/api/chats/{chat}/ws", server.base))
            .header("origin", "https://evil.example")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("ORIGIN_NOT_ALLOWED")),
        "{answer}"
    );

    // Production with MOZAIKS_CORS_ORIGINS: those origins, and the console.
    let scratch = Scratch::new("ws-origin-prod");
    let server = Server::start(&with_auth(&scratch, &llm)).await;
    let path = format!("/api/events/ws?access_token={KEY_A}");
    let console = server.base.clone();
    for (origin, status) in [
        (None, 101),
        (Some(console.as_str()), 101),
        (Some("https://console.example"), 101),
        (Some("http://localhost:5173"), 403),
        (Some("https://elsewhere.example"), 403),
    ] {
        assert_eq!(
            upgrade_status(&server, &path, origin).await,
            status,
            "production from {origin:?}"
        );
    }
}

/// When `app_id` and `user_id` may be left out of `POST /api/chats`
/// (docs/protocol.md): an app's key fixes the app only, a user's key
/// both, no key (development) neither.
#[tokio::test]
async fn user_id_may_be_left_out_only_with_a_users_key() {
    let scratch = Scratch::new("access-user-id");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let server = Server::start(&with_auth(&scratch, &llm)).await;
    let start =
        |key: &'static str, body: Value| call(&server, "POST", "/api/chats", Some(key), Some(body));
    let (status, answer) = start(KEY_B, json!({"workflow": "Handoffs"})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("BAD_REQUEST_BODY")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`user_id` is required (this API key does not fix it)"),
        "{answer}"
    );
    let (status, answer) = start(KEY_B, json!({"user_id": "carol", "workflow": "Handoffs"})).await;
    assert_eq!(
        (status, answer["app_id"].as_str()),
        (201, Some("app-b")),
        "{answer}"
    );
    let (status, answer) = start(
        KEY_B,
        json!({"app_id": "app-b", "user_id": "carol", "workflow": "Handoffs"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = start(KEY_BOB, json!({"workflow": "Handoffs"})).await;
    assert_eq!(
        (
            status,
            answer["app_id"].as_str(),
            answer["user_id"].as_str()
        ),
        (201, Some("app-b"), Some("bob")),
        "{answer}"
    );

    let scratch = Scratch::new("access-user-id-dev");
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    for body in [
        json!({"app_id": "app", "workflow": "Handoffs"}),
        json!({"user_id": "alice", "workflow": "Handoffs"}),
    ] {
        let (status, answer) = server.post("/api/chats", body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some("BAD_REQUEST_BODY")),
            "{answer}"
        );
    }
}
