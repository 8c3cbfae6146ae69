//! Row visibility applied: which records of a DataItem the caller sees, from the
//! DataItem's rules (`erpos_design::visibility`) and where the caller stands (their roles
//! and departments, worked out when they authenticated). Lists apply it in their query;
//! reads, writes, deletes and the copies of a bound record a process shows apply it to
//! the record. Pure: reads the catalog and the caller, never storage.

use erpos_design::Catalog;
use erpos_design::visibility::{Asker, RowScope};
use serde_json::Value as Json;

use crate::caller::Caller;
use crate::error::{KernelError, Result};

/// The records of `item` `caller` sees: every one for an administrator or an item without
/// rules; else what the rules of the caller's roles admit.
pub fn scope(catalog: &Catalog, caller: &Caller, item: &str) -> RowScope {
    let Some(def) = catalog.get(item) else {
        return RowScope::All;
    };
    if def.visibility.is_empty() || caller.is_admin() {
        return RowScope::All;
    }
    erpos_design::visibility::scope(
        &def.visibility,
        &Asker {
            user: &caller.user,
            roles: &caller.standing.roles,
            departments: &caller.standing.departments,
        },
    )
}

/// Whether `caller` sees `record` of `item`.
pub fn sees(catalog: &Catalog, caller: &Caller, item: &str, record: &Json) -> bool {
    scope(catalog, caller, item).admits(record)
}

/// The 404 for a record outside the caller's scope: the same answer as for a record that
/// does not exist, so a scope never tells whether a record exists.
pub fn not_found(item: &str, id: &str) -> KernelError {
    KernelError::NotFound(format!("{item} record '{id}'"))
}

/// Refuses a write that would leave the record outside what the caller sees (a nurse of
/// 静安店 filing a patient under 徐汇店): they could not read it back.
pub fn check_write(catalog: &Catalog, caller: &Caller, item: &str, record: &Json) -> Result<()> {
    let scope = scope(catalog, caller, item);
    if scope.admits(record) {
        return Ok(());
    }
    let fields: Vec<String> = match &scope {
        RowScope::All => Vec::new(),
        RowScope::Where(list) => list
            .iter()
            .map(|(f, values)| {
                format!(
                    "'{f}' one of {}",
                    values.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect(),
    };
    Err(KernelError::Forbidden(if fields.is_empty() {
        format!("no visibility rule of '{item}' lets you see its records")
    } else {
        format!(
            "the record would be outside the records of '{item}' you see ({})",
            fields.join(" or ")
        )
    }))
}
