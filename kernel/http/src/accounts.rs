//! `/api/v1/accounts`: prepaid accounts and their ledgers (issue 14 §7). An entry names
//! the caller's `reference`: a retry answers the entry it booked (200), never a second
//! one; a balance that would go negative is 409 `insufficient_balance`.

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

/// Opens a prepaid account with a zero balance.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "money", operation_id = "open_account",
    request_body = erpos_kernel::app::ledger::OpenRequest,
    responses((status = 201, description = "the account", body = erpos_design::ledger::Account),
              (status = 403, description = "needs money:charge", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn open(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let account = erpos_kernel::app::ledger::open(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

/// The accounts of a holder, oldest first.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "money", operation_id = "list_accounts",
    params(("holder" = Option<String>, Query, description = "only this holder's (a patient's record id)"),
           ("after" = Option<String>, Query, description = "only those opened after this account (the last id of the page before)"),
           ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 50)")),
    responses((status = 200, description = "the accounts", body = super::schema::AccountList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs money:read", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::ledger::list(&k, &caller, &params).await?}),
    ))
}

/// One account with its balance.
#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "money", operation_id = "show_account",
    params(("id" = String, Path, description = "account id")),
    responses((status = 200, description = "the account", body = erpos_design::ledger::Account),
              (status = 403, description = "needs money:read", body = super::error::ErrorBody),
              (status = 404, description = "no such account", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        erpos_kernel::app::ledger::get(&k, &caller, &id).await?
    )))
}

/// The ledger of an account, in order.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/entries", tag = "money", operation_id = "list_account_entries",
    params(("id" = String, Path, description = "account id"),
           ("after" = Option<i64>, Query, description = "only entries after this seq"),
           ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 50)")),
    responses((status = 200, description = "the entries", body = super::schema::EntryList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs money:read", body = super::error::ErrorBody),
              (status = 404, description = "no such account", body = super::error::ErrorBody)))]
pub async fn entries(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::ledger::entries(&k, &caller, &id, &params).await?}),
    ))
}

/// Books an entry: a recharge, a consumption, a refund or an adjustment.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/entries", tag = "money", operation_id = "post_account_entry",
    request_body = erpos_kernel::app::ledger::EntryRequest,
    params(("id" = String, Path, description = "account id")),
    responses((status = 201, description = "the entry booked", body = erpos_design::ledger::Entry),
              (status = 200, description = "a retry: the entry its reference booked before", body = erpos_design::ledger::Entry),
              (status = 403, description = "needs money:charge (money:adjust for an adjustment)", body = super::error::ErrorBody),
              (status = 404, description = "no such account", body = super::error::ErrorBody),
              (status = 409, description = "the balance would go negative (`insufficient_balance`), or the reference booked another entry (`reference_reused`)", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer: the amount, the reference", body = super::error::ErrorBody)))]
pub async fn post(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (entry, new) = erpos_kernel::app::ledger::post(&k, &caller, &id, &body).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry)))
}
