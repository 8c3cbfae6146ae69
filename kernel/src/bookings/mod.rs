//! Bookings: reservations of a set of holders — resources (a room, a device) and operators
//! (a practitioner) — over a span of time plus buffers before and after (preparation,
//! cleaning), all or nothing (issue 14 §2). The kernel owns them in memory, as an interval
//! index per holder (`index`), and in storage, where the database refuses an overlap too
//! (`store::bookings`). Deciding is serialised on one node: the index is checked and the
//! booking written under one lock, so of two requests for the same slot exactly one wins;
//! the database's own check keeps that true across nodes. Booking, rescheduling, cancelling
//! and no-show each leave a history entry. This module decides and stores; who may book,
//! and whether the holders and their calendars allow the span, is the application layer's.

pub mod index;
pub mod plan;
pub mod slots;

use std::sync::Arc;

use erpos_design::Issue;
use erpos_design::value::format_datetime;
use uuid::Uuid;

use crate::audit::Audit;
use crate::db::Db;
use crate::error::{ErrorCode, KernelError, Result};
use crate::store::bookings::Change;
pub use erpos_design::booking::{Booking, BookingKind, BookingState, Times};
use index::{Clash, Index, Span};

/// The longest span a booking may hold (buffers included): a day.
pub const MAX_SPAN_MS: i64 = 24 * 3_600_000;
/// The longest buffer before or after a booking, in minutes.
pub const MAX_BUFFER_MINUTES: u32 = 240;
/// The most resources, and the most operators, one booking holds.
pub const MAX_HOLDERS: usize = 10;
/// How many free starts a refused booking proposes instead.
pub const ALTERNATIVES: usize = 3;
/// How far ahead alternatives are looked for.
pub const ALTERNATIVES_WITHIN_MS: i64 = 14 * 24 * 3_600_000;

/// What the application layer asks to book, checked.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// What it is for.
    pub kind: BookingKind,
    /// Its times.
    pub times: Times,
    /// Resource ids.
    pub resources: Vec<String>,
    /// Operator (user) ids.
    pub operators: Vec<String>,
    /// The patient.
    pub patient: Option<String>,
    /// The treatment.
    pub treatment: Option<String>,
    /// A note.
    pub note: Option<String>,
    /// The branch its holders stand in (checked by the caller: never two).
    pub branch: Option<String>,
}

/// The index key of a resource.
pub fn resource_key(id: &str) -> String {
    format!("resource:{id}")
}

/// The index key of an operator.
pub fn operator_key(id: &str) -> String {
    format!("operator:{id}")
}

fn holders_of(resources: &[String], operators: &[String]) -> Vec<String> {
    resources
        .iter()
        .map(|r| resource_key(r))
        .chain(operators.iter().map(|o| operator_key(o)))
        .collect()
}

fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| format_datetime(&t))
        .unwrap_or_default()
}

/// A conflict: the bookings in the way, each at the pointer of the holder it takes, and
/// the next free starts at `/alternatives/{i}` (RFC 3339), so a client can offer them.
fn conflict(
    resources: &[String],
    operators: &[String],
    clashes: &[Clash],
    alternatives: &[i64],
) -> KernelError {
    let mut details: Vec<Issue> = clashes
        .iter()
        .map(|c| {
            let at = resources
                .iter()
                .position(|r| resource_key(r) == c.holder)
                .map(|i| format!("/resources/{i}"))
                .or_else(|| {
                    operators
                        .iter()
                        .position(|o| operator_key(o) == c.holder)
                        .map(|i| format!("/operators/{i}"))
                })
                .unwrap_or_default();
            let who = c
                .holder
                .split_once(':')
                .map_or(c.holder.as_str(), |(_, id)| id);
            Issue::new(
                at,
                format!(
                    "{who} is booked from {} to {} (booking {})",
                    instant(c.held.from),
                    instant(c.held.to),
                    c.booking
                ),
            )
        })
        .collect();
    details.extend(
        alternatives
            .iter()
            .enumerate()
            .map(|(i, start)| Issue::new(format!("/alternatives/{i}"), instant(*start))),
    );
    let next = alternatives
        .first()
        .map(|s| format!("; the next free start is {}", instant(*s)))
        .unwrap_or_else(|| "; nothing is free in the next 14 days".to_owned());
    KernelError::Conflict {
        code: ErrorCode::BookingConflict,
        message: format!(
            "the slot is taken: {} holder(s) are booked then{next}",
            clashes.len()
        ),
        details,
    }
}

/// Whether a database error is PostgreSQL refusing an overlap (exclusion violation).
fn is_overlap(e: &KernelError) -> bool {
    matches!(e, KernelError::Database(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23P01"))
}

/// The bookings service.
pub struct Bookings {
    db: Db,
    /// The holds of every active booking; deciding holds this lock from the check to the
    /// commit, so decisions on one node are serial.
    index: tokio::sync::Mutex<Index>,
}

/// When a span may be held, as the application layer's calendars say: None when it may,
/// else the earliest later start worth trying.
pub type Fits<'a> = &'a (dyn Fn(&[String], Span) -> Option<i64> + Send + Sync);

impl Bookings {
    /// Loads the holds of every active booking into the index.
    pub async fn load(db: Db) -> Result<Arc<Bookings>> {
        let mut index = Index::new();
        for (booking, holder, span) in crate::store::bookings::holds(&db).await? {
            index.hold(booking, &[holder], span);
        }
        Ok(Arc::new(Bookings {
            db,
            index: tokio::sync::Mutex::new(index),
        }))
    }

    /// Books `r` as `actor` at `now_ms`, or refuses with 409 `booking_conflict` naming the
    /// bookings in the way and the next free starts (`fits` says where calendars allow).
    pub async fn book(
        &self,
        r: Reservation,
        actor: &str,
        now_ms: i64,
        fits: Fits<'_>,
    ) -> Result<Booking> {
        let holders = holders_of(&r.resources, &r.operators);
        let mut index = self.index.lock().await;
        let clashes = index.clashes(&holders, r.times.held, None);
        if !clashes.is_empty() {
            let alternatives = alternatives(&index, &holders, &r.times, None, fits);
            return Err(conflict(
                &r.resources,
                &r.operators,
                &clashes,
                &alternatives,
            ));
        }
        let id = Uuid::now_v7();
        let stamp = instant(now_ms);
        let mut booking = Booking {
            id: id.to_string(),
            kind: r.kind,
            state: BookingState::Booked,
            start: String::new(),
            end: String::new(),
            buffer_before_minutes: 0,
            buffer_after_minutes: 0,
            held_from: String::new(),
            held_to: String::new(),
            resources: r.resources.clone(),
            operators: r.operators.clone(),
            patient: r.patient,
            treatment: r.treatment,
            note: r.note,
            branch: r.branch,
            process: None,
            version: 1,
            created_by: actor.to_owned(),
            created_at: stamp.clone(),
            updated_at: stamp,
        };
        booking.set_times(&r.times);
        let audit = Audit::new(actor, "booking.book", now_ms).row(self.db.dialect(), &booking.id);
        let written = crate::store::bookings::insert(
            &self.db, &booking, &holders, r.times, actor, now_ms, audit,
        )
        .await;
        match written {
            Ok(()) => {}
            Err(e) if is_overlap(&e) => {
                // Another node booked it first: the database knows what this index does not.
                return Err(conflict(&r.resources, &r.operators, &[], &[]));
            }
            Err(KernelError::Conflict { details, .. }) => {
                return Err(conflict_from_store(&r.resources, &r.operators, details));
            }
            Err(e) => return Err(e),
        }
        index.hold(id, &holders, r.times.held);
        Ok(booking)
    }

    /// Moves booking `id` to `times` (same holders), refused like a new booking when the
    /// new span is taken; `expected` guards against moving a booking changed since read.
    pub async fn reschedule(
        &self,
        id: Uuid,
        times: Times,
        expected: Option<i64>,
        actor: &str,
        now_ms: i64,
        fits: Fits<'_>,
    ) -> Result<Booking> {
        let mut index = self.index.lock().await;
        let mut booking = self.active(id, expected).await?;
        let holders = holders_of(&booking.resources, &booking.operators);
        let clashes = index.clashes(&holders, times.held, Some(id));
        if !clashes.is_empty() {
            let alternatives = alternatives(&index, &holders, &times, Some(id), fits);
            return Err(conflict(
                &booking.resources,
                &booking.operators,
                &clashes,
                &alternatives,
            ));
        }
        let before = booking.held();
        let from = (booking.start.clone(), booking.end.clone());
        booking.set_times(&times);
        booking.version += 1;
        booking.updated_at = instant(now_ms);
        let detail = serde_json::json!({"from": {"start": from.0, "end": from.1}, "to": {"start": booking.start, "end": booking.end}});
        let change = Change {
            action: "rescheduled",
            actor,
            now_ms,
            detail,
            audit: Audit::new(actor, "booking.reschedule", now_ms)
                .row(self.db.dialect(), &booking.id),
        };
        let written =
            crate::store::bookings::update(&self.db, &booking, Some((&holders, times)), change)
                .await;
        match written {
            Ok(()) => {}
            Err(e) if is_overlap(&e) => {
                return Err(conflict(&booking.resources, &booking.operators, &[], &[]));
            }
            Err(KernelError::Conflict { details, .. }) => {
                return Err(conflict_from_store(
                    &booking.resources,
                    &booking.operators,
                    details,
                ));
            }
            Err(e) => return Err(e),
        }
        if let Some(span) = before {
            index.release(id, &holders, span);
        }
        index.hold(id, &holders, times.held);
        Ok(booking)
    }

    /// Ends booking `id` as `state` (cancelled, no-show): it holds nothing from now on.
    pub async fn end(
        &self,
        id: Uuid,
        state: BookingState,
        reason: Option<String>,
        expected: Option<i64>,
        actor: &str,
        now_ms: i64,
    ) -> Result<Booking> {
        let mut index = self.index.lock().await;
        let mut booking = self.active(id, expected).await?;
        let holders = holders_of(&booking.resources, &booking.operators);
        let before = booking.held();
        booking.state = state;
        booking.version += 1;
        booking.updated_at = instant(now_ms);
        let detail = serde_json::json!({"reason": reason});
        let audited = match state {
            BookingState::NoShow => "booking.no_show",
            _ => "booking.cancel",
        };
        let change = Change {
            action: state.as_str(),
            actor,
            now_ms,
            detail,
            audit: Audit::new(actor, audited, now_ms).row(self.db.dialect(), &booking.id),
        };
        crate::store::bookings::update(&self.db, &booking, None, change).await?;
        if let Some(span) = before {
            index.release(id, &holders, span);
        }
        Ok(booking)
    }

    async fn active(&self, id: Uuid, expected: Option<i64>) -> Result<Booking> {
        let booking = self.get(id).await?;
        if let Some(sent) = expected
            && sent != booking.version
        {
            return Err(KernelError::VersionConflict {
                current: booking.version,
                sent,
            });
        }
        if booking.state != BookingState::Booked {
            return Err(KernelError::Conflict {
                code: ErrorCode::BookingNotActive,
                message: format!(
                    "booking {id} is {}: only a booked one can change",
                    booking.state.as_str()
                ),
                details: Vec::new(),
            });
        }
        Ok(booking)
    }

    /// Records that booking `id` started visit process `pid` (under the index's lock, so
    /// no move or cancel of it runs in between).
    pub async fn link(&self, id: Uuid, pid: u64, actor: &str, now_ms: i64) -> Result<Booking> {
        let _index = self.index.lock().await;
        let mut booking = self.get(id).await?;
        booking.process = Some(pid);
        crate::store::bookings::link_process(&self.db, &booking, actor, now_ms).await?;
        Ok(booking)
    }

    /// Booking `id` (404 when there is none).
    pub async fn get(&self, id: Uuid) -> Result<Booking> {
        crate::store::bookings::get(&self.db, id)
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("booking {id}")))
    }

    /// What happened to booking `id`, in order.
    pub async fn history(&self, id: Uuid) -> Result<Vec<serde_json::Value>> {
        crate::store::bookings::history(&self.db, id).await
    }

    /// The bookings matching `query`, by start.
    pub async fn list(
        &self,
        query: &crate::store::bookings::BookingQuery,
    ) -> Result<(Vec<Booking>, Option<String>)> {
        crate::store::bookings::list(&self.db, query).await
    }

    /// The slots `want` asks for over `groups`, searched in the index as it is now.
    pub async fn slots(
        &self,
        groups: &[Vec<slots::Member>],
        want: &slots::Want,
    ) -> Vec<slots::Slot> {
        let index = self.index.lock().await;
        slots::search(&index, groups, want)
    }

    /// A copy of the index as it is now: planning and capacity read it without holding up
    /// decisions while they work.
    pub async fn snapshot(&self) -> Index {
        self.index.lock().await.clone()
    }

    /// How many holds the index has (the bench and the tests look).
    pub async fn holds_in_memory(&self) -> usize {
        self.index.lock().await.len()
    }
}

/// A conflict the store's own check found (SQLite, another writer first): the same 409.
fn conflict_from_store(
    resources: &[String],
    operators: &[String],
    details: Vec<Issue>,
) -> KernelError {
    let mut e = conflict(resources, operators, &[], &[]);
    if let KernelError::Conflict { details: d, .. } = &mut e {
        *d = details;
    }
    e
}

/// Up to [`ALTERNATIVES`] free starts for `times`' length on `holders`, from its start on.
fn alternatives(
    index: &Index,
    holders: &[String],
    times: &Times,
    except: Option<Uuid>,
    fits: Fits<'_>,
) -> Vec<i64> {
    let lead = times.served.from - times.held.from;
    let len = times.held.len();
    let until = times.held.from + ALTERNATIVES_WITHIN_MS;
    let mut out = Vec::new();
    let mut from = times.held.from;
    while out.len() < ALTERNATIVES {
        let Some(held_from) = index.next_free(holders, from, len, until, except, |span| {
            fits(holders, span)
        }) else {
            break;
        };
        out.push(held_from + lead);
        // The next one at least a quarter of an hour later.
        from = held_from + 15 * 60_000;
    }
    out
}
