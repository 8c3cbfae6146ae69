//! The `bookings`, `booking_holds` and `booking_history` tables. Every write is one
//! transaction that checks, before it holds anything, that no other hold of the same
//! holder overlaps (on SQLite that check is the guard, writers being serial; on
//! PostgreSQL the exclusion constraint `booking_holds_never_overlap` is, and the check
//! only names the booking in the way). This module only stores and reads; `bookings`
//! decides.

use erpos_design::{FieldType, Issue};
use uuid::Uuid;

use super::Select;
use crate::db::{Db, Tx};
use crate::error::{ErrorCode, KernelError, Result};
use crate::sql::Sql;
use erpos_design::booking::{Booking, BookingState, Span, Times};

/// What `GET /bookings` asks for.
#[derive(Debug, Clone, Default)]
pub struct BookingQuery {
    /// Only bookings holding this holder (`resource:{id}` / `operator:{id}`).
    pub holder: Option<String>,
    /// Only bookings whose held span ends after this.
    pub from_ms: Option<i64>,
    /// Only bookings whose held span starts before this.
    pub to_ms: Option<i64>,
    /// Only bookings in this state.
    pub state: Option<BookingState>,
    /// Only bookings of these branches (and, when `shared`, those of none).
    pub branches: Option<Branches>,
    /// At most this many.
    pub limit: usize,
    /// Only those after this (start, id), in that order: the cursor of the page before.
    pub after: Option<(i64, String)>,
}

/// The branches a list is limited to: a `?branch=` asked for, or what a branch's staff see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branches {
    /// The branches.
    pub names: Vec<String>,
    /// Also the bookings of no branch (holding only what serves every branch).
    pub shared: bool,
}

impl Branches {
    /// Appends ` AND (…)` keeping the rows of a table's `branch` column that these
    /// branches see.
    pub fn filter(&self, sql: &mut Sql) {
        sql.push(" AND (");
        if self.shared {
            sql.push("branch IS NULL OR ");
        }
        sql.push("branch IN (");
        for (i, b) in self.names.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.text(b);
        }
        if self.names.is_empty() {
            sql.push("NULL");
        }
        sql.push("))");
    }
}

fn id_param(tx_or_db: erpos_design::Dialect) -> Option<&'static str> {
    tx_or_db.param_cast(FieldType::Reference)
}

/// Every hold of every active booking: (booking, holder, held span).
pub async fn holds(db: &Db) -> Result<Vec<(Uuid, String, Span)>> {
    let select = Select::from(
        db.dialect(),
        "booking_holds",
        &["booking_id", "holder", "held_from_ms", "held_to_ms"],
    );
    let mut out = Vec::new();
    for row in select.fetch(db).await? {
        let id = row.parsed("booking_id", "a booking id", |t| Uuid::parse_str(t).ok())?;
        out.push((
            id,
            row.text("holder")?,
            Span {
                from: row.int("held_from_ms")?,
                to: row.int("held_to_ms")?,
            },
        ));
    }
    Ok(out)
}

/// Refuses (409 `booking_conflict`) holds of `holders` over `span` that another booking
/// than `except` has, naming them.
async fn check_free(tx: &mut Tx, holders: &[String], span: Span, except: Uuid) -> Result<()> {
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push("SELECT CAST(booking_id AS TEXT), holder, CAST(held_from_ms AS TEXT), CAST(held_to_ms AS TEXT) FROM booking_holds WHERE holder IN (");
    for (i, h) in holders.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.text(h);
    }
    sql.push(") AND held_from_ms < ")
        .int(span.to)
        .push(" AND held_to_ms > ")
        .int(span.from)
        .push(" AND booking_id <> ")
        .param(Some(except.to_string()), id_param(d));
    let rows = tx.fetch(sql).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let details = rows
        .iter()
        .map(|r| {
            let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            Issue::new(
                format!("/holders/{}", text(1)),
                format!(
                    "held by booking {} ({} to {} ms)",
                    text(0),
                    text(2),
                    text(3)
                ),
            )
        })
        .collect();
    Err(KernelError::Conflict {
        code: ErrorCode::BookingConflict,
        message: "the slot is taken".into(),
        details,
    })
}

async fn insert_holds(tx: &mut Tx, id: Uuid, holders: &[String], span: Span) -> Result<()> {
    let d = tx.dialect();
    for holder in holders {
        let mut sql = tx.sql();
        sql.push(
            "INSERT INTO booking_holds (booking_id, holder, held_from_ms, held_to_ms) VALUES (",
        )
        .param(Some(id.to_string()), id_param(d))
        .push(", ")
        .text(holder)
        .push(", ")
        .int(span.from)
        .push(", ")
        .int(span.to)
        .push(")");
        tx.execute(sql).await?;
    }
    Ok(())
}

fn definition(booking: &Booking) -> Result<serde_json::Value> {
    serde_json::to_value(booking).map_err(|e| KernelError::Corrupt(e.to_string()))
}

async fn history_row(
    tx: &mut Tx,
    id: Uuid,
    seq: i64,
    action: &str,
    actor: &str,
    now_ms: i64,
    detail: &serde_json::Value,
) -> Result<()> {
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push(
        "INSERT INTO booking_history (booking_id, seq, action, actor, at_ms, detail) VALUES (",
    )
    .param(Some(id.to_string()), id_param(d))
    .push(", ")
    .int(seq)
    .push(", ")
    .text(action)
    .push(", ")
    .text(actor)
    .push(", ")
    .int(now_ms)
    .push(", ")
    .json(detail)
    .push(")");
    tx.execute(sql).await?;
    Ok(())
}

/// Stores a new booking, its holds and its first history entry (and `audit`, its audit
/// row), in one transaction that first checks the holds are free.
pub async fn insert(
    db: &Db,
    booking: &Booking,
    holders: &[String],
    times: Times,
    actor: &str,
    now_ms: i64,
    audit: Sql,
) -> Result<()> {
    let id = Uuid::parse_str(&booking.id).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut tx = db.begin().await?;
    check_free(&mut tx, holders, times.held, id).await?;
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push("INSERT INTO bookings (id, state, start_ms, end_ms, held_from_ms, held_to_ms, version, definition, updated_ms, branch) VALUES (")
        .param(Some(booking.id.clone()), id_param(d))
        .push(", ")
        .text(booking.state.as_str())
        .push(", ")
        .int(times.served.from)
        .push(", ")
        .int(times.served.to)
        .push(", ")
        .int(times.held.from)
        .push(", ")
        .int(times.held.to)
        .push(", ")
        .int(booking.version)
        .push(", ")
        .json(&definition(booking)?)
        .push(", ")
        .int(now_ms)
        .push(", ")
        .param(booking.branch.clone(), None)
        .push(")");
    tx.execute(sql).await?;
    insert_holds(&mut tx, id, holders, times.held).await?;
    let detail = serde_json::json!({"start": booking.start, "end": booking.end});
    history_row(&mut tx, id, 1, "booked", actor, now_ms, &detail).await?;
    tx.execute(audit).await?;
    tx.commit().await
}

/// What a change of a booking records: its history entry and its audit row.
pub struct Change<'a> {
    /// `rescheduled`, `cancelled`, `no_show`.
    pub action: &'a str,
    /// Who.
    pub actor: &'a str,
    /// When.
    pub now_ms: i64,
    /// What changed.
    pub detail: serde_json::Value,
    /// The audit row.
    pub audit: Sql,
}

/// Stores a change of `booking` (already at its new version): with `holds`, the holds
/// move to the new span (checked free); without, they are released (cancelled, no-show).
/// Refused with 409 `version_conflict` when the stored version is not the one before.
pub async fn update(
    db: &Db,
    booking: &Booking,
    holds: Option<(&[String], Times)>,
    change: Change<'_>,
) -> Result<()> {
    let Change {
        action,
        actor,
        now_ms,
        detail,
        audit,
    } = change;
    let id = Uuid::parse_str(&booking.id).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut tx = db.begin().await?;
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push("DELETE FROM booking_holds WHERE booking_id = ")
        .param(Some(booking.id.clone()), id_param(d));
    tx.execute(sql).await?;
    let mut sql = tx.sql();
    sql.push("UPDATE bookings SET state = ")
        .text(booking.state.as_str())
        .push(", version = ")
        .int(booking.version)
        .push(", definition = ")
        .json(&definition(booking)?)
        .push(", updated_ms = ")
        .int(now_ms);
    if let Some((holders, times)) = holds {
        check_free(&mut tx, holders, times.held, id).await?;
        insert_holds(&mut tx, id, holders, times.held).await?;
        sql.push(", start_ms = ")
            .int(times.served.from)
            .push(", end_ms = ")
            .int(times.served.to)
            .push(", held_from_ms = ")
            .int(times.held.from)
            .push(", held_to_ms = ")
            .int(times.held.to);
    }
    sql.push(" WHERE id = ")
        .param(Some(booking.id.clone()), id_param(d))
        .push(" AND version = ")
        .int(booking.version - 1)
        .push(" RETURNING CAST(version AS TEXT)");
    let changed = tx.fetch(sql).await?;
    if changed.is_empty() {
        return Err(KernelError::VersionConflict {
            current: booking.version,
            sent: booking.version - 1,
        });
    }
    let seq = next_seq(&mut tx, id).await?;
    history_row(&mut tx, id, seq, action, actor, now_ms, &detail).await?;
    tx.execute(audit).await?;
    tx.commit().await
}

/// The number of the next history entry of booking `id`.
async fn next_seq(tx: &mut Tx, id: Uuid) -> Result<i64> {
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push(
        "SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS TEXT) FROM booking_history WHERE booking_id = ",
    )
    .param(Some(id.to_string()), id_param(d));
    Ok(super::scalar_in(tx, "booking_history", &["seq"], sql)
        .await?
        .unwrap_or(1))
}

/// Records the visit process a booking started (`booking.process` is set): its stored
/// copy and a history entry, without moving its version — a client that booked it holds
/// version 1 and may move it with that.
pub async fn link_process(db: &Db, booking: &Booking, actor: &str, now_ms: i64) -> Result<()> {
    let id = Uuid::parse_str(&booking.id).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut tx = db.begin().await?;
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push("UPDATE bookings SET definition = ")
        .json(&definition(booking)?)
        .push(" WHERE id = ")
        .param(Some(booking.id.clone()), id_param(d));
    tx.execute(sql).await?;
    let seq = next_seq(&mut tx, id).await?;
    let detail = serde_json::json!({"process": booking.process});
    history_row(&mut tx, id, seq, "process_started", actor, now_ms, &detail).await?;
    tx.commit().await
}

/// Booking `id`, if it exists.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<Booking>> {
    let mut select = Select::from(db.dialect(), "bookings", &["id", "definition"]).keyed("id");
    select
        .sql()
        .push(" WHERE id = ")
        .param(Some(id.to_string()), id_param(db.dialect()));
    match select.fetch_one(db).await? {
        Some(row) => Ok(Some(row.json("definition")?)),
        None => Ok(None),
    }
}

/// What happened to booking `id`, in order.
pub async fn history(db: &Db, id: Uuid) -> Result<Vec<serde_json::Value>> {
    let mut select = Select::from(
        db.dialect(),
        "booking_history",
        &["seq", "action", "actor", "at_ms", "detail"],
    )
    .keyed("seq");
    select
        .sql()
        .push(" WHERE booking_id = ")
        .param(Some(id.to_string()), id_param(db.dialect()))
        .push(" ORDER BY seq");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| {
            Ok(serde_json::json!({
                "seq": r.int("seq")?,
                "action": r.text("action")?,
                "actor": r.text("actor")?,
                "at": r.instant("at_ms")?,
                "detail": r.json::<serde_json::Value>("detail")?,
            }))
        })
        .collect()
}

/// The bookings `query` asks for, by start then id, and the cursor of the next page.
pub async fn list(db: &Db, query: &BookingQuery) -> Result<(Vec<Booking>, Option<String>)> {
    let d = db.dialect();
    let mut select = Select::from(d, "bookings", &["id", "start_ms", "definition"]).keyed("id");
    let sql = select.sql();
    sql.push(" WHERE 1 = 1");
    if let Some(holder) = &query.holder {
        sql.push(" AND id IN (SELECT booking_id FROM booking_holds WHERE holder = ")
            .text(holder)
            .push(")");
    }
    if let Some(from) = query.from_ms {
        sql.push(" AND held_to_ms > ").int(from);
    }
    if let Some(to) = query.to_ms {
        sql.push(" AND held_from_ms < ").int(to);
    }
    if let Some(state) = query.state {
        sql.push(" AND state = ").text(state.as_str());
    }
    if let Some(branches) = &query.branches {
        branches.filter(sql);
    }
    if let Some((start, id)) = &query.after {
        sql.push(" AND (start_ms > ")
            .int(*start)
            .push(" OR (start_ms = ")
            .int(*start)
            .push(" AND id > ")
            .param(Some(id.clone()), id_param(d))
            .push("))");
    }
    sql.push(" ORDER BY start_ms, id LIMIT ")
        .push(&(query.limit + 1).to_string());
    let rows = select.fetch(db).await?;
    let mut out = Vec::new();
    let mut next = None;
    for (i, row) in rows.iter().enumerate() {
        if i == query.limit {
            if let Some(last) = out.last() {
                let last: &Booking = last;
                let start = rows[i - 1].int("start_ms")?;
                next = Some(format!("{start}_{}", last.id));
            }
            break;
        }
        out.push(row.json("definition")?);
    }
    Ok((out, next))
}
