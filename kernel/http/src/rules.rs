//! `/api/v1/rules`, `/api/v1/events`, `/api/v1/outbox` and `/api/v1/notifications`: what
//! the kernel does by itself, what it reacted to, and what it still has to deliver.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use erpos_design::Issue;
use erpos_design::naming::is_identifier;
use erpos_design::rule::EventKind;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::require;
use super::error::ErrorCode;
use super::extract::{JsonBody, Path, QueryPairs};
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::app::monitor::Page;
use erpos_kernel::caller::Permission;

fn bad(key: &str, message: &str) -> ApiError {
    ApiError::bad_parameter(key, message)
}

/// Paging parameters every list here takes: `limit` (1–500, default 50) and `before` (the
/// `next_cursor` of the previous page). Other keys are handed to `other`.
fn paging(
    params: Vec<(String, String)>,
    mut other: impl FnMut(&str, String) -> Result<(), ApiError>,
) -> Result<(usize, Option<i64>), ApiError> {
    let mut limit = 50usize;
    let mut before = None;
    for (key, value) in params {
        match key.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| bad(&key, "limit must be 1 to 500"))?
            }
            "before" | "cursor" => {
                // A cursor is a sequence number this list gave out: never negative.
                before = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| bad(&key, "not a cursor from this list"))?,
                )
            }
            _ => other(&key, value)?,
        }
    }
    Ok((limit, before))
}

fn page(items: Vec<Value>, limit: usize, key: &str) -> Json<Value> {
    let next = (items.len() == limit)
        .then(|| items.last().and_then(|i| i.get(key).cloned()))
        .flatten();
    Json(json!({"items": items, "next_cursor": next}))
}

fn unknown(key: &str) -> ApiError {
    bad(key, "unknown parameter")
}

/// Every ServiceRule with its counters.
#[utoipa::path(get, path = "/api/v1/rules", tag = "rules", operation_id = "list_rules",
    responses((status = 200, description = "every ServiceRule with its counters (secrets masked)", body = super::schema::RuleList)))]
pub async fn list(State(k): State<Arc<Kernel>>) -> Result<Json<Value>, ApiError> {
    let mut items = k.rules.list().await?;
    items.iter_mut().for_each(erpos_kernel::secrets::mask);
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}

/// Creates or replaces a rule: `{"label": {"zh": "新患者回访"}, "event": {"kind":
/// "record.created", "item": "huanzhe"}, "condition": "record.age >= 18", "instructions":
/// [{"op": "start_service", "service": "follow_up"}]}`.
#[utoipa::path(post, path = "/api/v1/rules", tag = "rules", operation_id = "save_rule", request_body = erpos_design::rule::ServiceRule,
    responses((status = 201, description = "the rule as stored (secrets masked)", body = super::schema::RuleShown),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 422, description = "invalid rule, every problem at its pointer (`invalid_definition`), or a masked secret with nothing stored behind it", body = super::error::ErrorBody)))]
pub async fn save(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    erpos_kernel::app::design::may_save_rule(&caller, "defining rules")?;
    let body = unmasked(&k, body).await?;
    let rule = erpos_kernel::app::design::save_rule(&k, &caller, &body, "defining rules").await?;
    Ok((StatusCode::CREATED, Json(shown(&k, &rule.name).await?)))
}

/// Replaces a rule (the name in the path wins).
#[utoipa::path(put, path = "/api/v1/rules/{name}", tag = "rules", operation_id = "replace_rule", request_body = erpos_design::rule::ServiceRule,
    params(("name" = String, Path, description = "rule name (wins over the body's)")),
    responses((status = 200, description = "the rule as stored (secrets masked)", body = super::schema::RuleShown),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 422, description = "invalid rule (`invalid_definition`)", body = super::error::ErrorBody)))]
pub async fn replace(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    JsonBody(mut body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    erpos_kernel::app::design::may_save_rule(&caller, "changing rules")?;
    if let Some(o) = body.as_object_mut() {
        // The path's name wins over the body's, but a body's name that is not even a
        // name is refused like any other wrong type, not silently replaced.
        if o.get("name").is_some_and(|n| !n.is_string()) {
            return Err(
                erpos_kernel::KernelError::Invalid(vec![erpos_design::Issue::new(
                    "/name",
                    "expected a string (the rule's name; the path's wins)",
                )])
                .into(),
            );
        }
        o.insert("name".into(), json!(name));
    }
    let body = unmasked(&k, body).await?;
    let rule = erpos_kernel::app::design::save_rule(&k, &caller, &body, "changing rules").await?;
    Ok(Json(shown(&k, &rule.name).await?))
}

/// Tries a rule on a sample and keeps nothing: `{"rule": {…} | "name": "…", "record":
/// {"item", "id"} | "sample": {…fields}, "context": {…}}`. The condition is evaluated and,
/// when it holds, the instructions run in a transaction that is rolled back: the answer
/// lists each effect (the record created, the process started …) or the instruction that
/// failed and why. An unsaved rule is checked as saving it would be (422 under `/rule`).
#[utoipa::path(post, path = "/api/v1/rules/dry-run", tag = "rules", operation_id = "dry_run_rule",
    request_body = erpos_kernel::rules::trial::DryRunRequest,
    responses((status = 200, description = "what the rule would do on the sample (nothing kept)", body = erpos_kernel::rules::DryRun),
              (status = 403, description = "needs design (and reading the sample record)", body = super::error::ErrorBody),
              (status = 404, description = "no stored rule or record of that name", body = super::error::ErrorBody),
              (status = 422, description = "an invalid rule (its problems under `/rule`), both or neither of rule and name, a sample that is not an object", body = super::error::ErrorBody)))]
pub async fn dry_run(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(mut body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    erpos_kernel::app::design::may_save_rule(&caller, "trying rules")?;
    if let Some(rule) = body.get_mut("rule").filter(|r| r.is_object()) {
        // The editor sends back what it was shown: its masks stand for the stored secrets.
        *rule = unmasked(&k, rule.take()).await?;
    }
    let dry = erpos_kernel::rules::trial::dry_run_rule(&k, &caller, &body).await?;
    let mut shown = json!(dry);
    erpos_kernel::secrets::mask(&mut shown);
    Ok(Json(shown))
}

/// A rule as it is shown: its webhook secrets and URL credentials masked.
async fn shown(k: &Kernel, name: &str) -> Result<Value, ApiError> {
    let mut rule = k.rules.show(name).await?;
    erpos_kernel::secrets::mask(&mut rule);
    Ok(rule)
}

/// A rule body sent back with the masks it was shown: each mask is replaced by the secret
/// stored at the same place (422 naming a mask with nothing behind it).
async fn unmasked(k: &Kernel, mut body: Value) -> Result<Value, ApiError> {
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    let stored = match name {
        Some(n) => k.rules.show(&n).await.ok(),
        None => None,
    };
    super::services::restore_secrets(&mut body, stored.as_ref())?;
    Ok(body)
}

/// A rule, with `stats`: evaluated, fired, failed, last run and its outcome or error.
#[utoipa::path(get, path = "/api/v1/rules/{name}", tag = "rules", operation_id = "show_rule",
    params(("name" = String, Path, description = "rule name")),
    responses((status = 200, description = "the rule with its counters (secrets masked)", body = super::schema::RuleShown),
              (status = 404, description = "no such rule", body = super::error::ErrorBody)))]
pub async fn show(
    State(k): State<Arc<Kernel>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(shown(&k, &name).await?))
}

/// Deletes a rule (its runs are kept).
#[utoipa::path(delete, path = "/api/v1/rules/{name}", tag = "rules", operation_id = "delete_rule",
    params(("name" = String, Path, description = "rule name")),
    responses((status = 204, description = "deleted"),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "no such rule", body = super::error::ErrorBody)))]
pub async fn delete(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    erpos_kernel::app::design::delete_rule(&k, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Events the rules worker set aside after they failed to process
/// [`erpos_kernel::rules::MAX_ATTEMPTS`] times (a write that kept failing, a row that does not
/// decode, a crash while their rules ran), newest first: `{event_seq, rules, error,
/// attempts, at_ms, retried_at_ms}`. (A rule named `quarantine` is shown by
/// `GET /rules` only: this path is the quarantine's.)
#[utoipa::path(get, path = "/api/v1/rules/quarantine", tag = "rules", operation_id = "rules_quarantine",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1 to 500 (default 50)"),
           ("before" = Option<u64>, Query, description = "next_cursor of the previous page"),
           ("cursor" = Option<u64>, Query, description = "the same as before")),
    responses((status = 200, description = "set-aside events, newest first", body = super::schema::Quarantine),
              (status = 400, description = "bad or unknown parameter", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn quarantine(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (limit, before) = paging(params, |key, _| Err(unknown(key)))?;
    let items = erpos_kernel::app::monitor::quarantine(&k, &caller, Page { before, limit }).await?;
    Ok(page(items, limit, "event_seq"))
}

/// Runs a set-aside event's rules again now (those that have not run on it yet): `done`
/// takes it out of the quarantine, `failed` keeps it there with the new error.
#[utoipa::path(post, path = "/api/v1/rules/quarantine/{seq}/retry", tag = "rules", operation_id = "retry_quarantined_event",
    params(("seq" = u64, Path, description = "the event's number")),
    responses((status = 200, description = "how the retry ended", body = super::schema::RetryOutcome),
              (status = 400, description = "seq is not a number", body = super::error::ErrorBody),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 404, description = "not in the quarantine", body = super::error::ErrorBody)))]
pub async fn retry_quarantined(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(seq): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let outcome = erpos_kernel::app::design::retry_quarantined_event(&k, &caller, seq).await?;
    Ok(Json(outcome))
}

/// A rule's runs, newest first: the event, when, outcome (`done` / `failed`), error and
/// effects.
#[utoipa::path(get, path = "/api/v1/rules/{name}/runs", tag = "rules", operation_id = "rule_runs",
    params(("name" = String, Path, description = "rule name"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1 to 500 (default 50)"),
           ("before" = Option<u64>, Query, description = "next_cursor of the previous page"),
           ("cursor" = Option<u64>, Query, description = "the same as before")),
    responses((status = 200, description = "the rule's runs, newest first", body = super::schema::RuleRuns),
              (status = 400, description = "bad or unknown parameter", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody),
              (status = 404, description = "no such rule", body = super::error::ErrorBody)))]
pub async fn runs(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (limit, before) = paging(params, |key, _| Err(unknown(key)))?;
    let items =
        erpos_kernel::app::monitor::rule_runs(&k, &caller, &name, Page { before, limit }).await?;
    Ok(page(items, limit, "event_seq"))
}

/// The event log, newest first; filters `kind` and `subject`.
#[utoipa::path(get, path = "/api/v1/events", tag = "rules", operation_id = "list_events",
    params(("kind" = Option<erpos_design::rule::EventKind>, Query, description = "the event kind"), ("subject" = Option<String>, Query, description = "DataItem, service or signal name"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1 to 500 (default 50)"),
           ("before" = Option<u64>, Query, description = "next_cursor of the previous page"),
           ("cursor" = Option<u64>, Query, description = "the same as before")),
    responses((status = 200, description = "the event log, newest first", body = super::schema::EventList),
              (status = 400, description = "bad or unknown parameter", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn events(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut kind = None;
    let mut subject = None;
    let (limit, before) = paging(params, |key, value| {
        match key {
            "kind" => {
                kind = Some(EventKind::parse(&value).ok_or_else(|| {
                    let kinds: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    bad(key, &format!("one of {}", kinds.join(", ")))
                })?)
            }
            "subject" => subject = Some(value),
            _ => return Err(unknown(key)),
        }
        Ok(())
    })?;
    let items = erpos_kernel::app::monitor::events(
        &k,
        &caller,
        kind,
        subject.as_deref(),
        Page { before, limit },
    )
    .await?;
    Ok(page(items, limit, "seq"))
}

/// Sends a named signal from outside: the body is its payload. Rules on `{"kind":
/// "signal", "name": …}` run on it.
#[utoipa::path(post, path = "/api/v1/events/{name}", tag = "rules", operation_id = "send_signal",
    request_body(content = serde_json::Value, description = "the signal's payload (any JSON)"),
    params(("name" = String, Path, description = "the signal's name (an identifier)")),
    responses((status = 202, description = "logged; rules will run", body = super::schema::SignalAccepted),
              (status = 403, description = "needs design", body = super::error::ErrorBody),
              (status = 422, description = "the name is not an identifier (`invalid_signal`), or the payload is too deep", body = super::error::ErrorBody)))]
pub async fn signal(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    require(&caller, Permission::Design, "sending signals")?;
    if !is_identifier(&name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidSignal,
            "the signal's name is not an identifier",
        )
        .with_details(vec![Issue::new(
            "/path/name",
            "lowercase letters, digits and _, starting with a letter",
        )]));
    }
    let seq = erpos_kernel::app::operations::send_signal(&k, &caller, &name, body).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"seq": seq}))))
}

/// Outbox entries, newest first: kind, state (`pending`, `delivered`, `failed`),
/// attempts, next attempt and last error. Secrets are masked.
#[utoipa::path(get, path = "/api/v1/outbox", tag = "rules", operation_id = "list_outbox",
    params(("state" = Option<super::schema::DeliveryState>, Query, description = "pending, delivered or failed"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1 to 500 (default 50)"),
           ("before" = Option<i64>, Query, description = "next_cursor of the previous page"),
           ("cursor" = Option<i64>, Query, description = "the same as before")),
    responses((status = 200, description = "outbox entries, newest first (secrets masked)", body = super::schema::OutboxList),
              (status = 400, description = "bad or unknown parameter", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn outbox(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut state = None;
    let (limit, before) = paging(params, |key, value| match key {
        "state" if ["pending", "delivered", "failed"].contains(&value.as_str()) => {
            state = Some(value);
            Ok(())
        }
        "state" => Err(bad(key, "one of pending, delivered, failed")),
        _ => Err(unknown(key)),
    })?;
    let items =
        erpos_kernel::app::monitor::outbox(&k, &caller, state.as_deref(), Page { before, limit })
            .await?;
    Ok(page(items, limit, "id"))
}

/// Puts an undelivered entry back in line now, attempts reset.
#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", tag = "rules", operation_id = "retry_outbox_entry",
    params(("id" = i64, Path, description = "the entry's id")),
    responses((status = 202, description = "queued again", body = super::schema::OutboxRetried),
              (status = 400, description = "id is not a number", body = super::error::ErrorBody),
              (status = 403, description = "needs admin", body = super::error::ErrorBody),
              (status = 404, description = "no undelivered entry", body = super::error::ErrorBody)))]
pub async fn retry(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    erpos_kernel::app::operations::retry_delivery(&k, &caller, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "state": "pending"})),
    ))
}

/// A user's notifications (what `notify` delivered), newest first: the caller's own, or
/// (with `monitor`) anyone's.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "rules", operation_id = "list_notifications",
    params(("user" = Option<String>, Query, description = "user id (default: the caller; another's needs monitor)"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "how many, 1 to 500 (default 50)"),
           ("before" = Option<i64>, Query, description = "accepted, not used"),
           ("cursor" = Option<i64>, Query, description = "accepted, not used")),
    responses((status = 200, description = "the user's notifications, newest first", body = super::schema::NotificationList),
              (status = 400, description = "bad or unknown parameter", body = super::error::ErrorBody),
              (status = 403, description = "another user's need monitor", body = super::error::ErrorBody)))]
pub async fn notifications(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut user = None;
    let (limit, _) = paging(params, |key, value| match key {
        "user" => {
            user = Some(value);
            Ok(())
        }
        _ => Err(unknown(key)),
    })?;
    let items = erpos_kernel::app::monitor::notifications(&k, &caller, user, limit).await?;
    Ok(Json(json!({"items": items})))
}
