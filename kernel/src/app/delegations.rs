//! Use cases of delegations (a deputy takes a user's new work items for a period): anyone
//! manages their own; another user's need `organisation`. Creating and ending one is
//! audited in its own transaction, like every change to who does what.

use serde_json::Value;

use super::audit;
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};
use crate::scheduler::Delegation;

/// Whose delegations a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whose {
    /// The caller's own.
    Own,
    /// One user's (the caller's own, or another's with `organisation`).
    User(String),
    /// Everyone's (needs `organisation`).
    Everyone,
}

fn refuse(what: &str) -> KernelError {
    KernelError::Forbidden(format!("{what} need the organisation grant"))
}

/// The delegations `whose` names, if `caller` may see them.
pub async fn list(k: &Kernel, caller: &Caller, whose: Whose) -> Result<Vec<Delegation>> {
    let user = match whose {
        Whose::Own => Some(caller.user.clone()),
        Whose::User(u) => Some(u),
        Whose::Everyone => None,
    };
    if user.as_deref() != Some(caller.user.as_str()) && !caller.may(Permission::Organisation) {
        return Err(refuse("other users' delegations"));
    }
    Ok(crate::delegations::list(k, user.as_deref()).await)
}

/// Creates the delegation `body` describes (`{"user"?, "deputy", "from", "to",
/// "services"?}`; `user` defaults to the caller).
pub async fn create(k: &Kernel, caller: &Caller, body: &Value) -> Result<Delegation> {
    let user = body
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or(&caller.user);
    if user != caller.user && !caller.may(Permission::Organisation) {
        return Err(KernelError::Forbidden(
            "delegating another user's work needs the organisation grant".into(),
        ));
    }
    let audit = audit(k, caller, "delegation.create");
    crate::delegations::create(k, body, &caller.user, &audit).await
}

/// Ends the delegation `id` early (the caller's own, or anyone's with `organisation`);
/// answers it as it was.
pub async fn end(k: &Kernel, caller: &Caller, id: i64) -> Result<Delegation> {
    let own = crate::delegations::list(k, Some(&caller.user))
        .await
        .iter()
        .any(|d| d.id == id);
    if !own && !caller.may(Permission::Organisation) {
        return Err(refuse("other users' delegations"));
    }
    let audit = audit(k, caller, "delegation.end");
    crate::delegations::remove(k, id, &audit).await
}
