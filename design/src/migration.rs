//! Migration plans: what changing a DataItem does to the live tables, step by step.
//!
//! A plan is computed from the active catalog and the catalog with the changed definition;
//! it is shown to the analyst before anything runs. A step that makes data disappear from
//! the API (a removed field, a lossy retype) is marked destructive and is only applied when
//! confirmed, and even then the data stays in an archived column: erpos never drops a
//! column silently.

use serde::Serialize;

use crate::catalog::{Catalog, EffectiveField};
use crate::ddl::{Dialect, archived_column, table_name};
use crate::field::Field;
use crate::value::conversion_is_lossy;

/// What one step does.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StepAction {
    /// Create the record table of a new DataItem.
    CreateTable,
    /// Add a column for a new field.
    AddColumn {
        /// The new field.
        field: Field,
    },
    /// Keep a removed field's column under an archived name.
    ArchiveColumn {
        /// The removed field.
        field: Field,
        /// The name the column is kept under.
        archived_as: String,
    },
    /// Change a field's type: a new column filled by converting every value, the old
    /// column kept under an archived name.
    RetypeColumn {
        /// The field as it was (boxed: fields are large and plans are mostly small steps).
        from: Box<Field>,
        /// The field as it will be.
        to: Box<Field>,
        /// The name the old column is kept under.
        archived_as: String,
    },
    /// Rename a field's column (`renamed_from`): its values stay, under the new name.
    RenameColumn {
        /// The name in the active version.
        from: String,
        /// The field as it will be.
        field: Field,
    },
    /// Start enforcing uniqueness (fails, changing nothing, if values already repeat).
    AddUniqueIndex {
        /// The field.
        field: Field,
    },
    /// Stop enforcing uniqueness.
    DropUniqueIndex {
        /// The field.
        field: Field,
    },
    /// Recompute every record's pinyin search keys (the searchable fields changed).
    RebuildSearch,
    /// Compute these computed fields anew on every record (added, or their expression or
    /// type changed), in batches after the change is applied.
    Recompute {
        /// The computed fields.
        fields: Vec<String>,
    },
    /// Labels, bounds, options or other rules changed: no DDL; future writes follow them.
    ChangeRules {
        /// The field (None for item-level changes such as labels or composition).
        field: Option<String>,
    },
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MigrationStep {
    /// The DataItem whose table the step changes (a descendant of the changed item when it
    /// inherits the changed fields).
    pub item: String,
    /// The table the step changes.
    pub table: String,
    /// What the step does.
    #[serde(flatten)]
    pub action: StepAction,
    /// The step in words.
    pub description: String,
    /// Whether data leaves the API (removed field, lossy conversion): needs confirmation.
    pub destructive: bool,
    /// The SQL the step runs, for the analyst and the DBA to read.
    pub sql: Vec<String>,
    /// How many records the step touches, counted in the data when the plan is shown
    /// (absent from a plan not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The values a retype cannot convert, counted in the data: they become empty in the
    /// field and are kept in its archive column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub losses: Option<Losses>,
    /// The records whose values break the field's new rules (a tightened bound, pattern,
    /// length or enum, a new `required` or `unique`, a new required field without a
    /// default), counted in the data. Applying needs a [`Resolution`] for the field, or
    /// `confirm_destructive` to keep them as they are where that is possible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Violations>,
}

/// Records that break a field's new rules: how many, and the first few with the problem.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Violations {
    /// The field whose rules they break.
    pub field: String,
    /// How many records.
    pub count: u64,
    /// The first few (at most [`LOSS_EXAMPLES`]); shown only to a caller who may read every
    /// record of the item (anyone else gets the count alone).
    pub examples: Vec<Violation>,
    /// The resolutions this step accepts (`fix`, `archive`, `accept`): a unique index
    /// cannot be built over repeated values, an emptied value breaks `required`, and a
    /// new required field needs a value for the records that exist.
    pub resolutions: Vec<ResolutionKind>,
    /// In an applied plan: how they were resolved (absent from a plan shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolutionKind>,
}

/// One record that breaks a field's new rules.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    /// The record.
    pub id: String,
    /// Its value as stored now (None when empty).
    pub value: Option<String>,
    /// What is wrong with it under the new rules.
    pub problem: String,
}

/// How the records breaking a field's new rules are brought in line when the plan is
/// applied (`POST …/migration` with `{"resolve": {"nianling": {"action": "fix", "value":
/// 18}}}`). Every choice keeps the original values in the field's archive column, so
/// nothing the plan counted is lost.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resolution {
    /// Give the breaking records this value (it must satisfy the new rules); their old
    /// values are kept in the archive column.
    Fix {
        /// The value, as a write would send it.
        value: serde_json::Value,
    },
    /// Empty the breaking values, keeping them in the archive column.
    Archive,
    /// Keep them as they are: they stay readable and the next write of such a record
    /// must bring it in line. The same as `confirm_destructive` for this field.
    Accept,
}

/// The body of `POST /data-items/{name}/migration`: what the analyst allows the plan to
/// do. An empty body applies a plan with nothing destructive and nothing to resolve.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Apply destructive steps (a removed field, a lossy retype: the values stay in the
    /// archive column) and accept, as they are, the records breaking a field's new rules
    /// where no resolution is given and accepting them is possible.
    #[serde(default)]
    pub confirm_destructive: bool,
    /// Per field, how the records breaking its new rules are resolved.
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, Resolution>)]
    pub resolve: std::collections::BTreeMap<String, Resolution>,
}

/// The kinds of [`Resolution`], as a plan lists what a step accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionKind {
    /// [`Resolution::Fix`].
    Fix,
    /// [`Resolution::Archive`].
    Archive,
    /// [`Resolution::Accept`].
    Accept,
}

impl Resolution {
    /// Which kind this is.
    pub fn kind(&self) -> ResolutionKind {
        match self {
            Resolution::Fix { .. } => ResolutionKind::Fix,
            Resolution::Archive => ResolutionKind::Archive,
            Resolution::Accept => ResolutionKind::Accept,
        }
    }
}

/// The resolutions a step accepts for its field's violations: `unique` cannot accept
/// repeats (the index would not build) nor fix them to one value (it would repeat); a
/// required field cannot be emptied; a new column has nothing to accept or archive.
pub fn resolutions_for(action: &StepAction, field: &Field) -> Vec<ResolutionKind> {
    use ResolutionKind as R;
    match action {
        StepAction::AddUniqueIndex { .. } => vec![R::Archive],
        StepAction::AddColumn { .. } => vec![R::Fix],
        _ if field.required => vec![R::Fix, R::Accept],
        _ => vec![R::Fix, R::Archive, R::Accept],
    }
}

/// Values a step cannot carry over: how many, and the first few.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Losses {
    /// How many.
    pub count: u64,
    /// The first few (at most [`LOSS_EXAMPLES`]), by record; shown only to a caller who
    /// may read every record of the item (anyone else gets the count alone).
    pub examples: Vec<LostValue>,
}

/// One value a step cannot carry over.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LostValue {
    /// The record.
    pub id: String,
    /// The value as stored now.
    pub value: String,
}

/// How many lost values a plan shows by name.
pub const LOSS_EXAMPLES: usize = 5;

/// Everything changing one DataItem does.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MigrationPlan {
    /// The changed DataItem.
    pub item: String,
    /// The active version.
    pub from_version: u32,
    /// The version the change becomes.
    pub to_version: u32,
    /// The steps, in the order they run.
    pub steps: Vec<MigrationStep>,
    /// Whether any step is destructive.
    pub destructive: bool,
}

/// The plan that turns `old`'s tables into `new`'s for `item` and every DataItem inheriting
/// from it. `old` lacks `item` when it is new.
pub fn plan(old: &Catalog, new: &Catalog, item: &str, dialect: Dialect) -> MigrationPlan {
    let from_version = old.get(item).map_or(0, |i| i.version);
    let to_version = from_version + 1;
    let mut steps = Vec::new();
    let mut tables = vec![item.to_owned()];
    tables.extend(new.descendants(item));
    for table_item in tables {
        let table = table_name(&table_item);
        let after = new.effective_fields(&table_item);
        let Some(_) = old.get(&table_item) else {
            steps.push(MigrationStep {
                rows: None,
                losses: None,
                violations: None,
                item: table_item.clone(),
                sql: dialect.create_table(&table_item, &after),
                table,
                action: StepAction::CreateTable,
                description: format!(
                    "create the table of '{table_item}' with {} fields",
                    after.len()
                ),
                destructive: false,
            });
            continue;
        };
        let before = old.effective_fields(&table_item);
        diff_table(
            &table_item,
            &table,
            &before,
            &after,
            to_version,
            dialect,
            &mut steps,
        );
    }
    if let (Some(a), Some(b)) = (old.get(item), new.get(item))
        && (a.label != b.label || a.consists != b.consists || a.visibility != b.visibility)
    {
        steps.push(MigrationStep {
            rows: None,
            losses: None,
            violations: None,
            item: item.to_owned(),
            table: table_name(item),
            action: StepAction::ChangeRules { field: None },
            description: "labels, composition or row visibility change; no table changes".into(),
            destructive: false,
            sql: Vec::new(),
        });
    }
    let destructive = steps.iter().any(|s| s.destructive);
    MigrationPlan {
        item: item.to_owned(),
        from_version,
        to_version,
        steps,
        destructive,
    }
}

fn diff_table(
    item: &str,
    table: &str,
    before: &[EffectiveField],
    after: &[EffectiveField],
    version: u32,
    dialect: Dialect,
    steps: &mut Vec<MigrationStep>,
) {
    let mut push =
        |action: StepAction, description: String, destructive: bool, sql: Vec<String>| {
            steps.push(MigrationStep {
                rows: None,
                losses: None,
                violations: None,
                item: item.to_owned(),
                table: table.to_owned(),
                action,
                description,
                destructive,
                sql,
            })
        };
    let find = |list: &[EffectiveField], name: &str| {
        list.iter()
            .find(|e| e.field.name == name)
            .map(|e| e.field.clone())
    };
    // Old name → new field, for the fields a change renames (and whose old name exists).
    let renamed: Vec<(String, Field)> = after
        .iter()
        .filter_map(|e| {
            let from = e.field.renamed_from.as_ref()?;
            (find(before, &e.field.name).is_none() && find(before, from).is_some())
                .then(|| (from.clone(), e.field.clone()))
        })
        .collect();
    for old in before.iter().map(|e| &e.field) {
        if find(after, &old.name).is_none() && !renamed.iter().any(|(from, _)| from == &old.name) {
            let archived_as = archived_column(&old.name, version);
            let hint = after
                .iter()
                .map(|e| &e.field)
                .find(|n| {
                    n.field_type == old.field_type
                        && n.renamed_from.is_none()
                        && find(before, &n.name).is_none()
                })
                .map(|n| {
                    format!(
                        " (if '{}' is its new name, say \"renamed_from\": \"{}\" on it to keep the values)",
                        n.name, old.name
                    )
                })
                .unwrap_or_default();
            let mut sql = dialect.drop_field_indexes(table, old);
            sql.push(dialect.rename_column(table, &old.name, &archived_as));
            push(
                StepAction::ArchiveColumn {
                    field: old.clone(),
                    archived_as: archived_as.clone(),
                },
                format!(
                    "remove field '{}' ({}); its values are kept in column '{archived_as}'{hint}",
                    old.name, old.label.zh
                ),
                true,
                sql,
            );
        }
    }
    let mut search_changed = false;
    let recompute: Vec<String> = after
        .iter()
        .map(|e| &e.field)
        .filter(|new| {
            new.compute.is_some()
                && find(before, &new.name).is_none_or(|old| {
                    old.compute != new.compute || old.field_type != new.field_type
                })
        })
        .map(|f| f.name.clone())
        .collect();
    for new in after.iter().map(|e| &e.field) {
        let old = match renamed.iter().find(|(_, f)| f.name == new.name) {
            Some((from, _)) => find(before, from).map(|old| {
                // The column takes its new name first; every later step sees it there.
                let mut moved = old.clone();
                moved.name = new.name.clone();
                let mut sql = dialect.drop_field_indexes(table, &old);
                sql.push(dialect.rename_column(table, from, &new.name));
                sql.extend(dialect.field_indexes(table, &moved));
                search_changed |= old.searchable || new.searchable;
                push(
                    StepAction::RenameColumn {
                        from: from.clone(),
                        field: new.clone(),
                    },
                    format!(
                        "rename field '{from}' to '{}' ({}); its values stay",
                        new.name, new.label.zh
                    ),
                    false,
                    sql,
                );
                moved
            }),
            None => find(before, &new.name),
        };
        let Some(old) = old else {
            let mut sql = vec![dialect.add_column(table, &new.name, new.field_type)];
            sql.extend(dialect.field_indexes(table, new));
            search_changed |= new.searchable;
            push(
                StepAction::AddColumn { field: new.clone() },
                format!(
                    "add field '{}' ({}, {})",
                    new.name,
                    new.label.zh,
                    new.field_type.as_str()
                ),
                false,
                sql,
            );
            continue;
        };
        search_changed |= old.searchable != new.searchable;
        let retyped = old.field_type != new.field_type
            || old.scale() != new.scale()
            || (new.field_type == crate::field::FieldType::Reference && old.target != new.target);
        if retyped {
            let archived_as = archived_column(&new.name, version);
            let temp = format!("{}__new", new.name);
            let mut sql = dialect.drop_field_indexes(table, &old);
            sql.push(dialect.add_column(table, &temp, new.field_type));
            sql.push(format!(
                "-- erpos converts every value of {} into {temp}",
                new.name
            ));
            sql.push(dialect.rename_column(table, &new.name, &archived_as));
            sql.push(dialect.rename_column(table, &temp, &new.name));
            sql.extend(dialect.field_indexes(table, new));
            let lossy = conversion_is_lossy(&old, new);
            push(
                StepAction::RetypeColumn {
                    from: Box::new(old.clone()),
                    to: Box::new(new.clone()),
                    archived_as: archived_as.clone(),
                },
                format!(
                    "change field '{}' from {} to {}{}; the old values are kept in column '{archived_as}'",
                    new.name,
                    old.field_type.as_str(),
                    new.field_type.as_str(),
                    if lossy {
                        " (values that do not convert become empty)"
                    } else {
                        ""
                    }
                ),
                lossy,
                sql,
            );
            continue;
        }
        if new.unique && !old.unique {
            let mut sql = dialect.drop_field_indexes(table, &old);
            sql.push(dialect.create_unique_index(table, &new.name));
            push(
                StepAction::AddUniqueIndex { field: new.clone() },
                format!(
                    "make field '{}' unique (refused if values already repeat)",
                    new.name
                ),
                false,
                sql,
            );
        } else if old.unique && !new.unique {
            let mut sql = dialect.drop_field_indexes(table, &old);
            sql.extend(dialect.field_indexes(table, new));
            push(
                StepAction::DropUniqueIndex { field: new.clone() },
                format!("stop requiring field '{}' to be unique", new.name),
                false,
                sql,
            );
        }
        let mut rules_old = old.clone();
        rules_old.unique = new.unique;
        rules_old.searchable = new.searchable;
        rules_old.compute = new.compute.clone();
        rules_old.renamed_from = new.renamed_from.clone();
        if &rules_old != new {
            push(
                StepAction::ChangeRules {
                    field: Some(new.name.clone()),
                },
                format!(
                    "change the rules of field '{}'; existing values are kept as they are",
                    new.name
                ),
                false,
                Vec::new(),
            );
        }
    }
    if !recompute.is_empty() {
        push(
            StepAction::Recompute {
                fields: recompute.clone(),
            },
            format!(
                "compute {} on every record",
                recompute
                    .iter()
                    .map(|f| format!("'{f}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            false,
            Vec::new(),
        );
    }
    if search_changed {
        push(
            StepAction::RebuildSearch,
            "recompute the search keys of every record".into(),
            false,
            Vec::new(),
        );
    }
}
