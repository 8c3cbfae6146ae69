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
        code: &'static str,
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
