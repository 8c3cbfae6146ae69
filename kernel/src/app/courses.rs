//! Use cases of courses and packages (issue 14 §7): selling N sessions of a treatment
//! until a day (`money:charge`), deducting one at a treatment and restoring it when the
//! treatment is voided (`money:charge`), each idempotent by the treatment's `reference`;
//! reading courses and their history (`money:read`). An expired or used-up course stops
//! the deduction with 409 and a clear reason, and nothing changes.

use erpos_design::Issue;
use erpos_design::course::{ChargeType, Course, MAX_SESSIONS, SessionUse};
use serde::Deserialize;
use serde_json::Value;

use super::read_body as read;
use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};

/// The longest holder and reference.
const MAX_TEXT: usize = 200;
/// The most courses one page lists.
pub const MAX_LIMIT: usize = 500;

/// The body of `POST /api/v1/courses`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    /// Whose: the patient's record id.
    pub holder: String,
    /// The treatment its sessions are of.
    pub treatment: String,
    /// `course` (项目疗程) or `yearly` (年度套餐).
    pub charge_type: ChargeType,
    /// Sessions bought (1 … 1000).
    pub sessions: i64,
    /// The last day a session may be used (YYYY-MM-DD, not past).
    pub expires_on: String,
}

/// The body of `POST /api/v1/courses/{id}/uses`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseRequest {
    /// The treatment's reference: a retry answers the first deduction; the same reference
    /// with `restore` gives the session back when the treatment is voided.
    pub reference: String,
    /// Restore the session this reference used (default false: deduct one).
    #[serde(default)]
    pub restore: bool,
}

fn short(text: &str, at: &str, issues: &mut Vec<Issue>) {
    super::short_text(text, at, MAX_TEXT, issues);
}

/// Sells a course (`money:charge`).
pub async fn sell(k: &Kernel, caller: &Caller, body: &Value) -> Result<Course> {
    require(
        caller,
        Permission::Money { op: "charge" },
        "selling courses",
    )?;
    let r: SaleRequest = read(body)?;
    let mut issues = Vec::new();
    short(&r.holder, "/holder", &mut issues);
    if crate::store::treatments::get(&k.db, &r.treatment)
        .await?
        .is_none()
    {
        issues.push(Issue::new(
            "/treatment",
            format!("no treatment '{}'", r.treatment),
        ));
    }
    if !matches!(r.charge_type, ChargeType::Course | ChargeType::Yearly) {
        issues.push(Issue::new(
            "/charge_type",
            "course or yearly: a single payment or a prepaid account sells no sessions",
        ));
    }
    if !(1..=MAX_SESSIONS).contains(&r.sessions) {
        issues.push(Issue::new("/sessions", format!("from 1 to {MAX_SESSIONS}")));
    }
    let now = k.clock.now_ms();
    let expires_ms = erpos_design::stock::end_of_day_ms(&r.expires_on);
    match expires_ms {
        None => issues.push(Issue::new("/expires_on", "a date, YYYY-MM-DD")),
        Some(ms) if ms <= now => issues.push(Issue::new("/expires_on", "is past")),
        Some(_) => {}
    }
    let Some(expires_ms) = expires_ms.filter(|_| issues.is_empty()) else {
        return Err(KernelError::Invalid(issues));
    };
    let id = uuid::Uuid::now_v7().to_string();
    let sql = crate::store::courses::open_sql(
        &k.db,
        &crate::store::courses::NewCourse {
            id: &id,
            holder: &r.holder,
            treatment: &r.treatment,
            charge_type: r.charge_type,
            sessions: r.sessions,
            expires_on: &r.expires_on,
            expires_ms,
            now_ms: now,
        },
    );
    let row = audit(k, caller, "course.sell").row(k.db.dialect(), &id);
    k.db.write_atomically(vec![sql, row]).await?;
    get(k, caller, &id).await
}

/// Course `id` (`money:read`).
pub async fn get(k: &Kernel, caller: &Caller, id: &str) -> Result<Course> {
    require(caller, Permission::Money { op: "read" }, "reading courses")?;
    crate::store::courses::course(&k.db, id)
        .await?
        .ok_or_else(|| KernelError::NotFound(format!("course {id}")))
}

/// The courses of a holder (`?holder=`), or all, oldest first (`after`, `limit`).
pub async fn list(k: &Kernel, caller: &Caller, params: &[(String, String)]) -> Result<Vec<Course>> {
    require(caller, Permission::Money { op: "read" }, "reading courses")?;
    let page = super::holder_page(params, MAX_LIMIT)?;
    crate::store::courses::courses(
        &k.db,
        page.holder.as_deref(),
        page.after.as_deref(),
        page.limit,
    )
    .await
}

/// The history of course `id` (`money:read`).
pub async fn uses(k: &Kernel, caller: &Caller, id: &str) -> Result<Vec<SessionUse>> {
    get(k, caller, id).await?;
    crate::store::courses::uses(&k.db, id).await
}

/// Deducts (or restores) a session of course `id` (`money:charge`); answers the course
/// after it, the use, and whether it is new.
pub async fn change(
    k: &Kernel,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<(Course, SessionUse, bool)> {
    require(
        caller,
        Permission::Money { op: "charge" },
        "using course sessions",
    )?;
    let r: UseRequest = read(body)?;
    let mut issues = Vec::new();
    short(&r.reference, "/reference", &mut issues);
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let change = |audit_row| crate::store::courses::Change {
        course: id,
        reference: &r.reference,
        restore: r.restore,
        actor: &caller.user,
        now_ms: k.clock.now_ms(),
        audit: audit_row,
    };
    let action = if r.restore {
        "course.restore"
    } else {
        "course.use"
    };
    let row = audit(k, caller, action).row(k.db.dialect(), id);
    match crate::store::courses::change(&k.db, change(row)).await {
        // Two retries at once: the second met the first's reference; it answers the first.
        Err(e) if e.unique_violation().is_some() => {
            let row = audit(k, caller, action).row(k.db.dialect(), id);
            crate::store::courses::change(&k.db, change(row)).await
        }
        other => other,
    }
}
