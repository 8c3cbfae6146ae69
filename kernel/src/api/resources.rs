//! `/api/v1/resource-types`, `/api/v1/resources` and `/api/v1/users`: what steps need and
//! who handles them, as the scheduler sees them.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_design::{FieldType, Issue};
use serde_json::{Value, json};

use super::ApiError;
use super::extract::JsonBody;
use crate::Kernel;
use crate::scheduler::{Operator, Resource};
use crate::sql::Sql;

/// The kinds of resource (MISSION §1).
pub const KINDS: [&str; 5] = ["material", "equipment", "facility", "capital", "knowledge"];

fn invalid(issues: Vec<Issue>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "the request is invalid",
    )
    .with_details(issues)
}

fn identifier(body: &Value, key: &str, issues: &mut Vec<Issue>) -> String {
    match body.get(key).and_then(Value::as_str) {
        Some(s)
            if erpos_design::naming::is_identifier(s)
                || (key == "id" && !s.trim().is_empty() && s.len() <= 100) =>
        {
            s.to_owned()
        }
        Some(_) => {
            issues.push(Issue::new(
                format!("/{key}"),
                "use lowercase letters, digits and single underscores, starting with a letter",
            ));
            String::new()
        }
        None => {
            issues.push(Issue::new(format!("/{key}"), "is required"));
            String::new()
        }
    }
}

fn strings(body: &Value, key: &str, issues: &mut Vec<Issue>) -> BTreeSet<String> {
    match body.get(key) {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            issues.push(Issue::new(
                format!("/{key}"),
                "expected an array of strings",
            ));
            BTreeSet::new()
        }
    }
}

fn capacity(body: &Value, issues: &mut Vec<Issue>) -> u32 {
    match body.get("capacity") {
        None | Some(Value::Null) => 1,
        Some(v) => match v
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .filter(|c| *c >= 1)
        {
            Some(c) => c,
            None => {
                issues.push(Issue::new(
                    "/capacity",
                    "expected a whole number of at least 1",
                ));
                1
            }
        },
    }
}

/// Defines a resource type: `{"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}}`.
#[utoipa::path(post, path = "/api/v1/resource-types", tag = "resources", request_body = Object,
    responses((status = 201, description = "stored"), (status = 422, description = "invalid", body = super::error::ErrorBody)))]
pub async fn create_type(
    State(k): State<Arc<Kernel>>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let mut issues = Vec::new();
    let name = identifier(&body, "name", &mut issues);
    let kind = body
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !KINDS.contains(&kind.as_str()) {
        issues.push(Issue::new("/kind", format!("one of: {}", KINDS.join(", "))));
    }
    if body
        .get("label")
        .and_then(|l| l.get("zh"))
        .and_then(Value::as_str)
        .is_none_or(|z| z.trim().is_empty())
    {
        issues.push(Issue::new("/label/zh", "a Chinese label is required"));
    }
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    let d = k.db.dialect();
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO resource_types (name, kind, definition) VALUES (")
        .text(&name)
        .push(", ")
        .text(&kind);
    sql.push(", ")
        .param(Some(body.to_string()), d.param_cast(FieldType::Json));
    sql.push(
        ") ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, definition = excluded.definition",
    );
    k.db.write_atomically(vec![sql]).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Every resource type.
#[utoipa::path(get, path = "/api/v1/resource-types", tag = "resources", responses((status = 200, description = "`{items, total}`")))]
pub async fn list_types(State(k): State<Arc<Kernel>>) -> Result<Json<Value>, ApiError> {
    let mut sql = Sql::new(k.db.dialect());
    sql.push("SELECT ")
        .col_text("definition")
        .push(" FROM resource_types ORDER BY name");
    let items: Vec<Value> =
        k.db.fetch(sql)
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}

/// Defines (or replaces) a resource instance: `{"id": "laser-room-1", "type": "laser_room",
/// "capacity": 1, "skills": [], "label": {"zh": "激光一室"}}`.
#[utoipa::path(post, path = "/api/v1/resources", tag = "resources", request_body = Object,
    responses((status = 201, description = "stored"), (status = 422, description = "invalid", body = super::error::ErrorBody)))]
pub async fn create(
    State(k): State<Arc<Kernel>>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let mut issues = Vec::new();
    let id = identifier(&body, "id", &mut issues);
    let rtype = identifier(&body, "type", &mut issues);
    let capacity = capacity(&body, &mut issues);
    let skills = strings(&body, "skills", &mut issues);
    if issues.is_empty() {
        let mut sql = Sql::new(k.db.dialect());
        sql.push("SELECT name FROM resource_types WHERE name = ")
            .text(&rtype);
        if k.db.fetch(sql).await?.is_empty() {
            issues.push(Issue::new(
                "/type",
                format!("no resource type '{rtype}': define it first"),
            ));
        }
    }
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    let resource = Resource {
        id,
        resource_type: rtype,
        capacity,
        skills,
    };
    k.engine.put_resource(resource, &body).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Every resource with its current allocations.
#[utoipa::path(get, path = "/api/v1/resources", tag = "resources", responses((status = 200, description = "`{items, total}`")))]
pub async fn list(State(k): State<Arc<Kernel>>) -> Json<Value> {
    let items: Vec<Value> = k
        .engine
        .read(|c| {
            c.pool()
                .iter()
                .map(|r| {
                    json!({"id": r.id, "type": r.resource_type, "capacity": r.capacity, "skills": r.skills,
                           "in_use": c.pool().in_use(&r.id),
                           "allocations": c.pool().holders(&r.id).into_iter().map(|(p, q)| json!({"process": p, "quantity": q})).collect::<Vec<_>>()})
                })
                .collect()
        })
        .await;
    Json(json!({"total": items.len(), "items": items, "next_cursor": null}))
}

/// Defines (or replaces) a user who can handle steps: `{"id": "li_yisheng", "name": "李医生",
/// "roles": ["doctor"], "skills": ["laser"], "capacity": 1}`.
#[utoipa::path(post, path = "/api/v1/users", tag = "resources", request_body = Object,
    responses((status = 201, description = "stored"), (status = 422, description = "invalid", body = super::error::ErrorBody)))]
pub async fn create_user(
    State(k): State<Arc<Kernel>>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let mut issues = Vec::new();
    let id = identifier(&body, "id", &mut issues);
    let roles = strings(&body, "roles", &mut issues);
    let skills = strings(&body, "skills", &mut issues);
    let capacity = capacity(&body, &mut issues);
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    k.engine
        .put_operator(Operator {
            id,
            roles,
            skills,
            capacity,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(body)))
}
