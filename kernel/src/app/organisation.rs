//! Use cases of the organisation: departments, roles, skills, users and resources. Each
//! needs the `organisation` grant, and nobody hands out (or takes away) a grant they do
//! not hold themselves; the last administrator stays one (`crate::organisation`).

use serde_json::Value;

use super::{audit, require, require_delegable, strings_at};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::Result;
use crate::organisation::{self, Catalogue, Department, Title};

/// Creates or replaces a department.
pub async fn save_department(k: &Kernel, caller: &Caller, body: &Value) -> Result<Department> {
    require(caller, Permission::Organisation, "defining departments")?;
    organisation::save_department(k, caller, body, &audit(k, caller, "department.save")).await
}

/// Creates or replaces a role: the caller must hold every permission it gives.
pub async fn save_role(k: &Kernel, caller: &Caller, body: &Value) -> Result<Title> {
    require(caller, Permission::Organisation, "defining roles")?;
    require_delegable(caller, &strings_at(body, "permissions"))?;
    organisation::put_role(k, caller, body, &audit(k, caller, "role.save")).await
}

/// Creates or replaces a skill (or certification).
pub async fn save_skill(k: &Kernel, caller: &Caller, body: &Value) -> Result<Title> {
    require(caller, Permission::Organisation, "defining skills")?;
    organisation::put_title(k, Catalogue::Skills, body, &audit(k, caller, "skill.save")).await
}

/// Removes a role nobody holds and no published service names (409 `in_use` naming them).
pub async fn remove_role(k: &Kernel, caller: &Caller, name: &str) -> Result<()> {
    require(caller, Permission::Organisation, "removing roles")?;
    organisation::remove_title(k, Catalogue::Roles, name, &audit(k, caller, "role.remove")).await
}

/// Removes a skill nobody holds and no published service names (409 `in_use` naming them).
pub async fn remove_skill(k: &Kernel, caller: &Caller, name: &str) -> Result<()> {
    require(caller, Permission::Organisation, "removing skills")?;
    organisation::remove_title(
        k,
        Catalogue::Skills,
        name,
        &audit(k, caller, "skill.remove"),
    )
    .await
}

/// Defines (or replaces) a user who can handle steps. Whoever changes a user must hold
/// what the user can do and will be able to do; the last administrator stays one.
pub async fn save_user(k: &Kernel, caller: &Caller, body: &Value) -> Result<()> {
    require(caller, Permission::Organisation, "defining users")?;
    let guard = organisation::check_user_change(k, caller, body).await?;
    let done = crate::resources::put_user(k, body, &audit(k, caller, "user.save")).await;
    drop(guard);
    done
}

/// Defines (or replaces) a resource (a room, a device).
pub async fn save_resource(k: &Kernel, caller: &Caller, body: &Value) -> Result<()> {
    require(caller, Permission::Organisation, "defining resources")?;
    crate::resources::put(k, body, &audit(k, caller, "resource.save")).await
}
