//! The `charges` table (issue 14 §7). A charge is written in one transaction with what
//! pays it — the ledger entry that takes it from a prepaid account, or the course session
//! it uses — so a charge never stands without its payment nor a payment without its charge;
//! its reference is unique, so a retry (a timeout, a crash between the request and the
//! answer, a second click) finds the first charge instead of charging twice. Voiding gives
//! the money back to the account (an adjustment) or the session back to the course, once.
//! `app::charges` validates and resolves; this module stores.

use erpos_design::Dialect;
use erpos_design::charge::{
    Charge, ChargeStatus, PayMethod, Purpose, SessionAt, SessionState, Split, Voided,
};
use erpos_design::course::ChargeType;
use erpos_design::ledger::{EntryKind, format_cents};

use super::{Select, StoredRow};
use crate::db::{Db, Tx};
use crate::error::{ErrorCode, KernelError, Result};

const CHARGE: &[&str] = &[
    "id",
    "reference",
    "holder",
    "purpose",
    "charge_type",
    "treatment",
    "booking",
    "process",
    "receivable_cents",
    "discount_cents",
    "deposit_cents",
    "received_cents",
    "covered_cents",
    "account_id",
    "course_id",
    "method",
    "status",
    "note",
    "actor",
    "at_ms",
    "voided_by",
    "voided_ms",
    "void_reason",
    "session",
    "branch",
];

fn charge_of(r: &StoredRow) -> Result<Charge> {
    let voided = match (r.opt_text("voided_by")?, r.opt_instant("voided_ms")?) {
        (Some(by), Some(at)) => Some(Voided {
            by,
            at,
            reason: r.opt_text("void_reason")?.unwrap_or_default(),
        }),
        _ => None,
    };
    let method = match r.opt_text("method")? {
        Some(m) => {
            Some(PayMethod::parse(&m).ok_or_else(|| r.undecodable("method", "not a pay method"))?)
        }
        None => None,
    };
    Ok(Charge {
        id: r.text("id")?,
        reference: r.text("reference")?,
        holder: r.text("holder")?,
        purpose: r.parsed("purpose", "a charge purpose", Purpose::parse)?,
        charge_type: r.parsed("charge_type", "a charge type", ChargeType::parse)?,
        treatment: r.opt_text("treatment")?,
        booking: r.opt_text("booking")?,
        process: r.opt_int("process")?.map(|p| p as u64),
        receivable: format_cents(r.int("receivable_cents")?),
        discount: format_cents(r.int("discount_cents")?),
        deposit: format_cents(r.int("deposit_cents")?),
        received: format_cents(r.int("received_cents")?),
        covered: format_cents(r.int("covered_cents")?),
        account: r.opt_text("account_id")?,
        course: r.opt_text("course_id")?,
        session: match r.opt_text("session")? {
            Some(t) => Some(
                SessionState::parse(&t)
                    .ok_or_else(|| r.undecodable("session", "not a session state"))?,
            ),
            None => None,
        },
        branch: r.opt_text("branch")?,
        method,
        status: r.parsed("status", "a charge status", ChargeStatus::parse)?,
        note: r.opt_text("note")?,
        actor: r.text("actor")?,
        at: r.instant("at_ms")?,
        voided,
    })
}

/// The audit row of an action on a subject (`"charge.create"`, the reference): the caller
/// knows who acts and when; a charge writes one for itself and one for what paid it.
pub type AuditRow<'a> = &'a (dyn Fn(&'static str, &str) -> crate::sql::Sql + Send + Sync);

/// A charge to make, resolved: the amounts in cents, the account or course that pays it.
#[derive(Debug, Clone)]
pub struct NewCharge {
    /// The caller's reference.
    pub reference: String,
    /// Whose.
    pub holder: String,
    /// Why.
    pub purpose: Purpose,
    /// How it is paid.
    pub charge_type: ChargeType,
    /// The treatment, if any.
    pub treatment: Option<String>,
    /// The booking, if any.
    pub booking: Option<String>,
    /// The visit's process, if any.
    pub process: Option<u64>,
    /// 应收, in cents.
    pub receivable_cents: i64,
    /// 优惠, in cents.
    pub discount_cents: i64,
    /// The prepaid account (预充值).
    pub account: Option<String>,
    /// The course whose session pays (项目疗程, 年度套餐); None: the holder's course of the
    /// treatment that expires first with a session left.
    pub course: Option<String>,
    /// When a course's session is deducted: with the charge, or at the treatment.
    pub session_at: SessionAt,
    /// The branch of the visit (its booking's, a walk-in's), if any.
    pub branch: Option<String>,
    /// How the desk was paid.
    pub method: Option<PayMethod>,
    /// A note.
    pub note: Option<String>,
    /// Who.
    pub actor: String,
    /// When.
    pub now_ms: i64,
}

async fn by_reference(tx: &mut Tx, reference: &str) -> Result<Option<Charge>> {
    let mut select = Select::from(tx.dialect(), "charges", CHARGE).keyed("id");
    select.sql().push(" WHERE reference = ").text(reference);
    select
        .fetch_in(tx)
        .await?
        .first()
        .map(charge_of)
        .transpose()
}

/// What the paid deposits of `booking` still hold: those received less those already
/// applied to its paid visit charges.
async fn deposits_left(tx: &mut Tx, booking: &str) -> Result<i64> {
    let mut sql = tx.sql();
    sql.push(
        "SELECT CAST(COALESCE(SUM(CASE WHEN purpose = 'deposit' THEN received_cents ELSE -deposit_cents END), 0) AS TEXT) \
         FROM charges WHERE status = 'paid' AND booking = ",
    )
    .text(booking);
    Ok(super::scalar_in(tx, "charges", &["left"], sql)
        .await?
        .unwrap_or(0))
}

/// The course that pays a session of `treatment` for `holder`: the one named, else the
/// holder's that expires first with a session left and not expired. None found: 409
/// `course_expired` when only expired ones have sessions left, else `course_used_up`.
async fn paying_course(tx: &mut Tx, c: &NewCharge, treatment: &str) -> Result<String> {
    if let Some(id) = &c.course {
        return Ok(id.clone());
    }
    let mut select = Select::from(tx.dialect(), "courses", &["id", "expires_ms"]).keyed("id");
    select
        .sql()
        .push(" WHERE holder = ")
        .text(&c.holder)
        .push(" AND treatment = ")
        .text(treatment)
        // Sessions awaited by paid visits are not left.
        .push(
            " AND used + (SELECT COUNT(*) FROM charges ch WHERE ch.course_id = courses.id \
             AND ch.session = 'pending' AND ch.status = 'paid') < sessions ORDER BY expires_ms, id",
        );
    let rows = select.fetch_in(tx).await?;
    let mut expired = false;
    for row in &rows {
        if row.int("expires_ms")? > c.now_ms {
            return Ok(row.text("id")?);
        }
        expired = true;
    }
    let (code, why) = if expired {
        (ErrorCode::CourseExpired, "has expired")
    } else {
        (ErrorCode::CourseUsedUp, "has no session left")
    };
    Err(KernelError::Conflict {
        code,
        message: format!(
            "every course of {treatment} that {} holds {why}: nothing was charged",
            c.holder
        ),
        details: vec![erpos_design::Issue::new("/course", why)],
    })
}

/// Makes charge `c` inside `tx` with what pays it, or answers the charge its reference
/// already made (`false`: not new; a reference reused for another holder or purpose is
/// 409 `reference_reused`). Insufficient balance, an expired or used-up course: 409, and
/// nothing is written (the caller drops `tx`). The caller commits.
pub async fn charge_in(tx: &mut Tx, c: &NewCharge, audit: AuditRow<'_>) -> Result<(Charge, bool)> {
    if let Some(first) = by_reference(tx, &c.reference).await? {
        if first.holder != c.holder || first.purpose != c.purpose {
            return Err(KernelError::Conflict {
                code: ErrorCode::ReferenceReused,
                message: format!(
                    "reference '{}' charged {} for a {} already: a retry must send the same request",
                    c.reference,
                    first.holder,
                    first.purpose.as_str()
                ),
                details: vec![erpos_design::Issue::new(
                    "/reference",
                    "used for another charge",
                )],
            });
        }
        return Ok((first, false));
    }
    let deposits = match (&c.booking, c.purpose) {
        (Some(b), Purpose::Visit) => deposits_left(tx, b).await?,
        _ => 0,
    };
    let split = Split::of(
        c.charge_type,
        c.receivable_cents,
        c.discount_cents,
        deposits,
    )
    .ok_or_else(|| {
        KernelError::Invalid(vec![erpos_design::Issue::new(
            "/discount",
            "from 0 to the receivable",
        )])
    })?;
    let id = uuid::Uuid::now_v7().to_string();
    let paid_by = format!("charge:{}", c.reference);
    let mut course = None;
    let mut session = None;
    match c.charge_type {
        ChargeType::Prepaid => {
            let account = c.account.as_deref().unwrap_or_default();
            if split.received > 0 {
                crate::store::ledger::post_in(
                    tx,
                    crate::store::ledger::Posting {
                        account,
                        kind: EntryKind::Consumption,
                        cents: -split.received,
                        reference: &paid_by,
                        note: c.note.as_deref().or(c.treatment.as_deref()),
                        actor: &c.actor,
                        now_ms: c.now_ms,
                        audit: audit("ledger.consumption", account),
                    },
                )
                .await?;
            }
        }
        ChargeType::Course | ChargeType::Yearly => {
            let treatment = c.treatment.as_deref().unwrap_or_default();
            let id = paying_course(tx, c, treatment).await?;
            session = Some(match c.session_at {
                SessionAt::Charge => {
                    crate::store::courses::change_in(
                        tx,
                        crate::store::courses::Change {
                            course: &id,
                            reference: &paid_by,
                            restore: false,
                            actor: &c.actor,
                            now_ms: c.now_ms,
                            audit: audit("course.use", &id),
                        },
                    )
                    .await?;
                    SessionState::Used
                }
                // The treatment deducts it; what a deduction would refuse is refused now.
                SessionAt::Treatment => {
                    crate::store::courses::usable_in(tx, &id, c.now_ms).await?;
                    SessionState::Pending
                }
            });
            course = Some(id);
        }
        ChargeType::Single => {}
    }
    let mut sql = tx.sql();
    sql.push("INSERT INTO charges (id, reference, holder, purpose, charge_type, treatment, booking, process, receivable_cents, discount_cents, deposit_cents, received_cents, covered_cents, account_id, course_id, session, branch, method, status, note, actor, at_ms) VALUES (")
        .text(&id)
        .push(", ")
        .text(&c.reference)
        .push(", ")
        .text(&c.holder)
        .push(", ")
        .text(c.purpose.as_str())
        .push(", ")
        .text(c.charge_type.as_str())
        .push(", ")
        .opt_text(c.treatment.as_deref())
        .push(", ")
        .opt_text(c.booking.as_deref())
        .push(", ")
        .opt_int(c.process.map(|p| p as i64))
        .push(", ")
        .int(split.receivable)
        .push(", ")
        .int(split.discount)
        .push(", ")
        .int(split.deposit)
        .push(", ")
        .int(split.received)
        .push(", ")
        .int(split.covered)
        .push(", ")
        .opt_text(c.account.as_deref().filter(|_| c.charge_type == ChargeType::Prepaid))
        .push(", ")
        .opt_text(course.as_deref())
        .push(", ")
        .opt_text(session.map(SessionState::as_str))
        .push(", ")
        .opt_text(c.branch.as_deref())
        .push(", ")
        .opt_text(c.method.map(PayMethod::as_str))
        .push(", 'paid', ")
        .opt_text(c.note.as_deref())
        .push(", ")
        .text(&c.actor)
        .push(", ")
        .int(c.now_ms)
        .push(")");
    tx.execute(sql).await?;
    tx.execute(audit("charge.create", &c.reference)).await?;
    let made = by_reference(tx, &c.reference)
        .await?
        .ok_or_else(|| KernelError::Corrupt(format!("charge {id} vanished")))?;
    Ok((made, true))
}

/// Deducts, inside `tx`, the session that the standing charge made under `reference` left
/// for the treatment (`pending`), and marks it used; answers the course after it and the
/// use, with whether it is new (a retry answers the first deduction). None when that
/// charge pays no pending session (money, a session already used, a voided charge) or
/// there is no such charge: the treatment owes no session. An expired or used-up course is
/// 409 and nothing changes (the caller drops `tx`).
pub async fn use_pending_session(
    tx: &mut Tx,
    reference: &str,
    actor: &str,
    now_ms: i64,
    audit: AuditRow<'_>,
) -> Result<Option<(crate::store::courses::Deducted, bool)>> {
    let Some(charge) = by_reference(tx, reference).await? else {
        return Ok(None);
    };
    let (Some(course), ChargeStatus::Paid) = (&charge.course, charge.status) else {
        return Ok(None);
    };
    let paid_by = format!("charge:{reference}");
    let change = crate::store::courses::Change {
        course,
        reference: &paid_by,
        restore: false,
        actor,
        now_ms,
        audit: audit("course.use", course),
    };
    match charge.session {
        Some(SessionState::Pending) => {}
        // A retry of the treatment's handling: the first deduction.
        Some(SessionState::Used) => {
            return crate::store::courses::use_of_reference(tx, course, &paid_by)
                .await
                .map(|found| found.map(|d| (d, false)));
        }
        _ => return Ok(None),
    }
    // Marked used first, so the deduction does not count it among the sessions awaited.
    let mut sql = tx.sql();
    sql.push("UPDATE charges SET session = 'used' WHERE id = ")
        .text(&charge.id);
    tx.execute(sql).await?;
    let (course_after, used, new) = crate::store::courses::change_in(tx, change).await?;
    Ok(Some((
        crate::store::courses::Deducted {
            course: course_after,
            session: used,
        },
        new,
    )))
}

/// The charge whose `column` is `value`, if any.
async fn one_by(db: &Db, column: &str, value: &str) -> Result<Option<Charge>> {
    let mut select = Select::from(db.dialect(), "charges", CHARGE).keyed("id");
    select
        .sql()
        .push(" WHERE ")
        .ident(column)
        .push(" = ")
        .text(value);
    select
        .fetch_one(db)
        .await?
        .as_ref()
        .map(charge_of)
        .transpose()
}

/// Charge `id`, if it exists.
pub async fn get(db: &Db, id: &str) -> Result<Option<Charge>> {
    one_by(db, "id", id).await
}

/// The charge made under `reference`, if any.
pub async fn by_reference_of(db: &Db, reference: &str) -> Result<Option<Charge>> {
    one_by(db, "reference", reference).await
}

/// Which charges a list shows.
#[derive(Debug, Clone, Default)]
pub struct ChargeQuery {
    /// Only this holder's.
    pub holder: Option<String>,
    /// Only this booking's.
    pub booking: Option<String>,
    /// Only those of these branches (and, when `shared`, of none).
    pub branches: Option<crate::store::bookings::Branches>,
    /// Only those made after this id (ids are UUIDv7: the order they were made).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// The charges `q` asks for, oldest first.
pub async fn list(db: &Db, q: &ChargeQuery) -> Result<Vec<Charge>> {
    let mut select = Select::from(db.dialect(), "charges", CHARGE).keyed("id");
    let sql = select.sql();
    sql.push(" WHERE 1 = 1");
    if let Some(h) = &q.holder {
        sql.push(" AND holder = ").text(h);
    }
    if let Some(b) = &q.booking {
        sql.push(" AND booking = ").text(b);
    }
    if let Some(b) = &q.branches {
        b.filter(sql);
    }
    if let Some(a) = &q.after {
        sql.push(" AND id > ").text(a);
    }
    sql.push(" ORDER BY id LIMIT ").push(&q.limit.to_string());
    select.fetch(db).await?.iter().map(charge_of).collect()
}

/// Voids charge `id` in one transaction: the money it took from an account goes back (an
/// adjustment under `void:<reference>`), the session it used goes back to its course; a
/// deposit already applied to a standing visit charge is 409 (void that one first).
/// Voiding a voided charge answers it (`false`).
pub async fn void(
    db: &Db,
    id: &str,
    by: &str,
    reason: &str,
    now_ms: i64,
    audit: AuditRow<'_>,
) -> Result<(Charge, bool)> {
    let mut tx = db.begin().await?;
    let d = tx.dialect();
    let mut select = Select::from(d, "charges", CHARGE).keyed("id");
    select.sql().push(" WHERE id = ").text(id);
    if d == Dialect::Postgres {
        select.sql().push(" FOR UPDATE");
    }
    let Some(charge) = select
        .fetch_in(&mut tx)
        .await?
        .first()
        .map(charge_of)
        .transpose()?
    else {
        return Err(KernelError::NotFound(format!("charge {id}")));
    };
    if charge.status == ChargeStatus::Void {
        return Ok((charge, false));
    }
    let cents = |text: &str| erpos_design::ledger::parse_cents(text).unwrap_or(0);
    if let (Purpose::Deposit, Some(booking)) = (charge.purpose, &charge.booking) {
        let received = cents(&charge.received);
        if deposits_left(&mut tx, booking).await? < received {
            return Err(KernelError::Conflict {
                code: ErrorCode::Conflict,
                message: format!(
                    "the deposit is applied to a visit charge of booking {booking}: void that charge first"
                ),
                details: vec![erpos_design::Issue::new("/booking", "deposit applied")],
            });
        }
    }
    let paid_by = format!("charge:{}", charge.reference);
    match (&charge.account, &charge.course) {
        (Some(account), _) if cents(&charge.received) > 0 => {
            crate::store::ledger::post_in(
                &mut tx,
                crate::store::ledger::Posting {
                    account,
                    kind: EntryKind::Adjustment,
                    cents: cents(&charge.received),
                    reference: &format!("void:{}", charge.reference),
                    note: Some(reason),
                    actor: by,
                    now_ms,
                    audit: audit("ledger.adjustment", account),
                },
            )
            .await?;
        }
        (_, Some(course)) if charge.session == Some(SessionState::Used) => {
            crate::store::courses::change_in(
                &mut tx,
                crate::store::courses::Change {
                    course,
                    reference: &paid_by,
                    restore: true,
                    actor: by,
                    now_ms,
                    audit: audit("course.restore", course),
                },
            )
            .await?;
        }
        _ => {}
    }
    let mut sql = tx.sql();
    sql.push("UPDATE charges SET status = 'void', ");
    if charge.session.is_some() {
        // Used or pending, the session is the course's again.
        sql.push("session = 'restored', ");
    }
    sql.push("voided_by = ")
        .text(by)
        .push(", voided_ms = ")
        .int(now_ms)
        .push(", void_reason = ")
        .text(reason)
        .push(" WHERE id = ")
        .text(id);
    tx.execute(sql).await?;
    tx.execute(audit("charge.void", id)).await?;
    let voided = by_reference(&mut tx, &charge.reference)
        .await?
        .ok_or_else(|| KernelError::Corrupt(format!("charge {id} vanished")))?;
    tx.commit().await?;
    Ok((voided, true))
}
