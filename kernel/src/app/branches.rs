//! Branches (issue 14 §9): the clinic's 徐汇店 and 静安店 share their patients, but each has
//! its own rooms, devices, staff, stock and bookings. A user who stands in a branch (their
//! `branch`) sees that branch's bookings and stock and what serves every branch; a grant
//! `branches:<name>` adds a branch, `branches:*` (or `admin`) all of them. A user of no
//! branch (head office) sees every branch. The API still names a branch a list is limited
//! to (`?branch=`); asking for one outside the caller's is 403.

use erpos_design::Issue;

use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::{KernelError, Result};
use crate::store::bookings::Branches;

/// The branches `caller` sees: None for every branch.
pub async fn scope(k: &Kernel, caller: &Caller) -> Option<Branches> {
    if caller.may(Permission::Branch { name: "*" }) {
        return None;
    }
    let own = k
        .engine
        .read(|c| {
            c.operators()
                .find(|o| o.id == caller.user)
                .and_then(|o| o.branch.clone())
        })
        .await?;
    let all = all(&k.engine).await;
    let mut names = vec![own.clone()];
    names.extend(
        all.into_iter()
            .filter(|b| *b != own && caller.may(Permission::Branch { name: b })),
    );
    Some(Branches {
        names,
        shared: true,
    })
}

/// The branches `caller` sees, by name and sorted: what a console offers to pick from
/// (every branch for head office, `branches:*` and `admin`; else the caller's own and those
/// granted), so it never offers a branch the API would refuse.
pub async fn seen(k: &Kernel, caller: &Caller) -> Vec<String> {
    match scope(k, caller).await {
        None => all(&k.engine).await,
        Some(scope) => {
            let mut names = scope.names;
            names.sort_unstable();
            names
        }
    }
}

/// Every branch some resource or practitioner stands in, sorted.
pub async fn all(engine: &crate::engine::Engine) -> Vec<String> {
    engine
        .read(|c| {
            let mut all: Vec<String> = c
                .pool()
                .iter()
                .filter_map(|r| r.branch.clone())
                .chain(c.operators().filter_map(|o| o.branch.clone()))
                .collect();
            all.sort_unstable();
            all.dedup();
            all
        })
        .await
}

/// Whether some resource or practitioner stands in `branch`: a branch nobody is in is a
/// mistake to name, not a search or a list that finds nothing.
pub async fn known(engine: &crate::engine::Engine, branch: &str) -> bool {
    engine
        .read(|c| {
            c.pool().iter().any(|r| r.branch.as_deref() == Some(branch))
                || c.operators().any(|o| o.branch.as_deref() == Some(branch))
        })
        .await
}

/// What a list asking for `asked` (`?branch=`, None: not asked) shows `caller`: only that
/// branch when asked (403 when it is outside the caller's, 400 when nobody stands in it),
/// else the caller's scope.
pub async fn limit(k: &Kernel, caller: &Caller, asked: Option<&str>) -> Result<Option<Branches>> {
    let scope = scope(k, caller).await;
    let Some(asked) = asked else {
        return Ok(scope);
    };
    if !known(&k.engine, asked).await {
        return Err(KernelError::BadRequest(vec![Issue::new(
            "/query/branch",
            format!("no resource or practitioner stands in branch '{asked}'"),
        )]));
    }
    match scope {
        Some(s) if !s.names.iter().any(|n| n == asked) => Err(KernelError::Forbidden(format!(
            "seeing branch '{asked}' needs branches:{asked} (you see {})",
            s.names.join(", ")
        ))),
        _ => Ok(Some(Branches {
            names: vec![asked.to_owned()],
            shared: false,
        })),
    }
}

/// Refuses (403) `caller` acting on or asking for `branch` outside the branches they see
/// (a branch's nurse moving another branch's stock); answers their scope.
pub async fn within(k: &Kernel, caller: &Caller, branch: &str) -> Result<Option<Branches>> {
    let scope = scope(k, caller).await;
    match &scope {
        Some(s) if !s.names.iter().any(|n| n == branch) => Err(KernelError::Forbidden(format!(
            "branch '{branch}' needs branches:{branch} (you see {})",
            s.names.join(", ")
        ))),
        _ => Ok(scope),
    }
}

/// Whether `caller`, limited to `scope`, sees something of `branch` (None: of every branch).
pub fn sees(scope: &Option<Branches>, branch: Option<&str>) -> bool {
    match (scope, branch) {
        (None, _) => true,
        (Some(s), None) => s.shared,
        (Some(s), Some(b)) => s.names.iter().any(|n| n == b),
    }
}
