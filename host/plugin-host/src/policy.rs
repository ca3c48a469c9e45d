//! Manifest → sandbox: what a call's `WasiCtx` may reach. Deny by default.
//!
//! With an empty manifest a guest has no preopened directories, no
//! environment variables, no arguments, no stdin, no UDP, no name lookup, and
//! every TCP connect or bind is refused (and remembered, so the error can say
//! which destination to grant).

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::error::LoadError;
use crate::manifest::{DirMode, Manifest, SecretDecl, split_host_port};
use crate::outbound::OutboundPolicy;
use crate::stdio::Capture;

/// A directory grant, opened once at load. Every call's preopen is this
/// handle, never the grant's path again: what is at the path later (a link
/// another plugin planted, a renamed directory) changes nothing.
#[derive(Debug, Clone)]
struct Mount {
    dir: Arc<std::fs::File>,
    /// Where it was at load, for messages.
    path: PathBuf,
    guest: String,
    mode: DirMode,
}

impl Mount {
    /// A path that opens this very handle. On Unix it is the kernel's link
    /// to the open file (`/proc/self/fd/N`, `/dev/fd/N`), which names the
    /// directory itself rather than a path to it; elsewhere it is the path
    /// checked at load, opened again.
    fn handle_path(&self) -> PathBuf {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            #[cfg(target_os = "linux")]
            const FD_DIR: &str = "/proc/self/fd";
            #[cfg(not(target_os = "linux"))]
            const FD_DIR: &str = "/dev/fd";
            Path::new(FD_DIR).join(self.dir.as_raw_fd().to_string())
        }
        #[cfg(not(unix))]
        {
            self.path.clone()
        }
    }
}

/// The sandbox of one plugin, resolved once at load time.
#[derive(Debug, Clone)]
pub(crate) struct SandboxPolicy {
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    connect: Arc<HashSet<SocketAddr>>,
    lookup: bool,
    outbound: Arc<OutboundPolicy>,
    secrets: Arc<BTreeMap<String, SecretDecl>>,
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
        let mut opened: Vec<(PathBuf, String)> = Vec::new();
        for grant in &caps.fs {
            let capability = format!("fs {} -> {}", grant.host.display(), grant.guest);
            let (dir, path) = open_grant(&grant.host, base_dir)
                .map_err(|cause| grant_error(capability.clone(), cause))?;
            if let Some((other, other_capability)) = opened
                .iter()
                .find(|(other, _)| other.starts_with(&path) || path.starts_with(other))
            {
                return Err(grant_error(
                    capability,
                    format!(
                        "{} overlaps `{other_capability}` ({}): grants of one plugin must not \
                         contain one another; grant the outer directory once",
                        path.display(),
                        other.display()
                    ),
                ));
            }
            opened.push((path.clone(), capability));
            mounts.push(Mount {
                dir: Arc::new(dir),
                path,
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
        let outbound = OutboundPolicy::of(manifest).map_err(|(index, why)| {
            grant_error(format!("capabilities.allowed_outbound_hosts[{index}]"), why)
        })?;
        Ok(Self {
            env,
            mounts,
            connect: Arc::new(connect),
            lookup,
            outbound: Arc::new(outbound),
            secrets: Arc::new(manifest.secrets.clone()),
        })
    }

    /// The secrets the plugin declares.
    pub(crate) fn secrets(&self) -> &Arc<BTreeMap<String, SecretDecl>> {
        &self.secrets
    }

    /// Where the plugin's HTTP requests may go, and their limits.
    pub(crate) fn outbound(&self) -> &Arc<OutboundPolicy> {
        &self.outbound
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
            b.preopened_dir(m.handle_path(), &m.guest, perms)
                .map_err(|e| {
                    std::io::Error::other(format!("granted {}: {e:#}", m.path.display()))
                })?;
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

/// Opens a grant's directory once: `host` as written in the manifest,
/// relative to the (resolved) plugin folder `base_dir`. Refused when the path
/// goes through a symbolic link, so a link another plugin planted inside its
/// own writable grant can never become this plugin's root; and checked after
/// opening, so a swap between the check and the open is caught too. Returns
/// the handle and the path it was found at, without `.` or `..`.
fn open_grant(host: &Path, base_dir: &Path) -> Result<(std::fs::File, PathBuf), String> {
    let full = if host.is_absolute() {
        host.to_owned()
    } else {
        let base = base_dir
            .canonicalize()
            .map_err(|e| format!("the plugin folder {}: {e}", base_dir.display()))?;
        base.join(host)
    };
    let path = normalize(&full);
    let dir = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = dir
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    let real = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if real != path {
        return Err(format!(
            "{} goes through a symbolic link (it leads to {}): name the directory itself",
            path.display(),
            real.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let now =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(format!(
                "{} changed while it was being opened; load again",
                path.display()
            ));
        }
    }
    Ok((dir, path))
}

/// `path` without `.` and `..` components, lexically (symbolic links are
/// refused separately, so this is the directory's real path when accepted).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
