//! `GET /api/v1/docs`: the API reference page — Swagger UI rendering this server's own
//! `/api/v1/openapi.json`, every operation with its parameters, bodies and answers.
//!
//! Swagger UI is vendored (`kernel/http/assets/swagger-ui`, copied from its npm package's dist;
//! see `ORIGIN.md` there) and embedded in the binary, so the page needs no network at build
//! or run time. It is public like the document it renders: it describes, it reveals no data
//! (calls made from it send the caller's own credentials). This module must never serve a
//! file that is not embedded here, and never let the page load anything from another
//! origin: its Content-Security-Policy allows this origin only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::extract::Path;
use erpos_kernel::error::KernelError;

/// The page: Swagger UI's container and its two scripts (`index.html`).
const PAGE: &str = include_str!("../assets/api-docs/index.html");

/// The files the page loads, by the name it asks for under `docs/`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_str!("../assets/swagger-ui/swagger-ui.css"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/api-docs/init.js"),
    ),
];

/// This origin only: scripts from files (none inline), styles from files and the inline
/// style attributes Swagger UI sets, calls to this API only; no frames, no forms elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An embedded file with its content type, the page's CSP and no MIME sniffing.
fn embedded(content_type: &'static str, body: &'static str) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The files change only with the binary: a browser may keep them a little while.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// The API reference page (HTML): Swagger UI rendering `/api/v1/openapi.json`. Needs no
/// credentials; open it in a browser.
#[utoipa::path(get, path = "/api/v1/docs", tag = "system", operation_id = "api_reference",
    responses((status = 200, description = "the API reference page", content_type = "text/html", body = String)))]
pub async fn page() -> Response {
    embedded("text/html; charset=utf-8", PAGE)
}

/// A file of the API reference page (`swagger-ui-bundle.js`, `swagger-ui.css`, `init.js`).
#[utoipa::path(get, path = "/api/v1/docs/{asset}", tag = "system", operation_id = "api_reference_file",
    params(("asset" = String, Path, description = "the file's name, as the page asks for it")),
    responses((status = 200, description = "the file (JavaScript or CSS)",
               content((String = "text/javascript"), (String = "text/css"))),
              (status = 404, description = "no such file", body = super::error::ErrorBody)))]
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, body)| embedded(content_type, body))
        .ok_or_else(|| KernelError::NotFound(format!("API reference file '{name}'")).into())
}
