//! Outbound HTTP for tools, over `wasi:http`.
//!
//! The host sends a request only to the hosts the plugin's `plugin.toml`
//! lists in `capabilities.allowed_outbound_hosts`, under the plugin's limits
//! (`limits.http_deadline_ms`, `limits.max_response_kib`,
//! `limits.max_concurrent_requests`); see docs/tool-authors.md.
//!
//! ```no_run
//! use mozaiks_sdk::http::Request;
//!
//! # fn run() -> Result<(), mozaiks_sdk::http::HttpError> {
//! let response = Request::get("https://api.example.com/v1/items")
//!     .header("accept", "application/json")
//!     .send()?;
//! let items: serde_json::Value = response.json()?;
//! # Ok(()) }
//! ```
//!
//! Redirects (301, 302, 303, 307, 308) are followed up to
//! [`Request::max_redirects`] times, each as a new request that the host
//! checks against the allow-list again.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{self, ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// Redirects followed by default.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://` or `https://` with a host.
    InvalidUrl(String),
    /// The host refused the request before it was sent: the host is not in
    /// `allowed_outbound_hosts`, or its address is not public and not
    /// listed. The call fails with `CapabilityDenied`.
    Denied(String),
    /// More redirects than [`Request::max_redirects`].
    TooManyRedirects(u32),
    /// The request failed on the way: connection, TLS, a limit of the host
    /// (deadline, response size, requests in flight), or the protocol.
    Failed(String),
    /// The response body is not the JSON asked for.
    Json(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            Self::Denied(m) => write!(f, "request denied: {m}"),
            Self::TooManyRedirects(n) => write!(f, "more than {n} redirects"),
            Self::Failed(m) => write!(f, "request failed: {m}"),
            Self::Json(m) => write!(f, "response is not the JSON expected: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for crate::ToolError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(m) => crate::ToolError::Denied(m),
            other => crate::ToolError::Failed(other.to_string()),
        }
    }
}

fn from_code(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(
            "not allowed by the plugin's capabilities.allowed_outbound_hosts".to_owned(),
        ),
        ErrorCode::HttpResponseBodySize(limit) => HttpError::Failed(format!(
            "the response is larger than the plugin's limits.max_response_kib ({} bytes)",
            limit.unwrap_or_default()
        )),
        ErrorCode::HttpResponseTimeout | ErrorCode::ConnectionReadTimeout => HttpError::Failed(
            "the request took longer than the plugin's limits.http_deadline_ms".to_owned(),
        ),
        ErrorCode::ConnectionLimitReached => HttpError::Failed(
            "too many requests in flight (the plugin's limits.max_concurrent_requests)".to_owned(),
        ),
        other => HttpError::Failed(format!("{other:?}")),
    }
}

/// One HTTP request, built step by step.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    max_redirects: u32,
}

/// A response, with its whole body read.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Json(e.to_string()))
    }
}

impl Request {
    /// A request with `method` (`GET`, `POST`…) to `url`.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` to `url`.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }

    /// How many redirects to follow (0: none; the 3xx response is returned).
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.max_redirects = n;
        self
    }

    /// Sends the request, following redirects, and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let mut method = self.method.clone();
        let mut url = self.url.clone();
        let mut body = self.body.clone();
        let mut followed = 0;
        loop {
            let response = send_once(&method, &url, &self.headers, &body)?;
            let location = match response.status {
                301 | 302 | 303 | 307 | 308 => response.header("location").map(str::to_owned),
                _ => None,
            };
            let Some(location) = location else {
                return Ok(response);
            };
            if self.max_redirects == 0 {
                return Ok(response);
            }
            if followed >= self.max_redirects {
                return Err(HttpError::TooManyRedirects(self.max_redirects));
            }
            followed += 1;
            url = resolve(&url, &location)?;
            if response.status == 303 || (response.status <= 302 && method == "POST") {
                method = "GET".to_owned();
                body.clear();
            }
        }
    }
}

/// The parts of an absolute `http(s)` URL.
struct Url<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
}

fn split(url: &str) -> Result<Url<'_>, HttpError> {
    let invalid = || HttpError::InvalidUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    if scheme != "http" && scheme != "https" {
        return Err(invalid());
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = path.split('#').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid());
    }
    Ok(Url {
        scheme,
        authority,
        path,
    })
}

/// `location` resolved against `base` (absolute, or a path on the same host).
fn resolve(base: &str, location: &str) -> Result<String, HttpError> {
    if location.contains("://") {
        return Ok(location.to_owned());
    }
    let url = split(base)?;
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{}://{rest}", url.scheme));
    }
    if location.starts_with('/') {
        return Ok(format!("{}://{}{location}", url.scheme, url.authority));
    }
    let dir = url.path.rsplit_once('/').map_or("", |(d, _)| d);
    Ok(format!(
        "{}://{}{dir}/{location}",
        url.scheme, url.authority
    ))
}

fn method_of(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

fn send_once(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let parts = split(url)?;
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&fields)
        .map_err(|e| HttpError::Failed(format!("invalid header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let failed = |what: &str| HttpError::Failed(what.to_owned());
    request
        .set_method(&method_of(method))
        .map_err(|()| failed("invalid method"))?;
    let scheme = if parts.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| failed("invalid scheme"))?;
    request
        .set_authority(Some(parts.authority))
        .map_err(|()| HttpError::InvalidUrl(url.to_owned()))?;
    let path = if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    };
    request
        .set_path_with_query(Some(path))
        .map_err(|()| HttpError::InvalidUrl(url.to_owned()))?;
    let outgoing = request.body().map_err(|()| failed("request body taken"))?;
    if !body.is_empty() {
        let stream = outgoing
            .write()
            .map_err(|()| failed("request body stream"))?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Failed(format!("writing the body: {e:?}")))?;
        }
        drop(stream);
    }
    let future = outgoing_handler::handle(request, None).map_err(from_code)?;
    OutgoingBody::finish(outgoing, None).map_err(from_code)?;
    let incoming = loop {
        match future.get() {
            Some(Ok(result)) => break result.map_err(from_code)?,
            Some(Err(())) => return Err(failed("the response was already taken")),
            None => future.subscribe().block(),
        }
    };
    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body_resource = incoming.consume().map_err(|()| failed("body taken"))?;
    let stream = body_resource.stream().map_err(|()| failed("body stream"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                drop(stream);
                let code = types::http_error_code(&e);
                return Err(code.map_or_else(|| failed(&e.to_debug_string()), from_code));
            }
        }
    }
    drop(stream);
    drop(body_resource);
    Ok(Response {
        status,
        headers,
        body,
        url: url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_resolve_against_the_request() {
        let base = "http://a.test:8080/x/y?q=1";
        assert_eq!(
            resolve(base, "https://b.test/z").unwrap(),
            "https://b.test/z"
        );
        assert_eq!(resolve(base, "/z").unwrap(), "http://a.test:8080/z");
        assert_eq!(resolve(base, "//c.test/z").unwrap(), "http://c.test/z");
        assert_eq!(resolve(base, "z").unwrap(), "http://a.test:8080/x/z");
        assert!(split("ftp://a/").is_err());
        assert!(split("http://u@a/").is_err());
    }
}
