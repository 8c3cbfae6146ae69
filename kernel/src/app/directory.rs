//! The [`Directory`] a definition is checked against when it is saved: every role, skill,
//! department, user, resource type and instance, calendar, service and signal that exists
//! now, gathered from the organisation tables, the scheduler's core and the calendars.
//!
//! A role or a skill exists when it is defined (`/roles`, `/skills`) or held by a user (users
//! carry them as plain names); a resource type when it is defined or some resource is of it;
//! a skill also when a resource carries it (a device certified for a treatment). A signal
//! exists when some service's wait step waits for it.

use std::collections::BTreeSet;

use erpos_design::directory::{Directory, Kind};

use crate::Kernel;
use crate::error::Result;

/// Which services a definition may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Services {
    /// Published ones only (publishing: what a process starts must be there).
    Published,
    /// Drafts as well (saving a draft: its sub-service may be a draft of the same work).
    WithDrafts,
}

/// Everything a definition may name, as it exists now.
pub async fn gather(k: &Kernel, services: Services) -> Result<Directory> {
    let mut d = Directory::unchecked();
    let named = |rows: Vec<(String, serde_json::Value)>| rows.into_iter().map(|(n, _)| n);
    d.add(
        Kind::Role,
        named(crate::store::organisation::titles(&k.db, "roles").await?),
    );
    d.add(
        Kind::Skill,
        named(crate::store::organisation::titles(&k.db, "skills").await?),
    );
    d.add(
        Kind::ResourceType,
        crate::resources::types(k)
            .await?
            .iter()
            .filter_map(|t| t.get("name")?.as_str().map(str::to_owned)),
    );
    d.add(Kind::Calendar, k.calendars.all().keys().cloned());
    let from_core = k
        .engine
        .read(|c| {
            let mut held = (BTreeSet::new(), BTreeSet::new());
            for o in c.operators() {
                held.0.extend(o.roles.iter().cloned());
                held.1.extend(o.skills.iter().cloned());
            }
            let mut types = BTreeSet::new();
            for r in c.pool().iter() {
                types.insert(r.resource_type.clone());
                held.1.extend(r.skills.iter().cloned());
            }
            let services: Vec<(String, Option<String>, Vec<String>)> = c
                .published()
                .map(|s| (s.name.clone(), s.subject.clone(), wait_events(s)))
                .collect();
            Core {
                roles: held.0,
                skills: held.1,
                users: c.operators().map(|o| o.id.clone()).collect(),
                departments: c.departments().cloned().collect(),
                resources: c.pool().iter().map(|r| r.id.clone()).collect(),
                types,
                services,
            }
        })
        .await;
    d.add(Kind::Role, from_core.roles);
    d.add(Kind::Skill, from_core.skills);
    d.add(Kind::User, from_core.users);
    d.add(Kind::Department, from_core.departments);
    d.add(Kind::Resource, from_core.resources);
    d.add(Kind::ResourceType, from_core.types);
    d.add(Kind::Service, []);
    d.add(Kind::Signal, []);
    for (name, subject, events) in from_core.services {
        d.add_service(&name, subject.as_deref());
        d.add(Kind::Signal, events);
    }
    if services == Services::WithDrafts {
        for draft in crate::store::services::drafts(&k.db).await? {
            d.add_service(&draft.name, draft.subject.as_deref());
            d.add(Kind::Signal, wait_events(&draft));
        }
    }
    Ok(d)
}

/// What the core knows, read in one pass under its lock.
struct Core {
    roles: BTreeSet<String>,
    skills: BTreeSet<String>,
    users: Vec<String>,
    departments: Vec<String>,
    resources: Vec<String>,
    types: BTreeSet<String>,
    services: Vec<(String, Option<String>, Vec<String>)>,
}

/// The signals a service's wait steps wait for.
fn wait_events(s: &erpos_design::service::Service) -> Vec<String> {
    s.steps
        .iter()
        .filter_map(|step| step.wait.as_ref()?.event.clone())
        .collect()
}
