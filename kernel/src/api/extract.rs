//! Request extractors whose rejections use the API's one error shape.
//!
//! Every JSON body and query string passes the kernel's input bounds here
//! ([`crate::limits::check_body`]: at most 32 levels deep, no NUL), so no handler can
//! forget them and nothing unreadable reaches storage.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde_json::Value;

use super::ApiError;
use super::error::ErrorCode;

/// A JSON body; a missing content type, bad syntax or an oversized body become the API's
/// JSON errors (415, 400, 413) instead of axum's plain-text ones, and a body nested too
/// deep or holding a NUL is refused with a 422 naming where.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await?;
        crate::limits::check_body(&value)?;
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
    crate::limits::check_body(&value)?;
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

/// A typed path parameter (a number such as `/outbox/{id}/retry`) whose rejection is the
/// API's JSON 400 naming the segment (`/path/{name}`), instead of axum's plain text.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParam(value)),
            Err(e) => Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "the request parameters are invalid",
            )
            .with_details(vec![erpos_design::Issue::new("/path", e.body_text())])),
        }
    }
}

/// The authenticated caller of a request (what `auth::authenticate` put in its
/// extensions): a handler that takes one never runs unauthenticated.
impl<S: Send + Sync> FromRequestParts<S> for crate::caller::Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The authentication layer (`api::auth`) puts the caller in the extensions of every
        // request it lets through; a request without one was never authenticated.
        parts
            .extensions
            .get::<crate::caller::Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("credentials are required"))
    }
}
