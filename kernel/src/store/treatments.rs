//! The `treatments` table: each treatment's definition as the API took it, prepared.
//! `app::treatments` validates; this module only stores and reads.

use erpos_design::treatment::Treatment;

use super::Select;
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::sql::Sql;

/// The INSERT (or replacement) of a treatment.
pub fn put_sql(db: &Db, treatment: &Treatment, now_ms: i64) -> Result<Sql> {
    let definition =
        serde_json::to_value(treatment).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(db.dialect());
    sql.push("INSERT INTO treatments (name, definition, updated_ms) VALUES (")
        .text(&treatment.name)
        .push(", ")
        .json(&definition)
        .push(", ")
        .int(now_ms)
        .push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_ms = excluded.updated_ms");
    Ok(sql)
}

/// Every treatment, by name.
pub async fn all(db: &Db) -> Result<Vec<Treatment>> {
    let mut select =
        Select::from(db.dialect(), "treatments", &["name", "definition"]).keyed("name");
    select.sql().push(" ORDER BY name");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| Ok(r.json("definition")?))
        .collect()
}

/// The treatment `name`, if defined.
pub async fn get(db: &Db, name: &str) -> Result<Option<Treatment>> {
    let mut select =
        Select::from(db.dialect(), "treatments", &["name", "definition"]).keyed("name");
    select.sql().push(" WHERE name = ").text(name);
    match select.fetch_one(db).await? {
        Some(row) => Ok(Some(row.json("definition")?)),
        None => Ok(None),
    }
}
