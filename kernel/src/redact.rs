//! What a caller may read of a record, wherever a record is shown: the records API and the
//! answers to its writes, composed children, and the copies of the bound record that a
//! process carries (its context, every history entry, the work-item lists, WebSocket
//! changes).
//!
//! Two rules, one place:
//! - through the records API a caller reads what their record grants allow
//!   (`records:{item}:read` every field, `records:{item}:read:{field}` one field; the stamps
//!   `id`, `version`, `created_at`, `updated_at` always), and a composed child collection
//!   only with a read grant on the child DataItem itself;
//! - through a process a caller reads what their record grants allow **plus**, when they
//!   take part in it (they started it, hold or held a work item of it, or operate it), the
//!   fields the service shows its participants: every field that no step marks `hidden`.
//!   So a field hidden at a step is never shown by a process to anyone who may not read it
//!   through a record grant.
//!
//! Pure: reads the catalog, the service and the caller's grants; never storage. It must
//! never widen what a grant gives.

use std::collections::BTreeSet;

use erpos_design::Catalog;
use erpos_design::service::{FieldAccess as StepAccess, Service};
use serde_json::Value as Json;

use crate::caller::{Caller, FieldAccess, RecordOp};
use crate::scheduler::Pcb;

/// Keys every record has, shown to anyone who may read it at all.
pub const STAMPS: [&str; 4] = ["id", "version", "created_at", "updated_at"];

/// Leaves in `record` (a record of `item` as stored, children included) only what
/// `caller` may read through the records API.
pub fn record(catalog: &Catalog, caller: &Caller, item: &str, record: &mut Json) {
    let access = caller.record_fields(item, RecordOp::Read);
    apply(catalog, caller, item, &access, record);
}

/// Leaves in `record` the fields `access` allows (and the stamps); each composed child
/// collection stays only if the caller may read the child DataItem, and is itself
/// redacted by the caller's grants on it.
fn apply(catalog: &Catalog, caller: &Caller, item: &str, access: &FieldAccess, record: &mut Json) {
    let Some(obj) = record.as_object_mut() else {
        return;
    };
    let consists: Vec<String> = catalog
        .get(item)
        .map(|d| d.consists.iter().map(|c| c.item.clone()).collect())
        .unwrap_or_default();
    obj.retain(|key, _| {
        STAMPS.contains(&key.as_str())
            || consists.contains(key)
            || match access {
                FieldAccess::All => true,
                FieldAccess::Fields(f) => f.contains(key),
                FieldAccess::Nothing => false,
            }
    });
    for child in consists {
        let child_access = caller.record_fields(&child, RecordOp::Read);
        if child_access == FieldAccess::Nothing {
            obj.remove(&child);
            continue;
        }
        match obj.get_mut(&child) {
            Some(Json::Array(list)) => {
                for c in list {
                    apply(catalog, caller, &child, &child_access, c);
                }
            }
            Some(one @ Json::Object(_)) => apply(catalog, caller, &child, &child_access, one),
            _ => {}
        }
    }
}

/// The fields of a process's bound record `caller` may read through the process: their
/// record grants, plus — when they take part in it — every field no step of `service`
/// hides.
pub fn process_access(
    catalog: &Catalog,
    service: Option<&Service>,
    caller: &Caller,
    pcb: &Pcb,
) -> FieldAccess {
    let Some((item, _)) = &pcb.record else {
        return FieldAccess::All;
    };
    let granted = caller.record_fields(item, RecordOp::Read);
    let participant = crate::tasks::in_view(pcb, &caller.user, crate::tasks::View::Related);
    // Someone who takes no part sees the record through a process only as far as the
    // records API would show it: not at all when it is outside their row scope.
    if !participant
        && let Some(record) = pcb.context.get("record")
        && !crate::visibility::sees(catalog, caller, item, record)
    {
        return FieldAccess::Nothing;
    }
    if granted == FieldAccess::All || !participant {
        return granted;
    }
    let hidden: BTreeSet<&str> = service
        .into_iter()
        .flat_map(|s| s.steps.iter())
        .flat_map(|s| s.fields.iter())
        .filter(|(_, a)| **a == StepAccess::Hidden)
        .map(|(f, _)| f.as_str())
        .collect();
    let mut shown: BTreeSet<String> = catalog
        .effective_fields(item)
        .into_iter()
        .map(|e| e.field.name)
        .filter(|f| !hidden.contains(f.as_str()))
        .collect();
    if let FieldAccess::Fields(f) = granted {
        shown.extend(f);
    }
    FieldAccess::Fields(shown)
}

/// The fields of the bound record the form at the current step may show `caller`: a
/// participant sees what the step shows (the form itself leaves out what the step hides,
/// even a field another step hides, so a leader sees the opinion field he is to fill in);
/// anyone else what their record grants give.
pub fn form_access(catalog: &Catalog, caller: &Caller, pcb: &Pcb) -> FieldAccess {
    let Some((item, _)) = &pcb.record else {
        return FieldAccess::All;
    };
    if crate::tasks::in_view(pcb, &caller.user, crate::tasks::View::Related) {
        return FieldAccess::All;
    }
    // As through the records API: nothing of a record outside the caller's row scope.
    if let Some(record) = pcb.context.get("record")
        && !crate::visibility::sees(catalog, caller, item, record)
    {
        return FieldAccess::Nothing;
    }
    caller.record_fields(item, RecordOp::Read)
}

/// Redacts the bound record inside a process context (`context.record`) to `access`.
pub fn context(
    catalog: &Catalog,
    caller: &Caller,
    pcb: &Pcb,
    access: &FieldAccess,
    context: &mut Json,
) {
    if let (Some((item, _)), Some(r)) = (&pcb.record, context.get_mut("record")) {
        apply(catalog, caller, item, access, r);
    }
}

/// The process as `caller` may see it: the API's PCB JSON (erpos-http) with the bound record in
/// its context redacted (see the module's rules).
pub fn pcb(
    catalog: &Catalog,
    service: Option<&Service>,
    caller: &Caller,
    pcb: &Pcb,
    mut shown: Json,
) -> Json {
    let access = process_access(catalog, service, caller, pcb);
    if access != FieldAccess::All
        && let Some(c) = shown.get_mut("context")
    {
        context(catalog, caller, pcb, &access, c);
    }
    shown
}

/// Redacts one stored history entry (`context`, `record` and `pcb.context` each carry the
/// bound record as it was) for `caller`.
pub fn history_entry(
    catalog: &Catalog,
    caller: &Caller,
    pcb: &Pcb,
    access: &FieldAccess,
    entry: &mut Json,
) {
    if *access == FieldAccess::All {
        return;
    }
    let Some((item, _)) = &pcb.record else {
        return;
    };
    if let Some(c) = entry.get_mut("context") {
        context(catalog, caller, pcb, access, c);
    }
    if let Some(r) = entry.get_mut("record") {
        apply(catalog, caller, item, access, r);
    }
    if let Some(c) = entry.get_mut("pcb").and_then(|p| p.get_mut("context")) {
        context(catalog, caller, pcb, access, c);
    }
}

/// Redacts a record snapshot taken from a process (a work-item list's `record_snapshot`).
pub fn snapshot(
    catalog: &Catalog,
    caller: &Caller,
    pcb: &Pcb,
    access: &FieldAccess,
    record: &mut Json,
) {
    if let Some((item, _)) = &pcb.record
        && *access != FieldAccess::All
    {
        apply(catalog, caller, item, access, record);
    }
}
