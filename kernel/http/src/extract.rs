//! Request extractors whose rejections use the API's one error shape.
//!
//! Handlers take these instead of axum's own `Path`, `Json` and `Query`, whose rejections
//! are plain text (a client promised JSON would get `Invalid URL: …` as text/plain).
//!
//! Every JSON body and query string passes the kernel's input bounds here
//! ([`erpos_kernel::limits::check_body`]: at most 32 levels deep, no NUL), so no handler can
//! forget them and nothing unreadable reaches storage.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use erpos_kernel::caller::Caller;
use serde_json::Value;

use super::ApiError;
use super::error::ErrorCode;

/// Path parameters, like `axum::extract::Path`, whose rejection is the API's JSON 400
/// naming the parameter at `/path/{key}`: a segment that is not valid UTF-8 once
/// percent-decoded (`/records/patient/%FF`) or that does not parse as the handler's type
/// (`/outbox/abc/retry` for a numeric id). Found by the schemathesis run (issue 12): axum's
/// own rejection answered text/plain.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let message = e.body_text();
                // The route's parameter names, to name the one at fault when axum says
                // only its position (a tuple) or nothing (a single value).
                let names: Vec<String> =
                    axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .map(|raw| raw.iter().map(|(k, _)| k.to_owned()).collect())
                        .unwrap_or_default();
                let key = match e.into_kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::DeserializeError { key, .. } => Some(key),
                    ErrorKind::ParseErrorAtIndex { index, .. } => names.get(index).cloned(),
                    _ if names.len() == 1 => names.first().cloned(),
                    _ => None,
                };
                let at = key.map_or_else(|| "/path".to_owned(), |k| format!("/path/{k}"));
                Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    ErrorCode::BadRequest,
                    "the request path is invalid",
                )
                .with_details(vec![erpos_design::Issue::new(at, message)]))
            }
            // A handler asking for parameters its route does not have: a defect here,
            // not the client's.
            Err(e) => Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                e.body_text(),
            )),
        }
    }
}

/// A JSON body; a missing content type, bad syntax or an oversized body become the API's
/// JSON errors (415, 400, 413) instead of axum's plain-text ones, and a body nested too
/// deep or holding a NUL is refused with a 422 naming where.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await?;
        erpos_kernel::limits::check_body(&value)?;
        Ok(JsonBody(value))
    }
}

/// A body that may be empty (`empty` stands for it), parsed and bounded like [`JsonBody`]:
/// for action routes whose body is optional.
pub fn optional_body(bytes: &[u8], empty: Value) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(empty);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            ErrorCode::MalformedJson,
            e.to_string(),
        )
    })?;
    erpos_kernel::limits::check_body(&value)?;
    Ok(value)
}

/// The version a write was based on, from an `If-Match` header (`"3"`, `W/"3"` or `3`).
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = raw
            .to_str()
            .unwrap_or_default()
            .trim()
            .trim_start_matches("W/")
            .trim_matches('"');
        text.parse::<i64>().map(|v| IfMatch(Some(v))).map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "If-Match must be a record version such as \"3\"",
            )
        })
    }
}

/// Query-string pairs in order (filters may repeat keys). A key or value holding a NUL
/// (which PostgreSQL cannot take as text) is a 400 naming the parameter.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        ErrorCode::BadRequest,
                        e.body_text(),
                    )
                })?;
        if let Some((key, _)) = pairs
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::bad_parameter(
                &key.replace('\0', "\\0"),
                "may not contain the NUL character (U+0000)",
            ));
        }
        Ok(QueryPairs(pairs))
    }
}

/// The authenticated caller of a request (what `auth::authenticate` put in its
/// extensions): a handler that takes one never runs unauthenticated. A newtype because
/// `Caller` is the kernel's and the extractor trait is axum's: the kernel knows nothing of
/// HTTP, so the HTTP crate wraps it.
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The authentication layer (`auth`) puts the caller in the extensions of every
        // request it lets through; a request without one was never authenticated.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| ApiError::unauthorized("credentials are required"))
    }
}
