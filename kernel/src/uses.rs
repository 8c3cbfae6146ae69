//! What still uses a role, a skill, a calendar, … — asked before it is removed, so that
//! nothing published is left naming what no longer exists (issue 13 §2): each published
//! version of a service that names it (at the step that does), and each user who holds it
//! or works by it. The same list of a service's names ([`Service::uses`]) is what saving
//! checks, so both directions agree on what "uses" means.
//!
//! [`Service::uses`]: erpos_design::service::Service::uses

use std::collections::BTreeSet;

use erpos_design::directory::Kind;

use crate::Kernel;
use crate::error::Result;

/// Where `name` (a `kind`) is still used: each published version of a service that names
/// it (at the step that does), and each user who holds it (a role, a skill) or works by it
/// (a calendar). Empty when nothing does, so it may be removed.
pub async fn used_by(k: &Kernel, kind: Kind, name: &str) -> Vec<erpos_design::Issue> {
    use erpos_design::Issue;
    let mut rows = Vec::new();
    // A DataItem's row visibility rules name roles.
    if kind == Kind::Role {
        for item in k.definitions.schema().catalog.items() {
            for (i, rule) in item.visibility.iter().enumerate() {
                if rule.role == name {
                    rows.push(Issue::new(
                        format!("/data-items/{}/visibility/{i}/role", item.name),
                        format!(
                            "DataItem '{}' says what role '{name}' sees of its records",
                            item.name
                        ),
                    ));
                }
            }
        }
    }
    let mut found = k
        .engine
        .read(|c| {
            let mut out = Vec::new();
            for s in c.published() {
                for u in s.uses() {
                    if u.kind == kind && u.name == name {
                        out.push(Issue::new(
                            format!("/services/{}/versions/{}{}", s.name, s.version, u.at),
                            format!(
                                "service '{}' (version {}) names {} '{name}' here",
                                s.name,
                                s.version,
                                kind.noun()
                            ),
                        ));
                    }
                }
            }
            for o in c.operators() {
                let (holds, key) = match kind {
                    Kind::Role => (o.roles.contains(name), "roles"),
                    Kind::Skill => (o.skills.contains(name), "skills"),
                    Kind::Calendar => (o.calendar.as_deref() == Some(name), "calendar"),
                    Kind::Department => (o.department.as_deref() == Some(name), "department"),
                    _ => (false, ""),
                };
                if holds {
                    out.push(Issue::new(
                        format!("/users/{}/{key}", o.id),
                        format!("user '{}' holds {} '{name}'", o.id, kind.noun()),
                    ));
                }
            }
            out
        })
        .await;
    found.extend(rows);
    found
}

/// Refuses (409 `in_use`) to remove `name` while anything still uses it, naming each use
/// (the services and steps, the users) in the message and in `details`.
pub async fn refuse_if_used(k: &Kernel, kind: Kind, name: &str) -> Result<()> {
    let uses = used_by(k, kind, name).await;
    if uses.is_empty() {
        return Ok(());
    }
    let services: BTreeSet<&str> = uses
        .iter()
        .filter_map(|u| u.path.strip_prefix("/services/")?.split('/').next())
        .collect();
    let users: BTreeSet<&str> = uses
        .iter()
        .filter_map(|u| u.path.strip_prefix("/users/")?.split('/').next())
        .collect();
    let items: BTreeSet<&str> = uses
        .iter()
        .filter_map(|u| u.path.strip_prefix("/data-items/")?.split('/').next())
        .collect();
    let mut parts = Vec::new();
    if !items.is_empty() {
        parts.push(format!(
            "named by the visibility rules of the DataItems {}",
            quoted(&items)
        ));
    }
    if !services.is_empty() {
        parts.push(format!(
            "used by the published services {}",
            quoted(&services)
        ));
    }
    if !users.is_empty() {
        parts.push(format!("held by the users {}", quoted(&users)));
    }
    Err(crate::error::KernelError::Conflict {
        code: crate::error::ErrorCode::InUse,
        message: format!(
            "{} '{name}' is still {}: change those first",
            kind.noun(),
            parts.join(" and ")
        ),
        details: uses,
    })
}

fn quoted(names: &BTreeSet<&str>) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
