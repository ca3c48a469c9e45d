//! `plugin.toml`: what a plugin is and what it may touch.
//!
//! Parsed strictly: an unknown key is an error, so a typo such as `memroy_mib`
//! can never silently fall back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ManifestError;
use crate::limits;
use crate::outbound::allow::AllowList;

/// File name of the manifest inside a plugin folder.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// A plugin's manifest, as written in `plugin.toml`.
///
/// ```toml
/// id = "planner"
/// version = "0.1.0"
/// description = "Tasks and approvals for the demo workflow"
///
/// [limits]
/// memory_mib = 64
/// deadline_ms = 5000
///
/// [capabilities]
/// allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:8080"]
/// env = ["PLANNER_REGION"]
/// net = ["127.0.0.1:8080"]
/// [[capabilities.fs]]
/// host = "data"
/// guest = "/data"
/// mode = "read-only"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Plugin id: the folder name, and the stem of its `.wasm` file.
    pub id: String,
    /// The plugin's own version, shown to operators.
    pub version: String,
    /// One line on what the plugin offers.
    #[serde(default)]
    pub description: String,
    /// Resource limits of each call.
    #[serde(default)]
    pub limits: Limits,
    /// What the plugin may reach beyond its WIT imports. Nothing by default.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Secrets the plugin's tools may read through the `secrets` import,
    /// by name (`[secrets.API_TOKEN]`). Values come from the server.
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, SecretDecl>,
}

/// One secret a plugin declares.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    /// Whether the plugin cannot work without it: `mozaiks doctor` reports
    /// a required secret with no value, and `secrets.get` fails for it.
    #[serde(default = "yes")]
    pub required: bool,
    /// What it is for, shown to operators.
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

/// Resource limits applied to every call of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory a call may use, in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// CPU time a call may use, in milliseconds. Time spent waiting for the
    /// user in `ui.ask` does not count.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u32,
    /// Largest result a call may return, in KiB of JSON text.
    #[serde(default = "default_max_output_kib")]
    pub max_output_kib: u32,
    /// Wall time one outbound HTTP request may take, from sending it to the
    /// last byte of its response, in milliseconds. Time with a request in
    /// flight does not count against `deadline_ms`.
    #[serde(default = "default_http_deadline_ms")]
    pub http_deadline_ms: u32,
    /// Largest body of one outbound HTTP response, in KiB.
    #[serde(default = "default_max_response_kib")]
    pub max_response_kib: u32,
    /// Outbound HTTP requests one call may have in flight at once.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: default_memory_mib(),
            deadline_ms: default_deadline_ms(),
            max_output_kib: default_max_output_kib(),
            http_deadline_ms: default_http_deadline_ms(),
            max_response_kib: default_max_response_kib(),
            max_concurrent_requests: default_max_concurrent_requests(),
        }
    }
}

fn default_memory_mib() -> u32 {
    limits::DEFAULT_MEMORY_MIB
}
fn default_deadline_ms() -> u32 {
    limits::DEFAULT_DEADLINE_MS
}
fn default_max_output_kib() -> u32 {
    limits::DEFAULT_MAX_OUTPUT_KIB
}
fn default_http_deadline_ms() -> u32 {
    limits::DEFAULT_HTTP_DEADLINE_MS
}
fn default_max_response_kib() -> u32 {
    limits::DEFAULT_MAX_RESPONSE_KIB
}
fn default_max_concurrent_requests() -> u32 {
    limits::DEFAULT_MAX_CONCURRENT_REQUESTS
}

/// Capabilities granted to a plugin. Everything not listed is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Names of host environment variables the plugin may read. Their values
    /// are taken from the host process when the plugin is loaded.
    #[serde(default)]
    pub env: Vec<String>,
    /// Outgoing TCP destinations as `host:port`. Names are resolved when the
    /// plugin is loaded.
    #[serde(default)]
    pub net: Vec<String>,
    /// Host directories mounted into the plugin.
    #[serde(default)]
    pub fs: Vec<DirGrant>,
    /// Where outbound HTTP requests (`wasi:http`) may go, as
    /// `scheme://host[:port]` (`https://api.example.com`,
    /// `https://*.example.com`, `http://127.0.0.1:8080`). Addresses that
    /// are not public are reached only when listed as IP literals, whatever
    /// name leads to them. Empty: no request leaves.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
}

impl Capabilities {
    /// Whether a call can change anything outside the host through these
    /// grants: a network destination, an outbound HTTP host or a writable
    /// directory. (Environment variables and read-only directories are only
    /// read.)
    pub fn reach_outside(&self) -> bool {
        !self.net.is_empty()
            || !self.allowed_outbound_hosts.is_empty()
            || self.fs.iter().any(|grant| grant.mode == DirMode::ReadWrite)
    }
}

/// One host directory made visible to a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// Directory on the host; relative paths are relative to the plugin folder.
    pub host: PathBuf,
    /// Where the plugin sees it, e.g. `/data`.
    pub guest: String,
    /// Whether the plugin may write.
    #[serde(default)]
    pub mode: DirMode,
}

/// Access mode of a [`DirGrant`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirMode {
    /// Read files and list directories.
    #[default]
    ReadOnly,
    /// Also create, write and remove.
    ReadWrite,
}

impl Manifest {
    /// A manifest with the given id, version `0.0.0`, default limits and no
    /// capabilities; for embedders and tests that build manifests in code.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            version: "0.0.0".to_owned(),
            description: String::new(),
            limits: Limits::default(),
            capabilities: Capabilities::default(),
            secrets: Default::default(),
        }
    }

    /// Parses manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let manifest: Self = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: path.to_owned(),
            message: source.to_string(),
        })?;
        manifest.check(path)?;
        Ok(manifest)
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn check(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |field: &str, message: String| ManifestError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };
        if !is_valid_id(&self.id) {
            return Err(invalid(
                "id",
                format!(
                    "`{}` is not a valid plugin id: use 1 to 64 lowercase letters, digits, `-` and `_`",
                    self.id
                ),
            ));
        }
        let l = &self.limits;
        if !(1..=limits::MAX_MEMORY_MIB).contains(&l.memory_mib) {
            return Err(invalid(
                "limits.memory_mib",
                format!("{} is outside 1..={}", l.memory_mib, limits::MAX_MEMORY_MIB),
            ));
        }
        if !(1..=limits::MAX_DEADLINE_MS).contains(&l.deadline_ms) {
            return Err(invalid(
                "limits.deadline_ms",
                format!(
                    "{} is outside 1..={}",
                    l.deadline_ms,
                    limits::MAX_DEADLINE_MS
                ),
            ));
        }
        if !(1..=limits::MAX_OUTPUT_KIB).contains(&l.max_output_kib) {
            return Err(invalid(
                "limits.max_output_kib",
                format!(
                    "{} is outside 1..={}",
                    l.max_output_kib,
                    limits::MAX_OUTPUT_KIB
                ),
            ));
        }
        for (field, value, max) in [
            (
                "limits.http_deadline_ms",
                l.http_deadline_ms,
                limits::MAX_HTTP_DEADLINE_MS,
            ),
            (
                "limits.max_response_kib",
                l.max_response_kib,
                limits::MAX_RESPONSE_KIB,
            ),
            (
                "limits.max_concurrent_requests",
                l.max_concurrent_requests,
                limits::MAX_CONCURRENT_REQUESTS,
            ),
        ] {
            if !(1..=max).contains(&value) {
                return Err(invalid(field, format!("{value} is outside 1..={max}")));
            }
        }
        if let Err((index, why)) = AllowList::parse(&self.capabilities.allowed_outbound_hosts) {
            return Err(invalid(
                &format!("capabilities.allowed_outbound_hosts[{index}]"),
                why,
            ));
        }
        for name in self.secrets.keys() {
            let valid = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(invalid(
                    &format!("secrets.{name}"),
                    "a secret name is 1 to 64 letters, digits and `_`".to_owned(),
                ));
            }
        }
        for (index, grant) in self.capabilities.fs.iter().enumerate() {
            if !grant.guest.starts_with('/') {
                return Err(invalid(
                    &format!("capabilities.fs[{index}].guest"),
                    format!(
                        "`{}` must be an absolute guest path such as /data",
                        grant.guest
                    ),
                ));
            }
        }
        for (index, name) in self.capabilities.env.iter().enumerate() {
            if name.is_empty() || name.contains('=') {
                return Err(invalid(
                    &format!("capabilities.env[{index}]"),
                    format!("`{name}` is not an environment variable name"),
                ));
            }
        }
        for (index, dest) in self.capabilities.net.iter().enumerate() {
            if split_host_port(dest).is_none() {
                return Err(invalid(
                    &format!("capabilities.net[{index}]"),
                    format!("`{dest}` is not `host:port`"),
                ));
            }
        }
        Ok(())
    }
}

fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Splits `host:port` (IPv6 as `[::1]:80`) into its parts.
pub(crate) fn split_host_port(dest: &str) -> Option<(&str, u16)> {
    let (host, port) = dest.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugins/x/plugin.toml"))
    }

    #[test]
    fn defaults_are_strict() {
        let m = parse("id = \"x\"\nversion = \"1.0.0\"").unwrap();
        assert_eq!(m.limits.memory_mib, 64);
        assert_eq!(m.limits.deadline_ms, 5000);
        assert!(m.capabilities.env.is_empty());
        assert!(m.capabilities.net.is_empty());
        assert!(m.capabilities.fs.is_empty());
        assert!(m.capabilities.allowed_outbound_hosts.is_empty());
        assert_eq!(m.limits.http_deadline_ms, 30_000);
        assert_eq!(m.limits.max_response_kib, 10 * 1024);
        assert_eq!(m.limits.max_concurrent_requests, 4);
    }

    #[test]
    fn only_network_http_and_writable_directories_reach_outside() {
        let head = "id = \"x\"\nversion = \"1\"\n";
        let reaches = |capabilities: &str| {
            parse(&format!("{head}{capabilities}"))
                .unwrap()
                .capabilities
                .reach_outside()
        };
        assert!(!reaches(""));
        assert!(!reaches("[capabilities]\nenv = [\"HOME\"]"));
        assert!(!reaches(
            "[[capabilities.fs]]\nhost = \"d\"\nguest = \"/d\"\nmode = \"read-only\""
        ));
        assert!(reaches(
            "[[capabilities.fs]]\nhost = \"d\"\nguest = \"/d\"\nmode = \"read-write\""
        ));
        assert!(reaches("[capabilities]\nnet = [\"127.0.0.1:9\"]"));
        assert!(reaches(
            "[capabilities]\nallowed_outbound_hosts = [\"https://api.example.com\"]"
        ));
    }

    #[test]
    fn rejects_bad_outbound_hosts_naming_the_entry() {
        let text = "id = \"x\"\nversion = \"1\"\n[capabilities]\n\
                    allowed_outbound_hosts = [\"https://ok.example\", \"example.com\"]";
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.contains("capabilities.allowed_outbound_hosts[1]"),
            "{err}"
        );
        let limit = "id = \"x\"\nversion = \"1\"\n[limits]\nmax_concurrent_requests = 0";
        let err = parse(limit).unwrap_err().to_string();
        assert!(err.contains("limits.max_concurrent_requests"), "{err}");
    }

    #[test]
    fn rejects_unknown_keys_naming_the_file() {
        let err = parse("id = \"x\"\nversion = \"1\"\n[limits]\nmemroy_mib = 3").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("plugins/x/plugin.toml"), "{text}");
        assert!(text.contains("memroy_mib"), "{text}");
    }

    #[test]
    fn rejects_out_of_range_limits_naming_the_field() {
        let err = parse("id = \"x\"\nversion = \"1\"\n[limits]\nmemory_mib = 0").unwrap_err();
        assert!(err.to_string().contains("limits.memory_mib"), "{err}");
    }

    #[test]
    fn rejects_relative_guest_paths_and_bad_destinations() {
        let fs = "id = \"x\"\nversion = \"1\"\n[[capabilities.fs]]\nhost = \"d\"\nguest = \"d\"";
        assert!(
            parse(fs)
                .unwrap_err()
                .to_string()
                .contains("capabilities.fs[0].guest")
        );
        let net = "id = \"x\"\nversion = \"1\"\n[capabilities]\nnet = [\"example.com\"]";
        assert!(
            parse(net)
                .unwrap_err()
                .to_string()
                .contains("capabilities.net[0]")
        );
    }

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("a.b:80"), Some(("a.b", 80)));
        assert_eq!(split_host_port("[::1]:9"), Some(("::1", 9)));
        assert_eq!(split_host_port("a.b"), None);
    }
}
