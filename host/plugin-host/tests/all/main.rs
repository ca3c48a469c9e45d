//! Integration tests of the plugin host against real components built from
//! `plugins/` and `tests/components/` by `scripts/build-plugins`.
//!
//! One test binary (one link of wasmtime), one module per concern.

mod support;

mod adversary;
mod boundary;
mod compile_bombs;
mod context_quota;
mod data;
mod docs;
mod grants;
mod invocation;
mod loading;
mod outbound;
mod payloads;
mod planner;
mod secrets;
mod slots;
mod ui_limits;
