//! What `export_toolbox!` expands to refers to; not part of the API.

pub mod bindings;

pub use crate::export::ToolboxProvider;

/// [`crate::WIT_VERSION`] as the bytes of the custom section.
pub const SDK_WIT_VERSION: [u8; crate::WIT_VERSION.len()] =
    match crate::WIT_VERSION.as_bytes().first_chunk() {
        Some(bytes) => *bytes,
        None => unreachable!(),
    };
