//! The organisation: departments (a tree, each with an optional leader), roles and skills
//! (with certifications), validated and stored for the API and packs alike. The scheduler
//! resolves a step's participants against it at run time (`department` in an operator
//! rule takes the members of that department and of every department below it).
//!
//! Changing the organisation is changing who may do what, so the changes a caller makes
//! through the API (`put_role`, `check_user_change`, `save_department`) are checked here:
//!
//! - **Delegation**: nobody hands out, or takes away, a capability they do not hold
//!   themselves. A role's permissions count before and after a replacement; a user's
//!   capabilities count before and after a change.
//! - **Approvals are capabilities**: membership of a role, a skill or a department that a
//!   published service's step picks its operators by (`operators: {role: "president"}`)
//!   lets its members act on that step, so it counts as `services:{service}:handle` — an
//!   organisation user who does not hold that grant cannot put anyone (themselves
//!   included) into, or take anyone out of, an approving role. Leading a department counts
//!   the same for steps that go to the creator's leader.
//! - **Nobody edits their own entitlements**: a user other than an administrator cannot
//!   change their own roles, skills or department.
//! - **Someone stays administrator**: a change that would leave no user who can log in
//!   (has a password) holding `admin` — when one did before — is refused (409
//!   `last_administrator`).
//!
//! These checks run under one lock (`Auth::organisation_lock`), so two changes cannot both
//! pass the last-administrator check. Packs and the kernel itself call the unchecked
//! `put_*` functions. This module must never store a change it has not checked for an API
//! caller, and never read a password.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use erpos_design::naming::{derive_identifier, is_identifier};
use erpos_design::{DesignError, Issue, Label};

use crate::Kernel;
use crate::audit::Audit;
use crate::caller::{Caller, covers};
use crate::error::{KernelError, Result};
use crate::sql::Sql;
use erpos_design::shape::{Shape, stand_in_label};

/// A department.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Identifier (derived from `label.zh` when empty).
    #[serde(default)]
    pub name: String,
    /// Labels.
    pub label: Label,
    /// The department above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Its leader (a user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// A role or a skill: a name people hold, with labels (a skill may be a certification
/// that expires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Title {
    /// Identifier (derived from `label.zh` when empty).
    #[serde(default)]
    pub name: String,
    /// Labels.
    pub label: Label,
    /// For skills: whether holding it needs a certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub certification: bool,
    /// For roles: the grants everyone holding the role has (`design`,
    /// `records:huanzhe:read`, `services:leave:start`, … see `caller::check_grant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

/// Which catalogue a title belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalogue {
    /// Roles (`/api/v1/roles`).
    Roles,
    /// Skills (`/api/v1/skills`).
    Skills,
}

impl Catalogue {
    fn table(self) -> &'static str {
        match self {
            Catalogue::Roles => "roles",
            Catalogue::Skills => "skills",
        }
    }
}

/// Reads a department, role or skill as far as it can be read (see `erpos_design::shape`):
/// every shape problem is kept, a missing or unreadable label is stood in for, so that the
/// checks still run over the rest and one answer carries every problem.
fn read<T: serde::de::DeserializeOwned>(body: &Value) -> Result<(T, Shape)> {
    let mut shape = Shape::new();
    match shape.read::<T>(body, "", &[("label", stand_in_label())]) {
        Some(value) => Ok((value, shape)),
        None => Err(KernelError::Design(DesignError::InvalidDefinition(
            shape.finish(Vec::new(), body),
        ))),
    }
}

/// Refuses with every problem — the shape's and the checks' `issues` — when there is any.
fn refuse(shape: Shape, issues: Vec<Issue>, body: &Value) -> Result<()> {
    if shape.is_clean() && issues.is_empty() {
        return Ok(());
    }
    Err(KernelError::Design(DesignError::InvalidDefinition(
        shape.finish(issues, body),
    )))
}

fn name_of(name: &mut String, label: &Label, issues: &mut Vec<Issue>) {
    if label.zh.trim().is_empty() {
        issues.push(Issue::new("/label/zh", "a Chinese label is required"));
    }
    // What people read as the name must be what it is (no invisible characters).
    issues.extend(label.problems("/label"));
    if name.is_empty() {
        *name = derive_identifier(&label.zh);
    } else if !is_identifier(name) {
        issues.push(Issue::new(
            "/name",
            "use lowercase letters, digits and single underscores, starting with a letter",
        ));
    }
}

/// What a stored role grants (the rest of its definition is labels).
#[derive(Deserialize)]
struct Grants {
    #[serde(default)]
    permissions: Vec<String>,
}

/// A stored definition (`def`, read from `table`'s row `name`) as the type it was stored
/// as; one that does not decode is an error naming the table, column and row.
fn stored<T: serde::de::DeserializeOwned>(
    table: &'static str,
    name: &str,
    def: Value,
) -> Result<T> {
    serde_json::from_value(def).map_err(|e| {
        crate::store::Undecodable {
            table,
            column: "definition",
            key: Some(("name", name.to_owned())),
            problem: format!("does not decode: {e}"),
        }
        .into()
    })
}

async fn names(k: &Kernel, table: &'static str) -> Result<Vec<(String, Value)>> {
    crate::store::organisation::titles(&k.db, table).await
}

/// Every department, role or skill, by name.
pub async fn list(k: &Kernel, table: &'static str) -> Result<Vec<Value>> {
    Ok(names(k, table).await?.into_iter().map(|(_, d)| d).collect())
}

/// Validates and stores a department: its parent must exist and the tree stay a tree; its
/// leader must be a user. Unchecked (packs, the kernel); the API calls `save_department`.
pub async fn put_department(k: &Kernel, body: &Value, audit: &Audit) -> Result<Department> {
    let dept = validate_department(k, body).await?;
    store_department(k, &dept, audit).await?;
    Ok(dept)
}

async fn validate_department(k: &Kernel, body: &Value) -> Result<Department> {
    // Read as far as it can be, then checked whole: one answer carries every problem.
    let (mut dept, shape) = read::<Department>(body)?;
    let mut issues = Vec::new();
    name_of(&mut dept.name, &dept.label, &mut issues);
    if let Some(parent) = &dept.parent {
        // The scheduler holds the tree: no read of the table to check it.
        let (exists, loops) = k
            .engine
            .read(|c| (c.has_department(parent), c.within(Some(parent), &dept.name)))
            .await;
        if !exists {
            issues.push(Issue::new(
                "/parent",
                format!("no department named '{parent}'"),
            ));
        } else if loops {
            issues.push(Issue::new(
                "/parent",
                format!("'{parent}' lies below '{}': the tree would loop", dept.name),
            ));
        }
    }
    if let Some(leader) = &dept.leader
        && !k.engine.read(|c| c.has_operator(leader)).await
    {
        issues.push(Issue::new("/leader", format!("no user '{leader}'")));
    }
    refuse(shape, issues, body)?;
    Ok(dept)
}

async fn store_department(k: &Kernel, dept: &Department, audit: &Audit) -> Result<()> {
    let def = serde_json::to_value(dept).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("INSERT INTO departments (name, definition) VALUES (")
        .text(&dept.name)
        .push(", ")
        .json(&def)
        .push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition");
    k.engine
        .put_department(
            vec![sql, audit.row(k.db.dialect(), &dept.name)],
            &dept.name,
            dept.parent.as_deref(),
            dept.leader.as_deref(),
        )
        .await?;
    // Who "my department" covers may have changed.
    k.auth.departments_changed();
    Ok(())
}

/// Validates and stores a role or a skill. Unchecked (packs, the kernel); the API calls
/// `put_role` for roles.
pub async fn put_title(
    k: &Kernel,
    catalogue: Catalogue,
    body: &Value,
    audit: &Audit,
) -> Result<Title> {
    let title = validate_title(catalogue, body)?;
    store_title(k, catalogue, &title, audit).await?;
    Ok(title)
}

fn validate_title(catalogue: Catalogue, body: &Value) -> Result<Title> {
    let (mut title, shape) = read::<Title>(body)?;
    let mut issues = Vec::new();
    name_of(&mut title.name, &title.label, &mut issues);
    if catalogue == Catalogue::Roles && title.certification {
        issues.push(Issue::new(
            "/certification",
            "only skills are certifications",
        ));
    }
    if catalogue == Catalogue::Skills && !title.permissions.is_empty() {
        issues.push(Issue::new("/permissions", "only roles carry permissions"));
    }
    for (i, grant) in title.permissions.iter().enumerate() {
        if let Err(e) = crate::caller::check_grant(grant) {
            issues.push(Issue::new(format!("/permissions/{i}"), e));
        }
    }
    refuse(shape, issues, body)?;
    Ok(title)
}

async fn store_title(k: &Kernel, catalogue: Catalogue, title: &Title, audit: &Audit) -> Result<()> {
    let def = serde_json::to_value(title).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("INSERT INTO ")
        .ident(catalogue.table())
        .push(" (name, definition) VALUES (")
        .text(&title.name)
        .push(", ")
        .json(&def)
        .push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition");
    k.db.write_atomically(vec![sql, audit.row(k.db.dialect(), &title.name)])
        .await?;
    if catalogue == Catalogue::Roles {
        // Whoever holds the role now has other grants.
        k.auth.roles_changed();
    }
    Ok(())
}

/// Removes a role or a skill that nothing uses any more: no published service names it and
/// no user holds it (409 `in_use` naming them otherwise; 404 when there is none). Taken
/// under the organisation lock, so nobody is given the title while it goes.
pub async fn remove_title(
    k: &Kernel,
    catalogue: Catalogue,
    name: &str,
    audit: &Audit,
) -> Result<()> {
    let _guard = k.auth.organisation_lock().await;
    let noun = match catalogue {
        Catalogue::Roles => "role",
        Catalogue::Skills => "skill",
    };
    if !names(k, catalogue.table())
        .await?
        .iter()
        .any(|(n, _)| n == name)
    {
        return Err(KernelError::NotFound(format!("{noun} '{name}'")));
    }
    let kind = match catalogue {
        Catalogue::Roles => erpos_design::directory::Kind::Role,
        Catalogue::Skills => erpos_design::directory::Kind::Skill,
    };
    crate::uses::refuse_if_used(k, kind, name).await?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("DELETE FROM ")
        .ident(catalogue.table())
        .push(" WHERE name = ")
        .text(name);
    k.db.write_atomically(vec![sql, audit.row(k.db.dialect(), name)])
        .await?;
    if catalogue == Catalogue::Roles {
        k.auth.roles_changed();
    }
    Ok(())
}

/// Whether a department exists.
pub async fn department_exists(k: &Kernel, name: &str) -> Result<bool> {
    Ok(k.engine.read(|c| c.has_department(name)).await)
}

// ---------------------------------------------------------------------------------------
// Checked changes (the API's): delegation, approvals, the last administrator.

/// What someone holds through the organisation: the memberships operator rules pick by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Roles held.
    pub roles: BTreeSet<String>,
    /// Skills held.
    pub skills: BTreeSet<String>,
    /// The department belonged to.
    pub department: Option<String>,
}

impl Membership {
    /// The membership a user definition (as `POST /users` takes it) describes; what is
    /// not a list of strings or a string counts as nothing (`put_user` refuses it anyway).
    pub fn of_user_body(body: &Value) -> Self {
        let set = |key: &str| -> BTreeSet<String> {
            body.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        Self {
            roles: set("roles"),
            skills: set("skills"),
            department: body
                .get("department")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// The approval capabilities a membership carries: for every published service (any
/// version: running processes may be on an old one) with a step whose operators are picked
/// by one of these roles or skills, by a department containing this one, or (`leads`) by
/// the creator's leader — `services:{service}:handle`, with what gives it
/// (`role 'president'`). Holding that grant lets one act on any step of the service, so it
/// is at least what the membership gives.
pub async fn approvals(k: &Kernel, m: &Membership, leads: bool) -> BTreeMap<String, String> {
    k.engine
        .read(|c| {
            let mut out = BTreeMap::new();
            for svc in c.published() {
                for step in &svc.steps {
                    let Some(r) = &step.operators else { continue };
                    let by = if let Some(role) = r.role.as_ref().filter(|x| m.roles.contains(*x)) {
                        format!("role '{role}'")
                    } else if let Some(skill) = r.skill.as_ref().filter(|x| m.skills.contains(*x)) {
                        format!("skill '{skill}'")
                    } else if let Some(d) = r
                        .department
                        .as_ref()
                        .filter(|d| c.within(m.department.as_deref(), d))
                    {
                        format!("department '{d}'")
                    } else if leads && r.creator_leader {
                        "leading a department".to_owned()
                    } else {
                        continue;
                    };
                    out.entry(format!("services:{}:handle", svc.name))
                        .or_insert(format!(
                            "{by} (it approves at step '{}' of '{}')",
                            step.name, svc.name
                        ));
                }
            }
            out
        })
        .await
}

/// Everything a membership lets its holder do: the permissions of its roles, and the
/// approvals it carries (grant → what gives it).
pub async fn capabilities(k: &Kernel, m: &Membership) -> Result<BTreeMap<String, String>> {
    let mut out = approvals(k, m, false).await;
    for g in k.auth.permissions_of(&m.roles).await? {
        out.entry(g)
            .or_insert_with(|| "a role's permissions".to_owned());
    }
    Ok(out)
}

/// Refuses (403) unless `caller` holds each of `grants` (or is an administrator): nobody
/// gives or takes away what they do not have. The message names the grant and what
/// carries it.
pub fn require_delegable(caller: &Caller, grants: &BTreeMap<String, String>) -> Result<()> {
    if caller.is_admin() {
        return Ok(());
    }
    for (g, by) in grants {
        if !caller.grants.iter().any(|mine| covers(mine, g)) {
            return Err(KernelError::Forbidden(format!(
                "handing out or taking away the grant '{g}' (given by {by}) needs {g}"
            )));
        }
    }
    Ok(())
}

/// The users who hold `admin` through their roles and can log in (have a password), if
/// `role` had these permissions and `user` these roles.
async fn administrators(
    k: &Kernel,
    role: Option<(&str, &[String])>,
    user: Option<(&str, &BTreeSet<String>)>,
) -> Result<BTreeSet<String>> {
    let mut admin_roles = BTreeSet::new();
    for (name, def) in names(k, "roles").await? {
        // A role whose permissions do not decode is an error, never a role taken for one
        // without admin (which could let the last administrator go).
        if stored::<Grants>("roles", &name, def)?
            .permissions
            .iter()
            .any(|g| g == "admin")
        {
            admin_roles.insert(name);
        }
    }
    if let Some((name, permissions)) = role {
        if permissions.iter().any(|g| g == "admin") {
            admin_roles.insert(name.to_owned());
        } else {
            admin_roles.remove(name);
        }
    }
    let holders: BTreeSet<String> = k
        .engine
        .read(|c| {
            c.operators()
                .filter(|o| {
                    let roles = match user {
                        Some((id, roles)) if id == o.id => roles,
                        _ => &o.roles,
                    };
                    roles.iter().any(|r| admin_roles.contains(r))
                })
                .map(|o| o.id.clone())
                .collect()
        })
        .await;
    if holders.is_empty() {
        return Ok(holders);
    }
    let with_password: BTreeSet<String> =
        crate::store::Select::from(k.db.dialect(), "credentials", &["user_id"])
            .fetch(&k.db)
            .await?
            .iter()
            .map(|r| r.text("user_id"))
            .collect::<std::result::Result<_, _>>()?;
    Ok(holders.intersection(&with_password).cloned().collect())
}

/// Refuses (409 `last_administrator`) a change after which nobody who can log in holds
/// `admin`, when somebody did before. `what` names the change and `path` the field.
async fn keep_an_administrator(
    k: &Kernel,
    role: Option<(&str, &[String])>,
    user: Option<(&str, &BTreeSet<String>)>,
    what: &str,
    path: &str,
) -> Result<()> {
    if administrators(k, None, None).await?.is_empty() {
        return Ok(());
    }
    if administrators(k, role, user).await?.is_empty() {
        return Err(KernelError::Conflict {
            code: crate::error::ErrorCode::LastAdministrator,
            message: format!(
                "{what} would leave no user who can log in holding admin; make someone else an administrator first"
            ),
            details: vec![Issue::new(
                path,
                "the last administrator's admin grant is here",
            )],
        });
    }
    Ok(())
}

/// Creates or replaces a role for `caller`: the caller must hold every permission the
/// role gives now and will give; a replacement that would leave the installation without
/// an administrator is refused.
pub async fn put_role(k: &Kernel, caller: &Caller, body: &Value, audit: &Audit) -> Result<Title> {
    let title = validate_title(Catalogue::Roles, body)?;
    let _guard = k.auth.organisation_lock().await;
    // The permissions the role gives now count: a stored role that does not decode is an
    // error, never a role that gave nothing.
    let before: Vec<String> = match names(k, "roles")
        .await?
        .into_iter()
        .find(|(name, _)| *name == title.name)
    {
        Some((_, def)) => stored::<Grants>("roles", &title.name, def)?.permissions,
        None => Vec::new(),
    };
    let mut grants = BTreeMap::new();
    for g in before.iter().chain(&title.permissions) {
        grants
            .entry(g.clone())
            .or_insert_with(|| format!("role '{}'", title.name));
    }
    require_delegable(caller, &grants)?;
    keep_an_administrator(
        k,
        Some((&title.name, &title.permissions)),
        None,
        &format!("replacing the permissions of role '{}'", title.name),
        "/permissions",
    )
    .await?;
    store_title(k, Catalogue::Roles, &title, audit).await?;
    Ok(title)
}

/// Checks a user definition `caller` wants to store (`POST /users`) and returns the lock
/// to hold while storing it: the caller must hold everything the user can do now and will
/// be able to do (their roles' permissions and the approvals their roles, skills and
/// department carry) — setting their password is becoming them; a user other than an
/// administrator cannot change their own roles, skills or department; and the last
/// administrator stays one.
pub async fn check_user_change<'k>(
    k: &'k Kernel,
    caller: &Caller,
    body: &Value,
) -> Result<tokio::sync::MutexGuard<'k, ()>> {
    let guard = k.auth.organisation_lock().await;
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
    let after = Membership::of_user_body(body);
    let before = k
        .engine
        .read(|c| {
            c.operators().find(|o| o.id == id).map(|o| Membership {
                roles: o.roles.clone(),
                skills: o.skills.clone(),
                department: o.department.clone(),
            })
        })
        .await;
    if !caller.is_admin() {
        if caller.user == id && before.as_ref().unwrap_or(&Membership::default()) != &after {
            return Err(KernelError::Forbidden(
                "changing your own roles, skills or department needs admin".to_owned(),
            ));
        }
        let mut grants = capabilities(k, &after).await?;
        if let Some(before) = &before {
            grants.extend(capabilities(k, before).await?);
        }
        require_delegable(caller, &grants)?;
    }
    keep_an_administrator(
        k,
        None,
        Some((id, &after.roles)),
        &format!("changing the roles of user '{id}'"),
        "/roles",
    )
    .await?;
    Ok(guard)
}

/// Creates or replaces a department for `caller`: changing its leader, or moving an
/// existing department into or out of one that a step picks operators by, changes who
/// approves — the caller must hold those approvals.
pub async fn save_department(
    k: &Kernel,
    caller: &Caller,
    body: &Value,
    audit: &Audit,
) -> Result<Department> {
    let dept = validate_department(k, body).await?;
    let _guard = k.auth.organisation_lock().await;
    if !caller.is_admin() {
        let old: Option<crate::store::organisation::DepartmentLink> = match names(k, "departments")
            .await?
            .into_iter()
            .find(|(name, _)| *name == dept.name)
        {
            Some((_, def)) => Some(stored("departments", &dept.name, def)?),
            None => None,
        };
        let mut grants = BTreeMap::new();
        let old_leader = old.as_ref().and_then(|o| o.leader.clone());
        if old_leader != dept.leader {
            grants.extend(approvals(k, &Membership::default(), true).await);
        }
        if let Some(old) = &old
            && old.parent != dept.parent
        {
            for parent in [&old.parent, &dept.parent] {
                let inside = Membership {
                    department: parent.clone(),
                    ..Membership::default()
                };
                grants.extend(approvals(k, &inside, false).await);
            }
        }
        require_delegable(caller, &grants)?;
    }
    store_department(k, &dept, audit).await?;
    Ok(dept)
}
