//! `/api/v1/charges`: what a visit costs and how it was paid (issue 14 §7) — at the desk,
//! from a prepaid account or by a course's session, with the discount and the booking's
//! deposits applied. A charge is idempotent by its `reference` (a retry answers the first,
//! 200); an account short of money is 409 `insufficient_balance`, a course past its day or
//! used up 409 `course_expired` / `course_used_up`, and nothing changes. Voiding gives the
//! money back to the account (or the session to the course).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_design::charge::Charge;
use erpos_kernel::Kernel;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;

fn created_or_ok(new: bool) -> StatusCode {
    if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Charges a visit or takes a deposit.
#[utoipa::path(post, path = "/api/v1/charges", tag = "money", operation_id = "create_charge",
    request_body = erpos_kernel::app::charges::ChargeRequest,
    responses((status = 201, description = "the charge", body = erpos_design::charge::Charge),
              (status = 200, description = "a retry: the first charge under the reference", body = erpos_design::charge::Charge),
              (status = 403, description = "needs money:charge", body = super::error::ErrorBody),
              (status = 409, description = "the account is short (`insufficient_balance`), the course expired or is used up (`course_expired`, `course_used_up`), or the reference was used for a different charge (`reference_reused`)", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (charge, new) = erpos_kernel::app::charges::create(&k, &caller, &body).await?;
    Ok((created_or_ok(new), Json(charge)))
}

/// Charges, oldest first.
#[utoipa::path(get, path = "/api/v1/charges", tag = "money", operation_id = "list_charges",
    params(("holder" = Option<String>, Query, description = "only this holder's (a patient's record id)"),
           ("booking" = Option<String>, Query, description = "only this booking's"),
           ("after" = Option<String>, Query, description = "only those after this charge (the last id of the page before)"),
           ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 50)")),
    responses((status = 200, description = "the charges", body = super::schema::ChargeList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs money:read", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::charges::list(&k, &caller, &params).await?}),
    ))
}

/// One charge.
#[utoipa::path(get, path = "/api/v1/charges/{id}", tag = "money", operation_id = "show_charge",
    params(("id" = String, Path, description = "charge id")),
    responses((status = 200, description = "the charge", body = erpos_design::charge::Charge),
              (status = 403, description = "needs money:read", body = super::error::ErrorBody),
              (status = 404, description = "no such charge", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Charge>, ApiError> {
    Ok(Json(
        erpos_kernel::app::charges::get(&k, &caller, &id).await?,
    ))
}

/// Voids a charge: the account gets its money back, the course its session.
#[utoipa::path(post, path = "/api/v1/charges/{id}/void", tag = "money", operation_id = "void_charge",
    request_body = erpos_kernel::app::charges::VoidRequest,
    params(("id" = String, Path, description = "charge id")),
    responses((status = 201, description = "the charge, voided now", body = erpos_design::charge::Charge),
              (status = 200, description = "it was voided before: the charge as it is", body = erpos_design::charge::Charge),
              (status = 403, description = "needs money:charge", body = super::error::ErrorBody),
              (status = 404, description = "no such charge", body = super::error::ErrorBody),
              (status = 409, description = "a deposit already applied to a visit's charge: void that charge first", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn void(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (charge, new) = erpos_kernel::app::charges::void(&k, &caller, &id, &body).await?;
    Ok((created_or_ok(new), Json(charge)))
}
