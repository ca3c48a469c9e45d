//! [`export_toolbox!`](crate::export_toolbox): turns a toolbox into the
//! component's `tool` export.

use crate::__private::bindings::exports::mozaiks::plugin::tool as wit;
use crate::{Call, ToolError, Toolbox};

/// Exports a [`Toolbox`] as the tool component's `tool` interface.
///
/// `$toolbox` is the path of a function `fn() -> Toolbox`. Use it once, in the
/// tool's `lib.rs` (a `cdylib` crate):
///
/// ```rust,standalone_crate
/// fn toolbox() -> mozaiks_sdk::Toolbox {
///     mozaiks_sdk::Toolbox::new() // .function(...)
/// }
/// mozaiks_sdk::export_toolbox!(toolbox);
/// ```
///
/// It also stamps the WIT version the SDK implements into the custom section
/// `mozaiks:sdk-version` of the component, which the host reads before it
/// instantiates the tool.
#[macro_export]
macro_rules! export_toolbox {
    ($toolbox:path) => {
        const _: () = {
            struct MozaiksToolbox;

            impl $crate::__private::ToolboxProvider for MozaiksToolbox {
                fn toolbox() -> $crate::Toolbox {
                    $toolbox()
                }
            }

            $crate::__private::bindings::__export_plugin_world!(MozaiksToolbox);

            // Here rather than in the SDK: the tool's own object files are
            // always linked whole, the SDK's only when something refers to them.
            #[allow(
                unsafe_code,
                reason = "a custom section needs link_section, an unsafe attribute"
            )]
            #[unsafe(link_section = "mozaiks:sdk-version")]
            #[used]
            static MOZAIKS_SDK_VERSION: [u8; $crate::__private::SDK_WIT_VERSION.len()] =
                $crate::__private::SDK_WIT_VERSION;
        };
    };
}

/// Implemented by `export_toolbox!` for a type of its own; the SDK turns it
/// into the generated `Guest` implementation.
pub trait ToolboxProvider {
    /// Builds the toolbox.
    fn toolbox() -> Toolbox;
}

impl<T: ToolboxProvider> wit::Guest for T {
    fn describe() -> Vec<wit::FunctionSpec> {
        T::toolbox()
            .specs()
            .map(|(name, description, parameters)| wit::FunctionSpec {
                name: name.to_owned(),
                description: description.to_owned(),
                parameters,
            })
            .collect()
    }

    fn call(
        name: String,
        arguments: String,
        info: wit::CallInfo,
    ) -> Result<String, wit::ToolError> {
        T::toolbox()
            .call(&name, &arguments, &Call::new(info))
            .map_err(|err| match err {
                ToolError::UnknownFunction(msg) => wit::ToolError::UnknownFunction(msg),
                ToolError::InvalidArguments(msg) => wit::ToolError::InvalidArguments(msg),
                ToolError::Denied(msg) => wit::ToolError::Denied(msg),
                ToolError::Cancelled(msg) => wit::ToolError::Cancelled(msg),
                ToolError::Failed(msg) => wit::ToolError::Failed(msg),
            })
    }
}
