//! `/api/v1/stock`: materials, lots with expiry, and the movements that are the only way
//! stock on hand changes (issue 14 §8). Every movement names the caller's `reference`: a
//! retry answers what the first did (200), never a second movement; taking more than is
//! usable is 409 `insufficient_stock`. Consumption takes first-expiring-first.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_kernel::Kernel;
use erpos_kernel::app::stock::Operation;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;

fn answered(done: (Operation, bool)) -> impl IntoResponse {
    let (operation, new) = done;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(operation))
}

/// Defines (or replaces) a material.
#[utoipa::path(post, path = "/api/v1/stock/materials", tag = "stock", operation_id = "save_material",
    request_body = erpos_design::stock::Material,
    responses((status = 201, description = "the material as stored", body = erpos_design::stock::Material),
              (status = 403, description = "needs stock:manage", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn save_material(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let material = erpos_kernel::app::stock::put_material(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(material)))
}

/// Every material.
#[utoipa::path(get, path = "/api/v1/stock/materials", tag = "stock", operation_id = "list_materials",
    responses((status = 200, description = "every material, by name", body = super::schema::MaterialList),
              (status = 403, description = "needs stock:read", body = super::error::ErrorBody)))]
pub async fn materials(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::stock::materials(&k, &caller).await?}),
    ))
}

/// Receives a lot into a branch.
#[utoipa::path(post, path = "/api/v1/stock/receipts", tag = "stock", operation_id = "receive_stock",
    request_body = erpos_kernel::app::stock::ReceiptRequest,
    responses((status = 201, description = "the receipt: the lot and its movement", body = erpos_kernel::app::stock::Operation),
              (status = 200, description = "a retry: what its reference did before", body = erpos_kernel::app::stock::Operation),
              (status = 403, description = "needs stock:move", body = super::error::ErrorBody),
              (status = 409, description = "the reference did something else (`reference_reused`)", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer: material, branch, quantity, expiry", body = super::error::ErrorBody)))]
pub async fn receive(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    Ok(answered(
        erpos_kernel::app::stock::receive(&k, &caller, &body).await?,
    ))
}

/// Consumes a material in a branch, first-expiring-first.
#[utoipa::path(post, path = "/api/v1/stock/consumptions", tag = "stock", operation_id = "consume_stock",
    request_body = erpos_kernel::app::stock::ConsumptionRequest,
    responses((status = 201, description = "the lots taken, in FEFO order, with their lot numbers", body = erpos_kernel::app::stock::Operation),
              (status = 200, description = "a retry: what its reference took before", body = erpos_kernel::app::stock::Operation),
              (status = 403, description = "needs stock:move", body = super::error::ErrorBody),
              (status = 409, description = "less is usable than asked (`insufficient_stock`), or the reference did something else (`reference_reused`)", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn consume(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    Ok(answered(
        erpos_kernel::app::stock::consume(&k, &caller, &body).await?,
    ))
}

/// Lots, in the order they were received.
#[utoipa::path(get, path = "/api/v1/stock/lots", tag = "stock", operation_id = "list_lots",
    params(("material" = Option<String>, Query, description = "only this material's"),
           ("branch" = Option<String>, Query, description = "only this branch's"),
           ("in_stock" = Option<bool>, Query, description = "only lots with something on hand"),
           ("after" = Option<String>, Query, description = "only lots after this id (the last of the page before)"),
           ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 50)")),
    responses((status = 200, description = "the lots", body = super::schema::LotList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs stock:read", body = super::error::ErrorBody)))]
pub async fn lots(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::stock::lots(&k, &caller, &params).await?}),
    ))
}

/// One lot.
#[utoipa::path(get, path = "/api/v1/stock/lots/{id}", tag = "stock", operation_id = "show_lot",
    params(("id" = String, Path, description = "lot id")),
    responses((status = 200, description = "the lot", body = erpos_design::stock::Lot),
              (status = 403, description = "needs stock:read", body = super::error::ErrorBody),
              (status = 404, description = "no such lot", body = super::error::ErrorBody)))]
pub async fn lot(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::stock::lot(&k, &caller, &id).await?
    )))
}

/// A lot's movements, in order.
#[utoipa::path(get, path = "/api/v1/stock/lots/{id}/movements", tag = "stock", operation_id = "list_lot_movements",
    params(("id" = String, Path, description = "lot id"),
           ("after" = Option<i64>, Query, description = "only movements after this seq"),
           ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 50)")),
    responses((status = 200, description = "the movements", body = super::schema::MovementList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs stock:read", body = super::error::ErrorBody),
              (status = 404, description = "no such lot", body = super::error::ErrorBody)))]
pub async fn movements(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::stock::movements(&k, &caller, &id, &params).await?}),
    ))
}

/// Adjusts a lot's count or writes some of it off.
#[utoipa::path(post, path = "/api/v1/stock/lots/{id}/movements", tag = "stock", operation_id = "correct_lot",
    request_body = erpos_kernel::app::stock::CorrectionRequest,
    params(("id" = String, Path, description = "lot id")),
    responses((status = 201, description = "the correction", body = erpos_kernel::app::stock::Operation),
              (status = 200, description = "a retry: what its reference did before", body = erpos_kernel::app::stock::Operation),
              (status = 403, description = "needs stock:move", body = super::error::ErrorBody),
              (status = 404, description = "no such lot", body = super::error::ErrorBody),
              (status = 409, description = "on hand would go negative (`insufficient_stock`), or the reference did something else (`reference_reused`)", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn correct(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    Ok(answered(
        erpos_kernel::app::stock::correct(&k, &caller, &id, &body).await?,
    ))
}

/// Marks a lot opened now (a multi-dose vial): usable only as long as its material allows.
#[utoipa::path(post, path = "/api/v1/stock/lots/{id}/open", tag = "stock", operation_id = "open_lot",
    params(("id" = String, Path, description = "lot id")),
    responses((status = 200, description = "the lot, with when it was opened and until when it is usable", body = erpos_design::stock::Lot),
              (status = 403, description = "needs stock:move", body = super::error::ErrorBody),
              (status = 404, description = "no such lot", body = super::error::ErrorBody)))]
pub async fn open(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::stock::open(&k, &caller, &id).await?
    )))
}

/// Lots expiring soon and materials under their reorder level.
#[utoipa::path(get, path = "/api/v1/stock/alerts", tag = "stock", operation_id = "stock_alerts",
    params(("branch" = Option<String>, Query, description = "only this branch's"),
           ("days" = Option<u32>, Query, description = "how far ahead expiry is looked for, 1 to 365 (default 30)")),
    responses((status = 200, description = "the alerts", body = erpos_kernel::app::stock::Alerts),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs stock:read", body = super::error::ErrorBody)))]
pub async fn alerts(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::stock::alerts(&k, &caller, &params).await?
    )))
}
