//! `GET /api/v1/menus`: the caller's menu, generated from the definitions and filtered by
//! their grants (`app::menus`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiError;
use crate::extract::Authenticated;
use erpos_kernel::Kernel;

/// The caller's menu: their work lists, the services they may start and the DataItems
/// whose records they may read, each with the API path it opens. Sections with nothing
/// for the caller are left out.
#[utoipa::path(get, path = "/api/v1/menus", tag = "design", operation_id = "menus",
    responses((status = 200, description = "the caller's menu, in sections", body = super::schema::MenuList),
              (status = 401, description = "no credentials", body = super::error::ErrorBody)))]
pub async fn menus(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let sections = erpos_kernel::app::menus::menu(&k, &caller).await;
    Ok(Json(
        json!({"total": sections.len(), "items": sections, "next_cursor": null}),
    ))
}
