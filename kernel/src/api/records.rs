//! `/api/v1/records/{item}`: records of any DataItem, as the caller's grants allow.
//!
//! Grants are `records:{item}:{op}` for a whole operation or `records:{item}:{op}:{field}`
//! for one field. Creating or patching with per-field grants only: every field in the body
//! must be granted (403 naming the first that is not). Reading with per-field read grants
//! only: the fields not granted are left out (`id`, `version` and the stamps always show),
//! and filtering, sorting or searching (`q`) on them is refused; the history needs the
//! whole `read`. The answer to a create or a patch is redacted the same way (a writer
//! without a read grant sees only the stamps). Composed children are written, read and
//! deleted with the grants of their own DataItem (see `crate::redact`). This module must never change a record before the caller's grants were
//! checked.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{IfMatch, JsonBody, Path, QueryPairs};
use crate::Kernel;
use crate::caller::{Caller, FieldAccess, RecordOp};
use crate::records::ListQuery;

use crate::redact::STAMPS;

fn needs(what: &str, grant: String) -> ApiError {
    ApiError::forbidden(what, &grant)
}

/// What the caller may do with `op` on `item`'s records; 403 when nothing.
fn access(caller: &Caller, item: &str, op: RecordOp) -> Result<FieldAccess, ApiError> {
    match caller.record_fields(item, op) {
        FieldAccess::Nothing => Err(needs(
            &format!("{} records of '{item}'", op.word()),
            format!("records:{item}:{}", op.word()),
        )),
        access => Ok(access),
    }
}

/// Refuses a write whose body holds a field the caller may not write. Composed children
/// given in the body are written with the grants of their own DataItem: creating them needs
/// `records:{child}:create`, and replacing them (a patch that names them deletes the old
/// ones) needs `records:{child}:create` and `records:{child}:delete`; their own fields and
/// grandchildren are checked the same way.
fn check_write(
    catalog: &erpos_design::Catalog,
    caller: &Caller,
    item: &str,
    op: RecordOp,
    body: &Value,
) -> Result<(), ApiError> {
    let access = access(caller, item, op)?;
    let consists: Vec<&str> = catalog
        .get(item)
        .map(|d| d.consists.iter().map(|c| c.item.as_str()).collect())
        .unwrap_or_default();
    let fields = body.as_object().into_iter().flat_map(|o| o.iter());
    for (field, value) in fields.filter(|(f, _)| !["id", "version"].contains(&f.as_str())) {
        if consists.contains(&field.as_str()) {
            if op == RecordOp::Update
                && caller.record_fields(field, RecordOp::Delete) != FieldAccess::All
            {
                return Err(needs(
                    &format!("replacing the '{field}' children of '{item}'"),
                    format!("records:{field}:delete"),
                ));
            }
            let children = match value {
                Value::Array(list) => list.iter().collect(),
                Value::Null => Vec::new(),
                one => vec![one],
            };
            for child in children {
                check_write(catalog, caller, field, RecordOp::Create, child)?;
            }
            continue;
        }
        if !access.allows(field) {
            return Err(needs(
                &format!("writing the field '{field}' of '{item}'"),
                format!("records:{item}:{}:{field}", op.word()),
            ));
        }
    }
    Ok(())
}

/// Every DataItem composed into `item`, at any depth.
fn composed(catalog: &erpos_design::Catalog, item: &str, out: &mut Vec<String>) {
    for c in catalog
        .get(item)
        .map(|d| d.consists.as_slice())
        .unwrap_or_default()
    {
        if !out.contains(&c.item) {
            out.push(c.item.clone());
            composed(catalog, &c.item, out);
        }
    }
}

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
    caller: Caller,
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
    let query = ListQuery::parse(catalog, &item, &params)?;
    let mut page = k.records.list(&item, &query).await?;
    for record in &mut page.items {
        crate::redact::record(catalog, &caller, &item, record);
    }
    Ok(Json(json!(page)))
}

/// Creates a record (with composed children under the child DataItem's name).
#[utoipa::path(post, path = "/api/v1/records/{item}", tag = "records", request_body = Object,
    params(("item" = String, Path, description = "DataItem name")),
    responses((status = 201, description = "the stored record"),
              (status = 409, description = "a unique field's value is taken", body = super::error::ErrorBody),
              (status = 422, description = "every failing field, nothing written", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
    Path(item): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let schema = k.definitions.schema();
    check_write(&schema.catalog, &caller, &item, RecordOp::Create, &body)?;
    let mut record = k.records.create(&item, &body, Some(&caller.user)).await?;
    crate::redact::record(&schema.catalog, &caller, &item, &mut record);
    Ok((StatusCode::CREATED, Json(record)))
}

/// One record with its composed children.
#[utoipa::path(get, path = "/api/v1/records/{item}/{id}", tag = "records",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 200, description = "the record"), (status = 404, description = "no such record", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
    Path((item, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    access(&caller, &item, RecordOp::Read)?;
    let mut record = k.records.get(&item, &id).await?;
    crate::redact::record(&k.definitions.schema().catalog, &caller, &item, &mut record);
    Ok(Json(record))
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
    caller: Caller,
    Path((item, id)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let schema = k.definitions.schema();
    check_write(&schema.catalog, &caller, &item, RecordOp::Update, &body)?;
    let mut record = k
        .records
        .patch(&item, &id, &body, expected, Some(&caller.user))
        .await?;
    crate::redact::record(&schema.catalog, &caller, &item, &mut record);
    Ok(Json(record))
}

/// Deletes a record and its composed children; refused while other records reference it.
#[utoipa::path(delete, path = "/api/v1/records/{item}/{id}", tag = "records",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 204, description = "deleted"), (status = 409, description = "still referenced, or stale If-Match", body = super::error::ErrorBody)))]
pub async fn delete(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
    Path((item, id)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
) -> Result<StatusCode, ApiError> {
    // Deleting a record deletes its composed children: that needs their delete grants too.
    let mut items = vec![item.clone()];
    composed(&k.definitions.schema().catalog, &item, &mut items);
    for i in &items {
        if caller.record_fields(i, RecordOp::Delete) != FieldAccess::All {
            return Err(needs(
                &format!("deleting records of '{i}'"),
                format!("records:{i}:delete"),
            ));
        }
    }
    k.records
        .delete(&item, &id, expected, Some(&caller.user))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit trail of a record: every create, change (from → to) and delete.
#[utoipa::path(get, path = "/api/v1/records/{item}/{id}/history", tag = "records",
    params(("item" = String, Path, description = "DataItem name"), ("id" = String, Path, description = "record id")),
    responses((status = 200, description = "`{items, total}`")))]
pub async fn history(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
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
