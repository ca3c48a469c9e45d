//! A component whose `describe()` is too large in the way `/config/mode`
//! names: `functions` (200 of them), `description` (one of 64 KiB) or
//! `schema` (a parameter schema of 1 MiB). Anything else describes one
//! small function.

use mozaiks_sdk::{Call, ToolError, Toolbox, Value, json};

fn ok(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({}))
}

fn object() -> Value {
    json!({ "type": "object" })
}

fn toolbox() -> Toolbox {
    let mode = std::fs::read_to_string("/config/mode").unwrap_or_default();
    match mode.trim() {
        "functions" => (0..200).fold(Toolbox::new(), |toolbox, n| {
            toolbox.function(&format!("f{n}"), "One of many.", object(), ok)
        }),
        "description" => Toolbox::new().function("long", &"x".repeat(64 * 1024), object(), ok),
        "schema" => {
            let schema = json!({ "type": "object", "description": "x".repeat(1024 * 1024) });
            Toolbox::new().function("wide", "A huge schema.", schema, ok)
        }
        _ => Toolbox::new().function("small", "Small.", object(), ok),
    }
}

mozaiks_sdk::export_toolbox!(toolbox);
