//! Use cases of prepaid accounts (issue 14 §7): opening an account for a patient, booking
//! recharges, consumptions, refunds and adjustments on it — each exact to the fen, never
//! taking the balance below zero, and idempotent by the caller's `reference` (a retried
//! charge answers the first entry, never a second one) — and reading balances and
//! ledgers. Grants: `money:read`, `money:charge`, `money:adjust` (adjustments only).

use erpos_design::Issue;
use erpos_design::ledger::{Account, Entry, EntryKind, parse_cents};
use serde::Deserialize;
use serde_json::Value;

use super::read_body as read;
use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{ErrorCode, KernelError, Result};

/// The longest reference and note.
const MAX_TEXT: usize = 200;
/// The most accounts or entries one page lists.
pub const MAX_LIMIT: usize = 500;

/// The body of `POST /api/v1/accounts`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    /// Whose: the patient's record id.
    pub holder: String,
    /// What staff call it (储值卡).
    #[serde(default)]
    pub label: Option<String>,
}

/// The body of `POST /api/v1/accounts/{id}/entries`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRequest {
    /// What it is.
    pub kind: EntryKind,
    /// Yuan with at most two decimals, as text (`"1234.50"`): positive, except for an
    /// adjustment, whose sign says whether it adds or takes.
    pub amount: String,
    /// The caller's reference for this entry (the charge's or the payment's id): a retry
    /// with the same reference answers the entry it booked.
    pub reference: String,
    /// A note.
    #[serde(default)]
    pub note: Option<String>,
}

fn short(text: &str, at: &str, issues: &mut Vec<Issue>) {
    super::short_text(text, at, MAX_TEXT, issues);
}

/// Opens an account with a zero balance (`money:charge`).
pub async fn open(k: &Kernel, caller: &Caller, body: &Value) -> Result<Account> {
    require(
        caller,
        Permission::Money { op: "charge" },
        "opening accounts",
    )?;
    let request: OpenRequest = read(body)?;
    let mut issues = Vec::new();
    short(&request.holder, "/holder", &mut issues);
    if let Some(label) = &request.label {
        short(label, "/label", &mut issues);
    }
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = k.clock.now_ms();
    let sql =
        crate::store::ledger::open_sql(&k.db, &id, &request.holder, request.label.as_deref(), now);
    let row = audit(k, caller, "account.open").row(k.db.dialect(), &id);
    k.db.write_atomically(vec![sql, row]).await?;
    get(k, caller, &id).await
}

/// Account `id` with its balance (`money:read`).
pub async fn get(k: &Kernel, caller: &Caller, id: &str) -> Result<Account> {
    require(caller, Permission::Money { op: "read" }, "reading accounts")?;
    crate::store::ledger::account(&k.db, id)
        .await?
        .ok_or_else(|| KernelError::NotFound(format!("account {id}")))
}

/// The accounts of a holder (`?holder=`), or all, oldest first, after the account id
/// `after` (the last one of the page before), at most `limit` (`money:read`).
pub async fn list(
    k: &Kernel,
    caller: &Caller,
    params: &[(String, String)],
) -> Result<Vec<Account>> {
    require(caller, Permission::Money { op: "read" }, "reading accounts")?;
    let page = super::holder_page(params, MAX_LIMIT)?;
    crate::store::ledger::accounts(
        &k.db,
        page.holder.as_deref(),
        page.after.as_deref(),
        page.limit,
    )
    .await
}

/// The ledger of account `id`, in order (`?after=` a seq, `limit`) (`money:read`).
pub async fn entries(
    k: &Kernel,
    caller: &Caller,
    id: &str,
    params: &[(String, String)],
) -> Result<Vec<Entry>> {
    get(k, caller, id).await?;
    let (after, limit) = super::seq_page(params, MAX_LIMIT, "entry")?;
    crate::store::ledger::entries(&k.db, id, after, limit).await
}

/// Books an entry on account `id`; answers it and whether it is new (a retry with the
/// same reference and the same kind and amount answers the first, `false`).
pub async fn post(k: &Kernel, caller: &Caller, id: &str, body: &Value) -> Result<(Entry, bool)> {
    // Who may book no entry at all learns that before what is wrong with the body.
    if !caller.may(Permission::Money { op: "charge" })
        && !caller.may(Permission::Money { op: "adjust" })
    {
        return Err(KernelError::Forbidden(
            "booking entries needs money:charge (money:adjust for adjustments)".into(),
        ));
    }
    let request: EntryRequest = read(body)?;
    let op = if request.kind == EntryKind::Adjustment {
        "adjust"
    } else {
        "charge"
    };
    require(caller, Permission::Money { op }, "booking this entry")?;
    let mut issues = Vec::new();
    let cents = match parse_cents(request.amount.trim()) {
        Ok(0) => {
            issues.push(Issue::new(
                "/amount",
                "an entry moves some money: 0 moves none",
            ));
            0
        }
        Ok(c) if c < 0 && request.kind != EntryKind::Adjustment => {
            issues.push(Issue::new(
                "/amount",
                format!(
                    "a {} is positive: only an adjustment carries a sign",
                    request.kind.as_str()
                ),
            ));
            c
        }
        Ok(c) => c,
        Err(problem) => {
            issues.push(Issue::new("/amount", problem));
            0
        }
    };
    short(&request.reference, "/reference", &mut issues);
    if let Some(note) = &request.note {
        short(note, "/note", &mut issues);
    }
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let signed = request.kind.signed(cents);
    let posting = |audit_row| crate::store::ledger::Posting {
        account: id,
        kind: request.kind,
        cents: signed,
        reference: &request.reference,
        note: request.note.as_deref(),
        actor: &caller.user,
        now_ms: k.clock.now_ms(),
        audit: audit_row,
    };
    let row = audit(k, caller, "account.entry").row(k.db.dialect(), id);
    let posted = match crate::store::ledger::post(&k.db, posting(row)).await {
        // Two retries at once: the second met the first's reference in the index.
        Err(e) if e.unique_violation().is_some() => {
            match crate::store::ledger::entry_by_reference(&k.db, id, &request.reference).await? {
                Some(first) => (first, false),
                None => return Err(e),
            }
        }
        other => other?,
    };
    let (entry, new) = posted;
    if !new
        && (entry.kind != request.kind
            || erpos_design::ledger::parse_cents(&entry.amount) != Ok(signed))
    {
        return Err(KernelError::Conflict {
            code: ErrorCode::ReferenceReused,
            message: format!(
                "reference '{}' booked entry {} ({} of {}) on this account: a retry sends the same kind and amount, a new entry a new reference",
                entry.reference,
                entry.seq,
                entry.kind.as_str(),
                entry.amount
            ),
            details: vec![Issue::new("/reference", "already used for another entry")],
        });
    }
    Ok((entry, new))
}
