//! The rules engine: ServiceRules stored and evaluated against the event log.
//!
//! One worker reads the log in order from a stored cursor. For each event it runs the
//! enabled rules that match it, highest priority first. A run that does something is one
//! transaction: its record writes, its outbox rows, its `rule_runs` row and the rule's
//! counters. The `rule_runs` key (rule, event) makes a run happen once even when the
//! cursor is behind after a crash. A failing rule records its error and the others go on.
//! Time rules are turned into `time` events by [`time`], in the transaction that moves
//! their watermark, so each due time fires once, even when it fell while the server was
//! down.

pub mod exec;
pub mod sandbox;
pub mod time;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use erpos_design::Catalog;
use erpos_design::rule::{Event, EventKind, ServiceRule, parse_rule, prepare_rule};
use serde_json::{Value as Json, json};

use crate::clock::Clock;
use crate::db::Db;
use crate::engine::Engine;
use crate::error::{KernelError, Result};
use crate::events::{Events, Interest, first_int};
use crate::outbox::Outbox;
use crate::records::Records;
use crate::sql::Sql;
use exec::{Executor, MAX_DEPTH, Situation};

/// Events read per round.
const BATCH: usize = 256;
/// A gap in the event log older than this is a rolled-back writer's, and is skipped.
const GAP_PATIENCE_MS: u128 = 2_000;

/// Counts of evaluations not yet written (skipped ones are counted in memory and written
/// once per round).
#[derive(Default)]
struct Tally {
    evaluated: BTreeMap<String, i64>,
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
        let ran_upto = first_int(&db.fetch(sql).await?).unwrap_or(0) as u64;
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

    async fn reload(&self) -> Result<()> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ")
            .col_text("definition")
            .push(" FROM rules ORDER BY name");
        let mut list = Vec::new();
        for row in self.db.fetch(sql).await? {
            let text = row.first().cloned().flatten().unwrap_or_default();
            // A rule that cannot be read back is left out (loudly), never the start.
            match crate::limits::decode_stored::<ServiceRule>(&text) {
                Ok(rule) => list.push(rule),
                Err(e) => {
                    tracing::error!(error = %e, "a stored rule cannot be read back; it is not loaded")
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
    pub async fn save(&self, body: &Json, catalog: &Catalog) -> Result<ServiceRule> {
        let rule = parse_rule(body)?;
        let names = self.engine.service_names().await;
        let known = |name: &str| names.contains(name);
        let rule = prepare_rule(rule, catalog, &known, &time::check_cron)?;
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
        self.db.write_atomically(vec![sql, cursor]).await?;
        self.reload().await?;
        Ok(rule)
    }

    /// Deletes a rule (its runs stay, for the record).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("DELETE FROM rules WHERE name = ")
            .text(name)
            .push(" RETURNING name");
        let mut tx = self.db.begin().await?;
        let found = !tx.fetch(sql).await?.is_empty();
        tx.commit().await?;
        if !found {
            return Err(KernelError::NotFound(format!("rule '{name}'")));
        }
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
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ");
        for (i, c) in [
            "definition",
            "evaluated",
            "fired",
            "failed",
            "last_at",
            "last_outcome",
            "last_error",
            "updated_at",
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                sql.push(", ");
            }
            sql.col_text(c);
        }
        sql.push(" FROM rules");
        if let Some(name) = name {
            sql.push(" WHERE name = ").text(name);
        }
        sql.push(" ORDER BY name");
        let rows = self.db.fetch(sql).await?;
        rows.iter()
            .map(|row| {
                let get = |i: usize| row.get(i).cloned().flatten();
                let int = |i: usize| get(i).and_then(|t| t.parse::<i64>().ok());
                let mut out: Json = serde_json::from_str(&get(0).unwrap_or_default())
                    .map_err(|e| KernelError::Corrupt(format!("stored rule: {e}")))?;
                if let Some(o) = out.as_object_mut() {
                    o.insert(
                        "stats".into(),
                        json!({
                            "evaluated": int(1), "fired": int(2), "failed": int(3),
                            "last_at_ms": int(4), "last_outcome": get(5), "last_error": get(6),
                            "updated_at_ms": int(7),
                        }),
                    );
                }
                Ok(out)
            })
            .collect()
    }

    /// A rule's runs, newest first, before an event number.
    pub async fn runs(&self, name: &str, before: Option<u64>, limit: usize) -> Result<Vec<Json>> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ")
            .col_text("event_seq")
            .push(", ")
            .col_text("at_ms")
            .push(", ")
            .col_text("outcome");
        sql.push(", ")
            .col_text("error")
            .push(", ")
            .col_text("effects")
            .push(" FROM rule_runs WHERE rule = ")
            .text(name);
        if let Some(before) = before {
            sql.push(" AND event_seq < ").int(before as i64);
        }
        sql.push(" ORDER BY event_seq DESC LIMIT ")
            .int(limit as i64);
        let rows = self.db.fetch(sql).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten();
                json!({
                    "event_seq": get(0).and_then(|t| t.parse::<u64>().ok()),
                    "at_ms": get(1).and_then(|t| t.parse::<i64>().ok()),
                    "outcome": get(2), "error": get(3),
                    "effects": get(4).and_then(|t| serde_json::from_str::<Json>(&t).ok()),
                })
            })
            .collect())
    }

    /// One round: fire due time rules, then run every matching rule on the events not
    /// yet read. Returns how many events were read.
    pub async fn round(&self) -> Result<usize> {
        time::fire_due(self).await?;
        time::fire_deadlines(self).await?;
        let cursor = self.cursor().await?;
        let batch = self.events.after(cursor, BATCH).await?;
        let mut last = cursor;
        let mut tally = Tally::default();
        for event in &batch {
            if event.seq != last + 1 && !self.gap_is_old() {
                break;
            }
            self.on_event(event, &mut tally).await?;
            last = event.seq;
            if let Ok(mut g) = self.gap_since.lock() {
                *g = None;
            }
        }
        if last != cursor {
            self.advance(last, &tally).await?;
        }
        Ok(batch.len())
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
        Ok(first_int(&self.db.fetch(sql).await?).unwrap_or(0) as u64)
    }

    /// Moves the cursor and writes the round's skipped-evaluation counts.
    async fn advance(&self, to: u64, tally: &Tally) -> Result<()> {
        let d = self.db.dialect();
        let mut statements = Vec::new();
        let mut sql = Sql::new(d);
        sql.push("INSERT INTO rule_cursors (name, position) VALUES ('events', ")
            .int(to as i64)
            .push(") ON CONFLICT (name) DO UPDATE SET position = excluded.position");
        statements.push(sql);
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
        self.db.write_atomically(statements).await
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
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT 1 FROM rule_runs WHERE rule = ")
            .text(rule)
            .push(" AND event_seq = ")
            .int(seq as i64);
        Ok(!self.db.fetch(sql).await?.is_empty())
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
                let bindings = Executor::bindings(&situation, now);
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
            let (effects, queued) = self
                .executor
                .run(&mut tx, &situation, &rule.instructions, now)
                .await
                .map_err(|e| format!("rule '{}', {e}", rule.name))?;
            Ok(Some((effects, queued, tx)))
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

impl crate::worker::Worker for Rules {
    const NAME: &'static str = "rules";

    fn round(&self) -> impl std::future::Future<Output = Result<usize>> + Send {
        Rules::round(self)
    }

    /// A full batch means the log may hold more.
    fn busy(&self, done: usize) -> bool {
        done >= BATCH
    }

    fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.events.wake.clone()
    }
}
