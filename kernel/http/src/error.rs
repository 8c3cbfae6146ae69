//! The one JSON error shape of the API, and the mapping of every kernel error to a status.
//!
//! `{"error": {"code": "validation_failed", "message": "…", "details": [{"path": "/age", "message": "…"}]}}`
//! Database errors are logged with the request's span and never shown in detail.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use erpos_design::{DesignError, Issue};
use serde::Serialize;

pub use erpos_kernel::error::ErrorCode;
use erpos_kernel::error::KernelError;

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    details: Vec<Issue>,
    /// `Retry-After` seconds (429).
    retry_after: Option<i64>,
}

/// The body of every 4xx/5xx response: `{"error": {"code", "message", "details"}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"error": {"code": "validation_failed", "message": "the record is invalid; nothing was written", "details": [{"path": "/age", "message": "must be at most 150"}]}})))]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorInfo,
}

/// What went wrong: a code for programs, a message for people, and where.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// A stable code a program can switch on (`validation_failed`, `not_found`, …).
    code: ErrorCode,
    /// What went wrong, for a person.
    message: String,
    /// Each problem at the JSON pointer of the offending input (may be empty).
    details: Vec<Issue>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// The 401 for a request without valid credentials (sent with `WWW-Authenticate:
    /// Bearer`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// The 403 for an authenticated caller without the grant `grant`: says what is needed,
    /// so an administrator knows which grant to give.
    pub fn forbidden(what: &str, grant: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("{what} needs {grant}"),
        )
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Adds located problems.
    pub fn with_details(mut self, details: Vec<Issue>) -> Self {
        self.details = details;
        self
    }

    /// The 400 for a bad query parameter, naming it at `/query/{key}`.
    pub fn bad_parameter(key: &str, message: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the request parameters are invalid",
        )
        .with_details(vec![erpos_design::Issue::new(
            format!("/query/{key}"),
            message,
        )])
    }

    /// The 404 for a path no route serves.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such API path",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInfo {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"erpos\""),
            );
        }
        if let Some(s) = self.retry_after
            && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
        {
            headers.insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<KernelError> for ApiError {
    fn from(e: KernelError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        match e {
            KernelError::Design(DesignError::InvalidDefinition(details)) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, ErrorCode::InvalidDefinition, "the definition is invalid").with_details(details)
            }
            KernelError::Design(DesignError::InvalidRecord(details)) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, ErrorCode::ValidationFailed, "the record is invalid; nothing was written")
                    .with_details(details)
            }
            KernelError::Design(DesignError::UnknownItem(_)) | KernelError::NotFound(_) => {
                ApiError::new(S::NOT_FOUND, ErrorCode::NotFound, message)
            }
            KernelError::BadRequest(details) => {
                ApiError::new(S::BAD_REQUEST, ErrorCode::BadRequest, "the request parameters are invalid").with_details(details)
            }
            KernelError::VersionConflict { current, sent } => ApiError::new(S::CONFLICT, ErrorCode::VersionConflict, message)
                .with_details(vec![Issue::new(
                    "/version",
                    format!("the record is at version {current}; re-read it and retry (you sent {sent})"),
                )]),
            KernelError::Unique { field } => ApiError::new(S::CONFLICT, ErrorCode::UniqueViolation, message.clone())
                .with_details(vec![Issue::new(field, "another record already has this value")]),
            KernelError::Referenced(by) => ApiError::new(S::CONFLICT, ErrorCode::Referenced, message)
                .with_details(by.into_iter().map(|b| Issue::new("", format!("referenced by {b}"))).collect()),
            KernelError::DestructiveUnconfirmed(details) => ApiError::new(
                S::CONFLICT,
                ErrorCode::DestructiveChangeUnconfirmed,
                "the migration removes or converts data, or leaves records breaking new rules: send {\"confirm_destructive\": true}, or resolve each field named in the details with {\"resolve\": {\"<field>\": {\"action\": \"fix\" | \"archive\" | \"accept\"}}}",
            )
            .with_details(details),
            KernelError::Conflict { code, message, details } => ApiError::new(S::CONFLICT, code, message).with_details(details),
            KernelError::Process(core) => {
                use erpos_kernel::scheduler::CoreError as C;
                match core {
                    C::NoProcess(_) | C::NoService(_) => ApiError::new(S::NOT_FOUND, ErrorCode::NotFound, message),
                    C::IllegalMove { from, allowed, .. } => ApiError::new(S::CONFLICT, ErrorCode::IllegalMove, message).with_details(vec![
                        Issue::new("/state", format!("the process is {from:?}; it may move to: {allowed:?}")),
                    ]),
                    C::WrongState { .. } => ApiError::new(S::CONFLICT, ErrorCode::WrongState, message),
                    C::NotAllowed(_) => ApiError::new(S::FORBIDDEN, ErrorCode::Forbidden, message),
                    C::NoTransition { available, .. } => ApiError::new(S::UNPROCESSABLE_ENTITY, ErrorCode::ValidationFailed, message)
                        .with_details(vec![Issue::new("/transition", format!("choose one of: {}", available.join(", ")))]),
                }
            }
            KernelError::Invalid(details) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, ErrorCode::ValidationFailed, message).with_details(details)
            }
            KernelError::Unauthorized(m) => ApiError::unauthorized(m),
            KernelError::Forbidden(m) => ApiError::new(S::FORBIDDEN, ErrorCode::Forbidden, m),
            KernelError::TooManyAttempts { retry_after_s } => {
                let mut e = ApiError::new(S::TOO_MANY_REQUESTS, ErrorCode::TooManyAttempts, message);
                e.retry_after = Some(retry_after_s);
                e
            }
            KernelError::Database(ref db) if is_busy(db) => {
                tracing::warn!(error = %e, "database busy");
                let mut e = ApiError::new(S::SERVICE_UNAVAILABLE, ErrorCode::Busy, "the database is busy; retry shortly");
                e.retry_after = Some(1);
                e
            }
            KernelError::Database(ref db) if erpos_kernel::db::is_fault(db) => unavailable(&e),
            KernelError::Unavailable(_) => unavailable(&e),
            KernelError::Database(sqlx::Error::Database(ref db))
                if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some()
                    && matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                // PostgreSQL cannot store NUL in text; bodies are checked before, so this is
                // a path segment or another parameter.
                ApiError::new(S::BAD_REQUEST, ErrorCode::BadRequest, "the request holds a character that cannot be stored (NUL)")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(S::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "an internal error occurred; it has been logged")
            }
        }
    }
}

/// Whether the database is only busy (the pool had no connection in time, SQLite's lock
/// stayed taken past the busy timeout): a 503 to retry, not a fault.
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut)
        || erpos_kernel::db::sqlite_code(e).is_some_and(|n| matches!(n & 0xff, 5 | 6))
}

/// The 503 while storage is failing (logged with the cause; `/healthz` says what it is).
fn unavailable(e: &KernelError) -> ApiError {
    tracing::error!(error = %e, "storage unavailable");
    let mut out = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StorageUnavailable,
        "storage is failing; nothing was changed; retry shortly (GET /healthz says what is wrong)",
    );
    out.retry_after = Some(1);
    out
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        use StatusCode as S;
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with 'Content-Type: application/json'",
            ),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::new(S::BAD_REQUEST, ErrorCode::MalformedJson, e.body_text())
            }
            JsonRejection::JsonDataError(e) => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                e.body_text(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == S::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    S::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    "the request body is too large",
                )
            }
            other => ApiError::new(S::BAD_REQUEST, ErrorCode::BadRequest, other.body_text()),
        }
    }
}
