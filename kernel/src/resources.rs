//! Resource types, resources and users (operators): validated and stored here, for the API
//! and for packs alike, so both refuse the same things with the same errors. This module
//! must not schedule anything; the engine does.

use std::collections::BTreeSet;

use erpos_design::{DesignError, Issue};
use serde_json::Value;

use crate::Kernel;
use crate::audit::Audit;
use crate::error::{KernelError, Result};
use crate::scheduler::{Operator, Resource};

/// The kinds of resource (MISSION §1).
pub const KINDS: [&str; 5] = ["material", "equipment", "facility", "capital", "knowledge"];

fn invalid(issues: Vec<Issue>) -> KernelError {
    KernelError::Design(DesignError::InvalidRecord(issues))
}

/// An identifier from the body: a user's or resource's `id` must be a safe id
/// ([`erpos_design::bounds::is_safe_id`]: ASCII letters, digits, `_ . - @`), other names
/// (types) an erpos identifier (lowercase, digits, underscores).
fn identifier(body: &Value, key: &str, issues: &mut Vec<Issue>) -> String {
    let (ok, rule): (fn(&str) -> bool, &str) = if key == "id" {
        (
            erpos_design::bounds::is_safe_id,
            erpos_design::bounds::SAFE_ID_RULE,
        )
    } else {
        (
            erpos_design::naming::is_identifier,
            "use lowercase letters, digits and single underscores, starting with a letter",
        )
    };
    match body.get(key).and_then(Value::as_str) {
        Some(s) if ok(s) => s.to_owned(),
        Some(_) => {
            issues.push(Issue::new(format!("/{key}"), rule));
            String::new()
        }
        None => {
            issues.push(Issue::new(format!("/{key}"), "is required"));
            String::new()
        }
    }
}

/// Names every key of `body` that is not one of `allowed`, at its pointer, with the keys
/// allowed: a misspelled key (`"skils"`) must be refused, not stored as nothing.
fn known_keys(body: &Value, allowed: &[&str], issues: &mut Vec<Issue>) {
    match body.as_object() {
        Some(o) => issues.extend(
            o.keys()
                .filter(|k| !allowed.contains(&k.as_str()))
                .map(|k| {
                    Issue::new(
                        format!("/{k}"),
                        format!("unknown key (allowed: {})", allowed.join(", ")),
                    )
                }),
        ),
        None => issues.push(Issue::new("", "expected a JSON object")),
    }
}

/// The keys `POST /api/v1/resource-types` takes.
pub const TYPE_KEYS: [&str; 3] = ["name", "kind", "label"];
/// The keys `POST /api/v1/resources` takes.
pub const RESOURCE_KEYS: [&str; 8] = [
    "id", "type", "capacity", "skills", "label", "name", "calendar", "branch",
];
/// The keys `POST /api/v1/users` takes.
pub const USER_KEYS: [&str; 10] = [
    "id",
    "name",
    "label",
    "roles",
    "skills",
    "capacity",
    "department",
    "calendar",
    "branch",
    "password",
];

/// Refuses labels and display names (`label.zh`, `label.en`, `name`) holding invisible
/// characters or too long ([`erpos_design::bounds::label_problem`]): what people read as
/// a name must be what it is.
fn labels(body: &Value, issues: &mut Vec<Issue>) {
    for (path, text) in [
        ("/label/zh", body.get("label").and_then(|l| l.get("zh"))),
        ("/label/en", body.get("label").and_then(|l| l.get("en"))),
        ("/name", body.get("name")),
    ] {
        if let Some(problem) = text
            .and_then(Value::as_str)
            .and_then(erpos_design::bounds::label_problem)
        {
            issues.push(Issue::new(path, problem));
        }
    }
}

/// The 409 for an id that differs from a taken one only in case (`Admin` next to
/// `admin`): ids are unique without regard to case, so nobody can pass for someone else.
fn case_clash(kind: &str, id: &str, taken: Option<String>) -> Result<()> {
    match taken {
        Some(other) => Err(KernelError::Conflict {
            code: crate::error::ErrorCode::IdTaken,
            message: format!("{kind} '{other}' already exists; ids are unique regardless of case"),
            details: vec![Issue::new(
                "/id",
                format!("'{id}' differs from the existing '{other}' only in case"),
            )],
        }),
        None => Ok(()),
    }
}

/// Names a body lists (`roles`, `skills`): each must be an erpos identifier.
fn strings(body: &Value, key: &str, issues: &mut Vec<Issue>) -> BTreeSet<String> {
    match body.get(key) {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            let list: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            for (i, name) in list.iter().enumerate() {
                if !erpos_design::naming::is_identifier(name) {
                    issues.push(Issue::new(
                        format!("/{key}/{i}"),
                        "not a name: use lowercase letters, digits and single underscores",
                    ));
                }
            }
            list.into_iter().map(str::to_owned).collect()
        }
        Some(_) => {
            issues.push(Issue::new(
                format!("/{key}"),
                "expected an array of strings",
            ));
            BTreeSet::new()
        }
    }
}

fn capacity(body: &Value, issues: &mut Vec<Issue>) -> u32 {
    match body.get("capacity") {
        None | Some(Value::Null) => 1,
        Some(v) => match v
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .filter(|c| *c >= 1)
        {
            Some(c) => c,
            None => {
                issues.push(Issue::new(
                    "/capacity",
                    "expected a whole number of at least 1",
                ));
                1
            }
        },
    }
}

/// The branch a resource's or user's body names: an identifier (`xuhui`), or none.
fn branch_of(body: &Value, issues: &mut Vec<Issue>) -> Option<String> {
    match body.get("branch") {
        None | Some(Value::Null) => None,
        Some(Value::String(b)) if erpos_design::naming::is_identifier(b) => Some(b.clone()),
        Some(_) => {
            issues.push(Issue::new(
                "/branch",
                "a branch's identifier: lowercase letters, digits and single underscores",
            ));
            None
        }
    }
}

/// The working calendar a resource's or user's body names, which must exist.
fn calendar_of(k: &Kernel, body: &Value, issues: &mut Vec<Issue>) -> Option<String> {
    match body.get("calendar") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => {
            if !k.calendars.all().contains_key(c) {
                let names: Vec<String> = k.calendars.all().keys().cloned().collect();
                issues.push(Issue::new(
                    "/calendar",
                    erpos_design::directory::unknown("calendar", c, names.iter()),
                ));
            }
            Some(c.clone())
        }
        Some(_) => {
            issues.push(Issue::new("/calendar", "expected a calendar name"));
            None
        }
    }
}

/// Defines (or replaces) a resource type: `{"name", "kind", "label": {"zh"}}`.
pub async fn put_type(k: &Kernel, body: &Value, audit: &Audit) -> Result<()> {
    let mut issues = Vec::new();
    known_keys(body, &TYPE_KEYS, &mut issues);
    let name = identifier(body, "name", &mut issues);
    let kind = body
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !KINDS.contains(&kind.as_str()) {
        issues.push(Issue::new("/kind", format!("one of: {}", KINDS.join(", "))));
    }
    labels(body, &mut issues);
    if body
        .get("label")
        .and_then(|l| l.get("zh"))
        .and_then(Value::as_str)
        .is_none_or(|z| z.trim().is_empty())
    {
        issues.push(Issue::new("/label/zh", "a Chinese label is required"));
    }
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    let d = k.db.dialect();
    let sql = crate::store::resources::put_type_sql(d, &name, &kind, body);
    k.db.write_atomically(vec![sql, audit.row(d, &name)]).await
}

/// Every resource type.
pub async fn types(k: &Kernel) -> Result<Vec<Value>> {
    crate::store::resources::types(&k.db).await
}

/// Each resource's label, by id (see `store::resources::labels`).
pub async fn resource_labels(k: &Kernel) -> Result<std::collections::BTreeMap<String, Value>> {
    crate::store::resources::labels(&k.db).await
}

/// Defines (or replaces) a resource: `{"id", "type", "capacity", "skills", "label",
/// "calendar"}`.
pub async fn put(k: &Kernel, body: &Value, audit: &Audit) -> Result<()> {
    let mut issues = Vec::new();
    known_keys(body, &RESOURCE_KEYS, &mut issues);
    let id = identifier(body, "id", &mut issues);
    let rtype = identifier(body, "type", &mut issues);
    let capacity = capacity(body, &mut issues);
    let skills = strings(body, "skills", &mut issues);
    let calendar = calendar_of(k, body, &mut issues);
    let branch = branch_of(body, &mut issues);
    labels(body, &mut issues);
    // Checked whatever else is wrong: one answer carries every problem.
    if !rtype.is_empty() && !crate::store::resources::type_exists(&k.db, &rtype).await? {
        issues.push(Issue::new(
            "/type",
            format!("no resource type '{rtype}': define it first"),
        ));
    }
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    let taken = k
        .engine
        .read(|c| {
            c.pool()
                .iter()
                .find(|r| r.id != id && r.id.eq_ignore_ascii_case(&id))
                .map(|r| r.id.clone())
        })
        .await;
    case_clash("resource", &id, taken)?;
    let row = audit.row(k.db.dialect(), &id);
    k.engine
        .put_resource(
            Resource {
                id,
                resource_type: rtype,
                capacity,
                skills,
                calendar,
                branch,
            },
            body,
            row,
        )
        .await
}

/// Defines (or replaces) a user who can handle steps: `{"id", "name", "roles", "skills",
/// "capacity", "department", "password"?}`. The password (at least 8 characters) is stored
/// only as its argon2id hash, never in the user's definition.
pub async fn put_user(k: &Kernel, body: &Value, audit: &Audit) -> Result<()> {
    let mut issues = Vec::new();
    known_keys(body, &USER_KEYS, &mut issues);
    let id = identifier(body, "id", &mut issues);
    let password = match body.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => match crate::auth::check_password(p, "/password") {
            Ok(()) => Some(p.as_str()),
            Err(KernelError::Invalid(mut i)) => {
                issues.append(&mut i);
                None
            }
            Err(e) => return Err(e),
        },
        Some(_) => {
            issues.push(Issue::new("/password", "expected a string"));
            None
        }
    };
    let roles = strings(body, "roles", &mut issues);
    let skills = strings(body, "skills", &mut issues);
    let capacity = capacity(body, &mut issues);
    labels(body, &mut issues);
    let department = match body.get("department") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => {
            if !crate::organisation::department_exists(k, d).await? {
                issues.push(Issue::new(
                    "/department",
                    format!("no department named '{d}'"),
                ));
            }
            Some(d.clone())
        }
        Some(_) => {
            issues.push(Issue::new("/department", "expected a department name"));
            None
        }
    };
    let calendar = calendar_of(k, body, &mut issues);
    let branch = branch_of(body, &mut issues);
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    let taken = k
        .engine
        .read(|c| {
            c.operators()
                .find(|o| o.id != id && o.id.eq_ignore_ascii_case(&id))
                .map(|o| o.id.clone())
        })
        .await;
    case_clash("user", &id, taken)?;
    // Hashed before anything is stored; the user, their password and the audit row are
    // one transaction, so no user is ever stored without the password they were given.
    let mut also = Vec::new();
    if let Some(p) = password {
        also.push(
            k.auth
                .password_sql(&id, &crate::auth::hash_password(p).await?),
        );
    }
    also.push(audit.row(k.db.dialect(), &id));
    let result = k
        .engine
        .put_operator(
            Operator {
                id: id.clone(),
                roles,
                skills,
                capacity,
                department,
                calendar,
                branch,
            },
            also,
        )
        .await
        .map(|_| ());
    // Their roles may have changed, and with them their grants.
    k.auth.user_changed(&id);
    result
}
