//! `/api/v1/bookings`: reservations of rooms, devices and practitioners over time (issue 14
//! §2). Booking a slot that is taken answers 409 `booking_conflict` with the bookings in
//! the way and the next free starts (`/alternatives/{i}` in `details`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_kernel::Kernel;
use erpos_kernel::bookings::BookingState;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;

/// Books resources and operators over a span, all or nothing.
#[utoipa::path(post, path = "/api/v1/bookings", tag = "bookings", operation_id = "create_booking",
    request_body = erpos_kernel::app::bookings::BookingRequest,
    responses((status = 201, description = "the booking", body = erpos_kernel::bookings::Booking),
              (status = 403, description = "needs bookings:book", body = super::error::ErrorBody),
              (status = 409, description = "the slot is taken (`booking_conflict`): the bookings in the way and the next free starts at `/alternatives/{i}`", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer: times, buffers, unknown holders, a span outside a holder's working hours", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let booking = erpos_kernel::app::bookings::book(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(booking)))
}

/// Bookings by start: of a resource or an operator, over a span, in a state.
#[utoipa::path(get, path = "/api/v1/bookings", tag = "bookings", operation_id = "list_bookings",
    params(("branch" = Option<String>, Query, description = "only this branch's (a branch's staff see their own and the shared ones anyway; another needs branches:<name>)"),
           ("resource" = Option<String>, Query, description = "only those holding this resource"),
           ("operator" = Option<String>, Query, description = "only those holding this operator"),
           ("from" = Option<String>, Query, description = "only those held after this (RFC 3339)"),
           ("to" = Option<String>, Query, description = "only those held before this (RFC 3339)"),
           ("state" = Option<String>, Query, description = "booked, cancelled or no_show"),
           ("limit" = Option<u32>, Query, description = "page size, 1 to 500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "one page of bookings", body = super::schema::BookingList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs bookings:read (and branches:<name> for another branch)", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (items, next) = erpos_kernel::app::bookings::list(&k, &caller, &params).await?;
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

/// One booking with its history.
#[utoipa::path(get, path = "/api/v1/bookings/{id}", tag = "bookings", operation_id = "show_booking",
    params(("id" = String, Path, description = "booking id")),
    responses((status = 200, description = "the booking and its history", body = super::schema::BookingShown),
              (status = 403, description = "needs bookings:read", body = super::error::ErrorBody),
              (status = 404, description = "no such booking", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        erpos_kernel::app::bookings::show(&k, &caller, &id).await?,
    ))
}

/// Moves a booking to new times (same holders).
#[utoipa::path(post, path = "/api/v1/bookings/{id}/reschedule", tag = "bookings", operation_id = "reschedule_booking",
    request_body = erpos_kernel::app::bookings::RescheduleRequest,
    params(("id" = String, Path, description = "booking id")),
    responses((status = 200, description = "the booking at its new times", body = erpos_kernel::bookings::Booking),
              (status = 403, description = "needs bookings:book", body = super::error::ErrorBody),
              (status = 404, description = "no such booking", body = super::error::ErrorBody),
              (status = 409, description = "the new slot is taken (`booking_conflict`), the booking is no longer booked (`booking_not_active`), or it changed since `version` (`version_conflict`)", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn reschedule(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::bookings::reschedule(&k, &caller, &id, &body).await?
    )))
}

async fn end(
    k: &Kernel,
    caller: &erpos_kernel::caller::Caller,
    id: &str,
    state: BookingState,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let body = super::extract::optional_body(body, json!({}))?;
    Ok(Json(json!(
        erpos_kernel::app::bookings::end(k, caller, id, state, &body).await?
    )))
}

/// Cancels a booking: it holds nothing from now on.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/cancel", tag = "bookings", operation_id = "cancel_booking",
    request_body(content = Option<erpos_kernel::app::bookings::EndRequest>, description = "optional: a reason and the version it is based on"),
    params(("id" = String, Path, description = "booking id")),
    responses((status = 200, description = "the cancelled booking", body = erpos_kernel::bookings::Booking),
              (status = 403, description = "needs bookings:book", body = super::error::ErrorBody),
              (status = 404, description = "no such booking", body = super::error::ErrorBody),
              (status = 409, description = "no longer booked (`booking_not_active`) or changed since `version`", body = super::error::ErrorBody)))]
pub async fn cancel(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    end(&k, &caller, &id, BookingState::Cancelled, &body).await
}

/// Marks a booking a no-show: the patient did not come; it holds nothing from now on.
#[utoipa::path(post, path = "/api/v1/bookings/{id}/no-show", tag = "bookings", operation_id = "no_show_booking",
    request_body(content = Option<erpos_kernel::app::bookings::EndRequest>, description = "optional: a reason and the version it is based on"),
    params(("id" = String, Path, description = "booking id")),
    responses((status = 200, description = "the booking, marked", body = erpos_kernel::bookings::Booking),
              (status = 403, description = "needs bookings:book", body = super::error::ErrorBody),
              (status = 404, description = "no such booking", body = super::error::ErrorBody),
              (status = 409, description = "no longer booked (`booking_not_active`) or changed since `version`", body = super::error::ErrorBody)))]
pub async fn no_show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    end(&k, &caller, &id, BookingState::NoShow, &body).await
}

/// The free starts for a treatment: one resource of each type it needs and a practitioner
/// with its skill, free for it and its buffers within their working hours.
#[utoipa::path(get, path = "/api/v1/bookings/slots", tag = "bookings", operation_id = "search_slots",
    params(("treatment" = String, Query, description = "the treatment's name"),
           ("from" = String, Query, description = "the earliest start (RFC 3339)"),
           ("to" = String, Query, description = "the latest end (RFC 3339), at most 31 days after from"),
           ("practitioner" = Option<String>, Query, description = "the practitioner to take first when free"),
           ("branch" = Option<String>, Query, description = "only this branch's rooms, devices and practitioners (and those serving every branch)"),
           ("limit" = Option<u32>, Query, description = "at most this many slots, 1 to 200 (default 20)"),
           ("order" = Option<String>, Query, description = "earliest (the default) or tightest (least fragmentation first)")),
    responses((status = 200, description = "the slots, each with the holders it would take", body = erpos_kernel::app::slots::Slots),
              (status = 400, description = "a bad or missing parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs bookings:read", body = super::error::ErrorBody),
              (status = 404, description = "no such treatment", body = super::error::ErrorBody)))]
pub async fn slots(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::slots::search(&k, &caller, &params).await?
    )))
}
