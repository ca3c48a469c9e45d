//! A MozaiksAI front end against mozaiks: a test client that speaks only
//! MozaiksAI's protocol (its start route, socket path, `chat.*` envelopes,
//! `user.input.submit`, `ui_tool_response`, `client.resume`, the UI tool
//! and input routes) runs the `ChatUi` test workflow through the
//! compatibility layer at `/mozaiksai`: one test per ChatUI flow.

use serde_json::{Value, json};

use crate::support::*;

const BASE: &str = "/mozaiksai";

/// The fake LLM: Scribe notes (with a secret in its text, for the trace's
/// redaction); Reviewer shows the plan in an artifact, asks for approval
/// inline, shows a notice, then answers.
fn chatui_llm(call: &ChatCall) -> Reply {
    match agent_of(call).as_str() {
        "Scribe" => Reply::text("Noted with key sk-abcdefghijklmnop1234."),
        _ => match call.tool_results().len() {
            0 => Reply::tool_call(
                "ask",
                json!({"component": "PlanPanel", "payload": {"plan": "ship v2"}, "timeout_ms": 60_000}),
            ),
            1 => Reply::tool_call("request_approval", json!({"question": "Ship it?"})),
            2 => Reply::tool_call("notify", json!({"message": "Approved."})),
            _ => Reply::text("All done, shipping now."),
        },
    }
}

/// A client of MozaiksAI's protocol only (written from its reference):
/// HTTP at MozaiksAI's paths, the socket at `/ws/{workflow}/{app}/{chat}/{user}`,
/// and the last `seq` it saw.
struct ChatUiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ChatUiClient {
    fn new(server: &Server, token: Option<&str>) -> Self {
        Self {
            base: format!("{}{BASE}", server.base),
            token: token.map(str::to_owned),
            http: reqwest::Client::new(),
        }
    }

    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "POST" => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
            _ => self.http.get(&url),
        };
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request("POST", path, Some(body)).await
    }

    /// `POST /api/chats/{app}/{workflow}/start`, as ChatUI boots.
    async fn start(&self, app: &str, workflow: &str, user: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/chats/{app}/{workflow}/start"),
                json!({"user_id": user}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true, "{body}");
        body
    }

    /// The socket at the start answer's `websocket_url` (relative to the
    /// WS base URL, as ChatUI joins them), the token in `?access_token=`.
    async fn connect(&self, server: &Server, started: &Value) -> Ws {
        let mut path = format!("{BASE}{}", started["websocket_url"].as_str().unwrap());
        if let Some(token) = &self.token {
            path = format!("{path}?access_token={token}");
        }
        server.ws_path(&path).await
    }
}

/// The highest top-level `seq` a client saw (its `lastClientIndex`).
fn last_seq(ws: &Ws) -> i64 {
    ws.seen
        .iter()
        .filter_map(|f| f["seq"].as_i64())
        .max()
        .unwrap_or(-1)
}

/// Every frame is an envelope: `type`, `data.kind`, a `timestamp`; events
/// of the chat's log carry `seq` at the top, never going down (one event
/// may become two envelopes with its `seq`).
fn assert_envelopes(frames: &[Value]) {
    let mut last = 0;
    for frame in frames {
        assert!(frame["type"].is_string(), "{frame}");
        assert!(frame["data"]["kind"].is_string(), "{frame}");
        assert!(
            frame["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with("+00:00")),
            "{frame}"
        );
        if let (Some(seq), false) = (frame["seq"].as_u64(), frame["data"]["replay"] == true) {
            assert!(seq >= last, "seq goes up: {frame}");
            last = seq;
        }
    }
}

async fn until(ws: &mut Ws, kind: &str) -> Value {
    ws.until_type(kind).await
}

/// What a ChatUI client saw of one whole chat of the `ChatUi` workflow:
/// started, the input request answered, the artifact answered over HTTP
/// (and answered again), the inline tool over the socket, to the end.
struct ChatUiRun {
    started: Value,
    chat: String,
    /// Every frame, in order.
    seen: Vec<Value>,
    /// `POST /api/ui-tool/submit` for the artifact, then once more.
    artifact_answers: [(u16, Value); 2],
    /// `GET /api/chats/meta/…` after the run completed.
    meta_after: Value,
}

impl ChatUiRun {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.seen.iter().filter(|f| f["type"] == kind).collect()
    }

    fn first(&self, what: &str, matches: impl Fn(&Value) -> bool) -> &Value {
        self.seen
            .iter()
            .find(|f| matches(f))
            .unwrap_or_else(|| panic!("no {what} in {}", summary(&self.seen)))
    }

    /// The position of the first frame that matches.
    fn at(&self, matches: impl Fn(&Value) -> bool) -> usize {
        self.seen.iter().position(matches).unwrap()
    }
}

fn awaiting(f: &Value) -> bool {
    f["type"] == "chat.tool_call" && f["data"]["awaiting_response"] == true
}

/// Starts a `ChatUi` chat as alice, connects, answers the input request,
/// and waits for the artifact UI tool: the opening of the reconnect and
/// restart tests. Returns the start answer, the chat id, the socket and the
/// artifact's `chat.tool_call` frame.
async fn up_to_the_artifact(client: &ChatUiClient, server: &Server) -> (Value, String, Ws, Value) {
    let started = client.start("app", "ChatUi", "alice").await;
    let chat = started["chat_id"].as_str().unwrap().to_owned();
    let mut ws = client.connect(server, &started).await;
    let request = until(&mut ws, "chat.input_request").await;
    ws.send(
        json!({"type": "user.input.submit", "chat_id": chat, "text": "Plan it",
                   "input_request_id": request["data"]["request_id"]}),
    )
    .await;
    let artifact = ws.until("the artifact", awaiting).await;
    (started, chat, ws, artifact)
}

async fn chatui_run(name: &str) -> ChatUiRun {
    let scratch = Scratch::new(name);
    let llm = FakeLlm::start(chatui_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let client = ChatUiClient::new(&server, None);
    let started = client.start("app", "ChatUi", "alice").await;
    let chat = started["chat_id"].as_str().unwrap().to_owned();
    let mut ws = client.connect(&server, &started).await;
    let request = until(&mut ws, "chat.input_request").await;
    until(&mut ws, "chat.resume_boundary").await;
    ws.send(
        json!({"type": "user.input.submit", "chat_id": chat, "text": "Plan the release",
                   "input_request_id": request["data"]["request_id"]}),
    )
    .await;
    // The artifact, answered over HTTP as ChatUI's onResponse does.
    let artifact = ws.until("the artifact", awaiting).await;
    let event_id = artifact["data"]["corr"].clone();
    let first = client
        .post(
            "/api/ui-tool/submit",
            json!({"event_id": event_id, "response_data": {"status": "success"}}),
        )
        .await;
    until(&mut ws, "chat.ui_tool_dismiss").await;
    let second = client
        .post(
            "/api/ui-tool/submit",
            json!({"event_id": event_id, "response_data": {}}),
        )
        .await;
    // The inline tool, answered over the socket.
    let inline = ws.until("the inline tool", awaiting).await;
    ws.send(
        json!({"type": "ui_tool_response", "eventId": inline["data"]["eventId"],
                   "response": {"approved": true}}),
    )
    .await;
    until(&mut ws, "chat.run_complete").await;
    let (_, meta_after) = client
        .get(&format!("/api/chats/meta/app/ChatUi/{chat}"))
        .await;
    ChatUiRun {
        started,
        chat,
        seen: ws.seen.clone(),
        artifact_answers: [first, second],
        meta_after,
    }
}

#[tokio::test]
async fn chatui_flow_start_a_chat() {
    let run = chatui_run("chatui-start").await;
    let chat = &run.chat;
    assert_eq!(
        run.started["websocket_url"],
        format!("/ws/ChatUi/app/{chat}/alice")
    );
    assert_eq!(run.started["reused"], false);
    assert_eq!(run.started["workflow_name"], "ChatUi");
    assert!(run.started["cache_seed"].is_u64());
    let meta = &run.seen[0];
    assert_eq!(meta["type"], "chat_meta", "the first frame: {meta}");
    assert_eq!(meta["data"]["chat_id"], *chat);
    assert_eq!(meta["data"]["workflow_name"], "ChatUi");
    assert_eq!(
        (
            meta["data"]["chat_exists"].as_bool(),
            meta["data"]["status"].as_u64()
        ),
        (Some(true), Some(0))
    );
    assert_eq!(meta["data"]["last_artifact"], Value::Null);
    let boundary = run.first("the boundary", |f| f["type"] == "chat.resume_boundary");
    assert_eq!(boundary["data"]["resume_mode"], "auto");
    assert!(!run.of("chat.run_start").is_empty());
    let speakers: Vec<&str> = run
        .of("chat.select_speaker")
        .iter()
        .map(|f| f["data"]["selected_speaker"].as_str().unwrap())
        .collect();
    assert_eq!(speakers, ["Scribe", "Reviewer"]);
    // Events without a MozaiksAI counterpart pass through unprefixed.
    assert!(
        run.of("handoff")
            .iter()
            .any(|f| f["data"]["from"] == "Reviewer" && f["data"]["to"] == "terminate"),
        "{}",
        summary(&run.seen)
    );
    assert_envelopes(&run.seen);
}

#[tokio::test]
async fn chatui_flow_stream_text() {
    let run = chatui_run("chatui-stream").await;
    let first_print = run.at(|f| f["type"] == "chat.print");
    let text_at = run.at(|f| f["type"] == "chat.text" && f["data"]["agent"] == "Reviewer");
    assert!(
        first_print < text_at,
        "the pieces stream before the message"
    );
    let printed: String = run
        .of("chat.print")
        .iter()
        .map(|f| {
            assert_eq!(f["data"]["agent"], "Reviewer", "{f}");
            assert!(f["seq"].is_null(), "streamed pieces have no seq: {f}");
            f["data"]["content"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(printed, "All done, shipping now.");
    let text = &run.seen[text_at];
    assert_eq!(text["data"]["content"], "All done, shipping now.");
    assert_eq!(
        (
            text["data"]["is_visual"].as_bool(),
            text["data"]["is_tool_agent"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert!(text["seq"].is_u64());
    assert_eq!(text["data"]["index"], text["seq"]);
    assert_eq!(text["agent"], "Reviewer");
}

#[tokio::test]
async fn chatui_flow_visual_agents_make_other_agents_a_trace() {
    let run = chatui_run("chatui-visual").await;
    // Scribe is not a visual agent: its text is a trace with its secret
    // hidden, and it is not streamed.
    let note = run.first("Scribe's note", |f| {
        f["type"] == "chat.text" && f["data"]["agent"] == "Scribe"
    });
    assert_eq!(note["data"]["ui_visibility"], "trace", "{note}");
    assert_eq!(note["data"]["is_visual"], false);
    assert_eq!(note["data"]["content"], "Noted with key [REDACTED].");
    assert_eq!(note["data"]["trace_redacted"], true);
    assert_eq!(note["data"]["trace_agent"], "Scribe");
    assert!(
        !run.of("chat.print")
            .iter()
            .any(|f| f["data"]["agent"] == "Scribe")
    );
    let echo = run.first("the echo", |f| {
        f["type"] == "chat.text" && f["data"]["agent"] == "user"
    });
    assert_eq!(echo["data"]["is_visual"], true, "user is listed: {echo}");
}

#[tokio::test]
async fn chatui_flow_answer_an_input_request() {
    let run = chatui_run("chatui-input").await;
    let request = run.first("the input request", |f| f["type"] == "chat.input_request");
    let request_id = request["data"]["request_id"].as_str().unwrap();
    assert_eq!(request["data"]["password"], false);
    let ack = run.first("ack.input", |f| f["type"] == "ack.input");
    assert_eq!(
        (
            ack["data"]["status"].as_str(),
            ack["data"]["input_request_id"].as_str()
        ),
        (Some("accepted"), Some(request_id))
    );
    let input_ack = run.first("chat.input_ack", |f| f["type"] == "chat.input_ack");
    assert_eq!(input_ack["data"]["request_id"], request_id);
    let echo = run.first("the echo", |f| {
        f["type"] == "chat.text" && f["data"]["agent"] == "user"
    });
    assert_eq!(echo["data"]["content"], "Plan the release");
}

#[tokio::test]
async fn chatui_flow_answer_an_inline_and_an_artifact_ui_tool() {
    let run = chatui_run("chatui-uitools").await;
    let asked: Vec<&Value> = run.seen.iter().filter(|f| awaiting(f)).collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    let (artifact, inline) = (asked[0], asked[1]);
    assert_eq!(artifact["data"]["display"], "artifact", "{artifact}");
    assert_eq!(artifact["data"]["component_type"], "PlanPanel");
    assert_eq!(artifact["data"]["payload"]["workflow_name"], "ChatUi");
    assert_eq!(artifact["data"]["payload"]["plan"], "ship v2");
    assert_eq!(artifact["agent"], "Reviewer");
    assert_eq!(inline["data"]["display"], "inline", "{inline}");
    assert_eq!(inline["data"]["component_type"], "ApprovalForm");
    // The artifact, answered over HTTP: dismissed; a second answer refused.
    assert_eq!(
        run.artifact_answers[0].0, 200,
        "{}",
        run.artifact_answers[0].1
    );
    let (status, again) = &run.artifact_answers[1];
    assert_eq!(
        (*status, again["error"]["code"].as_str()),
        (404, Some("UI_REQUEST_NOT_OPEN"))
    );
    let dismissed = run.first("the dismiss", |f| f["type"] == "chat.ui_tool_dismiss");
    assert_eq!(dismissed["data"]["event_id"], artifact["data"]["corr"]);
    // The inline tool, answered over the socket: acknowledged, completed,
    // and its answer set the workflow's context variable.
    let ack = run.first("the ack", |f| f["type"] == "ack.ui_tool_response");
    assert_eq!(
        (ack["data"]["status"].as_str(), &ack["data"]["eventId"]),
        (Some("accepted"), &inline["data"]["eventId"])
    );
    let complete = run.first("the completion", |f| f["type"] == "chat.ui_tool_complete");
    assert_eq!(
        (
            &complete["data"]["eventId"],
            complete["data"]["status"].as_str()
        ),
        (&inline["data"]["eventId"], Some("completed"))
    );
    let context = run.first("the context update", |f| {
        f["type"] == "context_update" && f["data"]["variable"] == "approved"
    });
    assert_eq!(context["data"]["value"], true);
    // The display-only notice (ui_notify).
    let notice = run.first("the notice", |f| {
        f["type"] == "chat.tool_call" && f["data"]["component_type"] == "Toast"
    });
    assert_eq!(notice["data"]["awaiting_response"], false, "{notice}");
    assert_eq!(notice["data"]["payload"]["message"], "Approved.");
    assert!(
        run.of("chat.tool_response")
            .iter()
            .any(|f| f["data"]["name"] == "notify" && f["data"]["success"] == true),
        "{}",
        summary(&run.seen)
    );
    // The chat remembers its artifact.
    assert_eq!(
        run.meta_after["last_artifact"]["ui_tool_id"], "PlanPanel",
        "{}",
        run.meta_after
    );
}

#[tokio::test]
async fn chatui_flow_usage_and_run_completion() {
    let run = chatui_run("chatui-usage").await;
    let deltas: u64 = run
        .of("chat.usage_delta")
        .iter()
        .map(|f| f["data"]["total_tokens"].as_u64().unwrap())
        .sum();
    assert!(deltas > 0);
    let summary_at = run.at(|f| f["type"] == "chat.usage_summary");
    let done_at = run.at(|f| f["type"] == "chat.run_complete");
    assert!(summary_at < done_at);
    assert_eq!(run.seen[summary_at]["data"]["total_tokens"], deltas);
    let done = &run.seen[done_at];
    assert_eq!(
        (
            done["data"]["status"].as_u64(),
            done["data"]["total_tokens"].as_u64()
        ),
        (Some(1), Some(deltas)),
        "{done}"
    );
    assert_eq!(
        (
            run.meta_after["exists"].as_bool(),
            run.meta_after["status"].as_u64()
        ),
        (Some(true), Some(1)),
        "{}",
        run.meta_after
    );
}

#[tokio::test]
async fn a_chatui_client_reconnects_and_resumes_with_client_resume_and_its_last_seq() {
    let scratch = Scratch::new("chatui-resume");
    let llm = FakeLlm::start(chatui_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let client = ChatUiClient::new(&server, None);
    let (started, chat, ws, artifact) = up_to_the_artifact(&client, &server).await;
    let event_id = artifact["data"]["corr"].as_str().unwrap().to_owned();
    let seen_up_to = last_seq(&ws);
    ws.close().await;

    // While nobody is connected, the artifact is answered (another tab) and
    // the run moves on to the inline request.
    let (status, _) = client
        .post(
            "/api/ui-tool/submit",
            json!({"event_id": event_id, "response_data": {"ok": true}}),
        )
        .await;
    assert_eq!(status, 200);
    server
        .eventually(&format!("/api/chats/{chat}/events"), |_, body| {
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "ui_request" && e["component"] == "ApprovalForm")
        })
        .await;

    let mut ws = client.connect(&server, &started).await;
    assert_eq!(ws.next().await.unwrap()["type"], "chat_meta");
    let auto = until(&mut ws, "chat.resume_boundary").await;
    assert_eq!(auto["data"]["resume_mode"], "auto");
    ws.send(json!({"type": "client.resume", "chat_id": chat, "lastClientIndex": seen_up_to}))
        .await;
    let boundary = ws
        .until("the client boundary", |f| {
            f["type"] == "chat.resume_boundary" && f["data"]["resume_mode"] == "client"
        })
        .await;
    assert_eq!(
        boundary["data"]["resume_context"]["last_client_index"],
        seen_up_to
    );
    // Exactly what it missed, each once, in order, marked as replay.
    let start = ws
        .seen
        .iter()
        .position(|f| f["type"] == "chat.resume_boundary" && f["data"]["resume_mode"] == "auto")
        .unwrap();
    let replayed: Vec<&Value> = ws.seen[start + 1..]
        .iter()
        .filter(|f| f["data"]["replay"] == true && f["seq"].is_u64())
        .collect();
    let seqs: Vec<i64> = replayed
        .iter()
        .map(|f| f["seq"].as_i64().unwrap())
        .collect();
    assert!(
        !seqs.is_empty() && seqs.iter().all(|s| *s > seen_up_to),
        "{seqs:?}"
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        replayed.iter().any(|f| f["type"] == "chat.ui_tool_dismiss"),
        "the missed dismiss"
    );
    let inline = replayed
        .iter()
        .find(|f| {
            f["type"] == "chat.tool_call"
                && f["data"]["display"] == "inline"
                && f["data"]["awaiting_response"] == true
        })
        .expect("the inline request it missed");
    ws.send(json!({"type": "ui_tool_response", "eventId": inline["data"]["eventId"], "response": {"approved": true}}))
        .await;
    let done = until(&mut ws, "chat.run_complete").await;
    assert_eq!(done["data"]["status"], 1);

    // A resume from the very start replays the whole log, the first
    // user message included.
    ws.send(json!({"type": "client.resume", "chat_id": chat, "lastClientIndex": -1}))
        .await;
    let boundary = ws
        .until("the full replay", |f| {
            f["type"] == "chat.resume_boundary"
                && f["data"]["resume_context"]["last_client_index"] == -1
        })
        .await;
    assert!(boundary["data"]["replayed_messages"].as_u64().unwrap() > seqs.len() as u64);
}

#[tokio::test]
async fn a_chatui_client_authenticates_with_a_token() {
    const KEY_A: &str = "key-of-app-a-0000001";
    const KEY_ALICE: &str = "key-of-alice-in-a-01";
    const KEY_B: &str = "key-of-app-b-0000001";
    let scratch = Scratch::new("chatui-auth");
    let llm = FakeLlm::start(chatui_llm).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.extra_env.extend([
        ("ENVIRONMENT".into(), "production".into()),
        (
            "MOZAIKS_API_KEYS".into(),
            format!("{KEY_A}=app-a, {KEY_ALICE}=app-a:alice, {KEY_B}=app-b"),
        ),
    ]);
    let server = Server::start(&setup).await;
    // ChatUI fetches the workflow list without the header: refused.
    let anonymous = ChatUiClient::new(&server, None);
    let (status, body) = anonymous.get("/api/workflows").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (status, _) = anonymous
        .post("/api/chats/app-a/ChatUi/start", json!({"user_id": "alice"}))
        .await;
    assert_eq!(status, 401);

    // An unknown route without a key: the 401 comes first.
    let (status, body) = anonymous.get("/api/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let alice = ChatUiClient::new(&server, Some(KEY_ALICE));
    let (status, workflows) = alice.get("/api/workflows").await;
    assert_eq!(status, 200, "{workflows}");
    assert!(workflows["ChatUi"].is_object());
    // A user's key starts chats for that user only.
    let (status, body) = alice
        .post(
            "/api/chats/app-a/ChatUi/start",
            json!({"user_id": "mallory"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    let started = alice.start("app-a", "ChatUi", "alice").await;
    let chat = started["chat_id"].as_str().unwrap().to_owned();
    let mut ws = alice.connect(&server, &started).await;
    assert_eq!(ws.next().await.unwrap()["type"], "chat_meta");
    let request = until(&mut ws, "chat.input_request").await;
    // The input request answered over HTTP, with the token.
    let input_id = request["data"]["request_id"].clone();
    let (status, body) = alice
        .post(
            "/api/user-input/submit",
            json!({"input_request_id": input_id, "user_input": "go"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = alice
        .post(
            "/api/user-input/submit",
            json!({"input_request_id": input_id, "user_input": "again"}),
        )
        .await;
    assert_eq!(
        status, 404,
        "an answered request is no longer pending: {body}"
    );
    ws.until("the echo", |f| {
        f["type"] == "chat.text" && f["data"]["content"] == "go"
    })
    .await;

    // Another app's token: the chat does not exist for it.
    let other = ChatUiClient::new(&server, Some(KEY_B));
    let (_, exists) = other
        .get(&format!("/api/chats/exists/app-a/ChatUi/{chat}"))
        .await;
    assert_eq!(exists["exists"], false);
    let (_, exists) = alice
        .get(&format!("/api/chats/exists/app-a/ChatUi/{chat}"))
        .await;
    assert_eq!(exists["exists"], true);
    let mut refused = other.connect(&server, &started).await;
    let error = refused.next().await.unwrap();
    assert_eq!(error["type"], "chat.error", "{error}");
    assert_eq!(error["data"]["error_code"], "CHAT_NOT_FOUND");
    assert!(refused.next().await.is_none());
    assert_eq!(refused.close_code, Some(1008));
    // Without a token the socket is refused before the upgrade (401).
    let url = format!(
        "{}{BASE}{}",
        server.base.replacen("http", "ws", 1),
        started["websocket_url"].as_str().unwrap()
    );
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
}

#[tokio::test]
async fn mozaiksai_routes_answer_in_mozaiksai_shapes() {
    let scratch = Scratch::new("chatui-routes");
    let llm = FakeLlm::start(chatui_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let client = ChatUiClient::new(&server, None);

    // The workflow list: name → config, visual_agents included; the native
    // route keeps its own shape.
    let (status, workflows) = client.get("/api/workflows").await;
    assert_eq!(status, 200);
    assert_eq!(
        workflows["ChatUi"]["visual_agents"],
        json!(["Reviewer", "user"])
    );
    assert_eq!(workflows["ChatUi"]["startup_mode"], "UserDriven");
    assert_eq!(workflows["ChatUi"]["agents"]["agents"][0]["name"], "Scribe");
    let (_, config) = client.get("/api/workflows/config").await;
    assert_eq!(config, workflows);
    let (_, native) = server.get("/api/workflows").await;
    let chatui = native["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "ChatUi")
        .unwrap();
    assert_eq!(chatui["visual_agents"], json!(["Reviewer", "user"]));

    let (_, transport) = client.get("/api/workflows/ChatUi/transport").await;
    assert_eq!(transport["transport"], "websocket");
    assert_eq!(
        transport["endpoints"]["websocket"],
        "/ws/ChatUi/{app_id}/{chat_id}/{user_id}"
    );
    let (status, unknown) = client.get("/api/workflows/Nope/transport").await;
    assert_eq!(
        (status, unknown["error"]["code"].as_str()),
        (404, Some("UNKNOWN_WORKFLOW"))
    );
    let (_, tools) = client.get("/api/workflows/ChatUi/tools").await;
    let (_, ui_tools) = client.get("/api/workflows/ChatUi/ui-tools").await;
    assert_eq!(tools, ui_tools);
    assert_eq!(ui_tools["ui_tools_count"], 3);
    assert!(
        ui_tools["ui_tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["component"] == "PlanPanel" && t["mode"] == "artifact")
    );
    let (_, available) = client
        .get("/api/workflows/app/available?user_id=alice")
        .await;
    assert!(
        available["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["workflow_name"] == "ChatUi" && w["available"] == true)
    );

    // Start twice within 15 s: the same chat; force_new: another.
    let first = client.start("app", "ChatUi", "alice").await;
    let again = client.start("app", "ChatUi", "alice").await;
    assert_eq!(
        (again["chat_id"].clone(), again["reused"].clone()),
        (first["chat_id"].clone(), json!(true))
    );
    let (_, forced) = client
        .post(
            "/api/chats/app/ChatUi/start",
            json!({"user_id": "alice", "force_new": true}),
        )
        .await;
    assert_ne!(forced["chat_id"], first["chat_id"]);
    // A repeated start with a client_request_id gets the chat that id
    // started, even when a newer one exists.
    let (_, tagged) = client
        .post(
            "/api/chats/app/ChatUi/start",
            json!({"user_id": "bob", "client_request_id": "tab-1"}),
        )
        .await;
    let (_, newer) = client
        .post(
            "/api/chats/app/ChatUi/start",
            json!({"user_id": "bob", "client_request_id": "tab-2", "force_new": true}),
        )
        .await;
    assert_ne!(newer["chat_id"], tagged["chat_id"]);
    let (_, again) = client
        .post(
            "/api/chats/app/ChatUi/start",
            json!({"user_id": "bob", "client_request_id": "tab-1"}),
        )
        .await;
    assert_eq!(
        (&again["chat_id"], &again["reused"]),
        (&tagged["chat_id"], &json!(true))
    );
    let (_, latest) = client
        .post("/api/chats/app/ChatUi/start", json!({"user_id": "bob"}))
        .await;
    assert_eq!(
        latest["chat_id"], newer["chat_id"],
        "without an id: the newest"
    );
    let (status, body) = client
        .post(
            "/api/chats/app/ChatUi/start",
            json!({"user_id": "alice", "colour": "red"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("BAD_REQUEST_BODY")),
        "{body}"
    );
    let (status, body) = client
        .post("/api/chats/app/Nope/start", json!({"user_id": "alice"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("UNKNOWN_WORKFLOW"))
    );
    let chat = first["chat_id"].as_str().unwrap();

    let (_, ids) = client.get("/api/chats/app/ChatUi").await;
    // alice's two chats and bob's two: no key, so the whole app's.
    assert_eq!(ids["chat_ids"].as_array().unwrap().len(), 4, "{ids}");
    let (_, exists) = client
        .get(&format!("/api/chats/exists/app/ChatUi/{chat}"))
        .await;
    assert_eq!(exists, json!({"exists": true}));
    let (_, exists) = client
        .get(&format!("/api/chats/exists/app/Other/{chat}"))
        .await;
    assert_eq!(exists, json!({"exists": false}));
    let (_, meta) = client
        .get(&format!("/api/chats/meta/app/ChatUi/{chat}"))
        .await;
    assert_eq!(
        (
            meta["exists"].as_bool(),
            meta["status"].as_u64(),
            &meta["last_artifact"]
        ),
        (Some(true), Some(0), &Value::Null),
        "{meta}"
    );
    assert!(meta["last_sequence"].as_u64().unwrap() > 0);
    let (_, sessions) = client.get("/api/sessions/list/app/alice").await;
    assert_eq!(sessions["count"], 2, "{sessions}");
    let (_, recent) = client.get("/api/sessions/recent/app/alice").await;
    assert_eq!(recent["found"], true);
    let (_, recent) = client.get("/api/sessions/recent/app/nobody").await;
    assert_eq!(recent["found"], false);
    let (status, general) = client
        .get("/api/general_chats/list/app/alice?limit=50")
        .await;
    assert_eq!((status, general["count"].as_u64()), (200, Some(0)));

    // The plain input route: the user's text for a run that waits.
    let (status, body) = client
        .post(
            &format!("/chat/app/{chat}/alice/input"),
            json!({"message": "hello", "workflow_name": "ChatUi"}),
        )
        .await;
    assert_eq!(
        (status, body["transport"].as_str()),
        (202, Some("websocket")),
        "{body}"
    );
    let (status, body) = client
        .post(
            &format!("/chat/app/{chat}/bob/input"),
            json!({"message": "hello"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("CHAT_NOT_FOUND"))
    );
    // Unknown ids for the answer routes: 404, JSON.
    let (status, body) = client
        .post(
            "/api/ui-tool/submit",
            json!({"event_id": "PlanPanel_1234abcd", "response_data": {}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("UI_REQUEST_NOT_OPEN"))
    );
    let (status, _) = client
        .post(
            "/api/user-input/submit",
            json!({"input_request_id": "nope", "user_input": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, health) = client.get("/api/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("healthy")));

    // MozaiksAI routes without a counterpart: 501, saying why.
    for (method, path) in [
        ("POST", format!("/chat/app/{chat}/component_action")),
        ("POST", "/api/chat/upload".to_owned()),
        ("GET", "/api/themes/app".to_owned()),
        ("GET", "/metrics/perf/aggregate".to_owned()),
        ("GET", "/api/general_chats/transcript/app/g1".to_owned()),
        ("POST", "/api/realtime/oauth/completed".to_owned()),
    ] {
        let (status, body) = client.request(method, &path, Some(json!({}))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (501, Some("NOT_SUPPORTED")),
            "{method} {path}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not supported"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn mozaiksai_client_messages_without_a_counterpart_get_a_chat_error() {
    let scratch = Scratch::new("chatui-messages");
    let llm = FakeLlm::start(chatui_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let client = ChatUiClient::new(&server, None);
    let started = client.start("app", "ChatUi", "alice").await;
    let chat = started["chat_id"].as_str().unwrap().to_owned();
    let mut ws = client.connect(&server, &started).await;
    until(&mut ws, "chat.resume_boundary").await;
    for (message, code) in [
        (
            json!({"type": "chat.start_workflow", "workflow_name": "ChatUi"}),
            "START_WORKFLOW_FAILED",
        ),
        (
            json!({"type": "chat.enter_general_mode"}),
            "GENERAL_MODE_FAILED",
        ),
        (
            json!({"type": "chat.switch_workflow", "chat_id": "x"}),
            "SWITCH_WORKFLOW_FAILED",
        ),
        (json!({"type": "what.is.this"}), "SCHEMA_VALIDATION_FAILED"),
        (
            json!({"type": "user.input.submit", "chat_id": chat}),
            "SCHEMA_VALIDATION_FAILED",
        ),
    ] {
        ws.send(message.clone()).await;
        let error = until(&mut ws, "chat.error").await;
        assert_eq!(error["data"]["error_code"], code, "{message}: {error}");
    }
    // An answer to a request that is not pending is rejected, not dropped.
    ws.send(json!({"type": "user.input.submit", "chat_id": chat, "text": "hi", "input_request_id": "input-x"}))
        .await;
    let ack = until(&mut ws, "ack.input").await;
    assert_eq!(ack["data"]["status"], "rejected", "{ack}");
    ws.send(json!({"type": "ui_tool_response", "eventId": "nope", "response": {}}))
        .await;
    let ack = until(&mut ws, "ack.ui_tool_response").await;
    assert_eq!(ack["data"]["status"], "rejected", "{ack}");
    // Free text while the run waits for the user goes to the run.
    ws.send(json!({"type": "user.input.submit", "chat_id": chat, "text": "free text"}))
        .await;
    let ack = until(&mut ws, "chat.input_ack").await;
    assert_eq!(ack["data"]["status"], "accepted", "{ack}");
    ws.until("the echo", |f| {
        f["type"] == "chat.text" && f["data"]["content"] == "free text"
    })
    .await;
    // While the run works (its tool waits for the artifact's answer), free
    // text is refused with the native code, not queued.
    ws.until("the artifact", awaiting).await;
    ws.send(json!({"type": "user.input.submit", "chat_id": chat, "text": "too early"}))
        .await;
    let refused = until(&mut ws, "chat.error").await;
    assert_eq!(refused["data"]["error_code"], "NOT_YOUR_TURN", "{refused}");
}

#[tokio::test]
async fn unknown_routes_answer_a_json_error_native_and_compat() {
    let scratch = Scratch::new("chatui-unknown");
    let llm = FakeLlm::start(chatui_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let http = reqwest::Client::new();
    for (method, path, status, code) in [
        ("GET", "/api/nope", 404, "NOT_FOUND"),
        ("GET", "/mozaiksai/api/nope", 404, "NOT_FOUND"),
        ("POST", "/api/workflows", 405, "METHOD_NOT_ALLOWED"),
        (
            "DELETE",
            "/mozaiksai/api/workflows",
            405,
            "METHOD_NOT_ALLOWED",
        ),
    ] {
        let url = format!("{}{path}", server.base);
        let response = http
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "application/json", "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(path.split('?').next().unwrap()),
            "{body}"
        );
    }
}

/// PlanReview's model: the Planner plans with tools, then says so; the
/// Reviewer shows the plan, asks for approval, then gives its verdict.
fn demo_llm(call: &ChatCall) -> Reply {
    let after_tools = call.last_message()["role"] == "tool";
    let answered = |key: &str| {
        call.tool_results()
            .iter()
            .any(|(_, content)| content.contains(&format!("\"{key}\"")))
    };
    match agent_of(call).as_str() {
        "Planner" if after_tools => Reply::text("The plan is ready for review."),
        "Planner" => Reply::ToolCalls(vec![
            (
                "add_task".into(),
                json!({"title": "Book venue", "priority": "high"}),
            ),
            ("complete_plan".into(), json!({"summary": "Venue first."})),
        ]),
        "Reviewer" if !answered("seen") => {
            Reply::tool_call("show_plan", json!({"title": "The party plan"}))
        }
        "Reviewer" if !answered("approved") => Reply::tool_call(
            "request_approval",
            json!({"question": "Approve this plan?"}),
        ),
        _ => Reply::text(
            json!({"verdict": "approved", "concerns": [], "message": "Approved, go ahead."})
                .to_string(),
        ),
    }
}

/// The demo workflow (PlanReview) through the MozaiksAI protocol only: the
/// Planner plans with tools, the Reviewer shows the plan in the side panel
/// (an artifact UI tool, answered over HTTP as ChatUI's onResponse does)
/// and asks for approval in its inline form (answered over the socket),
/// then gives a structured verdict.
#[tokio::test]
async fn a_chatui_client_runs_the_demo_workflow() {
    let scratch = Scratch::new("chatui-demo");
    let llm = FakeLlm::start(demo_llm).await;
    let mut setup = Setup::new(&scratch, &llm);
    let workflows = scratch.0.join("demo-workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    std::os::unix::fs::symlink(
        demo_workflows().join("PlanReview"),
        workflows.join("PlanReview"),
    )
    .unwrap();
    setup.workflows = workflows;
    // As in production: every request needs the app's key.
    const KEY: &str = "key-of-the-demo-app-01";
    setup.extra_env.extend([
        ("ENVIRONMENT".into(), "production".into()),
        ("MOZAIKS_API_KEYS".into(), format!("{KEY}=app")),
    ]);
    let server = Server::start(&setup).await;
    let client = ChatUiClient::new(&server, Some(KEY));
    let (_, listed) = client.get("/api/workflows").await;
    assert_eq!(listed["PlanReview"]["initial_agent"], "Planner", "{listed}");
    let started = client.start("app", "PlanReview", "alice").await;
    let chat = started["chat_id"].as_str().unwrap().to_owned();
    let mut ws = client.connect(&server, &started).await;
    let request = until(&mut ws, "chat.input_request").await;
    ws.send(
        json!({"type": "user.input.submit", "chat_id": chat, "text": "Plan a party",
                   "input_request_id": request["data"]["request_id"]}),
    )
    .await;
    let tool = ws
        .until("the Planner's tool call", |f| {
            f["type"] == "chat.tool_call" && f["data"]["name"] == "add_task"
        })
        .await;
    assert_eq!(tool["data"]["awaiting_response"], false, "{tool}");
    assert_eq!(tool["data"]["arguments"]["title"], "Book venue");
    assert_eq!(tool["agent"], "Planner");
    let planned = ws
        .until("the Planner's text", |f| {
            f["type"] == "chat.text" && f["data"]["agent"] == "Planner"
        })
        .await;
    assert_eq!(planned["data"]["content"], "The plan is ready for review.");
    let board = ws.until("the plan board", awaiting).await;
    assert_eq!(board["data"]["display"], "artifact", "{board}");
    assert_eq!(board["data"]["component_type"], "PlanBoard");
    assert_eq!(board["data"]["payload"]["workflow_name"], "PlanReview");
    assert_eq!(board["data"]["payload"]["tasks"][0]["title"], "Book venue");
    // The tab goes away; the artifact is answered over HTTP meanwhile (the
    // side panel of another tab), and the client comes back and resumes
    // from the last seq it saw.
    let seen_up_to = last_seq(&ws);
    ws.close().await;
    let (status, _) = client
        .post(
            "/api/ui-tool/submit",
            json!({"event_id": board["data"]["corr"], "response_data": {"seen": true}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut ws = client.connect(&server, &started).await;
    until(&mut ws, "chat.resume_boundary").await;
    ws.send(json!({"type": "client.resume", "chat_id": chat, "lastClientIndex": seen_up_to}))
        .await;
    ws.until("the client boundary", |f| {
        f["type"] == "chat.resume_boundary" && f["data"]["resume_mode"] == "client"
    })
    .await;
    // The form may be asked for before the client's `client.resume` (the
    // live tail sends it then) or after: either way the client sees it.
    let is_form = |f: &Value| awaiting(f) && f["data"]["component_type"] == "ApprovalForm";
    let form = match ws.seen.iter().find(|f| is_form(f)) {
        Some(form) => form.clone(),
        None => ws.until("the approval form", is_form).await,
    };
    let dismissed = ws
        .seen
        .iter()
        .find(|f| f["type"] == "chat.ui_tool_dismiss")
        .expect("the artifact's dismiss, missed while away");
    assert_eq!(dismissed["data"]["event_id"], board["data"]["corr"]);
    // The connect's automatic replay sends the chat's messages again, as
    // MozaiksAI does; after `client.resume`, only what the client missed.
    let resumed = ws
        .seen
        .iter()
        .position(|f| f["type"] == "chat.resume_boundary" && f["data"]["resume_mode"] == "client")
        .unwrap();
    let again: Vec<&Value> = ws.seen[resumed..]
        .iter()
        .filter(|f| f["seq"].as_i64().is_some_and(|seq| seq <= seen_up_to))
        .collect();
    assert!(
        again.is_empty(),
        "only what it missed is sent again: {again:?}"
    );
    assert_eq!(form["data"]["display"], "inline", "{form}");
    assert_eq!(form["data"]["component_type"], "ApprovalForm");
    ws.send(json!({"type": "ui_tool_response", "eventId": form["data"]["eventId"], "response": {"approved": true}}))
        .await;
    let ack = until(&mut ws, "ack.ui_tool_response").await;
    assert_eq!(ack["data"]["status"], "accepted", "{ack}");
    until(&mut ws, "chat.ui_tool_complete").await;
    let verdict = ws
        .until("the verdict", |f| {
            f["type"] == "chat.text" && f["data"]["agent"] == "Reviewer"
        })
        .await;
    assert_eq!(
        verdict["data"]["structured_output"]["verdict"], "approved",
        "{verdict}"
    );
    assert_eq!(verdict["data"]["is_structured_capable"], true);
    let done = until(&mut ws, "chat.run_complete").await;
    assert_eq!(done["data"]["status"], 1);
    assert_envelopes(&ws.seen);
}

/// A server that stops tells the MozaiksAI socket (a `chat.error`
/// `SHUTTING_DOWN` with the last `seq` sent, then close 1012); on the next
/// server `client.resume` with that `seq` brings what happened since: the
/// old artifact dismissed as cancelled and the tool asking again.
#[tokio::test]
async fn a_chatui_client_is_told_of_a_restart_and_resumes_on_the_next_server() {
    let scratch = Scratch::new("chatui-restart");
    let llm = FakeLlm::start(chatui_llm).await;
    let setup = Setup::new(&scratch, &llm);
    let server = Server::start(&setup).await;
    let client = ChatUiClient::new(&server, None);
    let (started, chat, mut ws, first) = up_to_the_artifact(&client, &server).await;
    server.sigterm().await;
    let goodbye = until(&mut ws, "chat.error").await;
    assert_eq!(goodbye["data"]["error_code"], "SHUTTING_DOWN", "{goodbye}");
    let seen = last_seq(&ws);
    assert_eq!(goodbye["data"]["last_sequence"], seen);
    assert!(ws.next().await.is_none());
    assert_eq!(ws.close_code, Some(1012));
    assert_eq!(server.exit_code().await, Some(0));

    let server = Server::start(&setup).await;
    let client = ChatUiClient::new(&server, None);
    let mut ws = client.connect(&server, &started).await;
    until(&mut ws, "chat.resume_boundary").await;
    ws.send(json!({"type": "client.resume", "chat_id": chat, "lastClientIndex": seen}))
        .await;
    let again = ws
        .until("the tool asking again", |f| {
            f["type"] == "chat.tool_call"
                && f["data"]["awaiting_response"] == true
                && f["data"]["corr"] != first["data"]["corr"]
        })
        .await;
    assert_eq!(again["data"]["display"], "artifact");
    let dismissed = ws
        .seen
        .iter()
        .find(|f| f["type"] == "chat.ui_tool_dismiss")
        .expect("the old artifact dismissed");
    assert_eq!(dismissed["data"]["event_id"], first["data"]["corr"]);
    assert_eq!(dismissed["data"]["status"], "cancelled");
}
