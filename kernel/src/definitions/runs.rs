//! Migration runs: a migration too large for one transaction is worked in batches, each
//! committed together with its cursor in `migration_runs`, so that a crash resumes where
//! the last batch ended and a progress bar can show how far it is. This module keeps the
//! run's row; what a batch does is in `batches`.

use erpos_design::migration::ApplyRequest;
use serde::{Deserialize, Serialize};

use crate::db::{Db, Tx};
use crate::error::{KernelError, Result};
use crate::sql::Sql;
use crate::store::{Select, StoredRow};

/// Where a run is. A run converts values (`converting`), then switches to the new version
/// in one transaction and rebuilds search documents (`searching`) and computed fields
/// (`recomputing`) in batches, until it is `done`; or it `failed` before the switch and the
/// table is as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Retyped values are being converted into their new columns, batch by batch; the
    /// version in force is still the old one.
    Converting,
    /// The new version is in force; search documents are being rebuilt.
    Searching,
    /// The new version is in force; computed fields are being computed anew.
    Recomputing,
    /// Finished: the new version is in force and every record follows it.
    Done,
    /// Stopped before the switch (see `error`): nothing changed, the change is still
    /// pending.
    Failed,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Converting => "converting",
            RunState::Searching => "searching",
            RunState::Recomputing => "recomputing",
            RunState::Done => "done",
            RunState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            RunState::Converting,
            RunState::Searching,
            RunState::Recomputing,
            RunState::Done,
            RunState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the run still holds its DataItem (records read-only, definitions waiting).
    pub fn active(self) -> bool {
        !matches!(self, RunState::Done | RunState::Failed)
    }
}

/// How far a DataItem's migration is: what `GET …/migration/progress` shows, and what a
/// large migration's `POST …/migration` answers (202) when it starts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MigrationProgress {
    /// The DataItem migrated.
    pub item: String,
    /// The version being applied.
    pub version: u32,
    /// Where the run is.
    pub state: RunState,
    /// Rows worked so far, over every pass (conversion, search, computed fields).
    pub done: u64,
    /// Rows the whole run works (each table's rows once per pass it needs).
    pub total: u64,
    /// `done` of `total`, in percent (one decimal).
    pub percent: f64,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When the last batch was committed.
    pub updated_at: String,
    /// When it ended, done or failed.
    pub finished_at: Option<String>,
    /// Why it failed (or, while it is active, why its last batch did; a restart resumes).
    pub error: Option<String>,
}

/// A run as stored: its progress and what it needs to go on.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub progress: MigrationProgress,
    /// Which pass of the current state is being worked (a conversion table, a search
    /// table, an item to recompute), counted from 0.
    pub pass: usize,
    /// The last id the current pass has done; None at its start.
    pub after_id: Option<String>,
    /// The plan as decided when the run started (kept for the record: the switch plans and
    /// decides again, against the catalog then in force).
    pub plan: serde_json::Value,
    /// What the analyst sent (confirmation and resolutions): the switch decides again.
    pub request: ApplyRequest,
    /// Who started it: the switch's audit row names them.
    pub actor: String,
    /// What the switch left to do in batches.
    pub after_switch: AfterSwitch,
}

/// What a run does after its switch, in batches: decided by the switch, kept so that a
/// crash resumes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AfterSwitch {
    /// The (item, table) pairs whose search documents are rebuilt.
    pub searches: Vec<(String, String)>,
    /// The items whose computed fields are computed anew.
    pub recompute: Vec<String>,
}

const COLUMNS: &[&str] = &[
    "item",
    "version",
    "state",
    "pass",
    "after_id",
    "done",
    "total",
    "plan",
    "request",
    "actor",
    "after_switch",
    "started_at",
    "updated_at",
    "finished_at",
    "error",
];

fn json_of<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| KernelError::Corrupt(e.to_string()))
}

/// `done` of `total` in percent, to one decimal (100 when there is nothing to do).
pub(crate) fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        return 100.0;
    }
    let tenths = (done.min(total) as f64 * 1000.0 / total as f64).floor();
    tenths / 10.0
}

fn decode(row: &StoredRow) -> Result<Run> {
    let state_text = row.text("state")?;
    let state = RunState::parse(&state_text)
        .ok_or_else(|| row.undecodable("state", format!("'{state_text}' is no run state")))?;
    let done = row.int("done")?.max(0) as u64;
    let total = row.int("total")?.max(0) as u64;
    Ok(Run {
        progress: MigrationProgress {
            item: row.text("item")?,
            version: u32::try_from(row.int("version")?).unwrap_or_default(),
            state,
            done,
            total,
            percent: percent(done, total),
            started_at: row.instant("started_at")?,
            updated_at: row.instant("updated_at")?,
            finished_at: row.opt_instant("finished_at")?,
            error: row.opt_text("error")?,
        },
        pass: usize::try_from(row.int("pass")?).unwrap_or_default(),
        after_id: row.opt_text("after_id")?,
        plan: row.json("plan")?,
        request: row.json("request")?,
        actor: row.text("actor")?,
        after_switch: row.json("after_switch")?,
    })
}

/// The run of `item` (active or the last one that ended), if it ever had one.
pub(crate) async fn load(db: &Db, item: &str) -> Result<Option<Run>> {
    let mut select = Select::from(db.dialect(), "migration_runs", COLUMNS).keyed("item");
    select.sql().push(" WHERE item = ").text(item);
    match select.fetch_one(db).await? {
        Some(row) => Ok(Some(decode(&row)?)),
        None => Ok(None),
    }
}

/// Every run still active (a crash interrupted them): resumed at start.
pub(crate) async fn active(db: &Db) -> Result<Vec<Run>> {
    let mut select = Select::from(db.dialect(), "migration_runs", COLUMNS).keyed("item");
    select
        .sql()
        .push(" WHERE state NOT IN ('done', 'failed') ORDER BY item");
    let rows = select.fetch(db).await?;
    rows.iter().map(decode).collect()
}

/// Stores `run` in `tx`, replacing the item's earlier run.
pub(crate) async fn save(tx: &mut Tx, run: &Run, now_ms: i64) -> Result<()> {
    let p = &run.progress;
    let mut sql = tx.sql();
    sql.push("DELETE FROM migration_runs WHERE item = ")
        .text(&p.item);
    tx.execute(sql).await?;
    let mut sql = tx.sql();
    sql.push("INSERT INTO migration_runs (")
        .push(&COLUMNS.join(", "))
        .push(") VALUES (")
        .text(&p.item)
        .push(", ")
        .int(i64::from(p.version))
        .push(", ")
        .text(p.state.as_str())
        .push(", ")
        .int(run.pass as i64)
        .push(", ")
        .opt_text(run.after_id.as_deref())
        .push(", ")
        .int(p.done as i64)
        .push(", ")
        .int(p.total as i64)
        .push(", ")
        .json(&run.plan)
        .push(", ")
        .json(&json_of(&run.request)?)
        .push(", ")
        .text(&run.actor)
        .push(", ")
        .json(&json_of(&run.after_switch)?)
        .push(", ")
        .int(started_ms(p).unwrap_or(now_ms))
        .push(", ")
        .int(now_ms)
        .push(", ");
    match p.state.active() {
        true => sql.push("NULL"),
        false => sql.int(now_ms),
    };
    sql.push(", ").opt_text(p.error.as_deref()).push(")");
    tx.execute(sql).await?;
    Ok(())
}

/// Records `error` on an active run without moving it (a batch failed; a restart
/// resumes from the last batch committed).
pub(crate) async fn note_error(db: &Db, item: &str, error: &str, now_ms: i64) -> Result<()> {
    let mut sql = Sql::new(db.dialect());
    sql.push("UPDATE migration_runs SET error = ")
        .text(error)
        .push(", updated_at = ")
        .int(now_ms)
        .push(" WHERE item = ")
        .text(item);
    db.write_atomically(vec![sql]).await
}

fn started_ms(p: &MigrationProgress) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&p.started_at)
        .ok()
        .map(|t| t.timestamp_millis())
}
