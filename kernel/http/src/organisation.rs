//! `/api/v1/departments`, `/api/v1/roles`, `/api/v1/skills` and the list of users: the
//! organisation that steps' participants are resolved from.

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
use erpos_kernel::organisation;

fn listing(items: Vec<Value>) -> Json<Value> {
    Json(json!({"total": items.len(), "items": items, "next_cursor": null}))
}

/// Every department (`parent` and `leader` make the tree).
#[utoipa::path(get, path = "/api/v1/departments", tag = "organisation", operation_id = "list_departments",
    responses((status = 200, description = "every department", body = super::schema::DepartmentList)))]
pub async fn departments(State(k): State<Arc<Kernel>>) -> Result<Json<Value>, ApiError> {
    Ok(listing(organisation::list(&k, "departments").await?))
}

/// Creates or replaces a department: `{"label": {"zh": "皮肤科"}, "parent": "menzhenbu",
/// "leader": "dr_chen"}`.
#[utoipa::path(post, path = "/api/v1/departments", tag = "organisation", operation_id = "save_department", request_body = super::schema::Department,
    responses((status = 201, description = "the department as stored (name derived)", body = super::schema::Department),
              (status = 403, description = "needs organisation (and what the change gives)", body = super::error::ErrorBody),
              (status = 409, description = "it would leave no administrator (`last_administrator`)", body = super::error::ErrorBody),
              (status = 422, description = "invalid: an unknown key, no such parent or leader, a loop", body = super::error::ErrorBody)))]
pub async fn save_department(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let dept = erpos_kernel::app::organisation::save_department(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(dept)))
}

/// Every role.
#[utoipa::path(get, path = "/api/v1/roles", tag = "organisation", operation_id = "list_roles",
    responses((status = 200, description = "every role", body = super::schema::TitleList)))]
pub async fn roles(State(k): State<Arc<Kernel>>) -> Result<Json<Value>, ApiError> {
    Ok(listing(organisation::list(&k, "roles").await?))
}

/// Creates or replaces a role: `{"name": "front_desk", "label": {"zh": "前台"},
/// "permissions": ["records:huanzhe:read", "services:treatment_visit:start"]}`. Everyone
/// holding the role has its permissions (each checked: 422 at `/permissions/N`). The
/// caller must hold every permission the role gives now and will give (403); a
/// replacement that would leave no administrator is refused (409 `last_administrator`).
#[utoipa::path(post, path = "/api/v1/roles", tag = "organisation", operation_id = "save_role", request_body = super::schema::Title,
    responses((status = 201, description = "the role as stored (name derived)", body = super::schema::Title),
              (status = 403, description = "a permission the caller does not hold", body = super::error::ErrorBody),
              (status = 409, description = "it would leave no administrator", body = super::error::ErrorBody),
              (status = 422, description = "invalid", body = super::error::ErrorBody)))]
pub async fn save_role(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let role = erpos_kernel::app::organisation::save_role(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// Removes a role. One a published service's step picks its operators by, or that a user
/// holds, is refused (409 `in_use`): the message names the services and the users, and
/// `details` says where each uses it.
#[utoipa::path(delete, path = "/api/v1/roles/{name}", tag = "organisation", operation_id = "remove_role",
    params(("name" = String, Path, description = "role name")),
    responses((status = 204, description = "removed"),
              (status = 403, description = "needs organisation", body = super::error::ErrorBody),
              (status = 404, description = "no such role", body = super::error::ErrorBody),
              (status = 409, description = "still used (`in_use`)", body = super::error::ErrorBody)))]
pub async fn remove_role(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    erpos_kernel::app::organisation::remove_role(&k, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a skill. One a published service's step needs (of its operators or its
/// resources), or that a user holds, is refused (409 `in_use`, naming them).
#[utoipa::path(delete, path = "/api/v1/skills/{name}", tag = "organisation", operation_id = "remove_skill",
    params(("name" = String, Path, description = "skill name")),
    responses((status = 204, description = "removed"),
              (status = 403, description = "needs organisation", body = super::error::ErrorBody),
              (status = 404, description = "no such skill", body = super::error::ErrorBody),
              (status = 409, description = "still used (`in_use`)", body = super::error::ErrorBody)))]
pub async fn remove_skill(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    erpos_kernel::app::organisation::remove_skill(&k, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every skill (and certification).
#[utoipa::path(get, path = "/api/v1/skills", tag = "organisation", operation_id = "list_skills",
    responses((status = 200, description = "every skill", body = super::schema::TitleList)))]
pub async fn skills(State(k): State<Arc<Kernel>>) -> Result<Json<Value>, ApiError> {
    Ok(listing(organisation::list(&k, "skills").await?))
}

/// Creates or replaces a skill: `{"name": "laser", "label": {"zh": "激光治疗"},
/// "certification": true}`.
#[utoipa::path(post, path = "/api/v1/skills", tag = "organisation", operation_id = "save_skill", request_body = super::schema::Title,
    responses((status = 201, description = "the skill as stored (name derived)", body = super::schema::Title),
              (status = 403, description = "needs organisation", body = super::error::ErrorBody),
              (status = 422, description = "invalid (an unknown key, a bad name)", body = super::error::ErrorBody)))]
pub async fn save_skill(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let skill = erpos_kernel::app::organisation::save_skill(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(skill)))
}

/// Every user with roles, skills, capacity, department and current load.
#[utoipa::path(get, path = "/api/v1/users", tag = "organisation", operation_id = "list_users",
    responses((status = 200, description = "every user with their current load", body = super::schema::UserList)))]
pub async fn users(State(k): State<Arc<Kernel>>) -> Json<Value> {
    let items = k
        .engine
        .read(|c| {
            c.operators()
                .map(|o| {
                    let mut v = json!(o);
                    v["load"] = json!(c.load_of(&o.id));
                    v
                })
                .collect()
        })
        .await;
    listing(items)
}
