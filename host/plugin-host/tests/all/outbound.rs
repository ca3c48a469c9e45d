//! Outbound HTTP (`wasi:http`) against local HTTP and HTTPS servers on
//! loopback: the allow-list, the DNS check, redirects, limits and the CPU
//! deadline. Only loopback traffic: every refused case is refused before a
//! connection, and every allowed one goes to a server the test started.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mozaiks_plugin_host::harness::Harness;
use mozaiks_plugin_host::{
    CallError, EngineConfig, Manifest, OutboundConfig, Plugin, PluginEngine,
};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{engine, repo_root};

fn fetcher_dir() -> PathBuf {
    repo_root().join("tests/components/fetcher")
}

/// A test server on 127.0.0.1 that answers by path:
/// `/ok` 200 "hello"; `/redirect/<url>` 302 to `<url>`; `/big` 2 MiB with no
/// length; `/declared-big` a Content-Length of 2 MiB; `/slow` after 10 s.
/// Counts the connections it accepted.
struct Server {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

async fn respond<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let reply = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    if path == "/ok" {
        let _ = stream
            .write_all(reply("200 OK", "", "hello").as_bytes())
            .await;
    } else if let Some(to) = path.strip_prefix("/redirect/") {
        let text = reply("302 Found", &format!("location: {to}\r\n"), "");
        let _ = stream.write_all(text.as_bytes()).await;
    } else if path == "/big" {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..32 {
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
    } else if path == "/declared-big" {
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 2097152\r\nconnection: close\r\n\r\n";
        let _ = stream.write_all(text.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let _ = stream
            .write_all(reply("200 OK", "", "late").as_bytes())
            .await;
    } else {
        let _ = stream
            .write_all(reply("404 Not Found", "", "").as_bytes())
            .await;
    }
    let _ = stream.shutdown().await;
}

impl Server {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                respond(stream).await;
                            }
                        }
                        None => respond(stream).await,
                    }
                });
            }
        });
        Self { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The fetcher under a manifest listing `hosts`, with `edit` applied.
async fn fetcher_on(
    engine: &PluginEngine,
    hosts: &[String],
    edit: impl FnOnce(&mut Manifest),
) -> Plugin {
    let wasm = fetcher_dir().join("fetcher.wasm");
    assert!(
        wasm.is_file(),
        "{} is missing: run scripts/build-plugins",
        wasm.display()
    );
    let mut manifest = Manifest::new("fetcher");
    manifest.capabilities.allowed_outbound_hosts = hosts.to_vec();
    edit(&mut manifest);
    engine
        .load(manifest, fetcher_dir().join("plugin.toml"), &wasm)
        .await
        .unwrap()
}

async fn fetch(plugin: &Plugin, url: &str) -> mozaiks_plugin_host::harness::CallReport {
    Harness::new()
        .call(plugin, "fetch", &json!({ "url": url }))
        .await
}

#[track_caller]
fn denied(result: &Result<mozaiks_plugin_host::ToolOutcome, CallError>) -> String {
    match result {
        Err(CallError::CapabilityDenied { capability, .. }) => {
            assert!(
                capability.contains("allowed_outbound_hosts"),
                "the refusal names the manifest key: {capability}"
            );
            capability.clone()
        }
        other => panic!("expected CapabilityDenied, got {other:?}"),
    }
}

#[track_caller]
fn ok(result: &Result<mozaiks_plugin_host::ToolOutcome, CallError>) -> &Value {
    match result {
        Ok(Ok(value)) => value,
        other => panic!("expected a result, got {other:?}"),
    }
}

#[tokio::test]
async fn an_allowed_call_goes_through_and_others_are_refused_before_connecting() {
    let server = Server::start(None).await;
    let port = server.port;
    let plugin = fetcher_on(&engine(), &[format!("http://127.0.0.1:{port}")], |_| {}).await;

    let report = fetch(&plugin, &format!("http://127.0.0.1:{port}/ok")).await;
    let value = ok(&report.result);
    assert_eq!(value["status"], 200);
    assert_eq!(value["body"], "hello");
    assert_eq!(server.accepted(), 1);

    // Same address, other scheme or port: not listed.
    let other = Server::start(None).await;
    let report = fetch(&plugin, &format!("http://127.0.0.1:{}/ok", other.port)).await;
    let why = denied(&report.result);
    assert!(why.contains(&format!("127.0.0.1:{}", other.port)), "{why}");
    assert_eq!(other.accepted(), 0, "refused before a connection is made");
    let report = fetch(&plugin, &format!("https://127.0.0.1:{port}/ok")).await;
    denied(&report.result);

    // A plugin without the grant reaches nothing.
    let bare = fetcher_on(&engine(), &[], |_| {}).await;
    let report = fetch(&bare, &format!("http://127.0.0.1:{port}/ok")).await;
    denied(&report.result);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_redirect_to_an_unlisted_host_is_refused() {
    let server = Server::start(None).await;
    let elsewhere = Server::start(None).await;
    let port = server.port;
    let plugin = fetcher_on(&engine(), &[format!("http://127.0.0.1:{port}")], |_| {}).await;

    // A redirect within the allowed host is followed.
    let inside = format!("http://127.0.0.1:{port}/redirect/http://127.0.0.1:{port}/ok");
    let value = ok(&fetch(&plugin, &inside).await.result).clone();
    assert_eq!(value["body"], "hello");
    assert_eq!(server.accepted(), 2);

    let outside = format!(
        "http://127.0.0.1:{port}/redirect/http://127.0.0.1:{}/ok",
        elsewhere.port
    );
    let report = fetch(&plugin, &outside).await;
    let why = denied(&report.result);
    assert!(why.contains(&elsewhere.port.to_string()), "{why}");
    assert_eq!(elsewhere.accepted(), 0);
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_needs_the_address_listed() {
    let server = Server::start(None).await;
    let port = server.port;
    let by_name = fetcher_on(&engine(), &[format!("http://localhost:{port}")], |_| {}).await;
    let report = fetch(&by_name, &format!("http://localhost:{port}/ok")).await;
    let why = denied(&report.result);
    assert!(why.contains("not public"), "{why}");
    assert!(
        why.contains(&format!("http://127.0.0.1:{port}")),
        "says what to list: {why}"
    );
    assert_eq!(
        server.accepted(),
        0,
        "the DNS answer is checked before connecting"
    );

    let both = fetcher_on(
        &engine(),
        &[
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
            format!("http://[::1]:{port}"),
        ],
        |_| {},
    )
    .await;
    let report = fetch(&both, &format!("http://localhost:{port}/ok")).await;
    assert_eq!(ok(&report.result)["body"], "hello");
}

#[tokio::test]
async fn an_oversized_response_is_cut_off_at_the_limit() {
    let server = Server::start(None).await;
    let port = server.port;
    let plugin = fetcher_on(&engine(), &[format!("http://127.0.0.1:{port}")], |m| {
        m.limits.max_response_kib = 64;
    })
    .await;
    for path in ["big", "declared-big"] {
        let report = fetch(&plugin, &format!("http://127.0.0.1:{port}/{path}")).await;
        match &report.result {
            Ok(Err(e)) => assert!(
                e.to_string().contains("max_response_kib")
                    || e.to_string().contains("body size exceeds limit: 65536"),
                "{e}"
            ),
            other => panic!("{path}: expected the tool's error, got {other:?}"),
        }
        assert!(
            report
                .logs
                .iter()
                .any(|r| r.message.contains("limits.max_response_kib")),
            "{path}: the host says which limit it applied: {:?}",
            report.logs
        );
    }
}

#[tokio::test]
async fn a_slow_server_hits_the_request_deadline_not_the_cpu_deadline() {
    let server = Server::start(None).await;
    let port = server.port;
    let plugin = fetcher_on(&engine(), &[format!("http://127.0.0.1:{port}")], |m| {
        m.limits.http_deadline_ms = 1500;
        m.limits.deadline_ms = 500;
    })
    .await;
    let started = Instant::now();
    let report = fetch(&plugin, &format!("http://127.0.0.1:{port}/slow")).await;
    let took = started.elapsed();
    match &report.result {
        Ok(Err(e)) => assert!(e.to_string().contains("http_deadline_ms"), "{e}"),
        other => panic!("expected the tool's error, got {other:?}"),
    }
    assert!(
        report
            .logs
            .iter()
            .any(|r| r.message.contains("hit limits.http_deadline_ms (1500 ms)")),
        "the host says which limit it applied: {:?}",
        report.logs
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "the request deadline (1.5 s) ended it, not the CPU deadline (0.5 s) nor the server: {took:?}"
    );
}

#[tokio::test]
async fn waiting_on_the_network_does_not_use_the_cpu_deadline() {
    let server = Server::start(None).await;
    let port = server.port;
    // 300 ms of CPU, then a 1 s wait on the server: over a 600 ms deadline
    // in wall time, within it in CPU time.
    let plugin = fetcher_on(&engine(), &[format!("http://127.0.0.1:{port}")], |m| {
        m.limits.deadline_ms = 600;
        m.limits.http_deadline_ms = 1000;
    })
    .await;
    let report = Harness::new()
        .call(
            &plugin,
            "spin_then_fetch",
            &json!({ "spin_ms": 300, "url": format!("http://127.0.0.1:{port}/slow") }),
        )
        .await;
    match &report.result {
        Ok(Err(e)) => assert!(e.to_string().contains("http_deadline_ms"), "{e}"),
        other => panic!("expected the request deadline, not the CPU one: {other:?}"),
    }
    // And CPU time still counts.
    let report = Harness::new()
        .call(
            &plugin,
            "spin_then_fetch",
            &json!({ "spin_ms": 2000, "url": format!("http://127.0.0.1:{port}/ok") }),
        )
        .await;
    assert!(
        matches!(report.result, Err(CallError::DeadlineExceeded { .. })),
        "{:?}",
        report.result
    );
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made by
/// `openssl` for this test, and a server acceptor using it.
fn test_certificate(dir: &Path) -> (PathBuf, tokio_rustls::TlsAcceptor) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    std::fs::create_dir_all(dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian's openssl package) makes the test's certificate");
    assert!(status.success());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    (cert, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn https_with_a_ca_from_the_configuration() {
    let dir = std::env::temp_dir().join(format!("mozaiks-outbound-tls-{}", std::process::id()));
    let (cert, acceptor) = test_certificate(&dir);
    let server = Server::start(Some(acceptor)).await;
    let port = server.port;
    let hosts = [format!("https://127.0.0.1:{port}")];
    let url = format!("https://127.0.0.1:{port}/ok");

    // Without the test's CA the certificate is not trusted.
    let untrusting = fetcher_on(&engine(), &hosts, |_| {}).await;
    let report = fetch(&untrusting, &url).await;
    assert!(matches!(report.result, Ok(Err(_))), "{:?}", report.result);

    let trusting = PluginEngine::new(EngineConfig {
        outbound: OutboundConfig {
            extra_ca_files: vec![cert.clone()],
        },
        max_concurrent_calls: 4,
        ..EngineConfig::default()
    })
    .unwrap();
    let plugin = fetcher_on(&trusting, &hosts, |_| {}).await;
    let report = fetch(&plugin, &url).await;
    assert_eq!(ok(&report.result)["body"], "hello");

    // An extra CA file that is not there stops the engine, naming it.
    let missing = dir.join("missing.pem");
    let err = PluginEngine::new(EngineConfig {
        outbound: OutboundConfig {
            extra_ca_files: vec![missing.clone()],
        },
        max_concurrent_calls: 1,
        ..EngineConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_call_has_at_most_its_limit_of_requests_in_flight() {
    let server = Server::start(None).await;
    let port = server.port;
    let url = format!("http://127.0.0.1:{port}/ok");
    let urls = json!({ "urls": [url, url, url] });
    for (limit, expected) in [
        (
            1,
            [
                "ok 200",
                "ErrorCode::ConnectionLimitReached",
                "ErrorCode::ConnectionLimitReached",
            ],
        ),
        (3, ["ok 200", "ok 200", "ok 200"]),
    ] {
        let plugin = fetcher_on(&engine(), &[format!("http://127.0.0.1:{port}")], |m| {
            m.limits.max_concurrent_requests = limit;
        })
        .await;
        let report = Harness::new().call(&plugin, "fetch_many", &urls).await;
        let outcomes = ok(&report.result)["outcomes"].clone();
        assert_eq!(outcomes, json!(expected), "limit {limit}");
    }
}

/// An HTTPS server on 127.0.0.1 built on hyper's server, offering `alpn`
/// (`h2`, `http/1.1`, or both): `/ok` answers "hello", `/big` 2 MiB,
/// `/slow` an empty body after 10 s.
/// Records the HTTP version of every request it served.
struct VersionedServer {
    port: u16,
    versions: Arc<std::sync::Mutex<Vec<http::Version>>>,
}

impl VersionedServer {
    async fn start(acceptor_config: rustls::ServerConfig, alpn: &[&[u8]]) -> Self {
        use http_body_util::Full;
        use hyper::service::service_fn;
        use wasmtime_wasi_http::io::TokioIo;

        let mut config = acceptor_config;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&versions);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    let service = service_fn(move |request: http::Request<_>| {
                        seen.lock().unwrap().push(request.version());
                        let body = match request.uri().path() {
                            "/ok" => bytes::Bytes::from_static(b"hello"),
                            "/big" => bytes::Bytes::from(vec![b'x'; 2 * 1024 * 1024]),
                            _ => bytes::Bytes::new(),
                        };
                        let slow = request.uri().path() == "/slow";
                        async move {
                            if slow {
                                tokio::time::sleep(Duration::from_secs(10)).await;
                            }
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(body)))
                        }
                    });
                    let io = TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioSpawner)
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                });
            }
        });
        Self { port, versions }
    }

    fn versions(&self) -> Vec<http::Version> {
        self.versions.lock().unwrap().clone()
    }
}

/// Runs the test server's HTTP/2 tasks on tokio.
#[derive(Clone, Copy)]
struct TokioSpawner;

impl<F> hyper::rt::Executor<F> for TokioSpawner
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(future);
    }
}

/// The test's CA as a trusting engine, and the server's TLS config.
fn trusting_engine(dir: &Path) -> (PluginEngine, rustls::ServerConfig) {
    let (cert, _acceptor) = test_certificate(dir);
    let config = server_config(dir);
    let engine = PluginEngine::new(EngineConfig {
        outbound: OutboundConfig {
            extra_ca_files: vec![cert],
        },
        max_concurrent_calls: 4,
        ..EngineConfig::default()
    })
    .unwrap();
    (engine, config)
}

/// The server config for the certificate `test_certificate` wrote in `dir`.
fn server_config(dir: &Path) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}

#[tokio::test]
async fn https_negotiates_http2_by_alpn_and_falls_back_to_http1() {
    let dir = std::env::temp_dir().join(format!("mozaiks-outbound-h2-{}", std::process::id()));
    let (engine, config) = trusting_engine(&dir);

    // A server offering h2 is spoken to over HTTP/2.
    let h2 = VersionedServer::start(config.clone(), &[b"h2", b"http/1.1"]).await;
    let hosts = [format!("https://127.0.0.1:{}", h2.port)];
    let plugin = fetcher_on(&engine, &hosts, |m| m.limits.max_response_kib = 64).await;
    let report = fetch(&plugin, &format!("https://127.0.0.1:{}/ok", h2.port)).await;
    let value = ok(&report.result);
    assert_eq!(value["status"], 200);
    assert_eq!(value["body"], "hello");
    assert_eq!(h2.versions(), vec![http::Version::HTTP_2]);

    // The response size limit holds over HTTP/2 too.
    let report = fetch(&plugin, &format!("https://127.0.0.1:{}/big", h2.port)).await;
    assert!(matches!(report.result, Ok(Err(_))), "{:?}", report.result);
    assert!(
        report
            .logs
            .iter()
            .any(|r| r.message.contains("limits.max_response_kib")),
        "{:?}",
        report.logs
    );

    // So does the request deadline.
    let hurried = fetcher_on(&engine, &hosts, |m| m.limits.http_deadline_ms = 1000).await;
    let started = Instant::now();
    let report = fetch(&hurried, &format!("https://127.0.0.1:{}/slow", h2.port)).await;
    match &report.result {
        Ok(Err(e)) => assert!(e.to_string().contains("http_deadline_ms"), "{e}"),
        other => panic!("expected the tool's error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A server that offers only HTTP/1.1 is spoken to over HTTP/1.1.
    let h1 = VersionedServer::start(config, &[b"http/1.1"]).await;
    let hosts = [format!("https://127.0.0.1:{}", h1.port)];
    let plugin = fetcher_on(&engine, &hosts, |_| {}).await;
    let report = fetch(&plugin, &format!("https://127.0.0.1:{}/ok", h1.port)).await;
    assert_eq!(ok(&report.result)["body"], "hello");
    assert_eq!(h1.versions(), vec![http::Version::HTTP_11]);

    // An unlisted host is still refused before any connection, over TLS too.
    let report = fetch(&plugin, &format!("https://127.0.0.1:{}/ok", h2.port)).await;
    denied(&report.result);
    assert_eq!(
        h2.versions().len(),
        3,
        "no fourth request reached the h2 server"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
