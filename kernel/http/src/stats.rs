//! `/api/v1/stats/...`: process statistics (the WfMC time service) per service, step,
//! operator and role over a period. Parses the period and filters, asks the application layer
//! (`app::monitor`, which checks the grant and reads what `stats` computed), and shapes the
//! answer; every rule about what is counted lives in `stats`, none here.
//!
//! Every route answers `{"from", "to", "items": [...], "total", "next_cursor": null}`
//! (the list shape of the API; statistics come whole, never paged). Each item names its
//! group and carries the same figures: `started`, `completed`, `cancelled`, `failed`,
//! `avg_ms`, `p90_ms`, `late`, `backlog` (see `stats` for their exact meaning).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde_json::{Value, json};

use super::ApiError;
use super::extract::{Path, QueryPairs};
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::app::monitor::{self, StatsQuery};
use erpos_kernel::stats::Period;

/// The period when none is given: the 30 days up to now.
const DEFAULT_DAYS: i64 = 30;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn bad(key: &str, message: &str) -> ApiError {
    ApiError::bad_parameter(key, message)
}

/// An instant as a client may write it: an RFC 3339 date-time, or a date (UTC midnight).
/// A date given as the end of a period means the whole day, so `to` moves to the next
/// midnight (`to` is exclusive). A `+` in an offset arrives as a space when the client did
/// not escape it; that space is read back as the `+` it was.
fn instant(value: &str, end_of_day: bool) -> Option<i64> {
    let datetime = erpos_design::value::parse_datetime(value).or_else(|| {
        let (head, tail) = value.rsplit_once(' ')?;
        erpos_design::value::parse_datetime(&format!("{head}+{tail}"))
    });
    if let Some(t) = datetime {
        return Some(t.timestamp_millis());
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    let day = if end_of_day { day.succ_opt()? } else { day };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// The period and filters of a statistics request.
/// Reads `from`, `to` and (when `with_service`) `service`; anything else is refused so a
/// misspelt filter is not silently ignored.
fn request(
    params: Vec<(String, String)>,
    with_service: bool,
    now_ms: i64,
) -> Result<StatsQuery, ApiError> {
    const FORMAT: &str =
        "expected an RFC 3339 date-time (2026-11-28T09:00:00Z) or a date (2026-11-28)";
    let mut from = None;
    let mut to = None;
    let mut service = None;
    for (key, value) in params {
        match key.as_str() {
            "from" => from = Some(instant(&value, false).ok_or_else(|| bad(&key, FORMAT))?),
            "to" => to = Some(instant(&value, true).ok_or_else(|| bad(&key, FORMAT))?),
            "service" if with_service => service = Some(value),
            _ => return Err(bad(&key, "unknown parameter")),
        }
    }
    // Up to and including now: what happened at this very instant counts.
    let to_ms = to.unwrap_or(now_ms.saturating_add(1));
    let from_ms = from.unwrap_or(to_ms.saturating_sub(DEFAULT_DAYS * DAY_MS));
    if from_ms >= to_ms {
        return Err(bad("from", "from must be before to"));
    }
    Ok(StatsQuery {
        period: Period { from_ms, to_ms },
        service,
    })
}

/// The newest published version of every service.
fn page(period: Period, items: Vec<Value>) -> Value {
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| erpos_design::value::format_datetime(&t))
    };
    json!({
        "from": iso(period.from_ms), "to": iso(period.to_ms),
        "total": items.len(), "items": items, "next_cursor": null,
    })
}

/// Per service: processes started, completed, cancelled and failed in the period, their
/// duration from start to completion (mean and nearest-rank 90th percentile, ms), how many
/// had a step late, and how many are open now. Every published service is listed.
#[utoipa::path(get, path = "/api/v1/stats/services", tag = "stats", operation_id = "service_stats",
    params(("from" = Option<String>, Query, description = "start of the period (RFC 3339 date-time or date); default: 30 days before `to`"),
           ("to" = Option<String>, Query, description = "end of the period, exclusive (a date means the whole day); default: now"),
           ("service" = Option<String>, Query, description = "only this service")),
    responses((status = 200, description = "`{from, to, items: [{service, started, completed, cancelled, failed, avg_ms, p50_ms, p90_ms, late, backlog}], total, next_cursor}`", body = super::schema::ServiceStats),
              (status = 400, description = "bad or unknown parameter, or from not before to", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn services(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let req = request(params, true, k.engine.now_ms())?;
    let items = monitor::service_stats(&k, &caller, &req).await?;
    Ok(Json(page(req.period, items)))
}

/// Per step of a service: visits entered, left (completed, or ended by a cancellation or a
/// failure) in the period, time from entering to leaving, late visits (left after the
/// step's deadline or still open past it), and processes at the step now. Steps are listed
/// in the order of the newest definition (gateways, joins and end steps take no time and
/// are not listed), then steps only older versions had.
#[utoipa::path(get, path = "/api/v1/stats/services/{name}/steps", tag = "stats", operation_id = "step_stats",
    params(("name" = String, Path, description = "service name"),
           ("from" = Option<String>, Query, description = "start of the period (RFC 3339 date-time or date); default: 30 days before `to`"),
           ("to" = Option<String>, Query, description = "end of the period, exclusive (a date means the whole day); default: now")),
    responses((status = 200, description = "`{service, from, to, items: [{service, step, started, completed, cancelled, failed, avg_ms, p50_ms, p90_ms, late, backlog}], total, next_cursor}`", body = super::schema::StepStats),
              (status = 400, description = "bad or unknown parameter, or from not before to", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody),
              (status = 404, description = "no such service", body = super::error::ErrorBody)))]
pub async fn steps(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let req = request(params, false, k.engine.now_ms())?;
    let items = monitor::step_stats(&k, &caller, &name, req.period).await?;
    let mut out = page(req.period, items);
    out["service"] = json!(name);
    Ok(Json(out))
}

/// Per operator: steps dispatched to them, handled to the end (or ended by a cancellation
/// or a failure) in the period, time from dispatch to leaving the step, late handlings,
/// and steps assigned to them now. Every user is listed; automatic steps (`system`) are not.
#[utoipa::path(get, path = "/api/v1/stats/operators", tag = "stats", operation_id = "operator_stats",
    params(("from" = Option<String>, Query, description = "start of the period (RFC 3339 date-time or date); default: 30 days before `to`"),
           ("to" = Option<String>, Query, description = "end of the period, exclusive (a date means the whole day); default: now"),
           ("service" = Option<String>, Query, description = "only steps of this service")),
    responses((status = 200, description = "`{from, to, items: [{operator, roles, started, completed, cancelled, failed, avg_ms, p50_ms, p90_ms, late, backlog}], total, next_cursor}`", body = super::schema::OperatorStats),
              (status = 400, description = "bad or unknown parameter, or from not before to", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn operators(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let req = request(params, true, k.engine.now_ms())?;
    let items = monitor::operator_stats(&k, &caller, &req).await?;
    Ok(Json(page(req.period, items)))
}

/// Per role: the operator figures of everyone holding the role (membership as the users'
/// definitions say now), and the steps assigned to them now. Every role a user holds is
/// listed.
#[utoipa::path(get, path = "/api/v1/stats/roles", tag = "stats", operation_id = "role_stats",
    params(("from" = Option<String>, Query, description = "start of the period (RFC 3339 date-time or date); default: 30 days before `to`"),
           ("to" = Option<String>, Query, description = "end of the period, exclusive (a date means the whole day); default: now"),
           ("service" = Option<String>, Query, description = "only steps of this service")),
    responses((status = 200, description = "`{from, to, items: [{role, operators, started, completed, cancelled, failed, avg_ms, p50_ms, p90_ms, late, backlog}], total, next_cursor}`", body = super::schema::RoleStats),
              (status = 400, description = "bad or unknown parameter, or from not before to", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn roles(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    QueryPairs(params): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let req = request(params, true, k.engine.now_ms())?;
    let items = monitor::role_stats(&k, &caller, &req).await?;
    Ok(Json(page(req.period, items)))
}
