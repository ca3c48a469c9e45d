//! A starter tool: one function, `greet`, that uses the chat's context.

use mozaiks_sdk::{Call, ToolError, Toolbox, Value, json};
use serde::Deserialize;

#[derive(Deserialize)]
struct Greet {
    name: String,
}

fn greet(args: Greet, call: &Call) -> Result<Value, ToolError> {
    let context = call.context();
    let greetings = context.get::<u64>("greetings")?.unwrap_or(0) + 1;
    context.set("greetings", &greetings)?;
    mozaiks_sdk::log::info("greeted", &[("name", &args.name)]);
    Ok(json!({ "message": format!("Hello, {}!", args.name), "greetings": greetings }))
}

fn toolbox() -> Toolbox {
    Toolbox::new().function(
        "greet",
        "Greets someone by name. Returns the greeting and how many greetings this chat has had.",
        || {
            json!({
                "type": "object",
                "properties": { "name": { "type": "string", "minLength": 1 } },
                "required": ["name"],
                "additionalProperties": false
            })
        },
        greet,
    )
}

mozaiks_sdk::export_toolbox!(toolbox);
