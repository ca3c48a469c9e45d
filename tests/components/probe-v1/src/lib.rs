//! Version 1 of the hot-reload test component. Version 2 (`probe-v2`)
//! shares `probe.rs` and drops `farewell`, so tests can swap versions and
//! see the gate refuse a version that lost a function a workflow uses.

const VERSION: u64 = 1;

include!("probe.rs");
