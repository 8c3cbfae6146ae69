//! The `waitlist` table (issue 14 §3): who wants a treatment within a window, and where
//! each entry is (waiting, offered a freed slot, booked, withdrawn). `app::waitlist`
//! decides; this module stores and reads.

use super::{Select, StoredRow};
use crate::db::Db;
use crate::error::Result;
use crate::sql::Sql;

const ENTRY: &[&str] = &[
    "id",
    "patient",
    "treatment",
    "practitioner",
    "from_ms",
    "to_ms",
    "state",
    "offer",
    "booking_id",
    "created_by",
    "created_ms",
    "updated_ms",
];

/// One entry as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its id.
    pub id: String,
    /// Who.
    pub patient: String,
    /// Which treatment.
    pub treatment: String,
    /// The practitioner preferred.
    pub practitioner: Option<String>,
    /// The window's start, ms.
    pub from_ms: i64,
    /// Its end, ms.
    pub to_ms: i64,
    /// `waiting`, `offered`, `booked` or `withdrawn`.
    pub state: String,
    /// The booking body offered.
    pub offer: Option<serde_json::Value>,
    /// The booking made from the offer.
    pub booking: Option<String>,
    /// Who put the patient on the list.
    pub created_by: String,
    /// When.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

fn entry_of(r: &StoredRow) -> Result<Stored> {
    Ok(Stored {
        id: r.text("id")?,
        patient: r.text("patient")?,
        treatment: r.text("treatment")?,
        practitioner: r.opt_text("practitioner")?,
        from_ms: r.int("from_ms")?,
        to_ms: r.int("to_ms")?,
        state: r.text("state")?,
        offer: r.opt_json("offer")?,
        booking: r.opt_text("booking_id")?,
        created_by: r.text("created_by")?,
        created_ms: r.int("created_ms")?,
        updated_ms: r.int("updated_ms")?,
    })
}

/// The INSERT of a waiting entry.
pub fn insert_sql(db: &Db, e: &Stored) -> Sql {
    let mut sql = Sql::new(db.dialect());
    sql.push("INSERT INTO waitlist (id, patient, treatment, practitioner, from_ms, to_ms, state, offer, booking_id, created_by, created_ms, updated_ms) VALUES (")
        .text(&e.id)
        .push(", ")
        .text(&e.patient)
        .push(", ")
        .text(&e.treatment)
        .push(", ")
        .opt_text(e.practitioner.as_deref())
        .push(", ")
        .int(e.from_ms)
        .push(", ")
        .int(e.to_ms)
        .push(", 'waiting', NULL, NULL, ")
        .text(&e.created_by)
        .push(", ")
        .int(e.created_ms)
        .push(", ")
        .int(e.updated_ms)
        .push(")");
    sql
}

/// Entry `id`, if it exists.
pub async fn get(db: &Db, id: &str) -> Result<Option<Stored>> {
    let mut select = Select::from(db.dialect(), "waitlist", ENTRY).keyed("id");
    select.sql().push(" WHERE id = ").text(id);
    select
        .fetch_one(db)
        .await?
        .as_ref()
        .map(entry_of)
        .transpose()
}

/// Entries in `state` (or all), oldest first, after the id `after`, at most `limit`.
pub async fn list(
    db: &Db,
    state: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Stored>> {
    let mut select = Select::from(db.dialect(), "waitlist", ENTRY).keyed("id");
    select.sql().push(" WHERE 1 = 1");
    if let Some(s) = state {
        select.sql().push(" AND state = ").text(s);
    }
    if let Some(a) = after {
        select.sql().push(" AND id > ").text(a);
    }
    select
        .sql()
        .push(" ORDER BY id LIMIT ")
        .push(&limit.to_string());
    select.fetch(db).await?.iter().map(entry_of).collect()
}

/// The waiting entries whose window overlaps `[from_ms, to_ms)`, first come first.
pub async fn waiting_over(db: &Db, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<Stored>> {
    let mut select = Select::from(db.dialect(), "waitlist", ENTRY).keyed("id");
    select
        .sql()
        .push(" WHERE state = 'waiting' AND from_ms < ")
        .int(to_ms)
        .push(" AND to_ms > ")
        .int(from_ms)
        .push(" ORDER BY created_ms, id LIMIT ")
        .push(&limit.to_string());
    select.fetch(db).await?.iter().map(entry_of).collect()
}

/// The UPDATE moving entry `id` from `was` to `state`, with its offer and booking.
pub fn move_sql(
    db: &Db,
    id: &str,
    was: &[&str],
    state: &str,
    offer: Option<&serde_json::Value>,
    booking: Option<&str>,
    now_ms: i64,
) -> Sql {
    let mut sql = Sql::new(db.dialect());
    sql.push("UPDATE waitlist SET state = ")
        .text(state)
        .push(", offer = ");
    match offer {
        Some(o) => sql.json(o),
        None => sql.push("NULL"),
    };
    sql.push(", booking_id = ")
        .opt_text(booking)
        .push(", updated_ms = ")
        .int(now_ms)
        .push(" WHERE id = ")
        .text(id)
        .push(" AND state IN (");
    for (i, w) in was.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.text(*w);
    }
    sql.push(")");
    sql
}
