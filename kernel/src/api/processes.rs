//! `/api/v1/processes` and `/api/v1/queues`: start processes, watch them, act on them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_design::Issue;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::Kernel;
use crate::caller::{Caller, FieldAccess, Permission, RecordOp, ServiceOp};
use crate::engine::state_name;
use crate::error::KernelError;
use crate::scheduler::{Command, Pcb, Pid, ProcessState, Scheduler};
use erpos_design::Catalog;

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

/// A 403: the caller lacks what the request needs (nothing changed).
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The process if the caller may see it. A process that is not theirs to see and one that
/// does not exist get the same 403, so ids cannot be probed; only a caller who may see
/// every process (an administrator, or a `services:*:view` grant) is told 404.
pub async fn visible_pcb(k: &Kernel, caller: &Caller, id: &str) -> Result<Pcb, ApiError> {
    let not_yours = |id: &str| {
        forbidden(format!(
            "process {id} is not one you may see (other people's processes need a services:{{name}}:view grant)"
        ))
    };
    let sees_all = caller.may(Permission::Service {
        name: "*",
        op: ServiceOp::View,
    });
    let Ok(pid) = id.parse::<Pid>() else {
        return Err(if sees_all {
            ApiError::from(KernelError::NotFound(format!("process '{id}'")))
        } else {
            not_yours(id)
        });
    };
    match k.engine.read(|c| c.pcb(pid).cloned()).await {
        Some(pcb) if crate::tasks::visible(&pcb, caller) => Ok(pcb),
        None => {
            // A process whose stored row could not be read back is out of the running
            // system; a monitor is told so (others get what a missing process gets).
            if caller.may(Permission::Monitor)
                && let Some(q) = k.engine.quarantined_process(pid)
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "quarantined",
                    format!(
                        "process {pid} could not be read back from storage and is quarantined: {}",
                        q.error
                    ),
                ));
            }
            Err(if sees_all {
                ApiError::from(KernelError::NotFound(format!("process {pid}")))
            } else {
                not_yours(id)
            })
        }
        Some(_) => Err(not_yours(id)),
    }
}

fn invalid(path: &str, message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
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
/// redacted to what they may read (see `crate::redact`).
pub fn pcb_for(core: &Scheduler, catalog: &Catalog, caller: &Caller, p: &Pcb) -> Value {
    let svc = core.service(&p.service, p.version).map(|s| &**s);
    crate::redact::pcb(catalog, svc, caller, p, pcb_json(p))
}

/// Starts a process: `{"service", "version"?, "record": {"item", "id"}?, "priority"?,
/// "context"?, "predecessor"?, "start_at"?}`. The bound record must exist; it is put in the
/// context as `record` for conditions.
#[utoipa::path(post, path = "/api/v1/processes", tag = "processes", request_body = Object,
    responses((status = 201, description = "the PCB"), (status = 404, description = "no such service", body = super::error::ErrorBody),
              (status = 422, description = "invalid request", body = super::error::ErrorBody)))]
pub async fn start(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
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
    if !caller.may(Permission::Service {
        name: service,
        op: ServiceOp::Start,
    }) {
        return Err(forbidden(format!(
            "starting '{service}' needs services:{service}:start"
        )));
    }
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
    let mut context = obj.get("context").cloned().unwrap_or_else(|| json!({}));
    let Some(given) = context.as_object() else {
        return Err(invalid("/context", "expected a JSON object"));
    };
    if given.contains_key("record") {
        return Err(invalid(
            "/context/record",
            "the bound record is read from storage: bind one with \"record\": {\"item\", \"id\"}",
        ));
    }
    let record = match obj.get("record") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let item = r
                .get("item")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("/record/item", "the DataItem is required"))?;
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("/record/id", "the record id is required"))?;
            let subject = k
                .engine
                .read(|c| c.startable(service, version).map(|s| s.subject.clone()))
                .await
                .ok_or_else(|| {
                    ApiError::from(KernelError::NotFound(format!("service '{service}'")))
                })?;
            match subject.as_deref() {
                Some(s) if s == item => {}
                Some(s) => {
                    return Err(invalid(
                        "/record/item",
                        &format!("'{service}' is about records of '{s}', not '{item}'"),
                    ));
                }
                None => {
                    return Err(invalid(
                        "/record",
                        &format!(
                            "'{service}' has no subject DataItem: its processes bind no record"
                        ),
                    ));
                }
            }
            // Binding a record shows it to the process's participants: only someone who
            // may read it may bind it (checked before looking it up, so a refusal says
            // nothing about whether it exists).
            if caller.record_fields(item, RecordOp::Read) != FieldAccess::All {
                return Err(ApiError::forbidden(
                    &format!("binding a record of '{item}'"),
                    &format!("records:{item}:read"),
                ));
            }
            let stored = k.records.get(item, id).await.map_err(|e| match e {
                KernelError::NotFound(_) | KernelError::Design(_) => {
                    invalid("/record", &e.to_string())
                }
                other => ApiError::from(other),
            })?;
            context["record"] = stored;
            Some((item.to_owned(), id.to_owned()))
        }
    };
    let predecessor = match obj.get("predecessor") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let pid = v
                .as_u64()
                .ok_or_else(|| invalid("/predecessor", "expected a process id"))?;
            // Only a process the caller may see can be waited for; one they may not see
            // gets the same answer as one that does not exist.
            let seen = k
                .engine
                .read(|c| {
                    c.pcb(pid)
                        .is_some_and(|p| crate::tasks::visible(p, &caller))
                })
                .await;
            if !seen {
                return Err(invalid(
                    "/predecessor",
                    &format!("no process {pid} that you may see"),
                ));
            }
            Some(pid)
        }
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
    let outcome = k
        .engine
        .command(Command::Start {
            service: service.to_owned(),
            version,
            priority,
            record,
            context,
            predecessor,
            start_at_ms,
            by: caller.user.clone(),
        })
        .await?;
    let pid = outcome
        .pid
        .ok_or_else(|| ApiError::from(KernelError::Corrupt("start gave no pid".into())))?;
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
#[utoipa::path(get, path = "/api/v1/processes", tag = "processes",
    params(("state" = Option<String>, Query, description = "NEW, READY, RUNNING, WAITING, SUSPENDED or TERMINATED"),
           ("service" = Option<String>, Query, description = "service name"),
           ("operator" = Option<String>, Query, description = "operator handling the current step"),
           ("resource" = Option<String>, Query, description = "resource held"),
           ("wait" = Option<String>, Query, description = "wait reason kind"),
           ("serial" = Option<String>, Query, description = "serial number (LEAVE-20261121-0007)"),
           ("ids" = Option<String>, Query, description = "batch lookup: comma-separated process ids"),
           ("limit" = Option<u32>, Query, description = "page size"), ("cursor" = Option<String>, Query, description = "next_cursor")),
    responses((status = 200, description = "`{items, total, next_cursor}`"), (status = 400, description = "bad parameter", body = super::error::ErrorBody)))]
pub async fn list(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
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
                cursor = Some(
                    value
                        .parse()
                        .map_err(|_| bad(&key, "not a cursor from this list"))?,
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
                .filter(|p| matches(p) && crate::tasks::visible(p, &caller));
            pcb_page(visible, cursor, limit, |p| {
                pcb_for(core, &schema.catalog, &caller, p)
            })
        })
        .await;
    Ok(Json(page))
}

/// One process with its full history (every move: who, when, from, to, why, step, context).
#[utoipa::path(get, path = "/api/v1/processes/{id}", tag = "processes",
    params(("id" = u64, Path, description = "process id")),
    responses((status = 200, description = "the PCB with `history`"), (status = 404, description = "no such process", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
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
                crate::tasks::form(c, &pcb, &caller),
                crate::tasks::actions(c, &pcb, &caller),
                pcb_for(c, catalog, &caller, &pcb),
                crate::redact::process_access(catalog, svc, &caller, &pcb),
            )
        })
        .await;
    let mut history = k.engine.history(pcb.id).await?;
    for entry in &mut history {
        crate::redact::history_entry(catalog, &caller, &pcb, &access, entry);
    }
    let mut form = form;
    if let Some(shown) = form.get_mut("record") {
        let form_access = crate::redact::form_access(&caller, &pcb);
        crate::redact::snapshot(catalog, &caller, &pcb, &form_access, shown);
    }
    out["form"] = form;
    out["actions"] = json!(actions);
    out["history"] = json!(history);
    Ok(Json(out))
}

/// What the caller may do at a process now: claim, handle (each transition with its
/// attribute), forward, add a signer, return (to which steps), withdraw, change state.
#[utoipa::path(get, path = "/api/v1/processes/{id}/actions", tag = "processes",
    params(("id" = u64, Path, description = "process id")),
    responses((status = 200, description = "`{actions: [...]}`"), (status = 403, description = "not the caller's to see", body = super::error::ErrorBody),
              (status = 404, description = "no such process", body = super::error::ErrorBody)))]
pub async fn actions(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pcb = visible_pcb(&k, &caller, &id).await?;
    let actions = k
        .engine
        .read(|c| crate::tasks::actions(c, &pcb, &caller))
        .await;
    Ok(Json(json!({"process": pcb.id, "actions": actions})))
}

/// Acts on a process. Work items: `claim`, `handle` (`{"transition"?, "attribute"?: agree |
/// reject | other, "comment"?, "fields"?, "context"?}`), `forward` (`{"to", "reason"}`),
/// `add_signer` (`{"signer", "reason"}`), `return` (`{"step", "to": "last_handler" |
/// "candidates", "reason"}`), `withdraw` (the creator). Administration: `suspend` /
/// `terminate` (`{"reason"}`), `resume`, `signal` (`{"event", "payload"}`),
/// `change_state` (`{"step", "reason"}`), and `complete` (`{"transition", "context"}`, the
/// step's operator or an administrator). An illegal request gets 409 naming the current
/// state; one the caller may not make gets 403; neither changes anything.
#[utoipa::path(post, path = "/api/v1/processes/{id}/{action}", tag = "processes", request_body = Object,
    params(("id" = u64, Path, description = "process id"), ("action" = String, Path, description = "claim, handle, forward, add_signer, return, withdraw, change_state, suspend, resume, terminate, signal or complete")),
    responses((status = 200, description = "the PCB after the action"), (status = 403, description = "not allowed", body = super::error::ErrorBody),
              (status = 409, description = "illegal in the current state", body = super::error::ErrorBody)))]
pub async fn act(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = super::extract::optional_body(&body, json!({}))?;
    if !body.is_object() {
        return Err(invalid("", "expected a JSON object"));
    }
    let pcb = visible_pcb(&k, &caller, &id).await?;
    let pid = pcb.id;
    let planned = super::tasks::command(&k, &caller, &pcb, &action, &body).await?;
    super::tasks::run(&k, planned).await?;
    let schema = k.definitions.schema();
    let pcb = k
        .engine
        .read(|c| c.pcb(pid).map(|p| pcb_for(c, &schema.catalog, &caller, p)))
        .await;
    Ok(Json(pcb.unwrap_or(Value::Null)))
}

/// Queue counts: processes per state and per wait reason, and per resource its capacity,
/// units in use, holders and how many READY processes wait for its type.
#[utoipa::path(get, path = "/api/v1/queues", tag = "processes", responses((status = 200, description = "counts"), (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn queues(State(k): State<Arc<Kernel>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    if !caller.may(Permission::Monitor) {
        return Err(forbidden("the queues need the monitor grant"));
    }
    let out = k
        .engine
        .read(|core| {
            let states: serde_json::Map<String, Value> = crate::scheduler::pcb::count_by_state(core.pcbs_unordered())
                .into_iter()
                .map(|(s, n)| (state_name(s).to_owned(), json!(n)))
                .collect();
            let mut waits: std::collections::BTreeMap<String, usize> = Default::default();
            let mut waiting_for_type: std::collections::BTreeMap<String, usize> = Default::default();
            for p in core.pcbs_unordered() {
                if let Some(w) = &p.wait {
                    let kind = serde_json::to_value(w).ok().and_then(|v| v["kind"].as_str().map(str::to_owned)).unwrap_or_default();
                    *waits.entry(kind).or_default() += 1;
                    if let crate::scheduler::WaitReason::Resource { types } = w {
                        for t in types {
                            *waiting_for_type.entry(t.clone()).or_default() += 1;
                        }
                    }
                }
            }
            let resources: Vec<Value> = core
                .pool()
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "type": r.resource_type, "capacity": r.capacity,
                        "in_use": core.pool().in_use(&r.id),
                        "holders": core.pool().holders(&r.id).into_iter().map(|(p, q)| json!({"process": p, "quantity": q})).collect::<Vec<_>>(),
                        "waiting": waiting_for_type.get(&r.resource_type).copied().unwrap_or(0),
                    })
                })
                .collect();
            json!({"states": states, "waiting": waits, "resources": resources, "ready_queue": core.ready_queue()})
        })
        .await;
    Ok(Json(out))
}
