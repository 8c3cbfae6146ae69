//! The stock tables: materials, lots, operations and movements (issue 14 §8). Every
//! operation runs in one transaction that first claims its reference in
//! `stock_operations` (a retry finds it there and answers what it did), then locks the lots
//! it moves (FOR UPDATE on PostgreSQL; SQLite's write transaction is exclusive), refuses
//! on hand going negative, and writes each movement with on hand after it. FEFO is the
//! order the consumption reads its lots in: the first usable-until first. `app::stock`
//! validates; this module stores.

use erpos_design::Dialect;
use erpos_design::stock::{Lot, Material, Movement, MovementKind};

use super::{Select, StoredRow};
use crate::db::{Db, Tx};
use crate::error::{ErrorCode, KernelError, Result};
use crate::sql::Sql;

const LOT: &[&str] = &[
    "id",
    "material",
    "branch",
    "lot_number",
    "expires_on",
    "expires_ms",
    "opened_ms",
    "usable_ms",
    "on_hand",
    "movements",
];
const MOVEMENT: &[&str] = &[
    "lot_id",
    "seq",
    "kind",
    "quantity",
    "on_hand",
    "reference",
    "note",
    "actor",
    "at_ms",
];
const OPERATION: &[&str] = &[
    "reference",
    "kind",
    "material",
    "branch",
    "quantity",
    "actor",
    "at_ms",
];

fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| erpos_design::value::format_datetime(&t))
        .unwrap_or_default()
}

fn lot_of(r: &StoredRow) -> Result<Lot> {
    Ok(Lot {
        id: r.text("id")?,
        material: r.text("material")?,
        branch: r.text("branch")?,
        lot_number: r.text("lot_number")?,
        expires_on: r.text("expires_on")?,
        opened_at: r.opt_int("opened_ms")?.map(instant),
        usable_until: instant(r.int("usable_ms")?),
        on_hand: r.int("on_hand")?,
        movements: r.int("movements")?,
    })
}

fn movement_of(r: &StoredRow) -> Result<(String, Movement)> {
    Ok((
        r.text("lot_id")?,
        Movement {
            seq: r.int("seq")?,
            kind: r.parsed("kind", "a movement kind", MovementKind::parse)?,
            quantity: r.int("quantity")?,
            on_hand: r.int("on_hand")?,
            reference: r.text("reference")?,
            note: r.opt_text("note")?,
            actor: r.text("actor")?,
            at: r.instant("at_ms")?,
        },
    ))
}

/// The INSERT (or replacement) of a material.
pub fn put_material_sql(db: &Db, material: &Material, now_ms: i64) -> Result<Sql> {
    super::named::put_sql(db, "stock_materials", &material.name, material, now_ms)
}

/// Every material, by name.
pub async fn materials(db: &Db) -> Result<Vec<Material>> {
    super::named::all(db, "stock_materials").await
}

/// The material `name`, if defined.
pub async fn material(db: &Db, name: &str) -> Result<Option<Material>> {
    super::named::get(db, "stock_materials", name).await
}

/// Which lots a list shows.
#[derive(Debug, Clone, Default)]
pub struct LotQuery {
    /// Only this material's.
    pub material: Option<String>,
    /// Only this branch's.
    pub branch: Option<String>,
    /// Only these branches' (the caller's, for a branch's staff).
    pub branches: Option<Vec<String>>,
    /// Only those with something on hand.
    pub in_stock: bool,
    /// Only those usable until before this instant (expiry alerts).
    pub usable_before_ms: Option<i64>,
    /// After this lot id (the last of the page before).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// The lots `q` asks for, by id (UUIDv7: the order they were received in).
pub async fn lots(db: &Db, q: &LotQuery) -> Result<Vec<Lot>> {
    let mut select = Select::from(db.dialect(), "stock_lots", LOT).keyed("id");
    let sql = select.sql();
    sql.push(" WHERE 1 = 1");
    if let Some(m) = &q.material {
        sql.push(" AND material = ").text(m);
    }
    if let Some(b) = &q.branch {
        sql.push(" AND branch = ").text(b);
    }
    if let Some(list) = &q.branches {
        sql.push(" AND branch IN (");
        for (i, b) in list.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.text(b);
        }
        if list.is_empty() {
            sql.push("NULL");
        }
        sql.push(")");
    }
    if q.in_stock {
        sql.push(" AND on_hand > 0");
    }
    if let Some(ms) = q.usable_before_ms {
        sql.push(" AND usable_ms < ").int(ms);
    }
    if let Some(a) = &q.after {
        sql.push(" AND id > ").text(a);
    }
    sql.push(" ORDER BY id LIMIT ").push(&q.limit.to_string());
    select.fetch(db).await?.iter().map(lot_of).collect()
}

/// Lot `id`, if it exists.
pub async fn lot(db: &Db, id: &str) -> Result<Option<Lot>> {
    let mut select = Select::from(db.dialect(), "stock_lots", LOT).keyed("id");
    select.sql().push(" WHERE id = ").text(id);
    select.fetch_one(db).await?.as_ref().map(lot_of).transpose()
}

/// On hand per material and branch, over the lots still usable at `now_ms`.
pub async fn on_hand(db: &Db, now_ms: i64) -> Result<Vec<(String, String, i64)>> {
    let mut sql = Sql::new(db.dialect());
    sql.push(
        "SELECT material, branch, CAST(SUM(on_hand) AS TEXT) FROM stock_lots WHERE usable_ms > ",
    )
    .int(now_ms)
    .push(" GROUP BY material, branch ORDER BY material, branch");
    let rows = db.fetch(sql).await?;
    let mut out = Vec::new();
    for r in rows {
        let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let total = text(2)
            .parse::<i64>()
            .map_err(|e| KernelError::Corrupt(format!("stock_lots on hand: {e}")))?;
        out.push((text(0), text(1), total));
    }
    Ok(out)
}

/// The movements of lot `id` after `after` (a seq), in order, at most `limit`.
pub async fn movements(db: &Db, id: &str, after: i64, limit: usize) -> Result<Vec<Movement>> {
    let mut select = Select::from(db.dialect(), "stock_movements", MOVEMENT).keyed("seq");
    select
        .sql()
        .push(" WHERE lot_id = ")
        .text(id)
        .push(" AND seq > ")
        .int(after)
        .push(" ORDER BY seq LIMIT ")
        .push(&limit.to_string());
    Ok(select
        .fetch(db)
        .await?
        .iter()
        .map(movement_of)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .map(|(_, m)| m)
        .collect())
}

/// What an operation is, as claimed under its reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationHead {
    /// The caller's reference.
    pub reference: String,
    /// `receipt`, `consumption`, `adjust`, `write_off`.
    pub kind: String,
    /// The material.
    pub material: String,
    /// The branch.
    pub branch: String,
    /// The quantity asked (signed for an adjustment).
    pub quantity: i64,
}

/// An operation done: its head and each lot it moved with the movement.
#[derive(Debug, Clone)]
pub struct Done {
    /// What it was.
    pub head: OperationHead,
    /// When.
    pub at_ms: i64,
    /// Per lot moved, in the operation's order: the lot (after it; as it is now when a
    /// retry reads it back) and its movement.
    pub moved: Vec<(Lot, Movement)>,
}

/// What to move on one lot.
struct Move<'a> {
    lot: &'a Lot,
    kind: MovementKind,
    quantity: i64,
    /// Opens the lot (sets its opened time and shortens its life) if it was not opened.
    open_for_hours: Option<u32>,
    /// Its place in the operation (FEFO order for a consumption), from 0.
    line: i64,
}

/// The operation `reference` already did, if any.
pub async fn done(db: &Db, reference: &str) -> Result<Option<Done>> {
    let mut tx = db.begin().await?;
    let found = done_in(&mut tx, reference).await?;
    tx.commit().await?;
    Ok(found)
}

async fn done_in(tx: &mut Tx, reference: &str) -> Result<Option<Done>> {
    let mut select = Select::from(tx.dialect(), "stock_operations", OPERATION).keyed("reference");
    select.sql().push(" WHERE reference = ").text(reference);
    let Some(row) = select.fetch_in(tx).await?.into_iter().next() else {
        return Ok(None);
    };
    let head = OperationHead {
        reference: row.text("reference")?,
        kind: row.text("kind")?,
        material: row.text("material")?,
        branch: row.text("branch")?,
        quantity: row.int("quantity")?,
    };
    let at_ms = row.int("at_ms")?;
    let mut select = Select::from(tx.dialect(), "stock_movements", MOVEMENT).keyed("seq");
    select
        .sql()
        .push(" WHERE reference = ")
        .text(reference)
        .push(" ORDER BY line");
    let movements = select
        .fetch_in(tx)
        .await?
        .iter()
        .map(movement_of)
        .collect::<Result<Vec<_>>>()?;
    let mut moved = Vec::new();
    for (lot_id, m) in movements {
        let mut select = Select::from(tx.dialect(), "stock_lots", LOT).keyed("id");
        select.sql().push(" WHERE id = ").text(&lot_id);
        if let Some(row) = select.fetch_in(tx).await?.first() {
            moved.push((lot_of(row)?, m));
        }
    }
    Ok(Some(Done { head, at_ms, moved }))
}

/// Who does an operation, when, and its audit row.
pub struct By<'a> {
    /// Who.
    pub actor: &'a str,
    /// When.
    pub now_ms: i64,
    /// A note on every movement.
    pub note: Option<&'a str>,
    /// The audit row.
    pub audit: Sql,
}

async fn claim(tx: &mut Tx, head: &OperationHead, by: &By<'_>) -> Result<()> {
    let mut sql = tx.sql();
    sql.push("INSERT INTO stock_operations (reference, kind, material, branch, quantity, actor, at_ms) VALUES (")
        .text(&head.reference)
        .push(", ")
        .text(&head.kind)
        .push(", ")
        .text(&head.material)
        .push(", ")
        .text(&head.branch)
        .push(", ")
        .int(head.quantity)
        .push(", ")
        .text(by.actor)
        .push(", ")
        .int(by.now_ms)
        .push(")");
    tx.execute(sql).await?;
    Ok(())
}

fn locked(select: &mut Select, d: Dialect) {
    if d == Dialect::Postgres {
        select.sql().push(" FOR UPDATE");
    }
}

async fn apply(
    tx: &mut Tx,
    m: Move<'_>,
    head: &OperationHead,
    by: &By<'_>,
) -> Result<(Lot, Movement)> {
    let after = m.lot.on_hand + m.quantity;
    if after < 0 {
        return Err(short_of(
            &head.material,
            &head.branch,
            m.lot.on_hand,
            -m.quantity,
        ));
    }
    let seq = m.lot.movements + 1;
    let mut sql = tx.sql();
    sql.push("INSERT INTO stock_movements (lot_id, seq, kind, quantity, on_hand, reference, line, note, actor, at_ms) VALUES (")
        .text(&m.lot.id)
        .push(", ")
        .int(seq)
        .push(", ")
        .text(m.kind.as_str())
        .push(", ")
        .int(m.quantity)
        .push(", ")
        .int(after)
        .push(", ")
        .text(&head.reference)
        .push(", ")
        .int(m.line)
        .push(", ")
        .opt_text(by.note)
        .push(", ")
        .text(by.actor)
        .push(", ")
        .int(by.now_ms)
        .push(")");
    tx.execute(sql).await?;
    let mut lot = m.lot.clone();
    let mut sql = tx.sql();
    sql.push("UPDATE stock_lots SET on_hand = ")
        .int(after)
        .push(", movements = ")
        .int(seq);
    if let (Some(hours), None) = (m.open_for_hours, &lot.opened_at) {
        let usable = erpos_design::stock::end_of_day_ms(&lot.expires_on)
            .unwrap_or(by.now_ms)
            .min(by.now_ms + i64::from(hours) * 3_600_000);
        sql.push(", opened_ms = ")
            .int(by.now_ms)
            .push(", usable_ms = ")
            .int(usable);
        lot.opened_at = Some(instant(by.now_ms));
        lot.usable_until = instant(usable);
    }
    sql.push(" WHERE id = ").text(&lot.id);
    tx.execute(sql).await?;
    lot.on_hand = after;
    lot.movements = seq;
    Ok((
        lot,
        Movement {
            seq,
            kind: m.kind,
            quantity: m.quantity,
            on_hand: after,
            reference: head.reference.clone(),
            note: by.note.map(str::to_owned),
            actor: by.actor.to_owned(),
            at: instant(by.now_ms),
        },
    ))
}

fn short_of(material: &str, branch: &str, available: i64, wanted: i64) -> KernelError {
    KernelError::Conflict {
        code: ErrorCode::InsufficientStock,
        message: format!(
            "{available} of '{material}' usable in branch '{branch}': {wanted} cannot be taken; nothing was moved"
        ),
        details: vec![erpos_design::Issue::new(
            "/quantity",
            format!("at most {available} here"),
        )],
    }
}

/// Answers `Some(done)` when the reference is taken (a retry), else claims it.
async fn begin_operation(db: &Db, head: &OperationHead, by: &By<'_>) -> Result<(Tx, Option<Done>)> {
    let mut tx = db.begin().await?;
    if let Some(first) = done_in(&mut tx, &head.reference).await? {
        return Ok((tx, Some(first)));
    }
    claim(&mut tx, head, by).await?;
    Ok((tx, None))
}

/// A receipt into a lot.
pub struct Receipt<'a> {
    /// The supplier's lot number.
    pub lot_number: &'a str,
    /// Its expiry date (YYYY-MM-DD).
    pub expires_on: &'a str,
    /// The end of that day.
    pub expires_ms: i64,
}

/// Receives `head.quantity` of the material into the branch's lot `r` (created on its
/// first receipt); answers what was done and whether it is new.
pub async fn receive(
    db: &Db,
    head: OperationHead,
    r: Receipt<'_>,
    by: By<'_>,
) -> Result<(Done, bool)> {
    let (mut tx, first) = begin_operation(db, &head, &by).await?;
    if let Some(first) = first {
        return Ok((first, false));
    }
    let d = tx.dialect();
    let mut select = Select::from(d, "stock_lots", LOT).keyed("id");
    select
        .sql()
        .push(" WHERE material = ")
        .text(&head.material)
        .push(" AND branch = ")
        .text(&head.branch)
        .push(" AND lot_number = ")
        .text(r.lot_number);
    locked(&mut select, d);
    let lot = match select.fetch_in(&mut tx).await?.first() {
        Some(row) => lot_of(row)?,
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            let mut sql = tx.sql();
            sql.push("INSERT INTO stock_lots (id, material, branch, lot_number, expires_on, expires_ms, opened_ms, usable_ms, on_hand, movements, created_ms) VALUES (")
                .text(&id).push(", ").text(&head.material).push(", ").text(&head.branch)
                .push(", ").text(r.lot_number).push(", ").text(r.expires_on)
                .push(", ").int(r.expires_ms).push(", NULL, ").int(r.expires_ms)
                .push(", 0, 0, ").int(by.now_ms).push(")");
            tx.execute(sql).await?;
            Lot {
                id,
                material: head.material.clone(),
                branch: head.branch.clone(),
                lot_number: r.lot_number.to_owned(),
                expires_on: r.expires_on.to_owned(),
                opened_at: None,
                usable_until: instant(r.expires_ms),
                on_hand: 0,
                movements: 0,
            }
        }
    };
    if lot.expires_on != r.expires_on {
        return Err(KernelError::Invalid(vec![erpos_design::Issue::new(
            "/expires_on",
            format!(
                "lot {} of '{}' in branch '{}' expires on {}",
                lot.lot_number, head.material, head.branch, lot.expires_on
            ),
        )]));
    }
    let moved = apply(
        &mut tx,
        Move {
            lot: &lot,
            kind: MovementKind::In,
            quantity: head.quantity,
            open_for_hours: None,
            line: 0,
        },
        &head,
        &by,
    )
    .await?;
    finish(tx, head, by, vec![moved]).await
}

async fn finish(
    mut tx: Tx,
    head: OperationHead,
    by: By<'_>,
    moved: Vec<(Lot, Movement)>,
) -> Result<(Done, bool)> {
    let done = record(&mut tx, head, by, moved).await?;
    tx.commit().await?;
    Ok(done)
}

/// Writes an operation's audit row and answers it done (new): the end of every operation,
/// in its caller's transaction.
async fn record(
    tx: &mut Tx,
    head: OperationHead,
    by: By<'_>,
    moved: Vec<(Lot, Movement)>,
) -> Result<(Done, bool)> {
    tx.execute(by.audit).await?;
    Ok((
        Done {
            head,
            at_ms: by.now_ms,
            moved,
        },
        true,
    ))
}

/// Consumes `head.quantity` of the material in its branch, first expiring first: the
/// usable lots by the instant they stop being usable, each taken until the quantity is
/// met (opening those of a material with a life after opening). Less than that usable is
/// 409 `insufficient_stock`, and nothing moves.
pub async fn consume(
    db: &Db,
    head: OperationHead,
    open_for_hours: Option<u32>,
    by: By<'_>,
) -> Result<(Done, bool)> {
    let mut tx = db.begin().await?;
    let done = consume_in(&mut tx, head, open_for_hours, by).await?;
    if done.1 {
        tx.commit().await?;
    }
    Ok(done)
}

/// [`consume`] inside `tx` (an automatic step's, which commits it with what else the
/// step writes): answers what was done and whether it is new; a reference done before
/// answers its first result and moves nothing.
pub async fn consume_in(
    tx: &mut Tx,
    head: OperationHead,
    open_for_hours: Option<u32>,
    by: By<'_>,
) -> Result<(Done, bool)> {
    if let Some(first) = done_in(tx, &head.reference).await? {
        return Ok((first, false));
    }
    claim(tx, &head, &by).await?;
    let d = tx.dialect();
    let mut select = Select::from(d, "stock_lots", LOT).keyed("id");
    select
        .sql()
        .push(" WHERE material = ")
        .text(&head.material)
        .push(" AND branch = ")
        .text(&head.branch)
        .push(" AND on_hand > 0 AND usable_ms > ")
        .int(by.now_ms)
        .push(" ORDER BY usable_ms, id");
    locked(&mut select, d);
    let lots = select
        .fetch_in(tx)
        .await?
        .iter()
        .map(lot_of)
        .collect::<Result<Vec<_>>>()?;
    let available: i64 = lots.iter().map(|l| l.on_hand).sum();
    if available < head.quantity {
        return Err(short_of(
            &head.material,
            &head.branch,
            available,
            head.quantity,
        ));
    }
    let mut left = head.quantity;
    let mut moved = Vec::new();
    for lot in &lots {
        if left == 0 {
            break;
        }
        let take = left.min(lot.on_hand);
        left -= take;
        moved.push(
            apply(
                tx,
                Move {
                    lot,
                    kind: MovementKind::Out,
                    quantity: -take,
                    open_for_hours,
                    line: moved.len() as i64,
                },
                &head,
                &by,
            )
            .await?,
        );
    }
    record(tx, head, by, moved).await
}

/// Moves lot `lot_id` by `quantity` (signed) as an adjustment or a write-off.
pub async fn correct(
    db: &Db,
    head: OperationHead,
    lot_id: &str,
    kind: MovementKind,
    quantity: i64,
    by: By<'_>,
) -> Result<(Done, bool)> {
    let (mut tx, first) = begin_operation(db, &head, &by).await?;
    if let Some(first) = first {
        return Ok((first, false));
    }
    let d = tx.dialect();
    let mut select = Select::from(d, "stock_lots", LOT).keyed("id");
    select.sql().push(" WHERE id = ").text(lot_id);
    locked(&mut select, d);
    let Some(row) = select.fetch_in(&mut tx).await?.into_iter().next() else {
        return Err(KernelError::NotFound(format!("lot {lot_id}")));
    };
    let lot = lot_of(&row)?;
    let moved = apply(
        &mut tx,
        Move {
            lot: &lot,
            kind,
            quantity,
            open_for_hours: None,
            line: 0,
        },
        &head,
        &by,
    )
    .await?;
    finish(tx, head, by, vec![moved]).await
}

/// Marks lot `id` opened at `now_ms` (its life shortened to `hours`), unless it was; the
/// audit row goes with it.
pub async fn open(db: &Db, id: &str, hours: Option<u32>, now_ms: i64, audit: Sql) -> Result<()> {
    let Some(lot) = lot(db, id).await? else {
        return Err(KernelError::NotFound(format!("lot {id}")));
    };
    if lot.opened_at.is_some() {
        return Ok(());
    }
    let expires = erpos_design::stock::end_of_day_ms(&lot.expires_on).unwrap_or(now_ms);
    let usable = match hours {
        Some(h) => expires.min(now_ms + i64::from(h) * 3_600_000),
        None => expires,
    };
    let mut sql = Sql::new(db.dialect());
    sql.push("UPDATE stock_lots SET opened_ms = ")
        .int(now_ms)
        .push(", usable_ms = ")
        .int(usable)
        .push(" WHERE id = ")
        .text(id)
        .push(" AND opened_ms IS NULL");
    db.write_atomically(vec![sql, audit]).await?;
    Ok(())
}
