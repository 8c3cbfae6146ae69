//! `/api/v1/records/{item}`: records of any DataItem.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{IfMatch, JsonBody, QueryPairs};
use crate::Kernel;
use crate::records::ListQuery;

/// Lists records: filters `field=v` or `field__op=v` (eq, ne, lt, lte, gt, gte, in,
/// contains, null), `q` (matches text, pinyin and initials of searchable fields), `sort`
/// (`-age,xingming`), `limit`, and `cursor` (from `next_cursor`) or `page`.
#[utoipa::path(get, path = "/api/v1/records/{item}", tag = "records",
    params(("item" = String, Path, description = "DataItem name"),
           ("limit" = Option<u32>, Query, description = "page size, 1 to 500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
           ("page" = Option<u32>, Query, description = "1-based page number (instead of cursor)"),
           ("sort" = Option<String>, Query, description = "comma separated fields, '-' for descending"),
           ("q" = Option<String>, Query, description = "search text: Chinese, pinyin or initials")),
    responses((status = 200, description = "`{items, total, next_cursor}`"),
              (status = 400, description = "bad parameter", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Path(item): Path<String>,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let query = ListQuery::parse(&k.definitions.schema().catalog, &item, &params)?;
    Ok(Json(json!(k.records.list(&item, &query).await?)))
}

/// Creates a record (with composed children under the child DataItem's name).
#[utoipa::path(post, path = "/api/v1/records/{item}", tag = "records", request_body = Object,
    params(("item" = String, Path, description = "DataItem name")),
    responses((status = 201, description = "the stored record"),
              (status = 409, description = "a unique field's value is taken", body = super::error::ErrorBody),
              (status = 422, description = "every failing field, nothing written", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    Path(item): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let record = k.records.create(&item, &body, None).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// One record with its composed children.
#[utoipa::path(get, path = "/api/v1/records/{item}/{id}", tag = "records",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 200, description = "the record"), (status = 404, description = "no such record", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Path((item, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(k.records.get(&item, &id).await?))
}

/// Changes the fields given. Send the `version` you read (in the body or `If-Match`): a
/// stale version gets 409 instead of overwriting someone else's change.
#[utoipa::path(patch, path = "/api/v1/records/{item}/{id}", tag = "records", request_body = Object,
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 200, description = "the record as stored now"),
              (status = 409, description = "stale version or unique value taken", body = super::error::ErrorBody),
              (status = 422, description = "every failing field, nothing written", body = super::error::ErrorBody)))]
pub async fn patch(
    State(k): State<Arc<Kernel>>,
    Path((item, id)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        k.records.patch(&item, &id, &body, expected, None).await?,
    ))
}

/// Deletes a record and its composed children; refused while other records reference it.
#[utoipa::path(delete, path = "/api/v1/records/{item}/{id}", tag = "records",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 204, description = "deleted"), (status = 409, description = "still referenced, or stale If-Match", body = super::error::ErrorBody)))]
pub async fn delete(
    State(k): State<Arc<Kernel>>,
    Path((item, id)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
) -> Result<StatusCode, ApiError> {
    k.records.delete(&item, &id, expected, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit trail of a record: every create, change (from → to) and delete.
#[utoipa::path(get, path = "/api/v1/records/{item}/{id}/history", tag = "records",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 200, description = "`{items, total}`")))]
pub async fn history(
    State(k): State<Arc<Kernel>>,
    Path((item, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let items = k.records.history(&item, &id).await?;
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}
