//! `/api/v1/calendars`: working calendars (weekly hours, holidays, exceptions) that
//! deadlines are counted in.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path};
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::error::KernelError;

/// Every calendar.
#[utoipa::path(get, path = "/api/v1/calendars", tag = "time", operation_id = "list_calendars",
    responses((status = 200, description = "every calendar", body = super::schema::CalendarList)))]
pub async fn list(State(k): State<Arc<Kernel>>) -> Json<Value> {
    let all = k.calendars.all();
    let items: Vec<&erpos_design::WorkingCalendar> = all.values().collect();
    Json(json!({"total": items.len(), "items": items, "next_cursor": null}))
}

/// Creates or replaces a calendar: `{"name": "organisation", "label": {"zh": "门诊工作日历"},
/// "utc_offset_minutes": 480, "weekly": {"mon": [["09:00", "12:00"], ["13:00", "18:00"]], …},
/// "holidays": ["2026-10-01"], "exceptions": {"2026-09-27": [["09:00", "18:00"]]}}`. The
/// one named `organisation` is the default for every deadline.
#[utoipa::path(post, path = "/api/v1/calendars", tag = "time", operation_id = "save_calendar", request_body = erpos_design::WorkingCalendar,
    responses((status = 201, description = "the calendar as stored (name derived)", body = erpos_design::WorkingCalendar),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 422, description = "invalid, every problem at its pointer (`invalid_definition`)", body = super::error::ErrorBody)))]
pub async fn save(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let cal = erpos_kernel::app::design::save_calendar(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(cal)))
}

/// One calendar.
#[utoipa::path(get, path = "/api/v1/calendars/{name}", tag = "time", operation_id = "show_calendar",
    params(("name" = String, Path, description = "calendar name")),
    responses((status = 200, description = "the calendar", body = erpos_design::WorkingCalendar),
              (status = 404, description = "no such calendar", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = k.calendars.all();
    let cal = all
        .get(&name)
        .ok_or_else(|| KernelError::NotFound(format!("calendar '{name}'")))?;
    Ok(Json(json!(cal)))
}

/// Deletes a calendar (deadlines already set keep their instant). A calendar a published
/// service's step counts its deadline in, or a user works by, is refused (409 `in_use`,
/// naming each in `details`).
#[utoipa::path(delete, path = "/api/v1/calendars/{name}", tag = "time", operation_id = "delete_calendar",
    params(("name" = String, Path, description = "calendar name")),
    responses((status = 204, description = "deleted"),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no such calendar", body = super::error::ErrorBody),
              (status = 409, description = "still used (`in_use`)", body = super::error::ErrorBody)))]
pub async fn delete(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    erpos_kernel::app::design::delete_calendar(&k, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
