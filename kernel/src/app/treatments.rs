//! Use cases of treatments (issue 14 §1): an analyst defines what a visit of each treatment
//! needs (design grant); anyone signed in reads them. The resource types and the skill a
//! treatment names must exist (with a suggestion when misspelt).

use erpos_design::treatment::Treatment;
use serde_json::Value;

use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};

/// Defines (or replaces) a treatment.
pub async fn put(k: &Kernel, caller: &Caller, body: &Value) -> Result<Treatment> {
    require(caller, Permission::Design, "defining treatments")?;
    let mut shape = erpos_design::shape::Shape::new();
    let Some(treatment) = shape
        .read::<Treatment>(body, "", &[])
        .filter(|_| shape.is_clean())
    else {
        return Err(KernelError::Invalid(shape.finish(Vec::new(), body)));
    };
    // Its references checked whatever else is wrong: one answer carries every problem.
    let directory = super::directory::gather(k, super::directory::Services::Published).await?;
    let mut references = Vec::new();
    for (i, ty) in treatment.resource_types.iter().enumerate() {
        directory.check(
            erpos_design::directory::Kind::ResourceType,
            ty,
            format!("/resource_types/{i}"),
            &mut references,
        );
    }
    if let Some(skill) = &treatment.skill {
        directory.check(
            erpos_design::directory::Kind::Skill,
            skill,
            "/skill",
            &mut references,
        );
    }
    if let Some(service) = &treatment.service {
        directory.check(
            erpos_design::directory::Kind::Service,
            service,
            "/service",
            &mut references,
        );
    }
    for (i, c) in treatment.consumables.iter().enumerate() {
        if crate::store::stock::material(&k.db, &c.material)
            .await?
            .is_none()
        {
            references.push(erpos_design::Issue::new(
                format!("/consumables/{i}/material"),
                format!("no material '{}'", c.material),
            ));
        }
    }
    let (treatment, mut issues) = match treatment.prepare() {
        Ok(t) => (Some(t), Vec::new()),
        Err(issues) => (None, issues),
    };
    issues.extend(references);
    let Some(treatment) = treatment.filter(|_| issues.is_empty()) else {
        return Err(KernelError::Invalid(issues));
    };
    let now = k.clock.now_ms();
    let sql = crate::store::treatments::put_sql(&k.db, &treatment, now)?;
    let row = audit(k, caller, "treatment.save").row(k.db.dialect(), &treatment.name);
    k.db.write_atomically(vec![sql, row]).await?;
    Ok(treatment)
}

/// Every treatment.
pub async fn list(k: &Kernel) -> Result<Vec<Treatment>> {
    crate::store::treatments::all(&k.db).await
}

/// The treatment `name` (404 when there is none).
pub async fn get(k: &Kernel, name: &str) -> Result<Treatment> {
    crate::store::treatments::get(&k.db, name)
        .await?
        .ok_or_else(|| KernelError::NotFound(format!("treatment '{name}'")))
}
