//! Use cases of charges (issue 14 §7): charging a visit or taking a deposit at booking by
//! one of the original's charge types — 单次付清 paid at the desk (`method`), 预充值 from
//! the patient's prepaid account, 项目疗程 / 年度套餐 from a course's session — with the
//! receivable (the treatment's price unless given), the discount and the booking's
//! deposits applied; voiding a charge gives back what paid it. Each charge is idempotent
//! by its `reference`. Insufficient balance or an expired or used-up course is 409 and
//! nothing changes. Grants: `money:charge` to charge and void, `money:read` to read.
//!
//! A visit's payment step charges through the `charge` instruction, which resolves the
//! same request here ([`resolve`]) and writes it in the handling's own transaction.

use erpos_design::Issue;
use erpos_design::charge::SessionAt;
use erpos_design::charge::{Charge, PayMethod, Purpose};
use erpos_design::course::ChargeType;
use erpos_design::ledger::parse_cents;
use serde::Deserialize;
use serde_json::Value;

use super::read_body as read;
use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::store::charges::{ChargeQuery, NewCharge};

/// The longest reference, holder and note.
pub const MAX_TEXT: usize = 200;
/// The most charges one page lists.
pub const MAX_LIMIT: usize = 500;

/// The body of `POST /api/v1/charges` (and what the `charge` instruction builds).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// The caller's reference (`visit-<pid>` at a visit's payment step): a retry with it
    /// answers the first charge (200), never a second one.
    pub reference: String,
    /// Whose: the patient's record id (default: the booking's patient).
    #[serde(default)]
    pub holder: Option<String>,
    /// `visit` (default) or `deposit` (money taken at booking, applied when the visit is
    /// charged; needs `booking` and `amount`).
    #[serde(default)]
    pub purpose: Option<Purpose>,
    /// 单次付清 `single` (needs `method`), 预充值 `prepaid` (needs `account`), 项目疗程
    /// `course` or 年度套餐 `yearly` (a session of the patient's course of the treatment).
    pub charge_type: ChargeType,
    /// The treatment (default: the booking's).
    #[serde(default)]
    pub treatment: Option<String>,
    /// The booking it belongs to.
    #[serde(default)]
    pub booking: Option<String>,
    /// 应收, yuan (default: the treatment's price).
    #[serde(default)]
    pub amount: Option<String>,
    /// 优惠, yuan (default 0; at most the amount).
    #[serde(default)]
    pub discount: Option<String>,
    /// The prepaid account to take it from (`prepaid` only).
    #[serde(default)]
    pub account: Option<String>,
    /// The course whose session pays (`course`/`yearly` only; default: the patient's course
    /// of the treatment expiring first with a session left).
    #[serde(default)]
    pub course: Option<String>,
    /// When a course's session is deducted (`course`/`yearly` only): `charge` (default,
    /// now) or `treatment` (the visit's treatment step deducts it with `use_session`; the
    /// charge checks now that the course has a session for it, and keeps it).
    #[serde(default)]
    pub session_at: Option<SessionAt>,
    /// The branch of the visit (default: the booking's; a walk-in's desk names its own).
    #[serde(default)]
    pub branch: Option<String>,
    /// How the desk was paid (`single` only).
    #[serde(default)]
    pub method: Option<PayMethod>,
    /// A note.
    #[serde(default)]
    pub note: Option<String>,
}

/// The body of `POST /api/v1/charges/{id}/void`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// Why (kept with the charge).
    pub reason: String,
}

fn amount(text: &Option<String>, at: &str, issues: &mut Vec<Issue>) -> Option<i64> {
    match text.as_deref().map(parse_cents) {
        None => None,
        Some(Ok(c)) if c < 0 => {
            issues.push(Issue::new(at, "must not be negative"));
            None
        }
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            issues.push(Issue::new(at, e));
            None
        }
    }
}

/// Checks `r` and resolves what it leaves out from its booking and treatment: every
/// problem at its pointer (422). `process` is the visit's, when a step charges.
pub async fn resolve(
    db: &Db,
    r: ChargeRequest,
    actor: &str,
    process: Option<u64>,
    now_ms: i64,
) -> Result<NewCharge> {
    let mut issues = Vec::new();
    let purpose = r.purpose.unwrap_or(Purpose::Visit);
    super::short_text(&r.reference, "/reference", MAX_TEXT, &mut issues);
    if let Some(note) = &r.note {
        super::short_text(note, "/note", MAX_TEXT, &mut issues);
    }
    let mut holder = r.holder.clone();
    let mut treatment = r.treatment.clone();
    let mut branch = r.branch.clone();
    if let Some(b) = &branch {
        super::short_text(b, "/branch", MAX_TEXT, &mut issues);
    }
    if let Some(b) = &r.booking {
        match uuid::Uuid::parse_str(b) {
            Err(_) => issues.push(Issue::new("/booking", "not a booking id")),
            Ok(id) => match crate::store::bookings::get(db, id).await? {
                None => issues.push(Issue::new("/booking", format!("no booking {b}"))),
                Some(booking) => {
                    match (&holder, &booking.patient) {
                        (None, p) => holder = p.clone(),
                        (Some(h), Some(p)) if h != p => issues.push(Issue::new(
                            "/holder",
                            format!("booking {b} is {p}'s, not {h}'s"),
                        )),
                        _ => {}
                    }
                    if treatment.is_none() {
                        treatment = booking.treatment.clone();
                    }
                    match (&branch, &booking.branch) {
                        (Some(asked), Some(of)) if asked != of => issues.push(Issue::new(
                            "/branch",
                            format!("booking {b} is at branch '{of}'"),
                        )),
                        (_, Some(of)) => branch = Some(of.clone()),
                        _ => {}
                    }
                }
            },
        }
    }
    match &holder {
        Some(h) => super::short_text(h, "/holder", MAX_TEXT, &mut issues),
        None => issues.push(Issue::new("/holder", "whose: a patient's record id")),
    }
    let found = match &treatment {
        Some(t) => {
            let found = crate::store::treatments::get(db, t).await?;
            if found.is_none() {
                issues.push(Issue::new("/treatment", format!("no treatment '{t}'")));
            }
            found
        }
        None => None,
    };
    let price = found
        .as_ref()
        .and_then(|t| t.price.as_deref())
        .and_then(|p| parse_cents(p).ok());
    let given = amount(&r.amount, "/amount", &mut issues);
    let receivable = match (given, price, purpose) {
        (Some(c), _, _) => c,
        (None, _, Purpose::Deposit) => {
            issues.push(Issue::new("/amount", "a deposit names its amount"));
            0
        }
        (None, Some(p), Purpose::Visit) => p,
        (None, None, Purpose::Visit) => {
            if r.amount.is_none() && found.is_some() {
                issues.push(Issue::new(
                    "/amount",
                    "the treatment has no price: give the amount",
                ));
            } else if r.amount.is_none() {
                issues.push(Issue::new("/amount", "give the amount or the treatment"));
            }
            0
        }
    };
    let discount = amount(&r.discount, "/discount", &mut issues).unwrap_or(0);
    if discount > receivable {
        issues.push(Issue::new("/discount", "at most the amount"));
    }
    let only = |given: bool, at: &str, what: &str, issues: &mut Vec<Issue>| {
        if given {
            issues.push(Issue::new(at, format!("only {what}")));
        }
    };
    match r.charge_type {
        ChargeType::Single => {
            if r.method.is_none() {
                issues.push(Issue::new(
                    "/method",
                    "how the desk was paid: cash, card, wechat, alipay or transfer",
                ));
            }
        }
        ChargeType::Prepaid => match &r.account {
            None => issues.push(Issue::new(
                "/account",
                "the prepaid account to take it from",
            )),
            Some(a) => match crate::store::ledger::account(db, a).await? {
                None => issues.push(Issue::new("/account", format!("no account {a}"))),
                Some(acc) if Some(&acc.holder) != holder.as_ref() => issues.push(Issue::new(
                    "/account",
                    format!("account {a} is {}'s", acc.holder),
                )),
                Some(_) => {}
            },
        },
        ChargeType::Course | ChargeType::Yearly => {
            if purpose == Purpose::Deposit {
                issues.push(Issue::new(
                    "/charge_type",
                    "a deposit is paid at the desk (single) or from an account (prepaid)",
                ));
            }
            match (&treatment, &r.course) {
                (None, _) => issues.push(Issue::new(
                    "/treatment",
                    "a course's session is of a treatment: name it or the booking",
                )),
                (Some(t), Some(c)) => match crate::store::courses::course(db, c).await? {
                    None => issues.push(Issue::new("/course", format!("no course {c}"))),
                    Some(course)
                        if Some(&course.holder) != holder.as_ref() || &course.treatment != t =>
                    {
                        issues.push(Issue::new(
                            "/course",
                            format!("course {c} is {}'s, of {}", course.holder, course.treatment),
                        ));
                    }
                    Some(_) => {}
                },
                (Some(_), None) => {}
            }
        }
    }
    let (is_single, is_prepaid, is_course) = (
        r.charge_type == ChargeType::Single,
        r.charge_type == ChargeType::Prepaid,
        matches!(r.charge_type, ChargeType::Course | ChargeType::Yearly),
    );
    only(
        r.method.is_some() && !is_single,
        "/method",
        "for a single payment",
        &mut issues,
    );
    only(
        r.account.is_some() && !is_prepaid,
        "/account",
        "for a prepaid charge",
        &mut issues,
    );
    only(
        r.course.is_some() && !is_course,
        "/course",
        "for a course or yearly package",
        &mut issues,
    );
    only(
        r.session_at.is_some() && !is_course,
        "/session_at",
        "for a course or yearly package",
        &mut issues,
    );
    if purpose == Purpose::Deposit && r.booking.is_none() {
        issues.push(Issue::new("/booking", "a deposit belongs to a booking"));
    }
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    Ok(NewCharge {
        reference: r.reference,
        holder: holder.unwrap_or_default(),
        purpose,
        charge_type: r.charge_type,
        treatment,
        booking: r.booking,
        process,
        receivable_cents: receivable,
        discount_cents: discount,
        account: r.account,
        course: r.course,
        session_at: r.session_at.unwrap_or_default(),
        branch,
        method: r.method,
        note: r.note,
        actor: actor.to_owned(),
        now_ms,
    })
}

/// The caller's audit rows, now.
fn rows<'a>(
    k: &'a Kernel,
    caller: &'a Caller,
) -> impl Fn(&'static str, &str) -> crate::sql::Sql + Send + Sync + 'a {
    move |action, subject| audit(k, caller, action).row(k.db.dialect(), subject)
}

/// Makes a charge (`money:charge`); answers it and whether it is new (a retry with the
/// same reference answers the first).
pub async fn create(k: &Kernel, caller: &Caller, body: &Value) -> Result<(Charge, bool)> {
    require(caller, Permission::Money { op: "charge" }, "charging")?;
    let r: ChargeRequest = read(body)?;
    let reference = r.reference.clone();
    let c = resolve(&k.db, r, &caller.user, None, k.clock.now_ms()).await?;
    if let Some(b) = &c.branch {
        // A branch's desk charges its own branch's visits.
        super::branches::within(k, caller, b).await?;
        if !super::branches::known(&k.engine, b).await {
            return Err(KernelError::Invalid(vec![Issue::new(
                "/branch",
                format!("no resource or practitioner stands in branch '{b}'"),
            )]));
        }
    }
    let once = || async {
        let mut tx = k.db.begin().await?;
        let made = crate::store::charges::charge_in(&mut tx, &c, &rows(k, caller)).await?;
        tx.commit().await?;
        Ok::<_, KernelError>(made)
    };
    match once().await {
        // Two retries at once: the second met the first's reference; it answers the first.
        Err(e) if e.unique_violation().is_some() => {
            let first = crate::store::charges::by_reference_of(&k.db, &reference).await?;
            first
                .map(|c| (c, false))
                .ok_or_else(|| KernelError::Corrupt(format!("charge '{reference}' vanished")))
        }
        other => other,
    }
}

/// Charge `id` (`money:read`); another branch's is 404 to a branch's staff, as if it
/// were not there.
pub async fn get(k: &Kernel, caller: &Caller, id: &str) -> Result<Charge> {
    require(caller, Permission::Money { op: "read" }, "reading charges")?;
    let found = crate::store::charges::get(&k.db, id).await?;
    let scope = super::branches::scope(k, caller).await;
    found
        .filter(|c| super::branches::sees(&scope, c.branch.as_deref()))
        .ok_or_else(|| KernelError::NotFound(format!("charge {id}")))
}

/// Charges (`?holder=&booking=&after=&limit=`), oldest first (`money:read`).
pub async fn list(k: &Kernel, caller: &Caller, params: &[(String, String)]) -> Result<Vec<Charge>> {
    require(caller, Permission::Money { op: "read" }, "reading charges")?;
    let mut q = ChargeQuery {
        limit: 50,
        ..ChargeQuery::default()
    };
    let mut issues = Vec::new();
    let mut asked = None;
    for (key, raw) in params {
        match key.as_str() {
            "holder" => q.holder = Some(raw.clone()),
            "booking" => q.booking = Some(raw.clone()),
            "branch" => asked = Some(raw.clone()),
            "after" => q.after = Some(raw.clone()),
            "limit" => {
                if let Some(n) = super::limit_param(raw, MAX_LIMIT, &mut issues) {
                    q.limit = n;
                }
            }
            other => issues.push(Issue::new(
                format!("/query/{other}"),
                "unknown parameter: holder, booking, branch, after or limit",
            )),
        }
    }
    if !issues.is_empty() {
        return Err(KernelError::BadRequest(issues));
    }
    // A branch's desk lists its branch's charges and those of no branch.
    q.branches = super::branches::limit(k, caller, asked.as_deref()).await?;
    crate::store::charges::list(&k.db, &q).await
}

/// Voids charge `id` (`money:charge`): its money goes back to the account, its session to
/// the course; answers it and whether this call voided it.
pub async fn void(k: &Kernel, caller: &Caller, id: &str, body: &Value) -> Result<(Charge, bool)> {
    require(
        caller,
        Permission::Money { op: "charge" },
        "voiding charges",
    )?;
    let r: VoidRequest = read(body)?;
    let mut issues = Vec::new();
    super::short_text(&r.reason, "/reason", MAX_TEXT, &mut issues);
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let rows = rows(k, caller);
    crate::store::charges::void(&k.db, id, &caller.user, &r.reason, k.clock.now_ms(), &rows).await
}
