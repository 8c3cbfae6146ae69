//! Use cases of analysts: DataItems and their migrations, services, rules, calendars and
//! resource types. Each needs the `design` grant; services are also limited to an app
//! token's own (any other is "not found" to it, as if it did not exist).

use erpos_design::WorkingCalendar;
use erpos_design::data_item::DataItem;
use erpos_design::migration::MigrationPlan;
use erpos_design::rule::ServiceRule;
use erpos_design::service::Service;
use std::sync::Arc;

use serde_json::Value;

use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};

/// Defines a DataItem and creates its table (names derived from the Chinese labels).
pub async fn create_data_item(k: &Kernel, caller: &Caller, body: &Value) -> Result<DataItem> {
    require(caller, Permission::Design, "defining DataItems")?;
    check_visibility_roles(k, body).await?;
    k.definitions
        .create(body, &audit(k, caller, "data_item.create"))
        .await
}

/// The form a DataItem definition would have (`replaces`: the DataItem it would change;
/// None: a new one), checked as saving it would check it, with nothing stored: the JSON
/// Schemas of writes and the layout, as `GET /data-items/{name}/form` answers them.
pub async fn preview_form(
    k: &Kernel,
    caller: &Caller,
    body: &Value,
    replaces: Option<&str>,
) -> Result<Value> {
    require(caller, Permission::Design, "designing DataItems")?;
    check_visibility_roles(k, body).await?;
    let (item, catalog) = k.definitions.preview(body, replaces)?;
    Ok(form_of(&catalog, &item.name))
}

/// The form of DataItem `name` in `catalog`: the JSON Schemas of a created record and of a
/// patch, and the layout.
pub fn form_of(catalog: &erpos_design::Catalog, name: &str) -> Value {
    serde_json::json!({
        "item": name,
        "schema": erpos_design::form::json_schema(catalog, name, true),
        "patch_schema": erpos_design::form::json_schema(catalog, name, false),
        "layout": erpos_design::form::layout(catalog, name),
    })
}

/// Stores a new definition of `name` as its pending change, with the migration plan.
pub async fn propose_data_item(
    k: &Kernel,
    caller: &Caller,
    name: &str,
    body: &Value,
) -> Result<(DataItem, MigrationPlan)> {
    require(caller, Permission::Design, "changing DataItems")?;
    check_visibility_roles(k, body).await?;
    let (item, mut plan) = k
        .definitions
        .propose(name, body, &audit(k, caller, "data_item.propose"))
        .await?;
    redact_plan(k, caller, &mut plan);
    Ok((item, plan))
}

/// The plan of the pending change of `name`, as `caller` may see it.
pub async fn pending_plan(k: &Kernel, caller: &Caller, name: &str) -> Result<MigrationPlan> {
    let mut plan = k.definitions.pending_plan(name).await?;
    redact_plan(k, caller, &mut plan);
    Ok(plan)
}

/// A plan's examples quote records (the values a retype loses, the records breaking a
/// rule): they are shown only to a caller who may read every record of the step's item
/// (every field, no row scope). Anyone else sees the counts alone.
fn redact_plan(k: &Kernel, caller: &Caller, plan: &mut MigrationPlan) {
    let schema = k.definitions.schema();
    for step in &mut plan.steps {
        let reads_all = caller.record_fields(&step.item, crate::caller::RecordOp::Read)
            == crate::caller::FieldAccess::All
            && crate::visibility::scope(&schema.catalog, caller, &step.item)
                == erpos_design::visibility::RowScope::All;
        if reads_all {
            continue;
        }
        if let Some(losses) = step.losses.as_mut() {
            losses.examples.clear();
        }
        if let Some(violations) = step.violations.as_mut() {
            violations.examples.clear();
        }
    }
}

/// What applying a pending change did.
pub enum Migration {
    /// Applied in one transaction: the definition in force and the steps applied.
    Applied(DataItem, MigrationPlan),
    /// Too large for one transaction: it runs in batches in the background (see
    /// `migration_runs`); its progress as it starts.
    Started(crate::definitions::MigrationProgress),
}

/// Applies the pending change of `name` (destructive steps need `confirm_destructive`;
/// records breaking a field's new rules need a resolution in `resolve`). A change that
/// converts or re-indexes a large table starts a run in the background instead.
pub async fn migrate_data_item(
    k: &Arc<Kernel>,
    caller: &Caller,
    name: &str,
    request: &erpos_design::migration::ApplyRequest,
) -> Result<Migration> {
    require(caller, Permission::Design, "migrating DataItems")?;
    let applied = k
        .definitions
        .apply(name, request, &audit(k, caller, "data_item.migrate"))
        .await?;
    let (item, mut plan) = match applied {
        crate::definitions::Applied::Done(item, plan) => (item, plan),
        crate::definitions::Applied::Started(progress) => {
            super::migration_runs::spawn(k, name.to_owned());
            return Ok(Migration::Started(progress));
        }
    };
    // Computed fields added or changed get their values on the records that exist, and
    // so do those whose inputs a resolution fixed or emptied.
    for item in crate::definitions::recompute_items(&plan) {
        k.records.recompute(&item).await?;
    }
    redact_plan(k, caller, &mut plan);
    Ok(Migration::Applied(item, plan))
}

/// Every role a DataItem's visibility rules name exists (`*` is everyone): a rule for a
/// misspelt role would hide every record from the people it was meant for.
async fn check_visibility_roles(k: &Kernel, body: &Value) -> Result<()> {
    let rules = body.get("visibility").and_then(Value::as_array);
    let named: Vec<(usize, &str)> = rules
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.get("role")?.as_str()?)))
        .filter(|(_, role)| *role != "*" && !role.trim().is_empty())
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let directory = super::directory::gather(k, super::directory::Services::Published).await?;
    let mut issues = Vec::new();
    for (i, role) in named {
        directory.check(
            erpos_design::directory::Kind::Role,
            role,
            format!("/visibility/{i}/role"),
            &mut issues,
        );
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(erpos_design::DesignError::InvalidDefinition(issues).into())
    }
}

/// Reads the body of a migration's application: every key checked, each problem at its
/// pointer (`/resolve/nianling/action: unknown variant …`), so a misspelt option is refused
/// rather than ignored.
pub fn read_apply_request(body: &Value) -> Result<erpos_design::migration::ApplyRequest> {
    let body = if body.is_null() {
        &serde_json::json!({})
    } else {
        body
    };
    let mut shape = erpos_design::shape::Shape::new();
    match shape.read::<erpos_design::migration::ApplyRequest>(body, "", &[]) {
        Some(request) if shape.is_clean() => Ok(request),
        _ => Err(KernelError::Invalid(shape.finish(Vec::new(), body))),
    }
}

/// Discards the pending change of `name`.
pub async fn discard_data_item_change(k: &Kernel, caller: &Caller, name: &str) -> Result<()> {
    require(caller, Permission::Design, "discarding DataItem changes")?;
    k.definitions
        .discard(name, &audit(k, caller, "data_item.discard"))
        .await
}

/// An app token only sees the services it was issued for; any other is "not found" to it.
pub fn service_visible(caller: &Caller, name: &str) -> Result<()> {
    if caller.in_scope(name) {
        Ok(())
    } else {
        Err(KernelError::NotFound(format!("service '{name}'")))
    }
}

/// The grant check of saving a service draft, made before its secrets are restored (which
/// reads the stored definition).
pub fn may_save_service(caller: &Caller, body: &Value) -> Result<()> {
    require(caller, Permission::Design, "defining services")?;
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        service_visible(caller, name)?;
    }
    Ok(())
}

/// Saves a service draft (validated whole; secrets already restored by the caller).
pub async fn save_service(k: &Kernel, caller: &Caller, body: &Value) -> Result<Service> {
    may_save_service(caller, body)?;
    let directory = super::directory::gather(k, super::directory::Services::WithDrafts).await?;
    k.services
        .save_draft(body, &directory, &audit(k, caller, "service.save"))
        .await
}

/// The longest version notes one publication may carry.
pub const MAX_NOTES: usize = 2000;

/// What an analyst says when publishing: `POST /services/{name}/publish {"notes": "…"}`
/// (no body: no notes), kept with the version so the designer's list of versions says what
/// each one changed and who published it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    /// What changed in this version, in the analyst's words (at most 2,000 characters).
    #[serde(default)]
    pub notes: Option<String>,
}

/// Reads a publication's body (422 at `/notes` when too long, naming unknown keys).
pub fn read_publication(body: &Value) -> Result<Publication> {
    let mut publication: Publication = super::read_body(body)?;
    if let Some(notes) = &publication.notes {
        if notes.chars().count() > MAX_NOTES {
            return Err(KernelError::Invalid(vec![erpos_design::Issue::new(
                "/notes",
                format!("at most {MAX_NOTES} characters"),
            )]));
        }
        if notes.trim().is_empty() {
            publication.notes = None;
        }
    }
    Ok(publication)
}

/// Publishes the draft of `name` as its next frozen version, with its version notes.
pub async fn publish_service(
    k: &Kernel,
    caller: &Caller,
    name: &str,
    publication: &Publication,
) -> Result<Service> {
    require(caller, Permission::Design, "publishing services")?;
    service_visible(caller, name)?;
    let directory = super::directory::gather(k, super::directory::Services::Published).await?;
    k.services
        .publish(
            name,
            publication.notes.as_deref().map(str::trim),
            &directory,
            &audit(k, caller, "service.publish"),
        )
        .await
}

/// What a service draft would be, checked as saving it would check it, with nothing
/// stored: the designer's live view while an analyst edits steps and transitions.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ServicePreview {
    /// Whether saving it would be accepted.
    pub valid: bool,
    /// Every problem at its JSON pointer into the posted document (empty when valid).
    pub issues: Vec<erpos_design::Issue>,
    /// The flowchart (SVG) of what could be read — drawn even when something is wrong, so
    /// the chart follows the edit; null when not even the steps could be read.
    pub flowchart: Option<String>,
    /// The service as it would be stored (its name derived), when valid.
    pub service: Option<Service>,
}

/// Checks a service draft and draws it, storing nothing (see [`ServicePreview`]).
pub async fn preview_service(k: &Kernel, caller: &Caller, body: &Value) -> Result<ServicePreview> {
    may_save_service(caller, body)?;
    if !body.is_object() {
        // Not a draft at all: refused as saving it would be, not previewed as one.
        return Err(KernelError::Invalid(vec![erpos_design::Issue::new(
            "",
            "a service is an object",
        )]));
    }
    let directory = super::directory::gather(k, super::directory::Services::WithDrafts).await?;
    let reading = erpos_design::service_check::read_service(body);
    let drawable = reading.value.clone();
    let catalog = k.definitions.schema().catalog.clone();
    match erpos_design::service_check::prepare_service_reading(reading, body, &catalog, &directory)
    {
        Ok(service) => Ok(ServicePreview {
            valid: true,
            issues: Vec::new(),
            flowchart: Some(erpos_design::flowchart::flowchart_svg(&service)),
            service: Some(service),
        }),
        Err(erpos_design::DesignError::InvalidDefinition(issues)) => Ok(ServicePreview {
            valid: false,
            issues,
            flowchart: drawable
                .as_ref()
                .map(erpos_design::flowchart::flowchart_svg),
            service: None,
        }),
        Err(other) => Err(other.into()),
    }
}

/// The grant check of saving a rule (`what`: "defining rules" or "changing rules").
pub fn may_save_rule(caller: &Caller, what: &str) -> Result<()> {
    require(caller, Permission::Design, what)
}

/// Saves a rule (new or replacing one of the same name; secrets already restored).
pub async fn save_rule(
    k: &Kernel,
    caller: &Caller,
    body: &Value,
    what: &str,
) -> Result<ServiceRule> {
    may_save_rule(caller, what)?;
    let schema = k.definitions.schema();
    // A rule runs against what is live: it may name published services only.
    let directory = super::directory::gather(k, super::directory::Services::Published).await?;
    k.rules
        .save(
            body,
            &schema.catalog,
            &directory,
            &audit(k, caller, "rule.save"),
        )
        .await
}

/// Deletes a rule (its runs stay).
pub async fn delete_rule(k: &Kernel, caller: &Caller, name: &str) -> Result<()> {
    require(caller, Permission::Design, "deleting rules")?;
    k.rules.delete(name, &audit(k, caller, "rule.delete")).await
}

/// Runs a set-aside event's rules again; answers `{event_seq, outcome, error}`.
pub async fn retry_quarantined_event(k: &Kernel, caller: &Caller, seq: u64) -> Result<Value> {
    require(caller, Permission::Design, "retrying a set-aside event")?;
    k.rules.retry(seq, &audit(k, caller, "rules.retry")).await
}

/// Saves a working calendar (new or replacing one of the same name).
pub async fn save_calendar(k: &Kernel, caller: &Caller, body: &Value) -> Result<WorkingCalendar> {
    require(caller, Permission::Design, "defining calendars")?;
    k.calendars
        .put(body, k.engine.now_ms(), &audit(k, caller, "calendar.save"))
        .await
}

/// Deletes a working calendar (deadlines already set keep their instant) that no published
/// service's step counts in and no user works by (409 `in_use` naming them).
pub async fn delete_calendar(k: &Kernel, caller: &Caller, name: &str) -> Result<()> {
    require(caller, Permission::Design, "deleting calendars")?;
    if k.calendars.all().contains_key(name) {
        crate::uses::refuse_if_used(k, erpos_design::directory::Kind::Calendar, name).await?;
    }
    k.calendars
        .delete(name, &audit(k, caller, "calendar.delete"))
        .await
}

/// Defines (or replaces) a resource type.
pub async fn save_resource_type(k: &Kernel, caller: &Caller, body: &Value) -> Result<()> {
    require(caller, Permission::Design, "defining resource types")?;
    crate::resources::put_type(k, body, &audit(k, caller, "resource_type.save")).await
}
