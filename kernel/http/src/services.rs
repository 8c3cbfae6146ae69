//! `/api/v1/services`: define, publish and draw business processes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use erpos_design::Issue;
use serde_json::{Value, json};

use super::ApiError;
use super::error::ErrorCode;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::caller::Caller;
use erpos_kernel::error::KernelError;

/// An app token only sees the services it was issued for; any other is "not found" to it,
/// as if it did not exist.
fn visible(caller: &Caller, name: &str) -> Result<(), ApiError> {
    Ok(erpos_kernel::app::design::service_visible(caller, name)?)
}

/// Every service with its newest published version and whether a draft is pending (for an
/// app token: only its own services).
#[utoipa::path(get, path = "/api/v1/services", tag = "design", operation_id = "list_services",
    responses((status = 200, description = "every service (an app token's own only)", body = super::schema::ServiceList)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let items: Vec<Value> = k
        .services
        .list()
        .await?
        .into_iter()
        .filter(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| caller.in_scope(n))
        })
        .collect();
    let mut items = items;
    items.iter_mut().for_each(erpos_kernel::secrets::mask);
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}

/// Saves a service draft (validated: unreachable steps, no end, dangling transitions,
/// gateways without default, conditions that do not compile are refused, naming the step).
#[utoipa::path(post, path = "/api/v1/services", tag = "design", operation_id = "save_service", request_body = erpos_design::service::Service,
    responses((status = 201, description = "the draft as stored (secrets masked)", body = erpos_design::service::Service),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "a service outside an app token's own", body = super::error::ErrorBody),
              (status = 422, description = "invalid service, naming the step (`invalid_definition`), or a masked secret with nothing stored behind it", body = super::error::ErrorBody)))]
pub async fn save(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    erpos_kernel::app::design::may_save_service(&caller, &body)?;
    let mut body = body;
    if let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_owned) {
        let stored = match k.services.draft(&name).await? {
            Some(d) => Some(json!(d)),
            None => k.services.versions(&name).await.last().map(|s| json!(**s)),
        };
        restore_secrets(&mut body, stored.as_ref())?;
    } else {
        restore_secrets(&mut body, None)?;
    }
    let draft = erpos_kernel::app::design::save_service(&k, &caller, &body).await?;
    let mut shown = json!(draft);
    erpos_kernel::secrets::mask(&mut shown);
    Ok((StatusCode::CREATED, Json(shown)))
}

/// A service: its draft, its newest published version and every version number.
#[utoipa::path(get, path = "/api/v1/services/{name}", tag = "design", operation_id = "show_service", params(("name" = String, Path, description = "service name")),
    responses((status = 200, description = "the draft, the newest published version and every version number", body = super::schema::ServiceShown),
              (status = 404, description = "no such service", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible(&caller, &name)?;
    let draft = k.services.draft(&name).await?;
    let versions = k.services.versions(&name).await;
    if draft.is_none() && versions.is_empty() {
        return Err(KernelError::NotFound(format!("service '{name}'")).into());
    }
    let mut shown = json!({
        "name": name,
        "draft": draft,
        "published": versions.last().map(|s| json!(**s)),
        "versions": versions.iter().map(|s| s.version).collect::<Vec<_>>(),
        "releases": k.services.releases(&name).await?,
    });
    erpos_kernel::secrets::mask(&mut shown);
    Ok(Json(shown))
}

/// Puts back the stored secrets behind the masks a definition was shown with (see
/// `erpos_kernel::secrets`); a mask with nothing stored behind it is a 422 naming it.
pub(super) fn restore_secrets(body: &mut Value, stored: Option<&Value>) -> Result<(), ApiError> {
    let unresolved = erpos_kernel::secrets::restore(body, stored);
    if unresolved.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ValidationFailed,
        "a masked secret was sent where none is stored",
    )
    .with_details(
        unresolved
            .into_iter()
            .map(|p| {
                Issue::new(
                    p,
                    format!(
                        "'{}' only stands for a stored secret: send the secret itself",
                        erpos_kernel::secrets::MASK
                    ),
                )
            })
            .collect(),
    ))
}

/// Publishes the draft as a new frozen version, with its version notes (`{"notes": "…"}`,
/// optional); running processes keep theirs.
#[utoipa::path(post, path = "/api/v1/services/{name}/publish", tag = "design", operation_id = "publish_service", params(("name" = String, Path, description = "service name")),
    request_body(content = Option<erpos_kernel::app::design::Publication>, description = "optional; `{\"notes\": \"…\"}`: what this version changes"),
    responses((status = 200, description = "the published version", body = erpos_design::service::Service),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no such service", body = super::error::ErrorBody),
              (status = 409, description = "no draft (`no_draft`)", body = super::error::ErrorBody),
              (status = 422, description = "invalid (e.g. a sub-service not published), notes over 2,000 characters or an unknown key", body = super::error::ErrorBody)))]
pub async fn publish(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = super::extract::optional_body(&body, json!({}))?;
    let publication = erpos_kernel::app::design::read_publication(&body)?;
    let published =
        erpos_kernel::app::design::publish_service(&k, &caller, &name, &publication).await?;
    let mut shown = json!(published);
    erpos_kernel::secrets::mask(&mut shown);
    Ok(Json(shown))
}

/// A service draft checked as saving it would check it and drawn, with nothing stored:
/// the designer's live view as an analyst edits (`valid`, every problem at its pointer,
/// the flowchart of what could be read, the service as it would be stored).
#[utoipa::path(post, path = "/api/v1/services/preview", tag = "design", operation_id = "preview_service",
    request_body(content = super::schema::ServiceDraft, description = "a service draft as the designer holds it, every key optional (its problems are answered in the preview, not refused)"),
    responses((status = 200, description = "whether it would be accepted, its problems and its flowchart", body = erpos_kernel::app::design::ServicePreview),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "a service outside an app token's own", body = super::error::ErrorBody),
              (status = 422, description = "the body is not an object (a draft's own problems are answered in the preview, not refused)", body = super::error::ErrorBody)))]
pub async fn preview(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let preview = erpos_kernel::app::design::preview_service(&k, &caller, &body).await?;
    let mut shown = json!(preview);
    erpos_kernel::secrets::mask(&mut shown);
    Ok(Json(shown))
}

/// Moves running processes of one version to another: `{"from_version": 1, "to_version":
/// 2, "steps": {"old_step": "new_step"}, "dry_run": true}`. Each process whose current step
/// has a counterpart of the same kind (its own name, or the mapping's) moves as one
/// recorded transition; the others are listed under `refused`, each with why. A dry run
/// changes nothing and says the same. A mapping naming a step either version lacks is 422
/// at `/steps/{old}`.
#[utoipa::path(post, path = "/api/v1/services/{name}/instance-migration", tag = "processes", operation_id = "migrate_instances",
    params(("name" = String, Path, description = "service name")),
    request_body = erpos_kernel::app::migrations::InstanceMigration,
    responses((status = 200, description = "what moved and what could not, with why", body = erpos_kernel::app::migrations::MigrationReport),
              (status = 403, description = "needs services:{name}:administer", body = super::error::ErrorBody),
              (status = 404, description = "no such service", body = super::error::ErrorBody),
              (status = 422, description = "an unknown version or step", body = super::error::ErrorBody)))]
pub async fn migrate_instances(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let report =
        erpos_kernel::app::migrations::migrate_instances(&k, &caller, &name, &body).await?;
    Ok(Json(json!(report)))
}

/// The service drawn as an SVG flowchart (layered; `?version=N`, else the newest published,
/// else the draft).
#[utoipa::path(get, path = "/api/v1/services/{name}/flowchart.svg", tag = "design", operation_id = "service_flowchart",
    params(("name" = String, Path, description = "service name"), ("version" = Option<u32>, Query, description = "a published version number")),
    responses((status = 200, description = "the flowchart", content_type = "image/svg+xml", body = String),
              (status = 404, description = "no such service, or no such version", body = super::error::ErrorBody)))]
pub async fn flowchart(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    QueryPairs(params): QueryPairs,
) -> Result<impl IntoResponse, ApiError> {
    visible(&caller, &name)?;
    // A version that is not a whole number was ignored (the newest was drawn instead, found
    // by the schemathesis run): now it is refused, naming the parameter.
    let version: Option<u32> = params
        .iter()
        .find(|(k, _)| k == "version")
        .map(|(key, v)| {
            v.parse()
                .map_err(|_| ApiError::bad_parameter(key, "a published version number"))
        })
        .transpose()?;
    let versions = k.services.versions(&name).await;
    let service = match version {
        Some(v) => versions
            .iter()
            .find(|s| s.version == v)
            .map(|s| (**s).clone()),
        None => match versions.last() {
            Some(s) => Some((**s).clone()),
            None => k.services.draft(&name).await?,
        },
    };
    let service = service.ok_or_else(|| KernelError::NotFound(format!("service '{name}'")))?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        erpos_design::flowchart::flowchart_svg(&service),
    ))
}
