//! `/api/v1/data-items`: define DataItems, see their forms, plan and apply migrations.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::caller::Permission;

/// Every DataItem definition.
#[utoipa::path(get, path = "/api/v1/data-items", tag = "design", operation_id = "list_data_items",
    responses((status = 200, description = "every DataItem definition", body = super::schema::DataItemList)))]
pub async fn list(State(k): State<Arc<Kernel>>) -> Json<Value> {
    let schema = k.definitions.schema();
    let items: Vec<Value> = schema.catalog.items().map(|i| json!(i)).collect();
    Json(json!({"total": items.len(), "items": items, "next_cursor": null}))
}

/// Defines a DataItem and creates its table. Names left out are derived from the Chinese
/// labels with pinyin.
#[utoipa::path(post, path = "/api/v1/data-items", tag = "design", operation_id = "create_data_item", request_body = erpos_design::DataItem,
    responses((status = 201, description = "the stored definition, names derived, version 1", body = erpos_design::DataItem),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 409, description = "a DataItem of that name exists", body = super::error::ErrorBody),
              (status = 422, description = "invalid definition; every problem at its JSON pointer (`invalid_definition`)", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let item = erpos_kernel::app::design::create_data_item(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(json!(item))))
}

/// One DataItem definition, with its pending change if there is one.
#[utoipa::path(get, path = "/api/v1/data-items/{name}", tag = "design", operation_id = "show_data_item",
    params(("name" = String, Path, description = "DataItem name")),
    responses((status = 200, description = "the definition, its pending change and its descendants", body = super::schema::DataItemShown),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let schema = k.definitions.schema();
    let item = schema
        .catalog
        .require(&name)
        .map_err(erpos_kernel::KernelError::from)?;
    let mut out = json!(item);
    let draft = k.definitions.draft(&name).await?;
    out["pending_change"] = json!(draft);
    out["descendants"] = json!(schema.catalog.descendants(&name));
    Ok(Json(out))
}

/// Proposes a new definition of a DataItem: stored as its pending change, answered with the
/// migration plan. Nothing changes in the tables until the plan is applied.
#[utoipa::path(put, path = "/api/v1/data-items/{name}", tag = "design", operation_id = "propose_data_item", request_body = erpos_design::DataItem,
    params(("name" = String, Path, description = "DataItem name")),
    responses((status = 200, description = "the pending change and its migration plan", body = super::schema::Proposal),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody),
              (status = 422, description = "invalid definition (`invalid_definition`)", body = super::error::ErrorBody)))]
pub async fn propose(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let (draft, plan) =
        erpos_kernel::app::design::propose_data_item(&k, &caller, &name, &body).await?;
    Ok(Json(json!({"pending_change": draft, "plan": plan})))
}

/// The generated form: a JSON Schema (draft 2020-12) that validates every write, and a layout.
#[utoipa::path(get, path = "/api/v1/data-items/{name}/form", tag = "design", operation_id = "data_item_form",
    params(("name" = String, Path, description = "DataItem name")),
    responses((status = 200, description = "the JSON Schemas of writes and the layout", body = super::schema::Form),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody)))]
pub async fn form(
    State(k): State<Arc<Kernel>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let schema = k.definitions.schema();
    schema
        .catalog
        .require(&name)
        .map_err(erpos_kernel::KernelError::from)?;
    Ok(Json(erpos_kernel::app::design::form_of(
        &schema.catalog,
        &name,
    )))
}

/// The form a definition would have, checked as saving it would check it, with nothing
/// stored: the designer's live preview. `?replaces=<name>` checks it as a change of that
/// DataItem (its name kept); without it, as a new one.
#[utoipa::path(post, path = "/api/v1/data-items/preview", tag = "design", operation_id = "preview_data_item_form", request_body = erpos_design::DataItem,
    params(("replaces" = Option<String>, Query, description = "the DataItem the definition would change")),
    responses((status = 200, description = "the form the definition would have", body = super::schema::Form),
              (status = 400, description = "an unknown query parameter", body = super::error::ErrorBody),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no DataItem to replace of that name", body = super::error::ErrorBody),
              (status = 422, description = "invalid definition (a new one of a taken name included); every problem at its JSON pointer (`invalid_definition`)", body = super::error::ErrorBody)))]
pub async fn preview(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let mut replaces = None;
    for (key, value) in params {
        match key.as_str() {
            "replaces" => replaces = Some(value),
            other => {
                return Err(
                    erpos_kernel::KernelError::BadRequest(vec![erpos_design::Issue::new(
                        format!("/query/{other}"),
                        "unknown parameter: replaces",
                    )])
                    .into(),
                );
            }
        }
    }
    Ok(Json(
        erpos_kernel::app::design::preview_form(&k, &caller, &body, replaces.as_deref()).await?,
    ))
}

/// The migration plan of the pending change: each step, its SQL, and which are destructive.
#[utoipa::path(get, path = "/api/v1/data-items/{name}/migration", tag = "design", operation_id = "data_item_migration_plan",
    params(("name" = String, Path, description = "DataItem name")),
    responses((status = 200, description = "the plan", body = erpos_design::MigrationPlan),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody),
              (status = 409, description = "no pending change (`no_pending_change`)", body = super::error::ErrorBody)))]
pub async fn migration_plan(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::design::pending_plan(&k, &caller, &name).await?
    )))
}

/// Applies the pending change. Body `{"confirm_destructive": true}` is required when a step
/// removes a field or converts values lossily (the old values are archived, never dropped);
/// records breaking a field's new rules need `{"resolve": {"<field>": {"action": "fix",
/// "value": …} | {"action": "archive"} | {"action": "accept"}}}` (the plan lists which each
/// step takes), or `confirm_destructive` where accepting them is possible. A change that
/// converts or re-indexes a table of more rows than a batch holds (1,000) is decided at
/// once but runs in batches in the background: the answer is 202 with its progress, and
/// `Location` is where to follow it; meanwhile the item's records are read-only.
#[utoipa::path(post, path = "/api/v1/data-items/{name}/migration", tag = "design", operation_id = "apply_data_item_migration",
    request_body(content = Option<erpos_design::migration::ApplyRequest>, description = "optional; `{\"confirm_destructive\": true}` for destructive steps, `resolve` per field for records breaking new rules"),
    params(("name" = String, Path, description = "DataItem name")),
    responses((status = 200, description = "the definition now in force and the steps applied", body = super::schema::Migrated),
              (status = 202, description = "a large migration started in batches: its progress (follow `Location`)", body = erpos_kernel::definitions::MigrationProgress),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody),
              (status = 409, description = "destructive and unconfirmed, or records breaking new rules unresolved (`destructive_change_unconfirmed`), no pending change (`no_pending_change`), values repeat for a new unique field (`unique_violation`), or a migration runs in batches (`migration_running`)", body = super::error::ErrorBody),
              (status = 422, description = "a resolution naming no field, a fix value breaking the field's rules, or a resolution the step cannot take", body = super::error::ErrorBody)))]
pub async fn migration_apply(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::response::Response, ApiError> {
    erpos_kernel::app::require(&caller, Permission::Design, "migrating DataItems")?;
    let body = super::extract::optional_body(&body, json!({}))?;
    let request = erpos_kernel::app::design::read_apply_request(&body)?;
    match erpos_kernel::app::design::migrate_data_item(&k, &caller, &name, &request).await? {
        erpos_kernel::app::design::Migration::Applied(item, plan) => {
            Ok(Json(json!({"data_item": item, "applied": plan})).into_response())
        }
        erpos_kernel::app::design::Migration::Started(progress) => {
            let location = format!("/api/v1/data-items/{name}/migration/progress");
            Ok((
                StatusCode::ACCEPTED,
                [(axum::http::header::LOCATION, location)],
                Json(json!(progress)),
            )
                .into_response())
        }
    }
}

/// How far the migration of a DataItem is: its run in batches while it is active, or the
/// last one that ended (`done`, or `failed` with why: then the change is still pending).
#[utoipa::path(get, path = "/api/v1/data-items/{name}/migration/progress", tag = "design", operation_id = "data_item_migration_progress",
    params(("name" = String, Path, description = "DataItem name")),
    responses((status = 200, description = "the run's progress", body = erpos_kernel::definitions::MigrationProgress),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no such DataItem, or it never had a migration run in batches", body = super::error::ErrorBody)))]
pub async fn migration_progress(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::migration_runs::progress(&k, &caller, &name).await?
    )))
}

/// Discards the pending change.
#[utoipa::path(delete, path = "/api/v1/data-items/{name}/migration", tag = "design", operation_id = "discard_data_item_change",
    params(("name" = String, Path, description = "DataItem name")),
    responses((status = 204, description = "discarded"),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no such DataItem", body = super::error::ErrorBody),
              (status = 409, description = "no pending change (`no_pending_change`)", body = super::error::ErrorBody)))]
pub async fn migration_discard(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    erpos_kernel::app::design::discard_data_item_change(&k, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
