//! Work items over HTTP: the to-do / handled / created / related lists, and delegations.
//! The actions people take on processes (claim, handle, forward, add a signer, return,
//! withdraw, and the administrators' ones) are use cases of the application layer
//! (`erpos_kernel::app::work`), called by `POST /processes/{id}/{action}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path, QueryPairs};
use super::processes::pcb_json;
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::app::delegations::Whose;
use erpos_kernel::caller::Caller;
use erpos_kernel::engine::state_name;
use erpos_kernel::error::KernelError;
use erpos_kernel::scheduler::{Pcb, Pid, ProcessState};
use erpos_kernel::tasks::View;

/// A process as a list shows it to `caller`, with its step's label, the record snapshot
/// they may read and `user`'s items in it.
fn entry(
    core: &erpos_kernel::scheduler::Scheduler,
    catalog: &erpos_design::Catalog,
    caller: &Caller,
    p: &Pcb,
    user: &str,
) -> Value {
    let mut v = pcb_json(p);
    v["step_label"] = json!(
        core.service(&p.service, p.version)
            .and_then(|s| s.step(p.step.as_deref()?).and_then(|st| st.label.clone()))
    );
    if let Some(o) = v.as_object_mut() {
        o.remove("context");
        o.remove("history");
    }
    v["created_at"] =
        json!(chrono::DateTime::from_timestamp_millis(p.created_ms).map(|t| t.to_rfc3339()));
    let mut snapshot = p.context.get("record").cloned().unwrap_or(Value::Null);
    let svc = core.service(&p.service, p.version).map(|s| &**s);
    let access = erpos_kernel::redact::process_access(catalog, svc, caller, p);
    erpos_kernel::redact::snapshot(catalog, caller, p, &access, &mut snapshot);
    // The service's work-order view: its columns of the bound record, as the caller may
    // see them (a field left out of the snapshot shows no value).
    if let Some(svc) = svc
        && !svc.columns.is_empty()
    {
        let fields = svc
            .subject
            .as_deref()
            .map(|s| catalog.effective_fields(s))
            .unwrap_or_default();
        v["columns"] = json!(
            svc.columns
                .iter()
                .map(|name| {
                    let label = fields
                        .iter()
                        .find(|e| e.field.name == *name)
                        .map(|e| json!(e.field.label));
                    json!({"name": name, "label": label, "value": snapshot.get(name).cloned().unwrap_or(Value::Null)})
                })
                .collect::<Vec<_>>()
        );
    }
    v["record_snapshot"] = snapshot;
    v["work"] = json!(
        p.work
            .iter()
            .filter(|w| &*w.user == user)
            .collect::<Vec<_>>()
    );
    v
}

/// A person's lists: `view` = `todo` (default), `handled`, `created` or `related`; `user`
/// (default the caller; another's needs `monitor`); filters `service`, `state`, `step`,
/// `ids` (comma-separated), `finished` (true/false), `created_from` / `created_to` (RFC
/// 3339); `limit` (1–500, default 50) and `cursor`; newest first.
#[utoipa::path(get, path = "/api/v1/work-items", tag = "processes", operation_id = "work_items",
    params(("view" = Option<super::schema::WorkView>, Query, description = "todo (default), handled, created or related"),
           ("user" = Option<String>, Query, description = "whose lists (default: the caller)"),
           ("service" = Option<String>, Query, description = "service name"),
           ("state" = Option<erpos_kernel::scheduler::pcb::ProcessState>, Query, description = "process state (any case)"),
           ("step" = Option<String>, Query, description = "current step"),
           ("ids" = Option<String>, Query, description = "comma-separated process ids"),
           ("finished" = Option<bool>, Query, description = "ended or not"),
           ("created_from" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
           ("created_to" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1 to 500 (default 50)"),
           ("cursor" = Option<u64>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "the person's processes, newest first", body = super::schema::WorkList),
              (status = 400, description = "bad or unknown parameter", body = super::error::ErrorBody),
              (status = 403, description = "another user's lists", body = super::error::ErrorBody)))]
pub async fn work_items(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let bad = ApiError::bad_parameter;
    let mut view = View::Todo;
    let mut user = caller.user.clone();
    let mut limit = 50usize;
    let mut cursor: Option<Pid> = None;
    let mut service: Option<String> = None;
    let mut state: Option<String> = None;
    let mut step: Option<String> = None;
    let mut ids: Option<Vec<Pid>> = None;
    let mut finished: Option<bool> = None;
    let mut from_ms: Option<i64> = None;
    let mut to_ms: Option<i64> = None;
    let time = |key: &str, v: &str| {
        erpos_design::value::parse_datetime(v)
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| bad(key, "expected an RFC 3339 date-time"))
    };
    for (key, value) in params {
        match key.as_str() {
            "view" => {
                view = View::parse(&value)
                    .ok_or_else(|| bad(&key, "one of todo, handled, created, related"))?
            }
            "user" => user = value,
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| bad(&key, "limit must be 1 to 500"))?
            }
            "cursor" => {
                // A process id this list gave out: stored ids fit a signed 64-bit integer.
                cursor = Some(
                    value
                        .parse::<Pid>()
                        .ok()
                        .filter(|n| i64::try_from(*n).is_ok())
                        .ok_or_else(|| bad(&key, "not a cursor from this list"))?,
                )
            }
            "service" => service = Some(value),
            "step" => step = Some(value),
            "state" => {
                let upper = value.to_uppercase();
                if !ProcessState::ALL.iter().any(|s| state_name(*s) == upper) {
                    return Err(bad(
                        &key,
                        "one of NEW, READY, RUNNING, WAITING, SUSPENDED, TERMINATED",
                    ));
                }
                state = Some(upper);
            }
            "ids" => {
                let list: Option<Vec<Pid>> =
                    value.split(',').map(|v| v.trim().parse().ok()).collect();
                ids = Some(
                    list.filter(|l| !l.is_empty() && l.len() <= 500)
                        .ok_or_else(|| {
                            bad(&key, "a comma-separated list of 1 to 500 process ids")
                        })?,
                );
            }
            "finished" => finished = Some(value.parse().map_err(|_| bad(&key, "true or false"))?),
            "created_from" => from_ms = Some(time(&key, &value)?),
            "created_to" => to_ms = Some(time(&key, &value)?),
            _ => return Err(bad(&key, "unknown parameter")),
        }
    }
    erpos_kernel::app::monitor::may_see_lists_of(&caller, &user)?;
    let schema = k.definitions.schema();
    let page = k
        .engine
        .read(|core| {
            let keep = |p: &Pcb| {
                erpos_kernel::tasks::in_view(p, &user, view)
                    && caller.in_scope(&p.service)
                    && service.as_deref().is_none_or(|s| *p.service == *s)
                    && state.as_deref().is_none_or(|s| state_name(p.state) == s)
                    && step.as_deref().is_none_or(|s| p.step.as_deref() == Some(s))
                    && ids.as_ref().is_none_or(|l| l.contains(&p.id))
                    && finished.is_none_or(|f| f == (p.state == ProcessState::Terminated))
                    && from_ms.is_none_or(|t| p.created_ms >= t)
                    && to_ms.is_none_or(|t| p.created_ms < t)
            };
            super::processes::pcb_page(core.pcbs().filter(|p| keep(p)), cursor, limit, |p| {
                entry(core, &schema.catalog, &caller, p, &user)
            })
        })
        .await;
    Ok(Json(page))
}

/// Delegations: the caller's own (`?user=` another's, or `?all=true`, needs
/// `organisation`).
#[utoipa::path(get, path = "/api/v1/delegations", tag = "organisation", operation_id = "list_delegations",
    params(("user" = Option<String>, Query, description = "whose"), ("all" = Option<bool>, Query, description = "everyone's")),
    responses((status = 200, description = "the delegations", body = super::schema::DelegationList),
              (status = 400, description = "an unknown parameter", body = super::error::ErrorBody),
              (status = 403, description = "another user's", body = super::error::ErrorBody)))]
pub async fn delegations(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut whose = Whose::Own;
    for (key, value) in params {
        match key.as_str() {
            "user" => whose = Whose::User(value),
            "all" if value == "true" => whose = Whose::Everyone,
            "all" if value == "false" => {}
            _ => return Err(ApiError::bad_parameter(&key, "unknown parameter")),
        }
    }
    let items: Vec<Value> = erpos_kernel::app::delegations::list(&k, &caller, whose)
        .await?
        .iter()
        .map(erpos_kernel::delegations::to_json)
        .collect();
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}

/// Creates a delegation `{"user"?, "deputy", "from", "to", "services"?}`: from `from` to
/// `to`, the user's new work items go to the deputy. For another user it needs
/// `organisation`.
#[utoipa::path(post, path = "/api/v1/delegations", tag = "organisation", operation_id = "create_delegation", request_body = super::schema::NewDelegation,
    responses((status = 201, description = "the delegation", body = super::schema::Delegation),
              (status = 400, description = "the body is not an object", body = super::error::ErrorBody),
              (status = 403, description = "another user's", body = super::error::ErrorBody),
              (status = 422, description = "invalid", body = super::error::ErrorBody)))]
pub async fn create_delegation(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let d = erpos_kernel::app::delegations::create(&k, &caller, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(erpos_kernel::delegations::to_json(&d)),
    ))
}

/// Ends a delegation (one's own, or anyone's with `organisation`).
#[utoipa::path(delete, path = "/api/v1/delegations/{id}", tag = "organisation", operation_id = "delete_delegation",
    params(("id" = i64, Path, description = "delegation id")),
    responses((status = 200, description = "the removed delegation", body = super::schema::Delegation),
              (status = 403, description = "another user's", body = super::error::ErrorBody),
              (status = 404, description = "no such delegation", body = super::error::ErrorBody)))]
pub async fn delete_delegation(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::from(KernelError::NotFound(format!("delegation '{id}'"))))?;
    let d = erpos_kernel::app::delegations::end(&k, &caller, id).await?;
    Ok(Json(erpos_kernel::delegations::to_json(&d)))
}
