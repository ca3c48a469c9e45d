//! Outbound HTTP through `wasi:http`: what a plugin may request, and under
//! which limits.
//!
//! A guest builds a request with `wasi:http/types` and hands it to
//! `wasi:http/outgoing-handler`; wasmtime-wasi-http passes it to
//! [`send::OutboundCall`], which refuses anything its manifest's
//! `allowed_outbound_hosts` does not list before a connection is made
//! (`allow`), resolves the name itself and checks every answer, connects to
//! a checked address (never to the name again), speaks TLS with the
//! server's roots, and bounds the request: `limits.http_deadline_ms` for the
//! whole exchange, `limits.max_response_kib` for the body,
//! `limits.max_concurrent_requests` in flight per call. Redirects are not
//! followed: a guest that follows one sends a new request, checked again.

pub(crate) mod allow;
pub(crate) mod send;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::manifest::Manifest;

/// Server-wide settings of outbound HTTP.
#[derive(Debug, Clone, Default)]
pub struct OutboundConfig {
    /// PEM files of extra certificate authorities trusted for `https`, on
    /// top of the system's (`MOZAIKS_OUTBOUND_CA_FILES`): a company CA, or a
    /// test's own.
    pub extra_ca_files: Vec<PathBuf>,
}

/// Why the TLS roots could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("outbound TLS: {0}")]
pub(crate) struct TlsRootsError(String);

/// The certificate authorities `https` requests trust, loaded once.
#[derive(Clone)]
pub(crate) struct TlsRoots {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsRoots").finish_non_exhaustive()
    }
}

impl TlsRoots {
    /// The system's roots (the Debian CA bundle, through
    /// `rustls-native-certs`) plus every certificate in `config`'s extra
    /// files. A system store that cannot be read leaves only the extra
    /// files; an extra file that cannot be read is an error.
    pub(crate) fn load(config: &OutboundConfig) -> Result<Self, TlsRootsError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!("outbound TLS: a system certificate store could not be read: {error}");
        }
        let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
        for file in &config.extra_ca_files {
            add_pem_file(&mut roots, file)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsRootsError(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // HTTP/2 when the server offers it, HTTP/1.1 otherwise.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    pub(crate) fn connector(&self) -> &tokio_rustls::TlsConnector {
        &self.connector
    }
}

fn add_pem_file(roots: &mut rustls::RootCertStore, file: &Path) -> Result<(), TlsRootsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .map_err(|e| TlsRootsError(format!("{}: {e}", file.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsRootsError(format!("{}: {e}", file.display())))?;
    if certs.is_empty() {
        return Err(TlsRootsError(format!(
            "{}: no PEM certificate in it",
            file.display()
        )));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| TlsRootsError(format!("{}: {e}", file.display())))?;
    }
    Ok(())
}

/// A plugin's outbound grants and limits, from its manifest.
#[derive(Debug)]
pub(crate) struct OutboundPolicy {
    pub(crate) allow: allow::AllowList,
    pub(crate) deadline: Duration,
    pub(crate) max_response_bytes: u64,
    pub(crate) max_concurrent: usize,
}

impl OutboundPolicy {
    /// The policy of `manifest`, whose entries were checked when it was
    /// parsed; an entry that does not parse is named in the error.
    pub(crate) fn of(manifest: &Manifest) -> Result<Self, (usize, String)> {
        let limits = &manifest.limits;
        Ok(Self {
            allow: allow::AllowList::parse(&manifest.capabilities.allowed_outbound_hosts)?,
            deadline: Duration::from_millis(u64::from(limits.http_deadline_ms)),
            max_response_bytes: u64::from(limits.max_response_kib) * 1024,
            max_concurrent: limits.max_concurrent_requests as usize,
        })
    }
}
