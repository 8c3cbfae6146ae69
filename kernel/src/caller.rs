//! Who is calling: the identity and grants an authenticated request carries, and the one
//! place permissions are checked against them.
//!
//! The authentication layer (`auth`) builds a `Caller` for every `/api/v1` request and puts
//! it in the request's extensions; handlers take it as an extractor and ask `may(...)`.
//! This module never talks to storage and never decides who someone is — only what the
//! grants it was given allow.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// What is done to a DataItem's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOp {
    /// List and show.
    Read,
    /// Create.
    Create,
    /// Patch.
    Update,
    /// Delete.
    Delete,
}

impl RecordOp {
    /// The word used in grants (`records:huanzhe:read`).
    pub fn word(self) -> &'static str {
        match self {
            RecordOp::Read => "read",
            RecordOp::Create => "create",
            RecordOp::Update => "update",
            RecordOp::Delete => "delete",
        }
    }
}

/// What is done with a service's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceOp {
    /// Start a process.
    Start,
    /// See every process of the service (not only one's own).
    View,
    /// Handle steps one is not a participant of.
    Handle,
    /// Suspend, resume, terminate, change state directly.
    Administer,
}

impl ServiceOp {
    /// The word used in grants (`services:leave:start`).
    pub fn word(self) -> &'static str {
        match self {
            ServiceOp::Start => "start",
            ServiceOp::View => "view",
            ServiceOp::Handle => "handle",
            ServiceOp::Administer => "administer",
        }
    }
}

/// One permission a request may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission<'a> {
    /// Everything (the bootstrap token, the `admin` grant).
    Admin,
    /// The design layer: DataItems, services, rules, calendars, resource types.
    Design,
    /// The organisation: users, departments, roles, skills, resources, app tokens.
    Organisation,
    /// Queues, statistics, events, the outbox: watching the kernel.
    Monitor,
    /// Records of a DataItem (a field, when only one field is concerned).
    Record {
        /// The DataItem.
        item: &'a str,
        /// The operation.
        op: RecordOp,
        /// The field, for per-field grants.
        field: Option<&'a str>,
    },
    /// Processes of a service.
    Service {
        /// The service.
        name: &'a str,
        /// The operation.
        op: ServiceOp,
    },
}

impl Permission<'_> {
    /// The grant strings that allow this permission, most specific first; `*` matches any
    /// name or operation, and `admin` everything.
    pub fn grants(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self {
            Permission::Admin => {}
            Permission::Design => out.push("design".to_owned()),
            Permission::Organisation => out.push("organisation".to_owned()),
            Permission::Monitor => out.push("monitor".to_owned()),
            Permission::Record { item, op, field } => {
                for i in [*item, "*"] {
                    for o in [op.word(), "*"] {
                        if let Some(f) = field {
                            out.push(format!("records:{i}:{o}:{f}"));
                        }
                        out.push(format!("records:{i}:{o}"));
                    }
                }
            }
            Permission::Service { name, op } => {
                for n in [*name, "*"] {
                    for o in [op.word(), "*"] {
                        out.push(format!("services:{n}:{o}"));
                    }
                }
            }
        }
        out.push("admin".to_owned());
        out
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    /// The kernel itself (rules, timers, the command line): everything allowed.
    System,
    /// The bootstrap admin token (`ERPOS_BOOTSTRAP_TOKEN`).
    Bootstrap,
    /// A user's session or bearer token.
    User,
    /// An app token acting on behalf of a user.
    App {
        /// The app token's name.
        app: String,
        /// The services it may touch (empty: none).
        services: Vec<String>,
    },
}

/// The caller of a request: who acts (recorded as the actor of every change) and what they
/// may do.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The acting user id (for an app token: the user named in its header).
    pub user: String,
    /// How they authenticated.
    pub kind: CallerKind,
    /// The grants in force (for an app token: the user's, limited to the token's scopes).
    pub grants: Arc<BTreeSet<String>>,
}

impl Caller {
    /// The kernel acting on its own behalf, allowed everything.
    pub fn system(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            kind: CallerKind::System,
            grants: Arc::new(BTreeSet::from(["admin".to_owned()])),
        }
    }

    /// Whether the grants allow `permission` (an app token also needs the service in its
    /// list; see `in_scope`).
    pub fn may(&self, permission: Permission<'_>) -> bool {
        if matches!(self.kind, CallerKind::System | CallerKind::Bootstrap) {
            return true;
        }
        if let Permission::Service { name, .. } = permission
            && !self.in_scope(name)
        {
            return false;
        }
        permission.grants().iter().any(|g| self.grants.contains(g))
    }

    /// Whether the caller may touch this service's processes at all: always, except for an
    /// app token, which only sees the services it was issued for.
    pub fn in_scope(&self, service: &str) -> bool {
        match &self.kind {
            CallerKind::App { services, .. } => services.iter().any(|s| s == service || s == "*"),
            _ => true,
        }
    }

    /// Whether this caller is an administrator (bootstrap, system or the `admin` grant).
    pub fn is_admin(&self) -> bool {
        self.may(Permission::Admin)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = crate::api::ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The authentication layer puts the caller in the extensions of every request it
        // lets through. Until it runs on every route, a request without one acts as the API
        // itself, as before.
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller::system("api")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(grants: &[&str]) -> Caller {
        Caller {
            user: "zhangsan".into(),
            kind: CallerKind::User,
            grants: Arc::new(grants.iter().map(|g| (*g).to_owned()).collect()),
        }
    }

    #[test]
    fn grants_match_by_name_operation_wildcard_and_admin() {
        let start = Permission::Service {
            name: "leave",
            op: ServiceOp::Start,
        };
        assert!(user(&["services:leave:start"]).may(start));
        assert!(user(&["services:*:start"]).may(start));
        assert!(user(&["services:leave:*"]).may(start));
        assert!(user(&["admin"]).may(start));
        assert!(!user(&["services:leave:view"]).may(start));
        assert!(!user(&["services:expense:start"]).may(start));
        let field = Permission::Record {
            item: "huanzhe",
            op: RecordOp::Update,
            field: Some("age"),
        };
        assert!(user(&["records:huanzhe:update:age"]).may(field));
        assert!(user(&["records:huanzhe:update"]).may(field));
        assert!(!user(&["records:huanzhe:update:xingming"]).may(field));
    }

    #[test]
    fn an_app_token_only_reaches_its_services() {
        let mut app = user(&["services:*:*"]);
        app.kind = CallerKind::App {
            app: "oa".into(),
            services: vec!["leave".into()],
        };
        let on = |name| Permission::Service {
            name,
            op: ServiceOp::View,
        };
        assert!(app.may(on("leave")));
        assert!(!app.may(on("expense")));
        assert!(!app.in_scope("expense"));
    }
}
