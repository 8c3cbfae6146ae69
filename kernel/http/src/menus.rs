//! `GET /api/v1/menus`: the caller's menu, generated from the definitions, arranged by the
//! stored layout (`/api/v1/menus/layout`) and filtered by their grants (`app::menus`).

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
    let sections = erpos_kernel::app::menus::menu(&k, &caller).await?;
    Ok(Json(
        json!({"total": sections.len(), "items": sections, "next_cursor": null}),
    ))
}

/// The stored menu layout (`{"sections": []}` and `stored: false` when none is stored and
/// the menu is generated).
#[utoipa::path(get, path = "/api/v1/menus/layout", tag = "design", operation_id = "menu_layout",
    responses((status = 200, description = "the layout and whether one is stored", body = super::schema::MenuLayoutShown),
              (status = 403, description = "needs design", body = super::error::ErrorBody)))]
pub async fn layout(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    erpos_kernel::app::require(
        &caller,
        erpos_kernel::caller::Permission::Design,
        "reading the menu layout",
    )?;
    let stored = erpos_kernel::app::menus::layout(&k).await?;
    Ok(Json(json!({
        "stored": stored.is_some(),
        "layout": stored.unwrap_or_default(),
    })))
}

/// Stores the menu layout: sections in order, each with the entries it places (a work
/// list, a published service, a DataItem — each at most once), optionally relabelled.
/// Every caller's menu follows it, filtered by their grants; entries it does not place
/// follow in the generated sections.
#[utoipa::path(put, path = "/api/v1/menus/layout", tag = "design", operation_id = "save_menu_layout",
    request_body = erpos_design::menu::MenuLayout,
    responses((status = 200, description = "the layout stored", body = erpos_design::menu::MenuLayout),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer (an unknown service or DataItem, an entry placed twice, a bad key or label)", body = super::error::ErrorBody)))]
pub async fn save_layout(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    crate::extract::JsonBody(body): crate::extract::JsonBody,
) -> Result<Json<Value>, ApiError> {
    let layout = erpos_kernel::app::menus::save_layout(&k, &caller, &body).await?;
    Ok(Json(json!(layout)))
}

/// Forgets the stored layout: the menu is generated from the definitions again.
#[utoipa::path(delete, path = "/api/v1/menus/layout", tag = "design", operation_id = "reset_menu_layout",
    responses((status = 204, description = "forgotten"),
              (status = 403, description = "needs design", body = super::error::ErrorBody)))]
pub async fn reset_layout(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Result<axum::http::StatusCode, ApiError> {
    erpos_kernel::app::menus::reset_layout(&k, &caller).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
