//! The rules engine: ServiceRules stored and evaluated against the event log.
//!
//! One worker reads the log in order from a stored cursor. For each event it runs the
//! enabled rules that match it, highest priority first. A run that does something is one
//! transaction: its record writes, its outbox rows, its `rule_runs` row and the rule's
//! counters. The `rule_runs` key (rule, event) makes a run happen once even when the
//! cursor is behind after a crash. A failing rule records its error and the others go on.
//!
//! An event whose processing itself keeps failing (a write that fails, a row that does not
//! decode, a crash of the whole process while its rules run) must not stop every rule
//! behind it, nor crash the server again at each start. So each round first notes which
//! event it attempts (`rule_attempts`: one write per round that has events, removed with
//! the cursor's move). A note found at the start of a round means the last round did not
//! finish: the worker then goes one event at a time, up to the last event of that round,
//! so the culprit is found; after [`MAX_ATTEMPTS`] attempts of one event it is set aside
//! in `rule_quarantine` (listed by `GET /api/v1/rules/quarantine`, run again by
//! `POST /api/v1/rules/quarantine/{seq}/retry`) and the worker goes on.
//!
//! Time rules are turned into `time` events by [`time`], in the transaction that moves
//! their watermark, so each due time fires once, even when it fell while the server was
//! down.

pub mod exec;
/// The sandbox rules run in (a module of its own: conditions of services use it too).
pub use crate::sandbox;
pub mod time;
pub mod trial;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use erpos_design::rule::{Event, EventKind, ServiceRule, prepare_rule_reading, read_rule};
use erpos_design::{Catalog, Issue};
use serde_json::{Value as Json, json};

use crate::clock::Clock;
use crate::db::Db;
use crate::engine::Engine;
use crate::error::{ErrorCode, KernelError, Result};
use crate::events::{Events, Interest};
use crate::outbox::Outbox;
use crate::records::Records;
use crate::sql::Sql;
use crate::store::Select;
use exec::{Executor, MAX_DEPTH, Situation};

/// Events read per round.
const BATCH: usize = 256;
/// Attempts of one event before it is set aside in the quarantine.
pub const MAX_ATTEMPTS: i64 = 3;
/// A gap in the event log older than this is a rolled-back writer's, and is skipped.
const GAP_PATIENCE_MS: u128 = 2_000;

/// Counts of evaluations not yet written (skipped ones are counted in memory and written
/// once per round).
#[derive(Default)]
struct Tally {
    evaluated: BTreeMap<String, i64>,
}

/// The event the worker is attempting, as noted in `rule_attempts` before the round.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    /// The event at the head of the cursor.
    seq: u64,
    /// The last event of the round that did not finish: up to here, one event per round.
    upto: u64,
    /// Rounds that attempted `seq` so far.
    attempts: i64,
    /// The last error (None when the process stopped while running it).
    error: Option<String>,
}

/// The rules engine.
pub struct Rules {
    db: Db,
    clock: Arc<dyn Clock>,
    events: Arc<Events>,
    records: Arc<Records>,
    engine: Arc<Engine>,
    outbox: Arc<Outbox>,
    executor: Executor,
    rules: RwLock<Arc<Vec<ServiceRule>>>,
    /// The newest event a run was stored for. Only events up to it can have run already
    /// (when a crash or a failed round left the cursor behind), so only they are looked up
    /// in `rule_runs`; the usual event costs no read.
    ran_upto: AtomicU64,
    /// Since when the head of the log has had a gap (see `GAP_PATIENCE_MS`).
    gap_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// The attempt noted in `rule_attempts`, if any (read at load, then kept here).
    attempt: std::sync::Mutex<Option<Attempt>>,
}

impl Rules {
    /// Loads the stored rules and sets the event log's interest from them.
    pub async fn load(
        db: Db,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
        records: Arc<Records>,
        engine: Arc<Engine>,
        outbox: Arc<Outbox>,
        sandbox: Arc<sandbox::Sandbox>,
    ) -> Result<Arc<Rules>> {
        let executor = Executor::new(db.clone(), records.clone(), sandbox);
        let mut sql = Sql::new(db.dialect());
        sql.push("SELECT CAST(COALESCE(MAX(event_seq), 0) AS TEXT) FROM rule_runs");
        let ran_upto = scalar_u64(&db, "rule_runs", &["max_event_seq"], sql)
            .await?
            .unwrap_or(0);
        let attempt = Self::stored_attempt(&db).await?;
        if let Some(a) = &attempt {
            tracing::warn!(
                event = a.seq,
                upto = a.upto,
                attempts = a.attempts,
                "rules: the last round did not finish; going one event at a time"
            );
        }
        let rules = Arc::new(Rules {
            db,
            clock,
            events,
            records,
            engine,
            outbox,
            executor,
            rules: RwLock::new(Arc::new(Vec::new())),
            gap_since: std::sync::Mutex::new(None),
            ran_upto: AtomicU64::new(ran_upto),
            attempt: std::sync::Mutex::new(attempt),
        });
        rules.reload().await?;
        Ok(rules)
    }

    /// A record as it is now (None if it is gone).
    pub async fn record(&self, item: &str, id: &str) -> Option<Json> {
        self.records.get(item, id).await.ok()
    }

    /// The executor (automatic steps run their instructions through it).
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Runs a human step's instructions for a person's handling, in the handling's
    /// transaction `tx`, on behalf of `by`: a refused instruction answers as the request
    /// would have (409 with its code, 422 at `/context/<field>`: the instructions take what
    /// the handler sends in `context`), and the handling is not stored. Answers what the
    /// instructions bound (`as`), which the handling keeps in the process's context.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_for_handling(
        &self,
        tx: &mut crate::db::Tx,
        pid: u64,
        record: Option<(String, String, Json)>,
        context: Json,
        by: &str,
        list: &[erpos_design::rule::Instruction],
        now_ms: i64,
    ) -> Result<Vec<(String, Json)>> {
        let situation = Situation {
            record,
            pid: Some(pid),
            context,
            by: Some(by.to_owned()),
            ..Situation::default()
        };
        self.executor
            .run(tx, &situation, list, now_ms)
            .await
            .map(|ran| ran.bound)
            .map_err(refused)
    }

    async fn reload(&self) -> Result<()> {
        let mut select =
            Select::from(self.db.dialect(), "rules", &["name", "definition"]).keyed("name");
        select.sql().push(" ORDER BY name");
        let mut list = Vec::new();
        for row in select.fetch(&self.db).await? {
            // A stored rule that cannot be read back (an older shape, a damaged row) is left
            // out, loudly: it must not stop the kernel's start nor the other rules. (`GET
            // /rules` still shows the error, naming the row and column.)
            match row.json::<ServiceRule>("definition") {
                Ok(rule) => list.push(rule),
                Err(e) => {
                    tracing::error!(table = e.table, column = e.column, error = %e, "a stored rule cannot be read back; it is not loaded")
                }
            }
        }
        self.events.set_interest(Interest::of(&list));
        if let Ok(mut slot) = self.rules.write() {
            *slot = Arc::new(list);
        }
        Ok(())
    }

    /// Every rule, by name.
    pub fn all(&self) -> Arc<Vec<ServiceRule>> {
        self.rules
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|_| Arc::new(Vec::new()))
    }

    /// Validates and stores a rule (new or replacing one of the same name). A new time
    /// rule's watermark starts now: it fires for what becomes due from now on.
    pub async fn save(
        &self,
        body: &Json,
        catalog: &Catalog,
        directory: &erpos_design::directory::Directory,
        audit: &crate::audit::Audit,
    ) -> Result<ServiceRule> {
        // Read as far as it can be, then checked whole: one answer carries every problem.
        let reading = read_rule(body);
        let rule = prepare_rule_reading(reading, body, catalog, directory, &time::check_cron)?;
        let now = self.clock.now_ms();
        let d = self.db.dialect();
        let mut sql = Sql::new(d);
        sql.push("INSERT INTO rules (name, definition, updated_at) VALUES (")
            .text(&rule.name)
            .push(", ")
            .json(&serde_json::to_value(&rule).map_err(|e| KernelError::Corrupt(e.to_string()))?);
        sql.push(", ").int(now).push(
            ") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        );
        let mut cursor = Sql::new(d);
        cursor
            .push("INSERT INTO rule_cursors (name, position) VALUES (")
            .text(time::cursor_name(&rule.name))
            .push(", ")
            .int(now)
            .push(") ON CONFLICT (name) DO NOTHING");
        let row = audit.row(d, &rule.name);
        self.db.write_atomically(vec![sql, cursor, row]).await?;
        self.reload().await?;
        Ok(rule)
    }

    /// Deletes a rule (its runs stay, for the record).
    pub async fn delete(&self, name: &str, audit: &crate::audit::Audit) -> Result<()> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("DELETE FROM rules WHERE name = ")
            .text(name)
            .push(" RETURNING name");
        let mut tx = self.db.begin().await?;
        if Select::raw("rules", &["name"], sql)
            .fetch_in(&mut tx)
            .await?
            .is_empty()
        {
            // Dropped without a commit: nothing changed, so nothing is audited.
            return Err(KernelError::NotFound(format!("rule '{name}'")));
        }
        tx.execute(audit.row(self.db.dialect(), name)).await?;
        tx.commit().await?;
        self.reload().await
    }

    /// A rule with its counters and last outcome.
    pub async fn show(&self, name: &str) -> Result<Json> {
        self.with_stats(Some(name))
            .await?
            .pop()
            .ok_or_else(|| KernelError::NotFound(format!("rule '{name}'")))
    }

    /// Every rule with its counters, in one query.
    pub async fn list(&self) -> Result<Vec<Json>> {
        self.with_stats(None).await
    }

    /// Rules (one, or all by name) as stored, each with `stats`: evaluated, fired,
    /// failed, last run, its outcome and error.
    async fn with_stats(&self, name: Option<&str>) -> Result<Vec<Json>> {
        let mut select = Select::from(
            self.db.dialect(),
            "rules",
            &[
                "name",
                "definition",
                "evaluated",
                "fired",
                "failed",
                "last_at",
                "last_outcome",
                "last_error",
                "updated_at",
            ],
        )
        .keyed("name");
        if let Some(name) = name {
            select.sql().push(" WHERE name = ").text(name);
        }
        select.sql().push(" ORDER BY name");
        select
            .fetch(&self.db)
            .await?
            .iter()
            .map(|row| {
                // Shown as stored, once it is known to be a rule: one that does not decode
                // (and so is not loaded) is an error naming it, not a listing of garbage.
                row.json::<ServiceRule>("definition")?;
                let mut out: Json = row.json("definition")?;
                if let Some(o) = out.as_object_mut() {
                    o.insert(
                        "stats".into(),
                        json!({
                            "evaluated": row.int("evaluated")?, "fired": row.int("fired")?,
                            "failed": row.int("failed")?, "last_at_ms": row.opt_int("last_at")?,
                            "last_outcome": row.opt_text("last_outcome")?,
                            "last_error": row.opt_text("last_error")?,
                            "updated_at_ms": row.int("updated_at")?,
                        }),
                    );
                }
                Ok(out)
            })
            .collect()
    }

    /// A rule's runs, newest first, before an event number.
    pub async fn runs(&self, name: &str, before: Option<u64>, limit: usize) -> Result<Vec<Json>> {
        let mut select = Select::from(
            self.db.dialect(),
            "rule_runs",
            &["event_seq", "at_ms", "outcome", "error", "effects"],
        )
        .keyed("event_seq");
        let sql = select.sql();
        sql.push(" WHERE rule = ").text(name);
        if let Some(before) = before {
            sql.push(" AND event_seq < ").int(before as i64);
        }
        sql.push(" ORDER BY event_seq DESC LIMIT ")
            .int(limit as i64);
        select
            .fetch(&self.db)
            .await?
            .iter()
            .map(|r| {
                Ok(json!({
                    "event_seq": r.number::<u64>("event_seq")?,
                    "at_ms": r.int("at_ms")?,
                    "outcome": r.text("outcome")?, "error": r.opt_text("error")?,
                    "effects": r.json::<Json>("effects")?,
                }))
            })
            .collect()
    }

    /// One round: fire due time rules, then run every matching rule on the events not
    /// yet read. Returns how many events were read (or set aside).
    ///
    /// Time rules failing do not stop the events (they are tried again next round).
    pub async fn round(&self) -> Result<usize> {
        if let Err(e) = time::fire_due(self).await {
            tracing::warn!(error = %e, "rules: time rules failed");
        }
        if let Err(e) = time::fire_deadlines(self).await {
            tracing::warn!(error = %e, "rules: deadlines failed");
        }
        let cursor = self.cursor().await?;
        let attempt = self.attempt.lock().map(|a| a.clone()).unwrap_or(None);
        match attempt {
            Some(a) if a.seq > cursor || a.upto > cursor => self.careful_round(cursor, a).await,
            Some(_) => {
                // The cursor has passed the attempted events (moved by another round).
                self.note_attempt(None).await?;
                self.batch_round(cursor).await
            }
            None => self.batch_round(cursor).await,
        }
    }

    /// The usual round: a batch of events, the attempt noted first.
    async fn batch_round(&self, cursor: u64) -> Result<usize> {
        let batch = match self.events.after(cursor, BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                let head = self
                    .head_after(cursor)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(cursor + 1);
                self.failed(
                    Attempt {
                        seq: head,
                        upto: head,
                        attempts: 1,
                        error: None,
                    },
                    &e,
                )
                .await;
                return Err(e);
            }
        };
        // The next event's row does not read back (see `Events::after`): set it aside at
        // once, visible and retryable, instead of waiting for it as for a gap.
        if let Some(why) = self.events.unreadable_reason(cursor + 1) {
            let attempt = Attempt {
                seq: cursor + 1,
                upto: cursor + 1,
                attempts: 1,
                error: Some(format!("the stored event cannot be read back: {why}")),
            };
            self.quarantine(cursor, &attempt).await?;
            return Ok(1);
        }
        let Some(first) = batch.first() else {
            return Ok(0);
        };
        if first.seq != cursor + 1 && !self.gap_is_old() {
            return Ok(batch.len());
        }
        let attempt = Attempt {
            seq: first.seq,
            upto: batch.last().map_or(first.seq, |e| e.seq),
            attempts: 1,
            error: None,
        };
        self.note_attempt(Some(attempt.clone())).await?;
        let mut last = cursor;
        let mut tally = Tally::default();
        for event in &batch {
            if event.seq != last + 1 && last != cursor && !self.gap_is_old() {
                break;
            }
            if let Err(e) = self.on_event(event, &mut tally).await {
                self.failed(attempt, &e).await;
                return Err(e);
            }
            last = event.seq;
            if let Ok(mut g) = self.gap_since.lock() {
                *g = None;
            }
        }
        self.advance(last, &tally, None).await?;
        Ok(batch.len())
    }

    /// After a round that did not finish: one event, noted first; set aside once it has
    /// been attempted [`MAX_ATTEMPTS`] times.
    async fn careful_round(&self, cursor: u64, mut attempt: Attempt) -> Result<usize> {
        let head = match self.head_after(cursor).await? {
            Some(head) => head,
            None => {
                self.note_attempt(None).await?;
                return Ok(0);
            }
        };
        if head != attempt.seq {
            attempt = Attempt {
                seq: head,
                upto: attempt.upto.max(head),
                attempts: 0,
                error: None,
            };
        }
        if attempt.attempts >= MAX_ATTEMPTS {
            self.quarantine(cursor, &attempt).await?;
            return Ok(1);
        }
        attempt.attempts += 1;
        self.note_attempt(Some(attempt.clone())).await?;
        let event = match self.events.after(cursor, 1).await {
            Ok(mut batch) if !batch.is_empty() => batch.remove(0),
            Ok(_) => return Ok(0),
            Err(e) => {
                self.failed(attempt, &e).await;
                return Err(e);
            }
        };
        let mut tally = Tally::default();
        if let Err(e) = self.on_event(&event, &mut tally).await {
            self.failed(attempt, &e).await;
            return Err(e);
        }
        self.advance(event.seq, &tally, Some(&attempt)).await?;
        Ok(1)
    }

    /// The first event after `cursor` (its number only: it may be the row that does not
    /// decode).
    async fn head_after(&self, cursor: u64) -> Result<Option<u64>> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT CAST(MIN(seq) AS TEXT) FROM events WHERE seq > ")
            .int(cursor as i64);
        scalar_u64(&self.db, "events", &["min_seq"], sql).await
    }

    async fn stored_attempt(db: &Db) -> Result<Option<Attempt>> {
        let mut select = Select::from(
            db.dialect(),
            "rule_attempts",
            &["name", "event_seq", "upto", "attempts", "error"],
        )
        .keyed("name");
        select.sql().push(" WHERE name = 'events'");
        match select.fetch_one(db).await? {
            Some(row) => Ok(Some(Attempt {
                seq: row.number("event_seq")?,
                upto: row.number("upto")?,
                attempts: row.int("attempts")?,
                error: row.opt_text("error")?,
            })),
            None => Ok(None),
        }
    }

    /// The statement that stores `attempt` (or removes the note).
    fn attempt_sql(&self, attempt: Option<&Attempt>) -> Sql {
        let mut sql = Sql::new(self.db.dialect());
        match attempt {
            None => {
                sql.push("DELETE FROM rule_attempts WHERE name = 'events'");
            }
            Some(a) => {
                sql.push(
                    "INSERT INTO rule_attempts (name, event_seq, upto, attempts, error, at_ms) VALUES ('events', ",
                )
                .int(a.seq as i64)
                .push(", ")
                .int(a.upto as i64)
                .push(", ")
                .int(a.attempts)
                .push(", ")
                .opt_text(a.error.as_deref());
                sql.push(", ").int(self.clock.now_ms()).push(
                    ") ON CONFLICT (name) DO UPDATE SET event_seq = excluded.event_seq, \
                     upto = excluded.upto, attempts = excluded.attempts, error = excluded.error, \
                     at_ms = excluded.at_ms",
                );
            }
        }
        sql
    }

    /// Notes the attempt (or removes the note), in storage and here.
    async fn note_attempt(&self, attempt: Option<Attempt>) -> Result<()> {
        self.db
            .write_atomically(vec![self.attempt_sql(attempt.as_ref())])
            .await?;
        if let Ok(mut slot) = self.attempt.lock() {
            *slot = attempt;
        }
        Ok(())
    }

    /// A round failed on `attempt`: keep its error with the note (best effort: the write
    /// may be what fails).
    async fn failed(&self, mut attempt: Attempt, error: &KernelError) {
        tracing::warn!(event = attempt.seq, attempts = attempt.attempts, error = %error,
            "rules: the round failed");
        attempt.error = Some(error.to_string());
        if let Err(e) = self.note_attempt(Some(attempt)).await {
            tracing::warn!(error = %e, "rules: could not note the failed attempt");
        }
    }

    /// Sets the event `attempt` is about aside, moves the cursor past it, and goes on one
    /// event at a time up to `attempt.upto`.
    async fn quarantine(&self, cursor: u64, attempt: &Attempt) -> Result<()> {
        let rules: Vec<String> = match self.events.after(cursor, 1).await {
            Ok(batch) => batch
                .first()
                .filter(|e| e.seq == attempt.seq)
                .map(|event| {
                    self.all()
                        .iter()
                        .filter(|r| r.enabled && r.matches(event))
                        .map(|r| r.name.clone())
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let error = attempt
            .error
            .clone()
            .unwrap_or_else(|| "the server stopped while this event's rules ran".to_owned());
        tracing::error!(event = attempt.seq, attempts = attempt.attempts, rules = ?rules,
            error = %error, "rules: event set aside in the quarantine");
        let mut sql = Sql::new(self.db.dialect());
        sql.push("INSERT INTO rule_quarantine (event_seq, rules, error, attempts, at_ms) VALUES (")
            .int(attempt.seq as i64)
            .push(", ")
            .json(&json!(rules))
            .push(", ")
            .text(&error)
            .push(", ")
            .int(attempt.attempts);
        sql.push(", ").int(self.clock.now_ms()).push(
            ") ON CONFLICT (event_seq) DO UPDATE SET rules = excluded.rules, error = excluded.error, \
             attempts = rule_quarantine.attempts + excluded.attempts, at_ms = excluded.at_ms, \
             retried_at_ms = NULL",
        );
        let next = self.after_attempt(attempt);
        let statements = vec![
            sql,
            self.cursor_sql(attempt.seq),
            self.attempt_sql(next.as_ref()),
        ];
        self.db.write_atomically(statements).await?;
        if let Ok(mut slot) = self.attempt.lock() {
            *slot = next;
        }
        Ok(())
    }

    /// The attempt after `attempt`'s event: the next one, up to the end of the round that
    /// did not finish.
    fn after_attempt(&self, attempt: &Attempt) -> Option<Attempt> {
        (attempt.seq < attempt.upto).then(|| Attempt {
            seq: attempt.seq + 1,
            upto: attempt.upto,
            attempts: 0,
            error: None,
        })
    }

    /// Events set aside, newest first: `{event_seq, rules, error, attempts, at_ms,
    /// retried_at_ms}`.
    pub async fn quarantined(&self, before: Option<u64>, limit: usize) -> Result<Vec<Json>> {
        let mut select = Select::from(
            self.db.dialect(),
            "rule_quarantine",
            &[
                "event_seq",
                "rules",
                "error",
                "attempts",
                "at_ms",
                "retried_at_ms",
            ],
        )
        .keyed("event_seq");
        if let Some(before) = before {
            select.sql().push(" WHERE event_seq < ").int(before as i64);
        }
        select
            .sql()
            .push(" ORDER BY event_seq DESC LIMIT ")
            .int(limit as i64);
        select
            .fetch(&self.db)
            .await?
            .iter()
            .map(|r| {
                Ok(json!({
                    "event_seq": r.int("event_seq")?,
                    "rules": r.json::<Json>("rules")?,
                    "error": r.opt_text("error")?, "attempts": r.int("attempts")?,
                    "at_ms": r.int("at_ms")?,
                    "retried_at_ms": r.opt_int("retried_at_ms")?,
                }))
            })
            .collect()
    }

    /// Runs a set-aside event's rules again (those that have not run on it yet). On
    /// success the event leaves the quarantine; on failure it stays, with the new error.
    /// Returns `{event_seq, outcome, error}`.
    pub async fn retry(&self, seq: u64, audit: &crate::audit::Audit) -> Result<Json> {
        let mut select = Select::from(self.db.dialect(), "rule_quarantine", &["event_seq"]);
        select.sql().push(" WHERE event_seq = ").int(seq as i64);
        if select.fetch_one(&self.db).await?.is_none() {
            return Err(KernelError::NotFound(format!(
                "event {seq} in the rules' quarantine"
            )));
        }
        let outcome: Result<()> = async {
            let batch = self.events.after(seq.saturating_sub(1), 1).await?;
            let event = batch
                .into_iter()
                .next()
                .filter(|e| e.seq == seq)
                .ok_or_else(|| match self.events.unreadable_reason(seq) {
                    Some(why) => {
                        KernelError::Corrupt(format!("the stored event cannot be read back: {why}"))
                    }
                    None => KernelError::NotFound(format!("event {seq}")),
                })?;
            let mut tally = Tally::default();
            self.on_event(&event, &mut tally).await?;
            self.db.write_atomically(self.tally_sql(&tally)).await
        }
        .await;
        let mut sql = Sql::new(self.db.dialect());
        let error = match &outcome {
            Ok(()) => {
                sql.push("DELETE FROM rule_quarantine WHERE event_seq = ")
                    .int(seq as i64);
                None
            }
            Err(e) => {
                let error = e.to_string();
                sql.push("UPDATE rule_quarantine SET error = ")
                    .text(&error)
                    .push(", attempts = attempts + 1, retried_at_ms = ")
                    .int(self.clock.now_ms());
                sql.push(" WHERE event_seq = ").int(seq as i64);
                Some(error)
            }
        };
        let row = audit.row(self.db.dialect(), &seq.to_string());
        self.db.write_atomically(vec![sql, row]).await?;
        Ok(json!({
            "event_seq": seq,
            "outcome": if error.is_none() { "done" } else { "failed" },
            "error": error,
        }))
    }

    /// Whether the gap at the head of the log has lasted long enough to skip.
    fn gap_is_old(&self) -> bool {
        let Ok(mut since) = self.gap_since.lock() else {
            return true;
        };
        let started = *since.get_or_insert_with(std::time::Instant::now);
        started.elapsed().as_millis() >= GAP_PATIENCE_MS
    }

    async fn cursor(&self) -> Result<u64> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT CAST(position AS TEXT) FROM rule_cursors WHERE name = 'events'");
        Ok(scalar_u64(&self.db, "rule_cursors", &["position"], sql)
            .await?
            .unwrap_or(0))
    }

    fn cursor_sql(&self, to: u64) -> Sql {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("INSERT INTO rule_cursors (name, position) VALUES ('events', ")
            .int(to as i64)
            .push(") ON CONFLICT (name) DO UPDATE SET position = excluded.position");
        sql
    }

    /// The round's skipped-evaluation counts.
    fn tally_sql(&self, tally: &Tally) -> Vec<Sql> {
        let d = self.db.dialect();
        let mut statements = Vec::new();
        for (rule, n) in &tally.evaluated {
            let mut sql = Sql::new(d);
            sql.push("UPDATE rules SET evaluated = evaluated + ")
                .int(*n)
                .push(", last_at = ")
                .int(self.clock.now_ms());
            sql.push(", last_outcome = 'skipped' WHERE name = ")
                .text(rule);
            statements.push(sql);
        }
        statements
    }

    /// Moves the cursor to `to`, writes the round's skipped-evaluation counts, and moves the
    /// attempt note on (past `careful`'s event, or away) — all in one transaction.
    async fn advance(&self, to: u64, tally: &Tally, careful: Option<&Attempt>) -> Result<()> {
        let next = careful.and_then(|a| self.after_attempt(a));
        let mut statements = vec![self.cursor_sql(to), self.attempt_sql(next.as_ref())];
        statements.extend(self.tally_sql(tally));
        self.db.write_atomically(statements).await?;
        if let Ok(mut slot) = self.attempt.lock() {
            *slot = next;
        }
        Ok(())
    }

    /// Runs the matching rules on one event.
    async fn on_event(&self, event: &Event, tally: &mut Tally) -> Result<()> {
        let rules = self.all();
        let mut matching: Vec<&ServiceRule> = rules
            .iter()
            .filter(|r| r.enabled && r.matches(event))
            .collect();
        if matching.is_empty() {
            return Ok(());
        }
        matching.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        let situation = self.situation(event).await;
        for rule in matching {
            let may_have_run = event.seq <= self.ran_upto.load(Ordering::SeqCst);
            if may_have_run && self.already_ran(&rule.name, event.seq).await? {
                continue;
            }
            self.run_rule(rule, event, &situation, tally).await?;
        }
        Ok(())
    }

    /// What a rule on this event sees: the record (read fresh) and the process's context.
    async fn situation(&self, event: &Event) -> Situation {
        let mut s = Situation {
            event: Some(event.clone()),
            pid: event.pid,
            depth: event.depth,
            context: event.payload.get("context").cloned().unwrap_or(Json::Null),
            ..Situation::default()
        };
        let bound = if event.kind.is_record() {
            event.subject.clone().zip(event.record_id.clone())
        } else {
            event.payload.get("record").and_then(|r| {
                Some((
                    r.get("item")?.as_str()?.to_owned(),
                    r.get("id")?.as_str()?.to_owned(),
                ))
            })
        };
        if let Some((item, id)) = bound {
            let record = if event.kind == EventKind::RecordDeleted {
                event.payload.get("record").cloned()
            } else {
                self.records.get(&item, &id).await.ok()
            };
            if let Some(record) = record {
                s.record = Some((item, id, record));
            }
        }
        if s.context.is_null()
            && let Some(pid) = s.pid
        {
            s.context = self
                .engine
                .read(|c| c.pcb(pid).map(|p| (*p.context).clone()))
                .await
                .unwrap_or(Json::Null);
        }
        s
    }

    async fn already_ran(&self, rule: &str, seq: u64) -> Result<bool> {
        let mut select = Select::from(self.db.dialect(), "rule_runs", &["event_seq"]);
        select
            .sql()
            .push(" WHERE rule = ")
            .text(rule)
            .push(" AND event_seq = ")
            .int(seq as i64);
        Ok(select.fetch_one(&self.db).await?.is_some())
    }

    /// Evaluates one rule on one event and, if its condition holds, runs it.
    async fn run_rule(
        &self,
        rule: &ServiceRule,
        event: &Event,
        situation: &Situation,
        tally: &mut Tally,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let mut situation = situation.clone();
        situation.rule = Some(rule.name.clone());
        let outcome: std::result::Result<Option<(Vec<Json>, bool, crate::db::Tx)>, String> = async {
            if event.depth >= MAX_DEPTH {
                return Err(format!(
                    "stopped: {MAX_DEPTH} rule runs led to this event (does a rule trigger itself?)"
                ));
            }
            if let Some(condition) = &rule.condition {
                let bindings = self.executor.bindings(&situation, now);
                let holds = self
                    .executor
                    .sandbox()
                    .holds(condition, &bindings)
                    .map_err(|e| format!("rule '{}', condition: {e}", rule.name))?;
                if !holds {
                    return Ok(None);
                }
            }
            let mut tx = self.db.begin().await.map_err(|e| e.to_string())?;
            let ran = self
                .executor
                .run(&mut tx, &situation, &rule.instructions, now)
                .await
                .map_err(|e| format!("rule '{}', {e}", rule.name))?;
            Ok(Some((ran.effects, ran.queued, tx)))
        }
        .await;
        match outcome {
            Ok(None) => {
                *tally.evaluated.entry(rule.name.clone()).or_default() += 1;
                Ok(())
            }
            Ok(Some((effects, queued, mut tx))) => {
                for sql in self.run_rows(rule, event.seq, now, "done", None, &effects) {
                    tx.execute(sql).await?;
                }
                tx.commit().await?;
                self.ran_upto.fetch_max(event.seq, Ordering::SeqCst);
                if queued {
                    self.outbox.wake.notify_one();
                }
                self.events.wake.notify_one();
                Ok(())
            }
            Err(message) => {
                tracing::info!(rule = %rule.name, event = event.seq, error = %message, "rule failed");
                let rows = self.run_rows(rule, event.seq, now, "failed", Some(&message), &[]);
                self.db.write_atomically(rows).await?;
                self.ran_upto.fetch_max(event.seq, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    /// The run's row and the rule's counters.
    fn run_rows(
        &self,
        rule: &ServiceRule,
        seq: u64,
        now: i64,
        outcome: &str,
        error: Option<&str>,
        effects: &[Json],
    ) -> Vec<Sql> {
        let d = self.db.dialect();
        let mut run = Sql::new(d);
        run.push(
            "INSERT INTO rule_runs (rule, event_seq, at_ms, outcome, error, effects) VALUES (",
        )
        .text(&rule.name)
        .push(", ")
        .int(seq as i64);
        run.push(", ")
            .int(now)
            .push(", ")
            .text(outcome)
            .push(", ")
            .opt_text(error);
        run.push(", ")
            .json(&Json::Array(effects.to_vec()))
            .push(")");
        let mut stats = Sql::new(d);
        stats
            .push("UPDATE rules SET evaluated = evaluated + 1, ")
            .push(if outcome == "done" {
                "fired = fired + 1"
            } else {
                "failed = failed + 1"
            });
        stats
            .push(", last_at = ")
            .int(now)
            .push(", last_outcome = ")
            .text(outcome);
        stats
            .push(", last_error = ")
            .opt_text(error)
            .push(" WHERE name = ")
            .text(&rule.name);
        vec![run, stats]
    }
}

/// A one-value statement's value (a cursor's position, the highest event run) as a
/// sequence number: a negative one is an error naming the table, never wrapped.
async fn scalar_u64(
    db: &Db,
    table: &'static str,
    column: &'static [&'static str; 1],
    sql: Sql,
) -> Result<Option<u64>> {
    match Select::raw(table, column, sql).fetch_one(db).await? {
        Some(row) => Ok(row.opt_number(column[0])?),
        None => Ok(None),
    }
}

impl crate::worker::Worker for Rules {
    const NAME: &'static str = "rules";

    fn round(&self) -> impl std::future::Future<Output = Result<usize>> + Send {
        Rules::round(self)
    }

    /// A full batch means the log may hold more; going one event at a time after a round
    /// that did not finish, so does every event.
    fn busy(&self, done: usize) -> bool {
        let careful = self.attempt.lock().map(|a| a.is_some()).unwrap_or(false);
        done >= BATCH || (careful && done > 0)
    }

    fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.events.wake.clone()
    }
}

/// An instruction the handling ran was refused: the request's answer, at its field
/// (`/context/<key>`: the instructions take what the handler sends in `context`).
fn refused(e: exec::InstructionError) -> KernelError {
    let details: Vec<Issue> = e
        .details
        .iter()
        .map(|i| Issue::new(format!("/context{}", i.path), i.message.clone()))
        .collect();
    match e.code {
        Some(ErrorCode::ValidationFailed) => KernelError::Invalid(details),
        code => KernelError::Conflict {
            code: code.unwrap_or(ErrorCode::Conflict),
            message: format!("the step's {e}; the step stays where it is"),
            details,
        },
    }
}

/// A condition as a dry run evaluated it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ConditionOutcome {
    /// The condition's source.
    pub source: String,
    /// What it gave (null when it could not be evaluated).
    pub holds: Option<bool>,
    /// Why it could not be evaluated (a real run would record the rule as failed).
    pub error: Option<String>,
}

/// Where and why a dry run's instructions stopped.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DryRunError {
    /// The instruction's position in the list (0-based).
    pub index: usize,
    /// Its op.
    pub op: String,
    /// What went wrong.
    pub message: String,
    /// The fields it names, when it was refused as a request would be.
    pub details: Vec<Issue>,
}

/// What a rule would do on a sample: its condition evaluated and its instructions run in a
/// transaction that is rolled back, so the analyst sees the real effects (the record it
/// would create, the charge it would make, the process it would start) and nothing is kept.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DryRun {
    /// The event it ran on, made from the rule's own pattern and the sample.
    #[schema(value_type = Object)]
    pub event: Json,
    /// Its condition and what it gave; null when the rule has none.
    pub condition: Option<ConditionOutcome>,
    /// Whether its instructions ran (the condition held, or it has none).
    pub ran: bool,
    /// A summary of each effect, as a run's record lists them (none of them was kept).
    #[schema(value_type = Vec<Object>)]
    pub effects: Vec<Json>,
    /// What the instructions bound under their `as` names.
    #[schema(value_type = Object)]
    pub bound: Json,
    /// Why the instructions stopped, when one failed.
    pub error: Option<DryRunError>,
}

impl Rules {
    /// Runs `rule` once on a sample — `record` (DataItem, id, fields) and `context` — and
    /// rolls everything back (see [`DryRun`]). The event is the one the rule listens for,
    /// with the sample as its record and context.
    pub async fn dry_run(
        &self,
        rule: &ServiceRule,
        record: Option<(String, String, Json)>,
        context: Json,
    ) -> Result<DryRun> {
        let now = self.clock.now_ms();
        let p = &rule.event;
        let kind = p.kind.unwrap_or(EventKind::Signal);
        let mut payload = serde_json::Map::new();
        if let Some((item, id, fields)) = &record {
            payload.insert(
                "record".into(),
                if kind.is_record() {
                    fields.clone()
                } else {
                    json!({"item": item, "id": id})
                },
            );
        }
        if !p.fields.is_empty() {
            payload.insert("changed".into(), json!(p.fields));
        }
        for (key, value) in [
            ("step", &p.step),
            ("from", &p.from),
            ("to", &p.to),
            ("name", &p.name),
        ] {
            if let Some(v) = value {
                payload.insert(key.into(), json!(v));
            }
        }
        if kind == EventKind::Time {
            payload.insert("rule".into(), json!(rule.name));
        }
        payload.insert("context".into(), context.clone());
        let event = Event {
            seq: 0,
            kind,
            subject: p
                .item
                .clone()
                .or_else(|| p.service.clone())
                .or_else(|| p.name.clone()),
            record_id: record
                .as_ref()
                .map(|r| r.1.clone())
                .filter(|_| kind.is_record()),
            pid: None,
            at_ms: now,
            payload: Json::Object(payload),
            depth: 0,
        };
        let situation = Situation {
            rule: Some(rule.name.clone()),
            event: Some(event.clone()),
            record,
            context,
            ..Situation::default()
        };
        let shown_event = serde_json::to_value(&event).unwrap_or(Json::Null);
        let condition = rule.condition.as_ref().map(|source| {
            let bindings = self.executor.bindings(&situation, now);
            match self.executor.sandbox().holds(source, &bindings) {
                Ok(holds) => ConditionOutcome {
                    source: source.clone(),
                    holds: Some(holds),
                    error: None,
                },
                Err(e) => ConditionOutcome {
                    source: source.clone(),
                    holds: None,
                    error: Some(e),
                },
            }
        });
        let mut dry = DryRun {
            event: shown_event,
            ran: false,
            effects: Vec::new(),
            bound: json!({}),
            error: None,
            condition,
        };
        if dry
            .condition
            .as_ref()
            .is_some_and(|c| c.holds != Some(true))
        {
            return Ok(dry);
        }
        let mut tx = self.db.begin().await?;
        let outcome = self
            .executor
            .run(&mut tx, &situation, &rule.instructions, now)
            .await;
        // Nothing of a dry run is kept: the records, charges, outbox entries and events its
        // instructions wrote go with the transaction, dropped uncommitted (rolled back).
        drop(tx);
        dry.ran = true;
        match outcome {
            Ok(ran) => {
                dry.effects = ran.effects;
                dry.bound = Json::Object(ran.bound.into_iter().collect());
            }
            Err(e) => {
                dry.error = Some(DryRunError {
                    index: e.index,
                    op: e.op,
                    message: e.message,
                    details: e.details,
                });
            }
        }
        Ok(dry)
    }
}
