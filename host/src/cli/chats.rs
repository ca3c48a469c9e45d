//! `mozaiks chats export`: a chat as one JSON document, for support.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use mozaiks_host::{Config, Overrides, chat_json};
use serde_json::{Value, json};

use super::ChatsCommand;

pub(crate) async fn run(command: ChatsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ChatsCommand::Export {
            chat_id,
            store,
            server,
            api_key,
        } => {
            let export = match server {
                Some(base) => from_server(&base, &chat_id, api_key.as_deref()).await?,
                None => from_store(&store.overrides(), &chat_id).await?,
            };
            println!("{}", serde_json::to_string_pretty(&export)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the chat from the store the configuration names: the server's own
/// sources, read by the server's own code ([`Config::load_store`]).
async fn from_store(overrides: &Overrides, chat_id: &str) -> anyhow::Result<Value> {
    let config = Config::load_store(overrides)?;
    let store = config.open().await.with_context(|| {
        format!(
            "opening the {} (while a server runs on the embedded store, use --server <its URL>)",
            config.describe()
        )
    })?;
    let Some(chat) = store.chat(chat_id).await? else {
        bail!("no chat `{chat_id}` in the {}", config.describe());
    };
    let context = store.context(chat_id).await?;
    let events = store.events(chat_id, 0, None).await?;
    Ok(json!({"chat": chat_json(&chat), "context": context, "events": events}))
}

async fn from_server(base: &str, chat_id: &str, api_key: Option<&str>) -> anyhow::Result<Value> {
    mozaiks_host::install_crypto_provider();
    let client = reqwest::Client::new();
    let base = base.trim_end_matches('/');
    let mut parts = Vec::new();
    for path in ["", "/context", "/events"] {
        let url = format!("{base}/api/chats/{chat_id}{path}");
        let mut request = client.get(&url);
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("GET {url}: the answer is not JSON"))?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", body["error"]["message"]);
        }
        parts.push(body);
    }
    let [mut chat, context, events] = <[Value; 3]>::try_from(parts)
        .map_err(|_| anyhow::anyhow!("three answers were expected"))?;
    // The chat route adds the messages; the events hold them all.
    if let Some(fields) = chat.as_object_mut() {
        fields.remove("messages");
    }
    Ok(json!({"chat": chat, "context": context["context"], "events": events["events"]}))
}
