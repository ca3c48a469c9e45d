//! End-to-end tests: the real `mozaiks` binary over real HTTP and
//! WebSocket on loopback, the real async-openai client talking to a local
//! OpenAI-compatible server, real WASM tools in wasmtime, the real embedded
//! store on disk. One test binary (STYLE: one per crate), one module per
//! area.

#![allow(unreachable_pub, reason = "test helpers are shared between modules")]

mod cli;
mod operations;
mod patterns;
mod runs;
mod support;
mod transport;
