//! Resolving, when a plan is applied, the records that break a field's new rules: the
//! analyst says per field how (`fix` with a value, `archive`, `accept`), or confirms the
//! plan to accept them as they are where that is possible. Whatever is fixed or archived
//! keeps its original value in the field's archive column, so nothing counted is lost.

use std::collections::{BTreeMap, HashSet};

use erpos_design::ddl::archived_column;
use erpos_design::field_rules::FieldRules;
use erpos_design::migration::{
    MigrationPlan, MigrationStep, Resolution, ResolutionKind, StepAction,
};
use erpos_design::{Catalog, Field, FieldType, Issue, Value};

use crate::db::Tx;
use crate::error::{KernelError, Result};

/// Per field name, how its breaking records are resolved.
pub type Resolutions = BTreeMap<String, Resolution>;

/// How many record ids one UPDATE names.
const IDS_PER_STATEMENT: usize = 500;

fn kinds(list: &[ResolutionKind]) -> String {
    list.iter()
        .map(|k| match k {
            ResolutionKind::Fix => "fix",
            ResolutionKind::Archive => "archive",
            ResolutionKind::Accept => "accept",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decides how every step's violations are resolved and records it in the plan. Refuses
/// with 422 (`Invalid`) a resolution naming no field of the item, a fix value that breaks
/// the field's rules, or a resolution the step cannot take; and with 409
/// (`DestructiveUnconfirmed`) a plan whose destructive steps (`structural`, by index) are
/// not confirmed or whose violations are neither resolved nor, where allowed, accepted by
/// `confirm_destructive`.
pub(super) fn decide(
    plan: &mut MigrationPlan,
    new: &Catalog,
    structural: &[bool],
    resolve: &Resolutions,
    confirm: bool,
) -> Result<()> {
    let fields: Vec<Field> = new
        .effective_fields(&plan.item)
        .into_iter()
        .map(|e| e.field)
        .collect();
    let mut invalid = Vec::new();
    for (name, resolution) in resolve {
        let Some(field) = fields.iter().find(|f| &f.name == name) else {
            let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
            invalid.push(Issue::new(
                format!("/resolve/{name}"),
                erpos_design::directory::unknown("field", name, names.iter()),
            ));
            continue;
        };
        if let Resolution::Fix { value } = resolution {
            let at = format!("/resolve/{name}/value");
            match Value::from_json(field, value) {
                Ok(Value::Null) => invalid.push(Issue::new(
                    at,
                    "a fix needs a value; to empty the records, archive them",
                )),
                Ok(v) => {
                    if let Some(problem) = FieldRules::new(field).problem(&v) {
                        invalid.push(Issue::new(at, format!("the fix {problem}")));
                    }
                }
                Err(problem) => invalid.push(Issue::new(at, problem)),
            }
        }
    }
    let mut unresolved = Vec::new();
    // Repeats left in a new unique field keep the code clients know for them.
    let mut repeats = false;
    for (index, step) in plan.steps.iter_mut().enumerate() {
        if structural.get(index).copied().unwrap_or(false) && !confirm {
            unresolved.push(Issue::new(
                format!("/steps/{}", step.table),
                step.description.clone(),
            ));
        }
        let Some(violations) = step.violations.as_mut() else {
            continue;
        };
        let example = violations
            .examples
            .first()
            .map(|v| format!(" (record {}: {})", v.id, v.problem))
            .unwrap_or_default();
        match resolve.get(&violations.field) {
            Some(r) if violations.resolutions.contains(&r.kind()) => {
                violations.resolved = Some(r.kind());
            }
            Some(r) => invalid.push(Issue::new(
                format!("/resolve/{}/action", violations.field),
                format!(
                    "'{}' cannot resolve the {} record(s) breaking '{}'{example}; this step takes: {}",
                    kinds(&[r.kind()]),
                    violations.count,
                    violations.field,
                    kinds(&violations.resolutions)
                ),
            )),
            None if confirm && violations.resolutions.contains(&ResolutionKind::Accept) => {
                violations.resolved = Some(ResolutionKind::Accept);
            }
            None => {
                repeats |= matches!(step.action, StepAction::AddUniqueIndex { .. });
                unresolved.push(Issue::new(
                format!("/resolve/{}", violations.field),
                format!(
                    "{} record(s) of '{}' break the new rules of '{}'{example}; resolve them with {{\"action\": …}} one of: {}",
                    violations.count,
                    step.item,
                    violations.field,
                    kinds(&violations.resolutions)
                ),
            ));
            }
        }
    }
    if !invalid.is_empty() {
        return Err(KernelError::Invalid(invalid));
    }
    if repeats {
        return Err(KernelError::Conflict {
            code: crate::error::ErrorCode::UniqueViolation,
            message: "values repeat in a field that is to become unique: archive the repeats, or change them first".into(),
            details: unresolved,
        });
    }
    if !unresolved.is_empty() {
        return Err(KernelError::DestructiveUnconfirmed(unresolved));
    }
    Ok(())
}

/// Whether a step's violations are resolved before it runs (a unique index cannot be
/// built over the repeats) rather than after (a new column must exist to be fixed, a
/// retype's values must be converted first).
pub(super) fn resolves_before(step: &MigrationStep) -> bool {
    matches!(step.action, StepAction::AddUniqueIndex { .. })
}

/// Carries out, step by step in the applying transaction, the resolutions `decide`
/// recorded in the plan, remembering the archive columns it created and the tables whose
/// search keys must be rebuilt because a searchable value changed.
pub(super) struct Resolver<'a> {
    resolve: &'a Resolutions,
    version: u32,
    archived: HashSet<(String, String)>,
    searches: Vec<(String, String)>,
}

impl<'a> Resolver<'a> {
    /// A resolver for a plan applied as `version`.
    pub(super) fn new(resolve: &'a Resolutions, version: u32) -> Self {
        Self {
            resolve,
            version,
            archived: HashSet::new(),
            searches: Vec::new(),
        }
    }

    /// The (item, table) pairs whose search keys must be rebuilt, each once.
    pub(super) fn searches_to_rebuild(mut self) -> Vec<(String, String)> {
        self.searches.sort();
        self.searches.dedup();
        self.searches
    }

    /// Carries out the resolution recorded in `step` on the records `ids`, in `tx`: the
    /// original values go to the field's archive column, then the field takes the fix or
    /// becomes empty, and each record's version moves on so a client holding the old one
    /// cannot overwrite the change unawares.
    pub(super) async fn carry_out(
        &mut self,
        tx: &mut Tx,
        new: &Catalog,
        step: &MigrationStep,
        ids: &[String],
    ) -> Result<()> {
        let Some(violations) = &step.violations else {
            return Ok(());
        };
        let resolution = match violations.resolved {
            Some(ResolutionKind::Fix) | Some(ResolutionKind::Archive) => {
                self.resolve.get(&violations.field)
            }
            _ => None,
        };
        let Some(resolution) = resolution else {
            return Ok(());
        };
        let Some(field) = new
            .effective_fields(&step.item)
            .into_iter()
            .map(|e| e.field)
            .find(|f| f.name == violations.field)
        else {
            return Ok(());
        };
        let d = tx.dialect();
        let value = match resolution {
            Resolution::Fix { value } => Value::from_json(&field, value).map_err(|m| {
                KernelError::Invalid(vec![Issue::new(
                    format!("/resolve/{}/value", field.name),
                    m,
                )])
            })?,
            _ => Value::Null,
        };
        // A retype already keeps every original in its archive column; a new column has none.
        let archive = match &step.action {
            StepAction::RetypeColumn { .. } | StepAction::AddColumn { .. } => None,
            _ => Some(archived_column(&field.name, self.version)),
        };
        if let Some(column) = &archive
            && self.archived.insert((step.table.clone(), column.clone()))
        {
            tx.execute_ddl(&d.add_column(&step.table, column, field.field_type))
                .await?;
        }
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut sql = tx.sql();
            sql.push("UPDATE ").ident(&step.table).push(" SET ");
            if let Some(column) = &archive {
                sql.ident(column).push(" = ").ident(&field.name).push(", ");
            }
            sql.ident(&field.name)
                .push(" = ")
                .param(value.to_storage(d), d.param_cast(field.field_type))
                .push(", ")
                .ident("version")
                .push(" = ")
                .ident("version")
                .push(" + 1 WHERE ")
                .ident("id")
                .push(" IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.param(Some(id.clone()), d.param_cast(FieldType::Reference));
            }
            sql.push(")");
            tx.execute(sql).await?;
        }
        if field.searchable {
            self.searches.push((step.item.clone(), step.table.clone()));
        }
        Ok(())
    }
}
