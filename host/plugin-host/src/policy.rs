//! Manifest → sandbox: what a call's `WasiCtx` may reach. Deny by default.
//!
//! With an empty manifest a guest has no preopened directories, no
//! environment variables, no arguments, no stdin, no UDP, no name lookup, and
//! every TCP connect or bind is refused (and remembered, so the error can say
//! which destination to grant).

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::error::LoadError;
use crate::manifest::{DirMode, Manifest, split_host_port};
use crate::stdio::Capture;

/// A directory grant with its host path resolved.
#[derive(Debug, Clone)]
struct Mount {
    host: PathBuf,
    guest: String,
    mode: DirMode,
}

/// The sandbox of one plugin, resolved once at load time.
#[derive(Debug, Clone)]
pub(crate) struct SandboxPolicy {
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    connect: Arc<HashSet<SocketAddr>>,
    lookup: bool,
}

impl SandboxPolicy {
    /// Resolves the manifest's grants: directories relative to `base_dir`,
    /// env values from this process, host names through the resolver.
    pub(crate) fn resolve(manifest: &Manifest, base_dir: &Path) -> Result<Self, LoadError> {
        let grant_error = |capability: String, cause: String| LoadError::Grant {
            plugin: manifest.id.clone(),
            capability,
            cause,
        };
        let caps = &manifest.capabilities;
        let env = caps
            .env
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
            .collect();
        let mut mounts = Vec::new();
        for grant in &caps.fs {
            let host = if grant.host.is_absolute() {
                grant.host.clone()
            } else {
                base_dir.join(&grant.host)
            };
            if !host.is_dir() {
                return Err(grant_error(
                    format!("fs {} -> {}", grant.host.display(), grant.guest),
                    format!("{} is not a directory", host.display()),
                ));
            }
            mounts.push(Mount {
                host,
                guest: grant.guest.clone(),
                mode: grant.mode,
            });
        }
        let mut connect = HashSet::new();
        let mut lookup = false;
        for dest in &caps.net {
            let (host, port) = split_host_port(dest)
                .ok_or_else(|| grant_error(format!("net {dest}"), "not host:port".to_owned()))?;
            lookup |= host.parse::<std::net::IpAddr>().is_err();
            let addrs = (host, port)
                .to_socket_addrs()
                .map_err(|e| grant_error(format!("net {dest}"), e.to_string()))?;
            connect.extend(addrs);
        }
        Ok(Self {
            env,
            mounts,
            connect: Arc::new(connect),
            lookup,
        })
    }

    /// A fresh `WasiCtx` for one call.
    pub(crate) fn wasi_ctx(
        &self,
        stdout: Capture,
        stderr: Capture,
        denied: Arc<Mutex<Vec<String>>>,
    ) -> std::io::Result<WasiCtx> {
        let mut b = WasiCtxBuilder::new();
        b.stdout(stdout).stderr(stderr);
        b.envs(&self.env);
        for m in &self.mounts {
            let perms = match m.mode {
                DirMode::ReadOnly => FsPerms::ReadOnly,
                DirMode::ReadWrite => FsPerms::ReadWrite,
            };
            b.preopened_dir(&m.host, &m.guest, perms)
                .map_err(std::io::Error::other)?;
        }
        let allowed = Arc::clone(&self.connect);
        b.allow_tcp(true)
            .allow_udp(false)
            .allow_ip_name_lookup(self.lookup);
        b.socket_addr_check(move |addr, usage| {
            let ok = match usage {
                SocketAddrUse::TcpConnect => allowed.contains(&addr),
                // The implicit bind to an ephemeral port that precedes a
                // connect; the connect itself is checked on its own.
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                _ => false,
            };
            if !ok {
                let what = match usage {
                    SocketAddrUse::TcpConnect => "connect to",
                    SocketAddrUse::TcpBind => "bind to",
                    SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => "listen on",
                    _ => "use UDP with",
                };
                denied
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(format!("{what} {addr}"));
            }
            Box::pin(async move { ok })
        });
        Ok(b.build())
    }
}
