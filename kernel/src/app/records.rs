//! Use cases of records: who may write which fields of which DataItem. The record store
//! (`crate::records`) validates values; this module decides whether the caller may send
//! them at all, so that the records API and a start with an inline record apply one rule.

use serde_json::Value;

use crate::caller::{Caller, FieldAccess, RecordOp};
use crate::error::{KernelError, Result};
use erpos_design::Catalog;

/// The 403 for a record operation without its grant, naming the grant to give.
pub fn needs(what: &str, grant: String) -> KernelError {
    KernelError::Forbidden(format!("{what} needs {grant}"))
}

/// What the caller may do with `op` on `item`'s records; 403 when nothing.
pub fn access(caller: &Caller, item: &str, op: RecordOp) -> Result<FieldAccess> {
    match caller.record_fields(item, op) {
        FieldAccess::Nothing => Err(needs(
            &format!("{} records of '{item}'", op.word()),
            format!("records:{item}:{}", op.word()),
        )),
        access => Ok(access),
    }
}

/// Refuses a write whose body holds a field the caller may not write. Composed children
/// given in the body are written with the grants of their own DataItem: creating them needs
/// `records:{child}:create`, and replacing them (a patch that names them deletes the old
/// ones) needs `records:{child}:create` and `records:{child}:delete`; their own fields and
/// grandchildren are checked the same way.
pub fn check_write(
    catalog: &Catalog,
    caller: &Caller,
    item: &str,
    op: RecordOp,
    body: &Value,
) -> Result<()> {
    let access = access(caller, item, op)?;
    let consists: Vec<&str> = catalog
        .get(item)
        .map(|d| d.consists.iter().map(|c| c.item.as_str()).collect())
        .unwrap_or_default();
    let fields = body.as_object().into_iter().flat_map(|o| o.iter());
    for (field, value) in fields.filter(|(f, _)| !["id", "version"].contains(&f.as_str())) {
        if consists.contains(&field.as_str()) {
            if op == RecordOp::Update
                && caller.record_fields(field, RecordOp::Delete) != FieldAccess::All
            {
                return Err(needs(
                    &format!("replacing the '{field}' children of '{item}'"),
                    format!("records:{field}:delete"),
                ));
            }
            let children = match value {
                Value::Array(list) => list.iter().collect(),
                Value::Null => Vec::new(),
                one => vec![one],
            };
            for child in children {
                check_write(catalog, caller, field, RecordOp::Create, child)?;
            }
            continue;
        }
        if !access.allows(field) {
            return Err(needs(
                &format!("writing the field '{field}' of '{item}'"),
                format!("records:{item}:{}:{field}", op.word()),
            ));
        }
    }
    Ok(())
}
