//! `mozaiks serve`: the server, until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context as _;
use std::time::Duration;

use mozaiks_host::app::{self, ServeConfig, StoreConfig};
use mozaiks_host::llm::LlmConfig;
use mozaiks_host::maintenance::MaintenanceConfig;
use tokio::net::TcpListener;

use super::ServeArgs;

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig {
        workflows_dir: args.workflows_dir,
        plugins_dir: args.plugins_dir,
        store: StoreConfig::from_env(args.data_dir)?,
        llm: LlmConfig::from_env(),
    };
    let maintenance = MaintenanceConfig {
        retention_days: args.retention_days,
        retention_interval: Duration::from_secs(args.retention_interval_secs.max(1)),
    };
    let orchestrator = app::build(&config).await?;
    let listener = TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("mozaiks listening on http://{addr}");
    tracing::info!(%addr, store = config.store.describe(), "serving");
    app::serve(listener, orchestrator, &maintenance, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down; active chats resume on the next start");
}
