//! The `resource_types` and `resources` tables: the kinds of thing a step can need (a
//! laser room, a lot of botox) and the schedulable instances of each, stored as the
//! definitions the API took. `resources` (the module) validates them; the process runtime
//! holds the instances. This module only stores and reads.

use erpos_design::{Dialect, FieldType};
use serde_json::Value as Json;

use super::{Loaded, Select};
use crate::db::Db;
use crate::error::Result;
use crate::scheduler::Resource;
use crate::sql::Sql;

/// The INSERT (or replacement) of a resource type.
pub fn put_type_sql(d: Dialect, name: &str, kind: &str, definition: &Json) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO resource_types (name, kind, definition) VALUES (")
        .text(name)
        .push(", ")
        .text(kind);
    sql.push(", ")
        .param(Some(definition.to_string()), d.param_cast(FieldType::Json));
    sql.push(
        ") ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, definition = excluded.definition",
    );
    sql
}

/// Every resource type's definition, by name. A definition that is not a JSON object is an
/// error naming the type, never left out of the list.
pub async fn types(db: &Db) -> Result<Vec<Json>> {
    let mut select =
        Select::from(db.dialect(), "resource_types", &["name", "definition"]).keyed("name");
    select.sql().push(" ORDER BY name");
    select
        .fetch(db)
        .await?
        .iter()
        .map(|r| {
            let definition: serde_json::Map<String, Json> = r.json("definition")?;
            Ok(Json::Object(definition))
        })
        .collect()
}

/// Whether a resource type of that name exists.
pub async fn type_exists(db: &Db, name: &str) -> Result<bool> {
    let mut select = Select::from(db.dialect(), "resource_types", &["name"]);
    select.sql().push(" WHERE name = ").text(name);
    Ok(select.fetch_one(db).await?.is_some())
}

/// The INSERT (or replacement of the definition) of a resource: `definition` is what the
/// API took; the scheduler reads it back as a [`Resource`].
pub fn put_sql(d: Dialect, resource: &Resource, definition: &Json) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO resources (id, type, definition) VALUES (")
        .text(&resource.id)
        .push(", ")
        .text(&resource.resource_type);
    sql.push(", ")
        .param(Some(definition.to_string()), d.param_cast(FieldType::Json));
    sql.push(") ON CONFLICT (id) DO UPDATE SET definition = excluded.definition");
    sql
}

/// Every resource, by id, for the runtime's load: each keyed by its id, with the resource
/// or why its definition cannot be read back.
pub async fn load(db: &Db) -> Result<Vec<Loaded<Resource>>> {
    super::definitions(db, "resources", &["id", "definition"]).await
}

/// Each resource's label as its definition stores it (`{"zh": "激光一室"}`), by id: what
/// the scheduler's instances do not carry, for lists people read. A definition that cannot
/// be read back, or has no label, is left out.
pub async fn labels(db: &Db) -> Result<std::collections::BTreeMap<String, Json>> {
    let rows: Vec<Loaded<Json>> =
        super::definitions(db, "resources", &["id", "definition"]).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let label = r.value.ok()?.get("label")?.clone();
            label.is_object().then_some((r.key, label))
        })
        .collect())
}
