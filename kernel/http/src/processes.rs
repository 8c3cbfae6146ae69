//! `/api/v1/processes` and `/api/v1/queues`: start processes, watch them, act on them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_design::Issue;
use serde_json::{Value, json};

use super::ApiError;
use super::error::ErrorCode;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;
use erpos_design::Catalog;
use erpos_kernel::Kernel;
use erpos_kernel::app::processes::{Binding, StartProcess};
use erpos_kernel::caller::{Caller, Permission, ServiceOp};
use erpos_kernel::engine::state_name;
use erpos_kernel::scheduler::{Pcb, Pid, ProcessState, Scheduler};

/// One page of processes, newest first: those of `matching` with an id below `cursor`, at
/// most `limit`, each shown by `show`. Returns the list's shape `{items, total, next_cursor}`
/// (the cursor is the last id shown).
pub fn pcb_page<'a>(
    matching: impl Iterator<Item = &'a Pcb>,
    cursor: Option<Pid>,
    limit: usize,
    show: impl Fn(&Pcb) -> Value,
) -> Value {
    let all: Vec<&Pcb> = matching.collect();
    let mut items: Vec<Value> = all
        .iter()
        .rev()
        .filter(|p| cursor.is_none_or(|c| p.id < c))
        .take(limit + 1)
        .map(|p| show(p))
        .collect();
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items
            .last()
            .and_then(|p| p["id"].as_u64())
            .map(|id| id.to_string())
    } else {
        None
    };
    json!({"items": items, "total": all.len(), "next_cursor": next_cursor})
}

/// The process if the caller may see it ([`erpos_kernel::app::processes::visible`]).
pub async fn visible_pcb(k: &Kernel, caller: &Caller, id: &str) -> Result<Pcb, ApiError> {
    Ok(erpos_kernel::app::processes::visible(k, caller, id).await?)
}

fn invalid(path: &str, message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ValidationFailed,
        "the request is invalid",
    )
    .with_details(vec![Issue::new(path, message)])
}

/// The PCB as the API shows it.
pub fn pcb_json(p: &Pcb) -> Value {
    let mut v = json!(p);
    v["state"] = json!(state_name(p.state));
    v["current_steps"] = json!(p.step.iter().collect::<Vec<_>>());
    v["record"] = p
        .record
        .as_ref()
        .map_or(Value::Null, |(item, id)| json!({"item": item, "id": id}));
    v
}

/// The PCB as `caller` may see it: [`pcb_json`] with the bound record in its context
/// redacted to what they may read (see `erpos_kernel::redact`).
pub fn pcb_for(core: &Scheduler, catalog: &Catalog, caller: &Caller, p: &Pcb) -> Value {
    let svc = core.service(&p.service, p.version).map(|s| &**s);
    erpos_kernel::redact::pcb(catalog, svc, caller, p, pcb_json(p))
}

/// Starts a process: `{"service", "version"?, "record": {"item", "id"}?, "priority"?,
/// "context"?, "predecessor"?, "start_at"?}`. The bound record must exist; it is put in the
/// context as `record` for conditions.
#[utoipa::path(post, path = "/api/v1/processes", tag = "processes", operation_id = "start_process", request_body = super::schema::StartProcess,
    responses((status = 201, description = "the PCB", body = super::schema::Process),
              (status = 403, description = "needs services:{service}:start, or records:{item}:read to bind a record", body = super::error::ErrorBody),
              (status = 404, description = "no such service (or version)", body = super::error::ErrorBody),
              (status = 409, description = "the service may not be started now (`wrong_state`)", body = super::error::ErrorBody),
              (status = 422, description = "invalid request: an unknown key, a missing service, a record that does not exist or is not the service's subject, a predecessor one may not see…", body = super::error::ErrorBody)))]
pub async fn start(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("", "expected a JSON object"))?;
    for key in obj.keys() {
        if ![
            "service",
            "version",
            "record",
            "priority",
            "context",
            "predecessor",
            "start_at",
            "decision",
        ]
        .contains(&key.as_str())
        {
            return Err(invalid(&format!("/{key}"), "unknown key"));
        }
    }
    let service = obj
        .get("service")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("/service", "the service name is required"))?;
    // The grant first: a caller who may not start learns nothing about the body's rules.
    erpos_kernel::app::require(
        &caller,
        Permission::Service {
            name: service,
            op: ServiceOp::Start,
        },
        &format!("starting '{service}'"),
    )?;
    let version = match obj.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| invalid("/version", "expected a version number"))?,
        ),
    };
    let priority = match obj.get("priority") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|p| (0..=100).contains(p))
                .map(|p| p as i32)
                .ok_or_else(|| invalid("/priority", "expected a whole number from 0 to 100"))?,
        ),
    };
    let context = obj.get("context").cloned().unwrap_or_else(|| json!({}));
    let binding = match obj.get("record") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let item = r
                .get("item")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("/record/item", "the DataItem is required"))?
                .to_owned();
            match (r.get("id"), r.get("fields")) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "/record",
                        "bind a stored record (\"id\") or create one (\"fields\"), not both",
                    ));
                }
                (None, Some(fields)) if fields.is_object() => Some(Binding::New {
                    item,
                    fields: fields.clone(),
                }),
                (None, Some(_)) => {
                    return Err(invalid("/record/fields", "expected a JSON object"));
                }
                (id, None) => Some(Binding::Existing {
                    item,
                    id: id
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid("/record/id", "the record id is required"))?
                        .to_owned(),
                }),
            }
        }
    };
    let predecessor = match obj.get("predecessor") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| invalid("/predecessor", "expected a process id"))?,
        ),
    };
    let start_at_ms = match obj.get("start_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(erpos_design::value::parse_datetime)
                .map(|t| t.timestamp_millis())
                .ok_or_else(|| invalid("/start_at", "expected an RFC 3339 date-time"))?,
        ),
    };
    let decision = match obj.get("decision") {
        None | Some(Value::Null) => None,
        Some(d) if d.is_object() => Some(d.clone()),
        Some(_) => return Err(invalid("/decision", "expected a JSON object")),
    };
    let started = erpos_kernel::app::processes::start(
        &k,
        &caller,
        StartProcess {
            service: service.to_owned(),
            version,
            priority,
            context,
            binding,
            predecessor,
            start_at_ms,
            decision,
        },
    )
    .await?;
    let pid = started.pid;
    let schema = k.definitions.schema();
    let pcb = k
        .engine
        .read(|c| c.pcb(pid).map(|p| pcb_for(c, &schema.catalog, &caller, p)))
        .await;
    Ok((StatusCode::CREATED, Json(pcb.unwrap_or(Value::Null))))
}

/// Lists processes: filters `state`, `service`, `operator`, `resource`, `wait` (resource,
/// operator, event, timer, children), `parent`; `limit` (1–500, default 50) and `cursor`
/// (the last id seen); newest first.
#[utoipa::path(get, path = "/api/v1/processes", tag = "processes", operation_id = "list_processes",
    params(("state" = Option<erpos_kernel::scheduler::pcb::ProcessState>, Query, description = "NEW, READY, RUNNING, WAITING, SUSPENDED or TERMINATED (any case)"),
           ("service" = Option<String>, Query, description = "service name"),
           ("operator" = Option<String>, Query, description = "operator handling the current step"),
           ("resource" = Option<String>, Query, description = "resource held"),
           ("wait" = Option<super::schema::WaitKind>, Query, description = "wait reason kind"),
           ("parent" = Option<u64>, Query, description = "the parent process"),
           ("creator" = Option<String>, Query, description = "who started it"),
           ("serial" = Option<String>, Query, description = "serial number (LEAVE-20261121-0007)"),
           ("ids" = Option<String>, Query, description = "batch lookup: comma-separated process ids"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1 to 500 (default 50)"),
           ("cursor" = Option<u64>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "the processes the caller may see, newest first", body = super::schema::ProcessList),
              (status = 400, description = "bad or unknown parameter", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut limit = 50usize;
    let mut cursor: Option<Pid> = None;
    let mut filters: Vec<(String, String)> = Vec::new();
    let bad = ApiError::bad_parameter;
    for (key, value) in params {
        match key.as_str() {
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
            "state" => {
                if !ProcessState::ALL
                    .iter()
                    .any(|s| state_name(*s) == value.to_uppercase())
                {
                    return Err(bad(
                        &key,
                        "one of NEW, READY, RUNNING, WAITING, SUSPENDED, TERMINATED",
                    ));
                }
                filters.push((key, value.to_uppercase()));
            }
            // A wait kind outside the list would silently match nothing: refused, like a
            // state (found by the schemathesis run: `?wait=AAA` answered an empty list).
            "wait"
                if !["resource", "operator", "event", "timer", "children"]
                    .contains(&value.as_str()) =>
            {
                return Err(bad(
                    &key,
                    "one of resource, operator, event, timer, children",
                ));
            }
            // A parent is a process id (`?parent=-1` or `true` answered an empty list).
            "parent"
                if value
                    .parse::<Pid>()
                    .ok()
                    .filter(|n| i64::try_from(*n).is_ok())
                    .is_none() =>
            {
                return Err(bad(&key, "a process id"));
            }
            "service" | "operator" | "resource" | "wait" | "parent" | "serial" | "creator" => {
                filters.push((key, value))
            }
            // Batch state lookup: `ids=3,7,12` (at most 500).
            "ids" => {
                let ids: Vec<&str> = value.split(',').filter(|v| !v.is_empty()).collect();
                if ids.is_empty()
                    || ids.len() > 500
                    || ids.iter().any(|v| v.parse::<Pid>().is_err())
                {
                    return Err(bad(&key, "a comma-separated list of 1 to 500 process ids"));
                }
                filters.push((key, value));
            }
            _ => return Err(bad(&key, "unknown parameter")),
        }
    }
    let schema = k.definitions.schema();
    let page = k
        .engine
        .read(|core| {
            let matches = |p: &Pcb| {
                filters.iter().all(|(key, value)| match key.as_str() {
                    "state" => state_name(p.state) == value,
                    "service" => &*p.service == value.as_str(),
                    "operator" => p.operator.as_deref() == Some(value),
                    "resource" => p.allocations.iter().any(|a| &a.resource == value),
                    "wait" => {
                        p.wait
                            .as_ref()
                            .and_then(|w| serde_json::to_value(w).ok())
                            .and_then(|w| w["kind"].as_str().map(str::to_owned))
                            .as_deref()
                            == Some(value)
                    }
                    "parent" => p.parent.map(|x| x.to_string()).as_deref() == Some(value),
                    "serial" => p.serial.as_deref() == Some(value),
                    "creator" => p.creator.as_deref() == Some(value),
                    "ids" => value
                        .split(',')
                        .any(|v| v.parse::<Pid>().ok() == Some(p.id)),
                    _ => false,
                })
            };
            let visible = core
                .pcbs()
                .filter(|p| matches(p) && erpos_kernel::tasks::visible(p, &caller));
            pcb_page(visible, cursor, limit, |p| {
                pcb_for(core, &schema.catalog, &caller, p)
            })
        })
        .await;
    Ok(Json(page))
}

/// One process with its full history (every move: who, when, from, to, why, step, context).
#[utoipa::path(get, path = "/api/v1/processes/{id}", tag = "processes", operation_id = "show_process",
    params(("id" = u64, Path, description = "process id")),
    responses((status = 200, description = "the PCB with its form, actions and history", body = super::schema::ProcessDetail),
              (status = 403, description = "not one the caller may see (also answered for one that does not exist)", body = super::error::ErrorBody),
              (status = 404, description = "no such process (to a caller who may see every process)", body = super::error::ErrorBody),
              (status = 409, description = "its stored row could not be read back (`quarantined`)", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pcb = visible_pcb(&k, &caller, &id).await?;
    let schema = k.definitions.schema();
    let catalog = &schema.catalog;
    let (form, actions, mut out, access) = k
        .engine
        .read(|c| {
            let svc = c.service(&pcb.service, pcb.version).map(|s| &**s);
            (
                erpos_kernel::tasks::form(c, &pcb, &caller),
                erpos_kernel::tasks::actions(c, &pcb, &caller),
                pcb_for(c, catalog, &caller, &pcb),
                erpos_kernel::redact::process_access(catalog, svc, &caller, &pcb),
            )
        })
        .await;
    let mut history = k.engine.history(pcb.id).await?;
    for entry in &mut history {
        erpos_kernel::redact::history_entry(catalog, &caller, &pcb, &access, entry);
    }
    let mut form = form;
    if let Some(shown) = form.get_mut("record") {
        let form_access = erpos_kernel::redact::form_access(catalog, &caller, &pcb);
        erpos_kernel::redact::snapshot(catalog, &caller, &pcb, &form_access, shown);
    }
    out["form"] = form;
    out["actions"] = json!(actions);
    out["history"] = json!(history);
    Ok(Json(out))
}

/// The flowchart of the process's own service version with where it is outlined and the
/// steps it went through dotted (from its stored history), for the console's process page.
#[utoipa::path(get, path = "/api/v1/processes/{id}/flowchart.svg", tag = "processes", operation_id = "process_flowchart",
    params(("id" = u64, Path, description = "process id")),
    responses((status = 200, description = "the marked flowchart", content_type = "image/svg+xml", body = String),
              (status = 403, description = "not the caller's to see", body = super::error::ErrorBody),
              (status = 404, description = "no such process", body = super::error::ErrorBody)))]
pub async fn flowchart(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let pcb = visible_pcb(&k, &caller, &id).await?;
    let service = k
        .engine
        .read(|c| c.service(&pcb.service, pcb.version).cloned())
        .await
        .ok_or_else(|| {
            erpos_kernel::KernelError::NotFound(format!(
                "service '{}' version {}",
                pcb.service, pcb.version
            ))
        })?;
    let mut visited: Vec<String> = Vec::new();
    for entry in k.engine.history(pcb.id).await? {
        if let Some(step) = entry.get("step").and_then(Value::as_str)
            && !visited.iter().any(|v| v == step)
        {
            visited.push(step.to_owned());
        }
    }
    let current: Vec<String> = if pcb.state == ProcessState::Terminated {
        Vec::new()
    } else {
        pcb.step.iter().map(|s| s.to_string()).collect()
    };
    let marks = erpos_design::flowchart::Marks { current, visited };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "image/svg+xml; charset=utf-8",
        )],
        erpos_design::flowchart::flowchart_svg_marked(&service, &marks),
    ))
}

/// What the caller may do at a process now: claim, handle (each transition with its
/// attribute), forward, add a signer, return (to which steps), withdraw, change state.
#[utoipa::path(get, path = "/api/v1/processes/{id}/actions", tag = "processes", operation_id = "process_actions",
    params(("id" = u64, Path, description = "process id")),
    responses((status = 200, description = "what the caller may do now", body = super::schema::ProcessActions),
              (status = 403, description = "not the caller's to see", body = super::error::ErrorBody),
              (status = 404, description = "no such process", body = super::error::ErrorBody),
              (status = 409, description = "its stored row could not be read back (`quarantined`)", body = super::error::ErrorBody)))]
pub async fn actions(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pcb = visible_pcb(&k, &caller, &id).await?;
    let actions = k
        .engine
        .read(|c| erpos_kernel::tasks::actions(c, &pcb, &caller))
        .await;
    Ok(Json(json!({"process": pcb.id, "actions": actions})))
}

/// Acts on a process. Work items: `claim`, `handle` (`{"transition"?, "attribute"?: agree |
/// reject | other, "comment"?, "fields"?, "context"?}`), `forward` (`{"to", "reason"}`),
/// `add_signer` (`{"signer", "reason"}`), `return` (`{"step", "to": "last_handler" |
/// "candidates", "reason"}`), `withdraw` (the creator), `set_aside` (`{"reason"?}`: the
/// operator puts her running step aside for other work) and `take_up` (she takes it up
/// again; 409 while she is at capacity). Administration: `suspend` /
/// `terminate` (`{"reason"}`), `resume`, `signal` (`{"event", "payload"}`),
/// `change_state` (`{"step", "reason"}`), and `complete` (`{"transition", "context"}`, the
/// step's operator or an administrator). An illegal request gets 409 naming the current
/// state; one the caller may not make gets 403; neither changes anything.
#[utoipa::path(post, path = "/api/v1/processes/{id}/{action}", tag = "processes", operation_id = "act_on_process",
    request_body(content = Option<super::schema::ActionBody>, description = "optional; the keys the action takes"),
    params(("id" = u64, Path, description = "process id"), ("action" = super::schema::ActionName, Path, description = "the action")),
    responses((status = 200, description = "the PCB after the action (null if it is gone)", body = Option<super::schema::Process>),
              (status = 403, description = "not allowed, or not the caller's to see", body = super::error::ErrorBody),
              (status = 404, description = "no such process or action", body = super::error::ErrorBody),
              (status = 409, description = "illegal in the current state (`illegal_move`, `wrong_state`, `conflict`, `quarantined`)", body = super::error::ErrorBody),
              (status = 422, description = "invalid body: an unknown key, a missing or too long value, a field not editable or required at the step, no such transition", body = super::error::ErrorBody)))]
pub async fn act(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = super::extract::optional_body(&body, json!({}))?;
    if !body.is_object() {
        return Err(invalid("", "expected a JSON object"));
    }
    if !erpos_kernel::app::work::ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!(
                "no action '{action}': use claim, handle, forward, add_signer, return, withdraw, set_aside, take_up, change_state, suspend, resume, terminate, signal or complete"
            ),
        ));
    }
    let pcb = erpos_kernel::app::processes::visible_to_act(&k, &caller, &id).await?;
    let pid = pcb.id;
    erpos_kernel::app::work::act(&k, &caller, &pcb, &action, &body).await?;
    let schema = k.definitions.schema();
    let pcb = k
        .engine
        .read(|c| c.pcb(pid).map(|p| pcb_for(c, &schema.catalog, &caller, p)))
        .await;
    Ok(Json(pcb.unwrap_or(Value::Null)))
}

/// Queue counts: processes per state and per wait reason, and per resource its capacity,
/// units in use, holders and how many READY processes wait for its type.
#[utoipa::path(get, path = "/api/v1/queues", tag = "processes", operation_id = "queues",
    responses((status = 200, description = "processes per state and wait reason, and each resource's use", body = super::schema::Queues),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn queues(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(erpos_kernel::app::monitor::queues(&k, &caller).await?))
}
