//! Counting a migration plan in the data: how many records each step touches, which values
//! a retype cannot convert, and which records break a field's new rules, read in the
//! transaction that shows or applies the plan.

use std::collections::HashMap;

use erpos_design::field_rules::FieldRules;
use erpos_design::migration::{
    LOSS_EXAMPLES, Losses, LostValue, MigrationPlan, MigrationStep, StepAction, Violation,
    Violations, resolutions_for,
};
use erpos_design::{Catalog, Field, Value};

use crate::db::Tx;
use crate::error::Result;

/// What counting found beyond the plan's own figures: per step (by index), the ids of every
/// record breaking its field's new rules, which a resolution then fixes or archives.
#[derive(Default)]
pub(super) struct Breaking {
    /// Step index → record ids.
    pub by_step: HashMap<usize, Vec<String>>,
}

/// Counts, in the data, what each step of `plan` touches: the records of its table; for a
/// retype the values that will not convert (how many, and the first few with their
/// record), which the step then empties and keeps in its archive column; and for a rule
/// tightened, a new unique index or a new required field, the records that would break it.
/// Read in `tx`, so counted in the applying transaction the counts are exactly what the
/// steps do. Columns are read under the names they have before the plan runs.
pub(super) async fn count_plan(
    tx: &mut Tx,
    old: &Catalog,
    new: &Catalog,
    plan: &mut MigrationPlan,
) -> Result<Breaking> {
    let renames: Vec<(String, String, String)> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::RenameColumn { from, field } => {
                Some((s.table.clone(), field.name.clone(), from.clone()))
            }
            _ => None,
        })
        .collect();
    let stored = |table: &str, name: &str| {
        renames
            .iter()
            .find(|(t, to, _)| t == table && to == name)
            .map_or_else(|| name.to_owned(), |(_, _, from)| from.clone())
    };
    let mut breaking = Breaking::default();
    for (index, step) in plan.steps.iter_mut().enumerate() {
        if matches!(step.action, StepAction::CreateTable) {
            continue;
        }
        let mut sql = tx.sql();
        sql.push("SELECT CAST(COUNT(*) AS TEXT) FROM ")
            .ident(&step.table);
        let rows = tx.fetch(sql).await?;
        step.rows = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|t| t.parse().ok());
        let found = match step.action.clone() {
            StepAction::RetypeColumn { from, to, .. } => {
                let column = stored(&step.table, &from.name);
                retype(tx, step, &column, &from, &to).await?
            }
            StepAction::ChangeRules { field: Some(name) } => {
                let (Some(was), Some(now)) = (
                    field_of(old, &step.item, new, &name, true),
                    field_of(old, &step.item, new, &name, false),
                ) else {
                    continue;
                };
                let column = stored(&step.table, &name);
                let rules = FieldRules::new(&now);
                let mut found = Found::new(&now, &step.action);
                for (id, text) in values(tx, &step.table, &column).await? {
                    let Ok(value) = Value::from_storage(&was, text.as_deref()) else {
                        continue;
                    };
                    if let Some(problem) = rules.problem(&value) {
                        found.add(id, text, problem);
                    }
                }
                found
            }
            StepAction::AddUniqueIndex { field } => {
                let column = stored(&step.table, &field.name);
                let mut first: HashMap<String, String> = HashMap::new();
                let mut found = Found::new(&field, &step.action);
                for (id, text) in values(tx, &step.table, &column).await? {
                    let Some(text) = text else { continue };
                    match first.get(&text) {
                        Some(earlier) => {
                            let problem = format!("repeats the value of record {earlier}");
                            found.add(id, Some(text), problem);
                        }
                        None => {
                            first.insert(text, id);
                        }
                    }
                }
                found
            }
            StepAction::AddColumn { field }
                if field.required
                    && field.default.is_none()
                    && field.compute.is_none()
                    && field.series.is_none() =>
            {
                let mut found = Found::new(&field, &step.action);
                for (id, _) in values(tx, &step.table, "id").await? {
                    found.add(
                        id,
                        None,
                        "is required and this record has no value: give the field a default, or fix the records that exist".into(),
                    );
                }
                found
            }
            _ => continue,
        };
        if let Some((violations, ids)) = found.finish() {
            step.description.push_str(&format!(
                "; {} record(s) break the new rules of '{}'",
                violations.count, violations.field
            ));
            step.violations = Some(violations);
            breaking.by_step.insert(index, ids);
        }
    }
    Ok(breaking)
}

/// The field `name` of `item` as it was (`before`: in `old`, under its old name when the
/// change renames it) or as it will be (in `new`).
fn field_of(old: &Catalog, item: &str, new: &Catalog, name: &str, before: bool) -> Option<Field> {
    let now = new
        .effective_fields(item)
        .into_iter()
        .find(|e| e.field.name == name)?
        .field;
    if !before {
        return Some(now);
    }
    let was = now.renamed_from.clone().unwrap_or_else(|| name.to_owned());
    old.effective_fields(item)
        .into_iter()
        .find(|e| e.field.name == was)
        .map(|e| e.field)
}

/// Every record's id and the text of `column`, in id order.
async fn values(tx: &mut Tx, table: &str, column: &str) -> Result<Vec<(String, Option<String>)>> {
    let mut sql = tx.sql();
    sql.push("SELECT ").col_text("id");
    if column != "id" {
        sql.push(", ").col_text(column);
    }
    sql.push(" FROM ")
        .ident(table)
        .push(" ORDER BY ")
        .ident("id");
    Ok(tx
        .fetch(sql)
        .await?
        .into_iter()
        .filter_map(|row| {
            let id = row.first().cloned().flatten()?;
            Some((id, row.get(1).cloned().flatten()))
        })
        .collect())
}

/// Counts a retype: the values that will not convert (losses), and among those that do,
/// the ones breaking the new field's pattern or `required` (violations).
async fn retype(
    tx: &mut Tx,
    step: &mut MigrationStep,
    column: &str,
    from: &Field,
    to: &Field,
) -> Result<Found> {
    let mut losses = Losses {
        count: 0,
        examples: Vec::new(),
    };
    let rules = FieldRules::new(to);
    let mut found = Found::new(to, &step.action);
    for (id, text) in values(tx, &step.table, column).await? {
        let converted = Value::from_storage(from, text.as_deref())
            .ok()
            .and_then(|v| v.convert(to));
        match (converted, text) {
            (Some(value), text) => {
                if let Some(problem) = rules.problem(&value) {
                    found.add(id, text, problem);
                }
            }
            (None, Some(text)) => {
                losses.count += 1;
                if losses.examples.len() < LOSS_EXAMPLES {
                    losses.examples.push(LostValue { id, value: text });
                }
            }
            (None, None) => {}
        }
    }
    if losses.count > 0 {
        step.description.push_str(&format!(
            "; {} value(s) will not convert and are kept only in the archive column",
            losses.count
        ));
    }
    step.losses = Some(losses);
    Ok(found)
}

/// Records found breaking one step's rules, gathered as they are read.
struct Found {
    field: String,
    resolutions: Vec<erpos_design::migration::ResolutionKind>,
    ids: Vec<String>,
    examples: Vec<Violation>,
}

impl Found {
    fn new(field: &Field, action: &StepAction) -> Self {
        Self {
            field: field.name.clone(),
            resolutions: resolutions_for(action, field),
            ids: Vec::new(),
            examples: Vec::new(),
        }
    }

    fn add(&mut self, id: String, value: Option<String>, problem: String) {
        if self.examples.len() < LOSS_EXAMPLES {
            self.examples.push(Violation {
                id: id.clone(),
                value,
                problem,
            });
        }
        self.ids.push(id);
    }

    fn finish(self) -> Option<(Violations, Vec<String>)> {
        if self.ids.is_empty() {
            return None;
        }
        Some((
            Violations {
                field: self.field,
                count: self.ids.len() as u64,
                examples: self.examples,
                resolutions: self.resolutions,
                resolved: None,
            },
            self.ids,
        ))
    }
}
