//! The one `wit_bindgen::generate!` of the SDK, against the repository's `wit/`.
//!
//! Nothing here is part of the SDK's API: the rest of the crate wraps it, and
//! `export_toolbox!` reaches the generated export macro through
//! `mozaiks_sdk::__private`.

#![allow(
    missing_docs,
    reason = "generated code; the SDK documents its own wrappers"
)]
#![allow(unreachable_pub, reason = "generated code")]
#![allow(missing_debug_implementations, reason = "generated code")]
#![allow(unsafe_code, reason = "generated canonical-ABI glue")]

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    // `export_toolbox!` expands in the tool's crate and calls this macro there.
    pub_export_macro: true,
    export_macro_name: "__export_plugin_world",
    default_bindings_module: "::mozaiks_sdk::__private::bindings",
});
