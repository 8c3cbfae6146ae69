//! The `services` and `service_drafts` tables: every published (frozen) version of every
//! service, and the editable draft of each. `services` (the module) validates and numbers
//! them; the process runtime holds the published ones. This module only stores and reads.

use erpos_design::service::Service;
use erpos_design::{Dialect, FieldType};

use super::{Loaded, Select};
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::sql::Sql;

fn json_text(service: &Service) -> Result<String> {
    serde_json::to_string(service).map_err(|e| KernelError::Corrupt(e.to_string()))
}

fn now() -> String {
    erpos_design::value::format_datetime(&chrono::Utc::now())
}

/// Who published a version and what they said of it (its version notes), as the designer
/// lists every version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Release {
    /// The version number.
    pub version: u32,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// Who published it (null for versions published before notes were kept).
    pub published_by: Option<String>,
    /// What the analyst said changed (null when nothing was said).
    pub notes: Option<String>,
}

/// The INSERT of a published version (already validated and numbered), with who published
/// it and the notes they gave.
pub fn publish_sql(d: Dialect, service: &Service, by: &str, notes: Option<&str>) -> Result<Sql> {
    let mut sql = Sql::new(d);
    sql.push(
        "INSERT INTO services (name, version, definition, published_at, published_by, notes) VALUES (",
    )
    .text(&service.name);
    sql.push(", ").param(
        Some(service.version.to_string()),
        d.param_cast(FieldType::Integer),
    );
    sql.push(", ")
        .param(Some(json_text(service)?), d.param_cast(FieldType::Json));
    sql.push(", ")
        .param(Some(now()), d.param_cast(FieldType::Datetime));
    sql.push(", ").text(by).push(", ").opt_text(notes).push(")");
    Ok(sql)
}

/// Every published version of `name` with who published it and its notes, oldest first.
pub async fn releases(db: &Db, name: &str) -> Result<Vec<Release>> {
    let mut select = Select::from(
        db.dialect(),
        "services",
        &["version", "published_at", "published_by", "notes"],
    )
    .keyed("version");
    select
        .sql()
        .push(" WHERE name = ")
        .text(name)
        .push(" ORDER BY version");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|row| {
            let at = row.text("published_at")?;
            Ok(Release {
                version: row.number("version")?,
                // One form on both databases (PostgreSQL prints a timestamptz its own way).
                published_at: erpos_design::value::parse_datetime(&at)
                    .map_or(at, |t| erpos_design::value::format_datetime(&t)),
                published_by: row.opt_text("published_by")?,
                notes: row.opt_text("notes")?,
            })
        })
        .collect()
}

/// Every published version, by name and version, for the runtime's load: each keyed
/// `name:version`, with the service or why it cannot be read back.
pub async fn published(db: &Db) -> Result<Vec<Loaded<Service>>> {
    let mut select =
        Select::from(db.dialect(), "services", &["name", "version", "definition"]).keyed("name");
    select.sql().push(" ORDER BY name, version");
    Ok(select
        .fetch(db)
        .await?
        .into_iter()
        .map(|row| Loaded {
            key: format!(
                "{}:{}",
                row.key().unwrap_or("?"),
                row.opt_text("version")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "?".into())
            ),
            value: row.json("definition"),
        })
        .collect())
}

/// The INSERT (or replacement) of a service's draft.
pub fn save_draft_sql(d: Dialect, draft: &Service) -> Result<Sql> {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO service_drafts (name, definition, updated_at) VALUES (")
        .text(&draft.name);
    sql.push(", ")
        .param(Some(json_text(draft)?), d.param_cast(FieldType::Json));
    sql.push(", ")
        .param(Some(now()), d.param_cast(FieldType::Datetime));
    sql.push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at");
    Ok(sql)
}

/// The names of the services that have a draft, in order.
pub async fn draft_names(db: &Db) -> Result<Vec<String>> {
    let mut select = Select::from(db.dialect(), "service_drafts", &["name"]);
    select.sql().push(" ORDER BY name");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| Ok(r.text("name")?))
        .collect()
}

/// Every draft, by name.
pub async fn drafts(db: &Db) -> Result<Vec<Service>> {
    let mut select = Select::from(db.dialect(), "service_drafts", &["name", "definition"]);
    select.sql().push(" ORDER BY name");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| Ok(r.json("definition")?))
        .collect()
}

/// The draft of a service, if it has one.
pub async fn draft(db: &Db, name: &str) -> Result<Option<Service>> {
    let mut select =
        Select::from(db.dialect(), "service_drafts", &["name", "definition"]).keyed("name");
    select.sql().push(" WHERE name = ").text(name);
    match select.fetch_one(db).await? {
        Some(row) => Ok(Some(row.json("definition")?)),
        None => Ok(None),
    }
}
