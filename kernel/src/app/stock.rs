//! Use cases of stock (issue 14 §8): defining materials (`stock:manage`); receiving lots,
//! consuming first-expiring-first, adjusting and writing off (`stock:move`), each under the
//! caller's `reference` so a retry answers what the first did and never moves twice; and
//! reading lots, movements and the alerts — lots expiring within 30 days (or a chosen
//! horizon) and materials under their reorder level in a branch (`stock:read`). On hand is
//! the sum of a lot's movements and never negative.

use std::collections::BTreeSet;

use erpos_design::Issue;
use erpos_design::stock::{Lot, MAX_QUANTITY, Material, Movement, MovementKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::read_body as read;
use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{ErrorCode, KernelError, Result};
use crate::store::stock::{By, Done, LotQuery, OperationHead, Receipt};

/// The longest reference, note, lot number.
const MAX_TEXT: usize = 200;
/// The most lots or movements one page lists.
pub const MAX_LIMIT: usize = 500;
/// How far ahead expiry alerts look by default.
pub const ALERT_DAYS: i64 = 30;

/// The body of `POST /api/v1/stock/receipts`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// The material.
    pub material: String,
    /// The branch receiving it.
    pub branch: String,
    /// The supplier's lot number.
    pub lot_number: String,
    /// The last day it may be used (YYYY-MM-DD).
    pub expires_on: String,
    /// How much, in the material's unit.
    pub quantity: i64,
    /// The caller's reference (the delivery note): a retry answers the first receipt.
    pub reference: String,
    /// A note.
    #[serde(default)]
    pub note: Option<String>,
}

/// The body of `POST /api/v1/stock/consumptions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumptionRequest {
    /// The material.
    pub material: String,
    /// The branch it is taken from.
    pub branch: String,
    /// How much, in the material's unit.
    pub quantity: i64,
    /// The caller's reference (the treatment's record id and the material): a retry
    /// answers the lots the first took.
    pub reference: String,
    /// A note.
    #[serde(default)]
    pub note: Option<String>,
}

/// The body of `POST /api/v1/stock/lots/{id}/movements`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    /// `adjust` (a count corrected; signed) or `write_off` (thrown away; positive).
    pub kind: MovementKind,
    /// How much, in the material's unit.
    pub quantity: i64,
    /// The caller's reference.
    pub reference: String,
    /// Why (required: a stock-take, a broken vial).
    pub note: String,
}

/// One lot an operation moved.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LotMoved {
    /// The lot after it.
    pub lot: Lot,
    /// Its movement.
    pub movement: Movement,
}

/// An operation done.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Operation {
    /// The caller's reference.
    pub reference: String,
    /// `receipt`, `consumption`, `adjust` or `write_off`.
    pub kind: String,
    /// The material.
    pub material: String,
    /// The branch.
    pub branch: String,
    /// The quantity asked (signed for an adjustment).
    pub quantity: i64,
    /// When.
    pub at: String,
    /// Per lot moved, in FEFO order for a consumption: what traceability records.
    pub lots: Vec<LotMoved>,
}

/// A material under its reorder level in a branch.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LowStock {
    /// The material.
    pub material: String,
    /// The branch.
    pub branch: String,
    /// Usable on hand.
    pub on_hand: i64,
    /// Its reorder level.
    pub reorder_level: i64,
}

/// The alerts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Alerts {
    /// Lots with stock that stop being usable within the horizon (or already have).
    pub expiring: Vec<Lot>,
    /// Materials under their reorder level, per branch.
    pub low: Vec<LowStock>,
}

fn short(text: &str, at: &str, issues: &mut Vec<Issue>) {
    super::short_text(text, at, MAX_TEXT, issues);
}

fn branch_ok(branch: &str, issues: &mut Vec<Issue>) {
    if !erpos_design::naming::is_identifier(branch) {
        issues.push(Issue::new(
            "/branch",
            "a branch's identifier: lowercase letters, digits and single underscores",
        ));
    }
}

fn positive(quantity: i64, issues: &mut Vec<Issue>) {
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        issues.push(Issue::new("/quantity", format!("from 1 to {MAX_QUANTITY}")));
    }
}

async fn material_of(k: &Kernel, name: &str, issues: &mut Vec<Issue>) -> Result<Option<Material>> {
    let found = crate::store::stock::material(&k.db, name).await?;
    if found.is_none() {
        issues.push(Issue::new("/material", format!("no material '{name}'")));
    }
    Ok(found)
}

fn shown(done: Done) -> Operation {
    Operation {
        reference: done.head.reference,
        kind: done.head.kind,
        material: done.head.material,
        branch: done.head.branch,
        quantity: done.head.quantity,
        at: chrono::DateTime::from_timestamp_millis(done.at_ms)
            .map(|t| erpos_design::value::format_datetime(&t))
            .unwrap_or_default(),
        lots: done
            .moved
            .into_iter()
            .map(|(lot, movement)| LotMoved { lot, movement })
            .collect(),
    }
}

/// A retry answers the first operation when it asks for the same; a reference reused for
/// something else is 409 `reference_reused`.
fn same_or_refuse(done: &Done, asked: &OperationHead) -> Result<()> {
    if &done.head == asked {
        return Ok(());
    }
    Err(KernelError::Conflict {
        code: ErrorCode::ReferenceReused,
        message: format!(
            "reference '{}' was a {} of {} '{}' in branch '{}': a retry sends the same, a new operation a new reference",
            done.head.reference,
            done.head.kind,
            done.head.quantity,
            done.head.material,
            done.head.branch
        ),
        details: vec![Issue::new(
            "/reference",
            "already used for another operation",
        )],
    })
}

/// Runs `op`; a unique violation on the reference (two first tries at once) answers what
/// the one that won did.
async fn once(
    k: &Kernel,
    head: &OperationHead,
    op: impl std::future::Future<Output = Result<(Done, bool)>>,
) -> Result<(Operation, bool)> {
    let (done, new) = match op.await {
        Err(e) if e.unique_violation().is_some() => {
            match crate::store::stock::done(&k.db, &head.reference).await? {
                Some(first) => (first, false),
                None => return Err(e),
            }
        }
        other => other?,
    };
    if !new {
        same_or_refuse(&done, head)?;
    }
    Ok((shown(done), new))
}

/// Defines (or replaces) a material (`stock:manage`).
pub async fn put_material(k: &Kernel, caller: &Caller, body: &Value) -> Result<Material> {
    require(
        caller,
        Permission::Stock { op: "manage" },
        "defining materials",
    )?;
    let material: Material = read(body)?;
    let material = material.prepare().map_err(KernelError::Invalid)?;
    let sql = crate::store::stock::put_material_sql(&k.db, &material, k.clock.now_ms())?;
    let row = audit(k, caller, "stock.material").row(k.db.dialect(), &material.name);
    k.db.write_atomically(vec![sql, row]).await?;
    Ok(material)
}

/// Every material (`stock:read`).
pub async fn materials(k: &Kernel, caller: &Caller) -> Result<Vec<Material>> {
    require(caller, Permission::Stock { op: "read" }, "reading stock")?;
    crate::store::stock::materials(&k.db).await
}

/// Receives a lot (`stock:move`); answers the operation and whether it is new.
pub async fn receive(k: &Kernel, caller: &Caller, body: &Value) -> Result<(Operation, bool)> {
    require(caller, Permission::Stock { op: "move" }, "receiving stock")?;
    let r: ReceiptRequest = read(body)?;
    super::branches::within(k, caller, &r.branch).await?;
    let mut issues = Vec::new();
    material_of(k, &r.material, &mut issues).await?;
    branch_ok(&r.branch, &mut issues);
    short(&r.lot_number, "/lot_number", &mut issues);
    short(&r.reference, "/reference", &mut issues);
    if let Some(note) = &r.note {
        short(note, "/note", &mut issues);
    }
    positive(r.quantity, &mut issues);
    let expires_ms = erpos_design::stock::end_of_day_ms(&r.expires_on);
    if expires_ms.is_none() {
        issues.push(Issue::new("/expires_on", "a date, YYYY-MM-DD"));
    }
    let Some(expires_ms) = expires_ms.filter(|_| issues.is_empty()) else {
        return Err(KernelError::Invalid(issues));
    };
    let head = OperationHead {
        reference: r.reference.clone(),
        kind: "receipt".into(),
        material: r.material.clone(),
        branch: r.branch.clone(),
        quantity: r.quantity,
    };
    let by = By {
        actor: &caller.user,
        now_ms: k.clock.now_ms(),
        note: r.note.as_deref(),
        audit: audit(k, caller, "stock.receipt").row(k.db.dialect(), &r.reference),
    };
    let receipt = Receipt {
        lot_number: &r.lot_number,
        expires_on: &r.expires_on,
        expires_ms,
    };
    once(
        k,
        &head,
        crate::store::stock::receive(&k.db, head.clone(), receipt, by),
    )
    .await
}

/// Consumes first-expiring-first (`stock:move`); answers the lots taken.
pub async fn consume(k: &Kernel, caller: &Caller, body: &Value) -> Result<(Operation, bool)> {
    require(caller, Permission::Stock { op: "move" }, "consuming stock")?;
    let r: ConsumptionRequest = read(body)?;
    super::branches::within(k, caller, &r.branch).await?;
    let mut issues = Vec::new();
    let material = material_of(k, &r.material, &mut issues).await?;
    branch_ok(&r.branch, &mut issues);
    short(&r.reference, "/reference", &mut issues);
    if let Some(note) = &r.note {
        short(note, "/note", &mut issues);
    }
    positive(r.quantity, &mut issues);
    let Some(material) = material.filter(|_| issues.is_empty()) else {
        return Err(KernelError::Invalid(issues));
    };
    let head = OperationHead {
        reference: r.reference.clone(),
        kind: "consumption".into(),
        material: r.material.clone(),
        branch: r.branch.clone(),
        quantity: r.quantity,
    };
    let by = By {
        actor: &caller.user,
        now_ms: k.clock.now_ms(),
        note: r.note.as_deref(),
        audit: audit(k, caller, "stock.consumption").row(k.db.dialect(), &r.reference),
    };
    once(
        k,
        &head,
        crate::store::stock::consume(
            &k.db,
            head.clone(),
            material.use_within_hours_of_opening,
            by,
        ),
    )
    .await
}

/// Adjusts or writes off lot `id` (`stock:move`).
pub async fn correct(
    k: &Kernel,
    caller: &Caller,
    id: &str,
    body: &Value,
) -> Result<(Operation, bool)> {
    require(caller, Permission::Stock { op: "move" }, "correcting stock")?;
    let r: CorrectionRequest = read(body)?;
    let lot = visible_lot(k, caller, id).await?;
    let mut issues = Vec::new();
    let signed = match r.kind {
        MovementKind::Adjust => {
            if r.quantity == 0 || r.quantity.abs() > MAX_QUANTITY {
                issues.push(Issue::new(
                    "/quantity",
                    format!("not 0, at most {MAX_QUANTITY} either way"),
                ));
            }
            r.quantity
        }
        MovementKind::WriteOff => {
            positive(r.quantity, &mut issues);
            -r.quantity
        }
        MovementKind::In | MovementKind::Out => {
            issues.push(Issue::new(
                "/kind",
                "adjust or write_off here: receipts and consumptions have their own paths",
            ));
            0
        }
    };
    short(&r.reference, "/reference", &mut issues);
    short(&r.note, "/note", &mut issues);
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let head = OperationHead {
        reference: r.reference.clone(),
        kind: r.kind.as_str().into(),
        material: lot.material.clone(),
        branch: lot.branch.clone(),
        quantity: signed,
    };
    let by = By {
        actor: &caller.user,
        now_ms: k.clock.now_ms(),
        note: Some(&r.note),
        audit: audit(k, caller, "stock.correction").row(k.db.dialect(), &r.reference),
    };
    once(
        k,
        &head,
        crate::store::stock::correct(&k.db, head.clone(), id, r.kind, signed, by),
    )
    .await
}

/// Marks lot `id` opened now (`stock:move`): a material with a life after opening is then
/// usable only that long. Opening an opened lot changes nothing.
pub async fn open(k: &Kernel, caller: &Caller, id: &str) -> Result<Lot> {
    require(caller, Permission::Stock { op: "move" }, "opening lots")?;
    let lot = visible_lot(k, caller, id).await?;
    let hours = crate::store::stock::material(&k.db, &lot.material)
        .await?
        .and_then(|m| m.use_within_hours_of_opening);
    let row = audit(k, caller, "stock.open").row(k.db.dialect(), id);
    crate::store::stock::open(&k.db, id, hours, k.clock.now_ms(), row).await?;
    crate::store::stock::lot(&k.db, id)
        .await?
        .ok_or_else(|| KernelError::NotFound(format!("lot {id}")))
}

/// The lots the query asks for (`material`, `branch`, `in_stock=true`, `after`, `limit`).
pub async fn lots(k: &Kernel, caller: &Caller, params: &[(String, String)]) -> Result<Vec<Lot>> {
    require(caller, Permission::Stock { op: "read" }, "reading stock")?;
    let mut q = LotQuery {
        limit: 50,
        ..LotQuery::default()
    };
    let mut issues = Vec::new();
    for (key, raw) in params {
        match key.as_str() {
            "material" => q.material = Some(raw.clone()),
            "branch" => q.branch = Some(raw.clone()),
            "in_stock" => match raw.as_str() {
                "true" => q.in_stock = true,
                "false" => q.in_stock = false,
                _ => issues.push(Issue::new("/query/in_stock", "true or false")),
            },
            "after" => q.after = Some(raw.clone()),
            "limit" => {
                if let Some(n) = super::limit_param(raw, MAX_LIMIT, &mut issues) {
                    q.limit = n;
                }
            }
            _ => issues.push(Issue::new(
                format!("/query/{key}"),
                "unknown parameter (material, branch, in_stock, after, limit)",
            )),
        }
    }
    if !issues.is_empty() {
        return Err(KernelError::BadRequest(issues));
    }
    q.branches = seen(k, caller, q.branch.as_deref()).await?;
    crate::store::stock::lots(&k.db, &q).await
}

/// The branches whose stock `caller` sees (None: all), 403 when `asked` is outside them.
async fn seen(k: &Kernel, caller: &Caller, asked: Option<&str>) -> Result<Option<Vec<String>>> {
    let scope = match asked {
        Some(b) => super::branches::within(k, caller, b).await?,
        None => super::branches::scope(k, caller).await,
    };
    Ok(scope.map(|s| s.names))
}

/// Lot `id` (`stock:read`); another branch's is answered as one that does not exist.
pub async fn lot(k: &Kernel, caller: &Caller, id: &str) -> Result<Lot> {
    require(caller, Permission::Stock { op: "read" }, "reading stock")?;
    visible_lot(k, caller, id).await
}

/// Lot `id` if it is of a branch `caller` sees (404 otherwise, as if it did not exist).
async fn visible_lot(k: &Kernel, caller: &Caller, id: &str) -> Result<Lot> {
    let scope = super::branches::scope(k, caller).await;
    crate::store::stock::lot(&k.db, id)
        .await?
        .filter(|l| super::branches::sees(&scope, Some(&l.branch)))
        .ok_or_else(|| KernelError::NotFound(format!("lot {id}")))
}

/// The movements of lot `id`, in order (`?after=` a seq, `limit`) (`stock:read`).
pub async fn movements(
    k: &Kernel,
    caller: &Caller,
    id: &str,
    params: &[(String, String)],
) -> Result<Vec<Movement>> {
    lot(k, caller, id).await?;
    let (after, limit) = super::seq_page(params, MAX_LIMIT, "movement")?;
    crate::store::stock::movements(&k.db, id, after, limit).await
}

/// Lots expiring within `days` (default 30) and materials under their reorder level
/// (`?branch=` only that branch's) (`stock:read`).
pub async fn alerts(k: &Kernel, caller: &Caller, params: &[(String, String)]) -> Result<Alerts> {
    require(caller, Permission::Stock { op: "read" }, "reading stock")?;
    let (mut branch, mut days, mut issues) = (None, ALERT_DAYS, Vec::new());
    for (key, raw) in params {
        match key.as_str() {
            "branch" => branch = Some(raw.clone()),
            "days" => match raw.parse::<i64>() {
                Ok(n) if (1..=365).contains(&n) => days = n,
                _ => issues.push(Issue::new("/query/days", "from 1 to 365")),
            },
            _ => issues.push(Issue::new(
                format!("/query/{key}"),
                "unknown parameter (branch, days)",
            )),
        }
    }
    if !issues.is_empty() {
        return Err(KernelError::BadRequest(issues));
    }
    let seen = seen(k, caller, branch.as_deref()).await?;
    let now = k.clock.now_ms();
    let mut expiring = crate::store::stock::lots(
        &k.db,
        &LotQuery {
            branch: branch.clone(),
            branches: seen.clone(),
            in_stock: true,
            usable_before_ms: Some(now + days * 86_400_000),
            limit: MAX_LIMIT,
            ..LotQuery::default()
        },
    )
    .await?;
    expiring.sort_by(|a, b| (&a.usable_until, &a.id).cmp(&(&b.usable_until, &b.id)));
    let on_hand = crate::store::stock::on_hand(&k.db, now).await?;
    // Every branch that ever held stock (or the one asked about) is checked, so a
    // material used up to nothing still alerts.
    let mut branches: BTreeSet<String> = crate::store::stock::lots(
        &k.db,
        &LotQuery {
            branch: branch.clone(),
            branches: seen,
            limit: MAX_LIMIT,
            ..LotQuery::default()
        },
    )
    .await?
    .into_iter()
    .map(|l| l.branch)
    .collect();
    if let Some(b) = &branch {
        branches.insert(b.clone());
    }
    let mut low = Vec::new();
    for m in crate::store::stock::materials(&k.db).await? {
        if m.reorder_level <= 0 {
            continue;
        }
        for b in &branches {
            let have = on_hand
                .iter()
                .find(|(mat, br, _)| mat == &m.name && br == b)
                .map_or(0, |(_, _, n)| *n);
            if have < m.reorder_level {
                low.push(LowStock {
                    material: m.name.clone(),
                    branch: b.clone(),
                    on_hand: have,
                    reorder_level: m.reorder_level,
                });
            }
        }
    }
    Ok(Alerts { expiring, low })
}
