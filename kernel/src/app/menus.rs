//! The caller's menu (issue 13 §9, first part): generated from the definitions and filtered
//! by the caller's grants, so a console or any client shows each person what they may use
//! and nothing else. The work lists come first (to-do, handled, created), then the
//! services the caller may start, then the DataItems whose records they may read. Each
//! entry names the API path it opens. Stored, re-orderable menus are still to come; until
//! then the order is the definitions' own: services and DataItems by name.

use erpos_design::Label;
use serde::Serialize;

use crate::Kernel;
use crate::caller::{Caller, FieldAccess, Permission, RecordOp, ServiceOp};

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
    /// `work`, `start` or `records`.
    pub key: &'static str,
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

/// The menu of `caller`: only what their grants let them open.
pub async fn menu(k: &Kernel, caller: &Caller) -> Vec<MenuSection> {
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
    .map(|(key, label, items)| MenuSection { key, label, items })
    .collect()
}
