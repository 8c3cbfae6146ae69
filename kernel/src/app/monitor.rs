//! Use cases of watching the running system: the queues, the statistics per service, step,
//! operator and role, the event log, the outbox, rule runs and the rules' quarantine, the
//! audit log, notifications and the list of app tokens. Each checks its grant here
//! (`monitor`, or `organisation` for app tokens; one's own notifications need nothing), so
//! the HTTP layer, the console and any other caller ask the same question the same way;
//! the callers only parse their parameters and shape the answer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use erpos_design::Issue;
use erpos_design::rule::EventKind;
use erpos_design::service::{Service, StepKind};
use serde_json::{Map, Value, json};

use super::require;
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};
use crate::stats::{self, Figures, Period, Report};

/// A page of a list that is read newest first: at most `limit` entries before the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The cursor of the previous page's last entry.
    pub before: Option<i64>,
    /// At most this many entries.
    pub limit: usize,
}

impl Page {
    fn before_seq(self) -> Option<u64> {
        self.before.and_then(|b| u64::try_from(b).ok())
    }
}

/// Refuses a caller who may not see the queues: their counts cover every process, so they
/// need `monitor` (over HTTP and on the WebSocket's queue topic alike).
pub fn may_see_queues(caller: &Caller) -> Result<()> {
    require(caller, Permission::Monitor, "reading the queues")
}

/// Refuses a caller asking for another user's work lists (to-do, handled, created,
/// related) without `monitor`; one's own need nothing.
pub fn may_see_lists_of(caller: &Caller, user: &str) -> Result<()> {
    if user == caller.user {
        return Ok(());
    }
    require(
        caller,
        Permission::Monitor,
        &format!("reading {user}'s lists"),
    )
}

/// The queues: processes per state and wait reason, the ready queue, and each resource's
/// capacity, holders and waiting processes.
pub async fn queues(k: &Kernel, caller: &Caller) -> Result<Value> {
    may_see_queues(caller)?;
    let now_ms = k.clock.now_ms();
    Ok(k.engine.read(move |core| queues_of(core, now_ms)).await)
}

/// The most late processes the queues list, the most overdue first (`late_total` counts all).
const LATE_LISTED: usize = 50;

/// The queues of `core` (what [`queues`] answers), read under the core's lock: the
/// WebSocket's queue snapshot is taken with it, at the sequence number its changes follow.
/// The caller checks `monitor` first. `now_ms` is what "late" is counted against: a live
/// process whose step's deadline has passed, the most overdue first, with how late it is.
pub fn queues_of(core: &crate::scheduler::Scheduler, now_ms: i64) -> Value {
    {
        {
            let states: Map<String, Value> =
                crate::scheduler::pcb::count_by_state(core.pcbs_unordered())
                    .into_iter()
                    .map(|(s, n)| (crate::engine::state_name(s).to_owned(), json!(n)))
                    .collect();
            let mut waits: BTreeMap<String, usize> = BTreeMap::new();
            let mut waiting_for_type: BTreeMap<String, usize> = BTreeMap::new();
            for p in core.pcbs_unordered() {
                if let Some(w) = &p.wait {
                    let kind = serde_json::to_value(w)
                        .ok()
                        .and_then(|v| v["kind"].as_str().map(str::to_owned))
                        .unwrap_or_default();
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
                    let holders: Vec<Value> = core
                        .pool()
                        .holders(&r.id)
                        .into_iter()
                        .map(|(p, q)| json!({"process": p, "quantity": q}))
                        .collect();
                    json!({
                        "id": r.id, "type": r.resource_type, "capacity": r.capacity,
                        "in_use": core.pool().in_use(&r.id),
                        "holders": holders,
                        "waiting": waiting_for_type.get(&r.resource_type).copied().unwrap_or(0),
                    })
                })
                .collect();
            let mut late: Vec<&crate::scheduler::Pcb> = core
                .pcbs_unordered()
                .filter(|p| {
                    p.state != crate::scheduler::ProcessState::Terminated
                        && p.deadline_ms.is_some_and(|d| d < now_ms)
                })
                .collect();
            let late_total = late.len();
            late.sort_by_key(|p| (p.deadline_ms, p.id));
            let late: Vec<Value> = late
                .into_iter()
                .take(LATE_LISTED)
                .map(|p| {
                    let due = p.deadline_ms.unwrap_or(now_ms);
                    json!({
                        "process": p.id, "service": &*p.service,
                        "step": p.step.as_deref(), "operator": p.operator.as_deref(),
                        "state": crate::engine::state_name(p.state),
                        "deadline_ms": due, "late_minutes": (now_ms - due) / 60_000,
                    })
                })
                .collect();
            json!({"states": states, "waiting": waits, "resources": resources,
                   "ready_queue": core.ready_queue(), "late": late, "late_total": late_total})
        }
    }
}

/// The audit log, newest first, optionally one actor's.
pub async fn audit_log(
    k: &Kernel,
    caller: &Caller,
    actor: Option<&str>,
    page: Page,
) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading the audit log")?;
    crate::audit::list(k, actor, page.before, page.limit).await
}

/// The event log, newest first, optionally of one kind and subject.
pub async fn events(
    k: &Kernel,
    caller: &Caller,
    kind: Option<EventKind>,
    subject: Option<&str>,
    page: Page,
) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading the event log")?;
    let events = k
        .events
        .list(kind, subject, page.before_seq(), page.limit)
        .await?;
    Ok(events
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect())
}

/// The outbox, newest first, optionally in one state; secrets are masked.
pub async fn outbox(
    k: &Kernel,
    caller: &Caller,
    state: Option<&str>,
    page: Page,
) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading the outbox")?;
    k.outbox.list(state, page.before, page.limit).await
}

/// The runs of the rule `name`, newest first, secrets masked (404 for no such rule).
pub async fn rule_runs(k: &Kernel, caller: &Caller, name: &str, page: Page) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading rule runs")?;
    k.rules.show(name).await?;
    let mut runs = k.rules.runs(name, page.before_seq(), page.limit).await?;
    runs.iter_mut().for_each(crate::secrets::mask);
    Ok(runs)
}

/// The events the rules set aside (they kept failing), newest first.
pub async fn quarantine(k: &Kernel, caller: &Caller, page: Page) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading the rules' quarantine")?;
    k.rules.quarantined(page.before_seq(), page.limit).await
}

/// The notifications of `user` (default: the caller's own, which need no grant).
pub async fn notifications(
    k: &Kernel,
    caller: &Caller,
    user: Option<String>,
    limit: usize,
) -> Result<Vec<Value>> {
    let user = user.unwrap_or_else(|| caller.user.clone());
    if user != caller.user {
        require(
            caller,
            Permission::Monitor,
            "reading another user's notifications",
        )?;
    }
    k.outbox.notifications(&user, limit).await
}

/// Every app token (revoked ones too), secrets masked.
pub async fn app_tokens(k: &Kernel, caller: &Caller) -> Result<Vec<Value>> {
    require(caller, Permission::Organisation, "listing app tokens")?;
    Ok(k.auth.apps().await?.iter().map(|a| a.masked()).collect())
}

/// Statistics over a period, optionally of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// The period.
    pub period: Period,
    /// Only this service (it must be published).
    pub service: Option<String>,
}

/// The newest published version of each service (also what the menus offer to start).
pub(super) async fn published(k: &Kernel) -> BTreeMap<String, Arc<Service>> {
    k.engine
        .read(|core| {
            let mut newest: BTreeMap<String, Arc<Service>> = BTreeMap::new();
            for s in core.published() {
                if newest.get(&s.name).is_none_or(|n| n.version < s.version) {
                    newest.insert(s.name.clone(), s.clone());
                }
            }
            newest
        })
        .await
}

/// The figures of the period, and each operator's roles.
async fn report(
    k: &Kernel,
    period: Period,
    service: Option<&str>,
) -> Result<(Report, BTreeMap<String, BTreeSet<String>>)> {
    let changes = stats::store::changes(&k.db, period, service).await?;
    let open = stats::store::open(&k.db, service).await?;
    let roles = stats::store::roles(&k.db).await?;
    let now_ms = k.engine.now_ms();
    Ok((
        stats::compute(&changes, &open, &roles, period, now_ms),
        roles,
    ))
}

/// One item: the names of its group, then its figures.
fn item(names: Value, figures: &Figures) -> Value {
    let mut out = names;
    if let (Some(map), Ok(Value::Object(f))) = (out.as_object_mut(), serde_json::to_value(figures))
    {
        map.extend(f);
    }
    out
}

/// Refuses a service filter naming no published service (400 at `/query/service`): a typo
/// would otherwise answer with an empty list that looks like a quiet month.
fn check_service(q: &StatsQuery, published: &BTreeMap<String, Arc<Service>>) -> Result<()> {
    match &q.service {
        Some(s) if !published.contains_key(s) => Err(KernelError::BadRequest(vec![Issue::new(
            "/query/service",
            format!("no published service '{s}'"),
        )])),
        _ => Ok(()),
    }
}

/// The statistics of each published service (those without processes in the period too).
pub async fn service_stats(k: &Kernel, caller: &Caller, q: &StatsQuery) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading statistics")?;
    let published = published(k).await;
    check_service(q, &published)?;
    let (report, _) = report(k, q.period, q.service.as_deref()).await?;
    let mut figures = report.services;
    for name in published.keys() {
        if q.service.as_ref().is_none_or(|s| s == name) {
            figures.entry(name.clone()).or_default();
        }
    }
    Ok(figures
        .iter()
        .map(|(name, f)| item(json!({"service": name}), f))
        .collect())
}

/// The statistics of each step of the service `name` that takes time, in the order of its
/// definition, then steps of older versions that were seen in the period.
pub async fn step_stats(
    k: &Kernel,
    caller: &Caller,
    name: &str,
    period: Period,
) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading statistics")?;
    let published = published(k).await;
    let definition = published
        .get(name)
        .ok_or_else(|| KernelError::NotFound(format!("service '{name}'")))?;
    let (report, _) = report(k, period, Some(name)).await?;
    let mut observed: BTreeMap<String, Figures> = report
        .steps
        .into_iter()
        .filter(|((s, _), _)| s == name)
        .map(|((_, step), f)| (step, f))
        .collect();
    let mut items = Vec::new();
    for step in &definition.steps {
        let takes_time = matches!(
            step.kind,
            StepKind::Human
                | StepKind::Automatic
                | StepKind::Wait
                | StepKind::SubService
                | StepKind::Parallel
        );
        if takes_time {
            let f = observed.remove(&step.name).unwrap_or_default();
            items.push(item(json!({"service": name, "step": step.name}), &f));
        }
    }
    for (step, f) in &observed {
        items.push(item(json!({"service": name, "step": step}), f));
    }
    Ok(items)
}

/// The statistics of each operator, with the roles they hold.
pub async fn operator_stats(k: &Kernel, caller: &Caller, q: &StatsQuery) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading statistics")?;
    check_service(q, &published(k).await)?;
    let (report, roles) = report(k, q.period, q.service.as_deref()).await?;
    Ok(report
        .operators
        .iter()
        .map(|(op, f)| {
            let held: Vec<&String> = roles.get(op).into_iter().flatten().collect();
            item(json!({"operator": op, "roles": held}), f)
        })
        .collect())
}

/// The statistics of each role, with the operators who hold it.
pub async fn role_stats(k: &Kernel, caller: &Caller, q: &StatsQuery) -> Result<Vec<Value>> {
    require(caller, Permission::Monitor, "reading statistics")?;
    check_service(q, &published(k).await)?;
    let (report, roles) = report(k, q.period, q.service.as_deref()).await?;
    Ok(report
        .roles
        .iter()
        .map(|(role, f)| {
            let members: Vec<&String> = roles
                .iter()
                .filter(|(_, held)| held.contains(role))
                .map(|(op, _)| op)
                .collect();
            item(json!({"role": role, "operators": members}), f)
        })
        .collect())
}
