//! `/api/v1/treatments`: what a visit of each treatment needs — its duration, buffers, a
//! resource of each type, a practitioner's skill (issue 14 §1). Slot search reads them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_kernel::Kernel;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path};
use crate::extract::Authenticated;

/// Defines (or replaces) a treatment.
#[utoipa::path(post, path = "/api/v1/treatments", tag = "bookings", operation_id = "save_treatment",
    request_body = erpos_design::treatment::Treatment,
    responses((status = 201, description = "the treatment as stored (its name derived from the label when left out)", body = erpos_design::treatment::Treatment),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer: durations, buffers, unknown resource types or skill", body = super::error::ErrorBody)))]
pub async fn save(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let treatment = erpos_kernel::app::treatments::put(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(treatment)))
}

/// Every treatment.
#[utoipa::path(get, path = "/api/v1/treatments", tag = "bookings", operation_id = "list_treatments",
    responses((status = 200, description = "every treatment, by name", body = super::schema::TreatmentList)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(_caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::treatments::list(&k).await?}),
    ))
}

/// One treatment.
#[utoipa::path(get, path = "/api/v1/treatments/{name}", tag = "bookings", operation_id = "show_treatment",
    params(("name" = String, Path, description = "treatment name")),
    responses((status = 200, description = "the treatment", body = erpos_design::treatment::Treatment),
              (status = 404, description = "no such treatment", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(_caller): Authenticated,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::treatments::get(&k, &name).await?
    )))
}
