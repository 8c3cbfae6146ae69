//! `/api/v1/bookings/waitlist`: patients waiting for a treatment within a window; a freed
//! slot (a cancellation, a no-show, a booking moved) is offered to the first whose window
//! it opens in, and accepting books it (issue 14 §3).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_kernel::Kernel;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;

/// Puts a patient on the waitlist.
#[utoipa::path(post, path = "/api/v1/bookings/waitlist", tag = "bookings", operation_id = "join_waitlist",
    request_body = erpos_kernel::app::waitlist::JoinRequest,
    responses((status = 201, description = "the entry, waiting", body = erpos_kernel::app::waitlist::WaitlistEntry),
              (status = 403, description = "needs bookings:book", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer: the window, the treatment, the practitioner", body = super::error::ErrorBody)))]
pub async fn join(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let entry = erpos_kernel::app::waitlist::join(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// The waitlist, oldest first.
#[utoipa::path(get, path = "/api/v1/bookings/waitlist", tag = "bookings", operation_id = "list_waitlist",
    params(("state" = Option<String>, Query, description = "waiting, offered, booked or withdrawn"),
           ("after" = Option<String>, Query, description = "only entries after this id (the last of the page before)"),
           ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 50)")),
    responses((status = 200, description = "the entries", body = super::schema::WaitlistList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs bookings:read", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::waitlist::list(&k, &caller, &params).await?}),
    ))
}

/// Accepts an offer: books the slot offered.
#[utoipa::path(post, path = "/api/v1/bookings/waitlist/{id}/accept", tag = "bookings", operation_id = "accept_waitlist_offer",
    params(("id" = String, Path, description = "waitlist entry id")),
    responses((status = 200, description = "the entry, booked, with its booking's id", body = erpos_kernel::app::waitlist::WaitlistEntry),
              (status = 403, description = "needs bookings:book", body = super::error::ErrorBody),
              (status = 404, description = "no such entry", body = super::error::ErrorBody),
              (status = 409, description = "nothing is offered (`waitlist_not_offered`), or the slot was taken meanwhile (`booking_conflict`, and the entry waits again)", body = super::error::ErrorBody)))]
pub async fn accept(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::waitlist::accept(&k, &caller, &id).await?
    )))
}

/// Takes an entry off the waitlist.
#[utoipa::path(post, path = "/api/v1/bookings/waitlist/{id}/withdraw", tag = "bookings", operation_id = "withdraw_waitlist_entry",
    params(("id" = String, Path, description = "waitlist entry id")),
    responses((status = 200, description = "the entry, withdrawn", body = erpos_kernel::app::waitlist::WaitlistEntry),
              (status = 403, description = "needs bookings:book", body = super::error::ErrorBody),
              (status = 404, description = "no such entry", body = super::error::ErrorBody),
              (status = 409, description = "the entry is booked or withdrawn (`waitlist_not_offered`)", body = super::error::ErrorBody)))]
pub async fn withdraw(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::waitlist::withdraw(&k, &caller, &id).await?
    )))
}
