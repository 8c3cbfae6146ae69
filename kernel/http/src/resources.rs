//! `/api/v1/resource-types`, `/api/v1/resources` and `/api/v1/users`: what steps need and
//! who handles them, as the scheduler sees them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::JsonBody;
use crate::extract::Authenticated;
use erpos_kernel::Kernel;

/// Defines a resource type: `{"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}}`.
#[utoipa::path(post, path = "/api/v1/resource-types", tag = "resources", operation_id = "save_resource_type", request_body = super::schema::ResourceType,
    responses((status = 201, description = "the resource type, as sent", body = super::schema::ResourceType),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 422, description = "invalid (an unknown key, a bad name or kind, no Chinese label)", body = super::error::ErrorBody)))]
pub async fn create_type(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    erpos_kernel::app::design::save_resource_type(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Every resource type.
#[utoipa::path(get, path = "/api/v1/resource-types", tag = "resources", operation_id = "list_resource_types",
    responses((status = 200, description = "every resource type", body = super::schema::ResourceTypeList)))]
pub async fn list_types(State(k): State<Arc<Kernel>>) -> Result<Json<Value>, ApiError> {
    let items = erpos_kernel::resources::types(&k).await?;
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}

/// Defines (or replaces) a resource instance: `{"id": "laser-room-1", "type": "laser_room",
/// "capacity": 1, "skills": [], "label": {"zh": "激光一室"}}`.
#[utoipa::path(post, path = "/api/v1/resources", tag = "resources", operation_id = "save_resource", request_body = super::schema::ResourceBody,
    responses((status = 201, description = "the resource, as sent", body = super::schema::ResourceBody),
              (status = 403, description = "needs organisation", body = super::error::ErrorBody),
              (status = 409, description = "an id differing only in case exists (`id_taken`)", body = super::error::ErrorBody),
              (status = 422, description = "invalid (an unknown key, no such type, a bad capacity)", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    erpos_kernel::app::organisation::save_resource(&k, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Every resource with its current allocations.
#[utoipa::path(get, path = "/api/v1/resources", tag = "resources", operation_id = "list_resources",
    responses((status = 200, description = "every resource with what it holds", body = super::schema::ResourceList)))]
pub async fn list(State(k): State<Arc<Kernel>>) -> Result<Json<Value>, ApiError> {
    let labels = erpos_kernel::resources::resource_labels(&k).await?;
    let items: Vec<Value> = k
        .engine
        .read(|c| {
            c.pool()
                .iter()
                .map(|r| {
                    json!({"id": r.id, "label": labels.get(&r.id), "type": r.resource_type, "capacity": r.capacity, "skills": r.skills,
                           "branch": r.branch, "calendar": r.calendar,
                           "in_use": c.pool().in_use(&r.id),
                           "allocations": c.pool().holders(&r.id).into_iter().map(|(p, q)| json!({"process": p, "quantity": q})).collect::<Vec<_>>()})
                })
                .collect()
        })
        .await;
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}

/// Defines (or replaces) a user who can handle steps: `{"id": "li_yisheng", "name": "李医生",
/// "roles": ["doctor"], "skills": ["laser"], "capacity": 1, "password"?}`. The password (at
/// least 8 characters) is stored as an argon2id hash and never echoed.
#[utoipa::path(post, path = "/api/v1/users", tag = "resources", operation_id = "save_user", request_body = super::schema::UserBody,
    responses((status = 201, description = "the user, as sent, without the password", body = super::schema::UserBody),
              (status = 403, description = "needs organisation, and what the user can do and will be able to do", body = super::error::ErrorBody),
              (status = 409, description = "an id differing only in case exists (`id_taken`), or it would leave no administrator (`last_administrator`)", body = super::error::ErrorBody),
              (status = 422, description = "invalid (an unknown key, a short password, no such role…)", body = super::error::ErrorBody)))]
pub async fn create_user(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(mut body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    erpos_kernel::app::organisation::save_user(&k, &caller, &body).await?;
    if let Some(o) = body.as_object_mut() {
        o.remove("password");
    }
    Ok((StatusCode::CREATED, Json(body)))
}
