//! Use cases of records: who may write which fields of which DataItem. The record store
//! (`crate::records`) validates values; this module decides whether the caller may send
//! them at all, so that the records API and a start with an inline record apply one rule.

use serde_json::Value;

use crate::Kernel;
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

/// Creates a record of `item` (with its composed children) for `caller`; answers it as
/// stored, redacted to what the caller may read.
pub async fn create(k: &Kernel, caller: &Caller, item: &str, body: &Value) -> Result<Value> {
    let schema = k.definitions.schema();
    check_write(&schema.catalog, caller, item, RecordOp::Create, body)?;
    crate::visibility::check_write(&schema.catalog, caller, item, body)?;
    let mut record = k.records.create(item, body, Some(&caller.user)).await?;
    crate::redact::record(&schema.catalog, caller, item, &mut record);
    Ok(record)
}

/// Reads a record of `item` with its composed children, redacted to what `caller` may read.
pub async fn read(k: &Kernel, caller: &Caller, item: &str, id: &str) -> Result<Value> {
    access(caller, item, RecordOp::Read)?;
    let mut record = k.records.get(item, id).await?;
    let schema = k.definitions.schema();
    if !crate::visibility::sees(&schema.catalog, caller, item, &record) {
        return Err(crate::visibility::not_found(item, id));
    }
    crate::redact::record(&schema.catalog, caller, item, &mut record);
    Ok(record)
}

/// Changes the fields of `body` (based on version `expected`, when given: a stale one is
/// a 409); answers the record as stored now, redacted to what the caller may read.
pub async fn update(
    k: &Kernel,
    caller: &Caller,
    item: &str,
    id: &str,
    body: &Value,
    expected: Option<i64>,
) -> Result<Value> {
    let schema = k.definitions.schema();
    check_write(&schema.catalog, caller, item, RecordOp::Update, body)?;
    within_scope(k, caller, item, id, Some(body)).await?;
    let mut record = k
        .records
        .patch(item, id, body, expected, Some(&caller.user))
        .await?;
    crate::redact::record(&schema.catalog, caller, item, &mut record);
    Ok(record)
}

/// Deletes a record and its composed children: that needs the delete grant of each
/// composed DataItem too.
pub async fn delete(
    k: &Kernel,
    caller: &Caller,
    item: &str,
    id: &str,
    expected: Option<i64>,
) -> Result<()> {
    let mut items = vec![item.to_owned()];
    composed(&k.definitions.schema().catalog, item, &mut items);
    for i in &items {
        if caller.record_fields(i, RecordOp::Delete) != FieldAccess::All {
            return Err(needs(
                &format!("deleting records of '{i}'"),
                format!("records:{i}:delete"),
            ));
        }
    }
    within_scope(k, caller, item, id, None).await?;
    k.records
        .delete(item, id, expected, Some(&caller.user))
        .await
}

/// Refuses (404, as if it did not exist) a change of a record the caller does not see,
/// and (403) a patch that would move it out of what they see. Items without visibility
/// rules and administrators skip the read.
async fn within_scope(
    k: &Kernel,
    caller: &Caller,
    item: &str,
    id: &str,
    patch: Option<&Value>,
) -> Result<()> {
    let schema = k.definitions.schema();
    if crate::visibility::scope(&schema.catalog, caller, item)
        == erpos_design::visibility::RowScope::All
    {
        return Ok(());
    }
    let mut record = k.records.get(item, id).await?;
    if !crate::visibility::sees(&schema.catalog, caller, item, &record) {
        return Err(crate::visibility::not_found(item, id));
    }
    if let (Some(Value::Object(changes)), Some(after)) = (patch, record.as_object_mut()) {
        for (key, value) in changes {
            after.insert(key.clone(), value.clone());
        }
        crate::visibility::check_write(&schema.catalog, caller, item, &record)?;
    }
    Ok(())
}

/// Every DataItem composed into `item`, at any depth.
fn composed(catalog: &Catalog, item: &str, out: &mut Vec<String>) {
    for c in catalog
        .get(item)
        .map(|d| d.consists.as_slice())
        .unwrap_or_default()
    {
        if !out.contains(&c.item) {
            out.push(c.item.clone());
            composed(catalog, &c.item, out);
        }
    }
}
