//! erpos-http: the HTTP API (`/api/v1`) over the kernel's application layer — routing,
//! extractors (the `Caller` as [`extract::Authenticated`]), errors mapped to statuses, the
//! OpenAPI document and its reference page, the WebSocket, and serving on a socket
//! ([`server`]). It is its own crate so the kernel holds no HTTP: the rules executor, the
//! outbox, packs and benches reach the same use cases without axum.
//!
//! Handlers only translate between HTTP and the kernel's services; they hold no business
//! rules. Every error leaves through `ApiError`, so every 4xx/5xx has the same JSON shape.
//! Every `/api/v1` route but `POST /sessions` sits behind `auth::authenticate`: a handler
//! never runs without a `Caller`, and checks that caller's grants before changing anything.

mod accounts;
pub mod assets;
pub mod auth;
mod bookings;
mod calendars;
mod charges;
mod courses;
mod data_items;
mod docs;
pub mod document;
pub mod error;
pub mod extract;
mod menus;
mod organisation;
mod plans;
mod processes;
mod records;
mod resources;
mod rules;
pub mod schema;
pub mod server;
mod services;
mod stats;
mod stock;
mod tasks;
mod treatments;
mod waitlist;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use document::Common as CommonResponses;
use erpos_kernel::Kernel;
pub use error::ApiError;
pub use ws::{RESUME_PAGE, RESUME_WINDOW};

/// The largest request body accepted (a DataItem with hundreds of fields fits easily).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "erpos API", description = "Metamodel-driven ERP operating kernel: DataItems and records, services and their processes (PCBs), human tasks, rules, the organisation and statistics. Every path but POST /api/v1/sessions, this document and its reference page (GET /api/v1/docs) needs credentials."),
    paths(
        healthz,
        openapi,
        docs::page,
        docs::asset,
        ws::upgrade,
        data_items::list,
        data_items::create,
        data_items::show,
        data_items::propose,
        data_items::form,
        data_items::preview,
        data_items::migration_plan,
        data_items::migration_apply,
        data_items::migration_discard,
        data_items::migration_progress,
        bookings::create,
        bookings::list,
        bookings::show,
        bookings::reschedule,
        bookings::cancel,
        bookings::no_show,
        bookings::slots,
        courses::sell,
        courses::list,
        courses::show,
        courses::change,
        charges::create,
        charges::list,
        charges::show,
        charges::void,
        waitlist::join,
        waitlist::list,
        waitlist::accept,
        waitlist::withdraw,
        plans::plan,
        plans::report,
        plans::needs,
        stock::save_material,
        stock::materials,
        stock::receive,
        stock::consume,
        stock::lots,
        stock::lot,
        stock::movements,
        stock::correct,
        stock::open,
        stock::alerts,
        treatments::save,
        treatments::list,
        treatments::show,
        accounts::open,
        accounts::list,
        accounts::show,
        accounts::entries,
        accounts::post,
        records::list,
        records::create,
        records::show,
        records::patch,
        records::delete,
        records::history,
        services::list,
        services::save,
        services::show,
        services::publish,
        services::preview,
        services::migrate_instances,
        services::flowchart,
        resources::create_type,
        resources::list_types,
        resources::create,
        resources::list,
        resources::create_user,
        processes::start,
        processes::list,
        processes::show,
        processes::act,
        processes::actions,
        processes::flowchart,
        processes::queues,
        menus::menus,
        menus::layout,
        menus::save_layout,
        menus::reset_layout,
        tasks::work_items,
        tasks::delegations,
        tasks::create_delegation,
        tasks::delete_delegation,
        rules::list,
        rules::save,
        rules::dry_run,
        rules::show,
        rules::replace,
        rules::delete,
        rules::runs,
        rules::quarantine,
        rules::retry_quarantined,
        rules::events,
        rules::signal,
        rules::outbox,
        rules::retry,
        rules::notifications,
        organisation::departments,
        organisation::save_department,
        organisation::roles,
        organisation::save_role,
        organisation::remove_role,
        organisation::remove_skill,
        organisation::skills,
        organisation::save_skill,
        organisation::users,
        calendars::list,
        calendars::save,
        calendars::show,
        calendars::delete,
        stats::services,
        stats::steps,
        stats::operators,
        stats::roles,
        auth::login,
        auth::whoami,
        auth::logout,
        auth::set_password,
        auth::create_app,
        auth::list_apps,
        auth::revoke_app,
        auth::audit,
    ),
    components(schemas(error::ErrorBody, error::ErrorCode, schema::WaitKind, schema::WorkView, schema::DeliveryState, schema::ActionName)),
    modifiers(&CommonResponses),
    tags((name = "design", description = "DataItem definitions, forms and migrations"),
         (name = "records", description = "Records of any DataItem"),
         (name = "processes", description = "Processes (PCBs), actions and queues"),
         (name = "resources", description = "Resource types, resources and users"),
         (name = "bookings", description = "Bookings of rooms, devices and practitioners over time"),
         (name = "money", description = "Prepaid accounts and their ledgers, courses and packages, charges"),
         (name = "stock", description = "Materials, lots with expiry and their movements (FEFO)"),
         (name = "rules", description = "ServiceRules, the event log, the outbox and notifications"),
         (name = "organisation", description = "Departments, roles, skills and users"),
         (name = "time", description = "Working calendars for deadlines"),
         (name = "stats", description = "Process statistics per service, step, operator and role"),
         (name = "auth", description = "Sessions, passwords and app tokens"),
         (name = "system", description = "Health and API description"))
)]
pub struct ApiDoc;

/// A fault met this recently still makes the node `degraded`.
const RECENT_FAULT_S: u64 = 60;

/// Health: whether the database can be read and written now (a write is probed on a fresh
/// connection, so a read-only or failing disk shows), the storage faults met, and the
/// stored rows set aside because they could not be read back. `status` is `ok`,
/// `degraded` (200: something needs an administrator's look) or `unavailable` (503:
/// writes fail now); `problems` says what is wrong in words.
#[utoipa::path(get, path = "/healthz", tag = "system", operation_id = "health", responses((status = 200, description = "the node is up (`ok` or `degraded`)", body = schema::Health), (status = 503, description = "storage is failing now (`unavailable`)", body = schema::Health)))]
async fn healthz(State(kernel): State<Arc<Kernel>>) -> impl IntoResponse {
    let mut problems: Vec<String> = Vec::new();
    let mut sql = erpos_kernel::sql::Sql::new(kernel.db.dialect());
    sql.push("SELECT CAST(1 AS TEXT)");
    let readable = match kernel.db.fetch(sql).await {
        Ok(_) => true,
        Err(e) => {
            problems.push(format!("the database cannot be read: {e}"));
            false
        }
    };
    let writable = match tokio::time::timeout(Duration::from_secs(3), kernel.db.probe_write()).await
    {
        Ok(Ok(())) => Some(true),
        Ok(Err(e)) => {
            problems.push(format!("the database cannot be written: {e}"));
            Some(false)
        }
        // Another writer holds the lock: busy, not broken.
        Err(_) => None,
    };
    let faults = kernel.db.faults().report();
    let recent = faults
        .seconds_since_last_fault
        .is_some_and(|s| s < RECENT_FAULT_S);
    if recent && let Some(what) = &faults.last_fault {
        problems.push(format!(
            "a storage fault {} s ago: {what}",
            faults.seconds_since_last_fault.unwrap_or(0)
        ));
    }
    let rows = kernel.engine.quarantined();
    let events = kernel.events.unreadable();
    for q in &rows {
        problems.push(format!(
            "a stored row of {} could not be read back and is quarantined (see the log)",
            q.table
        ));
    }
    if !events.is_empty() {
        problems.push(format!(
            "{} stored event(s) could not be read back and were skipped (see the log)",
            events.len()
        ));
    }
    let down = !readable || writable == Some(false);
    let status = if down {
        "unavailable"
    } else if recent || !rows.is_empty() || !events.is_empty() {
        "degraded"
    } else {
        "ok"
    };
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for q in &rows {
        *counts.entry(q.table).or_default() += 1;
    }
    let body = axum::Json(json!({
        "status": status,
        "database": format!("{:?}", kernel.db.dialect()).to_lowercase(),
        "storage": {
            "readable": readable, "writable": writable,
            "faults": faults.faults, "recycled_connections": faults.recycled_connections,
            "last_fault_at": faults.last_fault_at, "last_fault": faults.last_fault,
            "seconds_since_last_fault": faults.seconds_since_last_fault,
        },
        // Counts only: this route needs no credentials. The log names each row.
        "quarantined": {"rows": counts, "events": events.len()},
        "problems": problems,
    }));
    let code = if down {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    (code, body).into_response()
}

/// The OpenAPI document as `/api/v1/openapi.json` serves it; `erpos openapi` prints the same,
/// so clients are generated from it without a running server.
pub fn openapi_document() -> serde_json::Value {
    // utoipa describes a `u32` as `int32` with `minimum: 0`, whose range stops at 2^31 - 1
    // (a client generator or a fuzzer takes that for the field's: schemathesis sent 2^31 as
    // invalid and it was rightly accepted). Said exactly instead: `int64` up to 2^32 - 1.
    // (utoipa's `non_strict_integers` would write `u-int32`, a format nobody reads.)
    let mut value = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    widen_unsigned(&mut value);
    value
}

/// Rewrites every `{"format": "int32", "minimum": 0}` (utoipa's `u32`) as
/// `{"format": "int64", "minimum": 0, "maximum": 4294967295}`, unless it has a maximum.
fn widen_unsigned(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let unsigned = map.get("format").and_then(|f| f.as_str()) == Some("int32")
                && map.get("minimum").and_then(serde_json::Value::as_f64) == Some(0.0)
                && !map.contains_key("maximum");
            if unsigned {
                map.insert("format".into(), json!("int64"));
                map.insert("maximum".into(), json!(u32::MAX));
            }
            map.values_mut().for_each(widen_unsigned);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(widen_unsigned),
        _ => {}
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system", operation_id = "openapi", responses((status = 200, description = "the OpenAPI document (3.1)", body = Object)))]
async fn openapi() -> impl IntoResponse {
    axum::Json(openapi_document())
}

async fn no_route() -> ApiError {
    ApiError::no_route()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        error::ErrorCode::MethodNotAllowed,
        "this path does not accept that method",
    )
}

/// The whole router, with request ids, tracing and body limits.
pub fn router(kernel: Arc<Kernel>) -> Router {
    router_with(kernel, None)
}

/// [`router`], also serving `assets` (the web console) at `/` for every GET outside
/// `/api`: a path that is not a file gets the console's page, so its own routes reload.
pub fn router_with(kernel: Arc<Kernel>, assets: Option<Arc<dyn assets::Assets>>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let protected = Router::new()
        .route(
            "/data-items",
            get(data_items::list).post(data_items::create),
        )
        .route(
            "/data-items/{name}",
            get(data_items::show).put(data_items::propose),
        )
        .route("/data-items/preview", post(data_items::preview))
        .route("/data-items/{name}/form", get(data_items::form))
        .route(
            "/data-items/{name}/migration",
            get(data_items::migration_plan)
                .post(data_items::migration_apply)
                .delete(data_items::migration_discard),
        )
        .route(
            "/data-items/{name}/migration/progress",
            get(data_items::migration_progress),
        )
        .route("/records/{item}", get(records::list).post(records::create))
        .route(
            "/records/{item}/{id}",
            get(records::show)
                .patch(records::patch)
                .delete(records::delete),
        )
        .route("/records/{item}/{id}/history", get(records::history))
        .route("/services", get(services::list).post(services::save))
        .route("/services/preview", post(services::preview))
        .route("/services/{name}", get(services::show))
        .route(
            "/services/{name}/publish",
            axum::routing::post(services::publish),
        )
        .route(
            "/services/{name}/instance-migration",
            axum::routing::post(services::migrate_instances),
        )
        .route("/services/{name}/flowchart.svg", get(services::flowchart))
        .route(
            "/resource-types",
            get(resources::list_types).post(resources::create_type),
        )
        .route("/resources", get(resources::list).post(resources::create))
        .route("/bookings", get(bookings::list).post(bookings::create))
        .route("/bookings/slots", get(bookings::slots))
        .route("/bookings/plan", post(plans::plan))
        .route(
            "/bookings/waitlist",
            get(waitlist::list).post(waitlist::join),
        )
        .route("/bookings/waitlist/{id}/accept", post(waitlist::accept))
        .route("/bookings/waitlist/{id}/withdraw", post(waitlist::withdraw))
        .route("/capacity", get(plans::report))
        .route("/capacity/needs", post(plans::needs))
        .route(
            "/stock/materials",
            get(stock::materials).post(stock::save_material),
        )
        .route("/courses", get(courses::list).post(courses::sell))
        .route("/courses/{id}", get(courses::show))
        .route("/courses/{id}/uses", post(courses::change))
        .route("/charges", get(charges::list).post(charges::create))
        .route("/charges/{id}", get(charges::show))
        .route("/charges/{id}/void", post(charges::void))
        .route("/stock/receipts", post(stock::receive))
        .route("/stock/consumptions", post(stock::consume))
        .route("/stock/lots", get(stock::lots))
        .route("/stock/lots/{id}", get(stock::lot))
        .route(
            "/stock/lots/{id}/movements",
            get(stock::movements).post(stock::correct),
        )
        .route("/stock/lots/{id}/open", post(stock::open))
        .route("/stock/alerts", get(stock::alerts))
        .route("/bookings/{id}", get(bookings::show))
        .route("/treatments", get(treatments::list).post(treatments::save))
        .route("/treatments/{name}", get(treatments::show))
        .route("/accounts", get(accounts::list).post(accounts::open))
        .route("/accounts/{id}", get(accounts::show))
        .route(
            "/accounts/{id}/entries",
            get(accounts::entries).post(accounts::post),
        )
        .route("/bookings/{id}/reschedule", post(bookings::reschedule))
        .route("/bookings/{id}/cancel", post(bookings::cancel))
        .route("/bookings/{id}/no-show", post(bookings::no_show))
        .route(
            "/users",
            get(organisation::users).post(resources::create_user),
        )
        .route(
            "/departments",
            get(organisation::departments).post(organisation::save_department),
        )
        .route(
            "/roles",
            get(organisation::roles).post(organisation::save_role),
        )
        .route(
            "/skills",
            get(organisation::skills).post(organisation::save_skill),
        )
        .route("/roles/{name}", delete(organisation::remove_role))
        .route("/skills/{name}", delete(organisation::remove_skill))
        .route("/processes", get(processes::list).post(processes::start))
        .route("/processes/{id}", get(processes::show))
        .route("/processes/{id}/actions", get(processes::actions))
        .route("/processes/{id}/flowchart.svg", get(processes::flowchart))
        .route("/work-items", get(tasks::work_items))
        .route(
            "/delegations",
            get(tasks::delegations).post(tasks::create_delegation),
        )
        .route(
            "/delegations/{id}",
            axum::routing::delete(tasks::delete_delegation),
        )
        .route(
            "/processes/{id}/{action}",
            axum::routing::post(processes::act),
        )
        .route("/queues", get(processes::queues))
        .route("/menus", get(menus::menus))
        .route(
            "/menus/layout",
            get(menus::layout)
                .put(menus::save_layout)
                .delete(menus::reset_layout),
        )
        .route("/rules", get(rules::list).post(rules::save))
        .route("/rules/dry-run", post(rules::dry_run))
        .route(
            "/rules/{name}",
            get(rules::show).put(rules::replace).delete(rules::delete),
        )
        .route("/rules/{name}/runs", get(rules::runs))
        .route("/rules/quarantine", get(rules::quarantine))
        .route(
            "/rules/quarantine/{seq}/retry",
            axum::routing::post(rules::retry_quarantined),
        )
        .route("/events", get(rules::events))
        .route("/events/{name}", axum::routing::post(rules::signal))
        .route("/outbox", get(rules::outbox))
        .route("/outbox/{id}/retry", axum::routing::post(rules::retry))
        .route("/notifications", get(rules::notifications))
        .route("/calendars", get(calendars::list).post(calendars::save))
        .route(
            "/calendars/{name}",
            get(calendars::show).delete(calendars::delete),
        )
        .route("/stats/services", get(stats::services))
        .route("/stats/services/{name}/steps", get(stats::steps))
        .route("/stats/operators", get(stats::operators))
        .route("/stats/roles", get(stats::roles))
        .route("/sessions/current", get(auth::whoami).delete(auth::logout))
        .route("/users/{id}/password", put(auth::set_password))
        .route("/app-tokens", get(auth::list_apps).post(auth::create_app))
        .route("/app-tokens/{name}", delete(auth::revoke_app))
        .route("/audit", get(auth::audit))
        // Any other path under /api/v1 needs credentials too, then is not found: without
        // them nobody can probe which paths exist.
        .route("/{*unknown}", axum::routing::any(no_route))
        .route_layer(middleware::from_fn_with_state(
            kernel.clone(),
            auth::authenticate,
        ));
    let websocket =
        Router::new()
            .route("/ws", get(ws::upgrade))
            .route_layer(middleware::from_fn_with_state(
                kernel.clone(),
                auth::authenticate_ws,
            ));
    // Logging in needs no credentials, and neither does the API's description: it
    // describes, it reveals no data (client generators fetch it before they can log in).
    // The reference page that renders it likewise.
    let public = Router::new()
        .route("/sessions", post(auth::login))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs::page))
        .route("/docs/{asset}", get(docs::asset));
    let api = public.merge(protected).merge(websocket);
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .fallback(move |req: axum::extract::Request| {
            let assets = assets.clone();
            async move {
                let otherwise = no_route().await.into_response();
                match assets {
                    Some(a) => assets::serve(a, req, otherwise).await,
                    None => otherwise,
                }
            }
        })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .with_state(kernel)
}
