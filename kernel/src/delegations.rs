//! Delegations: for a period, a user's new work items go to a deputy (holidays, business
//! trips). Validated and stored here; the scheduler core applies them when it gives out
//! work items. Items handed out before a delegation starts stay where they are (forward
//! them to move them). This module never decides who handles a step.

use erpos_design::{DesignError, Issue};
use serde_json::{Value as Json, json};

use crate::Kernel;
use crate::audit::Audit;
use crate::error::{KernelError, Result};
use crate::scheduler::Delegation;
use crate::sql::Sql;

/// A delegation as the API shows it (times as RFC 3339 as well as ms).
pub fn to_json(d: &Delegation) -> Json {
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339());
    json!({
        "id": d.id, "user": d.user, "deputy": d.deputy, "from": at(d.from_ms), "to": at(d.to_ms),
        "from_ms": d.from_ms, "to_ms": d.to_ms, "services": d.services,
    })
}

/// Checks and stores `{"user", "deputy", "from", "to", "services"?}` (`user` defaults to
/// `by`) with its `audit` row in the same transaction, then hands the user's delegations
/// to the scheduler. Who may is decided by the application layer (`app::delegations`).
pub async fn create(k: &Kernel, body: &Json, by: &str, audit: &Audit) -> Result<Delegation> {
    let mut issues = Vec::new();
    // A body that is JSON but not an object is an invalid delegation (422, like every other
    // problem below), not a bad query parameter (400): found by the schemathesis run.
    let Some(obj) = body.as_object() else {
        return Err(
            DesignError::InvalidDefinition(vec![Issue::new("", "expected a JSON object")]).into(),
        );
    };
    for key in obj.keys() {
        if !["user", "deputy", "from", "to", "services"].contains(&key.as_str()) {
            issues.push(Issue::new(format!("/{key}"), "unknown attribute"));
        }
    }
    let user = obj
        .get("user")
        .and_then(Json::as_str)
        .unwrap_or(by)
        .to_owned();
    let deputy = obj
        .get("deputy")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let time = |key: &str, issues: &mut Vec<Issue>| {
        let t = obj
            .get(key)
            .and_then(Json::as_str)
            .and_then(erpos_design::value::parse_datetime)
            .map(|t| t.timestamp_millis());
        if t.is_none() {
            issues.push(Issue::new(
                format!("/{key}"),
                "expected an RFC 3339 date-time",
            ));
        }
        t.unwrap_or(0)
    };
    let from_ms = time("from", &mut issues);
    let to_ms = time("to", &mut issues);
    if from_ms >= to_ms && issues.is_empty() {
        issues.push(Issue::new("/to", "must be after 'from'"));
    }
    let services: Vec<String> = match obj.get("services") {
        None | Some(Json::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|_| {
            issues.push(Issue::new("/services", "expected a list of service names"));
            Vec::new()
        }),
    };
    let known = k.engine.service_names().await;
    for (i, s) in services.iter().enumerate() {
        if !known.contains(s) {
            issues.push(Issue::new(
                format!("/services/{i}"),
                format!("no service named '{s}'"),
            ));
        }
    }
    let (user_known, deputy_known) = k
        .engine
        .read(|c| (c.has_operator(&user), c.has_operator(&deputy)))
        .await;
    if !user_known {
        issues.push(Issue::new("/user", format!("there is no user '{user}'")));
    }
    if deputy.is_empty() {
        issues.push(Issue::new("/deputy", "the deputy is required"));
    } else if !deputy_known {
        issues.push(Issue::new(
            "/deputy",
            format!("there is no user '{deputy}'"),
        ));
    } else if deputy == user {
        issues.push(Issue::new("/deputy", "a user cannot be their own deputy"));
    }
    if !issues.is_empty() {
        return Err(DesignError::InvalidDefinition(issues).into());
    }
    let mut sql = Sql::new(k.db.dialect());
    sql.push("INSERT INTO delegations (user_id, deputy, from_ms, to_ms, services, created_by, created_at_ms) VALUES (")
        .text(&user)
        .push(", ")
        .text(&deputy)
        .push(", ")
        .int(from_ms)
        .push(", ")
        .int(to_ms)
        .push(", ")
        .json(&json!(services))
        .push(", ")
        .text(by)
        .push(", ")
        .int(k.engine.now_ms())
        .push(")");
    let row = audit.row(k.db.dialect(), &format!("{user} → {deputy}"));
    k.db.write_atomically(vec![sql, row]).await?;
    let list = reload(k, &user).await?;
    list.into_iter()
        .max_by_key(|d| d.id)
        .ok_or_else(|| KernelError::Corrupt("the delegation vanished".into()))
}

/// Every delegation, or one user's.
pub async fn list(k: &Kernel, user: Option<&str>) -> Vec<Delegation> {
    k.engine
        .read(|c| {
            c.delegations()
                .filter(|d| user.is_none_or(|u| d.user == u))
                .cloned()
                .collect()
        })
        .await
}

/// Ends a delegation early (removes it, with its `audit` row in the same transaction).
/// Returns the removed one.
pub async fn remove(k: &Kernel, id: i64, audit: &Audit) -> Result<Delegation> {
    let found = k
        .engine
        .read(|c| c.delegations().find(|d| d.id == id).cloned())
        .await
        .ok_or_else(|| KernelError::NotFound(format!("delegation {id}")))?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("DELETE FROM delegations WHERE id = ").int(id);
    let row = audit.row(
        k.db.dialect(),
        &format!("{} → {}", found.user, found.deputy),
    );
    k.db.write_atomically(vec![sql, row]).await?;
    reload(k, &found.user).await?;
    Ok(found)
}

/// Reads a user's delegations back and gives them to the scheduler.
async fn reload(k: &Kernel, user: &str) -> Result<Vec<Delegation>> {
    let list = crate::store::organisation::delegations_of(&k.db, user).await?;
    k.engine.set_delegations(user, list.clone()).await;
    Ok(list)
}
