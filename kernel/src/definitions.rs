//! DataItem definitions, live: stored, versioned, and turned into tables.
//!
//! Creating a DataItem creates its table in the same transaction that stores its first
//! version. Changing one stores a *pending change*; its migration plan is shown and applied
//! only on request (destructive steps only when confirmed), again in one transaction with
//! the new version. The active catalog is an immutable snapshot swapped after each commit,
//! so requests never see half a change. This module must not serve records.

use std::sync::{Arc, RwLock};

use chrono::Utc;
use dashmap::DashMap;
use erpos_design::form::FormValidator;
use erpos_design::migration::{ApplyRequest, MigrationPlan, ResolutionKind, StepAction, plan};
use erpos_design::value::format_datetime;
use erpos_design::{Catalog, DataItem, FieldType, Issue};
use serde_json::Value as Json;

use crate::audit::Audit;
use crate::db::{Db, Tx};
use crate::error::{KernelError, Result};

mod batches;
mod count;
mod long;
mod resolve;
mod runs;
mod steps;

use count::count_plan;
pub use long::{Advance, Batching};
pub use resolve::Resolutions;
pub use runs::{MigrationProgress, RunState};
use steps::{rebuild_search, run_step};

/// The active catalog plus what is derived from it (compiled forms), replaced as a whole
/// whenever a definition changes.
pub struct Schema {
    /// Every active DataItem.
    pub catalog: Catalog,
    validators: DashMap<String, Arc<FormValidator>>,
    /// Per DataItem, its fields that expressions see as exact numbers: asked on every
    /// condition evaluated inside the scheduler's core, so worked out once per catalog.
    exact: DashMap<String, Arc<[String]>>,
}

impl Schema {
    /// The schema of `catalog`, with nothing compiled yet (benches and property tests build
    /// one without a database).
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog,
            validators: DashMap::new(),
            exact: DashMap::new(),
        }
    }

    /// The money and decimal fields of `item` (see `crate::numbers`), cached for this
    /// catalog.
    pub fn exact_fields(&self, item: &str) -> Arc<[String]> {
        if let Some(v) = self.exact.get(item) {
            return v.clone();
        }
        let fields: Arc<[String]> = crate::numbers::exact_fields(&self.catalog, item).into();
        self.exact.insert(item.to_owned(), fields.clone());
        fields
    }

    /// The compiled form of `item`, compiled on first use and cached for this catalog.
    pub fn validator(&self, item: &str) -> Result<Arc<FormValidator>> {
        if let Some(v) = self.validators.get(item) {
            return Ok(v.clone());
        }
        let compiled = Arc::new(FormValidator::compile(&self.catalog, item)?);
        self.validators.insert(item.to_owned(), compiled.clone());
        Ok(compiled)
    }
}

/// The definitions service.
pub struct Definitions {
    db: Db,
    schema: RwLock<Arc<Schema>>,
    /// Serialises definition changes: DDL and catalog swaps happen one at a time.
    changing: tokio::sync::Mutex<()>,
    /// Per item whose table a long run migrates, the run's item: its records are
    /// read-only and definitions wait until the run ends (see `long`).
    running: DashMap<String, String>,
    /// How long runs are worked.
    batching: RwLock<Batching>,
}

fn now() -> String {
    format_datetime(&Utc::now())
}

fn to_json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| KernelError::Corrupt(e.to_string()))
}

impl Definitions {
    /// Loads every active definition from the database.
    pub async fn load(db: Db) -> Result<Self> {
        let mut select =
            crate::store::Select::from(db.dialect(), "data_items", &["name", "definition"])
                .keyed("name");
        select.sql().push(" ORDER BY name");
        let rows = select.fetch(&db).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let item: DataItem = row.json("definition")?;
            items.push(item);
        }
        let definitions = Self {
            db,
            schema: RwLock::new(Arc::new(Schema::new(Catalog::from_items(items)))),
            changing: tokio::sync::Mutex::new(()),
            running: DashMap::new(),
            batching: RwLock::new(Batching::default()),
        };
        definitions.restore_runs().await?;
        definitions.refresh_search_keys().await?;
        Ok(definitions)
    }

    /// Rebuilds every record's search document when they were built by an older
    /// `search_keys` (see `SEARCH_KEYS_VERSION`), all in one transaction with the new
    /// version noted, so it happens once and a crash midway leaves the old documents whole.
    /// Answers how many DataItems were rebuilt (0 when already current).
    async fn refresh_search_keys(&self) -> Result<usize> {
        const KEY: &str = "search_keys_version";
        let current = erpos_design::naming::SEARCH_KEYS_VERSION.to_string();
        let mut select =
            crate::store::Select::from(self.db.dialect(), "kernel_state", &["name", "value"])
                .keyed("name");
        select.sql().push(" WHERE name = ").text(KEY);
        let stored = select.fetch(&self.db).await?;
        let stored = match stored.first() {
            Some(row) => Some(row.text("value")?),
            None => None,
        };
        if stored.as_deref() == Some(current.as_str()) {
            return Ok(0);
        }
        let catalog = self.schema().catalog.clone();
        let items: Vec<String> = catalog
            .items()
            .filter(|i| {
                catalog
                    .effective_fields(&i.name)
                    .iter()
                    .any(|e| e.field.searchable)
            })
            .map(|i| i.name.clone())
            .collect();
        let mut tx = self.db.begin().await?;
        for item in &items {
            let table = erpos_design::ddl::table_name(item);
            rebuild_search(&mut tx, &catalog, item, &table).await?;
        }
        let mut sql = tx.sql();
        sql.push("INSERT INTO kernel_state (name, value) VALUES (")
            .text(KEY)
            .push(", ")
            .text(&current)
            .push(") ON CONFLICT (name) DO UPDATE SET value = excluded.value");
        tx.execute(sql).await?;
        tx.commit().await?;
        if !items.is_empty() {
            tracing::info!(items = items.len(), version = %current, "search documents rebuilt with the current search keys");
        }
        Ok(items.len())
    }

    /// The active schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        match self.schema.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn swap(&self, catalog: Catalog) {
        let next = Arc::new(Schema::new(catalog));
        match self.schema.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// Creates a DataItem and its table. Returns the stored definition (names derived,
    /// version 1).
    pub async fn create(&self, body: &Json, audit: &Audit) -> Result<DataItem> {
        // Read as far as it can be, then checked whole: one answer carries every problem.
        let reading = erpos_design::data_item::read_data_item(body);
        let _guard = self.changing.lock().await;
        self.refuse_while_running(None)?;
        let old = self.schema().catalog.clone();
        let mut item = old.prepare_reading(reading, body, None)?;
        item.version = 1;
        let new = old.with(item.clone());
        let plan = plan(&old, &new, &item.name, self.db.dialect());
        let mut tx = self.db.begin().await?;
        for step in &plan.steps {
            for statement in &step.sql {
                tx.execute_ddl(statement).await?;
            }
        }
        let definition = to_json_text(&item)?;
        let stamp = now();
        let d = tx.dialect();
        let mut sql = tx.sql();
        sql.push(
            "INSERT INTO data_items (name, version, definition, created_at, updated_at) VALUES (",
        )
        .text(&item.name)
        .push(", ")
        .param(Some("1".into()), d.param_cast(FieldType::Integer))
        .push(", ")
        .param(Some(definition.clone()), d.param_cast(FieldType::Json))
        .push(", ")
        .param(Some(stamp.clone()), d.param_cast(FieldType::Datetime))
        .push(", ")
        .param(Some(stamp.clone()), d.param_cast(FieldType::Datetime))
        .push(")");
        tx.execute(sql).await?;
        record_version(&mut tx, &item, &plan, &stamp).await?;
        tx.execute(audit.row(d, &item.name)).await?;
        tx.commit().await?;
        self.swap(new);
        tracing::info!(item = %item.name, "data item created");
        Ok(item)
    }

    /// What a definition would be, without storing anything: checked as `create` (None) or
    /// as a change of `replaces` would check it, and answered with the catalog it would make
    /// — the designer's live preview of the form. Every problem at its pointer, as 422.
    pub fn preview(&self, body: &Json, replaces: Option<&str>) -> Result<(DataItem, Catalog)> {
        let reading = erpos_design::data_item::read_data_item(body);
        let old = self.schema().catalog.clone();
        if let Some(name) = replaces
            && let Err(missing) = old.require(name)
        {
            return Err(reading.refusal(body).unwrap_or(missing).into());
        }
        let item = old.prepare_reading(reading, body, replaces)?;
        let new = old.with(item.clone());
        Ok((item, new))
    }

    /// Stores a pending change to a DataItem and returns it with its migration plan.
    pub async fn propose(
        &self,
        name: &str,
        body: &Json,
        audit: &Audit,
    ) -> Result<(DataItem, MigrationPlan)> {
        let reading = erpos_design::data_item::read_data_item(body);
        let _guard = self.changing.lock().await;
        self.refuse_while_running(Some(name))?;
        let old = self.schema().catalog.clone();
        let current = match old.require(name) {
            Ok(current) => current.clone(),
            // A body that cannot be read is refused as such, as before, whether or not the
            // DataItem exists.
            Err(missing) => return Err(reading.refusal(body).unwrap_or(missing).into()),
        };
        let mut draft = old.prepare_reading(reading, body, Some(name))?;
        draft.version = current.version + 1;
        let new = old.with(draft.clone());
        let mut plan = plan(&old, &new, name, self.db.dialect());
        let mut tx = self.db.begin().await?;
        count_plan(&mut tx, &old, &new, &mut plan).await?;
        mark_violations(&mut plan);
        let d = tx.dialect();
        let mut sql = tx.sql();
        sql.push("UPDATE data_items SET draft = ")
            .param(Some(to_json_text(&draft)?), d.param_cast(FieldType::Json))
            .push(", updated_at = ")
            .param(Some(now()), d.param_cast(FieldType::Datetime))
            .push(" WHERE name = ")
            .text(name);
        tx.execute(sql).await?;
        tx.execute(audit.row(d, name)).await?;
        tx.commit().await?;
        Ok((draft, plan))
    }

    /// The pending change of a DataItem, if any.
    pub async fn draft(&self, name: &str) -> Result<Option<DataItem>> {
        self.schema().catalog.require(name)?;
        let mut select =
            crate::store::Select::from(self.db.dialect(), "data_items", &["name", "draft"])
                .keyed("name");
        select.sql().push(" WHERE name = ").text(name);
        match select.fetch_one(&self.db).await? {
            Some(row) => Ok(row.opt_json("draft")?),
            None => Ok(None),
        }
    }

    /// The migration plan of the pending change of `name`.
    pub async fn pending_plan(&self, name: &str) -> Result<MigrationPlan> {
        let draft = self.draft(name).await?.ok_or_else(|| no_pending(name))?;
        let old = self.schema().catalog.clone();
        let new = old.with(draft);
        let mut plan = plan(&old, &new, name, self.db.dialect());
        let mut tx = self.db.begin().await?;
        count_plan(&mut tx, &old, &new, &mut plan).await?;
        tx.commit().await?;
        mark_violations(&mut plan);
        Ok(plan)
    }

    /// Discards the pending change of `name`.
    pub async fn discard(&self, name: &str, audit: &Audit) -> Result<()> {
        let _guard = self.changing.lock().await;
        self.refuse_while_running(Some(name))?;
        self.draft(name).await?.ok_or_else(|| no_pending(name))?;
        let mut tx = self.db.begin().await?;
        let mut sql = tx.sql();
        sql.push("UPDATE data_items SET draft = NULL WHERE name = ")
            .text(name);
        tx.execute(sql).await?;
        tx.execute(audit.row(tx.dialect(), name)).await?;
        tx.commit().await
    }

    /// Applies the pending change of `name`: runs its plan and makes it the active version,
    /// all in one transaction. Destructive steps need `confirm_destructive`; records that
    /// break a field's new rules need a resolution in `resolve` (or, where accepting them
    /// is possible, `confirm_destructive`). A plan that converts or re-indexes a table of
    /// more rows than a batch holds is not applied here: it starts a run worked in batches
    /// (`Applied::Started`; see `long`), which the caller drives with [`Definitions::advance`].
    pub async fn apply(
        &self,
        name: &str,
        request: &ApplyRequest,
        audit: &Audit,
    ) -> Result<Applied> {
        let _guard = self.changing.lock().await;
        self.refuse_while_running(None)?;
        let mut p = self.prepare(name).await?;
        if self.long_work(&p.plan).await? {
            return self
                .start_run(p, request, audit)
                .await
                .map(Applied::Started);
        }
        let mut tx = self.db.begin().await?;
        self.switch_in(&mut tx, &mut p, request, audit, None)
            .await?;
        tx.commit().await?;
        self.swap(p.new);
        tracing::info!(item = %name, version = p.draft.version, steps = p.plan.steps.len(), "migration applied");
        Ok(Applied::Done(p.draft, p.plan))
    }

    /// The pending change of `name` made ready to apply against the catalog as it is now
    /// (other items may have changed since it was proposed).
    async fn prepare(&self, name: &str) -> Result<Prepared> {
        let draft = self.draft(name).await?.ok_or_else(|| no_pending(name))?;
        let old = self.schema().catalog.clone();
        let mut draft = old.prepare(draft, Some(name))?;
        draft.version = old.require(name)?.version + 1;
        // Counting reads a renamed field under its old name: it needs the renames.
        let renaming = old.with(draft.clone());
        let plan = plan(&old, &renaming, name, self.db.dialect());
        // The version in force forgets the renames that brought it about.
        for field in &mut draft.fields {
            field.renamed_from = None;
        }
        let new = old.with(draft.clone());
        let structural: Vec<bool> = plan.steps.iter().map(|s| s.destructive).collect();
        Ok(Prepared {
            draft,
            old,
            renaming,
            new,
            plan,
            structural,
        })
    }

    /// Counts and decides `p`'s plan, runs its steps and makes its draft the version in
    /// force, in `tx` (committed by the caller, who then swaps the catalog). With
    /// `converted`, a run has already converted the retyped values in batches: only the
    /// rows changed since are converted here, and search documents are left to batches.
    /// Answers what is left to do after the switch.
    async fn switch_in(
        &self,
        tx: &mut Tx,
        p: &mut Prepared,
        request: &ApplyRequest,
        audit: &Audit,
        converted: Option<&[batches::Conversion]>,
    ) -> Result<runs::AfterSwitch> {
        let name = p.draft.name.clone();
        // Counted in this transaction: what the plan says it lost is what it loses.
        let breaking = p.count_and_decide(tx, request).await?;
        for conversion in converted.unwrap_or_default() {
            let late = batches::reconcile(tx, conversion).await?;
            if late > 0 {
                tracing::info!(table = %conversion.table, rows = late, "rows changed during the run converted at the switch");
            }
        }
        let long = converted.is_some();
        let mut resolver = resolve::Resolver::new(&request.resolve, p.draft.version);
        for (index, step) in p.plan.steps.iter().enumerate() {
            let ids = breaking
                .by_step
                .get(&index)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let before = resolve::resolves_before(step);
            if before {
                resolver.carry_out(tx, &p.new, step, ids).await?;
            }
            let result = run_step(tx, &p.new, step, long).await;
            if let Err(e) = result {
                if let Some((_, message)) = e.unique_violation() {
                    return Err(KernelError::Conflict {
                        code: crate::error::ErrorCode::UniqueViolation,
                        message: format!("cannot apply '{}': {message}", step.description),
                        details: vec![Issue::new(
                            format!("/steps/{}", step.table),
                            step.description.clone(),
                        )],
                    });
                }
                return Err(e);
            }
            if !before {
                resolver.carry_out(tx, &p.new, step, ids).await?;
            }
        }
        for conversion in converted.unwrap_or_default() {
            tx.execute_ddl(&batches::drop_column(&conversion.table, batches::MARKER))
                .await?;
        }
        let after = if long {
            long::after_switch(&p.plan, &p.new)
        } else {
            for (item, table) in resolver.searches_to_rebuild() {
                rebuild_search(tx, &p.new, &item, &table).await?;
            }
            runs::AfterSwitch::default()
        };
        let stamp = now();
        let d = tx.dialect();
        let mut sql = tx.sql();
        sql.push("UPDATE data_items SET definition = ")
            .param(Some(to_json_text(&p.draft)?), d.param_cast(FieldType::Json))
            .push(", draft = NULL, version = ")
            .param(
                Some(p.draft.version.to_string()),
                d.param_cast(FieldType::Integer),
            )
            .push(", updated_at = ")
            .param(Some(stamp.clone()), d.param_cast(FieldType::Datetime))
            .push(" WHERE name = ")
            .text(&name);
        tx.execute(sql).await?;
        record_version(tx, &p.draft, &p.plan, &stamp).await?;
        tx.execute(audit.row(d, &name)).await?;
        Ok(after)
    }
}

/// A pending change made ready to apply: the versions on both sides and the plan between
/// them.
struct Prepared {
    /// The definition to put in force (its version counted on, renames forgotten).
    draft: DataItem,
    /// The catalog in force.
    old: Catalog,
    /// The catalog with the draft, renames kept (counting reads renamed fields under
    /// their old names).
    renaming: Catalog,
    /// The catalog once the draft is in force.
    new: Catalog,
    /// The plan from `old` to `renaming`.
    plan: MigrationPlan,
    /// Per step, whether it is destructive by its structure (before violations count).
    structural: Vec<bool>,
}

impl Prepared {
    /// Counts the plan in the data of `tx` and decides it with `request` (refusing what
    /// `resolve::decide` refuses); answers the records breaking each step's rules.
    async fn count_and_decide(
        &mut self,
        tx: &mut Tx,
        request: &ApplyRequest,
    ) -> Result<count::Breaking> {
        let breaking = count_plan(tx, &self.old, &self.renaming, &mut self.plan).await?;
        resolve::decide(
            &mut self.plan,
            &self.new,
            &self.structural,
            &request.resolve,
            request.confirm_destructive,
        )?;
        Ok(breaking)
    }
}

/// What applying a pending change did.
#[derive(Debug)]
pub enum Applied {
    /// Applied in one transaction: the definition in force and the steps applied.
    Done(DataItem, MigrationPlan),
    /// Too large for one transaction: a run has started, worked in batches (drive it with
    /// [`Definitions::advance`]); its progress as it starts.
    Started(MigrationProgress),
}

/// The items whose computed fields must be computed anew once `plan` is applied: those
/// with a computed field added or changed, and those whose inputs a resolution fixed or
/// emptied.
pub fn recompute_items(plan: &MigrationPlan) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for step in &plan.steps {
        let changed_values = step.violations.as_ref().is_some_and(|v| {
            matches!(
                v.resolved,
                Some(ResolutionKind::Fix) | Some(ResolutionKind::Archive)
            )
        });
        if (matches!(step.action, StepAction::Recompute { .. }) || changed_values)
            && !items.contains(&step.item)
        {
            items.push(step.item.clone());
        }
    }
    items
}

/// Steps with records breaking their field's new rules need a resolution or a
/// confirmation, like destructive ones: the plan says so.
fn mark_violations(plan: &mut MigrationPlan) {
    for step in &mut plan.steps {
        step.destructive |= step.violations.is_some();
    }
    plan.destructive = plan.steps.iter().any(|s| s.destructive);
}

fn no_pending(name: &str) -> KernelError {
    KernelError::Conflict {
        code: crate::error::ErrorCode::NoPendingChange,
        message: format!("'{name}' has no pending change: PUT a new definition first"),
        details: Vec::new(),
    }
}

async fn record_version(
    tx: &mut Tx,
    item: &DataItem,
    plan: &MigrationPlan,
    stamp: &str,
) -> Result<()> {
    let d = tx.dialect();
    let mut sql = tx.sql();
    sql.push(
        "INSERT INTO data_item_versions (name, version, definition, plan, applied_at) VALUES (",
    )
    .text(&item.name)
    .push(", ")
    .param(
        Some(item.version.to_string()),
        d.param_cast(FieldType::Integer),
    )
    .push(", ")
    .param(Some(to_json_text(item)?), d.param_cast(FieldType::Json))
    .push(", ")
    .param(Some(to_json_text(plan)?), d.param_cast(FieldType::Json))
    .push(", ")
    .param(Some(stamp.to_owned()), d.param_cast(FieldType::Datetime))
    .push(")");
    tx.execute(sql).await?;
    Ok(())
}
