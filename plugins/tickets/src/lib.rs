//! Example tool set that calls an HTTP API with a secret: files and reads
//! tickets in a ticket service, authenticated by a bearer token.
//!
//! The service's contract (any service that speaks it will do):
//! `POST <base>/tickets` with `{"title", "description", "priority"}` answers
//! `{"id", "url"}`; `GET <base>/tickets/<id>` answers the ticket as JSON.
//! Both carry `Authorization: Bearer <TICKETS_TOKEN>`.

use mozaiks_sdk::http::{HttpError, Request, Response};
use mozaiks_sdk::{Call, ToolError, Toolbox, Value, json, secrets};
use serde::Deserialize;

/// The service used when `TICKETS_API_URL` has no value.
const DEFAULT_BASE_URL: &str = "https://tickets.example.com/api";

#[derive(Deserialize)]
struct CreateTicket {
    title: String,
    description: String,
    #[serde(default = "normal")]
    priority: String,
}

fn normal() -> String {
    "normal".to_owned()
}

#[derive(Deserialize)]
struct GetTicket {
    id: String,
}

/// The service's base URL and the bearer token, or an error the agent can
/// relay to the user saying what the operator sets.
fn service() -> Result<(String, String), ToolError> {
    let Some(token) = secrets::get("TICKETS_TOKEN")? else {
        return Err(ToolError::Failed(
            "the ticket service is not configured: the operator sets the secret \
             TICKETS_TOKEN of the plugin `tickets`"
                .to_owned(),
        ));
    };
    let base = secrets::get("TICKETS_API_URL")?.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    Ok((base.trim_end_matches('/').to_owned(), token))
}

/// The JSON body of a 2xx response, or an error naming the status.
fn answer(response: &Response) -> Result<Value, ToolError> {
    if !(200..300).contains(&response.status) {
        return Err(ToolError::Failed(format!(
            "the ticket service answered {}: {}",
            response.status,
            response.text().chars().take(200).collect::<String>()
        )));
    }
    response
        .json::<Value>()
        .map_err(|e: HttpError| ToolError::Failed(e.to_string()))
}

fn create_ticket(args: CreateTicket, _call: &Call) -> Result<Value, ToolError> {
    let (base, token) = service()?;
    let response = Request::post(&format!("{base}/tickets"))
        .header("authorization", &format!("Bearer {token}"))
        .json(&json!({
            "title": args.title,
            "description": args.description,
            "priority": args.priority,
        }))
        .send()?;
    let ticket = answer(&response)?;
    Ok(json!({ "id": ticket["id"], "url": ticket["url"] }))
}

fn get_ticket(args: GetTicket, _call: &Call) -> Result<Value, ToolError> {
    let (base, token) = service()?;
    let response = Request::get(&format!("{base}/tickets/{}", args.id))
        .header("authorization", &format!("Bearer {token}"))
        .send()?;
    answer(&response)
}

fn toolbox() -> Toolbox {
    Toolbox::new()
        .function(
            "create_ticket",
            "Files a ticket in the ticket service and returns its {\"id\", \"url\"}.",
            || {
                json!({
                    "type": "object",
                    "properties": {
                        "title": { "type": "string" },
                        "description": { "type": "string" },
                        "priority": { "type": "string", "enum": ["low", "normal", "high"] }
                    },
                    "required": ["title", "description"],
                    "additionalProperties": false
                })
            },
            create_ticket,
        )
        .function(
            "get_ticket",
            "Reads a ticket of the ticket service by its id.",
            || {
                json!({
                    "type": "object",
                    "properties": { "id": { "type": "string" } },
                    "required": ["id"],
                    "additionalProperties": false
                })
            },
            get_ticket,
        )
}

mozaiks_sdk::export_toolbox!(toolbox);
