//! Reads the rows statistics are computed from: the history of every process that may have
//! been alive in a period, the processes open now, and the operators' roles. Only reads;
//! this module must never write, and it decides nothing (that is `stats::compute`).
//!
//! # Which history is read
//! A visit that was entered before `from` and left inside the period counts in full, so
//! its entering change is needed although it lies before the period. The query therefore
//! takes every change before `to` of every process that was not yet terminated at `from`:
//! those not terminated now, and those whose row was last written at or after `from` (a
//! terminated process's row is last written when it terminates, so `updated_at` is just
//! after its termination). That is a superset of the processes alive in the period
//! (`compute` applies the exact rules), read in one statement, with a process's history
//! read whole or not at all. Long-lived processes bring their older changes along; a period
//! far in the past still scans the history table, which has no index on `at_ms` yet.
//!
//! The three reads are separate statements: a transition committed between them can show
//! in the backlog but not yet in the history. Statistics are a view of a moving system;
//! the next request sees it whole.

use std::collections::{BTreeMap, BTreeSet};

use erpos_design::FieldType;

use super::{Change, Period, Snapshot};
use crate::db::Db;
use crate::error::Result;
use crate::scheduler::{Operator, ProcessState};
use crate::store::Select;
use crate::store::processes::state_name;

/// Every change before `period.to_ms` of every process (of `service`, when given) that may
/// have been alive in the period, ordered by process and position.
pub async fn changes(db: &Db, period: Period, service: Option<&str>) -> Result<Vec<Change>> {
    let d = db.dialect();
    let int = d.param_cast(FieldType::Integer);
    let mut select = Select::from(
        d,
        "process_history",
        &["pid", "seq", "at_ms", "reason", "pcb"],
    )
    .keyed("seq");
    let sql = select.sql();
    sql.push(" WHERE at_ms < ")
        .param(Some(period.to_ms.to_string()), int);
    sql.push(" AND pid IN (SELECT pid FROM processes WHERE (state <> ")
        .text(state_name(ProcessState::Terminated))
        .push(" OR updated_at >= ")
        .param(Some(period.from_ms.to_string()), int)
        .push(")");
    if let Some(service) = service {
        sql.push(" AND service = ").text(service);
    }
    sql.push(") ORDER BY pid, seq");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|row| {
            Ok(Change {
                pid: row.number("pid")?,
                seq: row.number("seq")?,
                at_ms: row.int("at_ms")?,
                reason: row.text("reason")?,
                after: row.json::<Snapshot>("pcb")?,
            })
        })
        .collect()
}

/// The processes (of `service`, when given) not terminated now.
pub async fn open(db: &Db, service: Option<&str>) -> Result<Vec<Snapshot>> {
    let mut select = Select::from(db.dialect(), "processes", &["pid", "pcb"]).keyed("pid");
    let sql = select.sql();
    sql.push(" WHERE state <> ")
        .text(state_name(ProcessState::Terminated));
    if let Some(service) = service {
        sql.push(" AND service = ").text(service);
    }
    sql.push(" ORDER BY pid");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|row| Ok(row.json::<Snapshot>("pcb")?))
        .collect()
}

/// Each operator's roles, from the users' definitions as they are now.
pub async fn roles(db: &Db) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut select = Select::from(db.dialect(), "users", &["id", "definition"]).keyed("id");
    select.sql().push(" ORDER BY id");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|row| {
            let op: Operator = row.json("definition")?;
            Ok((op.id, op.roles))
        })
        .collect()
}
