//! The LLM client against the fake OpenAI server on loopback: the real
//! async-openai client, real HTTP and real server-sent events.

use std::time::{Duration, Instant};

use mozaiks_fake_llm::{FakeLlm, Reply};
use serde_json::{Value, json};

use super::request::{MAX_NAME_LEN, sanitize_name};
use super::*;

const MODEL: &str = "gpt-test";

fn config(base_url: Option<String>, api_key: Option<&str>) -> LlmConfig {
    LlmConfig {
        api_key: api_key.map(str::to_owned),
        base_url,
        default_model: MODEL.to_owned(),
        default_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_retries: 2,
            backoff: Duration::from_millis(10),
        },
    }
}

fn client_for(llm: &FakeLlm) -> LlmClient {
    LlmClient::new(config(Some(llm.base_url()), Some("sk-test")))
}

fn user(text: &str) -> ChatMessage {
    ChatMessage::User {
        name: None,
        content: text.to_owned(),
    }
}

/// Runs one call, collecting the deltas.
async fn complete(
    client: &LlmClient,
    request: ChatRequest,
) -> (Result<ChatResponse, LlmError>, Vec<String>) {
    let mut deltas = Vec::new();
    let result = client
        .complete(request, &mut |d: &str| deltas.push(d.to_owned()))
        .await;
    (result, deltas)
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }
}

#[tokio::test]
async fn streams_text_deltas_in_order_and_records_usage() {
    let llm = FakeLlm::start(|_| Reply::text("Hello there, streaming world!")).await;
    let client = client_for(&llm);
    let mut request = client.request(vec![
        ChatMessage::System {
            content: "Be brief.".into(),
        },
        user("Say hello"),
    ]);
    request.temperature = Some(0.2);
    request.max_tokens = Some(50);
    request.seed = Some(7);

    let (result, deltas) = complete(&client, request).await;
    let response = result.unwrap();

    assert!(deltas.len() >= 3, "expected several deltas, got {deltas:?}");
    assert_eq!(deltas.concat(), "Hello there, streaming world!");
    assert_eq!(response.content, "Hello there, streaming world!");
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    assert_eq!(response.model, MODEL);
    let usage = response.usage.expect("usage chunk");
    assert!(
        usage.prompt_tokens >= 1 && usage.completion_tokens >= 1,
        "{usage:?}"
    );

    let calls = llm.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.model(), MODEL);
    assert_eq!(call.system(), "Be brief.");
    assert_eq!(call.last_text(), "Say hello");
    assert_eq!(call.body["stream"], true);
    assert_eq!(call.body["stream_options"]["include_usage"], true);
    assert_eq!(call.body["max_completion_tokens"], 50);
    assert_eq!(call.body["seed"], 7);
    assert!((call.body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert!(
        call.body.get("tools").is_none(),
        "no tools offered: {}",
        call.body
    );
}

#[tokio::test]
async fn assembles_a_tool_call_whose_arguments_arrive_in_pieces() {
    let args = json!({"city": "Oslo", "days": 3, "units": "metric"});
    let reply_args = args.clone();
    let llm = FakeLlm::start(move |_| Reply::tool_call("get_weather", reply_args.clone())).await;
    let client = client_for(&llm);
    let mut request = client.request(vec![user("Weather in Oslo?")]);
    request.tools = vec![weather_tool()];

    let (result, deltas) = complete(&client, request).await;
    let response = result.unwrap();

    assert!(deltas.is_empty(), "no text expected: {deltas:?}");
    assert_eq!(response.content, "");
    assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(response.tool_calls.len(), 1);
    let call = &response.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    assert!(call.id.starts_with("call_"), "{}", call.id);
    assert_eq!(
        serde_json::from_str::<Value>(&call.arguments).unwrap(),
        args
    );

    let sent = &llm.calls()[0];
    assert_eq!(sent.tool_names(), vec!["get_weather".to_owned()]);
    assert_eq!(sent.body["tools"][0]["type"], "function");
    assert_eq!(
        sent.body["tools"][0]["function"]["parameters"],
        weather_tool().parameters
    );
}

#[tokio::test]
async fn assembles_two_parallel_tool_calls_in_order_after_text() {
    let llm = FakeLlm::start(|_| {
        Reply::TextAndToolCalls(
            "Checking both.".into(),
            vec![
                ("get_weather".into(), json!({"city": "Oslo"})),
                ("get_weather".into(), json!({"city": "Lima"})),
            ],
        )
    })
    .await;
    let client = client_for(&llm);
    let mut request = client.request(vec![user("Oslo and Lima?")]);
    request.tools = vec![weather_tool()];

    let (result, deltas) = complete(&client, request).await;
    let response = result.unwrap();

    assert_eq!(deltas.concat(), "Checking both.");
    assert_eq!(response.content, "Checking both.");
    let cities: Vec<Value> = response
        .tool_calls
        .iter()
        .map(|c| serde_json::from_str::<Value>(&c.arguments).unwrap()["city"].clone())
        .collect();
    assert_eq!(cities, vec![json!("Oslo"), json!("Lima")]);
    assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);
}

#[tokio::test]
async fn sends_a_transcript_with_tool_calls_and_their_results() {
    let llm = FakeLlm::start(|call| Reply::text(format!("got {}", call.last_text()))).await;
    let client = client_for(&llm);
    let request = client.request(vec![
        user("Weather?"),
        ChatMessage::Assistant {
            name: Some("Planner".into()),
            content: None,
            tool_calls: vec![ToolCallRequest {
                id: "call_a".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Oslo"}"#.into(),
            }],
        },
        ChatMessage::Tool {
            tool_call_id: "call_a".into(),
            content: r#"{"temp":3}"#.into(),
        },
    ]);

    let (result, _) = complete(&client, request).await;

    assert_eq!(result.unwrap().content, r#"got {"temp":3}"#);
    let sent = &llm.calls()[0];
    assert_eq!(
        sent.tool_results(),
        vec![("call_a".to_owned(), r#"{"temp":3}"#.to_owned())]
    );
    let assistant = &sent.messages()[1];
    assert_eq!(assistant["tool_calls"][0]["id"], "call_a");
    assert_eq!(assistant["tool_calls"][0]["type"], "function");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Oslo"}"#
    );
    assert!(assistant.get("content").is_none(), "{assistant}");
}

#[tokio::test]
async fn sends_the_response_schema_as_a_non_strict_json_schema_format() {
    let llm = FakeLlm::start(|_| Reply::text(r#"{"verdict":"ok"}"#)).await;
    let client = client_for(&llm);
    let schema = json!({
        "type": "object",
        "properties": {"verdict": {"type": "string"}},
        "required": ["verdict"]
    });
    let mut request = client.request(vec![user("Judge")]);
    request.response_format = Some(ResponseSchema {
        name: "Review Verdict".into(),
        schema: schema.clone(),
    });

    let (result, _) = complete(&client, request).await;

    assert_eq!(result.unwrap().content, r#"{"verdict":"ok"}"#);
    let sent = &llm.calls()[0];
    assert!(sent.has_response_format());
    assert_eq!(sent.response_schema(), Some(&schema));
    let format = &sent.body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "Review_Verdict");
    assert_eq!(format["json_schema"]["strict"], false);
}

#[tokio::test]
async fn maps_http_500_to_status_with_the_server_message() {
    let llm = FakeLlm::start(|_| Reply::Status(500, "the engine is overloaded".into())).await;
    let client = client_for(&llm);

    let (result, _) = complete(&client, client.request(vec![user("hi")])).await;

    match result.unwrap_err() {
        LlmError::Status {
            model,
            status,
            message,
        } => {
            assert_eq!((model.as_str(), status), (MODEL, 500));
            assert_eq!(message, "the engine is overloaded");
        }
        other => panic!("expected Status, got {other:?}"),
    }
    // The default policy: the call and two retries.
    assert_eq!(llm.calls().len(), 3);
}

#[tokio::test]
async fn maps_http_401_to_status_that_says_to_check_openai_api_key() {
    let llm = FakeLlm::start(|_| Reply::Status(401, "Incorrect API key provided".into())).await;
    let client = client_for(&llm);

    let (result, _) = complete(&client, client.request(vec![user("hi")])).await;

    let error = result.unwrap_err();
    assert_eq!(error.code().as_str(), "LLM_HTTP_ERROR");
    match &error {
        LlmError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 401);
            assert!(message.contains("Incorrect API key provided"), "{message}");
            assert!(message.contains("OPENAI_API_KEY"), "{message}");
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert_eq!(llm.calls().len(), 1, "a 401 is not retried");
}

#[tokio::test]
async fn a_base_url_without_v1_gives_a_404_that_names_model_and_url() {
    let llm = FakeLlm::start(|_| Reply::text("unreachable")).await;
    let base = llm.base_url().trim_end_matches("/v1").to_owned();
    let client = LlmClient::new(config(Some(base.clone()), Some("sk-test")));

    let (result, _) = complete(&client, client.request(vec![user("hi")])).await;

    match result.unwrap_err() {
        LlmError::Status {
            status, message, ..
        } => {
            assert_eq!(status, 404);
            assert!(
                message.contains(&base) && message.contains(MODEL),
                "{message}"
            );
        }
        other => panic!("expected Status, got {other:?}"),
    }
}

#[tokio::test]
async fn times_out_quickly_when_the_server_answers_later_than_the_timeout() {
    let llm = FakeLlm::start(|_| Reply::text("too late").after(Duration::from_secs(30))).await;
    let client = client_for(&llm);
    let mut request = client.request(vec![user("hi")]);
    request.timeout = Duration::from_millis(200);

    let started = Instant::now();
    let (result, _) = complete(&client, request).await;

    assert_eq!(
        result.unwrap_err(),
        LlmError::Timeout {
            model: MODEL.into(),
            after: Duration::from_millis(200)
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn times_out_in_a_slow_stream_keeping_the_deltas_already_delivered() {
    let llm = FakeLlm::start(|_| Reply::SlowStream {
        pieces: vec!["first ".into(), "second".into()],
        gap: Duration::from_secs(30),
    })
    .await;
    let client = client_for(&llm);
    let mut request = client.request(vec![user("hi")]);
    request.timeout = Duration::from_millis(300);

    let (result, deltas) = complete(&client, request).await;

    assert_eq!(result.unwrap_err().code().as_str(), "LLM_TIMEOUT");
    assert_eq!(deltas, vec!["first ".to_owned()]);
}

#[tokio::test]
async fn delivers_slow_stream_pieces_as_separate_deltas() {
    let llm = FakeLlm::start(|_| Reply::SlowStream {
        pieces: vec!["a".into(), "b".into(), "c".into()],
        gap: Duration::from_millis(10),
    })
    .await;
    let client = client_for(&llm);

    let (result, deltas) = complete(&client, client.request(vec![user("hi")])).await;

    assert_eq!(result.unwrap().content, "abc");
    assert_eq!(deltas, vec!["a", "b", "c"]);
}

#[tokio::test]
async fn names_the_base_url_when_the_connection_is_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let client = LlmClient::new(config(Some(base.clone()), Some("sk-test")));

    let (result, _) = complete(&client, client.request(vec![user("hi")])).await;

    let error = result.unwrap_err();
    assert_eq!(error.code().as_str(), "LLM_UNREACHABLE");
    match &error {
        LlmError::Connect { base_url, message } => {
            assert_eq!(base_url, &base);
            assert!(message.to_lowercase().contains("refused"), "{message}");
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(error.to_string().contains(&base), "{error}");
}

#[tokio::test]
async fn reports_a_missing_api_key_when_neither_key_nor_base_url_is_set() {
    let client = LlmClient::new(config(None, None));

    assert_eq!(client.missing_configuration(), Some("OPENAI_API_KEY"));
    let (result, deltas) = complete(&client, client.request(vec![user("hi")])).await;
    assert_eq!(
        result.unwrap_err(),
        LlmError::MissingConfiguration {
            var: "OPENAI_API_KEY"
        }
    );
    assert!(deltas.is_empty());
}

#[tokio::test]
async fn calls_a_base_url_without_a_key() {
    let llm = FakeLlm::start(|_| Reply::text("local")).await;
    let client = LlmClient::new(config(Some(format!("{}/", llm.base_url())), None));

    assert_eq!(client.missing_configuration(), None);
    assert_eq!(client.base_url(), llm.base_url(), "trailing slash trimmed");
    let (result, _) = complete(&client, client.request(vec![user("hi")])).await;
    assert_eq!(result.unwrap().content, "local");
}

#[tokio::test]
async fn an_empty_model_means_the_default_model() {
    let llm = FakeLlm::start(|_| Reply::text("ok")).await;
    let client = client_for(&llm);
    let mut request = client.request(vec![user("hi")]);
    request.model = String::new();

    let (result, _) = complete(&client, request).await;

    assert_eq!(result.unwrap().model, MODEL);
    assert_eq!(llm.calls()[0].model(), MODEL);
}

#[tokio::test]
async fn sanitises_message_names_to_openais_pattern() {
    let llm = FakeLlm::start(|_| Reply::text("ok")).await;
    let client = client_for(&llm);
    let request = client.request(vec![
        ChatMessage::User {
            name: Some("Jane Doe!".into()),
            content: "hi".into(),
        },
        ChatMessage::Assistant {
            name: Some("Research Agent (v2)".into()),
            content: Some("hello".into()),
            tool_calls: Vec::new(),
        },
        ChatMessage::User {
            name: Some("   ".into()),
            content: "again".into(),
        },
    ]);

    let (result, _) = complete(&client, request).await;

    // The fake rejects names outside the pattern with HTTP 400, as OpenAI does.
    assert_eq!(result.unwrap().content, "ok");
    let sent = &llm.calls()[0];
    assert_eq!(sent.messages()[0]["name"], "Jane_Doe_");
    assert_eq!(sent.messages()[1]["name"], "Research_Agent__v2_");
    assert!(sent.messages()[2].get("name").is_none());
}

#[test]
fn sanitize_name_cuts_long_names_and_replaces_non_ascii() {
    let long = "a".repeat(100);
    assert_eq!(sanitize_name(&long).unwrap().len(), MAX_NAME_LEN);
    assert_eq!(sanitize_name("Zoë-1_x").as_deref(), Some("Zo_-1_x"));
    assert_eq!(sanitize_name(""), None);
}

#[test]
fn config_reads_defaults_and_treats_empty_values_as_unset() {
    let config = LlmConfig::from_lookup(|var| match var {
        "OPENAI_API_KEY" => Some("  ".into()),
        "OPENAI_BASE_URL" => Some("http://localhost:11434/v1".into()),
        _ => None,
    });
    assert_eq!(config.api_key, None);
    assert_eq!(
        config.base_url.as_deref(),
        Some("http://localhost:11434/v1")
    );
    assert_eq!(config.default_model, DEFAULT_MODEL);
    assert_eq!(config.default_timeout, DEFAULT_TIMEOUT);
}

#[test]
fn config_reads_model_and_timeout_and_falls_back_on_a_bad_timeout() {
    let read = |timeout: &'static str| {
        LlmConfig::from_lookup(move |var| match var {
            "MOZAIKS_DEFAULT_MODEL" => Some("llama3.1".into()),
            "MOZAIKS_LLM_TIMEOUT_SECS" => Some(timeout.into()),
            _ => None,
        })
    };
    assert_eq!(read("30").default_timeout, Duration::from_secs(30));
    assert_eq!(read("30").default_model, "llama3.1");
    assert_eq!(read("soon").default_timeout, DEFAULT_TIMEOUT);
    assert_eq!(read("0").default_timeout, DEFAULT_TIMEOUT);
}

#[test]
fn config_debug_output_redacts_the_api_key() {
    let text = format!("{:?}", config(None, Some("sk-secret")));
    assert!(!text.contains("sk-secret"), "{text}");
    assert!(text.contains("redacted"), "{text}");
}

#[test]
fn the_completion_future_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let client = LlmClient::new(config(None, None));
    let mut on_delta = |_: &str| {};
    let future = client.complete(client.request(Vec::new()), &mut on_delta);
    assert_send(&future);
}

/// The examples of `sanitize_name`'s doc comment (a doctest until the
/// module became private to the crate).
#[test]
fn sanitize_name_keeps_the_examples_of_its_doc() {
    assert_eq!(
        sanitize_name(" Research Agent "),
        Some("Research_Agent".to_owned())
    );
    assert_eq!(sanitize_name("   "), None);
}
