//! The kernel's error type. Every failure a request can meet is one variant here; only the
//! HTTP layer (`api::error`) decides which status code each becomes.

use erpos_design::{DesignError, Issue};

/// Everything the kernel can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A definition or a record is invalid, or a DataItem is unknown.
    #[error(transparent)]
    Design(#[from] DesignError),
    /// The request itself is malformed (a bad query parameter, a body that is not JSON).
    #[error("bad request: {}", .0.iter().map(|i| format!("{}: {}", i.path, i.message)).collect::<Vec<_>>().join("; "))]
    BadRequest(Vec<Issue>),
    /// A record (or other object) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// An optimistic-concurrency check failed: the record changed since the caller read it.
    #[error("the record is at version {current}, the request was based on version {sent}")]
    VersionConflict {
        /// The version stored now.
        current: i64,
        /// The version the caller sent.
        sent: i64,
    },
    /// A unique field already holds this value in another record.
    #[error("another record already has this value of '{field}'")]
    Unique {
        /// JSON pointer of the field (e.g. `/record_no`, `/allergy/0/code`).
        field: String,
    },
    /// A record cannot be deleted while others reference it.
    #[error("the record is still referenced by {}", .0.join(", "))]
    Referenced(Vec<String>),
    /// A migration plan has destructive steps and the caller did not confirm them.
    #[error("the migration has destructive steps; confirm them to apply")]
    DestructiveUnconfirmed(Vec<Issue>),
    /// A change cannot be made in the current state (no pending change, values repeat, …).
    #[error("{message}")]
    Conflict {
        /// A stable machine-readable code.
        code: ErrorCode,
        /// What is wrong.
        message: String,
        /// Where.
        details: Vec<Issue>,
    },
    /// The scheduler refused a process command (nothing changed).
    #[error(transparent)]
    Process(#[from] crate::scheduler::CoreError),
    /// A request's input is invalid (not a definition nor a record: a password, a token's
    /// scopes, …), every problem at its JSON pointer.
    #[error("the request is invalid")]
    Invalid(Vec<Issue>),
    /// The caller could not be authenticated (no, unknown, expired or badly signed
    /// credentials). The message never says whether a user exists.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is authenticated but lacks a grant; the message names it.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed logins for this user name: refused without checking, for a while.
    #[error("too many failed attempts; retry in {retry_after_s} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is checked.
        retry_after_s: i64,
    },
    /// The node's configuration is unusable (a bootstrap token too short, …).
    #[error("configuration: {0}")]
    Config(String),
    /// The database failed (logged; never shown to callers in detail).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// erpos's own migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Storage is failing (read-only, I/O errors, the server gone) and the change was not
    /// made: retry shortly (a 503). The message is logged, not shown.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored value or definition could not be read back: a bug or a hand-edited database.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A stored value of one of erpos's own tables does not decode (see `store`): the
    /// error names the table, the column, the row and the problem. A 500: the database
    /// was edited by hand or written by a bug; the log says where to repair it.
    #[error("corrupt data: {0}")]
    Undecodable(Box<Undecodable>),
}

impl KernelError {
    /// A 422 for one field of a record.
    pub fn invalid_record(path: impl Into<String>, message: impl Into<String>) -> Self {
        KernelError::Design(DesignError::InvalidRecord(vec![Issue::new(path, message)]))
    }

    /// Whether this is a database unique violation (then `Unique` is raised with the field).
    pub fn unique_violation(&self) -> Option<(Option<String>, String)> {
        match self {
            KernelError::Database(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Some((e.constraint().map(str::to_owned), e.message().to_owned()))
            }
            _ => None,
        }
    }
}

/// The kernel's result type.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;

/// Defines [`ErrorCode`] from one table (variant, the code's string, its meaning), so the
/// enum, its strings and the meanings the OpenAPI document lists cannot disagree.
macro_rules! error_codes {
    ($($variant:ident = $code:literal : $meaning:literal,)*) => {
        /// The stable code of every error the API answers with (`{"error": {"code": …}}`): a
        /// program switches on it, a person reads the message beside it. One enum instead of
        /// free strings, so the OpenAPI document lists every code with its meaning and a code
        /// cannot be misspelt at one call site. Serialized in snake_case; the strings are
        /// part of the API and never change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the document lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in the JSON body (`not_found`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// What the code means (its description in the OpenAPI document).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

error_codes! {
    BadRequest = "bad_request": "400: a query parameter, path segment or header is invalid; `details` names it (`/query/{key}`).",
    MalformedJson = "malformed_json": "400: the body is not well-formed JSON.",
    Unauthorized = "unauthorized": "401: no, unknown, expired or badly signed credentials (sent with `WWW-Authenticate: Bearer`).",
    Forbidden = "forbidden": "403: the caller is known but lacks a grant; the message names the grant needed.",
    NotFound = "not_found": "404: no such object (DataItem, record, service, process, rule, …) or no such API path.",
    MethodNotAllowed = "method_not_allowed": "405: the path exists but does not accept this method.",
    VersionConflict = "version_conflict": "409: the record changed since the caller read it (`If-Match` or `version` is stale).",
    UniqueViolation = "unique_violation": "409: another record already holds this value of a unique field (named in `details`).",
    Referenced = "referenced": "409: the record cannot be deleted while others reference it (`details` says which).",
    DestructiveChangeUnconfirmed = "destructive_change_unconfirmed": "409: the migration removes or converts data, or leaves records breaking new rules; send `{\"confirm_destructive\": true}` or resolve each field in `resolve`.",
    NoPendingChange = "no_pending_change": "409: the DataItem has no pending change to plan, apply or discard.",
    BookingConflict = "booking_conflict": "409: the slot is taken: `details` names each booking in the way at the holder it takes (`/resources/{i}`, `/operators/{i}`) and the next free starts at `/alternatives/{i}`.",
    BookingNotActive = "booking_not_active": "409: the booking is cancelled or a no-show: only a booked one can be moved or ended.",
    InsufficientBalance = "insufficient_balance": "409: the account's balance is less than the entry takes; nothing was booked (the message says the balance).",
    CourseExpired = "course_expired": "409: the course's last day has passed: no session can be used; nothing was deducted.",
    CourseUsedUp = "course_used_up": "409: every session of the course is used; nothing was deducted.",
    WaitlistNotOffered = "waitlist_not_offered": "409: the waitlist entry has no offer to accept (it waits, is booked or withdrawn).",
    InsufficientStock = "insufficient_stock": "409: less of the material is usable in the branch (or on the lot) than the movement takes; nothing was moved (the message says how much there is).",
    ReferenceReused = "reference_reused": "409: the reference was used for a different ledger entry on this account, or a different stock operation: a retry must send the same request.",
    MigrationRunning = "migration_running": "409: a migration of the DataItem runs in batches: its records are read-only, and definitions wait, until it ends (`GET /api/v1/data-items/{name}/migration/progress`).",
    NoDraft = "no_draft": "409: the service has no draft to publish.",
    AppTokenExists = "app_token_exists": "409: an app token of that name exists or existed (names are never reused).",
    LastAdministrator = "last_administrator": "409: the change would leave no user who can log in holding `admin`.",
    InUse = "in_use": "409: what is being removed is still used (by published services, users, …); the message names them and `details` says where.",
    IdTaken = "id_taken": "409: a resource or user with that id (in any case) exists already.",
    IllegalMove = "illegal_move": "409: the process may not move so from its current state (`details` names the state and the moves allowed).",
    WrongState = "wrong_state": "409: the process is not in the state the action needs.",
    Conflict = "conflict": "409: the request conflicts with the process's current step (e.g. completing a step decided by its work items).",
    Quarantined = "quarantined": "409: the process's stored row could not be read back and is set aside.",
    PayloadTooLarge = "payload_too_large": "413: the request body is larger than the API accepts.",
    UnsupportedMediaType = "unsupported_media_type": "415: the body was not sent as `Content-Type: application/json`.",
    ValidationFailed = "validation_failed": "422: the body is well-formed but invalid; every problem at its JSON pointer in `details`; nothing was written.",
    InvalidDefinition = "invalid_definition": "422: the definition (DataItem, service, rule, calendar, …) is invalid; every problem at its JSON pointer in `details`.",
    InvalidSignal = "invalid_signal": "422: the signal's name is not an identifier.",
    TooManyAttempts = "too_many_attempts": "429: too many failed logins; retry after `Retry-After` seconds.",
    Internal = "internal": "500: an internal error (logged with the request id; never shown in detail).",
    Busy = "busy": "503: the database is busy; retry after `Retry-After` seconds.",
    StorageUnavailable = "storage_unavailable": "503: storage is failing; nothing was changed; `GET /healthz` says what is wrong.",
}

/// The OpenAPI schema of a code: one of the strings, each with its meaning.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut one_of = utoipa::openapi::schema::OneOfBuilder::new().description(Some(
            "A stable code a program can switch on; each value's meaning is its description.",
        ));
        for code in ErrorCode::ALL {
            one_of = one_of.item(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .enum_values(Some([code.as_str()]))
                    .description(Some(code.meaning())),
            );
        }
        one_of.into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// The strings are part of the API: serde's snake_case and `as_str` agree on each, and
    /// no two codes share one.
    #[test]
    fn every_code_serializes_to_its_string() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::json!(code.as_str()))
            );
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
    }
}

/// A stored value of one of erpos's own tables that could not be read back: which table,
/// which column, which row (its key, when the query selected it), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}, column {column}{}: {problem}", key_text(.key))]
pub struct Undecodable {
    /// The table (`audit_log`).
    pub table: &'static str,
    /// The column (`at_ms`).
    pub column: &'static str,
    /// The row's key column and its value as stored, when known (`seq`, `12`).
    pub key: Option<(&'static str, String)>,
    /// What is wrong with the value (`'soon' is not an integer`).
    pub problem: String,
}

fn key_text(key: &Option<(&'static str, String)>) -> String {
    match key {
        Some((column, value)) => format!(" (row {column} = {})", shown(value)),
        None => String::new(),
    }
}

/// A stored value as an error message quotes it: at most 60 characters, so a damaged
/// document of a megabyte does not flood the log.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        format!("'{value}'")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("'{head}…'")
    }
}

impl From<Undecodable> for KernelError {
    fn from(e: Undecodable) -> Self {
        KernelError::Undecodable(Box::new(e))
    }
}
