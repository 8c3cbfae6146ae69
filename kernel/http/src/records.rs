//! `/api/v1/records/{item}`: records of any DataItem, as the caller's grants allow.
//!
//! Grants are `records:{item}:{op}` for a whole operation or `records:{item}:{op}:{field}`
//! for one field. Creating or patching with per-field grants only: every field in the body
//! must be granted (403 naming the first that is not). Reading with per-field read grants
//! only: the fields not granted are left out (`id`, `version` and the stamps always show),
//! and filtering, sorting or searching (`q`) on them is refused; the history needs the
//! whole `read`. The answer to a create or a patch is redacted the same way (a writer
//! without a read grant sees only the stamps). Composed children are written, read and
//! deleted with the grants of their own DataItem (see `erpos_kernel::redact`). This module must never change a record before the caller's grants were
//! checked.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{IfMatch, JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::caller::{Caller, FieldAccess, RecordOp};
use erpos_kernel::records::ListQuery;

use erpos_kernel::redact::STAMPS;

fn needs(what: &str, grant: String) -> ApiError {
    erpos_kernel::app::records::needs(what, grant).into()
}

/// What the caller may do with `op` on `item`'s records; 403 when nothing.
fn access(caller: &Caller, item: &str, op: RecordOp) -> Result<FieldAccess, ApiError> {
    Ok(erpos_kernel::app::records::access(caller, item, op)?)
}

/// Lists records: filters `field=v` or `field__op=v` (eq, ne, lt, lte, gt, gte, in,
/// contains, null), `q` (matches text, pinyin and initials of searchable fields), `sort`
/// (`-age,xingming`), `limit`, and `cursor` (from `next_cursor`) or `page`.
#[utoipa::path(get, path = "/api/v1/records/{item}", tag = "records", operation_id = "list_records",
    params(("item" = String, Path, description = "DataItem name"),
           ("limit" = Option<u32>, Query, description = "page size, 1 to 500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
           ("page" = Option<u32>, Query, description = "1-based page number (instead of cursor)"),
           ("sort" = Option<String>, Query, description = "comma separated fields, '-' for descending"),
           ("q" = Option<String>, Query, description = "search text: Chinese, pinyin or initials"),
           ("filters" = Option<std::collections::BTreeMap<String, String>>, Query, style = Form, explode,
            description = "filters: `field=v` or `field__op=v` (op: eq, ne, lt, lte, gt, gte, in, contains, null)")),
    responses((status = 200, description = "one page of records", body = super::schema::RecordList),
              (status = 400, description = "bad parameter, filter or sort (`bad_request`, naming it)", body = super::error::ErrorBody),
              (status = 403, description = "needs records:{item}:read (or a field grant for each field filtered, sorted or searched)", body = super::error::ErrorBody),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(item): Path<String>,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let access = access(&caller, &item, RecordOp::Read)?;
    if access != FieldAccess::All {
        // Filters and sorts on hidden fields would reveal their values.
        for (key, value) in &params {
            let searchable;
            let fields: Vec<&str> = match key.as_str() {
                "limit" | "cursor" | "page" => Vec::new(),
                // A search matches every searchable field: a hidden one would answer it.
                "q" => {
                    searchable = k
                        .definitions
                        .schema()
                        .catalog
                        .effective_fields(&item)
                        .into_iter()
                        .filter(|e| e.field.searchable)
                        .map(|e| e.field.name.clone())
                        .collect::<Vec<String>>();
                    searchable.iter().map(String::as_str).collect()
                }
                "sort" => value
                    .split(',')
                    .map(|f| f.trim().trim_start_matches('-'))
                    .collect(),
                other => vec![other.split_once("__").map_or(other, |(f, _)| f)],
            };
            if let Some(f) = fields
                .into_iter()
                .find(|f| !f.is_empty() && !STAMPS.contains(f) && !access.allows(f))
            {
                return Err(needs(
                    &format!("filtering, sorting or searching on the field '{f}' of '{item}'"),
                    format!("records:{item}:read:{f}"),
                ));
            }
        }
    }
    let schema = k.definitions.schema();
    let catalog = &schema.catalog;
    let mut query = ListQuery::parse(catalog, &item, &params)?;
    query.restrict(erpos_kernel::visibility::scope(catalog, &caller, &item));
    let mut page = k.records.list(&item, &query).await?;
    for record in &mut page.items {
        erpos_kernel::redact::record(catalog, &caller, &item, record);
    }
    Ok(Json(json!(page)))
}

/// Creates a record (with composed children under the child DataItem's name).
#[utoipa::path(post, path = "/api/v1/records/{item}", tag = "records", operation_id = "create_record", request_body = super::schema::RecordInput,
    params(("item" = String, Path, description = "DataItem name")),
    responses((status = 201, description = "the stored record (as the caller may read it)", body = super::schema::Record),
              (status = 403, description = "needs records:{item}:create (or a field grant for each field sent)", body = super::error::ErrorBody),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody),
              (status = 409, description = "a unique field's value is taken", body = super::error::ErrorBody),
              (status = 422, description = "every failing field, nothing written", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(item): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let record = erpos_kernel::app::records::create(&k, &caller, &item, &body).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// One record with its composed children.
#[utoipa::path(get, path = "/api/v1/records/{item}/{id}", tag = "records", operation_id = "show_record",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 200, description = "the record with its composed children", body = super::schema::Record),
              (status = 403, description = "needs records:{item}:read", body = super::error::ErrorBody),
              (status = 404, description = "no such record or DataItem", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path((item, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        erpos_kernel::app::records::read(&k, &caller, &item, &id).await?,
    ))
}

/// Changes the fields given. Send the `version` you read (in the body or `If-Match`): a
/// stale version gets 409 instead of overwriting someone else's change.
#[utoipa::path(patch, path = "/api/v1/records/{item}/{id}", tag = "records", operation_id = "patch_record", request_body = super::schema::RecordInput,
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id"),
           ("If-Match" = Option<String>, Header, description = "the version the change is based on (`\"3\"`)")),
    responses((status = 200, description = "the record as stored now", body = super::schema::Record),
              (status = 400, description = "If-Match is not a version", body = super::error::ErrorBody),
              (status = 403, description = "needs records:{item}:update (or a field grant for each field sent)", body = super::error::ErrorBody),
              (status = 404, description = "no such record or DataItem", body = super::error::ErrorBody),
              (status = 409, description = "stale version or unique value taken", body = super::error::ErrorBody),
              (status = 422, description = "every failing field, nothing written", body = super::error::ErrorBody)))]
pub async fn patch(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path((item, id)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        erpos_kernel::app::records::update(&k, &caller, &item, &id, &body, expected).await?,
    ))
}

/// Deletes a record and its composed children; refused while other records reference it.
#[utoipa::path(delete, path = "/api/v1/records/{item}/{id}", tag = "records", operation_id = "delete_record",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id"),
           ("If-Match" = Option<String>, Header, description = "the version the deletion is based on")),
    responses((status = 204, description = "deleted"),
              (status = 400, description = "If-Match is not a version", body = super::error::ErrorBody),
              (status = 403, description = "needs records:{item}:delete (and of every composed DataItem)", body = super::error::ErrorBody),
              (status = 404, description = "no such record or DataItem", body = super::error::ErrorBody),
              (status = 409, description = "still referenced (`referenced`), or stale If-Match (`version_conflict`)", body = super::error::ErrorBody)))]
pub async fn delete(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path((item, id)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
) -> Result<StatusCode, ApiError> {
    // Deleting a record deletes its composed children: that needs their delete grants too.
    erpos_kernel::app::records::delete(&k, &caller, &item, &id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit trail of a record: every create, change (from → to) and delete.
#[utoipa::path(get, path = "/api/v1/records/{item}/{id}/history", tag = "records", operation_id = "record_history",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 200, description = "every create, change (from → to) and delete", body = super::schema::RecordHistory),
              (status = 403, description = "needs records:{item}:read (whole)", body = super::error::ErrorBody),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody)))]
pub async fn history(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path((item, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if caller.record_fields(&item, RecordOp::Read) != FieldAccess::All {
        return Err(needs(
            &format!("reading the history of '{item}' records"),
            format!("records:{item}:read"),
        ));
    }
    let items = k.records.history(&item, &id).await?;
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}
