//! `mozaiks serve` and `mozaiks dev`: the server, until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use mozaiks_host::{
    Config, Environment, GateSettings, HttpOptions, PluginSlots, ReloadConfig, ServeConfig,
    ServeOptions,
};
use tokio::net::TcpListener;

use super::ServeArgs;

/// The command `mozaiks dev` rebuilds a plugin of another language than Rust
/// with: this binary's `tool build` (the folder is appended), so a rebuild
/// is exactly what `mozaiks tool build` does.
pub(crate) fn tool_build_command(
    toolchain_script: &std::path::Path,
) -> anyhow::Result<Vec<std::ffi::OsString>> {
    let exe = std::env::current_exe().context("finding the mozaiks binary")?;
    Ok(vec![
        exe.into_os_string(),
        "tool".into(),
        "build".into(),
        "--toolchain-script".into(),
        watch_path(toolchain_script).into_os_string(),
    ])
}

/// Serves until a shutdown signal; `dev` (the Rust build script and the
/// other languages' build command) turns on rebuilding plugins from their
/// sources (`mozaiks dev`).
pub(crate) async fn run(
    args: ServeArgs,
    dev: Option<(PathBuf, Vec<std::ffi::OsString>)>,
) -> anyhow::Result<ExitCode> {
    let (build_script, tool_build_command) = match dev {
        Some((script, command)) => (Some(script), command),
        None => (None, Vec::new()),
    };
    if let Some(script) = &build_script {
        anyhow::ensure!(
            script.is_file(),
            "the build script {} does not exist; run `mozaiks dev` from the repository root or pass --build-script",
            script.display()
        );
    }
    let mut overrides = args.config.overrides();
    overrides.development_by_default = build_script.is_some();
    let settings = Config::load(&overrides)?;
    mozaiks_host::init_server(&settings.log)?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        environment = %settings.environment,
        auth = settings.access.enabled,
        logs = ?settings.log.dir,
        "configuration loaded (`mozaiks config` prints it)"
    );
    let config = ServeConfig {
        workflows_dir: settings.workflows_dir.clone(),
        plugins_dir: settings.plugins_dir.clone(),
        component_cache: (!args.no_component_cache)
            .then(|| settings.data_dir.join("component-cache")),
        store: settings.store.clone(),
        llm: settings.llm.clone(),
        reload: ReloadConfig {
            watch: !args.no_watch || build_script.is_some(),
            gate: GateSettings {
                allow_new_capabilities: args.allow_new_capabilities,
            },
            build_script: build_script.map(|s| watch_path(&s)),
            tool_build_command,
        },
        plugin_slots: PluginSlots {
            total: settings.plugin_slots,
            per_plugin: settings.plugin_slots_per_plugin,
        },
        compiler: super::compile::child_compiler(settings.compile_limits)?,
        outbound: settings.outbound.clone(),
        secrets_dir: settings.secrets_dir.clone(),
    };
    let options = ServeOptions {
        http: HttpOptions {
            access: Arc::new(settings.access.clone()),
            cors_origins: settings.cors_origins.clone(),
            development: settings.environment == Environment::Development,
            max_body_bytes: settings.max_body_bytes,
        },
        maintenance: settings.maintenance.clone(),
        shutdown_grace: settings.shutdown_grace,
        cluster: settings.cluster.clone(),
    };
    // Plugins load in the background: a slow one never keeps the server
    // from listening (`/health/ready` says `loading` meanwhile).
    let (server, first_load) = mozaiks_host::start(&config).await?;
    server.set_idle_unload(settings.idle_run);
    server.set_data_limits(settings.data_limits);
    let listener = TcpListener::bind(&settings.addr).await.with_context(|| {
        format!(
            "binding {} (another process uses the port? `mozaiks doctor` says which)",
            settings.addr
        )
    })?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("mozaiks listening on http://{addr}");
    tracing::info!(%addr, store = config.store.describe(), "serving");
    // A first load that fails (the workflows folder went away, the watcher
    // cannot start) stops the server as a failed start would.
    let load_failure = Arc::new(std::sync::Mutex::new(None));
    let stop = {
        let load_failure = Arc::clone(&load_failure);
        async move {
            let failed = async {
                match first_load.finish().await {
                    Ok(()) => std::future::pending().await,
                    Err(error) => error,
                }
            };
            tokio::select! {
                () = shutdown_signal() => {}
                error = failed => {
                    tracing::error!(%error, "loading plugins and workflows failed; stopping");
                    *load_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                }
            }
        }
    };
    mozaiks_host::serve(listener, server, &options, stop).await?;
    if let Some(error) = load_failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        return Err(error.into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The build script as an absolute path (it is run from other folders).
fn watch_path(script: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(script).unwrap_or_else(|_| script.to_owned())
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
    tracing::info!("shutdown signal received");
}
