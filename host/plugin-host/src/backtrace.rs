//! Guest backtraces, rendered short enough to read in a log line or an error:
//! names demangled, repeated frames (recursion) collapsed, long stacks cut.

use std::fmt::Write;

use wasmtime::{FrameInfo, WasmBacktrace};

/// Distinct frames (after collapsing repeats) kept in a rendered backtrace.
const MAX_RENDERED_FRAMES: usize = 24;
/// Frames wasmtime captures for a trap. Enough to see through the SDK's
/// dispatch into the tool and to recognise recursion; capturing every frame
/// of a 100 000-deep recursion would cost more than the call itself.
pub(crate) const CAPTURED_FRAMES: usize = 64;
/// The same frame this many times in a row is runaway recursion: real code
/// does not call itself dozens of times at one spot.
pub(crate) const RECURSION_RUN: usize = 32;

fn describe(frame: &FrameInfo) -> String {
    let name = frame.func_name().map_or_else(
        || format!("<function {}>", frame.func_index()),
        |n| format!("{:#}", rustc_demangle::demangle(n)),
    );
    match frame.symbols().first() {
        Some(s) => match (s.file(), s.line()) {
            (Some(file), Some(line)) => format!("{name} at {file}:{line}"),
            _ => name,
        },
        None => name,
    }
}

/// A rendered backtrace.
#[derive(Debug, Default)]
pub(crate) struct Rendered {
    /// Innermost frame first, repeats collapsed.
    pub(crate) text: String,
    /// The longest run of one repeated frame.
    pub(crate) longest_run: usize,
}

/// Renders `bt` innermost frame first.
pub(crate) fn render(bt: &WasmBacktrace) -> Rendered {
    let frames = bt.frames();
    let mut groups: Vec<(String, usize)> = Vec::new();
    for frame in frames {
        let text = describe(frame);
        match groups.last_mut() {
            Some((last, count)) if *last == text => *count += 1,
            _ => groups.push((text, 1)),
        }
    }
    let mut out = String::new();
    for (text, count) in groups.iter().take(MAX_RENDERED_FRAMES) {
        let _ = write!(out, "  {text}");
        if *count > 1 {
            let _ = write!(out, " (repeated {count} times)");
        }
        out.push('\n');
    }
    if groups.len() > MAX_RENDERED_FRAMES {
        let _ = writeln!(
            out,
            "  ... {} more frames",
            groups.len() - MAX_RENDERED_FRAMES
        );
    }
    let longest_run = groups.iter().map(|(_, count)| *count).max().unwrap_or(0);
    Rendered {
        text: out,
        longest_run,
    }
}
