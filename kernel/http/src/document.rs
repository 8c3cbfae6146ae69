//! What every operation of the OpenAPI document has in common, added in one place after
//! the handlers' own annotations: the credentials it needs, and the errors the machinery
//! in front of every handler can answer with (the authentication middleware, the JSON body
//! and query extractors, the body limit, storage).
//!
//! A handler's annotation lists its success responses and the errors its own code returns
//! (403 naming a grant, 404, 409, a 422 with its meaning); this module adds the rest, each
//! with the one error body (`ErrorBody`), so no operation can forget them. It must never
//! replace a response a handler documented itself.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, Content, HeaderBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder,
};

/// The operations that need no credentials (method in lower case, full path).
pub const PUBLIC: [(&str, &str); 5] = [
    ("get", "/healthz"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/docs"),
    ("get", "/api/v1/docs/{asset}"),
    ("post", "/api/v1/sessions"),
];

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

/// The shared error responses, by the name they have under `components/responses`: the
/// status they are answered with and what they mean.
const ERRORS: [(&str, &str, &str); 10] = [
    (
        "BadRequest",
        "400",
        "a query parameter, path segment or header is invalid (`bad_request`, naming it at `/query/{key}`), or the body is not well-formed JSON (`malformed_json`)",
    ),
    (
        "Unauthorized",
        "401",
        "no, unknown, expired or badly signed credentials (`unauthorized`; sent with `WWW-Authenticate: Bearer`)",
    ),
    (
        "Forbidden",
        "403",
        "the caller lacks a grant (`forbidden`; the message names it)",
    ),
    ("NotFound", "404", "no such object (`not_found`)"),
    (
        "PayloadTooLarge",
        "413",
        "the body is larger than 2 MiB (`payload_too_large`)",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "the body was not sent as `Content-Type: application/json` (`unsupported_media_type`)",
    ),
    (
        "ValidationFailed",
        "422",
        "the body is well-formed but invalid: of the wrong shape, with an unknown key, nested deeper than 32 levels or holding NUL (`validation_failed`, `invalid_definition`); every problem at its JSON pointer; nothing was written",
    ),
    (
        "TooManyAttempts",
        "429",
        "too many failed attempts (`too_many_attempts`); retry after `Retry-After` seconds",
    ),
    (
        "Internal",
        "500",
        "an internal error (`internal`), logged with the request id",
    ),
    (
        "Unavailable",
        "503",
        "storage is failing or busy (`storage_unavailable`, `busy`); nothing was changed; retry after `Retry-After` seconds",
    ),
];

/// Adds the security scheme, the shared error responses and, to every operation, the
/// credentials it needs and the errors common to its kind (see the module's doc).
pub struct Common;

impl utoipa::Modify for Common {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /api/v1/sessions, an app token's signature (X-Erpos-App, X-Erpos-Timestamp, X-Erpos-User, X-Erpos-Signature) or the bootstrap token",
                    ))
                    .build(),
            ),
        );
        for (name, status, description) in ERRORS {
            components.responses.insert(
                name.to_owned(),
                RefOr::T(error_response(status, description)),
            );
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("put", item.put.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ] {
                if let Some(op) = operation {
                    complete(method, path, op);
                }
            }
        }
    }
}

/// One shared error response: the error body, and the headers that come with it.
fn error_response(status: &str, description: &str) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    );
    let header = |what: &str| {
        HeaderBuilder::new()
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String),
            ))
            .description(Some(what))
            .build()
    };
    match status {
        "401" => {
            response = response.header(
                "WWW-Authenticate",
                header("`Bearer realm=\"erpos\"`: how to authenticate"),
            )
        }
        "429" | "503" => {
            response = response.header("Retry-After", header("seconds to wait before retrying"))
        }
        _ => {}
    }
    response.build()
}

/// Adds to `op` what the machinery in front of its handler can answer, unless the
/// handler documented that status itself.
fn complete(method: &str, path: &str, op: &mut Operation) {
    let public = PUBLIC.contains(&(method, path));
    let mut add = |status: &str, name: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
    };
    if public {
        op.security = Some(vec![SecurityRequirement::default()]);
    } else {
        op.security = Some(vec![SecurityRequirement::new::<_, [&str; 0], &str>(
            BEARER,
            [],
        )]);
        add("401", "Unauthorized");
    }
    // A JSON body: malformed (400), too large (413), not JSON (415, unless the body is
    // optional and read as bytes), invalid (422).
    let body = op.request_body.as_ref().and_then(|b| match b {
        RefOr::T(body) => Some((
            body.content.contains_key("application/json"),
            matches!(body.required, Some(Required::True)),
        )),
        RefOr::Ref(_) => None,
    });
    if let Some((json, required)) = body
        && json
    {
        add("400", "BadRequest");
        add("413", "PayloadTooLarge");
        if required {
            add("415", "UnsupportedMediaType");
        }
        add("422", "ValidationFailed");
    }
    let query = op.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => p.parameter_in == ParameterIn::Query,
        RefOr::Ref(_) => false,
    });
    if query {
        add("400", "BadRequest");
    }
    if path != "/healthz" && path != "/api/v1/openapi.json" {
        add("500", "Internal");
        add("503", "Unavailable");
    }
}
