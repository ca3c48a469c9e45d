//! Sends one `wasi:http` request for a guest: the allow-list, the DNS
//! check, TLS, and the per-request limits, all before or around the one
//! connection made to a checked address.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::allow::{Host, KEY, Scheme, Target};
use super::{OutboundPolicy, TlsRoots};
use crate::ports::{LogLevel, LogRecord, LogSource, Ports};

/// Time spent with at least one request of the call in flight: the
/// network's share of the call's wall time, which the CPU deadline leaves
/// out.
#[derive(Debug, Default)]
pub(crate) struct NetworkClock {
    inner: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    in_flight: u32,
    since: Option<Instant>,
    total: Duration,
}

impl NetworkClock {
    /// Time waited on the network so far, the current wait included.
    pub(crate) fn waited(&self) -> Duration {
        let state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.total + state.since.map(|s| s.elapsed()).unwrap_or_default()
    }

    fn start(self: &Arc<Self>) -> InFlight {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if state.in_flight == 0 {
            state.since = Some(Instant::now());
        }
        state.in_flight += 1;
        InFlight(Arc::clone(self))
    }
}

/// One request in flight; ends its share of the wait when dropped.
#[derive(Debug)]
struct InFlight(Arc<NetworkClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0
            && let Some(since) = state.since.take()
        {
            state.total += since.elapsed();
        }
    }
}

/// The `wasi:http` hooks of one call.
pub(crate) struct OutboundCall {
    policy: Arc<OutboundPolicy>,
    tls: TlsRoots,
    permits: Arc<Semaphore>,
    clock: Arc<NetworkClock>,
    denied: Arc<Mutex<Vec<String>>>,
    report: Reporter,
}

impl OutboundCall {
    /// Hooks for one call of `plugin`'s `function`; refusals are added to
    /// `denied` (the call turns them into `CapabilityDenied`), limit hits are
    /// logged as the call's warnings.
    pub(crate) fn new(
        policy: Arc<OutboundPolicy>,
        tls: TlsRoots,
        denied: Arc<Mutex<Vec<String>>>,
        ports: &Ports,
        scope: (String, String, String),
    ) -> Self {
        let permits = Arc::new(Semaphore::new(policy.max_concurrent));
        Self {
            policy,
            tls,
            permits,
            clock: Arc::default(),
            denied,
            report: Reporter {
                log: Arc::clone(&ports.log),
                plugin: scope.0,
                function: scope.1,
                chat_id: scope.2,
            },
        }
    }

    /// The call's network clock, for the CPU budget.
    pub(crate) fn clock(&self) -> Arc<NetworkClock> {
        Arc::clone(&self.clock)
    }
}

/// Logs what the host did to a request as the call's own warning.
#[derive(Clone)]
struct Reporter {
    log: Arc<dyn crate::ports::LogSink>,
    plugin: String,
    function: String,
    chat_id: String,
}

impl Reporter {
    fn warn(&self, message: String) {
        self.log.log(LogRecord {
            plugin: self.plugin.clone(),
            function: self.function.clone(),
            chat_id: self.chat_id.clone(),
            level: LogLevel::Warn,
            source: LogSource::Log,
            message,
            fields: Default::default(),
        });
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for OutboundCall {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = Arc::clone(&self.policy);
        let tls = self.tls.clone();
        let denied = Arc::clone(&self.denied);
        let report = self.report.clone();
        let clock = Arc::clone(&self.clock);
        let permit = Arc::clone(&self.permits).try_acquire_owned();
        Box::new(async move {
            let described = format!("{} {}", request.method(), request.uri());
            let deny = |why: String| {
                denied
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(why);
                HttpError::HttpRequestDenied
            };
            let Some(target) = Target::of(request.uri()) else {
                return Err(deny(format!(
                    "{described}: not an http or https URL with a host ({KEY})"
                )));
            };
            if !policy.allow.allows(&target) {
                return Err(deny(format!("{target} is not listed in {KEY}")));
            }
            let Ok(permit) = permit else {
                report.warn(format!(
                    "{described} refused: this call already has {} requests in flight, \
                     its limits.max_concurrent_requests",
                    policy.max_concurrent
                ));
                return Err(HttpError::ConnectionLimitReached);
            };
            let in_flight = clock.start();
            let deadline = Instant::now() + policy.deadline;
            let sent = tokio::time::timeout_at(
                deadline.into(),
                connect_and_send(request, &target, &policy, &tls, &deny),
            )
            .await;
            let response = match sent {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(e),
                Err(_elapsed) => {
                    report.warn(format!(
                        "{described} hit limits.http_deadline_ms ({} ms) before the response \
                         headers arrived",
                        policy.deadline.as_millis()
                    ));
                    return Err(HttpError::HttpResponseTimeout);
                }
            };
            let (parts, incoming) = response.into_parts();
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > policy.max_response_bytes) {
                report.warn(format!(
                    "{described}: the response declares {} bytes, more than \
                     limits.max_response_kib ({} bytes)",
                    declared.unwrap_or_default(),
                    policy.max_response_bytes
                ));
                return Err(HttpError::HttpResponseBodySize(declared));
            }
            let body = GuardedBody {
                inner: incoming,
                received: 0,
                limit: policy.max_response_bytes,
                deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
                described,
                report,
                deadline_ms: policy.deadline.as_millis(),
                held: Some((permit, in_flight)),
            };
            let response = http::Response::from_parts(parts, body.boxed_unsync());
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// Resolves (if need be), checks every address, connects to the first
/// checked one that answers, and sends the request: over HTTP/2 when TLS
/// negotiated `h2` by ALPN, over HTTP/1.1 otherwise.
async fn connect_and_send(
    request: http::Request<WasiBody>,
    target: &Target,
    policy: &OutboundPolicy,
    tls: &TlsRoots,
    deny: &(dyn Fn(String) -> HttpError + Sync),
) -> Result<http::Response<hyper::body::Incoming>, HttpError> {
    let addrs: Vec<std::net::SocketAddr> = match &target.host {
        Host::Ip(ip) => vec![(*ip, target.port).into()],
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), target.port))
            .await
            .map_err(|e| HttpError::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    let (allowed, refused): (Vec<_>, Vec<_>) = addrs
        .into_iter()
        .partition(|addr| policy.allow.may_connect(target.scheme, *addr));
    if allowed.is_empty() {
        let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
        let how = refused
            .first()
            .map(|a| format!("list `{}://{a}` too", target.scheme))
            .unwrap_or_default();
        return Err(deny(format!(
            "{target} resolved only to addresses that are not public ({}); such an address \
             is reached only when {KEY} names it as an IP literal: {how}",
            refused.join(", ")
        )));
    }
    let mut last = None;
    let mut stream = None;
    for addr in allowed {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(stream) = stream else {
        return Err(HttpError::Connect(last.unwrap_or_else(|| {
            std::io::Error::other("no address to connect to")
        })));
    };
    match target.scheme {
        Scheme::Http => send_http1(stream, request).await,
        Scheme::Https => {
            let name = match &target.host {
                Host::Name(name) => rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|_| HttpError::HttpRequestUriInvalid)?,
                Host::Ip(ip) => rustls::pki_types::ServerName::from(*ip),
            };
            let stream = tls
                .connector()
                .connect(name, stream)
                .await
                .map_err(HttpError::Tls)?;
            // ALPN picks the version: HTTP/2 when the server offers it,
            // HTTP/1.1 otherwise (a server without ALPN speaks HTTP/1.1).
            if stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice()) {
                send_http2(stream, request).await
            } else {
                send_http1(stream, request).await
            }
        }
    }
}

/// Sends `request` over HTTP/1.1 on `stream`, in origin form.
async fn send_http1<S>(
    stream: S,
    mut request: http::Request<WasiBody>,
) -> Result<http::Response<hyper::body::Incoming>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    // The origin form goes on the wire: scheme and authority only name a proxy.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    *request.version_mut() = http::Version::HTTP_11;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(HttpError::from)?;
    // The connection is driven until the response body is read to its end
    // (or dropped, which closes it).
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("outbound connection ended: {e}");
        }
    });
    sender.send_request(request).await.map_err(HttpError::from)
}

/// Sends `request` over HTTP/2 on a TLS `stream` whose ALPN chose `h2`.
/// The absolute URI stays: its scheme and authority become the
/// `:scheme` and `:authority` pseudo-headers. One request per connection,
/// like HTTP/1.1, so the per-call limits count the same way.
async fn send_http2<S>(
    stream: S,
    mut request: http::Request<WasiBody>,
) -> Result<http::Response<hyper::body::Incoming>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    *request.version_mut() = http::Version::HTTP_2;
    // HTTP/2 carries the host in `:authority`; a `host` header next to it
    // is redundant and some servers refuse the pair.
    request.headers_mut().remove(http::header::HOST);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioSpawner, TokioIo::new(stream))
            .await
            .map_err(HttpError::from)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("outbound HTTP/2 connection ended: {e}");
        }
    });
    sender.send_request(request).await.map_err(HttpError::from)
}

/// Runs hyper's HTTP/2 background tasks on the current tokio runtime.
#[derive(Clone, Copy)]
struct TokioSpawner;

impl<F> hyper::rt::Executor<F> for TokioSpawner
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(future);
    }
}

/// A response body under the request's limits: at most `limit` bytes,
/// all of it before the deadline. Holds the request's concurrency permit
/// and its share of the network clock until it ends.
struct GuardedBody {
    inner: hyper::body::Incoming,
    received: u64,
    limit: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    described: String,
    report: Reporter,
    deadline_ms: u128,
    held: Option<(OwnedSemaphorePermit, InFlight)>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.held.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |d| d.len() as u64);
                self.received += size;
                if self.received > self.limit {
                    let message = format!(
                        "{}: the response is larger than limits.max_response_kib ({} bytes); \
                         the rest was not read",
                        self.described, self.limit
                    );
                    self.report.warn(message);
                    self.held = None;
                    return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                        self.limit,
                    )))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.held = None;
                Poll::Ready(Some(Err(HttpError::from(e))))
            }
            Poll::Ready(None) => {
                self.held = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if self.deadline.as_mut().poll(cx).is_ready() {
                    let message = format!(
                        "{} hit limits.http_deadline_ms ({} ms) while the response body was \
                         being read",
                        self.described, self.deadline_ms
                    );
                    self.report.warn(message);
                    self.held = None;
                    return Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
