//! The caller's menu (issue 13 §9): generated from the definitions and filtered
//! by the caller's grants, so a console or any client shows each person what they may use
//! and nothing else. The work lists come first (to-do, handled, created), then the
//! services the caller may start, then the DataItems whose records they may read. Each
//! entry names the API path it opens. Stored, re-orderable menus are still to come; until
//! then the order is the definitions' own: services and DataItems by name.

use erpos_design::Label;
use erpos_design::menu::{EntryKind, MenuLayout, WORK_VIEWS};
use serde::Serialize;
use serde_json::Value;

use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, FieldAccess, Permission, RecordOp, ServiceOp};
use crate::error::{KernelError, Result};
use crate::sql::Sql;

/// The name the one layout is stored under.
const LAYOUT: &str = "main";

/// One entry of the menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MenuItem {
    /// What it opens: `tasks` (a work list), `service` (starting one) or `records` (a list).
    pub kind: &'static str,
    /// The list's view, the service's or the DataItem's name.
    pub name: String,
    /// What staff see.
    pub label: Label,
    /// The API path it opens: a work list, a service's definition (whose subject's form
    /// starts it with `POST /api/v1/processes`) or a DataItem's records.
    pub path: String,
}

/// A section of the menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MenuSection {
    /// `work`, `start` or `records`, or a stored layout's own section key.
    pub key: String,
    /// What staff see.
    pub label: Label,
    /// Its entries, never empty (a section with nothing for the caller is left out).
    pub items: Vec<MenuItem>,
}

fn label(zh: &str, en: &str) -> Label {
    Label {
        zh: zh.to_owned(),
        en: Some(en.to_owned()),
    }
}

/// The stored layout, if an analyst saved one.
pub async fn layout(k: &Kernel) -> Result<Option<MenuLayout>> {
    let mut select =
        crate::store::Select::from(k.db.dialect(), "menu_layouts", &["name", "definition"])
            .keyed("name");
    select.sql().push(" WHERE name = ").text(LAYOUT);
    match select.fetch_one(&k.db).await? {
        Some(row) => Ok(Some(row.json("definition")?)),
        None => Ok(None),
    }
}

/// Stores the menu layout (design grant): every entry must name a work list, a published
/// service or a DataItem that exists, once; every problem at its pointer.
pub async fn save_layout(k: &Kernel, caller: &Caller, body: &Value) -> Result<MenuLayout> {
    require(caller, Permission::Design, "arranging the menu")?;
    let mut shape = erpos_design::shape::Shape::new();
    let Some(layout) = shape
        .read::<MenuLayout>(body, "", &[])
        .filter(|_| shape.is_clean())
    else {
        return Err(KernelError::Invalid(shape.finish(Vec::new(), body)));
    };
    let services: Vec<String> = super::monitor::published(k).await.into_keys().collect();
    let items: Vec<String> = k
        .definitions
        .schema()
        .catalog
        .items()
        .map(|i| i.name.clone())
        .collect();
    let views: Vec<String> = WORK_VIEWS.iter().map(|v| (*v).to_owned()).collect();
    let issues = layout.problems(|kind, name| {
        let (noun, known) = match kind {
            EntryKind::Tasks => ("work list", &views),
            EntryKind::Service => ("published service", &services),
            EntryKind::Records => ("DataItem", &items),
        };
        if known.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(erpos_design::directory::unknown(noun, name, known.iter()))
        }
    });
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    let definition =
        serde_json::to_value(&layout).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("INSERT INTO menu_layouts (name, definition, updated_at) VALUES (")
        .text(LAYOUT)
        .push(", ")
        .json(&definition)
        .push(", ")
        .int(k.clock.now_ms())
        .push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at");
    let row = audit(k, caller, "menu.layout").row(k.db.dialect(), LAYOUT);
    k.db.write_atomically(vec![sql, row]).await?;
    Ok(layout)
}

/// Forgets the stored layout: the menu is generated again.
pub async fn reset_layout(k: &Kernel, caller: &Caller) -> Result<()> {
    require(caller, Permission::Design, "arranging the menu")?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("DELETE FROM menu_layouts WHERE name = ")
        .text(LAYOUT);
    let row = audit(k, caller, "menu.reset").row(k.db.dialect(), LAYOUT);
    k.db.write_atomically(vec![sql, row]).await
}

/// The menu of `caller`: only what their grants let them open, in the stored layout's
/// order, then what it does not place in the generated sections.
pub async fn menu(k: &Kernel, caller: &Caller) -> Result<Vec<MenuSection>> {
    let generated = generated(k, caller).await;
    let Some(layout) = layout(k).await? else {
        return Ok(generated);
    };
    let mut rest = generated;
    let mut out: Vec<MenuSection> = Vec::new();
    for section in &layout.sections {
        let mut items = Vec::new();
        for entry in &section.items {
            let found = rest.iter_mut().find_map(|s| {
                let at = s
                    .items
                    .iter()
                    .position(|m| m.kind == entry.kind.word() && m.name == entry.name)?;
                Some(s.items.remove(at))
            });
            if let Some(mut item) = found {
                if let Some(label) = &entry.label {
                    item.label = label.clone();
                }
                items.push(item);
            }
        }
        if !items.is_empty() {
            out.push(MenuSection {
                key: section.key.clone(),
                label: section.label.clone(),
                items,
            });
        }
    }
    for section in rest.into_iter().filter(|s| !s.items.is_empty()) {
        match out.iter_mut().find(|s| s.key == section.key) {
            Some(same) => same.items.extend(section.items),
            None => out.push(section),
        }
    }
    Ok(out)
}

/// The menu generated from the definitions for `caller`.
async fn generated(k: &Kernel, caller: &Caller) -> Vec<MenuSection> {
    let work = [
        ("todo", "我的待办", "To do"),
        ("handled", "我已处理", "Handled"),
        ("created", "我发起的", "Created by me"),
    ]
    .into_iter()
    .map(|(view, zh, en)| MenuItem {
        kind: "tasks",
        name: view.to_owned(),
        label: label(zh, en),
        path: format!("/api/v1/work-items?view={view}"),
    })
    .collect();
    let services: Vec<MenuItem> = super::monitor::published(k)
        .await
        .into_iter()
        .filter(|(name, _)| {
            caller.in_scope(name)
                && caller.may(Permission::Service {
                    name,
                    op: ServiceOp::Start,
                })
        })
        .map(|(name, service)| MenuItem {
            kind: "service",
            path: format!("/api/v1/services/{name}"),
            label: service.label.clone(),
            name,
        })
        .collect();
    let schema = k.definitions.schema();
    let records: Vec<MenuItem> = schema
        .catalog
        .items()
        .filter(|i| {
            !matches!(
                caller.record_fields(&i.name, RecordOp::Read),
                FieldAccess::Nothing
            )
        })
        .map(|i| MenuItem {
            kind: "records",
            name: i.name.clone(),
            label: i.label.clone(),
            path: format!("/api/v1/records/{}", i.name),
        })
        .collect();
    [
        ("work", label("工作台", "Work"), work),
        ("start", label("发起流程", "Start"), services),
        ("records", label("资料", "Records"), records),
    ]
    .into_iter()
    .filter(|(_, _, items): &(_, _, Vec<MenuItem>)| !items.is_empty())
    .map(|(key, label, items)| MenuSection {
        key: key.to_owned(),
        label,
        items,
    })
    .collect()
}
