//! Version 2 of the hot-reload test component: `probe-v1` without
//! `farewell`. The functions live in `probe-v1/src/probe.rs`.

const VERSION: u64 = 2;

include!("../../probe-v1/src/probe.rs");
