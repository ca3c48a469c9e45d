//! Writing a core module section by section, for the build steps that
//! rewrite a few sections of a module and copy the rest as they are
//! (`adapter_arena.rs`, `preinit.rs`).

use wasm_encoder::RawSection;
use wasmparser::Payload;

/// Appends `section` to the module being written in `out`.
pub(super) fn push(out: &mut Vec<u8>, section: &impl wasm_encoder::Section) {
    out.push(section.id());
    section.encode(out);
}

/// Appends the section `payload` of `module` unchanged, when the payload is
/// a whole section (not the module's header or a code section's entry).
pub(super) fn push_unchanged(out: &mut Vec<u8>, module: &[u8], payload: &Payload<'_>) {
    if let Some((id, range)) = payload.as_section() {
        push(
            out,
            &RawSection {
                id,
                data: &module[range],
            },
        );
    }
}
