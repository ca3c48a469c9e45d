//! What starting one instance of a plugin costs, measured on the instance
//! that answers `describe()` when the plugin is loaded, and the warnings
//! `mozaiks tool describe` and `mozaiks doctor` give when that does not fit
//! the default limits (a Python tool starts CPython in every instance).

use std::time::Duration;

use crate::limits::{DEFAULT_DEADLINE_MS, DEFAULT_MEMORY_MIB, MIB};
use crate::manifest::Limits;

/// The memory and time one instance of a plugin took to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartCost {
    /// The largest size a linear memory of the instance grew to while it
    /// was instantiated and answered `describe()`, in bytes.
    pub memory_bytes: usize,
    /// Instantiating it and running `describe()`. This is the first
    /// instance of the component in the process, so its memory image is
    /// mapped in cold: later instances usually start faster.
    pub time: Duration,
}

impl StartCost {
    /// [`memory_bytes`](Self::memory_bytes) in MiB, rounded up.
    pub fn memory_mib(&self) -> u64 {
        self.memory_bytes.div_ceil(MIB) as u64
    }

    /// What a person should know about this cost under `limits` (the
    /// plugin's manifest limits): an instance that needs more memory than
    /// the default [`DEFAULT_MEMORY_MIB`] just to start, or that takes more
    /// than its deadline, or than the default [`DEFAULT_DEADLINE_MS`], to
    /// start. Each warning names the setting to keep or change. Empty when
    /// the cost fits the defaults.
    pub fn warnings(&self, limits: &Limits) -> Vec<String> {
        let mut warnings = Vec::new();
        let mib = self.memory_mib();
        if mib > u64::from(DEFAULT_MEMORY_MIB) {
            warnings.push(format!(
                "an instance needs {mib} MiB of memory just to start, more than the default \
                 {DEFAULT_MEMORY_MIB} MiB: keep `memory_mib` at {mib} or more under [limits] in \
                 plugin.toml (it is {})",
                limits.memory_mib
            ));
        }
        let ms = self.time.as_millis();
        if ms > u128::from(limits.deadline_ms) {
            warnings.push(format!(
                "starting an instance took {ms} ms, more than the {} ms deadline of a call: \
                 calls are likely to time out before the tool runs; raise `deadline_ms` under \
                 [limits] in plugin.toml",
                limits.deadline_ms
            ));
        } else if ms > u128::from(DEFAULT_DEADLINE_MS) {
            warnings.push(format!(
                "starting an instance took {ms} ms, more than the default deadline of \
                 {DEFAULT_DEADLINE_MS} ms: keep `deadline_ms` above it under [limits] in \
                 plugin.toml (it is {})",
                limits.deadline_ms
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(mib: usize, ms: u64) -> StartCost {
        StartCost {
            memory_bytes: mib * MIB,
            time: Duration::from_millis(ms),
        }
    }

    #[test]
    fn a_start_within_the_defaults_gives_no_warning() {
        assert!(cost(13, 40).warnings(&Limits::default()).is_empty());
        assert!(
            cost(DEFAULT_MEMORY_MIB as usize, DEFAULT_DEADLINE_MS.into())
                .warnings(&Limits::default())
                .is_empty()
        );
    }

    #[test]
    fn memory_over_the_default_is_named_with_the_setting_to_keep() {
        let limits = Limits {
            memory_mib: 256,
            ..Limits::default()
        };
        let warnings = cost(100, 40).warnings(&limits);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .contains("needs 100 MiB of memory just to start, more than the default 64 MiB"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains("`memory_mib` at 100 or more"),
            "{}",
            warnings[0]
        );
        assert!(warnings[0].contains("(it is 256)"), "{}", warnings[0]);
    }

    #[test]
    fn a_start_slower_than_the_deadline_says_calls_will_time_out() {
        let limits = Limits {
            deadline_ms: 10,
            ..Limits::default()
        };
        let warnings = cost(13, 40).warnings(&limits);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("took 40 ms, more than the 10 ms deadline of a call"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains("raise `deadline_ms`"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn a_start_slower_than_the_default_deadline_is_named_even_when_raised() {
        let limits = Limits {
            deadline_ms: 60_000,
            ..Limits::default()
        };
        let warnings = cost(13, 6_000).warnings(&limits);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("more than the default deadline of 5000 ms"),
            "{}",
            warnings[0]
        );
    }
}
