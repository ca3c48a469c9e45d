//! The developer console (`host/console/`): the page at `/` and its assets
//! at `/console/{file}`, embedded in the binary at build time, and the UI
//! components a workflow ships in `workflows/<Name>/components/`, read from
//! disk at `/api/workflows/{name}/components[/{file}]`.
//!
//! Cache: every response carries a strong `ETag` (a hash of its bytes) and
//! `Cache-Control: no-cache`, so a browser revalidates each file on every
//! load and gets `304 Not Modified` while it is unchanged: a new binary's
//! page or a component edited on disk is never served stale, and an
//! unchanged one costs no transfer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::WebState;
use crate::event::ErrorCode;
use crate::workflow::registry::Entry;

/// The folder of a workflow that holds its UI components.
pub(crate) const COMPONENTS_DIR: &str = "components";

/// Largest component file served. Components are small ES modules and JSON
/// Schemas; the cap keeps a stray large file in the folder from being read
/// into memory per request.
const MAX_COMPONENT_BYTES: u64 = 4 * 1024 * 1024;

/// Longest component file name accepted.
const MAX_COMPONENT_NAME: usize = 128;

/// The page's content security policy: scripts only from this origin, plus
/// `blob:` because workflow components are fetched (with the API key) and
/// imported from blob URLs; sockets to this server.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self' blob:; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
     connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

/// Every file of `host/console/`. The page is `index.html`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("console.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("socket.js", "text/javascript; charset=utf-8"),
    asset!("transcript.js", "text/javascript; charset=utf-8"),
    asset!("uitools.js", "text/javascript; charset=utf-8"),
    asset!("schemaform.js", "text/javascript; charset=utf-8"),
    asset!("panels.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The ETags of [`ASSETS`], in the same order, computed once.
fn asset_etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| ASSETS.iter().map(|a| etag_of(a.bytes)).collect())
}

/// A `200` with the body, or a `304` when the client's copy is current.
fn cached(request: &HeaderMap, etag: &str, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (StatusCode::OK, headers, body).into_response()
}

fn serve_asset(request: &HeaderMap, name: &str) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("the console has no file `{name}`"),
        )
        .into_response();
    };
    let (Some(asset), Some(etag)) = (ASSETS.get(index), asset_etags().get(index)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = cached(request, etag, asset.content_type, asset.bytes.to_vec());
    if asset.content_type.starts_with("text/html") {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        );
    }
    response
}

/// `GET /`: the console page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve_asset(&headers, "index.html")
}

/// `GET /console/{file}`: a file of the console.
pub(crate) async fn asset(headers: HeaderMap, UrlPath(file): UrlPath<String>) -> Response {
    serve_asset(&headers, &file)
}

/// The content type of a component file, by extension; `None` for types
/// the console does not load (HTML and SVG are left out: served from this
/// origin they could run scripts outside the page's policy).
fn component_type(name: &str) -> Option<&'static str> {
    let extension = Path::new(name).extension()?.to_str()?;
    Some(match extension.to_ascii_lowercase().as_str() {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

/// Whether `name` is a plain file name: letters, digits, `_`, `-`, `.`,
/// not starting with a dot, no `..` (so no separator and no way out of the
/// folder, whatever the URL decoding produced).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT_NAME
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The components folder of workflow `name` (valid or not), if the
/// workflow is known.
fn components_dir(web: &WebState, name: &str) -> Result<PathBuf, ApiError> {
    let snapshot = web.workflows.snapshot();
    let dir = match snapshot.get(name) {
        Some(Entry::Valid(workflow)) => workflow.dir().to_owned(),
        Some(Entry::Invalid { dir, .. }) => dir.clone(),
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownWorkflow,
                format!("no workflow `{name}`; GET /api/workflows lists them"),
            ));
        }
    };
    Ok(dir.join(COMPONENTS_DIR))
}

fn component_not_found(workflow: &str, file: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ComponentNotFound,
        format!("workflow `{workflow}` has no component file `{file}`: {why}"),
    )
}

/// `GET /api/workflows/{name}/components`: the files the workflow ships in
/// its `components/` folder (empty when it has none).
pub(crate) async fn list_components(
    State(web): State<WebState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let dir = components_dir(&web, &name)?;
    let mut files = Vec::new();
    if let (Ok(root), Ok(mut entries)) = (
        tokio::fs::canonicalize(&dir).await,
        tokio::fs::read_dir(&dir).await,
    ) {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !is_plain_file_name(&file) || component_type(&file).is_none() {
                continue;
            }
            // Only what `component_file` would serve.
            if let Ok(path) = tokio::fs::canonicalize(entry.path()).await {
                let is_file = tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file());
                if is_file && path.starts_with(&root) {
                    files.push(file);
                }
            }
        }
    }
    files.sort();
    Ok(Json(json!({"workflow": name, "files": files})))
}

/// `GET /api/workflows/{name}/components/{file}`: one file of the
/// workflow's `components/` folder, never anything outside it.
pub(crate) async fn component_file(
    State(web): State<WebState>,
    UrlPath((name, file)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let dir = components_dir(&web, &name)?;
    if !is_plain_file_name(&file) {
        return Err(component_not_found(
            &name,
            &file,
            "a component file name has only letters, digits, `_`, `-` and `.`",
        ));
    }
    let Some(content_type) = component_type(&file) else {
        return Err(component_not_found(
            &name,
            &file,
            "the console loads .js, .mjs, .json, .css and image files only",
        ));
    };
    let missing = || component_not_found(&name, &file, "no such file");
    // Resolve symlinks on both sides: a link that points out of the folder
    // is refused like `..` would be.
    let root = tokio::fs::canonicalize(&dir).await.map_err(|_| missing())?;
    let path = tokio::fs::canonicalize(root.join(&file))
        .await
        .map_err(|_| missing())?;
    if !path.starts_with(&root) {
        return Err(component_not_found(
            &name,
            &file,
            "it points outside the components folder",
        ));
    }
    let metadata = tokio::fs::metadata(&path).await.map_err(|_| missing())?;
    if !metadata.is_file() {
        return Err(missing());
    }
    if metadata.len() > MAX_COMPONENT_BYTES {
        return Err(component_not_found(
            &name,
            &file,
            "it is larger than the 4 MiB a component file may have",
        ));
    }
    let bytes = tokio::fs::read(&path).await.map_err(|_| missing())?;
    Ok(cached(&headers, &etag_of(&bytes), content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_accepted() {
        for good in ["ApprovalForm.js", "ApprovalForm.schema.json", "a-b_c.css"] {
            assert!(is_plain_file_name(good), "{good}");
        }
        for bad in [
            "",
            "..",
            "../x.js",
            "..%2Fx.js",
            ".hidden.js",
            "a/b.js",
            "a\\b.js",
            "a..js",
            "x.js\0",
            "/etc/passwd",
        ] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn html_and_svg_components_are_not_served() {
        assert_eq!(component_type("Form.html"), None);
        assert_eq!(component_type("logo.svg"), None);
        assert_eq!(
            component_type("Form.JS"),
            Some("text/javascript; charset=utf-8")
        );
    }

    #[test]
    fn every_file_of_the_console_folder_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "list every file of host/console in ASSETS"
        );
    }

    #[test]
    fn every_console_asset_is_named_once_and_not_empty() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| !a.bytes.is_empty()));
    }
}
