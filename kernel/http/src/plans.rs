//! `/api/v1/bookings/plan` and `/api/v1/capacity`: a day's requests planned onto the
//! clinic's holders, and the load and needs of capacity planning (issue 14 §4). They read
//! and propose; nothing here books.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use erpos_kernel::Kernel;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, QueryPairs};
use crate::extract::Authenticated;

/// Proposes a schedule for a day's requests on top of the bookings already made.
#[utoipa::path(post, path = "/api/v1/bookings/plan", tag = "bookings", operation_id = "plan_day",
    request_body = erpos_kernel::app::plan::PlanAsked,
    responses((status = 200, description = "the visits placed (each with the body of the booking that takes it), those left out and why, the bound no plan can beat and the load on every holder", body = erpos_kernel::app::plan::DayPlan),
              (status = 403, description = "needs bookings:read", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer: times, windows, unknown treatments or practitioners", body = super::error::ErrorBody)))]
pub async fn plan(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::plan::propose(&k, &caller, &body).await?
    )))
}

/// The load of every resource and practitioner per day or week against its working time.
#[utoipa::path(get, path = "/api/v1/capacity", tag = "bookings", operation_id = "capacity_report",
    params(("from" = String, Query, description = "the window's start (RFC 3339; a local midnight)"),
           ("to" = String, Query, description = "its end, at most 92 days later"),
           ("by" = Option<String>, Query, description = "day (the default) or week"),
           ("branch" = Option<String>, Query, description = "only this branch's holders (and those serving every branch)")),
    responses((status = 200, description = "per holder and period: working minutes, booked minutes, load", body = erpos_kernel::app::capacity::CapacityReport),
              (status = 400, description = "a bad or missing parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs bookings:read", body = super::error::ErrorBody)))]
pub async fn report(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::capacity::report(&k, &caller, &params).await?
    )))
}

/// What a plan of N visits of each treatment over a window would need of each kind of
/// holder, against what is free.
#[utoipa::path(post, path = "/api/v1/capacity/needs", tag = "bookings", operation_id = "capacity_needs",
    request_body = erpos_kernel::app::capacity::NeedsAsked,
    responses((status = 200, description = "per resource type and skill: minutes needed and free, members needed, shortfall", body = erpos_kernel::app::capacity::Needs),
              (status = 403, description = "needs bookings:read", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn needs(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::capacity::needs(&k, &caller, &body).await?
    )))
}
