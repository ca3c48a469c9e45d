//! Two plugins made from this component meet while they load: the one
//! granted `/signal` writes `/signal/go` in `describe()`, the one granted
//! `/wait` waits in `describe()` until `/wait/go` exists. Only a host that
//! loads plugins independently of each other loads the waiter.

use std::path::Path;

use mozaiks_sdk::{Call, ToolError, Toolbox, Value, json};

fn ping(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "pong": true }))
}

fn toolbox() -> Toolbox {
    if Path::new("/signal").is_dir() {
        let _ = std::fs::write("/signal/go", "go");
    }
    if Path::new("/wait").is_dir() {
        // The host's loading budget ends this if the signal never comes.
        while !Path::new("/wait/go").exists() {
            std::hint::spin_loop();
        }
    }
    Toolbox::new().function("ping", "Answers.", json!({ "type": "object" }), ping)
}

mozaiks_sdk::export_toolbox!(toolbox);
