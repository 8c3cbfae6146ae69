//! The `outbox` table's rows as they are queued: what a rule's run (and the runtime's step
//! notices) write in their own transaction. Here, below the outbox worker and the process
//! runtime, so both write the same row without depending on each other.

use serde_json::Value as Json;

use crate::db::Db;
use crate::sql::Sql;

/// What an outbox row delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A notification to users' inboxes.
    Notify,
    /// An HTTP POST.
    Webhook,
    /// A command to the process runtime.
    Process,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Notify => "notify",
            Kind::Webhook => "webhook",
            Kind::Process => "process",
        }
    }
}

/// A row to enqueue.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// What it is.
    pub kind: Kind,
    /// What to deliver.
    pub payload: Json,
    /// Not before (ms).
    pub due_ms: i64,
    /// The rule that made it.
    pub rule: Option<String>,
    /// The event the rule ran on.
    pub event_seq: Option<u64>,
}

/// The INSERT of an outbox row (run in the caller's transaction).
pub fn enqueue_sql(db: &Db, delivery: &Delivery, now_ms: i64) -> Sql {
    let mut sql = Sql::new(db.dialect());
    sql.push("INSERT INTO outbox (kind, payload, state, attempts, next_at_ms, created_at_ms, rule, event_seq) VALUES (")
        .text(delivery.kind.as_str())
        .push(", ")
        .json(&delivery.payload);
    sql.push(", 'pending', 0, ")
        .int(delivery.due_ms)
        .push(", ")
        .int(now_ms);
    sql.push(", ")
        .opt_text(delivery.rule.as_deref())
        .push(", ")
        .opt_int(delivery.event_seq.map(|s| s as i64))
        .push(")");
    sql
}
