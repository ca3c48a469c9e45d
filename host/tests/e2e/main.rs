//! End-to-end tests: the real `mozaiks` binary over real HTTP and
//! WebSocket on loopback, the real async-openai client talking to a local
//! OpenAI-compatible server, real WASM tools in wasmtime, the real embedded
//! store on disk. One test binary per crate (docs/developing.md, house style
//! rule 10), one module per area.

#![allow(unreachable_pub, reason = "test helpers are shared between modules")]

/// Runs each named `async fn(Store)` once on the embedded store and once on
/// MongoDB, as `<name>::on_the_embedded_store` and `<name>::on_mongodb`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_the_embedded_store() {
                super::$name(crate::support::Store::Embedded).await;
            }
            #[tokio::test]
            async fn on_mongodb() {
                super::$name(crate::support::Store::Mongo).await;
            }
        }
    )*};
}

mod access;
mod app_data;
mod chatui;
mod cli;
mod cluster;
mod cluster_lb;
mod compile_limits;
mod configuration;
mod console;
mod context;
mod doctor;
mod example_plugin;
mod import;
mod languages;
mod lifecycle;
mod limits;
mod mongo;
mod operations;
mod patterns;
mod porting;
mod ports_go;
mod ports_scripted;
mod reload;
mod runs;
mod secrets;
mod shutdown;
mod support;
mod telemetry;
mod tool_cache;
mod tool_start;
mod transport;
mod user_turns;
