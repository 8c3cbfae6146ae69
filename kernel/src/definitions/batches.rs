//! The batches of a long migration: the values of retyped fields converted into their new
//! columns a thousand rows at a time, each batch its own transaction, while the old
//! version stays in force (expand); the switch then only renames (contract).
//!
//! A row a write changes after its batch is caught by a marker: each conversion sets
//! `_run_version` to the row's `version`, and the switch converts again every row whose
//! marker is missing (created since) or behind its version (changed since). Writes are
//! refused during a run, so this is normally nothing; it is what keeps a write that raced
//! the start from being lost.

use erpos_design::Field;
use erpos_design::ddl::quote;
use erpos_design::migration::{MigrationPlan, StepAction};
use erpos_design::{Dialect, FieldType, Value};

use crate::db::{Row, Tx};
use crate::error::{KernelError, Result};

/// The marker column of a conversion (see the module's comment).
pub(super) const MARKER: &str = "_run_version";

/// One retyped field of a conversion pass.
#[derive(Debug, Clone)]
pub(super) struct Retype {
    /// The column its values are read from before the switch (a field renamed and
    /// retyped at once is still under its old name).
    pub source: String,
    /// The column its new values are written to (`<field>__new`).
    pub temp: String,
    /// The field as it was.
    pub from: Field,
    /// The field as it becomes.
    pub to: Field,
}

/// One conversion pass: a table whose retyped fields are converted together, so that one
/// marker tells which rows changed after their batch.
#[derive(Debug, Clone)]
pub(super) struct Conversion {
    /// The table.
    pub table: String,
    /// Its retyped fields.
    pub fields: Vec<Retype>,
}

/// The conversion passes of `plan`, one per table with retyped fields, in plan order.
pub(super) fn conversions(plan: &MigrationPlan) -> Vec<Conversion> {
    let mut out: Vec<Conversion> = Vec::new();
    for step in &plan.steps {
        let StepAction::RetypeColumn { from, to, .. } = &step.action else {
            continue;
        };
        let source = plan
            .steps
            .iter()
            .find_map(|s| match &s.action {
                StepAction::RenameColumn { from, field }
                    if s.table == step.table && field.name == to.name =>
                {
                    Some(from.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| from.name.clone());
        let retype = Retype {
            source,
            temp: temp_column(&to.name),
            from: (**from).clone(),
            to: (**to).clone(),
        };
        match out.iter_mut().find(|c| c.table == step.table) {
            Some(c) => c.fields.push(retype),
            None => out.push(Conversion {
                table: step.table.clone(),
                fields: vec![retype],
            }),
        }
    }
    out
}

/// The column a retype converts `field`'s values into before the switch renames it.
pub(super) fn temp_column(field: &str) -> String {
    format!("{field}__new")
}

/// The columns a run adds before its first batch: each new column and the marker.
pub(super) fn expand(d: Dialect, conversion: &Conversion) -> Vec<String> {
    let mut sql: Vec<String> = conversion
        .fields
        .iter()
        .map(|r| d.add_column(&conversion.table, &r.temp, r.to.field_type))
        .collect();
    sql.push(d.add_column(&conversion.table, MARKER, FieldType::Integer));
    sql
}

/// Drops what `expand` added: a run that failed leaves the table as it found it.
pub(super) fn contract(conversion: &Conversion) -> Vec<String> {
    let mut sql: Vec<String> = conversion
        .fields
        .iter()
        .map(|r| drop_column(&conversion.table, &r.temp))
        .collect();
    sql.push(drop_column(&conversion.table, MARKER));
    sql
}

/// `ALTER TABLE … DROP COLUMN …` (the same on both databases).
pub(super) fn drop_column(table: &str, column: &str) -> String {
    format!("ALTER TABLE {} DROP COLUMN {}", quote(table), quote(column))
}

/// Converts the next `limit` rows of `conversion`'s table after `after` (in id order), in
/// `tx`. Answers how many rows it read and the last id, so the caller stores the cursor in
/// the same transaction.
pub(super) async fn convert_batch(
    tx: &mut Tx,
    conversion: &Conversion,
    after: Option<&str>,
    limit: usize,
) -> Result<(usize, Option<String>)> {
    let d = tx.dialect();
    let mut sql = select_sources(tx, conversion);
    if let Some(last) = after {
        sql.push(" WHERE ")
            .ident("id")
            .push(" > ")
            .param(Some(last.to_owned()), d.param_cast(FieldType::Reference));
    }
    sql.push(" ORDER BY ")
        .ident("id")
        .push(" LIMIT ")
        .push(&limit.to_string());
    let rows = tx.fetch(sql).await?;
    let last = rows.last().and_then(|r| r.first().cloned().flatten());
    let n = rows.len();
    convert_rows(tx, conversion, rows).await?;
    Ok((n, last))
}

/// Converts, in the switch's transaction, every row a batch did not see as it is now
/// (see the module's comment); answers how many.
pub(super) async fn reconcile(tx: &mut Tx, conversion: &Conversion) -> Result<usize> {
    let mut sql = select_sources(tx, conversion);
    sql.push(" WHERE ")
        .ident(MARKER)
        .push(" IS NULL OR ")
        .ident(MARKER)
        .push(" <> ")
        .ident("version");
    let rows = tx.fetch(sql).await?;
    let n = rows.len();
    convert_rows(tx, conversion, rows).await?;
    Ok(n)
}

fn select_sources(tx: &Tx, conversion: &Conversion) -> crate::sql::Sql {
    let mut sql = tx.sql();
    sql.push("SELECT ").col_text("id");
    for r in &conversion.fields {
        sql.push(", ").col_text(&r.source);
    }
    sql.push(" FROM ").ident(&conversion.table);
    sql
}

/// Writes each row's converted values (NULL where a value does not convert: the switch
/// keeps the original in the archive column) and its marker.
async fn convert_rows(tx: &mut Tx, conversion: &Conversion, rows: Vec<Row>) -> Result<()> {
    let d = tx.dialect();
    for row in rows {
        let Some(Some(id)) = row.first() else {
            continue;
        };
        let mut sql = tx.sql();
        sql.push("UPDATE ").ident(&conversion.table).push(" SET ");
        for (i, r) in conversion.fields.iter().enumerate() {
            let text = row.get(i + 1).cloned().flatten();
            let old =
                Value::from_storage(&r.from, text.as_deref()).map_err(KernelError::Corrupt)?;
            let converted = old.convert(&r.to).unwrap_or(Value::Null);
            sql.ident(&r.temp)
                .push(" = ")
                .param(converted.to_storage(d), d.param_cast(r.to.field_type))
                .push(", ");
        }
        sql.ident(MARKER)
            .push(" = ")
            .ident("version")
            .push(" WHERE ")
            .ident("id")
            .push(" = ")
            .param(Some(id.clone()), d.param_cast(FieldType::Reference));
        tx.execute(sql).await?;
    }
    Ok(())
}
