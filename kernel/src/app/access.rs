//! Use cases of access: passwords and app tokens. Setting someone's password is becoming
//! them, and an app token acts for any user within its scopes: both need the grants they
//! hand out.

use std::net::IpAddr;

use erpos_design::Issue;
use serde_json::Value;

use super::{audit, require, require_delegable, strings_at};
use crate::Kernel;
use crate::auth::apps::AppToken;
use crate::caller::{Caller, CallerKind, Permission};
use crate::error::{KernelError, Result};

/// A password change: whose, the new one, and (for one's own without `organisation`) the
/// current one, checked like a login from `client`.
pub struct SetPassword<'a> {
    /// The user whose password changes.
    pub user: &'a str,
    /// The new password (checked: at least 8 characters, …; required). Checked after the
    /// grants, so a caller who may not change it learns nothing about the rules.
    pub password: Option<&'a str>,
    /// The current password, needed to change one's own without `organisation`.
    pub old_password: Option<&'a str>,
    /// Where the request comes from (failed checks of the old password are throttled).
    pub client: Option<IpAddr>,
    /// The session to keep when a user changes their own password (every other session
    /// of theirs ends).
    pub keep_session: Option<&'a str>,
}

/// Changes a password: one's own with the current one, anyone's with `organisation` and
/// every grant they hold. Every session of theirs but the caller's own ends.
pub async fn set_password(k: &Kernel, caller: &Caller, change: SetPassword<'_>) -> Result<()> {
    let id = change.user;
    let own = caller.user == id && caller.kind == CallerKind::User;
    if !caller.may(Permission::Organisation) {
        if !own {
            return Err(KernelError::Forbidden(
                "setting another user's password needs organisation".to_owned(),
            ));
        }
        let old = change.old_password.ok_or_else(|| {
            KernelError::Invalid(vec![Issue::new(
                "/old_password",
                "changing your own password needs your current one",
            )])
        })?;
        if !k.auth.check_password_of(id, old, change.client).await? {
            return Err(KernelError::Forbidden(
                "the old password does not match".to_owned(),
            ));
        }
    }
    if k.auth.roles_of(id).await?.is_none() {
        return Err(KernelError::NotFound(format!("user '{id}'")));
    }
    if !own {
        // Setting someone's password is becoming them.
        require_delegable(caller, k.auth.grants_of(id).await?.iter())?;
    }
    let password = change.password.ok_or_else(|| {
        KernelError::Invalid(vec![Issue::new("/password", "a string is required")])
    })?;
    crate::auth::check_password(password, "/password")?;
    k.auth
        .set_password(id, password, &audit(k, caller, "user.password"))
        .await?;
    k.auth
        .end_sessions_of(id, change.keep_session.filter(|_| own))
        .await?;
    tracing::info!(user = %id, by = %caller.user, "password changed");
    Ok(())
}

/// Creates an app token; answers it with its secret (shown this once). Its creator must
/// hold every scope it is given.
pub async fn create_app_token(
    k: &Kernel,
    caller: &Caller,
    body: &Value,
) -> Result<(AppToken, String)> {
    require(caller, Permission::Organisation, "creating app tokens")?;
    require_delegable(caller, &strings_at(body, "scopes"))?;
    k.auth
        .create_app(body, &audit(k, caller, "app_token.create"))
        .await
}

/// Revokes an app token: its signatures are refused from now on.
pub async fn revoke_app_token(k: &Kernel, caller: &Caller, name: &str) -> Result<()> {
    require(caller, Permission::Organisation, "revoking app tokens")?;
    k.auth
        .revoke_app(name, &audit(k, caller, "app_token.revoke"))
        .await
}
