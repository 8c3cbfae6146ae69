//! Static files served from the root beside the API: the web console's built bundle
//! (issue 15), which the `erpos` binary embeds and hands to the router. The router embeds
//! nothing itself, so the kernel's tests need no front end built. It must never serve a
//! path under `/api` (those stay the API's, its JSON 404 included), never read the file
//! system, and never answer a missing file with a page that pretends to be it.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One file of the bundle.
pub struct Asset {
    /// Its bytes.
    pub bytes: Cow<'static, [u8]>,
    /// Its media type (`text/html`, `text/javascript`, …).
    pub media_type: Cow<'static, str>,
    /// A strong validator of its content (a hash), for `ETag` / `If-None-Match`.
    pub etag: Option<String>,
}

/// Where the router finds the files it serves at `/`: implemented by the binary over its
/// embedded bundle, so a build carries its own console and needs no network at run time.
pub trait Assets: Send + Sync + 'static {
    /// The file at `path` (relative, no leading slash: `index.html`, `assets/index-x.js`).
    fn get(&self, path: &str) -> Option<Asset>;
}

/// The page a browser gets for any path that is not a file (`/records/patient`): the
/// console routes in the browser, so a reload or a shared link lands on the same page.
const INDEX: &str = "index.html";

/// What the console's HTML may load: only its own files and its own API (no CDN, no inline
/// script); images may be blob: URLs (the flowcharts it fetches with the session).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Serves `req` from `assets` when it is a GET or HEAD outside `/api`; anything else (and a
/// missing file that looks like a file) answers `otherwise`.
pub async fn serve(assets: Arc<dyn Assets>, req: Request, otherwise: Response) -> Response {
    let path = req.uri().path();
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    if !is_read || path == "/api" || path.starts_with("/api/") {
        return otherwise;
    }
    let relative = path.trim_start_matches('/');
    let wanted = if relative.is_empty() { INDEX } else { relative };
    let last = wanted.rsplit('/').next().unwrap_or_default();
    let found = assets.get(wanted).or_else(|| {
        // A page of the console (no extension): its index; a missing file stays missing.
        (!last.contains('.')).then(|| assets.get(INDEX)).flatten()
    });
    let Some(asset) = found else {
        return otherwise;
    };
    let is_html = asset.media_type.starts_with("text/html");
    if let (Some(etag), Some(asked)) = (&asset.etag, req.headers().get(header::IF_NONE_MATCH))
        && asked
            .to_str()
            .is_ok_and(|a| a.split(',').any(|t| t.trim() == quoted(etag)))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    // The embedded bundle is static: its bytes are sent as they are, never copied.
    let mut res = Response::new(match (req.method() == Method::HEAD, asset.bytes) {
        (true, _) => Body::empty(),
        (false, Cow::Borrowed(bytes)) => Body::from(axum::body::Bytes::from_static(bytes)),
        (false, Cow::Owned(bytes)) => Body::from(bytes),
    });
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&asset.media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    // Hashed bundle files never change; the page that names them is checked every time.
    let cache = if wanted.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(Ok(v)) = asset
        .etag
        .as_deref()
        .map(|e| HeaderValue::from_str(&quoted(e)))
    {
        headers.insert(header::ETAG, v);
    }
    if is_html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    res
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}
