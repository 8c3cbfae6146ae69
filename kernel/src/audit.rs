//! The audit log of changes that have no history of their own: DataItem definitions and
//! migrations, services, rules, calendars, resource types and resources, users, roles,
//! departments, skills, passwords, app tokens, signals and outbox retries. Records and
//! processes keep their own histories, with the actor, in the same transaction.
//!
//! A row is written right after the change it describes, by the API handler that made it,
//! not inside the change's transaction (the stores of those changes take no actor): a crash
//! between the two loses the row, never the change. This module must never fail a request
//! that already changed something; a failed write is logged instead.

use serde_json::{Value, json};

use crate::Kernel;
use crate::error::Result;
use crate::sql::Sql;

/// Records that `actor` did `action` (`service.publish`) to `subject` (`leave`).
pub async fn record(k: &Kernel, actor: &str, action: &str, subject: &str) {
    let mut sql = Sql::new(k.db.dialect());
    sql.push("INSERT INTO audit_log (at_ms, actor, action, subject) VALUES (")
        .int(k.clock.now_ms())
        .push(", ")
        .text(actor)
        .push(", ")
        .text(action)
        .push(", ")
        .text(subject)
        .push(")");
    if let Err(e) = k.db.write_atomically(vec![sql]).await {
        tracing::error!(error = %e, actor, action, subject, "the audit log could not be written");
    }
}

/// The log, newest first: `limit` rows before the sequence number `before`, optionally only
/// one actor's.
pub async fn list(
    k: &Kernel,
    actor: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Value>> {
    let mut sql = Sql::new(k.db.dialect());
    sql.push("SELECT ")
        .col_text("seq")
        .push(", ")
        .col_text("at_ms")
        .push(", ")
        .col_text("actor")
        .push(", ")
        .col_text("action")
        .push(", ")
        .col_text("subject")
        .push(" FROM audit_log WHERE 1 = 1");
    if let Some(actor) = actor {
        sql.push(" AND actor = ").text(actor);
    }
    if let Some(before) = before {
        sql.push(" AND seq < ").int(before);
    }
    sql.push(" ORDER BY seq DESC LIMIT ")
        .int(i64::try_from(limit).unwrap_or(500));
    Ok(k.db
        .fetch(sql)
        .await?
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let at_ms: i64 = get(1).parse().unwrap_or(0);
            json!({
                "seq": get(0).parse::<i64>().unwrap_or(0),
                "at": chrono::DateTime::from_timestamp_millis(at_ms)
                    .map(|t| erpos_design::value::format_datetime(&t)),
                "actor": get(2),
                "action": get(3),
                "subject": get(4),
            })
        })
        .collect())
}
