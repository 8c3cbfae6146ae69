//! Tables of definitions stored by name as JSON (`name`, `definition`, `updated_ms`):
//! treatments, stock materials. One writer and two readers for all of them, so each table
//! module says only which table and which type.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Select;
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::sql::Sql;

/// The INSERT (or replacement) of `definition` under `name` in `table`.
pub fn put_sql<T: Serialize>(
    db: &Db,
    table: &'static str,
    name: &str,
    definition: &T,
    now_ms: i64,
) -> Result<Sql> {
    let definition =
        serde_json::to_value(definition).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(db.dialect());
    sql.push("INSERT INTO ")
        .push(table)
        .push(" (name, definition, updated_ms) VALUES (")
        .text(name)
        .push(", ")
        .json(&definition)
        .push(", ")
        .int(now_ms)
        .push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_ms = excluded.updated_ms");
    Ok(sql)
}

/// Every definition in `table`, by name.
pub async fn all<T: DeserializeOwned + Send>(db: &Db, table: &'static str) -> Result<Vec<T>> {
    let mut select = Select::from(db.dialect(), table, &["name", "definition"]).keyed("name");
    select.sql().push(" ORDER BY name");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| Ok(r.json("definition")?))
        .collect()
}

/// The definition `name` in `table`, if there is one.
pub async fn get<T: DeserializeOwned + Send>(
    db: &Db,
    table: &'static str,
    name: &str,
) -> Result<Option<T>> {
    let mut select = Select::from(db.dialect(), table, &["name", "definition"]).keyed("name");
    select.sql().push(" WHERE name = ").text(name);
    match select.fetch_one(db).await? {
        Some(row) => Ok(Some(row.json("definition")?)),
        None => Ok(None),
    }
}
