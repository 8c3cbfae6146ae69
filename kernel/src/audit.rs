//! The audit log of changes that have no history of their own: DataItem definitions and
//! migrations, services, rules, calendars, resource types and resources, users, roles,
//! departments, skills, passwords, app tokens, signals and outbox retries. Records and
//! processes keep their own histories, with the actor, in the same transaction.
//!
//! A row is written **in the change's own transaction**: every store that makes an
//! audited change takes an [`Audit`] and adds [`Audit::row`] to the statements it commits,
//! so a change is never stored without its row and a refused or failed change leaves none
//! (there is no "write the row afterwards" path to forget or to lose in a crash). The
//! application layer (`crate::app`) builds the `Audit` from the caller; the pack loader and
//! the benches name themselves as the actor.

use serde_json::{Value, json};

use crate::error::Result;
use crate::sql::Sql;
use crate::store::Select;
use erpos_design::Dialect;

/// Who is making an audited change, which kind of change it is and when: handed to the
/// store that makes the change, which writes [`Audit::row`] in the same transaction.
#[derive(Debug, Clone)]
pub struct Audit {
    actor: String,
    action: &'static str,
    at_ms: i64,
}

impl Audit {
    /// `actor` does `action` (`service.publish`) now (`at_ms`, the kernel clock's reading).
    pub fn new(actor: &str, action: &'static str, at_ms: i64) -> Self {
        Self {
            actor: actor.to_owned(),
            action,
            at_ms,
        }
    }

    /// Who makes the change (stored as the actor; app tokens keep it as their creator).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The action's name (`service.publish`), for logs.
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The statement that records this change of `subject` (`leave`): to be executed in the
    /// change's own transaction.
    pub fn row(&self, dialect: Dialect, subject: &str) -> Sql {
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO audit_log (at_ms, actor, action, subject) VALUES (")
            .int(self.at_ms)
            .push(", ")
            .text(&self.actor)
            .push(", ")
            .text(self.action)
            .push(", ")
            .text(subject)
            .push(")");
        sql
    }
}

/// The log, newest first: `limit` rows before the sequence number `before`, optionally only
/// one actor's.
pub async fn list(
    k: &crate::Kernel,
    actor: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Value>> {
    let mut select = Select::from(
        k.db.dialect(),
        "audit_log",
        &["seq", "at_ms", "actor", "action", "subject"],
    )
    .keyed("seq");
    let sql = select.sql();
    sql.push(" WHERE 1 = 1");
    if let Some(actor) = actor {
        sql.push(" AND actor = ").text(actor);
    }
    if let Some(before) = before {
        sql.push(" AND seq < ").int(before);
    }
    sql.push(" ORDER BY seq DESC LIMIT ")
        .int(i64::try_from(limit).unwrap_or(500));
    select
        .fetch(&k.db)
        .await?
        .iter()
        .map(|r| {
            Ok(json!({
                "seq": r.int("seq")?,
                "at": r.instant("at_ms")?,
                "actor": r.text("actor")?,
                "action": r.text("action")?,
                "subject": r.text("subject")?,
            }))
        })
        .collect()
}
