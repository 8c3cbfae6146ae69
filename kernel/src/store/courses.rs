//! The `courses` and `course_uses` tables (issue 14 §7). A deduction runs in one
//! transaction that finds a use already made under its reference (a retry answers it),
//! locks the course (FOR UPDATE on PostgreSQL; SQLite's write transaction is exclusive),
//! refuses an expired or used-up course, and writes the use with the count after it; a
//! restoration undoes the use its reference made, once. `app::courses` validates; this
//! module stores.

use erpos_design::Dialect;
use erpos_design::course::{ChargeType, Course, SessionUse};

use super::{Select, StoredRow};
use crate::db::{Db, Tx};
use crate::error::{ErrorCode, KernelError, Result};
use crate::sql::Sql;

const COURSE: &[&str] = &[
    "id",
    "holder",
    "treatment",
    "charge_type",
    "sessions",
    "used",
    "uses",
    "expires_on",
    "expires_ms",
    "created_ms",
];
const USE: &[&str] = &["seq", "reference", "kind", "used", "actor", "at_ms"];

fn course_of(r: &StoredRow) -> Result<Course> {
    let sessions = r.int("sessions")?;
    let used = r.int("used")?;
    Ok(Course {
        id: r.text("id")?,
        holder: r.text("holder")?,
        treatment: r.text("treatment")?,
        charge_type: r.parsed("charge_type", "a charge type", ChargeType::parse)?,
        sessions,
        used,
        left: sessions - used,
        expires_on: r.text("expires_on")?,
        created_at: r.instant("created_ms")?,
    })
}

fn use_of(r: &StoredRow) -> Result<SessionUse> {
    Ok(SessionUse {
        seq: r.int("seq")?,
        reference: r.text("reference")?,
        kind: r.text("kind")?,
        used: r.int("used")?,
        actor: r.text("actor")?,
        at: r.instant("at_ms")?,
    })
}

/// What a new course is.
pub struct NewCourse<'a> {
    /// Its id.
    pub id: &'a str,
    /// Whose.
    pub holder: &'a str,
    /// Of which treatment.
    pub treatment: &'a str,
    /// Course or yearly package.
    pub charge_type: ChargeType,
    /// Sessions bought.
    pub sessions: i64,
    /// Its last day.
    pub expires_on: &'a str,
    /// The end of that day.
    pub expires_ms: i64,
    /// When.
    pub now_ms: i64,
}

/// The INSERT of a new course with no session used.
pub fn open_sql(db: &Db, c: &NewCourse<'_>) -> Sql {
    let mut sql = Sql::new(db.dialect());
    sql.push("INSERT INTO courses (id, holder, treatment, charge_type, sessions, used, uses, expires_on, expires_ms, created_ms) VALUES (")
        .text(c.id)
        .push(", ")
        .text(c.holder)
        .push(", ")
        .text(c.treatment)
        .push(", ")
        .text(c.charge_type.as_str())
        .push(", ")
        .int(c.sessions)
        .push(", 0, 0, ")
        .text(c.expires_on)
        .push(", ")
        .int(c.expires_ms)
        .push(", ")
        .int(c.now_ms)
        .push(")");
    sql
}

/// Course `id`, if it exists.
pub async fn course(db: &Db, id: &str) -> Result<Option<Course>> {
    let mut select = Select::from(db.dialect(), "courses", COURSE).keyed("id");
    select.sql().push(" WHERE id = ").text(id);
    select
        .fetch_one(db)
        .await?
        .as_ref()
        .map(course_of)
        .transpose()
}

/// The courses of `holder` (or all) after the id `after`, oldest first, at most `limit`.
pub async fn courses(
    db: &Db,
    holder: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Course>> {
    Select::from(db.dialect(), "courses", COURSE)
        .keyed("id")
        .holder_page(holder, after, limit)
        .fetch(db)
        .await?
        .iter()
        .map(course_of)
        .collect()
}

/// The history of course `id`, in order.
pub async fn uses(db: &Db, id: &str) -> Result<Vec<SessionUse>> {
    let mut select = Select::from(db.dialect(), "course_uses", USE).keyed("seq");
    select
        .sql()
        .push(" WHERE course_id = ")
        .text(id)
        .push(" ORDER BY seq");
    select.fetch(db).await?.iter().map(use_of).collect()
}

async fn use_by(tx: &mut Tx, id: &str, reference: &str, kind: &str) -> Result<Option<SessionUse>> {
    let mut select = Select::from(tx.dialect(), "course_uses", USE).keyed("seq");
    select
        .sql()
        .push(" WHERE course_id = ")
        .text(id)
        .push(" AND reference = ")
        .text(reference)
        .push(" AND kind = ")
        .text(kind);
    select.fetch_in(tx).await?.first().map(use_of).transpose()
}

/// The course, locked, and how many uses it has had.
async fn locked_course(tx: &mut Tx, id: &str) -> Result<(Course, i64)> {
    let d = tx.dialect();
    let mut select = Select::from(d, "courses", COURSE).keyed("id");
    select.sql().push(" WHERE id = ").text(id);
    if d == Dialect::Postgres {
        select.sql().push(" FOR UPDATE");
    }
    match select.fetch_in(tx).await?.first() {
        Some(row) => Ok((course_of(row)?, row.int("uses")?)),
        None => Err(KernelError::NotFound(format!("course {id}"))),
    }
}

/// How many sessions of course `id` paid visits await (their charges' sessions are
/// `pending`: the treatment deducts them): no other use may take them.
async fn pending_in(tx: &mut Tx, id: &str) -> Result<i64> {
    let mut sql = tx.sql();
    sql.push("SELECT CAST(COUNT(*) AS TEXT) FROM charges WHERE session = 'pending' AND status = 'paid' AND course_id = ")
        .text(id);
    Ok(super::scalar_in(tx, "charges", &["pending"], sql)
        .await?
        .unwrap_or(0))
}

/// 409 `course_expired` when `course` is past its last day at `now_ms`, 409
/// `course_used_up` when its sessions left are all used or awaited by `pending` visits.
fn refuse_unusable(course: &Course, pending: i64, now_ms: i64) -> Result<()> {
    let expires_ms = erpos_design::stock::end_of_day_ms(&course.expires_on).unwrap_or(0);
    if now_ms >= expires_ms {
        return Err(KernelError::Conflict {
            code: ErrorCode::CourseExpired,
            message: format!(
                "the course of {} expired on {}: no session can be used; nothing was deducted",
                course.treatment, course.expires_on
            ),
            details: vec![erpos_design::Issue::new("/course", "expired")],
        });
    }
    if course.used + pending >= course.sessions {
        let awaited = if pending > 0 {
            format!(" or awaited by {pending} paid visit(s)")
        } else {
            String::new()
        };
        return Err(KernelError::Conflict {
            code: ErrorCode::CourseUsedUp,
            message: format!(
                "all {} sessions of the course of {} are used{awaited}; nothing was deducted",
                course.sessions, course.treatment
            ),
            details: vec![erpos_design::Issue::new("/course", "no session left")],
        });
    }
    Ok(())
}

/// Refuses (409, as a deduction would) a session of course `id` that a visit's payment
/// step leaves for the treatment: the course is locked until `tx` commits, so two visits
/// cannot both count on its last session.
pub async fn usable_in(tx: &mut Tx, id: &str, now_ms: i64) -> Result<()> {
    let (course, _) = locked_course(tx, id).await?;
    refuse_unusable(&course, pending_in(tx, id).await?, now_ms)
}

/// A session deducted: the course after it and the use.
#[derive(Debug, Clone)]
pub struct Deducted {
    /// The course after the deduction.
    pub course: Course,
    /// The deduction.
    pub session: SessionUse,
}

/// The deduction made under `reference` on course `id`, with the course now, if any.
pub async fn use_of_reference(tx: &mut Tx, id: &str, reference: &str) -> Result<Option<Deducted>> {
    let (course, _) = locked_course(tx, id).await?;
    Ok(use_by(tx, id, reference, "use")
        .await?
        .map(|session| Deducted { course, session }))
}

/// A deduction (`restore: false`) or a restoration of one session.
pub struct Change<'a> {
    /// The course.
    pub course: &'a str,
    /// The treatment's reference.
    pub reference: &'a str,
    /// Restore the session this reference used.
    pub restore: bool,
    /// Who.
    pub actor: &'a str,
    /// When.
    pub now_ms: i64,
    /// The audit row.
    pub audit: Sql,
}

/// Deducts or restores a session; answers the course after it, the use, and whether it
/// is new (a retry answers the first). An expired course is 409 `course_expired`, a used-up
/// one 409 `course_used_up`, a restoration of a reference that used nothing 404; nothing
/// changes then.
pub async fn change(db: &Db, c: Change<'_>) -> Result<(Course, SessionUse, bool)> {
    let mut tx = db.begin().await?;
    let changed = change_in(&mut tx, c).await?;
    tx.commit().await?;
    Ok(changed)
}

/// [`change`] inside `tx` (a charge's, which commits the session's use with the charge):
/// the caller commits; an error leaves `tx` to be dropped.
pub async fn change_in(tx: &mut Tx, c: Change<'_>) -> Result<(Course, SessionUse, bool)> {
    let kind = if c.restore { "restore" } else { "use" };
    let (mut course, uses) = locked_course(tx, c.course).await?;
    if let Some(first) = use_by(tx, c.course, c.reference, kind).await? {
        return Ok((course, first, false));
    }
    let used = if c.restore {
        if use_by(tx, c.course, c.reference, "use").await?.is_none() {
            return Err(KernelError::NotFound(format!(
                "a session used under reference '{}' on course {}",
                c.reference, c.course
            )));
        }
        course.used - 1
    } else {
        refuse_unusable(&course, pending_in(tx, c.course).await?, c.now_ms)?;
        course.used + 1
    };
    let seq = uses + 1;
    let mut sql = tx.sql();
    sql.push(
        "INSERT INTO course_uses (course_id, seq, reference, kind, used, actor, at_ms) VALUES (",
    )
    .text(c.course)
    .push(", ")
    .int(seq)
    .push(", ")
    .text(c.reference)
    .push(", ")
    .text(kind)
    .push(", ")
    .int(used)
    .push(", ")
    .text(c.actor)
    .push(", ")
    .int(c.now_ms)
    .push(")");
    tx.execute(sql).await?;
    let mut sql = tx.sql();
    sql.push("UPDATE courses SET used = ")
        .int(used)
        .push(", uses = ")
        .int(seq)
        .push(" WHERE id = ")
        .text(c.course);
    tx.execute(sql).await?;
    tx.execute(c.audit).await?;
    course.used = used;
    course.left = course.sessions - used;
    let at = chrono::DateTime::from_timestamp_millis(c.now_ms)
        .map(|t| erpos_design::value::format_datetime(&t))
        .unwrap_or_default();
    Ok((
        course,
        SessionUse {
            seq,
            reference: c.reference.to_owned(),
            kind: kind.to_owned(),
            used,
            actor: c.actor.to_owned(),
            at,
        },
        true,
    ))
}
