// The probe's functions; `VERSION` comes from the including crate.

use std::time::Duration;

use mozaiks_sdk::{Call, ToolError, Toolbox, Value, json};
use serde::Deserialize;

#[derive(Deserialize)]
struct Nap {
    ms: u64,
}

/// Says which version answered.
fn version(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "version": VERSION }))
}

/// Sleeps (without using CPU), then says which version answered: a call
/// that is surely in flight while a test replaces the component.
fn nap(args: Nap, _call: &Call) -> Result<Value, ToolError> {
    std::thread::sleep(Duration::from_millis(args.ms.min(2_000)));
    Ok(json!({ "version": VERSION, "slept_ms": args.ms }))
}

fn farewell(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "bye": true, "version": VERSION }))
}

fn toolbox() -> Toolbox {
    let toolbox = Toolbox::new()
        .function(
            "version",
            "Returns the version of the component that answered.",
            || json!({ "type": "object", "properties": {} }),
            version,
        )
        .function(
            "nap",
            "Sleeps for `ms` milliseconds (at most 2000), then returns the version that answered.",
            || {
                json!({
                    "type": "object",
                    "properties": { "ms": { "type": "integer", "minimum": 0 } },
                    "required": ["ms"]
                })
            },
            nap,
        );
    if VERSION == 1 {
        toolbox.function(
            "farewell",
            "Only in version 1: says goodbye.",
            || json!({ "type": "object", "properties": {} }),
            farewell,
        )
    } else {
        toolbox
    }
}

mozaiks_sdk::export_toolbox!(toolbox);
