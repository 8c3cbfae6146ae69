//! `/api/v1/courses`: courses and packages of N sessions of a treatment until a day
//! (issue 14 §7). A session is deducted under the treatment's `reference` (a retry answers
//! the first, 200) and restored with the same reference when the treatment is voided; an
//! expired course is 409 `course_expired`, a used-up one 409 `course_used_up`.

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

/// Sells a course.
#[utoipa::path(post, path = "/api/v1/courses", tag = "money", operation_id = "sell_course",
    request_body = erpos_kernel::app::courses::SaleRequest,
    responses((status = 201, description = "the course", body = erpos_design::course::Course),
              (status = 403, description = "needs money:charge", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn sell(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let course = erpos_kernel::app::courses::sell(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(course)))
}

/// The courses of a holder, oldest first.
#[utoipa::path(get, path = "/api/v1/courses", tag = "money", operation_id = "list_courses",
    params(("holder" = Option<String>, Query, description = "only this holder's (a patient's record id)"),
           ("after" = Option<String>, Query, description = "only those sold after this course (the last id of the page before)"),
           ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 50)")),
    responses((status = 200, description = "the courses", body = super::schema::CourseList),
              (status = 400, description = "a bad parameter, named", body = super::error::ErrorBody),
              (status = 403, description = "needs money:read", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"items": erpos_kernel::app::courses::list(&k, &caller, &params).await?}),
    ))
}

/// One course with its history.
#[utoipa::path(get, path = "/api/v1/courses/{id}", tag = "money", operation_id = "show_course",
    params(("id" = String, Path, description = "course id")),
    responses((status = 200, description = "the course and its uses", body = super::schema::CourseShown),
              (status = 403, description = "needs money:read", body = super::error::ErrorBody),
              (status = 404, description = "no such course", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let course = erpos_kernel::app::courses::get(&k, &caller, &id).await?;
    let uses = erpos_kernel::app::courses::uses(&k, &caller, &id).await?;
    Ok(Json(json!({"course": course, "uses": uses})))
}

/// Deducts a session at a treatment, or restores it when the treatment is voided.
#[utoipa::path(post, path = "/api/v1/courses/{id}/uses", tag = "money", operation_id = "use_course",
    request_body = erpos_kernel::app::courses::UseRequest,
    params(("id" = String, Path, description = "course id")),
    responses((status = 201, description = "the course after it and the use", body = super::schema::CourseShown),
              (status = 200, description = "a retry: the course as it is and the first use", body = super::schema::CourseShown),
              (status = 403, description = "needs money:charge", body = super::error::ErrorBody),
              (status = 404, description = "no such course, or nothing used under the reference to restore", body = super::error::ErrorBody),
              (status = 409, description = "the course expired (`course_expired`) or is used up (`course_used_up`)", body = super::error::ErrorBody),
              (status = 422, description = "every problem at its pointer", body = super::error::ErrorBody)))]
pub async fn change(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (course, used, new) = erpos_kernel::app::courses::change(&k, &caller, &id, &body).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"course": course, "uses": [used]}))))
}
