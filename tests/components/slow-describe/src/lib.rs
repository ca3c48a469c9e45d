//! A component whose `describe()` never returns: building the toolbox
//! loops forever. The host must give up on it within its own budget for
//! loading, whatever deadline the manifest asks for.

use std::hint::black_box;

use mozaiks_sdk::{Toolbox, Value, json};

fn toolbox() -> Toolbox {
    let mut n = 0u64;
    while black_box(n) != u64::MAX {
        n = black_box(n.wrapping_add(1) % (u64::MAX - 1));
    }
    Toolbox::new().function(
        "never",
        "Never offered.",
        json!({ "type": "object" }),
        |_args: Value, _call: &mozaiks_sdk::Call| Ok(json!({})),
    )
}

mozaiks_sdk::export_toolbox!(toolbox);
