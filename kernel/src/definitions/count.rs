//! Counting a migration plan in the data: how many records each step touches and which
//! values a retype cannot convert, read in the transaction that shows or applies the plan.

use erpos_design::Value;
use erpos_design::migration::{MigrationPlan, StepAction};

use crate::db::Tx;
use crate::error::Result;

/// Counts, in the data, what each step of `plan` touches: the records of its table, and
/// for a retype the values that will not convert (how many, and the first few with their
/// record), which the step then empties and keeps in its archive column. Read in `tx`, so
/// counted in the applying transaction the counts are exactly what the steps do.
pub(super) async fn count_plan(tx: &mut Tx, plan: &mut MigrationPlan) -> Result<()> {
    for step in &mut plan.steps {
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
        if let StepAction::RetypeColumn { from, to, .. } = &step.action {
            let mut sql = tx.sql();
            sql.push("SELECT ")
                .col_text("id")
                .push(", ")
                .col_text(&from.name)
                .push(" FROM ")
                .ident(&step.table)
                .push(" ORDER BY ")
                .ident("id");
            let mut losses = erpos_design::migration::Losses {
                count: 0,
                examples: Vec::new(),
            };
            for row in tx.fetch(sql).await? {
                let (Some(Some(id)), Some(Some(text))) = (row.first(), row.get(1)) else {
                    continue;
                };
                let converts = Value::from_storage(from, Some(text))
                    .ok()
                    .and_then(|v| v.convert(to))
                    .is_some();
                if !converts {
                    losses.count += 1;
                    if losses.examples.len() < erpos_design::migration::LOSS_EXAMPLES {
                        losses.examples.push(erpos_design::migration::LostValue {
                            id: id.clone(),
                            value: text.clone(),
                        });
                    }
                }
            }
            if losses.count > 0 {
                step.description.push_str(&format!(
                    "; {} value(s) will not convert and are kept only in the archive column",
                    losses.count
                ));
            }
            step.losses = Some(losses);
        }
    }
    Ok(())
}
