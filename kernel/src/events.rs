//! The event log: what happened, numbered, for the rules engine.
//!
//! An event is written in the same transaction as the change that caused it (a record
//! write, a process transition), so a committed change never loses its event and a rolled
//! back one never leaves one behind. Only events some enabled rule listens for are written
//! (the interest index): the record audit trail and the process history already keep
//! everything, and a kernel with no rules pays nothing. Signals from outside and time
//! events are appended directly. A stored event that cannot be read back is skipped and
//! reported, never allowed to stop the rules worker.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use erpos_design::rule::{Event, EventKind, ServiceRule};
use serde_json::{Value as Json, json};

use crate::clock::Clock;
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::scheduler::HistoryEntry;
use crate::sql::Sql;
use crate::store::processes::state_name;
use crate::store::{Select, StoredRow};

/// Which (kind, subject) pairs enabled rules listen for.
#[derive(Debug, Default, Clone)]
pub struct Interest {
    /// Kinds some rule listens for whatever the subject.
    any: HashSet<EventKind>,
    /// Subjects listened for, by kind (looked up by `&str`: no allocation per write).
    subjects: HashMap<EventKind, HashSet<String>>,
}

impl Interest {
    /// The interest of these rules (disabled ones are ignored).
    pub fn of(rules: &[ServiceRule]) -> Self {
        let mut interest = Interest::default();
        for rule in rules.iter().filter(|r| r.enabled) {
            let Some(kind) = rule.event.kind else {
                continue;
            };
            match rule.event.subject() {
                Some(subject) => {
                    interest
                        .subjects
                        .entry(kind)
                        .or_default()
                        .insert(subject.to_owned());
                }
                None => {
                    interest.any.insert(kind);
                }
            }
        }
        interest
    }

    /// Whether an event of `kind` about `subject` would be seen by a rule.
    pub fn wants(&self, kind: EventKind, subject: Option<&str>) -> bool {
        self.any.contains(&kind)
            || subject.is_some_and(|s| self.subjects.get(&kind).is_some_and(|set| set.contains(s)))
    }

    /// Whether no rule listens for anything (the fast path for every write).
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.subjects.is_empty()
    }
}

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// The DataItem, service or signal name.
    pub subject: Option<String>,
    /// The record, if any.
    pub record_id: Option<String>,
    /// The process, if any.
    pub pid: Option<u64>,
    /// Everything else.
    pub payload: Json,
    /// Rule runs that led to it.
    pub depth: u32,
}

/// The event log's writer side, shared by records, the process runtime and the API.
pub struct Events {
    db: Db,
    clock: Arc<dyn Clock>,
    interest: RwLock<Arc<Interest>>,
    /// Woken when events are committed, so the rules engine reads them at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Stored events that could not be read back, by number, with why: they are skipped
    /// (the rules worker passes them once the gap patience is over), logged once, and
    /// listed by `/healthz`.
    unreadable: std::sync::Mutex<std::collections::BTreeMap<u64, String>>,
}

impl Events {
    /// The log over `db`, stamping events with `clock`.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            interest: RwLock::new(Arc::new(Interest::default())),
            wake: Arc::new(tokio::sync::Notify::new()),
            unreadable: std::sync::Mutex::new(Default::default()),
        }
    }

    /// Replaces the interest index (after a rule is saved, enabled or deleted).
    pub fn set_interest(&self, interest: Interest) {
        if let Ok(mut slot) = self.interest.write() {
            *slot = Arc::new(interest);
        }
    }

    /// The current interest index.
    pub fn interest(&self) -> Arc<Interest> {
        self.interest
            .read()
            .map(|i| i.clone())
            .unwrap_or_else(|_| Arc::new(Interest::default()))
    }

    /// The clock events are stamped with.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The INSERT of one event.
    pub fn insert_sql(&self, event: &NewEvent) -> Sql {
        let mut sql = Sql::new(self.db.dialect());
        sql.push(
            "INSERT INTO events (kind, subject, record_id, pid, at_ms, depth, payload) VALUES (",
        )
        .text(event.kind.as_str())
        .push(", ")
        .opt_text(event.subject.as_deref());
        sql.push(", ")
            .opt_text(event.record_id.as_deref())
            .push(", ")
            .opt_int(event.pid.map(|p| p as i64));
        sql.push(", ")
            .int(self.clock.now_ms())
            .push(", ")
            .int(i64::from(event.depth))
            .push(", ")
            .json(&event.payload)
            .push(")");
        sql
    }

    /// The INSERT of a record event, if a rule listens for it.
    pub fn record_event(
        &self,
        kind: EventKind,
        item: &str,
        id: &str,
        payload: Json,
        depth: u32,
    ) -> Option<Sql> {
        if !self.interest().wants(kind, Some(item)) {
            return None;
        }
        Some(self.insert_sql(&NewEvent {
            kind,
            subject: Some(item.to_owned()),
            record_id: Some(id.to_owned()),
            pid: None,
            payload,
            depth,
        }))
    }

    /// The INSERTs of the events a history entry makes (state changed, step left, step
    /// entered) that some rule listens for.
    pub fn process_events(&self, interest: &Interest, entry: &HistoryEntry) -> Vec<Sql> {
        let pcb = &entry.after;
        let service = Some(&*pcb.service);
        let mut out = Vec::new();
        let base = |extra: Json| {
            let mut payload = json!({
                "service": &*pcb.service, "version": pcb.version,
                "state": state_name(pcb.state), "reason": entry.reason, "by": entry.by,
                "record": pcb.record.as_ref().map(|(item, id)| json!({"item": item, "id": id})),
                "context": &*pcb.context,
            });
            if let (Some(p), Json::Object(extra)) = (payload.as_object_mut(), extra) {
                p.extend(extra);
            }
            payload
        };
        // The payload (with a copy of the context) is built only for an event a rule wants.
        let mut push = |kind: EventKind, extra: &dyn Fn() -> Json| {
            if interest.wants(kind, service) {
                out.push(self.insert_sql(&NewEvent {
                    kind,
                    subject: Some(pcb.service.to_string()),
                    record_id: pcb.record.as_ref().map(|r| r.1.clone()),
                    pid: Some(pcb.id),
                    payload: base(extra()),
                    depth: 0,
                }));
            }
        };
        let step_now = pcb.step.as_deref();
        let step_before = entry.from_step.as_deref();
        if step_before != step_now
            && let Some(left) = step_before
        {
            push(EventKind::StepLeft, &|| json!({"step": left}));
        }
        if entry.from != entry.to {
            push(EventKind::ProcessStateChanged, &|| {
                json!({
                    "from": state_name(entry.from), "to": state_name(entry.to),
                    "step": step_now.or(step_before),
                })
            });
        }
        if step_before != step_now
            && let Some(entered) = step_now
        {
            push(EventKind::StepEntered, &|| json!({"step": entered}));
        }
        out
    }

    /// Appends an event now (signals from outside, time events) and wakes the rules
    /// engine. Returns its sequence number.
    pub async fn append(&self, event: NewEvent) -> Result<u64> {
        self.append_audited(event, None).await
    }

    /// [`Events::append`], with `audit` (a signal sent by a person) written in the same
    /// transaction, about the event's subject.
    pub async fn append_audited(
        &self,
        event: NewEvent,
        audit: Option<&crate::audit::Audit>,
    ) -> Result<u64> {
        // What is stored must read back: the payload is bounded like a context.
        crate::limits::check_payload(&event.payload)?;
        let mut sql = self.insert_sql(&event);
        sql.push(" RETURNING CAST(seq AS TEXT)");
        let mut tx = self.db.begin().await?;
        let seq: u64 = match Select::raw("events", &["seq"], sql)
            .fetch_in(&mut tx)
            .await?
            .first()
        {
            Some(row) => row.number("seq")?,
            None => {
                return Err(KernelError::Corrupt(
                    "the event log gave no number for the event it stored".into(),
                ));
            }
        };
        if let (Some(audit), Some(subject)) = (audit, &event.subject) {
            tx.execute(audit.row(self.db.dialect(), subject)).await?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(seq)
    }

    /// Stored events after `after`, oldest first, at most `limit`.
    pub async fn after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        let mut select = select_events(self.db.dialect());
        let sql = select.sql();
        sql.push(" WHERE seq > ").int(after as i64);
        sql.push(" ORDER BY seq LIMIT ").int(limit as i64);
        let rows = select.fetch(&self.db).await?;
        Ok(self.readable(&rows))
    }

    /// The events of `rows` that can be read back; the others are set aside (logged once
    /// each), so one bad row never stops the rules worker or a listing.
    fn readable(&self, rows: &[StoredRow]) -> Vec<Event> {
        rows.iter()
            .filter_map(|row| match parse_event(row) {
                Ok(event) => {
                    // A row repaired since it failed reads again: it is no longer unreadable.
                    if let Ok(mut u) = self.unreadable.lock()
                        && !u.is_empty()
                    {
                        u.remove(&event.seq);
                    }
                    Some(event)
                }
                Err(e) => {
                    let message = e.to_string();
                    // The number is the key the report is kept under (an identity column:
                    // always readable); were it not, the row is still skipped, and logged.
                    let seq = row.number::<u64>("seq").ok();
                    let new = match seq {
                        Some(seq) => self
                            .unreadable
                            .lock()
                            .map(|mut u| u.insert(seq, message.clone()).is_none())
                            .unwrap_or(true),
                        None => true,
                    };
                    if new {
                        tracing::error!(event = ?seq, table = e.table, column = e.column, error = %message, "a stored event cannot be read back; it is skipped");
                    }
                    None
                }
            })
            .collect()
    }

    /// Why the stored event `seq` could not be read back, if it could not (as last read).
    pub fn unreadable_reason(&self, seq: u64) -> Option<String> {
        self.unreadable.lock().ok()?.get(&seq).cloned()
    }

    /// The stored events that could not be read back so far, by number, with why.
    pub fn unreadable(&self) -> Vec<(u64, String)> {
        self.unreadable
            .lock()
            .map(|u| u.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    /// A page of events, newest first, optionally of one kind and subject, before a cursor.
    pub async fn list(
        &self,
        kind: Option<EventKind>,
        subject: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let mut select = select_events(self.db.dialect());
        let sql = select.sql();
        sql.push(" WHERE 1=1");
        if let Some(kind) = kind {
            sql.push(" AND kind = ").text(kind.as_str());
        }
        if let Some(subject) = subject {
            sql.push(" AND subject = ").text(subject);
        }
        if let Some(before) = before {
            sql.push(" AND seq < ").int(before as i64);
        }
        sql.push(" ORDER BY seq DESC LIMIT ").int(limit as i64);
        let rows = select.fetch(&self.db).await?;
        Ok(self.readable(&rows))
    }
}

/// The columns [`parse_event`] reads.
const EVENT_COLUMNS: &[&str] = &[
    "seq",
    "kind",
    "subject",
    "record_id",
    "pid",
    "at_ms",
    "depth",
    "payload",
];

fn select_events(d: erpos_design::Dialect) -> Select {
    Select::from(d, "events", EVENT_COLUMNS).keyed("seq")
}

/// A stored event. A kind no version writes, a negative process number or depth, a
/// payload that does not decode: each is an error naming the column (the caller skips the
/// event and reports it).
fn parse_event(row: &StoredRow) -> crate::store::Decoded<Event> {
    Ok(Event {
        seq: row.number("seq")?,
        kind: row.parsed("kind", "an event kind", EventKind::parse)?,
        subject: row.opt_text("subject")?,
        record_id: row.opt_text("record_id")?,
        pid: row.opt_number("pid")?,
        at_ms: row.int("at_ms")?,
        depth: row.number("depth")?,
        payload: row.json("payload")?,
    })
}
