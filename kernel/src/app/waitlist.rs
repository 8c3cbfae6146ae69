//! The waitlist (issue 14 §3): a patient who found no free slot is put on it for a
//! treatment within a window (`POST /api/v1/bookings/waitlist`); when a booking is
//! cancelled, marked no-show or moved, the first waiting patient (first come, first
//! served) whose window a slot now opens in is offered it — the entry turns `offered`,
//! carrying the booking body — and reception accepts the offer (`…/{id}/accept`, which
//! books it like any booking; a slot taken meanwhile is the usual 409 and the entry waits
//! again) or withdraws the entry. One freed slot is offered to one patient. Grants:
//! `bookings:read` to list, `bookings:book` to join, accept and withdraw.

use erpos_design::Issue;
use erpos_design::booking::Span;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::read_body as read;
use super::require;
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{ErrorCode, KernelError, Result};
use crate::store::waitlist::Stored;

/// The most entries one page lists.
pub const MAX_LIMIT: usize = 500;
/// How many waiting entries a freed slot is tried for.
const TRIED: usize = 50;

/// The body of `POST /api/v1/bookings/waitlist`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Who: the patient's record id or name.
    pub patient: String,
    /// The treatment wanted.
    pub treatment: String,
    /// The earliest she can come (RFC 3339).
    pub from: String,
    /// The latest (at most 31 days after `from`).
    pub to: String,
    /// The practitioner preferred.
    #[serde(default)]
    pub practitioner: Option<String>,
}

/// An entry as shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitlistEntry {
    /// Its id.
    pub id: String,
    /// Who.
    pub patient: String,
    /// The treatment.
    pub treatment: String,
    /// The practitioner preferred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// The window's start.
    pub from: String,
    /// Its end.
    pub to: String,
    /// `waiting`, `offered`, `booked` or `withdrawn`.
    pub state: String,
    /// The slot offered: the body of the booking accepting takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<Value>,
    /// The booking accepting made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
    /// Who put the patient on the list.
    pub created_by: String,
    /// When.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| erpos_design::value::format_datetime(&t))
        .unwrap_or_default()
}

fn shown(e: Stored) -> WaitlistEntry {
    WaitlistEntry {
        id: e.id,
        patient: e.patient,
        treatment: e.treatment,
        practitioner: e.practitioner,
        from: instant(e.from_ms),
        to: instant(e.to_ms),
        state: e.state,
        offer: e.offer,
        booking: e.booking,
        created_by: e.created_by,
        created_at: instant(e.created_ms),
        updated_at: instant(e.updated_ms),
    }
}

async fn entry(k: &Kernel, id: &str) -> Result<Stored> {
    crate::store::waitlist::get(&k.db, id)
        .await?
        .ok_or_else(|| KernelError::NotFound(format!("waitlist entry {id}")))
}

/// The first slot for `treatment` (and the practitioner preferred) within `window`, as
/// the booking body that takes it.
async fn slot_in(
    k: &Kernel,
    treatment: &str,
    practitioner: Option<&str>,
    window: Span,
) -> Result<Option<Value>> {
    let mut params = vec![
        ("treatment".to_owned(), treatment.to_owned()),
        ("from".to_owned(), instant(window.from)),
        ("to".to_owned(), instant(window.to)),
        ("limit".to_owned(), "1".to_owned()),
    ];
    if let Some(p) = practitioner {
        params.push(("practitioner".to_owned(), p.to_owned()));
    }
    let found = super::slots::search(k, &Caller::system("waitlist"), &params).await?;
    Ok(found.slots.into_iter().next().map(|s| {
        json!({"resources": s.resources, "operators": s.operators, "start": s.start, "end": s.end,
               "buffer_before_minutes": s.buffer_before_minutes,
               "buffer_after_minutes": s.buffer_after_minutes, "treatment": treatment})
    }))
}

/// Puts a patient on the waitlist (`bookings:book`).
pub async fn join(k: &Kernel, caller: &Caller, body: &Value) -> Result<WaitlistEntry> {
    require(
        caller,
        Permission::Bookings { op: "book" },
        "joining the waitlist",
    )?;
    let r: JoinRequest = read(body)?;
    let mut issues = Vec::new();
    super::short_text(&r.patient, "/patient", 200, &mut issues);
    let parse = |raw: &str, at: &str, issues: &mut Vec<Issue>| {
        let t = erpos_design::value::parse_datetime(raw).map(|t| t.timestamp_millis());
        if t.is_none() {
            issues.push(Issue::new(
                at,
                "expected a date and time with its offset (RFC 3339)",
            ));
        }
        t
    };
    let from = parse(&r.from, "/from", &mut issues);
    let to = parse(&r.to, "/to", &mut issues);
    let now = k.clock.now_ms();
    if let (Some(a), Some(b)) = (from, to) {
        if b <= a.max(now) {
            issues.push(Issue::new("/to", "must be after from, and after now"));
        } else if b - a > super::slots::MAX_WINDOW_MS {
            issues.push(Issue::new("/to", "a window is at most 31 days"));
        }
    }
    match super::treatments::get(k, &r.treatment).await {
        Ok(t) => {
            if let Some(p) = &r.practitioner {
                let known = k
                    .engine
                    .read(|c| {
                        c.operators().any(|o| {
                            &o.id == p && t.skill.as_ref().is_none_or(|s| o.skills.contains(s))
                        })
                    })
                    .await;
                if !known {
                    issues.push(Issue::new(
                        "/practitioner",
                        format!("no practitioner '{p}' with the skill this treatment needs"),
                    ));
                }
            }
        }
        Err(_) => issues.push(Issue::new(
            "/treatment",
            format!("no treatment '{}'", r.treatment),
        )),
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(KernelError::Invalid(issues));
    };
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let e = Stored {
        id: uuid::Uuid::now_v7().to_string(),
        patient: r.patient,
        treatment: r.treatment,
        practitioner: r.practitioner,
        from_ms: from.max(now),
        to_ms: to,
        state: "waiting".into(),
        offer: None,
        booking: None,
        created_by: caller.user.clone(),
        created_ms: now,
        updated_ms: now,
    };
    let sql = crate::store::waitlist::insert_sql(&k.db, &e);
    let row = super::audit(k, caller, "waitlist.join").row(k.db.dialect(), &e.id);
    k.db.write_atomically(vec![sql, row]).await?;
    Ok(shown(e))
}

/// The entries (`?state=`, `after`, `limit`), oldest first (`bookings:read`).
pub async fn list(
    k: &Kernel,
    caller: &Caller,
    params: &[(String, String)],
) -> Result<Vec<WaitlistEntry>> {
    require(
        caller,
        Permission::Bookings { op: "read" },
        "reading the waitlist",
    )?;
    let (mut state, mut after, mut limit, mut issues) = (None, None, 50, Vec::new());
    for (key, raw) in params {
        match key.as_str() {
            "state" if ["waiting", "offered", "booked", "withdrawn"].contains(&raw.as_str()) => {
                state = Some(raw.clone());
            }
            "state" => issues.push(Issue::new(
                "/query/state",
                "waiting, offered, booked or withdrawn",
            )),
            "after" => after = Some(raw.clone()),
            "limit" => {
                if let Some(n) = super::limit_param(raw, MAX_LIMIT, &mut issues) {
                    limit = n;
                }
            }
            _ => issues.push(Issue::new(
                format!("/query/{key}"),
                "unknown parameter (state, after, limit)",
            )),
        }
    }
    if !issues.is_empty() {
        return Err(KernelError::BadRequest(issues));
    }
    Ok(
        crate::store::waitlist::list(&k.db, state.as_deref(), after.as_deref(), limit)
            .await?
            .into_iter()
            .map(shown)
            .collect(),
    )
}

/// Offers the time `freed` gave back (a booking cancelled, a no-show, a booking moved) to
/// the first waiting patient a slot now opens for; answers the entry offered, if any.
/// Called after the change committed: a failure here is logged, never the change's.
pub async fn offer_freed(k: &Kernel, freed: Span) -> Option<String> {
    match offer(k, freed).await {
        Ok(offered) => offered,
        Err(e) => {
            tracing::warn!(error = %e, "waitlist: offering a freed slot failed");
            None
        }
    }
}

async fn offer(k: &Kernel, freed: Span) -> Result<Option<String>> {
    // A slot the freed time opens lies within a day of it (a treatment's longest span).
    let reach = crate::bookings::MAX_SPAN_MS;
    let now = k.clock.now_ms();
    for e in
        crate::store::waitlist::waiting_over(&k.db, freed.from - reach, freed.to + reach, TRIED)
            .await?
    {
        let window = Span {
            from: e.from_ms.max(freed.from - reach).max(now),
            to: e.to_ms.min(freed.to + reach),
        };
        if window.to <= window.from {
            continue;
        }
        let Some(mut slot) = slot_in(k, &e.treatment, e.practitioner.as_deref(), window).await?
        else {
            continue;
        };
        slot["patient"] = json!(e.patient);
        let sql = crate::store::waitlist::move_sql(
            &k.db,
            &e.id,
            &["waiting"],
            "offered",
            Some(&slot),
            None,
            now,
        );
        let row =
            crate::audit::Audit::new("waitlist", "waitlist.offer", now).row(k.db.dialect(), &e.id);
        k.db.write_atomically(vec![sql, row]).await?;
        return Ok(Some(e.id));
    }
    Ok(None)
}

/// Accepts the offer of entry `id` (`bookings:book`): books it; a slot taken meanwhile is
/// the booking's 409 and the entry waits again.
pub async fn accept(k: &Kernel, caller: &Caller, id: &str) -> Result<WaitlistEntry> {
    require(
        caller,
        Permission::Bookings { op: "book" },
        "accepting waitlist offers",
    )?;
    let e = entry(k, id).await?;
    let Some(offer) = e.offer.clone().filter(|_| e.state == "offered") else {
        return Err(KernelError::Conflict {
            code: ErrorCode::WaitlistNotOffered,
            message: format!(
                "waitlist entry {id} is {}: only an offer can be accepted",
                e.state
            ),
            details: vec![Issue::new("/state", e.state.clone())],
        });
    };
    let now = k.clock.now_ms();
    match super::bookings::book(k, caller, &offer).await {
        Ok(booking) => {
            let sql = crate::store::waitlist::move_sql(
                &k.db,
                id,
                &["offered"],
                "booked",
                Some(&offer),
                Some(&booking.id),
                now,
            );
            let row = super::audit(k, caller, "waitlist.accept").row(k.db.dialect(), id);
            k.db.write_atomically(vec![sql, row]).await?;
            entry(k, id).await.map(shown)
        }
        Err(refused) => {
            let sql = crate::store::waitlist::move_sql(
                &k.db,
                id,
                &["offered"],
                "waiting",
                None,
                None,
                now,
            );
            k.db.write_atomically(vec![sql]).await?;
            Err(refused)
        }
    }
}

/// Takes entry `id` off the waitlist (`bookings:book`).
pub async fn withdraw(k: &Kernel, caller: &Caller, id: &str) -> Result<WaitlistEntry> {
    require(
        caller,
        Permission::Bookings { op: "book" },
        "withdrawing waitlist entries",
    )?;
    let e = entry(k, id).await?;
    if e.state != "waiting" && e.state != "offered" {
        return Err(KernelError::Conflict {
            code: ErrorCode::WaitlistNotOffered,
            message: format!(
                "waitlist entry {id} is {}: only a waiting or offered entry is withdrawn",
                e.state
            ),
            details: vec![Issue::new("/state", e.state)],
        });
    }
    let now = k.clock.now_ms();
    let sql = crate::store::waitlist::move_sql(
        &k.db,
        id,
        &["waiting", "offered"],
        "withdrawn",
        None,
        None,
        now,
    );
    let row = super::audit(k, caller, "waitlist.withdraw").row(k.db.dialect(), id);
    k.db.write_atomically(vec![sql, row]).await?;
    entry(k, id).await.map(shown)
}
