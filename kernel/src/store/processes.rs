//! The `processes` and `process_history` tables: one row per PCB with its searchable
//! columns, and every change of every process (numbered globally by `gseq`).
//!
//! The process runtime (`engine`) decides what is written and when; this module only says
//! how: the group-commit writer's multi-row INSERTs (chunks of a fixed size, so the
//! statement text and its prepared form repeat), and the reads of the runtime's load, a
//! process's history and the replay of changes. A snapshot (`pcb`) that cannot be read
//! back is reported to the caller, which sets it aside; every other column that does not
//! decode is an error naming it. This module must never decide a transition.

use std::collections::BTreeMap;

use erpos_design::{Dialect, FieldType};
use serde_json::Value as Json;

use super::{Decoded, Loaded, Select};
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::scheduler::{HistoryEntry, Pcb, Pid, ProcessState};
use crate::sql::Sql;

/// Rows per multi-row INSERT: fixed, so the statement text (and its prepared form) repeats.
pub const CHUNK: usize = 32;

/// The stored name of a state.
pub fn state_name(s: ProcessState) -> &'static str {
    use ProcessState as S;
    match s {
        S::New => "NEW",
        S::Ready => "READY",
        S::Running => "RUNNING",
        S::Waiting => "WAITING",
        S::Suspended => "SUSPENDED",
        S::Terminated => "TERMINATED",
    }
}

/// The state a stored name stands for (None for a name no version writes).
pub fn parse_state(name: &str) -> Option<ProcessState> {
    use ProcessState as S;
    Some(match name {
        "NEW" => S::New,
        "READY" => S::Ready,
        "RUNNING" => S::Running,
        "WAITING" => S::Waiting,
        "SUSPENDED" => S::Suspended,
        "TERMINATED" => S::Terminated,
        _ => return None,
    })
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| KernelError::Corrupt(e.to_string()))
}

/// The statements that store history entries (with their global sequence numbers) and the
/// PCB row each process is left with, as multi-row INSERTs of [`CHUNK`] rows. Each snapshot
/// is serialized once: for its history row and, if it is the process's latest, for the
/// process row too. `now_ms` stamps the process rows (`updated_at`).
pub fn write_sql(d: Dialect, entries: &[(u64, &HistoryEntry)], now_ms: i64) -> Result<Vec<Sql>> {
    let int = d.param_cast(FieldType::Integer);
    let jsonb = d.param_cast(FieldType::Json);
    let texts: Vec<String> = entries
        .iter()
        .map(|(_, e)| json_text(&e.after))
        .collect::<Result<_>>()?;
    let mut statements = Vec::new();
    for (chunk_no, chunk) in entries.chunks(CHUNK).enumerate() {
        let mut sql = Sql::new(d);
        sql.push("INSERT INTO process_history (pid, seq, at_ms, actor, from_state, to_state, reason, pcb, gseq) VALUES ");
        for (i, (gseq, e)) in chunk.iter().enumerate() {
            let text = &texts[chunk_no * CHUNK + i];
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.param(Some(e.pid.to_string()), int)
                .push(", ")
                .param(Some(e.seq.to_string()), int);
            sql.push(", ")
                .param(Some(e.at_ms.to_string()), int)
                .push(", ")
                .text(&e.by);
            sql.push(", ")
                .text(state_name(e.from))
                .push(", ")
                .text(state_name(e.to))
                .push(", ")
                .text(&e.reason);
            sql.push(", ")
                .param(Some(text.clone()), jsonb)
                .push(", ")
                .param(Some(gseq.to_string()), int)
                .push(")");
        }
        statements.push(sql);
    }
    let mut latest: BTreeMap<Pid, (&Pcb, &str)> = BTreeMap::new();
    for ((_, e), text) in entries.iter().zip(&texts) {
        latest.insert(e.pid, (&e.after, text));
    }
    let latest: Vec<(Pid, (&Pcb, &str))> = latest.into_iter().collect();
    let now = now_ms.to_string();
    for chunk in latest.chunks(CHUNK) {
        let mut sql = Sql::new(d);
        sql.push("INSERT INTO processes (pid, service, version, state, step, operator, wait_kind, parent, record_item, record_id, pcb, updated_at) VALUES ");
        for (i, (pid, (pcb, text))) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.param(Some(pid.to_string()), int)
                .push(", ")
                .text(&*pcb.service);
            sql.push(", ")
                .param(Some(pcb.version.to_string()), int)
                .push(", ")
                .text(state_name(pcb.state));
            sql.push(", ")
                .param(pcb.step.as_deref().map(str::to_owned), None)
                .push(", ")
                .param(pcb.operator.as_deref().map(str::to_owned), None);
            let wait_kind = pcb
                .wait
                .as_ref()
                .and_then(|w| serde_json::to_value(w).ok())
                .and_then(|v| v.get("kind").and_then(Json::as_str).map(str::to_owned));
            sql.push(", ")
                .param(wait_kind, None)
                .push(", ")
                .param(pcb.parent.map(|p| p.to_string()), int);
            sql.push(", ")
                .param(pcb.record.as_ref().map(|r| r.0.clone()), None)
                .push(", ")
                .param(pcb.record.as_ref().map(|r| r.1.clone()), None);
            sql.push(", ")
                .param(Some((*text).to_owned()), jsonb)
                .push(", ")
                .param(Some(now.clone()), int)
                .push(")");
        }
        sql.push(" ON CONFLICT (pid) DO UPDATE SET state = excluded.state, step = excluded.step, operator = excluded.operator, ");
        sql.push(
            "wait_kind = excluded.wait_kind, pcb = excluded.pcb, updated_at = excluded.updated_at",
        );
        statements.push(sql);
    }
    Ok(statements)
}

/// Every stored PCB, by pid, for the runtime's load: each with its pid as stored and the
/// PCB, or why it cannot be read back (the runtime sets it aside and keeps its number).
pub async fn pcbs(db: &Db) -> Result<Vec<Loaded<(Pid, Pcb)>>> {
    let mut select = Select::from(db.dialect(), "processes", &["pid", "pcb"]).keyed("pid");
    select.sql().push(" ORDER BY pid");
    Ok(select
        .fetch(db)
        .await?
        .into_iter()
        .map(|row| Loaded {
            key: row.key().unwrap_or("?").to_owned(),
            value: row
                .number::<Pid>("pid")
                .and_then(|pid| Ok((pid, row.json::<Pcb>("pcb")?))),
        })
        .collect())
}

/// The number of the last change in storage (0 when there is none): where numbering
/// resumes after a start or a failed batch.
pub async fn last_change(db: &Db) -> Result<u64> {
    let mut sql = Sql::new(db.dialect());
    sql.push("SELECT CAST(COALESCE(MAX(gseq), 0) AS TEXT) FROM process_history");
    let rows = Select::raw("process_history", &["max_gseq"], sql)
        .fetch(db)
        .await?;
    match rows.first() {
        Some(row) => Ok(row.number("max_gseq")?),
        None => Ok(0),
    }
}

/// One stored history entry of a process, as `GET /processes/{id}` shows it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Its number in the process.
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub by: String,
    /// The state before, as stored.
    pub from: String,
    /// The state after, as stored.
    pub to: String,
    /// Why.
    pub reason: String,
    /// The PCB after the change, or why it cannot be read back (the entry is then shown
    /// as unreadable; the rest of the history still answers).
    pub pcb: Decoded<Json>,
}

const HISTORY: &[&str] = &[
    "seq",
    "at_ms",
    "actor",
    "from_state",
    "to_state",
    "reason",
    "pcb",
];

/// The stored history of a process, oldest first.
pub async fn history(db: &Db, pid: Pid) -> Result<Vec<StoredEntry>> {
    let d = db.dialect();
    let mut select = Select::from(d, "process_history", HISTORY).keyed("seq");
    select
        .sql()
        .push(" WHERE pid = ")
        .param(Some(pid.to_string()), d.param_cast(FieldType::Integer))
        .push(" ORDER BY seq");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredEntry {
                seq: r.number("seq")?,
                at: r.instant("at_ms")?,
                by: r.text("actor")?,
                from: r.text("from_state")?,
                to: r.text("to_state")?,
                reason: r.text("reason")?,
                pcb: r.json("pcb"),
            })
        })
        .collect()
}

const CHANGES: &[&str] = &[
    "gseq",
    "pid",
    "seq",
    "at_ms",
    "actor",
    "from_state",
    "to_state",
    "reason",
    "pcb",
];

/// Stored changes with a global number in `(after, upto]`, in order: at most `limit`, only
/// of the processes `pids` when given (the filter is in the query, so what a caller may
/// not see is never read). Each is the change, or why its row cannot be read back (the
/// caller leaves it out of a replay rather than ending every reconnecting client's
/// stream).
pub async fn changes(
    db: &Db,
    after: u64,
    upto: u64,
    pids: Option<&[Pid]>,
    limit: Option<usize>,
) -> Result<Vec<Decoded<(u64, HistoryEntry)>>> {
    let d = db.dialect();
    let int = d.param_cast(FieldType::Integer);
    let mut select = Select::from(d, "process_history", CHANGES).keyed("gseq");
    let sql = select.sql();
    sql.push(" WHERE gseq > ")
        .param(Some(after.to_string()), int);
    sql.push(" AND gseq <= ").param(Some(upto.to_string()), int);
    if let Some(pids) = pids {
        if pids.is_empty() {
            return Ok(Vec::new());
        }
        sql.push(" AND pid IN (");
        for (i, pid) in pids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.param(Some(pid.to_string()), int);
        }
        sql.push(")");
    }
    sql.push(" ORDER BY gseq");
    if let Some(limit) = limit {
        sql.push(&format!(" LIMIT {limit}"));
    }
    Ok(select
        .fetch(db)
        .await?
        .iter()
        .map(|r| {
            let state = |column| r.parsed(column, "a process state", parse_state);
            Ok((
                r.number("gseq")?,
                HistoryEntry {
                    pid: r.number("pid")?,
                    seq: r.number("seq")?,
                    at_ms: r.int("at_ms")?,
                    by: r.text("actor")?,
                    from: state("from_state")?,
                    to: state("to_state")?,
                    reason: r.text("reason")?,
                    notices: Vec::new(),
                    from_step: None,
                    after: r.json("pcb")?,
                },
            ))
        })
        .collect())
}
