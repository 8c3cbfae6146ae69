//! Running the steps of a migration plan inside the applying transaction: the DDL of the
//! plan, plus the data work DDL cannot do (converting values, back-filling defaults,
//! rebuilding search keys).

use erpos_design::catalog::search_document;
use erpos_design::migration::StepAction;
use erpos_design::{Catalog, FieldType, Value};

use crate::db::Tx;
use crate::error::{KernelError, Result};

/// Runs one migration step inside the applying transaction. With `converted`, the values
/// of a retyped field are already in their new column (a long run converted them in
/// batches, see `batches`): the step only renames.
pub(super) async fn run_step(
    tx: &mut Tx,
    new: &Catalog,
    step: &erpos_design::MigrationStep,
    converted: bool,
) -> Result<()> {
    match &step.action {
        StepAction::RetypeColumn { from, to, .. } => {
            // The plan's SQL has a marker line where values are converted: run what comes
            // before it, convert, then run the rest.
            let marker = step
                .sql
                .iter()
                .position(|s| s.starts_with("--"))
                .unwrap_or(step.sql.len());
            let temp = super::batches::temp_column(&to.name);
            let d = tx.dialect();
            let added = d.add_column(&step.table, &temp, to.field_type);
            for statement in &step.sql[..marker] {
                if converted && statement == &added {
                    continue;
                }
                tx.execute_ddl(statement).await?;
            }
            if converted {
                for statement in step.sql.iter().skip(marker + 1) {
                    tx.execute_ddl(statement).await?;
                }
                return Ok(());
            }
            let mut sql = tx.sql();
            sql.push("SELECT ")
                .col_text("id")
                .push(", ")
                .col_text(&from.name)
                .push(" FROM ")
                .ident(&step.table);
            let rows = tx.fetch(sql).await?;
            let mut lost = 0usize;
            for row in rows {
                let (Some(Some(id)), Some(old_text)) = (row.first(), row.get(1)) else {
                    continue;
                };
                let old_value =
                    Value::from_storage(from, old_text.as_deref()).map_err(KernelError::Corrupt)?;
                let converted = old_value.convert(to).unwrap_or_else(|| {
                    lost += 1;
                    Value::Null
                });
                let mut sql = tx.sql();
                sql.push("UPDATE ")
                    .ident(&step.table)
                    .push(" SET ")
                    .ident(&temp)
                    .push(" = ")
                    .param(converted.to_storage(d), d.param_cast(to.field_type))
                    .push(" WHERE id = ")
                    .param(Some(id.clone()), d.param_cast(FieldType::Reference));
                tx.execute(sql).await?;
            }
            if lost > 0 {
                tracing::warn!(table = %step.table, field = %to.name, lost, "values did not convert; originals archived");
            }
            for statement in step.sql.iter().skip(marker + 1) {
                tx.execute_ddl(statement).await?;
            }
            Ok(())
        }
        StepAction::RebuildSearch => rebuild_search(tx, new, &step.item, &step.table).await,
        StepAction::AddColumn { field } => {
            for statement in &step.sql {
                tx.execute_ddl(statement).await?;
            }
            // The records that exist take the new field's default, as new ones do.
            if let Some(default) = &field.default
                && field.compute.is_none()
            {
                let value = Value::from_json(field, default).map_err(KernelError::Corrupt)?;
                let d = tx.dialect();
                let mut sql = tx.sql();
                sql.push("UPDATE ")
                    .ident(&step.table)
                    .push(" SET ")
                    .ident(&field.name)
                    .push(" = ")
                    .param(value.to_storage(d), d.param_cast(field.field_type));
                tx.execute(sql).await?;
            }
            Ok(())
        }
        _ => {
            for statement in &step.sql {
                tx.execute_ddl(statement).await?;
            }
            Ok(())
        }
    }
}

/// Recomputes the pinyin search document of every record of `item` (stored in `table`)
/// from its searchable fields, in `tx`.
pub(super) async fn rebuild_search(
    tx: &mut Tx,
    catalog: &Catalog,
    item: &str,
    table: &str,
) -> Result<()> {
    // The pinyin sort keys are rebuilt with the documents: forgotten, then stored anew.
    for forget in crate::store::sort_keys::forget(tx.dialect(), item, None) {
        tx.execute(forget).await?;
    }
    search_rows(tx, catalog, item, table, None).await?;
    Ok(())
}

/// Recomputes the search documents (and sort keys) of the next `limit` records of `item`
/// after `after`, in id order, in `tx`: a long run's batch. Answers how many records it
/// read and the last id.
pub(super) async fn search_batch(
    tx: &mut Tx,
    catalog: &Catalog,
    item: &str,
    table: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(usize, Option<String>)> {
    search_rows(tx, catalog, item, table, Some((after, limit))).await
}

/// The documents of the records of `table`: all of them (their sort keys forgotten by the
/// caller), or a batch (`after`, `limit`) whose records forget their own first.
async fn search_rows(
    tx: &mut Tx,
    catalog: &Catalog,
    item: &str,
    table: &str,
    batch: Option<(Option<&str>, usize)>,
) -> Result<(usize, Option<String>)> {
    let fields = catalog.effective_fields(item);
    let searchable: Vec<_> = fields.iter().filter(|e| e.field.searchable).collect();
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push("SELECT ").col_text("id");
    for e in &searchable {
        sql.push(", ").col_text(&e.field.name);
    }
    sql.push(" FROM ").ident(table);
    if let Some((after, limit)) = batch {
        if let Some(after) = after {
            sql.push(" WHERE \"id\" > ")
                .param(Some(after.to_owned()), d.param_cast(FieldType::Reference));
        }
        sql.push(" ORDER BY \"id\" LIMIT ").push(&limit.to_string());
    }
    let rows = tx.fetch(sql).await?;
    let n = rows.len();
    let last = rows.last().and_then(|r| r.first().cloned().flatten());
    for row in rows {
        let Some(Some(id)) = row.first() else {
            continue;
        };
        let text_of = |name: &str| {
            searchable
                .iter()
                .position(|e| e.field.name == name)
                .and_then(|i| row.get(i + 1).cloned().flatten())
        };
        let doc = search_document(&fields, text_of);
        let mut sql = tx.sql();
        sql.push("UPDATE ")
            .ident(table)
            .push(" SET \"_search\" = ")
            .text(doc)
            .push(" WHERE id = ")
            .param(Some(id.clone()), d.param_cast(FieldType::Reference));
        tx.execute(sql).await?;
        if batch.is_some() {
            for forget in crate::store::sort_keys::forget(d, item, Some(id)) {
                tx.execute(forget).await?;
            }
        }
        for keys in crate::store::sort_keys::store(d, item, id, &fields, text_of) {
            tx.execute(keys).await?;
        }
    }
    Ok((n, last))
}
