//! Authentication over HTTP: the middleware that turns credentials into a `Caller` on every
//! `/api/v1` route (but `POST /sessions`), login and logout, password changes, app tokens,
//! and the helpers handlers use to refuse with 403.
//!
//! Credentials, in order: `Authorization: Bearer <token>` (the bootstrap token or a
//! session's; the scheme in any case, RFC 7235), the app signature headers (`X-Erpos-App`, `X-Erpos-Timestamp`,
//! `X-Erpos-User`, `X-Erpos-Signature`), and for the WebSocket only `?access_token=`.
//! Missing or invalid credentials get 401 with `WWW-Authenticate: Bearer`. A request that
//! already carries a `Caller` in its extensions (set in-process by an embedding application
//! or a test, never by a client) keeps it. This module must
//! never log or echo a password, a token or a secret, and never let a request through
//! without a `Caller` in its extensions.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use erpos_design::Issue;
use serde_json::{Value, json};

use super::ApiError;
use super::error::ErrorCode;
use super::extract::{JsonBody, Path};
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::auth::apps::SignedRequest;
use erpos_kernel::auth::sha256_hex;
use erpos_kernel::caller::{Caller, CallerKind, Permission};
use erpos_kernel::error::KernelError;

/// The address of the client a request came from, when the server knows it (it is served
/// with `ConnectInfo<SocketAddr>`; a router called in-process, as tests do, has none, and
/// then every such request counts as coming from one unknown address). Login throttling
/// counts per address with it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The hash of the session token a request came with (only for session callers): logout
/// ends it, a password change keeps it.
#[derive(Debug, Clone)]
pub struct CurrentSession(pub String);

/// Refuses with 403 unless the caller may `permission`; the message says what `what` needs
/// (`"defining DataItems needs design"`).
pub fn require(caller: &Caller, permission: Permission<'_>, what: &str) -> Result<(), ApiError> {
    Ok(erpos_kernel::app::require(caller, permission, what)?)
}

/// Refuses to hand out a grant the caller does not hold (in a role's permissions, a user's
/// roles, an app token's scopes, or by taking a user over with a new password): holding
/// `organisation` must not make anyone an administrator. An administrator gives anything.
pub fn require_delegable<'a>(
    caller: &Caller,
    grants: impl IntoIterator<Item = &'a String>,
) -> Result<(), ApiError> {
    Ok(erpos_kernel::app::require_delegable(caller, grants)?)
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is matched in any
/// case (`Bearer`, `bearer`, `BEARER`: RFC 7235 §2.1 makes auth schemes case-insensitive);
/// the token itself is kept exactly as sent.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Authenticates every protected route; see the module's doc.
pub async fn authenticate(State(k): State<Arc<Kernel>>, req: Request, next: Next) -> Response {
    match identify(&k, req, false).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Authenticates the WebSocket: like `authenticate`, also accepting `?access_token=`
/// (browsers cannot set headers on a WebSocket).
pub async fn authenticate_ws(State(k): State<Arc<Kernel>>, req: Request, next: Next) -> Response {
    match identify(&k, req, true).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn with_bearer(k: &Kernel, mut req: Request, token: &str) -> Result<Request, ApiError> {
    let caller = k.auth.bearer(token).await?.ok_or_else(|| {
        ApiError::unauthorized("the token is unknown, expired or logged out; log in again")
    })?;
    if caller.kind == CallerKind::User {
        req.extensions_mut()
            .insert(CurrentSession(sha256_hex(token.as_bytes())));
    }
    req.extensions_mut().insert(caller);
    Ok(req)
}

async fn identify(k: &Kernel, req: Request, query_token: bool) -> Result<Request, ApiError> {
    // A caller already in the extensions was put there by code in this process (an
    // embedding application, a test); a request from the network never carries one.
    if req.extensions().get::<Caller>().is_some() {
        return Ok(req);
    }
    if let Some(value) = req.headers().get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("use 'Authorization: Bearer <token>'"))?
            .to_owned();
        return with_bearer(k, req, &token).await;
    }
    if header(&req, "x-erpos-app").is_some() {
        return signed(k, req).await;
    }
    if query_token
        && let Some(token) = req.uri().query().and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == "access_token")
                .map(|(_, v)| v.to_owned())
        })
    {
        return with_bearer(k, req, &token).await;
    }
    Err(ApiError::unauthorized(
        "credentials are required: 'Authorization: Bearer <token>' (log in with POST /api/v1/sessions) or an app signature",
    ))
}

async fn signed(k: &Kernel, req: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "the request body is too large",
            )
        })?;
    let path_and_query = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0)
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let get = |name: &str| -> Result<String, ApiError> {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::unauthorized(format!(
                    "app signature refused: the header {name} is missing"
                ))
            })
    };
    let (app, timestamp, user, signature) = (
        get("x-erpos-app")?,
        get("x-erpos-timestamp")?,
        get("x-erpos-user")?,
        get("x-erpos-signature")?,
    );
    let nonce = parts
        .headers
        .get("x-erpos-nonce")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| {
            ApiError::unauthorized("app signature refused: X-Erpos-Nonce must be visible ASCII")
        })?;
    let caller = k
        .auth
        .signed(&SignedRequest {
            app: &app,
            timestamp: &timestamp,
            user: &user,
            nonce: nonce.as_deref(),
            signature: &signature,
            method: parts.method.as_str(),
            path_and_query: &path_and_query,
            body: &bytes,
        })
        .await?;
    parts.extensions.insert(caller);
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn field<'a>(body: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    body.get(key).and_then(Value::as_str).ok_or_else(|| {
        ApiError::from(KernelError::Invalid(vec![Issue::new(
            format!("/{key}"),
            "a string is required",
        )]))
    })
}

fn timestamp(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |t| {
        json!(erpos_design::value::format_datetime(&t))
    })
}

/// Logs in: `{"user", "password"}` → `{"token", "user", "expires_at"}`. Send the token as
/// `Authorization: Bearer <token>`; it lasts 12 hours from login (fixed, not sliding). A
/// wrong user name or password gets 401 with one message (a user name longer than any user
/// id too); five failures in a row lock the name for a minute from that client address,
/// and an address or an account under attack is throttled (429, `auth::throttle`).
#[utoipa::path(post, path = "/api/v1/sessions", tag = "auth", operation_id = "login", request_body = super::schema::Login,
    responses((status = 201, description = "the session", body = super::schema::Session),
              (status = 401, description = "wrong user name or password", body = super::error::ErrorBody),
              (status = 422, description = "user or password missing", body = super::error::ErrorBody),
              (status = 429, description = "too many failures: retry later", body = super::error::ErrorBody)))]
pub async fn login(
    State(k): State<Arc<Kernel>>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let user = field(&body, "user")?;
    let password = field(&body, "password")?;
    let session = k.auth.login(user, password, addr).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": session.token,
            "user": session.user,
            "expires_at": timestamp(session.expires_ms),
        })),
    ))
}

/// Who the caller is: user, how they authenticated, their grants, the branches they see.
#[utoipa::path(get, path = "/api/v1/sessions/current", tag = "auth", operation_id = "whoami",
    responses((status = 200, description = "who the caller is and their grants", body = super::schema::WhoAmI),
              (status = 401, description = "no credentials", body = super::error::ErrorBody)))]
pub async fn whoami(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Json<Value> {
    let kind = match &caller.kind {
        CallerKind::System => "system",
        CallerKind::Bootstrap => "bootstrap",
        CallerKind::User => "user",
        CallerKind::App { .. } => "app",
    };
    let branches = erpos_kernel::app::branches::seen(&k, &caller).await;
    let mut out =
        json!({"user": caller.user, "kind": kind, "grants": *caller.grants, "branches": branches});
    if let CallerKind::App { app, services } = &caller.kind {
        out["app"] = json!(app);
        out["services"] = json!(services);
    }
    Json(out)
}

/// Logs out: ends the session whose token the request carries.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "auth", operation_id = "logout",
    responses((status = 204, description = "logged out"), (status = 400, description = "the request did not come with a session token", body = super::error::ErrorBody)))]
pub async fn logout(
    State(k): State<Arc<Kernel>>,
    session: Option<axum::Extension<CurrentSession>>,
) -> Result<StatusCode, ApiError> {
    let Some(axum::Extension(CurrentSession(hash))) = session else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "only a session (a token from POST /api/v1/sessions) can be logged out",
        ));
    };
    k.auth.end_session(&hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's password: `{"password", "old_password"?}`. The user themselves, with their
/// old password; or anyone with `organisation`, without. At least 8 characters. Every other
/// session of the user ends.
#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "auth", operation_id = "set_password", request_body = super::schema::NewPassword,
    params(("id" = String, Path, description = "user id")),
    responses((status = 204, description = "changed"),
              (status = 403, description = "neither the user with the old password nor organisation", body = super::error::ErrorBody),
              (status = 404, description = "no such user", body = super::error::ErrorBody),
              (status = 422, description = "too short, or the old password missing", body = super::error::ErrorBody),
              (status = 429, description = "too many wrong old passwords: retry later", body = super::error::ErrorBody)))]
pub async fn set_password(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    session: Option<axum::Extension<CurrentSession>>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, ApiError> {
    // The body's shape first, whole: `{"old_password": {}}` was taken when the caller
    // needs no old password (found by the schemathesis run), and an unknown key was ignored.
    let mut issues = Vec::new();
    match body.as_object() {
        None => issues.push(Issue::new("", "expected a JSON object")),
        Some(obj) => {
            for (key, value) in obj {
                match key.as_str() {
                    "password" if value.is_string() => {}
                    "old_password" if value.is_string() || value.is_null() => {}
                    "password" | "old_password" => {
                        issues.push(Issue::new(format!("/{key}"), "a string is required"));
                    }
                    _ => issues.push(Issue::new(
                        format!("/{key}"),
                        "unknown key: password and old_password are allowed",
                    )),
                }
            }
        }
    }
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues).into());
    }
    let keep = session.map(|axum::Extension(CurrentSession(h))| h);
    let change = erpos_kernel::app::access::SetPassword {
        user: &id,
        password: body.get("password").and_then(Value::as_str),
        old_password: body.get("old_password").and_then(Value::as_str),
        client: addr,
        keep_session: keep.as_deref(),
    };
    erpos_kernel::app::access::set_password(&k, &caller, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an app token for a calling system: `{"name", "services": ["leave"], "scopes":
/// ["records:leave:*", "services:leave:*"], "label"?}`. The answer holds the `secret`,
/// shown this once.
#[utoipa::path(post, path = "/api/v1/app-tokens", tag = "auth", operation_id = "create_app_token", request_body = super::schema::NewAppToken,
    responses((status = 201, description = "the token with its secret, shown this once", body = super::schema::AppToken),
              (status = 403, description = "needs organisation", body = super::error::ErrorBody),
              (status = 409, description = "the name is taken (`app_token_exists`)", body = super::error::ErrorBody),
              (status = 422, description = "invalid", body = super::error::ErrorBody)))]
pub async fn create_app(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (token, secret) = erpos_kernel::app::access::create_app_token(&k, &caller, &body).await?;
    let mut out = json!(token);
    out["secret"] = json!(secret);
    out["created_at"] = timestamp(token.created_ms);
    Ok((StatusCode::CREATED, Json(out)))
}

/// Every app token (revoked ones too), secrets masked.
#[utoipa::path(get, path = "/api/v1/app-tokens", tag = "auth", operation_id = "list_app_tokens",
    responses((status = 200, description = "every app token, secrets masked", body = super::schema::AppTokenList), (status = 403, description = "needs organisation", body = super::error::ErrorBody)))]
pub async fn list_apps(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let items = erpos_kernel::app::monitor::app_tokens(&k, &caller).await?;
    Ok(Json(
        json!({"total": items.len(), "items": items, "next_cursor": null}),
    ))
}

/// Revokes an app token: its signatures are refused from now on.
#[utoipa::path(delete, path = "/api/v1/app-tokens/{name}", tag = "auth", operation_id = "revoke_app_token",
    params(("name" = String, Path, description = "app token name")),
    responses((status = 204, description = "revoked"), (status = 403, description = "needs organisation", body = super::error::ErrorBody),
              (status = 404, description = "no live token of that name", body = super::error::ErrorBody)))]
pub async fn revoke_app(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    erpos_kernel::app::access::revoke_app_token(&k, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log, newest first: who changed which definition, organisation entry, password
/// or app token, and when (records and processes have their own histories). `actor`
/// filters; `limit` (1–500, default 50) and `before` (the `next_cursor`) page.
#[utoipa::path(get, path = "/api/v1/audit", tag = "auth", operation_id = "audit_log",
    params(("actor" = Option<String>, Query, description = "only this user's changes"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "page size, 1 to 500 (default 50)"),
           ("before" = Option<i64>, Query, description = "next_cursor of the previous page"),
           ("cursor" = Option<i64>, Query, description = "the same as before")),
    responses((status = 200, description = "the audit log, newest first", body = super::schema::AuditList),
              (status = 400, description = "bad parameter", body = super::error::ErrorBody),
              (status = 403, description = "needs monitor", body = super::error::ErrorBody)))]
pub async fn audit(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    super::extract::QueryPairs(params): super::extract::QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (mut actor, mut before, mut limit) = (None, None, 50usize);
    for (key, value) in params {
        match key.as_str() {
            "actor" => actor = Some(value),
            "before" | "cursor" => {
                before =
                    Some(value.parse::<i64>().map_err(|_| {
                        ApiError::bad_parameter(&key, "not a cursor from this list")
                    })?)
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| ApiError::bad_parameter(&key, "limit must be 1 to 500"))?
            }
            _ => return Err(ApiError::bad_parameter(&key, "unknown parameter")),
        }
    }
    let page = erpos_kernel::app::monitor::Page { before, limit };
    let items = erpos_kernel::app::monitor::audit_log(&k, &caller, actor.as_deref(), page).await?;
    let next = (items.len() == limit)
        .then(|| items.last().and_then(|i| i.get("seq").cloned()))
        .flatten();
    Ok(Json(json!({"items": items, "next_cursor": next})))
}
