//! Slot search over the API (issue 14 §3): `GET /api/v1/bookings/slots?treatment=&from=
//! &to=&practitioner=&limit=&order=` answers the starts where one resource of each type the
//! treatment needs and a practitioner with its skill are free for it and its buffers,
//! within their working hours, with what each start would take — the body of the booking
//! that takes it. Needs `bookings:read`.

use erpos_design::Issue;
use erpos_design::booking::Span;
use serde::Serialize;

use super::require;
use crate::Kernel;
use crate::bookings::slots::{Member, Want};
use crate::bookings::{operator_key, resource_key};
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};

/// The longest window one search looks through.
pub const MAX_WINDOW_MS: i64 = 31 * 24 * 3_600_000;
/// The most slots one search answers.
pub const MAX_SLOTS: usize = 200;
/// The grid starts lie on.
const STEP_MS: i64 = 15 * 60_000;

/// One free start and what booking it would take.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlotShown {
    /// When the treatment would start (RFC 3339).
    pub start: String,
    /// When it would end.
    pub end: String,
    /// Minutes held before.
    pub buffer_before_minutes: u32,
    /// Minutes held after.
    pub buffer_after_minutes: u32,
    /// The resources it would take, one per type the treatment needs, in its order.
    pub resources: Vec<String>,
    /// The practitioner it would take (none when the treatment needs no skill).
    pub operators: Vec<String>,
    /// Idle minutes it would leave next to those holders' other bookings, too short for
    /// another such treatment (0 is tightest).
    pub fragmentation_minutes: i64,
    /// Whether it takes the practitioner asked for (true when none was).
    pub preferred_practitioner: bool,
}

/// The answer of a slot search.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Slots {
    /// The treatment searched for.
    pub treatment: String,
    /// The slots, earliest first (or tightest first with `order=tightest`).
    pub slots: Vec<SlotShown>,
}

fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| erpos_design::value::format_datetime(&t))
        .unwrap_or_default()
}

fn instant_ms(raw: &str, at: &str, issues: &mut Vec<Issue>) -> Option<i64> {
    let parsed = erpos_design::value::parse_datetime(raw).map(|t| t.timestamp_millis());
    if parsed.is_none() {
        issues.push(Issue::new(
            at,
            "expected a date and time with its offset (RFC 3339)",
        ));
    }
    parsed
}

/// The holders a treatment needs over a window: one group per resource type it names, in
/// its order, then the practitioners with its skill; their ids beside them.
#[derive(Clone)]
pub(crate) struct Holders {
    /// The groups, as slot search and planning take them.
    pub groups: Vec<Vec<Member>>,
    /// Per group, its members' ids (a resource's, a user's).
    pub ids: Vec<Vec<String>>,
    /// Whether the practitioner asked for (if any) has the skill.
    pub practitioner_known: bool,
}

/// The holders `treatment` needs over `window`, with their working spans (buffers
/// included), the practitioner `preferred` marked; with a `branch`, only that branch's
/// holders and those that serve every branch.
pub(crate) async fn holders(
    k: &Kernel,
    treatment: &erpos_design::treatment::Treatment,
    window: Span,
    preferred: Option<&str>,
    branch: Option<&str>,
) -> Holders {
    let serves = |b: &Option<String>| branch.is_none() || b.is_none() || b.as_deref() == branch;
    let before = i64::from(treatment.buffer_before_minutes) * 60_000;
    let after = i64::from(treatment.buffer_after_minutes) * 60_000;
    let (from, to) = (window.from, window.to);
    let practitioner = preferred.map(str::to_owned);
    let calendars = k.calendars.all();
    let spans = |calendar: &Option<String>| {
        calendar
            .as_ref()
            .and_then(|c| calendars.get(c))
            .map(|cal| cal.working_spans(from - before, to + after))
    };
    // One group per resource type, then the practitioners with the skill.
    let (groups, ids, practitioner_known) = k
        .engine
        .read(|c| {
            let mut groups: Vec<Vec<Member>> = Vec::new();
            let mut ids: Vec<Vec<String>> = Vec::new();
            for ty in &treatment.resource_types {
                let members: Vec<_> = c
                    .pool()
                    .iter()
                    .filter(|r| &r.resource_type == ty && serves(&r.branch))
                    .collect();
                ids.push(members.iter().map(|r| r.id.clone()).collect());
                groups.push(
                    members
                        .iter()
                        .map(|r| Member {
                            key: resource_key(&r.id),
                            working: spans(&r.calendar),
                            preferred: false,
                        })
                        .collect(),
                );
            }
            let mut known = practitioner.is_none();
            if let Some(skill) = &treatment.skill {
                let members: Vec<_> = c
                    .operators()
                    .filter(|o| o.skills.contains(skill) && serves(&o.branch))
                    .collect();
                known |= members.iter().any(|o| Some(&o.id) == practitioner.as_ref());
                ids.push(members.iter().map(|o| o.id.clone()).collect());
                groups.push(
                    members
                        .iter()
                        .map(|o| Member {
                            key: operator_key(&o.id),
                            working: spans(&o.calendar),
                            preferred: Some(&o.id) == practitioner.as_ref(),
                        })
                        .collect(),
                );
            }
            (groups, ids, known)
        })
        .await;
    Holders {
        groups,
        ids,
        practitioner_known,
    }
}

/// Searches the slots the query parameters ask for.
pub async fn search(k: &Kernel, caller: &Caller, params: &[(String, String)]) -> Result<Slots> {
    require(
        caller,
        Permission::Bookings { op: "read" },
        "searching slots",
    )?;
    let mut issues = Vec::new();
    let (mut treatment, mut from, mut to, mut practitioner) = (None, None, None, None);
    let mut branch = None;
    let mut limit = 20;
    let mut tightest = false;
    for (key, raw) in params {
        let at = format!("/query/{key}");
        match key.as_str() {
            "treatment" => treatment = Some(raw.clone()),
            "from" => from = instant_ms(raw, &at, &mut issues),
            "to" => to = instant_ms(raw, &at, &mut issues),
            "practitioner" => practitioner = Some(raw.clone()),
            "branch" => branch = Some(raw.clone()),
            "limit" => {
                if let Some(n) = super::limit_param(raw, MAX_SLOTS, &mut issues) {
                    limit = n;
                }
            }
            "order" => match raw.as_str() {
                "earliest" => tightest = false,
                "tightest" => tightest = true,
                _ => issues.push(Issue::new(at, "earliest or tightest")),
            },
            _ => issues.push(Issue::new(
                at,
                "unknown parameter (treatment, from, to, practitioner, branch, limit, order)",
            )),
        }
    }
    for (missing, name) in [
        (treatment.is_none(), "treatment"),
        (from.is_none(), "from"),
        (to.is_none(), "to"),
    ] {
        if missing && !issues.iter().any(|i| i.path == format!("/query/{name}")) {
            issues.push(Issue::new(format!("/query/{name}"), "is required"));
        }
    }
    if let (Some(a), Some(b)) = (from, to) {
        if b <= a {
            issues.push(Issue::new("/query/to", "must be after from"));
        } else if b - a > MAX_WINDOW_MS {
            issues.push(Issue::new(
                "/query/to",
                "a search looks at most 31 days ahead",
            ));
        }
    }
    if let Some(b) = &branch
        && !super::branches::known(&k.engine, b).await
    {
        issues.push(Issue::new(
            "/query/branch",
            format!("no resource or practitioner stands in branch '{b}'"),
        ));
    }
    if !issues.is_empty() {
        return Err(KernelError::BadRequest(issues));
    }
    let (Some(name), Some(from), Some(to)) = (treatment, from, to) else {
        return Err(KernelError::BadRequest(Vec::new()));
    };
    let treatment = super::treatments::get(k, &name).await?;
    let from = from.max(k.clock.now_ms());
    let before = i64::from(treatment.buffer_before_minutes) * 60_000;
    let after = i64::from(treatment.buffer_after_minutes) * 60_000;
    // A visit's holders stand in one branch (a booking across two is refused), so each
    // branch is searched on its own — the one asked for, else each the caller sees — with
    // what serves every branch, and the slots are merged in the order asked for.
    let searched: Vec<Option<String>> = match branch {
        Some(b) => vec![Some(b)],
        None => {
            let names = match super::branches::scope(k, caller).await {
                Some(scope) => scope.names,
                None => super::branches::all(&k.engine).await,
            };
            if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            }
        }
    };
    let want = Want {
        window: Span { from, to },
        len: i64::from(treatment.duration_minutes) * 60_000,
        before,
        after,
        step: STEP_MS,
        limit: if tightest {
            MAX_SLOTS.max(limit)
        } else {
            limit
        },
    };
    let mut known = false;
    let mut slots: Vec<(i64, i64, SlotShown)> = Vec::new();
    for b in &searched {
        let Holders {
            groups,
            ids,
            practitioner_known,
        } = holders(
            k,
            &treatment,
            Span { from, to },
            practitioner.as_deref(),
            b.as_deref(),
        )
        .await;
        known |= practitioner_known;
        let resource_groups = treatment.resource_types.len();
        for s in k.bookings.slots(&groups, &want).await {
            let pick = |g: usize| {
                ids.get(g)
                    .and_then(|m| m.get(s.picks[g]))
                    .cloned()
                    .unwrap_or_default()
            };
            let shown = SlotShown {
                start: instant(s.start),
                end: instant(s.start + want.len),
                buffer_before_minutes: treatment.buffer_before_minutes,
                buffer_after_minutes: treatment.buffer_after_minutes,
                resources: (0..resource_groups).map(pick).collect(),
                operators: (resource_groups..s.picks.len()).map(pick).collect(),
                fragmentation_minutes: s.gaps / 60_000,
                preferred_practitioner: s.preferred,
            };
            slots.push((if tightest { s.gaps } else { 0 }, s.start, shown));
        }
    }
    if !known {
        return Err(KernelError::BadRequest(vec![Issue::new(
            "/query/practitioner",
            format!(
                "no practitioner '{}' with the skill '{}' this treatment needs",
                practitioner.unwrap_or_default(),
                treatment.skill.clone().unwrap_or_default()
            ),
        )]));
    }
    // Stable: within one start, the branches keep the order they were searched in.
    slots.sort_by_key(|(gaps, start, _)| (*gaps, *start));
    slots.truncate(limit);
    let slots = slots.into_iter().map(|(_, _, shown)| shown).collect();
    Ok(Slots {
        treatment: treatment.name,
        slots,
    })
}
