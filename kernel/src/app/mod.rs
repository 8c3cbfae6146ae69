//! The application layer: one function per use case, the size a caller thinks in.
//!
//! Every use case takes the [`Caller`] and its input, checks the caller's grant, makes the
//! change and writes its audit row **in the same transaction** (see [`crate::audit`]), and
//! returns a typed result. HTTP handlers, the pack loader and the benches call these
//! functions; none of them checks a permission or writes an audit row on its own, so a rule
//! about who may do what is written once, here, and holds whichever way a change arrives.
//! The pack loader and the benches act as [`Caller::system`] under their own name: that is
//! the one explicit capability that passes every grant check, and their changes are audited
//! under that name like anyone's.
//!
//! This layer never speaks HTTP: it returns [`KernelError`]s, which the API maps to statuses.

pub mod access;
pub mod bookings;
pub mod branches;
pub mod capacity;
pub mod charges;
pub mod courses;
pub mod delegations;
pub mod design;
pub mod directory;
pub mod ledger;
pub mod menus;
pub mod migration_runs;
pub mod migrations;
pub mod monitor;
pub mod operations;
pub mod orders;
pub mod organisation;
pub mod plan;
pub mod processes;
pub mod records;
pub mod slots;
pub mod stock;
pub mod treatments;
pub mod visits;
pub mod waitlist;
pub mod work;

use crate::Kernel;
use crate::audit::Audit;
use crate::caller::{Caller, Permission, covers};
use crate::error::{KernelError, Result};

/// Refuses (403) unless `caller` may `permission`; the message says what `what` needs
/// (`"defining DataItems needs design"`), so an administrator knows which grant to give.
pub fn require(caller: &Caller, permission: Permission<'_>, what: &str) -> Result<()> {
    if caller.may(permission) {
        return Ok(());
    }
    let grant = permission
        .grants()
        .into_iter()
        .next()
        .unwrap_or_else(|| "admin".to_owned());
    Err(KernelError::Forbidden(format!("{what} needs {grant}")))
}

/// Refuses to hand out a grant the caller does not hold (in a role's permissions, a user's
/// roles, an app token's scopes, or by taking a user over with a new password): holding
/// `organisation` must not make anyone an administrator. An administrator gives anything.
pub fn require_delegable<'a>(
    caller: &Caller,
    grants: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    if caller.is_admin() {
        return Ok(());
    }
    for g in grants {
        if !caller.grants.iter().any(|mine| covers(mine, g)) {
            return Err(KernelError::Forbidden(format!(
                "handing out the grant '{g}' needs {g}"
            )));
        }
    }
    Ok(())
}

/// The audit entry of `caller` doing `action` now, for the store to write with the change.
pub fn audit(k: &Kernel, caller: &Caller, action: &'static str) -> Audit {
    Audit::new(&caller.user, action, k.clock.now_ms())
}

/// A request body read into `T` (no body reads as `{}`, so what is missing is named):
/// every field that is wrong, unknown or missing at its pointer, as 422. A body that is not
/// a JSON object is refused whole: serde would read an array as a struct's fields in order
/// (`[null, 0]` as `{reason, version}`), accepting what the documented schema refuses.
pub(crate) fn read_body<T: serde::de::DeserializeOwned>(body: &serde_json::Value) -> Result<T> {
    let empty = serde_json::json!({});
    let body = if body.is_null() { &empty } else { body };
    if !body.is_object() {
        return Err(KernelError::Invalid(vec![erpos_design::Issue::new(
            "",
            "expected a JSON object",
        )]));
    }
    let mut shape = erpos_design::shape::Shape::new();
    match shape.read::<T>(body, "", &[]) {
        Some(request) if shape.is_clean() => Ok(request),
        _ => Err(KernelError::Invalid(shape.finish(Vec::new(), body))),
    }
}

/// A short text a caller names (a reference, a note): not blank, at most `max` characters.
pub(crate) fn short_text(text: &str, at: &str, max: usize, issues: &mut Vec<erpos_design::Issue>) {
    if text.trim().is_empty() {
        issues.push(erpos_design::Issue::new(at, "must not be empty"));
    } else if text.chars().count() > max {
        issues.push(erpos_design::Issue::new(
            at,
            format!("at most {max} characters"),
        ));
    }
}

/// One page of a holder's things (`?holder=&after=&limit=`): the holder asked for, the id
/// the page starts after, and how many (default 50, at most `max`); unknown parameters
/// are named.
pub(crate) struct HolderPage {
    /// Only this holder's.
    pub holder: Option<String>,
    /// After this id.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// Reads a [`HolderPage`] from the query.
pub(crate) fn holder_page(params: &[(String, String)], max: usize) -> Result<HolderPage> {
    let mut page = HolderPage {
        holder: None,
        after: None,
        limit: 50,
    };
    let mut issues = Vec::new();
    for (key, raw) in params {
        match key.as_str() {
            "holder" => page.holder = Some(raw.clone()),
            "after" => page.after = Some(raw.clone()),
            "limit" => {
                if let Some(n) = limit_param(raw, max, &mut issues) {
                    page.limit = n;
                }
            }
            _ => issues.push(erpos_design::Issue::new(
                format!("/query/{key}"),
                "unknown parameter (holder, after, limit)",
            )),
        }
    }
    if issues.is_empty() {
        Ok(page)
    } else {
        Err(KernelError::BadRequest(issues))
    }
}

/// One page of a numbered history (`?after=<seq>&limit=`): the seq the page starts after
/// (default 0) and how many (default 50, at most `max`); `what` names the rows in the
/// message of a bad `after`.
pub(crate) fn seq_page(
    params: &[(String, String)],
    max: usize,
    what: &str,
) -> Result<(i64, usize)> {
    let (mut after, mut limit, mut issues) = (0, 50, Vec::new());
    for (key, raw) in params {
        match key.as_str() {
            "after" => match raw.parse::<i64>() {
                Ok(n) if n >= 0 => after = n,
                _ => issues.push(erpos_design::Issue::new(
                    "/query/after",
                    format!("the seq of the last {what} seen"),
                )),
            },
            "limit" => {
                if let Some(n) = limit_param(raw, max, &mut issues) {
                    limit = n;
                }
            }
            _ => issues.push(erpos_design::Issue::new(
                format!("/query/{key}"),
                "unknown parameter (after, limit)",
            )),
        }
    }
    if issues.is_empty() {
        Ok((after, limit))
    } else {
        Err(KernelError::BadRequest(issues))
    }
}

/// A `limit` query parameter: a whole number from 1 to `max`, else a problem at
/// `/query/limit` (and None).
pub(crate) fn limit_param(
    raw: &str,
    max: usize,
    issues: &mut Vec<erpos_design::Issue>,
) -> Option<usize> {
    match raw.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Some(n),
        _ => {
            issues.push(erpos_design::Issue::new(
                "/query/limit",
                format!("a whole number from 1 to {max}"),
            ));
            None
        }
    }
}

/// The strings of a JSON array at `key` (others ignored: the store's own check names
/// them), for grant checks made before the body is parsed.
fn strings_at(body: &serde_json::Value, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .map(str::to_owned)
        .collect()
}
