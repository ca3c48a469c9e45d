//! The compiled-component cache of `mozaiks tool describe` and `tool call`.
//!
//! The server keeps compiled components in `<data-dir>/component-cache`; the
//! tool author's commands keep theirs in the user's cache folder, so that the
//! second `tool call` of an unchanged component loads native code in
//! milliseconds instead of compiling it again (17–22 s for a Python or
//! SpiderMonkey component). Entries are named by the component's SHA-256 and
//! the engine's fingerprint, so a rebuilt component or a new mozaiks simply
//! misses (see `mozaiks_plugin_host::EngineConfig::cache_dir`).

use std::path::PathBuf;

use mozaiks_plugin_host::{CacheOutcome, Plugin};

use crate::cli::ComponentCacheArgs;

/// The folder under the user's cache directory.
const CACHE_SUBDIR: &str = "mozaiks/component-cache";

/// The cache directory these flags ask for, or `None` when it is off or no
/// cache folder can be named (no `XDG_CACHE_HOME` and no `HOME`).
pub(crate) fn dir(args: &ComponentCacheArgs) -> Option<PathBuf> {
    if args.no_component_cache {
        return None;
    }
    if let Some(dir) = &args.component_cache {
        return Some(dir.clone());
    }
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join(CACHE_SUBDIR))
}

/// How the compiled code was obtained, as `describe --json` prints it.
pub(crate) fn outcome_name(outcome: CacheOutcome) -> &'static str {
    match outcome {
        CacheOutcome::Disabled => "disabled",
        CacheOutcome::Miss => "compiled",
        CacheOutcome::Hit => "cached",
    }
}

/// Says on stderr that a component was compiled and where its code is
/// kept, since the first run of a large component takes seconds.
pub(crate) fn report(plugin: &Plugin, dir: Option<&PathBuf>) {
    let seconds = plugin.compile_time().as_secs_f64();
    match (plugin.cache_outcome(), dir) {
        (CacheOutcome::Miss, Some(dir)) => eprintln!(
            "mozaiks: compiled {} in {seconds:.1} s; the compiled code is kept in {} for the next run",
            plugin.id(),
            dir.display()
        ),
        (CacheOutcome::Disabled, _) if seconds >= 1.0 => eprintln!(
            "mozaiks: compiled {} in {seconds:.1} s (the component cache is off)",
            plugin.id()
        ),
        _ => {}
    }
}
