//! The organisation's tables the process runtime loads: `users` (operators, stored as the
//! scheduler's [`Operator`]), `departments` (the tree participants are resolved in) and
//! `delegations` (a deputy for a period). `organisation`, `resources` and `delegations`
//! (the modules) validate what is stored; this module only stores and reads.

use erpos_design::{Dialect, FieldType};
use serde::Deserialize;

use super::{Decoded, Loaded, Select, StoredRow};
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::scheduler::{Delegation, Operator};
use crate::sql::Sql;

/// The INSERT (or replacement) of a user's operator definition.
pub fn put_user_sql(d: Dialect, operator: &Operator) -> Result<Sql> {
    let text = serde_json::to_string(operator).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO users (id, definition) VALUES (")
        .text(&operator.id);
    sql.push(", ")
        .param(Some(text), d.param_cast(FieldType::Json));
    sql.push(") ON CONFLICT (id) DO UPDATE SET definition = excluded.definition");
    Ok(sql)
}

/// Every user, by id, for the runtime's load: each keyed by its id, with the operator or
/// why its definition cannot be read back.
pub async fn operators(db: &Db) -> Result<Vec<Loaded<Operator>>> {
    super::definitions(db, "users", &["id", "definition"]).await
}

/// One user's stored operator definition, if the user exists. A definition that does not
/// decode is an error naming the user, never a user without roles.
pub async fn operator(db: &Db, id: &str) -> Result<Option<Operator>> {
    let mut select = Select::from(db.dialect(), "users", &["id", "definition"]).keyed("id");
    select.sql().push(" WHERE id = ").text(id);
    match select.fetch_one(db).await? {
        Some(row) => Ok(Some(row.json("definition")?)),
        None => Ok(None),
    }
}

/// What the scheduler needs of a stored department: its place in the tree. (The stored
/// definition also carries labels, which the tree does not need.)
#[derive(Debug, Clone, Deserialize)]
pub struct DepartmentLink {
    /// Its name.
    pub name: String,
    /// The department above it.
    #[serde(default)]
    pub parent: Option<String>,
    /// Its leader (a user id).
    #[serde(default)]
    pub leader: Option<String>,
}

/// Every department, by name, for the runtime's load: each keyed by its name, with its
/// place in the tree or why its definition cannot be read back (a definition without a
/// name is one that cannot).
pub async fn departments(db: &Db) -> Result<Vec<Loaded<DepartmentLink>>> {
    let mut select =
        Select::from(db.dialect(), "departments", &["name", "definition"]).keyed("name");
    select.sql().push(" ORDER BY name");
    Ok(select
        .fetch(db)
        .await?
        .into_iter()
        .map(|row| Loaded {
            key: row.key().unwrap_or("?").to_owned(),
            value: row.json("definition"),
        })
        .collect())
}

/// The columns [`delegation`] reads.
const DELEGATIONS: &[&str] = &["id", "user_id", "deputy", "from_ms", "to_ms", "services"];

/// `SELECT … FROM delegations` with the columns [`delegation`] reads; append `WHERE` and
/// `ORDER BY`.
pub fn select_delegations(d: Dialect) -> Select {
    Select::from(d, "delegations", DELEGATIONS).keyed("id")
}

/// A stored delegation.
pub fn delegation(row: &StoredRow) -> Decoded<Delegation> {
    Ok(Delegation {
        id: row.int("id")?,
        user: row.text("user_id")?,
        deputy: row.text("deputy")?,
        from_ms: row.int("from_ms")?,
        to_ms: row.int("to_ms")?,
        services: row.json("services")?,
    })
}

/// Every delegation, by id, for the runtime's load: each keyed by its id, with the
/// delegation or why it cannot be read back.
pub async fn delegations(db: &Db) -> Result<Vec<Loaded<Delegation>>> {
    let mut select = select_delegations(db.dialect());
    select.sql().push(" ORDER BY id");
    Ok(select
        .fetch(db)
        .await?
        .iter()
        .map(|row| Loaded {
            key: row.key().unwrap_or("?").to_owned(),
            value: delegation(row),
        })
        .collect())
}

/// One user's delegations, by id. One that does not decode is an error naming it.
pub async fn delegations_of(db: &Db, user: &str) -> Result<Vec<Delegation>> {
    let mut select = select_delegations(db.dialect());
    select
        .sql()
        .push(" WHERE user_id = ")
        .text(user)
        .push(" ORDER BY id");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|row| Ok(delegation(row)?))
        .collect()
}

/// Every department, role or skill (`table`) as stored, by name: its name and definition.
/// A definition that is not a JSON document is an error naming the row.
pub async fn titles(db: &Db, table: &'static str) -> Result<Vec<(String, serde_json::Value)>> {
    let mut select = Select::from(db.dialect(), table, &["name", "definition"]).keyed("name");
    select.sql().push(" ORDER BY name");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| Ok((r.text("name")?, r.json("definition")?)))
        .collect()
}
