//! The `treatments` table: each treatment's definition as the API took it, prepared.
//! `app::treatments` validates; this module only stores and reads.

use erpos_design::treatment::Treatment;

use crate::db::Db;
use crate::error::Result;
use crate::sql::Sql;

/// The INSERT (or replacement) of a treatment.
pub fn put_sql(db: &Db, treatment: &Treatment, now_ms: i64) -> Result<Sql> {
    super::named::put_sql(db, "treatments", &treatment.name, treatment, now_ms)
}

/// Every treatment, by name.
pub async fn all(db: &Db) -> Result<Vec<Treatment>> {
    super::named::all(db, "treatments").await
}

/// The treatment `name`, if defined.
pub async fn get(db: &Db, name: &str) -> Result<Option<Treatment>> {
    super::named::get(db, "treatments", name).await
}
