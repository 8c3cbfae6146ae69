//! Use cases of bookings (issue 14 §2): reading a request (every problem at its pointer),
//! checking its holders exist and that their working calendars allow the span, then
//! booking, moving, cancelling or marking a no-show through the kernel's `Bookings`. Needs
//! `bookings:book` to change and `bookings:read` to see.

use std::collections::BTreeMap;

use erpos_design::{Issue, WorkingCalendar};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::read_body as read;
use super::require;
use crate::Kernel;
use crate::bookings::index::Span;
use crate::bookings::{
    Booking, BookingKind, BookingState, MAX_BUFFER_MINUTES, MAX_HOLDERS, MAX_SPAN_MS, Reservation,
    Times, operator_key, resource_key,
};
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};
use crate::store::bookings::BookingQuery;

/// The longest note a booking carries.
const MAX_NOTE: usize = 500;
/// The most bookings one page lists.
pub const MAX_LIMIT: usize = 500;

/// The body of `POST /api/v1/bookings`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// `visit` (the default) or `maintenance`.
    #[serde(default)]
    pub kind: BookingKind,
    /// The resources held (ids): a room, a device.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The operators held (user ids): a practitioner.
    #[serde(default)]
    pub operators: Vec<String>,
    /// When it starts (RFC 3339).
    pub start: String,
    /// When it ends (RFC 3339), after `start`.
    pub end: String,
    /// Minutes held before the start (preparation), at most 240.
    #[serde(default)]
    pub buffer_before_minutes: u32,
    /// Minutes held after the end (cleaning), at most 240.
    #[serde(default)]
    pub buffer_after_minutes: u32,
    /// The patient (a record id).
    #[serde(default)]
    pub patient: Option<String>,
    /// The treatment booked.
    #[serde(default)]
    pub treatment: Option<String>,
    /// A note for staff (at most 500 characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// The body of `POST /api/v1/bookings/{id}/reschedule`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The new start (RFC 3339).
    pub start: String,
    /// The new end.
    pub end: String,
    /// New buffers; the booking's own when left out.
    #[serde(default)]
    pub buffer_before_minutes: Option<u32>,
    /// New buffers; the booking's own when left out.
    #[serde(default)]
    pub buffer_after_minutes: Option<u32>,
    /// The version the change is based on (refused with 409 when it moved on).
    #[serde(default)]
    pub version: Option<i64>,
}

/// The body of `POST /api/v1/bookings/{id}/cancel` and `…/no-show`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndRequest {
    /// Why (kept in the history).
    #[serde(default)]
    pub reason: Option<String>,
    /// The version the change is based on.
    #[serde(default)]
    pub version: Option<i64>,
}

fn instant_ms(text: &str, at: &str, issues: &mut Vec<Issue>) -> Option<i64> {
    match erpos_design::value::parse_datetime(text) {
        Some(t) => Some(t.timestamp_millis()),
        None => {
            issues.push(Issue::new(
                at,
                "expected a date and time with its offset (RFC 3339: 2026-12-03T10:00:00+08:00)",
            ));
            None
        }
    }
}

/// The times of a booking from `start`, `end` and the buffers, checked: every problem at
/// its pointer.
fn times(
    start: &str,
    end: &str,
    before: u32,
    after: u32,
    now_ms: i64,
    issues: &mut Vec<Issue>,
) -> Option<Times> {
    let from = instant_ms(start, "/start", issues);
    let to = instant_ms(end, "/end", issues);
    for (minutes, at) in [
        (before, "/buffer_before_minutes"),
        (after, "/buffer_after_minutes"),
    ] {
        if minutes > MAX_BUFFER_MINUTES {
            issues.push(Issue::new(
                at,
                format!("at most {MAX_BUFFER_MINUTES} minutes"),
            ));
        }
    }
    let (from, to) = (from?, to?);
    if to <= from {
        issues.push(Issue::new("/end", "must be after the start"));
        return None;
    }
    if from < now_ms {
        issues.push(Issue::new("/start", "is in the past"));
    }
    let held = Span {
        from: from - i64::from(before.min(MAX_BUFFER_MINUTES)) * 60_000,
        to: to + i64::from(after.min(MAX_BUFFER_MINUTES)) * 60_000,
    };
    if held.len() > MAX_SPAN_MS {
        issues.push(Issue::new(
            "/end",
            "a booking holds at most 24 hours, buffers included",
        ));
    }
    Some(Times {
        served: Span { from, to },
        held,
        before,
        after,
    })
}

/// Per holder key, its working calendar (holders without one are always available).
type Calendars = BTreeMap<String, WorkingCalendar>;

/// Checks that every resource and operator exists (with a suggestion when misspelt), is
/// named once, that there is at least one, and that they do not stand in two branches;
/// answers their calendars and the branch the booking is in.
async fn holders(
    k: &Kernel,
    resources: &[String],
    operators: &[String],
    issues: &mut Vec<Issue>,
) -> (Calendars, Option<String>) {
    if resources.is_empty() && operators.is_empty() {
        issues.push(Issue::new(
            "/resources",
            "a booking holds at least one resource or operator",
        ));
    }
    for (list, at) in [(resources, "/resources"), (operators, "/operators")] {
        if list.len() > MAX_HOLDERS {
            issues.push(Issue::new(at, format!("at most {MAX_HOLDERS}")));
        }
        for (i, id) in list.iter().enumerate() {
            if list[..i].contains(id) {
                issues.push(Issue::new(
                    format!("{at}/{i}"),
                    format!("'{id}' is named twice"),
                ));
            }
        }
    }
    let calendars = k.calendars.all();
    let (known_resources, known_operators, found) = k
        .engine
        .read(|c| {
            let mut found: Vec<(String, Option<String>, Option<String>)> = Vec::new();
            for id in resources {
                if let Some(r) = c.pool().get(id) {
                    found.push((resource_key(id), r.calendar.clone(), r.branch.clone()));
                }
            }
            for id in operators {
                if let Some(o) = c.operators().find(|o| &o.id == id) {
                    found.push((operator_key(id), o.calendar.clone(), o.branch.clone()));
                }
            }
            let rs: Vec<String> = c.pool().iter().map(|r| r.id.clone()).collect();
            let os: Vec<String> = c.operators().map(|o| o.id.clone()).collect();
            (rs, os, found)
        })
        .await;
    for (list, at, noun, known, key) in [
        (
            resources,
            "/resources",
            "resource",
            &known_resources,
            resource_key as fn(&str) -> String,
        ),
        (
            operators,
            "/operators",
            "user",
            &known_operators,
            operator_key,
        ),
    ] {
        for (i, id) in list.iter().enumerate() {
            if !found.iter().any(|(k, _, _)| *k == key(id)) {
                issues.push(Issue::new(
                    format!("{at}/{i}"),
                    erpos_design::directory::unknown(noun, id, known.iter()),
                ));
            }
        }
    }
    let branch = one_branch(resources, operators, &found, issues);
    let calendars = found
        .into_iter()
        .filter_map(|(key, cal, _)| Some((key, calendars.get(&cal?)?.clone())))
        .collect();
    (calendars, branch)
}

/// The branch a booking's holders stand in: the first one named, every other holder of
/// a branch in the same one (those of none serve every branch); a holder of another is
/// refused at its pointer.
fn one_branch(
    resources: &[String],
    operators: &[String],
    found: &[(String, Option<String>, Option<String>)],
    issues: &mut Vec<Issue>,
) -> Option<String> {
    let mut branch: Option<String> = None;
    for (list, at, key) in [
        (resources, "/resources", resource_key as fn(&str) -> String),
        (operators, "/operators", operator_key),
    ] {
        for (i, id) in list.iter().enumerate() {
            let Some(b) = found
                .iter()
                .find(|(k, _, _)| *k == key(id))
                .and_then(|(_, _, b)| b.as_ref())
            else {
                continue;
            };
            match &branch {
                None => branch = Some(b.clone()),
                Some(first) if first != b => issues.push(Issue::new(
                    format!("{at}/{i}"),
                    format!("'{id}' stands in branch '{b}', the booking in '{first}'"),
                )),
                Some(_) => {}
            }
        }
    }
    branch
}

/// Whether `span` lies within the working time of every holder's calendar: None when it
/// does, else the earliest later start worth trying (the next working start after the
/// first minute off).
fn fits(calendars: &Calendars, holders: &[String], span: Span) -> Option<i64> {
    let mut later: Option<i64> = None;
    for holder in holders {
        let Some(cal) = calendars.get(holder) else {
            continue;
        };
        if cal.working_ms_between(span.from, span.to) >= span.len() {
            continue;
        }
        // The first minute off within the span, then the next working start after it.
        let mut t = span.from;
        while t < span.to && cal.is_working(t) {
            t += 60_000;
        }
        let next = cal.next_working_start(t).unwrap_or(i64::MAX);
        later = Some(later.map_or(next, |l| l.max(next)));
    }
    later
}

/// Refuses (422) a span outside a holder's working hours, at the holder's pointer.
fn within_calendars(
    calendars: &Calendars,
    resources: &[String],
    operators: &[String],
    held: Span,
    issues: &mut Vec<Issue>,
) {
    for (list, at, key) in [
        (resources, "/resources", resource_key as fn(&str) -> String),
        (operators, "/operators", operator_key),
    ] {
        for (i, id) in list.iter().enumerate() {
            let holder = key(id);
            if let Some(cal) = calendars.get(&holder)
                && fits(calendars, std::slice::from_ref(&holder), held).is_some()
            {
                issues.push(Issue::new(
                    format!("{at}/{i}"),
                    format!(
                        "'{id}' does not work then (calendar '{}'), buffers included",
                        cal.name
                    ),
                ));
            }
        }
    }
}

fn text(value: Option<String>, at: &str, issues: &mut Vec<Issue>) -> Option<String> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if value.as_ref().is_some_and(|v| v.chars().count() > MAX_NOTE) {
        issues.push(Issue::new(at, format!("at most {MAX_NOTE} characters")));
    }
    value
}

/// Books what `body` asks (`bookings:book`).
pub async fn book(k: &Kernel, caller: &Caller, body: &Value) -> Result<Booking> {
    require(caller, Permission::Bookings { op: "book" }, "booking")?;
    let request: BookingRequest = read(body)?;
    let now = k.clock.now_ms();
    let mut issues = Vec::new();
    let times = times(
        &request.start,
        &request.end,
        request.buffer_before_minutes,
        request.buffer_after_minutes,
        now,
        &mut issues,
    );
    let (calendars, branch) = holders(k, &request.resources, &request.operators, &mut issues).await;
    if let Some(t) = &times {
        within_calendars(
            &calendars,
            &request.resources,
            &request.operators,
            t.held,
            &mut issues,
        );
    }
    let patient = text(request.patient, "/patient", &mut issues);
    let treatment = text(request.treatment, "/treatment", &mut issues);
    let note = text(request.note, "/note", &mut issues);
    let Some(times) = times.filter(|_| issues.is_empty()) else {
        return Err(KernelError::Invalid(issues));
    };
    let reservation = Reservation {
        kind: request.kind,
        times,
        resources: request.resources,
        operators: request.operators,
        patient,
        treatment,
        note,
        branch,
    };
    let fits = move |h: &[String], s: Span| fits(&calendars, h, s);
    let booked = k
        .bookings
        .book(reservation, &caller.user, now, &fits)
        .await?;
    super::visits::start(k, caller, booked).await
}

/// Parses a booking id from the path (404 for anything that is not one).
pub fn booking_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| KernelError::NotFound(format!("booking {text}")))
}

/// Moves booking `id` to the times `body` gives (`bookings:book`).
pub async fn reschedule(k: &Kernel, caller: &Caller, id: &str, body: &Value) -> Result<Booking> {
    require(
        caller,
        Permission::Bookings { op: "book" },
        "moving bookings",
    )?;
    let id = booking_id(id)?;
    let request: RescheduleRequest = read(body)?;
    let current = k.bookings.get(id).await?;
    let now = k.clock.now_ms();
    let mut issues = Vec::new();
    let times = times(
        &request.start,
        &request.end,
        request
            .buffer_before_minutes
            .unwrap_or(current.buffer_before_minutes),
        request
            .buffer_after_minutes
            .unwrap_or(current.buffer_after_minutes),
        now,
        &mut issues,
    );
    let (calendars, _) = holders(k, &current.resources, &current.operators, &mut issues).await;
    if let Some(t) = &times {
        within_calendars(
            &calendars,
            &current.resources,
            &current.operators,
            t.held,
            &mut issues,
        );
    }
    let Some(times) = times.filter(|_| issues.is_empty()) else {
        return Err(KernelError::Invalid(issues));
    };
    let fits = move |h: &[String], s: Span| fits(&calendars, h, s);
    let moved = k
        .bookings
        .reschedule(id, times, request.version, &caller.user, now, &fits)
        .await?;
    // The time it held before is free now, for whoever waits for it.
    super::visits::moved(k, caller, &moved).await?;
    if let Some(freed) = held_span(&current).filter(|s| Some(*s) != held_span(&moved)) {
        super::waitlist::offer_freed(k, freed).await;
    }
    Ok(moved)
}

/// Cancels booking `id`, or marks it a no-show (`bookings:book`).
pub async fn end(
    k: &Kernel,
    caller: &Caller,
    id: &str,
    state: BookingState,
    body: &Value,
) -> Result<Booking> {
    require(
        caller,
        Permission::Bookings { op: "book" },
        "ending bookings",
    )?;
    let id = booking_id(id)?;
    let request: EndRequest = read(body)?;
    let mut issues = Vec::new();
    let reason = text(request.reason, "/reason", &mut issues);
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let ended = k
        .bookings
        .end(
            id,
            state,
            reason,
            request.version,
            &caller.user,
            k.clock.now_ms(),
        )
        .await?;
    super::visits::ended(k, caller, &ended).await?;
    if let Some(freed) = held_span(&ended) {
        super::waitlist::offer_freed(k, freed).await;
    }
    Ok(ended)
}

/// The span a booking holds (buffers included), read back from what it shows.
fn held_span(b: &Booking) -> Option<Span> {
    let ms = |t: &str| erpos_design::value::parse_datetime(t).map(|t| t.timestamp_millis());
    Some(Span {
        from: ms(&b.held_from)?,
        to: ms(&b.held_to)?,
    })
}

/// Booking `id` with its history (`bookings:read`).
pub async fn show(k: &Kernel, caller: &Caller, id: &str) -> Result<Value> {
    require(
        caller,
        Permission::Bookings { op: "read" },
        "reading bookings",
    )?;
    let id = booking_id(id)?;
    let booking = k.bookings.get(id).await?;
    // Another branch's booking is answered as one that does not exist.
    let scope = super::branches::scope(k, caller).await;
    if !super::branches::sees(&scope, booking.branch.as_deref()) {
        return Err(KernelError::NotFound(format!("booking {id}")));
    }
    let history = k.bookings.history(id).await?;
    let mut shown =
        serde_json::to_value(&booking).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    if let Some(o) = shown.as_object_mut() {
        o.insert("history".into(), Value::Array(history));
    }
    Ok(shown)
}

/// The bookings the query parameters ask for (`bookings:read`): `branch`, `resource`,
/// `operator`, `from`, `to` (RFC 3339), `state`, `limit` (1–500, 50), `cursor`; a branch's
/// staff see their branch's (see [`super::branches`]).
pub async fn list(
    k: &Kernel,
    caller: &Caller,
    params: &[(String, String)],
) -> Result<(Vec<Booking>, Option<String>)> {
    require(
        caller,
        Permission::Bookings { op: "read" },
        "reading bookings",
    )?;
    let mut query = BookingQuery {
        limit: 50,
        ..BookingQuery::default()
    };
    let mut issues = Vec::new();
    let mut branch = None;
    for (key, raw) in params {
        let at = format!("/query/{key}");
        match key.as_str() {
            "branch" => branch = Some(raw.clone()),
            "resource" => query.holder = Some(resource_key(raw)),
            "operator" => query.holder = Some(operator_key(raw)),
            "from" => query.from_ms = instant_ms(raw, &at, &mut issues),
            "to" => query.to_ms = instant_ms(raw, &at, &mut issues),
            "state" => {
                query.state = match raw.as_str() {
                    "booked" => Some(BookingState::Booked),
                    "cancelled" => Some(BookingState::Cancelled),
                    "no_show" => Some(BookingState::NoShow),
                    _ => {
                        issues.push(Issue::new(at, "one of booked, cancelled, no_show"));
                        None
                    }
                }
            }
            "limit" => {
                if let Some(n) = super::limit_param(raw, MAX_LIMIT, &mut issues) {
                    query.limit = n;
                }
            }
            "cursor" => {
                let parsed = raw.split_once('_').and_then(|(start, id)| {
                    Some((
                        start.parse::<i64>().ok()?,
                        Uuid::parse_str(id).ok()?.to_string(),
                    ))
                });
                match parsed {
                    Some(after) => query.after = Some(after),
                    None => issues.push(Issue::new(at, "not a cursor this list gave")),
                }
            }
            _ => issues.push(Issue::new(
                at,
                "unknown parameter (branch, resource, operator, from, to, state, limit, cursor)",
            )),
        }
    }
    if !issues.is_empty() {
        return Err(KernelError::BadRequest(issues));
    }
    query.branches = super::branches::limit(k, caller, branch.as_deref()).await?;
    k.bookings.list(&query).await
}
