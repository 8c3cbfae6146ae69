//! Who is calling: the identity and grants an authenticated request carries, and the one
//! place permissions are checked against them.
//!
//! The authentication layer (`auth`) builds a `Caller` for every `/api/v1` request and puts
//! it in the request's extensions; handlers take it as an extractor and ask `may(...)`.
//! This module never talks to storage and never decides who someone is — only what the
//! grants it was given allow.

use std::collections::BTreeSet;
use std::sync::Arc;

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
    /// Bookings of resources and operators: `read` (see them), `book` (book, move,
    /// cancel, mark no-show).
    Bookings {
        /// The operation: `read` or `book`.
        op: &'a str,
    },
    /// Prepaid accounts: `read` (see them), `charge` (open accounts, recharge, consume,
    /// refund), `adjust` (correct a balance).
    Money {
        /// The operation.
        op: &'a str,
    },
    /// Stock: `read` (see materials, lots, movements, alerts), `move` (receive, consume,
    /// adjust, write off, open lots), `manage` (define materials).
    Stock {
        /// The operation.
        op: &'a str,
    },
    /// Seeing a branch's bookings and stock beyond one's own branch (`branches:jingan`,
    /// `branches:*`): staff of a branch see their own and what serves every branch.
    Branch {
        /// The branch.
        name: &'a str,
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
            Permission::Bookings { op } => {
                out.push(format!("bookings:{op}"));
                out.push("bookings:*".to_owned());
            }
            Permission::Money { op } => {
                out.push(format!("money:{op}"));
                out.push("money:*".to_owned());
            }
            Permission::Stock { op } => {
                out.push(format!("stock:{op}"));
                out.push("stock:*".to_owned());
            }
            Permission::Branch { name } => {
                out.push(format!("branches:{name}"));
                out.push("branches:*".to_owned());
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

/// Where a user stands in the organisation, as far as row visibility asks (see
/// `erpos_design::visibility`): the roles they hold, and the departments "their department"
/// covers — their own and every one below it. Worked out when they authenticate, so a
/// list, a read and a stream decide visibility without a query of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The roles held.
    pub roles: BTreeSet<String>,
    /// Their department and every department below it (empty without a department).
    pub departments: BTreeSet<String>,
    /// The branch they stand in (issue 14 §9); None: head office, every branch.
    pub branch: Option<String>,
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
    /// Their roles and departments, for row visibility (empty for the kernel and the
    /// bootstrap administrator, who see every record anyway).
    pub standing: Arc<Standing>,
}

impl Caller {
    /// The kernel acting on its own behalf, allowed everything.
    pub fn system(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            kind: CallerKind::System,
            grants: Arc::new(BTreeSet::from(["admin".to_owned()])),
            standing: Arc::default(),
        }
    }

    /// Whether the caller sees what belongs to `branch` (None: to no branch, which
    /// everyone sees): their own branch's, a branch granted by `branches:<name>`, every
    /// branch with `branches:*` or when they stand in none (head office).
    pub fn sees_branch(&self, branch: Option<&str>) -> bool {
        match (branch, self.standing.branch.as_deref()) {
            (None, _) | (_, None) => true,
            (Some(b), Some(own)) => b == own || self.may(Permission::Branch { name: b }),
        }
    }

    /// Whether this is the kernel acting on its own behalf (a rule, a timer, a booking
    /// starting its visit): the only caller that may set what the kernel alone sets.
    pub fn is_kernel(&self) -> bool {
        matches!(self.kind, CallerKind::System)
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

/// Which fields of a DataItem's records a caller may touch with one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldAccess {
    /// Every field (a whole-operation grant such as `records:huanzhe:read`).
    All,
    /// Only these fields (per-field grants such as `records:huanzhe:read:age`).
    Fields(BTreeSet<String>),
    /// None at all.
    Nothing,
}

impl FieldAccess {
    /// Whether `field` is allowed.
    pub fn allows(&self, field: &str) -> bool {
        match self {
            FieldAccess::All => true,
            FieldAccess::Fields(f) => f.contains(field),
            FieldAccess::Nothing => false,
        }
    }
}

impl Caller {
    /// A user authenticated by a session (or any bearer credential of their own), with the
    /// grants their roles give and where they stand.
    pub fn user(user: &str, grants: Arc<BTreeSet<String>>, standing: Arc<Standing>) -> Self {
        Self {
            user: user.to_owned(),
            kind: CallerKind::User,
            grants,
            standing,
        }
    }

    /// The holder of the bootstrap token: the administrator `admin`, allowed everything.
    pub fn bootstrap() -> Self {
        Self {
            user: "admin".to_owned(),
            kind: CallerKind::Bootstrap,
            grants: Arc::new(BTreeSet::from(["admin".to_owned()])),
            standing: Arc::default(),
        }
    }

    /// Which fields of `item` the caller may `op`: all of them with a whole-operation grant,
    /// else those named by per-field grants (`records:{item|*}:{op|*}:{field}`).
    pub fn record_fields(&self, item: &str, op: RecordOp) -> FieldAccess {
        if self.may(Permission::Record {
            item,
            op,
            field: None,
        }) {
            return FieldAccess::All;
        }
        let fields: BTreeSet<String> = self
            .grants
            .iter()
            .filter_map(|g| {
                let parts: Vec<&str> = g.split(':').collect();
                match parts.as_slice() {
                    ["records", i, o, f]
                        if (*i == item || *i == "*") && (*o == op.word() || *o == "*") =>
                    {
                        Some((*f).to_owned())
                    }
                    _ => None,
                }
            })
            .collect();
        if fields.is_empty() {
            FieldAccess::Nothing
        } else {
            FieldAccess::Fields(fields)
        }
    }
}

/// Checks the shape of a grant string: `admin`, `design`, `organisation`, `monitor`,
/// `bookings:{read|book|*}`, `money:{read|charge|adjust|*}`, `stock:{read|move|manage|*}`,
/// `branches:{branch|*}`,
/// `records:{item|*}:{read|create|update|delete|*}[:{field}]` or
/// `services:{name|*}:{start|view|handle|administer|*}`. Returns what is wrong.
pub fn check_grant(grant: &str) -> Result<(), String> {
    let name_ok = |s: &str| s == "*" || erpos_design::naming::is_identifier(s);
    let parts: Vec<&str> = grant.split(':').collect();
    match parts.as_slice() {
        ["admin" | "design" | "organisation" | "monitor"] => Ok(()),
        ["money", op] => {
            if ["read", "charge", "adjust", "*"].contains(op) {
                Ok(())
            } else {
                Err(format!("'{op}' is not one of read, charge, adjust, *"))
            }
        }
        ["stock", op] => {
            if ["read", "move", "manage", "*"].contains(op) {
                Ok(())
            } else {
                Err(format!("'{op}' is not one of read, move, manage, *"))
            }
        }
        ["branches", name] => {
            if name_ok(name) {
                Ok(())
            } else {
                Err(format!("'{name}' is not a branch identifier or *"))
            }
        }
        ["bookings", op] => {
            if ["read", "book", "*"].contains(op) {
                Ok(())
            } else {
                Err(format!("'{op}' is not one of read, book, *"))
            }
        }
        ["records", item, op, rest @ ..] if rest.len() <= 1 => {
            if !name_ok(item) {
                return Err(format!("'{item}' is not a DataItem name or *"));
            }
            if !["read", "create", "update", "delete", "*"].contains(op) {
                return Err(format!(
                    "'{op}' is not one of read, create, update, delete, *"
                ));
            }
            match rest.first() {
                Some(f) if !erpos_design::naming::is_identifier(f) => {
                    Err(format!("'{f}' is not a field name"))
                }
                _ => Ok(()),
            }
        }
        ["services", name, op] => {
            if !name_ok(name) {
                return Err(format!("'{name}' is not a service name or *"));
            }
            if !["start", "view", "handle", "administer", "*"].contains(op) {
                return Err(format!(
                    "'{op}' is not one of start, view, handle, administer, *"
                ));
            }
            Ok(())
        }
        _ => Err(
            "expected admin, design, organisation, monitor, bookings:{read|book}, money:{read|charge|adjust}, \
                  stock:{read|move|manage}, branches:{branch}, \
                  records:{item}:{read|create|update|delete}[:{field}] or \
                  services:{name}:{start|view|handle|administer} (* for any name or operation)"
                .to_owned(),
        ),
    }
}

/// Whether the grant pattern `pattern` allows at least everything `grant` allows: `admin`
/// covers everything; otherwise segment by segment, `*` covering any name or operation, and
/// a whole-operation records grant covering its per-field grants.
pub fn covers(pattern: &str, grant: &str) -> bool {
    if pattern == "admin" {
        return true;
    }
    let p: Vec<&str> = pattern.split(':').collect();
    let g: Vec<&str> = grant.split(':').collect();
    let prefix_ok = p.len() == g.len() || (p.len() == 3 && g.len() == 4 && p[0] == "records");
    prefix_ok && p.iter().zip(&g).all(|(a, b)| a == b || *a == "*")
}

/// The grants an app token acting for a user holds: each of the user's grants that one of
/// the token's scopes covers, and each scope that one of the user's grants covers (so a
/// user with `records:*:read` and a token scoped to `records:leave:read` gets the latter).
/// Never more than the user has, never more than the scopes allow.
pub fn restrict(user: &BTreeSet<String>, scopes: &[String]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = user
        .iter()
        .filter(|g| scopes.iter().any(|s| covers(s, g)))
        .cloned()
        .collect();
    out.extend(
        scopes
            .iter()
            .filter(|s| user.iter().any(|g| covers(g, s)))
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(grants: &[&str]) -> Caller {
        Caller {
            user: "zhangsan".into(),
            kind: CallerKind::User,
            grants: Arc::new(grants.iter().map(|g| (*g).to_owned()).collect()),
            standing: Arc::default(),
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

    #[test]
    fn grant_shapes_are_checked() {
        for ok in [
            "admin",
            "design",
            "organisation",
            "monitor",
            "records:huanzhe:read",
            "records:*:*",
            "records:huanzhe:update:age",
            "services:leave:start",
            "services:*:*",
            "bookings:read",
            "bookings:*",
            "money:adjust",
            "stock:move",
        ] {
            assert_eq!(check_grant(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "root",
            "records:huanzhe",
            "records:huanzhe:write",
            "records:Huanzhe:read",
            "records:huanzhe:read:*",
            "records:huanzhe:read:age:x",
            "services:leave:delete",
            "services:leave",
        ] {
            assert!(check_grant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_scopes_never_widen_a_users_grants() {
        let user: BTreeSet<String> = ["records:*:read", "services:leave:start", "design"]
            .iter()
            .map(|g| (*g).to_owned())
            .collect();
        let scopes = vec![
            "records:leave:read".to_owned(),
            "services:*:*".to_owned(),
            "organisation".to_owned(),
        ];
        let got = restrict(&user, &scopes);
        let want: BTreeSet<String> = ["records:leave:read", "services:leave:start"]
            .iter()
            .map(|g| (*g).to_owned())
            .collect();
        assert_eq!(got, want);
        let admin = BTreeSet::from(["admin".to_owned()]);
        assert_eq!(restrict(&admin, &scopes), scopes.iter().cloned().collect());
        assert!(covers("records:leave:update", "records:leave:update:days"));
        assert!(!covers("records:leave:update:days", "records:leave:update"));
    }

    #[test]
    fn per_field_grants_give_only_their_fields() {
        let c = user(&["records:huanzhe:read:age", "records:*:read:xingming"]);
        assert_eq!(
            c.record_fields("huanzhe", RecordOp::Read),
            FieldAccess::Fields(BTreeSet::from(["age".to_owned(), "xingming".to_owned()]))
        );
        assert_eq!(
            c.record_fields("huanzhe", RecordOp::Update),
            FieldAccess::Nothing
        );
        assert_eq!(
            user(&["records:huanzhe:*"]).record_fields("huanzhe", RecordOp::Delete),
            FieldAccess::All
        );
    }
}
