//! The `accounts` and `ledger_entries` tables. An entry is booked in one transaction that
//! reads the account (locked on PostgreSQL), refuses a balance that would go negative,
//! writes the entry with the balance after it and moves the account's balance and count;
//! the CHECK on `balance_cents` and the unique `(account_id, reference)` hold it even
//! against a writer that skipped this module. `app::ledger` validates; this module stores.

use erpos_design::ledger::{Account, Entry, EntryKind, format_cents};

use super::{Select, StoredRow};
use crate::db::{Db, Tx};
use crate::error::{ErrorCode, KernelError, Result};
use crate::sql::Sql;

const ACCOUNT: &[&str] = &[
    "id",
    "holder",
    "label",
    "balance_cents",
    "entries",
    "created_ms",
    "updated_ms",
];
const ENTRY: &[&str] = &[
    "seq",
    "kind",
    "amount_cents",
    "balance_cents",
    "reference",
    "note",
    "actor",
    "at_ms",
];

fn account_of(r: &StoredRow) -> Result<Account> {
    Ok(Account {
        id: r.text("id")?,
        holder: r.text("holder")?,
        label: r.opt_text("label")?,
        balance: format_cents(r.int("balance_cents")?),
        entries: r.int("entries")?,
        created_at: r.instant("created_ms")?,
        updated_at: r.instant("updated_ms")?,
    })
}

fn entry_of(r: &StoredRow) -> Result<Entry> {
    let kind = r.parsed("kind", "an entry kind", EntryKind::parse)?;
    Ok(Entry {
        seq: r.int("seq")?,
        kind,
        amount: format_cents(r.int("amount_cents")?),
        balance: format_cents(r.int("balance_cents")?),
        reference: r.text("reference")?,
        note: r.opt_text("note")?,
        actor: r.text("actor")?,
        at: r.instant("at_ms")?,
    })
}

/// The INSERT of a new account with a zero balance.
pub fn open_sql(db: &Db, id: &str, holder: &str, label: Option<&str>, now_ms: i64) -> Sql {
    let mut sql = Sql::new(db.dialect());
    sql.push("INSERT INTO accounts (id, holder, label, balance_cents, entries, created_ms, updated_ms) VALUES (")
        .text(id)
        .push(", ")
        .text(holder)
        .push(", ")
        .opt_text(label)
        .push(", 0, 0, ")
        .int(now_ms)
        .push(", ")
        .int(now_ms)
        .push(")");
    sql
}

/// Account `id`, if it exists.
pub async fn account(db: &Db, id: &str) -> Result<Option<Account>> {
    let mut select = Select::from(db.dialect(), "accounts", ACCOUNT).keyed("id");
    select.sql().push(" WHERE id = ").text(id);
    select
        .fetch_one(db)
        .await?
        .as_ref()
        .map(account_of)
        .transpose()
}

/// The accounts of `holder` (or every account) after the id `after`, oldest first (ids
/// are UUIDv7: their order is the order of opening), at most `limit`.
pub async fn accounts(
    db: &Db,
    holder: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Account>> {
    Select::from(db.dialect(), "accounts", ACCOUNT)
        .keyed("id")
        .holder_page(holder, after, limit)
        .fetch(db)
        .await?
        .iter()
        .map(account_of)
        .collect()
}

/// The entries of account `id` after `after` (a seq), in order, at most `limit`.
pub async fn entries(db: &Db, id: &str, after: i64, limit: usize) -> Result<Vec<Entry>> {
    let mut select = Select::from(db.dialect(), "ledger_entries", ENTRY).keyed("seq");
    select
        .sql()
        .push(" WHERE account_id = ")
        .text(id)
        .push(" AND seq > ")
        .int(after)
        .push(" ORDER BY seq LIMIT ")
        .push(&limit.to_string());
    select.fetch(db).await?.iter().map(entry_of).collect()
}

async fn by_reference(tx: &mut Tx, id: &str, reference: &str) -> Result<Option<Entry>> {
    let mut select = Select::from(tx.dialect(), "ledger_entries", ENTRY).keyed("seq");
    select
        .sql()
        .push(" WHERE account_id = ")
        .text(id)
        .push(" AND reference = ")
        .text(reference);
    select.fetch_in(tx).await?.first().map(entry_of).transpose()
}

/// One entry to book.
pub struct Posting<'a> {
    /// The account.
    pub account: &'a str,
    /// What it is.
    pub kind: EntryKind,
    /// The change to the balance, signed, in cents.
    pub cents: i64,
    /// The caller's reference.
    pub reference: &'a str,
    /// A note.
    pub note: Option<&'a str>,
    /// Who.
    pub actor: &'a str,
    /// When.
    pub now_ms: i64,
    /// The audit row.
    pub audit: Sql,
}

/// Books `p`, or answers the entry its reference already booked (`false`: not new). A
/// balance that would go negative is 409 `insufficient_balance`, and nothing changes.
pub async fn post(db: &Db, p: Posting<'_>) -> Result<(Entry, bool)> {
    let mut tx = db.begin().await?;
    let posted = post_in(&mut tx, p).await?;
    tx.commit().await?;
    Ok(posted)
}

/// [`post`] inside `tx` (a charge's, which commits the entry with the charge): the caller
/// commits; an error leaves `tx` to be dropped.
pub async fn post_in(tx: &mut Tx, p: Posting<'_>) -> Result<(Entry, bool)> {
    if let Some(first) = by_reference(tx, p.account, p.reference).await? {
        return Ok((first, false));
    }
    let d = tx.dialect();
    let mut select = Select::from(d, "accounts", ACCOUNT).keyed("id");
    select.sql().push(" WHERE id = ").text(p.account);
    if d == erpos_design::Dialect::Postgres {
        select.sql().push(" FOR UPDATE");
    }
    let Some(row) = select.fetch_in(tx).await?.into_iter().next() else {
        return Err(KernelError::NotFound(format!("account {}", p.account)));
    };
    let balance = row.int("balance_cents")?;
    let seq = row.int("entries")? + 1;
    let after = balance + p.cents;
    if after < 0 {
        return Err(KernelError::Conflict {
            code: ErrorCode::InsufficientBalance,
            message: format!(
                "the balance is {}: a {} of {} would leave it at {}",
                format_cents(balance),
                p.kind.as_str(),
                format_cents(-p.cents),
                format_cents(after)
            ),
            details: vec![erpos_design::Issue::new(
                "/amount",
                format!("at most {} here", format_cents(balance)),
            )],
        });
    }
    let mut sql = tx.sql();
    sql.push("INSERT INTO ledger_entries (account_id, seq, kind, amount_cents, balance_cents, reference, note, actor, at_ms) VALUES (")
        .text(p.account)
        .push(", ")
        .int(seq)
        .push(", ")
        .text(p.kind.as_str())
        .push(", ")
        .int(p.cents)
        .push(", ")
        .int(after)
        .push(", ")
        .text(p.reference)
        .push(", ")
        .opt_text(p.note)
        .push(", ")
        .text(p.actor)
        .push(", ")
        .int(p.now_ms)
        .push(")");
    tx.execute(sql).await?;
    let mut sql = tx.sql();
    sql.push("UPDATE accounts SET balance_cents = ")
        .int(after)
        .push(", entries = ")
        .int(seq)
        .push(", updated_ms = ")
        .int(p.now_ms)
        .push(" WHERE id = ")
        .text(p.account);
    tx.execute(sql).await?;
    tx.execute(p.audit).await?;
    Ok((
        Entry {
            seq,
            kind: p.kind,
            amount: format_cents(p.cents),
            balance: format_cents(after),
            reference: p.reference.to_owned(),
            note: p.note.map(str::to_owned),
            actor: p.actor.to_owned(),
            at: chrono::DateTime::from_timestamp_millis(p.now_ms)
                .map(|t| erpos_design::value::format_datetime(&t))
                .unwrap_or_default(),
        },
        true,
    ))
}

/// The entry `reference` booked on account `id`, if any (after a retry raced the first).
pub async fn entry_by_reference(db: &Db, id: &str, reference: &str) -> Result<Option<Entry>> {
    let mut tx = db.begin().await?;
    let found = by_reference(&mut tx, id, reference).await?;
    tx.commit().await?;
    Ok(found)
}
