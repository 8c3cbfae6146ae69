//! Capacity planning (issue 14 §4, the original's missing D13): how loaded every resource
//! and practitioner is per day or week against its working time
//! (`GET /api/v1/capacity?from=&to=&by=day|week`), and what a plan of N treatments a week
//! would need of each kind of holder against what the clinic has
//! (`POST /api/v1/capacity/needs`). Both read the bookings index and the calendars; they
//! change nothing. Need `bookings:read`.

use std::collections::BTreeMap;

use erpos_design::Issue;
use erpos_design::booking::Span;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::require;
use crate::Kernel;
use crate::bookings::plan::{free_ms, working_ms};
use crate::bookings::slots::Member;
use crate::bookings::{operator_key, resource_key};
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};

const DAY_MS: i64 = 86_400_000;
/// The longest window one capacity report covers.
pub const MAX_CAPACITY_WINDOW_MS: i64 = 92 * DAY_MS;

/// One holder's load in one period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeriodLoad {
    /// `resource` or `operator`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its resource type, or its skills joined by commas.
    pub of: String,
    /// When the period starts (RFC 3339).
    pub period: String,
    /// Its working minutes in the period.
    pub capacity_minutes: i64,
    /// Minutes booked in the period (buffers included).
    pub booked_minutes: i64,
    /// booked ÷ capacity (0 when it does not work then).
    pub load: f64,
}

/// The load report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CapacityReport {
    /// `day` or `week`: periods of 24 hours or 7 days from `from` (so pass a local midnight).
    pub by: String,
    /// Per holder and period.
    pub items: Vec<PeriodLoad>,
}

struct Holder {
    branch: Option<String>,
    kind: &'static str,
    id: String,
    of: String,
    member: Member,
}

async fn all_holders(k: &Kernel, window: Span) -> Vec<Holder> {
    let calendars = k.calendars.all();
    let spans = |calendar: &Option<String>| {
        calendar
            .as_ref()
            .and_then(|c| calendars.get(c))
            .map(|cal| cal.working_spans(window.from, window.to))
    };
    k.engine
        .read(|c| {
            let mut out: Vec<Holder> = c
                .pool()
                .iter()
                .map(|r| Holder {
                    branch: r.branch.clone(),
                    kind: "resource",
                    id: r.id.clone(),
                    of: r.resource_type.clone(),
                    member: Member {
                        key: resource_key(&r.id),
                        working: spans(&r.calendar),
                        preferred: false,
                    },
                })
                .collect();
            out.extend(
                c.operators()
                    .filter(|o| !o.skills.is_empty())
                    .map(|o| Holder {
                        branch: o.branch.clone(),
                        kind: "operator",
                        id: o.id.clone(),
                        of: o.skills.iter().cloned().collect::<Vec<_>>().join(","),
                        member: Member {
                            key: operator_key(&o.id),
                            working: spans(&o.calendar),
                            preferred: false,
                        },
                    }),
            );
            out
        })
        .await
}

fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| erpos_design::value::format_datetime(&t))
        .unwrap_or_default()
}

fn window_of(
    from: Option<&str>,
    to: Option<&str>,
    at: &str,
    issues: &mut Vec<Issue>,
) -> Option<Span> {
    let mut parse = |raw: Option<&str>, name: &str| {
        let Some(raw) = raw else {
            issues.push(Issue::new(format!("{at}{name}"), "is required"));
            return None;
        };
        let parsed = erpos_design::value::parse_datetime(raw).map(|t| t.timestamp_millis());
        if parsed.is_none() {
            issues.push(Issue::new(
                format!("{at}{name}"),
                "expected a date and time with its offset (RFC 3339)",
            ));
        }
        parsed
    };
    let (from, to) = (parse(from, "from"), parse(to, "to"));
    let (from, to) = (from?, to?);
    if to <= from {
        issues.push(Issue::new(format!("{at}to"), "must be after from"));
        return None;
    }
    if to - from > MAX_CAPACITY_WINDOW_MS {
        issues.push(Issue::new(format!("{at}to"), "at most 92 days"));
        return None;
    }
    Some(Span { from, to })
}

/// The load of every holder per period over the window the query names.
pub async fn report(
    k: &Kernel,
    caller: &Caller,
    params: &[(String, String)],
) -> Result<CapacityReport> {
    require(
        caller,
        Permission::Bookings { op: "read" },
        "reading capacity",
    )?;
    let mut issues = Vec::new();
    let (mut from, mut to, mut by) = (None, None, "day".to_owned());
    let mut branch: Option<String> = None;
    for (key, raw) in params {
        match key.as_str() {
            "from" => from = Some(raw.as_str()),
            "to" => to = Some(raw.as_str()),
            "by" if raw == "day" || raw == "week" => by = raw.clone(),
            "by" => issues.push(Issue::new("/query/by", "day or week")),
            "branch" => branch = Some(raw.clone()),
            _ => issues.push(Issue::new(
                format!("/query/{key}"),
                "unknown parameter (from, to, by, branch)",
            )),
        }
    }
    let window = window_of(from, to, "/query/", &mut issues);
    if let Some(b) = &branch
        && !super::branches::known(&k.engine, b).await
    {
        issues.push(Issue::new(
            "/query/branch",
            format!("no resource or practitioner stands in branch '{b}'"),
        ));
    }
    let Some(window) = window.filter(|_| issues.is_empty()) else {
        return Err(KernelError::BadRequest(issues));
    };
    let period = if by == "week" { 7 * DAY_MS } else { DAY_MS };
    let holders = all_holders(k, window).await;
    let index = k.bookings.snapshot().await;
    let mut items = Vec::new();
    // A branch's holders are its own and those serving every branch.
    for h in holders
        .iter()
        .filter(|h| branch.is_none() || h.branch.is_none() || h.branch == branch)
    {
        let mut at = window.from;
        while at < window.to {
            let span = Span {
                from: at,
                to: (at + period).min(window.to),
            };
            let capacity = working_ms(&h.member, span);
            let booked = index.held_within(&h.member.key, span);
            items.push(PeriodLoad {
                kind: h.kind.to_owned(),
                id: h.id.clone(),
                of: h.of.clone(),
                period: instant(at),
                capacity_minutes: capacity / 60_000,
                booked_minutes: booked / 60_000,
                load: if capacity > 0 {
                    booked as f64 / capacity as f64
                } else {
                    0.0
                },
            });
            at += period;
        }
    }
    Ok(CapacityReport { by, items })
}

/// What a plan of treatments over a week (or any window) is asked about.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NeedsAsked {
    /// The window's start (RFC 3339), e.g. a Monday's midnight.
    pub from: String,
    /// Its end (at most 92 days later).
    pub to: String,
    /// How many of each treatment are planned in it.
    pub mix: Vec<TreatmentCount>,
}

/// A number of visits of one treatment.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TreatmentCount {
    /// The treatment's name.
    pub treatment: String,
    /// How many visits (1 … 100 000).
    pub count: u32,
}

/// What the plan needs of one kind of holder.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Need {
    /// `resource` or `operator`.
    pub kind: String,
    /// The resource type, or the skill.
    pub of: String,
    /// Minutes the plan holds of this kind (buffers included).
    pub needed_minutes: i64,
    /// Working minutes its members have free in the window (after what is booked).
    pub free_minutes: i64,
    /// How many members it has.
    pub members: usize,
    /// How many members of average free time the plan needs.
    pub members_needed: i64,
    /// Minutes missing (0 when it fits).
    pub shortfall_minutes: i64,
    /// Whether the free time covers the need.
    pub fits: bool,
}

/// What the plan consumes of one material.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MaterialNeed {
    /// The material.
    pub material: String,
    /// Its unit.
    pub unit: String,
    /// How much the plan's visits consume.
    pub needed: i64,
    /// How much is usable now, over every branch (lots usable until after the window's start).
    pub usable: i64,
    /// How much is missing (0 when it fits).
    pub shortfall: i64,
    /// Whether what is usable covers it.
    pub fits: bool,
}

/// The needs of a plan.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Needs {
    /// Per resource type and skill, the tightest first.
    pub items: Vec<Need>,
    /// Per material its treatments consume, the shortest first.
    pub materials: Vec<MaterialNeed>,
    /// Whether every kind and material fits (capacity alone: windows and buffers can
    /// still clash).
    pub fits: bool,
}

/// What the mix `body` names would need over its window.
pub async fn needs(k: &Kernel, caller: &Caller, body: &Value) -> Result<Needs> {
    require(
        caller,
        Permission::Bookings { op: "read" },
        "reading capacity",
    )?;
    let mut shape = erpos_design::shape::Shape::new();
    let Some(asked) = shape
        .read::<NeedsAsked>(body, "", &[])
        .filter(|_| shape.is_clean())
    else {
        return Err(KernelError::Invalid(shape.finish(Vec::new(), body)));
    };
    let mut issues = Vec::new();
    let window = window_of(Some(&asked.from), Some(&asked.to), "/", &mut issues);
    if asked.mix.is_empty() || asked.mix.len() > 100 {
        issues.push(Issue::new("/mix", "from 1 to 100 treatments"));
    }
    // (kind, of) → needed ms.
    let mut needed: BTreeMap<(&'static str, String), i64> = BTreeMap::new();
    let mut consumed: BTreeMap<String, i64> = BTreeMap::new();
    for (i, line) in asked.mix.iter().enumerate() {
        if !(1..=100_000).contains(&line.count) {
            issues.push(Issue::new(format!("/mix/{i}/count"), "from 1 to 100000"));
        }
        match super::treatments::get(k, &line.treatment).await {
            Ok(t) => {
                let held = i64::from(
                    t.duration_minutes + t.buffer_before_minutes + t.buffer_after_minutes,
                ) * 60_000
                    * i64::from(line.count);
                for ty in &t.resource_types {
                    *needed.entry(("resource", ty.clone())).or_default() += held;
                }
                if let Some(skill) = &t.skill {
                    *needed.entry(("operator", skill.clone())).or_default() += held;
                }
                for c in &t.consumables {
                    *consumed.entry(c.material.clone()).or_default() +=
                        c.quantity * i64::from(line.count);
                }
            }
            Err(_) => issues.push(Issue::new(
                format!("/mix/{i}/treatment"),
                "no such treatment",
            )),
        }
    }
    let Some(window) = window.filter(|_| issues.is_empty()) else {
        return Err(KernelError::Invalid(issues));
    };
    let holders = all_holders(k, window).await;
    let index = k.bookings.snapshot().await;
    let mut items = Vec::new();
    for ((kind, of), need) in needed {
        let members: Vec<&Holder> = holders
            .iter()
            .filter(|h| h.kind == kind && h.of.split(',').any(|s| s == of))
            .collect();
        let free: i64 = members
            .iter()
            .map(|h| free_ms(&index, &h.member, window))
            .sum();
        let per_member = if members.is_empty() {
            0
        } else {
            free / members.len() as i64
        };
        let members_needed = if per_member > 0 {
            (need + per_member - 1) / per_member
        } else {
            i64::from(need > 0)
        };
        items.push(Need {
            kind: kind.to_owned(),
            of,
            needed_minutes: need / 60_000,
            free_minutes: free / 60_000,
            members: members.len(),
            members_needed,
            shortfall_minutes: (need - free).max(0) / 60_000,
            fits: need <= free,
        });
    }
    items.sort_by(|a, b| {
        let ratio = |n: &Need| n.needed_minutes as f64 / (n.free_minutes.max(1)) as f64;
        ratio(b).total_cmp(&ratio(a))
    });
    let on_hand = crate::store::stock::on_hand(&k.db, window.from).await?;
    let mut materials = Vec::new();
    for (material, need) in consumed {
        let unit = crate::store::stock::material(&k.db, &material)
            .await?
            .map(|m| m.unit)
            .unwrap_or_default();
        let usable: i64 = on_hand
            .iter()
            .filter(|(m, _, _)| m == &material)
            .map(|(_, _, n)| *n)
            .sum();
        materials.push(MaterialNeed {
            material,
            unit,
            needed: need,
            usable,
            shortfall: (need - usable).max(0),
            fits: need <= usable,
        });
    }
    materials.sort_by_key(|m| (std::cmp::Reverse(m.shortfall), m.material.clone()));
    let fits = items.iter().all(|n| n.fits) && materials.iter().all(|m| m.fits);
    Ok(Needs {
        items,
        materials,
        fits,
    })
}
