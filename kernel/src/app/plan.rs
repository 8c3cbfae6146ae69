//! Planning a day over the API (issue 14 §4): `POST /api/v1/bookings/plan` takes the day's
//! requests — a treatment, the patient, the window she can come in, a priority, the
//! practitioner she prefers — and proposes a schedule on top of the bookings already made:
//! every visit on holders free for it and its buffers within their working hours, as many
//! treatment minutes as fit, higher priorities first, with the bound no plan can beat and
//! the load it would put on every holder. It proposes and books nothing: each placed visit
//! carries the body of the booking that takes it (`POST /api/v1/bookings`), so reception
//! confirms them one by one and a slot taken meanwhile gets the usual 409. Needs
//! `bookings:read`.

use std::collections::BTreeMap;

use erpos_design::Issue;
use erpos_design::booking::Span;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::require;
use super::slots::holders;
use crate::Kernel;
use crate::bookings::plan::{Request, bound, free_ms, plan};
use crate::bookings::slots::{Member, Want, search};
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};

/// The longest window one plan covers.
pub const MAX_PLAN_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
/// The most requests one plan takes.
pub const MAX_REQUESTS: usize = 500;
/// The grid a plan's starts lie on: finer than the slot search's quarter hour, so buffers
/// of five or ten minutes pack without idle time.
pub const PLAN_STEP_MS: i64 = 5 * 60_000;

/// What a plan is asked for.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanAsked {
    /// The start of the time planned (RFC 3339).
    pub from: String,
    /// Its end (at most 7 days after `from`).
    pub to: String,
    /// The requests, at most 500.
    pub requests: Vec<VisitAsked>,
    /// Plan onto this branch's holders (and those serving every branch) only.
    #[serde(default)]
    pub branch: Option<String>,
}

/// One visit asked for.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitAsked {
    /// The treatment's name.
    pub treatment: String,
    /// Who comes; one patient is never planned in two places at once.
    #[serde(default)]
    pub patient: Option<String>,
    /// The earliest the treatment may start (default: the plan's `from`).
    #[serde(default)]
    pub earliest: Option<String>,
    /// The latest it may end (default: the plan's `to`).
    #[serde(default)]
    pub latest: Option<String>,
    /// Higher is placed first (−100 … 100; default 0).
    #[serde(default)]
    pub priority: i32,
    /// The practitioner preferred, taken when free.
    #[serde(default)]
    pub practitioner: Option<String>,
}

/// A visit the plan placed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlannedVisit {
    /// Its index among the requests.
    pub request: usize,
    /// The patient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The treatment.
    pub treatment: String,
    /// When it starts (RFC 3339).
    pub start: String,
    /// When it ends.
    pub end: String,
    /// Minutes held before.
    pub buffer_before_minutes: u32,
    /// Minutes held after.
    pub buffer_after_minutes: u32,
    /// The resources it takes.
    pub resources: Vec<String>,
    /// The practitioner it takes.
    pub operators: Vec<String>,
}

/// A visit the plan could not place.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnplacedVisit {
    /// Its index among the requests.
    pub request: usize,
    /// The patient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The treatment.
    pub treatment: String,
    /// Why: nothing free in its window at all, or the window filled by the plan.
    pub reason: String,
}

/// What a plan would put on one holder.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HolderLoad {
    /// `resource` or `operator`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its working minutes in the plan's window not booked before the plan.
    pub free_minutes: i64,
    /// Minutes the plan would hold it (buffers included).
    pub planned_minutes: i64,
    /// planned ÷ free (0 when it has no free time).
    pub utilisation: f64,
}

/// A proposed schedule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DayPlan {
    /// The visits placed, by start.
    pub placed: Vec<PlannedVisit>,
    /// The visits left out, by request.
    pub unplaced: Vec<UnplacedVisit>,
    /// Treatment minutes placed.
    pub treatment_minutes: i64,
    /// The most treatment minutes any plan could place (capacity alone, per holder group).
    pub bound_minutes: i64,
    /// treatment ÷ bound (1 when the bound is 0).
    pub ratio_to_bound: f64,
    /// Which order of the list scheduler found it.
    pub order: String,
    /// The load on every holder any request could take.
    pub load: Vec<HolderLoad>,
}

fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| erpos_design::value::format_datetime(&t))
        .unwrap_or_default()
}

fn instant_ms(raw: &str, at: String, issues: &mut Vec<Issue>) -> Option<i64> {
    let parsed = erpos_design::value::parse_datetime(raw).map(|t| t.timestamp_millis());
    if parsed.is_none() {
        issues.push(Issue::new(
            at,
            "expected a date and time with its offset (RFC 3339)",
        ));
    }
    parsed
}

/// One request, resolved.
struct Resolved {
    treatment: erpos_design::treatment::Treatment,
    ids: Vec<Vec<String>>,
    request: Request,
    patient: Option<String>,
}

/// Proposes a schedule for the requests `body` names.
pub async fn propose(k: &Kernel, caller: &Caller, body: &Value) -> Result<DayPlan> {
    require(
        caller,
        Permission::Bookings { op: "read" },
        "planning a day",
    )?;
    let mut shape = erpos_design::shape::Shape::new();
    let Some(asked) = shape
        .read::<PlanAsked>(body, "", &[])
        .filter(|_| shape.is_clean())
    else {
        return Err(KernelError::Invalid(shape.finish(Vec::new(), body)));
    };
    let mut issues = Vec::new();
    let from = instant_ms(&asked.from, "/from".into(), &mut issues);
    let to = instant_ms(&asked.to, "/to".into(), &mut issues);
    if let (Some(a), Some(b)) = (from, to) {
        if b <= a {
            issues.push(Issue::new("/to", "must be after from"));
        } else if b - a > MAX_PLAN_WINDOW_MS {
            issues.push(Issue::new("/to", "a plan covers at most 7 days"));
        }
    }
    if let Some(b) = &asked.branch
        && !super::branches::known(&k.engine, b).await
    {
        issues.push(Issue::new(
            "/branch",
            format!("no resource or practitioner stands in branch '{b}'"),
        ));
    }
    if asked.requests.is_empty() || asked.requests.len() > MAX_REQUESTS {
        issues.push(Issue::new(
            "/requests",
            format!("from 1 to {MAX_REQUESTS} requests"),
        ));
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(KernelError::Invalid(issues));
    };
    let from = from.max(k.clock.now_ms());
    if to <= from {
        issues.push(Issue::new("/to", "the window is over: plan from now on"));
        return Err(KernelError::Invalid(issues));
    }
    let day = Span { from, to };
    let mut treatments = BTreeMap::new();
    for v in &asked.requests {
        if !treatments.contains_key(&v.treatment) {
            let found = super::treatments::get(k, &v.treatment).await.ok();
            treatments.insert(v.treatment.clone(), found);
        }
    }
    let mut resolved = Vec::with_capacity(asked.requests.len());
    // The holders of a treatment (and preferred practitioner), working spans included,
    // are the same for every request naming them: looked up once.
    let mut looked_up: BTreeMap<(String, Option<String>), super::slots::Holders> = BTreeMap::new();
    for (i, v) in asked.requests.iter().enumerate() {
        let at = |field: &str| format!("/requests/{i}/{field}");
        let Some(Some(treatment)) = treatments.get(&v.treatment).cloned() else {
            issues.push(Issue::new(at("treatment"), "no such treatment"));
            continue;
        };
        if let Some(patient) = &v.patient {
            super::short_text(patient, &at("patient"), 200, &mut issues);
        }
        if !(-100..=100).contains(&v.priority) {
            issues.push(Issue::new(at("priority"), "from -100 to 100"));
        }
        let earliest = match &v.earliest {
            Some(raw) => instant_ms(raw, at("earliest"), &mut issues),
            None => Some(from),
        };
        let latest = match &v.latest {
            Some(raw) => instant_ms(raw, at("latest"), &mut issues),
            None => Some(to),
        };
        let (Some(earliest), Some(latest)) = (earliest, latest) else {
            continue;
        };
        let window = Span {
            from: earliest.max(from),
            to: latest.min(to),
        };
        let len = i64::from(treatment.duration_minutes) * 60_000;
        if window.len() < len {
            issues.push(Issue::new(
                at("latest"),
                format!(
                    "the window within the plan is shorter than the treatment's {} minutes",
                    treatment.duration_minutes
                ),
            ));
            continue;
        }
        let key = (treatment.name.clone(), v.practitioner.clone());
        let found = match looked_up.get(&key) {
            Some(found) => found.clone(),
            None => {
                let found = holders(
                    k,
                    &treatment,
                    day,
                    v.practitioner.as_deref(),
                    asked.branch.as_deref(),
                )
                .await;
                looked_up.insert(key, found.clone());
                found
            }
        };
        if !found.practitioner_known {
            issues.push(Issue::new(
                at("practitioner"),
                format!(
                    "no practitioner with the skill '{}' this treatment needs",
                    treatment.skill.clone().unwrap_or_default()
                ),
            ));
            continue;
        }
        let mut groups = found.groups;
        if let Some(patient) = &v.patient {
            groups.push(vec![Member {
                key: format!("patient:{patient}"),
                working: None,
                preferred: false,
            }]);
        }
        resolved.push(Resolved {
            request: Request {
                groups,
                window,
                len,
                before: i64::from(treatment.buffer_before_minutes) * 60_000,
                after: i64::from(treatment.buffer_after_minutes) * 60_000,
                priority: v.priority,
            },
            ids: found.ids,
            treatment,
            patient: v.patient.clone(),
        });
    }
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let index = k.bookings.snapshot().await;
    let requests: Vec<Request> = resolved.iter().map(|r| r.request.clone()).collect();
    let found = plan(&index, &requests, PLAN_STEP_MS);
    let bound_ms = bound(&index, &requests, day);

    let mut planned: BTreeMap<String, i64> = BTreeMap::new();
    let placed = found
        .placed
        .iter()
        .map(|p| {
            let r = &resolved[p.request];
            let pick = |g: usize| {
                r.ids
                    .get(g)
                    .and_then(|m| m.get(p.picks[g]))
                    .cloned()
                    .unwrap_or_default()
            };
            for (g, &pick_at) in p.picks.iter().enumerate() {
                if let Some(m) = r.request.groups.get(g).and_then(|m| m.get(pick_at)) {
                    *planned.entry(m.key.clone()).or_default() +=
                        r.request.before + r.request.len + r.request.after;
                }
            }
            let resource_groups = r.treatment.resource_types.len();
            PlannedVisit {
                request: p.request,
                patient: r.patient.clone(),
                treatment: r.treatment.name.clone(),
                start: instant(p.start),
                end: instant(p.start + r.request.len),
                buffer_before_minutes: r.treatment.buffer_before_minutes,
                buffer_after_minutes: r.treatment.buffer_after_minutes,
                resources: (0..resource_groups).map(pick).collect(),
                operators: (resource_groups..r.ids.len()).map(pick).collect(),
            }
        })
        .collect();
    let unplaced = found
        .unplaced
        .iter()
        .map(|&i| {
            let r = &resolved[i];
            let want = Want {
                window: r.request.window,
                len: r.request.len,
                before: r.request.before,
                after: r.request.after,
                step: PLAN_STEP_MS,
                limit: 1,
            };
            let alone = search(&index, &r.request.groups, &want);
            UnplacedVisit {
                request: i,
                patient: r.patient.clone(),
                treatment: r.treatment.name.clone(),
                reason: if alone.is_empty() {
                    "nothing is free for it in its window, even before this plan".into()
                } else {
                    "its window is filled by visits of this plan placed before it".into()
                },
            }
        })
        .collect();
    // The load on every holder a request could take (patients are not holders of the clinic).
    let mut load = BTreeMap::new();
    for r in &resolved {
        for group in &r.request.groups {
            for m in group {
                let Some((kind, id)) = m.key.split_once(':') else {
                    continue;
                };
                if kind == "patient" || load.contains_key(&m.key) {
                    continue;
                }
                let free = free_ms(&index, m, day) / 60_000;
                let held = planned.get(&m.key).copied().unwrap_or(0) / 60_000;
                load.insert(
                    m.key.clone(),
                    HolderLoad {
                        kind: kind.to_owned(),
                        id: id.to_owned(),
                        free_minutes: free,
                        planned_minutes: held,
                        utilisation: if free > 0 {
                            held as f64 / free as f64
                        } else {
                            0.0
                        },
                    },
                );
            }
        }
    }
    let treatment_minutes = found.placed_ms / 60_000;
    let bound_minutes = bound_ms / 60_000;
    Ok(DayPlan {
        placed,
        unplaced,
        treatment_minutes,
        bound_minutes,
        ratio_to_bound: if bound_ms > 0 {
            found.placed_ms as f64 / bound_ms as f64
        } else {
            1.0
        },
        order: found.order.to_owned(),
        load: load.into_values().collect(),
    })
}
