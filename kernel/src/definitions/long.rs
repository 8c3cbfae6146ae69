//! Long migrations: a plan that converts or re-indexes a table of more rows than a batch
//! holds runs in batches, each its own transaction with its cursor (`runs`), instead of
//! one transaction that would hold the database's writer for minutes and lose everything
//! on a crash. The run goes
//!
//! 1. *converting*: the new columns are added, then filled a batch at a time while the old
//!    version stays in force (reads answer as before; writes to the item are refused with
//!    409 `migration_running`);
//! 2. the *switch*, one transaction: the plan is counted and decided again, rows changed
//!    since their batch are converted, the columns are renamed and the new version is put
//!    in force;
//! 3. *searching* and *recomputing*: search documents and computed fields follow the new
//!    version, again in batches;
//!
//! and a restart resumes it from its last committed batch. One long run at a time: other
//! definition changes wait for it (409), since its switch plans against the catalog.

use std::collections::BTreeSet;
use std::time::Duration;

use erpos_design::ddl::table_name;
use erpos_design::migration::{ApplyRequest, MigrationPlan, ResolutionKind, StepAction};
use erpos_design::{Catalog, Issue};

use super::batches::{self, Conversion};
use super::runs::{self, AfterSwitch, MigrationProgress, Run, RunState};
use super::{Definitions, Prepared, recompute_items};
use crate::audit::Audit;
use crate::error::{ErrorCode, KernelError, Result};
use crate::sql::Sql;

/// How long runs are worked: rows per batch, and a pause between batches that leaves the
/// database to live traffic (an operator's throttle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Rows per batch; a plan touching no table larger than this runs in one transaction.
    pub rows: usize,
    /// The pause after each batch.
    pub pause: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            rows: 1_000,
            pause: Duration::ZERO,
        }
    }
}

/// What [`Definitions::advance`] did, and what the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// A batch (or the switch) was committed; there is more.
    More,
    /// The computed fields of these items must be computed anew (by the records, which
    /// this module does not serve); then call [`Definitions::finish_recompute`].
    Recompute(Vec<String>),
    /// The run has ended (done or failed), or there is none.
    Finished,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether an error is the database's trouble (tried again) rather than the plan's (the run
/// fails).
fn transient(e: &KernelError) -> bool {
    match e {
        KernelError::Database(_) => e.unique_violation().is_none(),
        KernelError::Unavailable(_) => true,
        _ => false,
    }
}

/// What the switch of `plan` leaves to batches: the search documents its steps and
/// resolutions touch, and the computed fields to compute anew.
pub(super) fn after_switch(plan: &MigrationPlan, new: &Catalog) -> AfterSwitch {
    let mut searches: Vec<(String, String)> = Vec::new();
    for step in &plan.steps {
        let resolved_searchable = step.violations.as_ref().is_some_and(|v| {
            matches!(
                v.resolved,
                Some(ResolutionKind::Fix) | Some(ResolutionKind::Archive)
            ) && new
                .effective_fields(&step.item)
                .iter()
                .any(|e| e.field.name == v.field && e.field.searchable)
        });
        if matches!(step.action, StepAction::RebuildSearch) || resolved_searchable {
            let pair = (step.item.clone(), step.table.clone());
            if !searches.contains(&pair) {
                searches.push(pair);
            }
        }
    }
    AfterSwitch {
        searches,
        recompute: recompute_items(plan),
    }
}

fn running_conflict(
    run_item: &str,
    what: &str,
    progress: Option<&MigrationProgress>,
) -> KernelError {
    let how_far = progress
        .map(|p| {
            format!(
                " ({:?}, {} of {} rows, {}%)",
                p.state, p.done, p.total, p.percent
            )
        })
        .unwrap_or_default()
        .to_lowercase();
    KernelError::Conflict {
        code: ErrorCode::MigrationRunning,
        message: format!(
            "a migration of '{run_item}' runs in batches{how_far}: {what} waits until it ends"
        ),
        details: vec![Issue::new(
            format!("/api/v1/data-items/{run_item}/migration/progress"),
            "its progress",
        )],
    }
}

impl Definitions {
    /// How long runs are worked now.
    pub fn batching(&self) -> Batching {
        match self.batching.read() {
            Ok(b) => *b,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Sets how long runs are worked (rows per batch, at least 1; pause between batches).
    pub fn set_batching(&self, batching: Batching) {
        let batching = Batching {
            rows: batching.rows.max(1),
            ..batching
        };
        match self.batching.write() {
            Ok(mut b) => *b = batching,
            Err(poisoned) => *poisoned.into_inner() = batching,
        }
    }

    /// Refuses (409 `migration_running`) a write to a record of `item` while a run migrates
    /// its table: the batches convert what is there, and the switch must find it so.
    pub fn refuse_writes(&self, item: &str) -> Result<()> {
        match self.running.get(item) {
            Some(run) => Err(running_conflict(run.value(), "writing its records", None)),
            None => Ok(()),
        }
    }

    /// Refuses a definition change while a run is active: with `only`, a change of that
    /// item (its draft is what the run puts in force); without, any change of the catalog
    /// (the run's switch plans against it, which must not move under it).
    pub(super) fn refuse_while_running(&self, only: Option<&str>) -> Result<()> {
        let run = match only {
            Some(name) => self.running.get(name).map(|r| r.value().clone()),
            None => self.running.iter().next().map(|r| r.value().clone()),
        };
        match run {
            Some(run) => Err(running_conflict(&run, "changing definitions", None)),
            None => Ok(()),
        }
    }

    /// The items whose runs are active (resumed at start by the caller's driver).
    pub fn active_runs(&self) -> Vec<String> {
        let set: BTreeSet<String> = self.running.iter().map(|r| r.value().clone()).collect();
        set.into_iter().collect()
    }

    /// How far the migration of `name` is: its active run, or the last one that ended.
    /// 404 when it never had one.
    pub async fn progress(&self, name: &str) -> Result<MigrationProgress> {
        self.schema().catalog.require(name)?;
        match runs::load(&self.db, name).await? {
            Some(run) => Ok(run.progress),
            None => Err(KernelError::NotFound(format!(
                "a migration run of '{name}' (only a migration too large for one transaction has one)"
            ))),
        }
    }

    /// Loads the runs a crash interrupted, so their items stay read-only until they are
    /// resumed.
    pub(super) async fn restore_runs(&self) -> Result<()> {
        for run in runs::active(&self.db).await? {
            self.hold(&run.plan_items(), &run.progress.item);
        }
        Ok(())
    }

    fn hold(&self, items: &[String], run_item: &str) {
        for item in items {
            self.running.insert(item.clone(), run_item.to_owned());
        }
        self.running
            .insert(run_item.to_owned(), run_item.to_owned());
    }

    fn release(&self, run_item: &str) {
        self.running.retain(|_, run| run != run_item);
    }

    async fn rows_of(&self, table: &str) -> Result<u64> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT CAST(COUNT(*) AS TEXT) FROM ").ident(table);
        Ok(self
            .db
            .fetch(sql)
            .await?
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0))
    }

    /// Whether `plan` needs a run: one of the tables it converts or re-indexes holds more
    /// rows than a batch.
    pub(super) async fn long_work(&self, plan: &MigrationPlan) -> Result<bool> {
        let mut tables: Vec<String> = batches::conversions(plan)
            .into_iter()
            .map(|c| c.table)
            .collect();
        tables.extend(
            plan.steps
                .iter()
                .filter(|s| matches!(s.action, StepAction::RebuildSearch))
                .map(|s| s.table.clone()),
        );
        let rows = self.batching().rows as u64;
        for table in &tables {
            if self.rows_of(table).await? > rows {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The rows the whole of a run works: each conversion table once, each search table
    /// once, each item recomputed once.
    async fn total_of(&self, conversions: &[Conversion], after: &AfterSwitch) -> Result<u64> {
        let mut total = 0;
        for c in conversions {
            total += self.rows_of(&c.table).await?;
        }
        for (_, table) in &after.searches {
            total += self.rows_of(table).await?;
        }
        for item in &after.recompute {
            total += self.rows_of(&table_name(item)).await?;
        }
        Ok(total)
    }

    /// Starts a run of `p`: decided now (so a plan that cannot be applied is refused at
    /// once, as in one transaction), the new columns added, the run stored; nothing is in
    /// force yet.
    pub(super) async fn start_run(
        &self,
        mut p: Prepared,
        request: &ApplyRequest,
        audit: &Audit,
    ) -> Result<MigrationProgress> {
        let name = p.draft.name.clone();
        let items: Vec<String> = p.plan.steps.iter().map(|s| s.item.clone()).collect();
        // Held first: a write that starts from now on is refused.
        self.hold(&items, &name);
        let started = self.start_in(&mut p, request, audit).await;
        if started.is_err() {
            self.release(&name);
        }
        started
    }

    async fn start_in(
        &self,
        p: &mut Prepared,
        request: &ApplyRequest,
        audit: &Audit,
    ) -> Result<MigrationProgress> {
        let name = p.draft.name.clone();
        let mut tx = self.db.begin().await?;
        p.count_and_decide(&mut tx, request).await?;
        let conversions = batches::conversions(&p.plan);
        let after = after_switch(&p.plan, &p.new);
        let total = self.total_of(&conversions, &after).await?;
        let d = tx.dialect();
        for conversion in &conversions {
            for statement in batches::expand(d, conversion) {
                tx.execute_ddl(&statement).await?;
            }
        }
        let now = now_ms();
        let stamp = erpos_design::value::format_datetime(&chrono::Utc::now());
        let run = Run {
            progress: MigrationProgress {
                item: name.clone(),
                version: p.draft.version,
                state: RunState::Converting,
                done: 0,
                total,
                percent: runs::percent(0, total),
                started_at: stamp.clone(),
                updated_at: stamp,
                finished_at: None,
                error: None,
            },
            pass: 0,
            after_id: None,
            plan: serde_json::to_value(&p.plan).map_err(|e| KernelError::Corrupt(e.to_string()))?,
            request: request.clone(),
            actor: audit.actor().to_owned(),
            after_switch: after,
        };
        runs::save(&mut tx, &run, now).await?;
        tx.execute(Audit::new(audit.actor(), "data_item.migrate.start", now).row(d, &name))
            .await?;
        tx.commit().await?;
        tracing::info!(item = %name, version = p.draft.version, rows = total, "migration started in batches");
        Ok(run.progress)
    }

    /// Works the next batch of `item`'s run (or its switch), committed with its cursor.
    /// A plan that can no longer be applied at the switch fails the run (the table goes
    /// back to what it was, the change stays pending); the database's trouble is answered
    /// as an error, and the caller tries again.
    pub async fn advance(&self, item: &str) -> Result<Advance> {
        let Some(mut run) = runs::load(&self.db, item).await? else {
            self.release(item);
            return Ok(Advance::Finished);
        };
        let rows = self.batching().rows;
        match run.progress.state {
            RunState::Converting => {
                let prepared = match self.prepare(item).await {
                    Ok(p) => p,
                    Err(e) => return self.fail(run, &[], e).await,
                };
                let conversions = batches::conversions(&prepared.plan);
                let Some(conversion) = conversions.get(run.pass) else {
                    return self.switch(run, prepared, conversions).await;
                };
                let mut tx = self.db.begin().await?;
                let (n, last) =
                    batches::convert_batch(&mut tx, conversion, run.after_id.as_deref(), rows)
                        .await?;
                self.moved_on(&mut run, n, last, rows);
                runs::save(&mut tx, &run, now_ms()).await?;
                tx.commit().await?;
                Ok(Advance::More)
            }
            RunState::Searching => {
                let Some((search_item, table)) = run.after_switch.searches.get(run.pass).cloned()
                else {
                    return self.after_searches(run).await;
                };
                let schema = self.schema();
                let mut tx = self.db.begin().await?;
                let (n, last) = super::steps::search_batch(
                    &mut tx,
                    &schema.catalog,
                    &search_item,
                    &table,
                    run.after_id.as_deref(),
                    rows,
                )
                .await?;
                self.moved_on(&mut run, n, last, rows);
                runs::save(&mut tx, &run, now_ms()).await?;
                tx.commit().await?;
                Ok(Advance::More)
            }
            RunState::Recomputing => Ok(Advance::Recompute(run.after_switch.recompute.clone())),
            RunState::Done | RunState::Failed => {
                self.release(item);
                Ok(Advance::Finished)
            }
        }
    }

    /// Moves `run`'s cursor past a batch of `n` rows ending at `last`: a short batch ends
    /// its pass.
    fn moved_on(&self, run: &mut Run, n: usize, last: Option<String>, rows: usize) {
        run.progress.done = (run.progress.done + n as u64).min(run.progress.total);
        run.progress.error = None;
        if n < rows || last.is_none() {
            run.pass += 1;
            run.after_id = None;
        } else {
            run.after_id = last;
        }
    }

    async fn after_searches(&self, mut run: Run) -> Result<Advance> {
        run.pass = 0;
        run.after_id = None;
        let recompute = run.after_switch.recompute.clone();
        run.progress.state = if recompute.is_empty() {
            run.progress.done = run.progress.total;
            RunState::Done
        } else {
            RunState::Recomputing
        };
        if recompute.is_empty() {
            self.end(&run).await?;
            Ok(Advance::Finished)
        } else {
            self.store(&run).await?;
            Ok(Advance::Recompute(recompute))
        }
    }

    /// Ends `item`'s run once its computed fields are computed anew.
    pub async fn finish_recompute(&self, item: &str) -> Result<()> {
        let Some(mut run) = runs::load(&self.db, item).await? else {
            return Ok(());
        };
        if run.progress.state != RunState::Recomputing {
            self.release(item);
            return Ok(());
        }
        run.progress.state = RunState::Done;
        run.progress.done = run.progress.total;
        self.end(&run).await
    }

    /// Notes on `item`'s active run why its last batch failed (the driver tries again).
    pub async fn note_run_error(&self, item: &str, error: &str) -> Result<()> {
        runs::note_error(&self.db, item, error, now_ms()).await
    }

    async fn store(&self, run: &Run) -> Result<()> {
        let mut tx = self.db.begin().await?;
        runs::save(&mut tx, run, now_ms()).await?;
        tx.commit().await
    }

    /// Stores `run` as ended, its item released first: whoever reads the ended state finds
    /// the records writable. (The run's work is all committed by then; should the store
    /// fail, the run resumes at the next start and ends again.)
    async fn end(&self, run: &Run) -> Result<()> {
        self.ending(run);
        self.store(run).await
    }

    fn ending(&self, run: &Run) {
        self.release(&run.progress.item);
        tracing::info!(item = %run.progress.item, version = run.progress.version, state = ?run.progress.state, "migration run ended");
    }

    /// The switch: everything the run converted is put in force in one transaction.
    async fn switch(
        &self,
        mut run: Run,
        mut p: Prepared,
        conversions: Vec<Conversion>,
    ) -> Result<Advance> {
        let _guard = self.changing.lock().await;
        let now = now_ms();
        let audit = Audit::new(&run.actor, "data_item.migrate", now);
        let mut tx = self.db.begin().await?;
        let switched = self
            .switch_in(&mut tx, &mut p, &run.request, &audit, Some(&conversions))
            .await;
        let after = match switched {
            Ok(after) => after,
            Err(e) => {
                drop(tx);
                return self.fail(run, &conversions, e).await;
            }
        };
        run.progress.state = RunState::Searching;
        run.pass = 0;
        run.after_id = None;
        run.after_switch = after;
        runs::save(&mut tx, &run, now).await?;
        tx.commit().await?;
        tracing::info!(item = %p.draft.name, version = p.draft.version, "migration switched to the new version");
        self.swap(p.new);
        Ok(Advance::More)
    }

    /// Fails `run` for `error`, unless it is the database's trouble (answered, tried
    /// again): the columns the run added are dropped and the change stays pending.
    async fn fail(
        &self,
        mut run: Run,
        conversions: &[Conversion],
        error: KernelError,
    ) -> Result<Advance> {
        if transient(&error) {
            return Err(error);
        }
        let conversions = if conversions.is_empty() {
            // The plan could not be made again: the columns added are named by the run's
            // own record of it.
            run.added_conversions()
        } else {
            conversions.to_vec()
        };
        let mut tx = self.db.begin().await?;
        for conversion in &conversions {
            for statement in batches::contract(conversion) {
                tx.execute_ddl(&statement).await?;
            }
        }
        run.progress.state = RunState::Failed;
        run.progress.error = Some(error.to_string());
        runs::save(&mut tx, &run, now_ms()).await?;
        tracing::warn!(item = %run.progress.item, error = %error, "migration run failed; the change stays pending");
        // Released before the commit, as in `end`: should the commit fail, the run goes
        // on converting and its marker still catches every write let through.
        self.ending(&run);
        tx.commit().await?;
        Ok(Advance::Finished)
    }
}

impl Run {
    /// The items whose tables the run's plan touches.
    fn plan_items(&self) -> Vec<String> {
        self.plan
            .get("steps")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("item")?.as_str().map(str::to_owned))
            .collect()
    }

    /// The conversions the run's stored plan started (to drop their columns).
    fn added_conversions(&self) -> Vec<Conversion> {
        let mut out: Vec<Conversion> = Vec::new();
        for step in self
            .plan
            .get("steps")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            if step.get("action").and_then(serde_json::Value::as_str) != Some("retype_column") {
                continue;
            }
            let (Some(table), Some(to)) = (
                step.get("table").and_then(serde_json::Value::as_str),
                step.get("to"),
            ) else {
                continue;
            };
            let Ok(to) = serde_json::from_value::<erpos_design::Field>(to.clone()) else {
                continue;
            };
            let retype = batches::Retype {
                source: to.name.clone(),
                temp: batches::temp_column(&to.name),
                from: to.clone(),
                to,
            };
            match out.iter_mut().find(|c| c.table == table) {
                Some(c) => c.fields.push(retype),
                None => out.push(Conversion {
                    table: table.to_owned(),
                    fields: vec![retype],
                }),
            }
        }
        out
    }
}
