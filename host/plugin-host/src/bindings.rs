//! The one `bindgen!` expansion of the `mozaiks:plugin` WIT package.
//!
//! Nothing else lives here, so the generated names stay in one place and the
//! rest of the crate speaks in its own types (see `imports/` and `call.rs`).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    // Every import may wait (context is persisted by the embedder, `ui.ask`
    // waits for a human) and may trap when the embedder itself fails.
    imports: { default: async | trappable },
    exports: { default: async },
});

pub(crate) use mozaiks::plugin::{chat, context, data, invocation, log, secrets, types, ui};
