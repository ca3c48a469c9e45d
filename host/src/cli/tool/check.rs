//! What `mozaiks tool build` checks in a component a toolchain made, and the
//! WIT version it stamps into it.
//!
//! The Rust SDK stamps the WIT version it was built against into a custom
//! section, and the host refuses a component of another version before
//! instantiating it. Toolchains of other languages know nothing of that
//! section, so the build adds it after checking that the component exports
//! this host's `tool` interface and imports only its own version of the
//! `mozaiks:plugin` interfaces.

use mozaiks_plugin_host::{SDK_VERSION_SECTION, WIT_VERSION};
use wasmparser::{Parser, Payload};

/// The WIT package of the contract.
const PACKAGE: &str = "mozaiks:plugin";

/// Why a built file is not a tool component of this host.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ComponentCheckError {
    /// The file is not a WebAssembly component (a core module, or not wasm).
    #[error("not a WebAssembly component ({0})")]
    NotAComponent(String),
    /// It does not export the `tool` interface of this version.
    #[error("it does not export `{expected}` (exports: {found})")]
    NoToolExport {
        /// What must be exported.
        expected: String,
        /// What is exported.
        found: String,
    },
    /// It imports an interface of the contract at another version.
    #[error("it imports `{found}`, but this host provides {PACKAGE} {WIT_VERSION}")]
    OtherVersion {
        /// The import.
        found: String,
    },
}

/// What a component imports and exports at its top level.
#[derive(Debug, Default)]
struct Surface {
    imports: Vec<String>,
    exports: Vec<String>,
    stamped: bool,
}

fn surface(bytes: &[u8]) -> Result<Surface, ComponentCheckError> {
    let not_component = |why: String| ComponentCheckError::NotAComponent(why);
    let mut surface = Surface::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| not_component(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. }
                if depth == 0 && encoding != wasmparser::Encoding::Component =>
            {
                return Err(not_component("a core module".to_owned()));
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| not_component(e.to_string()))?;
                    surface.imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| not_component(e.to_string()))?;
                    surface.exports.push(export.name.name.to_owned());
                }
            }
            // At any depth: the Rust SDK stamps its core module.
            Payload::CustomSection(section) => {
                surface.stamped |= section.name() == SDK_VERSION_SECTION;
            }
            _ => {}
        }
    }
    Ok(surface)
}

/// Checks that `bytes` is a tool component of this host's world and version,
/// and returns it with the WIT version stamped in (unchanged if it already
/// carries a stamp).
pub(crate) fn check_and_stamp(mut bytes: Vec<u8>) -> Result<Vec<u8>, ComponentCheckError> {
    let surface = surface(&bytes)?;
    let expected = format!("{PACKAGE}/tool@{WIT_VERSION}");
    if !surface.exports.contains(&expected) {
        return Err(ComponentCheckError::NoToolExport {
            expected,
            found: surface.exports.join(", "),
        });
    }
    let ours = format!("{PACKAGE}/");
    if let Some(other) = surface
        .imports
        .iter()
        .find(|i| i.starts_with(&ours) && !i.ends_with(&format!("@{WIT_VERSION}")))
    {
        return Err(ComponentCheckError::OtherVersion {
            found: other.clone(),
        });
    }
    if !surface.stamped {
        append_custom_section(&mut bytes, SDK_VERSION_SECTION, WIT_VERSION.as_bytes());
    }
    Ok(bytes)
}

/// Appends a custom section (id 0: name, then data), valid at the end of a
/// component as of a module.
fn append_custom_section(bytes: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut body = Vec::new();
    leb128(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    bytes.push(0);
    leb128(bytes, body.len());
    bytes.extend_from_slice(&body);
}

fn leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/template/template.wasm");
        std::fs::read(path).expect("sdk/template is built by scripts/build-plugins")
    }

    #[test]
    fn a_component_of_the_sdk_passes_and_keeps_its_stamp() {
        let bytes = template();
        let checked = check_and_stamp(bytes.clone()).unwrap();
        assert_eq!(checked, bytes, "already stamped by the SDK");
    }

    #[test]
    fn the_stamp_is_a_valid_custom_section_the_host_reads() {
        let mut empty = b"\0asm\x0d\0\x01\0".to_vec();
        assert!(!surface(&empty).unwrap().stamped);
        append_custom_section(&mut empty, SDK_VERSION_SECTION, WIT_VERSION.as_bytes());
        assert!(surface(&empty).unwrap().stamped);
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&empty)
            .unwrap();
        let section = Parser::new(0)
            .parse_all(&empty)
            .find_map(|p| match p {
                Ok(Payload::CustomSection(s)) => Some(s.data().to_vec()),
                _ => None,
            })
            .unwrap();
        assert_eq!(section, WIT_VERSION.as_bytes());
    }

    #[test]
    fn a_long_section_gets_a_multi_byte_size() {
        let mut out = Vec::new();
        leb128(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn a_core_module_is_refused() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        assert!(matches!(
            check_and_stamp(module),
            Err(ComponentCheckError::NotAComponent(_))
        ));
    }

    #[test]
    fn a_component_without_the_tool_export_is_refused() {
        // An empty component: header only.
        let empty = b"\0asm\x0d\0\x01\0".to_vec();
        let err = check_and_stamp(empty).unwrap_err();
        assert!(
            err.to_string().contains("mozaiks:plugin/tool@0.1.2"),
            "{err}"
        );
    }
}
