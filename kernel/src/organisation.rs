//! The organisation: departments (a tree, each with an optional leader), roles and skills
//! (with certifications), validated and stored for the API and packs alike. The scheduler
//! resolves a step's participants against it at run time (`department` in an operator
//! rule takes the members of that department and of every department below it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use erpos_design::naming::{derive_identifier, is_identifier};
use erpos_design::{DesignError, Issue, Label};

use crate::Kernel;
use crate::error::{KernelError, Result};
use crate::sql::Sql;

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

fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = erpos_design::error::serde_path_to_pointer(&e.path().to_string());
        KernelError::Design(DesignError::InvalidDefinition(vec![Issue::new(
            path,
            e.inner().to_string(),
        )]))
    })
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

async fn names(k: &Kernel, table: &str) -> Result<Vec<(String, Value)>> {
    let mut sql = Sql::new(k.db.dialect());
    sql.push("SELECT ")
        .col_text("name")
        .push(", ")
        .col_text("definition")
        .push(" FROM ")
        .ident(table)
        .push(" ORDER BY name");
    k.db.fetch(sql)
        .await?
        .into_iter()
        .map(|r| {
            let name = r.first().cloned().flatten().unwrap_or_default();
            let def = serde_json::from_str(&r.get(1).cloned().flatten().unwrap_or_default())
                .map_err(|e| KernelError::Corrupt(format!("stored {table}: {e}")))?;
            Ok((name, def))
        })
        .collect()
}

/// Every department, role or skill, by name.
pub async fn list(k: &Kernel, table: &str) -> Result<Vec<Value>> {
    Ok(names(k, table).await?.into_iter().map(|(_, d)| d).collect())
}

/// Validates and stores a department: its parent must exist and the tree stay a tree; its
/// leader must be a user.
pub async fn put_department(k: &Kernel, body: &Value) -> Result<Department> {
    let mut dept: Department = parse(body)?;
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
    if !issues.is_empty() {
        return Err(KernelError::Design(DesignError::InvalidDefinition(issues)));
    }
    let def = serde_json::to_value(&dept).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("INSERT INTO departments (name, definition) VALUES (")
        .text(&dept.name)
        .push(", ")
        .json(&def)
        .push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition");
    k.engine
        .put_department(
            sql,
            &dept.name,
            dept.parent.as_deref(),
            dept.leader.as_deref(),
        )
        .await?;
    Ok(dept)
}

/// Validates and stores a role or a skill.
pub async fn put_title(k: &Kernel, catalogue: Catalogue, body: &Value) -> Result<Title> {
    let mut title: Title = parse(body)?;
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
    if !issues.is_empty() {
        return Err(KernelError::Design(DesignError::InvalidDefinition(issues)));
    }
    let def = serde_json::to_value(&title).map_err(|e| KernelError::Corrupt(e.to_string()))?;
    let mut sql = Sql::new(k.db.dialect());
    sql.push("INSERT INTO ")
        .ident(catalogue.table())
        .push(" (name, definition) VALUES (")
        .text(&title.name)
        .push(", ")
        .json(&def)
        .push(") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition");
    k.db.write_atomically(vec![sql]).await?;
    if catalogue == Catalogue::Roles {
        // Whoever holds the role now has other grants.
        k.auth.roles_changed();
    }
    Ok(title)
}

/// Whether a department exists.
pub async fn department_exists(k: &Kernel, name: &str) -> Result<bool> {
    Ok(k.engine.read(|c| c.has_department(name)).await)
}
