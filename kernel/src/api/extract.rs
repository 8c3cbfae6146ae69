//! Request extractors whose rejections use the API's one error shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde_json::Value;

use super::ApiError;

/// A JSON body; a missing content type, bad syntax or an oversized body become the API's
/// JSON errors (415, 400, 413) instead of axum's plain-text ones.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
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
                "bad_request",
                "If-Match must be a record version such as \"3\"",
            )
        })
    }
}

/// Query-string pairs in order (filters may repeat keys).
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
                        "bad_request",
                        e.body_text(),
                    )
                })?;
        Ok(QueryPairs(pairs))
    }
}
