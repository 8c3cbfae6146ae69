//! Regressions for what the property-based API run (`.ci/schemathesis.sh`, issue 12) found:
//! each test sends, over the real router, the kind of request schemathesis generated, and
//! asserts the answer a client was promised — the API's one JSON error shape, a 4xx and
//! never a 5xx, a hang or a plain-text body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::each_backend;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// Sends `req` through the router (as the administrator); returns the status, the content
/// type and the body as text, so a non-JSON answer shows as what it is.
async fn send(
    app: &common::TestApp,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, String, String)> {
    let res = app.router.clone().oneshot(req).await?;
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((status, ctype, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Parses an error answer, failing (with what came) unless it is the API's JSON error shape.
fn error_body(what: &str, ctype: &str, text: &str) -> Value {
    assert!(
        ctype.starts_with("application/json"),
        "{what}: content type {ctype:?}, body {text:?}"
    );
    let body: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:?}"));
    assert!(body["error"]["code"].is_string(), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    assert!(body["error"]["details"].is_array(), "{what}: {body}");
    body
}

/// Every (method, path template) of the OpenAPI document that has a path parameter.
async fn templated_routes(app: &common::TestApp) -> anyhow::Result<Vec<(String, String)>> {
    let (s, doc) = app.call("GET", "/api/v1/openapi.json", None).await?;
    assert_eq!(s, StatusCode::OK);
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        if !template.contains('{') {
            continue;
        }
        for method in item.as_object().into_iter().flat_map(|o| o.keys()) {
            out.push((method.to_uppercase(), template.clone()));
        }
    }
    Ok(out)
}

/// The parameter names of a path template, in order (`/records/{item}/{id}` → item, id).
fn params(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

/// Finding 1: a path segment that is not UTF-8 once percent-decoded (`/records/patient/%FF`)
/// was answered by axum's own rejection, `400 text/plain` "Invalid URL: Invalid UTF-8 in
/// `id`", on every route with a path parameter. Now each is the JSON 400 naming the
/// parameter at `/path/{name}`. Every templated route of the document is tried, with each
/// of its parameters in turn, so a route added later is covered too.
#[tokio::test]
async fn a_path_segment_that_is_not_utf8_gets_the_json_error_naming_the_parameter()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let routes = templated_routes(&app).await?;
        assert!(routes.len() >= 25, "{} templated routes", routes.len());
        let mut failures = Vec::new();
        for (method, template) in &routes {
            let names = params(template);
            for bad in &names {
                let mut path = template.clone();
                for name in &names {
                    let value = if name == bad { "%FF%FE" } else { "1" };
                    path = path.replace(&format!("{{{name}}}"), value);
                }
                let mut req = Request::builder().method(method.as_str()).uri(&path);
                let body = if method == "GET" || method == "DELETE" {
                    Body::empty()
                } else {
                    req = req.header("content-type", "application/json");
                    Body::from("{}")
                };
                let (s, ctype, text) = send(&app, req.body(body)?).await?;
                let what = format!("{method} {path}");
                if s != StatusCode::BAD_REQUEST || !ctype.starts_with("application/json") {
                    failures.push(format!("{what}: {s} {ctype} {text}"));
                    continue;
                }
                let body = error_body(&what, &ctype, &text);
                if body["error"]["code"] != "bad_request"
                    || body["error"]["details"][0]["path"] != format!("/path/{bad}")
                {
                    failures.push(format!("{what}: {body}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    })
    .await
}

/// Finding 2: a numeric path parameter that is not a number (`POST /outbox/lu/retry`,
/// `POST /rules/quarantine/NULL/retry`: schemathesis sent user names and strings there)
/// got `400 text/plain` "Invalid URL: Cannot parse `lu` to a `i64`". Now the JSON 400 names
/// the parameter, and nothing is retried or audited.
#[tokio::test]
async fn a_numeric_path_parameter_that_is_not_a_number_gets_the_json_error() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (_, before) = app.call("GET", "/api/v1/audit", None).await?;
        for (path, param) in [
            ("/api/v1/outbox/lu/retry", "id"),
            ("/api/v1/outbox/99999999999999999999/retry", "id"),
            ("/api/v1/rules/quarantine/NULL/retry", "seq"),
            ("/api/v1/rules/quarantine/-1/retry", "seq"),
        ] {
            let req = Request::post(path).body(Body::empty())?;
            let (s, ctype, text) = send(&app, req).await?;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {ctype} {text}");
            let body = error_body(path, &ctype, &text);
            assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
            assert_eq!(
                body["error"]["details"][0]["path"],
                format!("/path/{param}"),
                "{path}: {body}"
            );
        }
        // A real number still reaches the handler: no such entry is a 404.
        let (s, body) = app.call("POST", "/api/v1/outbox/12345/retry", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        let (_, after) = app.call("GET", "/api/v1/audit", None).await?;
        assert_eq!(before["items"], after["items"], "nothing audited");
        Ok(())
    })
    .await
}

/// Finding 3: `GET /api/v1/ws` without the WebSocket handshake headers (what any HTTP
/// client, schemathesis included, sends) got `400 text/plain` "Connection header did not
/// include 'upgrade'". Now it is the JSON error; the handshake itself still works (see
/// `tests/ws.rs`).
#[tokio::test]
async fn a_plain_get_of_the_websocket_route_gets_the_json_error() -> anyhow::Result<()> {
    each_backend(|app| async move {
        for (what, req) in [
            (
                "no upgrade headers",
                Request::get("/api/v1/ws").body(Body::empty())?,
            ),
            (
                "upgrade to something else",
                Request::get("/api/v1/ws")
                    .header("connection", "upgrade")
                    .header("upgrade", "h2c")
                    .body(Body::empty())?,
            ),
            (
                "no key",
                Request::get("/api/v1/ws")
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-version", "13")
                    .body(Body::empty())?,
            ),
        ] {
            let (s, ctype, text) = send(&app, req).await?;
            assert!(s.is_client_error(), "{what}: {s} {text}");
            error_body(what, &ctype, &text);
        }
        Ok(())
    })
    .await
}

/// Finding 4: `POST /api/v1/delegations` with a body that is JSON but not an object
/// (`[null, null]`, `42`: schemathesis's negative bodies) got `400 bad_request` "the request
/// parameters are invalid", the answer for a bad query parameter; every other route answers
/// such a body with 422 naming it. Now delegations do too, and nothing is stored. Every
/// operation the document gives a request body is tried with such bodies: each answers a
/// 4xx in the error shape that is not 400 (that is for malformed JSON and bad parameters).
#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_a_422_on_every_route() -> anyhow::Result<()> {
    each_backend(|app| async move {
        for body in ["[null, null]", "42", "\"x\"", "null"] {
            let req = Request::post("/api/v1/delegations")
                .header("content-type", "application/json")
                .body(Body::from(body))?;
            let (s, ctype, text) = send(&app, req).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {text}");
            let err = error_body(body, &ctype, &text);
            assert_eq!(err["error"]["details"][0]["path"], "", "{err}");
        }
        // An array is not read as the fields in order (serde would take `[null, 0]` for
        // `{reason, version}`): schemathesis had a no-show accepted with one.
        for action in ["no-show", "cancel", "reschedule"] {
            let req = Request::post(format!(
                "/api/v1/bookings/01a24295-6678-7005-b49e-2fa18e8718b1/{action}"
            ))
            .header("content-type", "application/json")
            .body(Body::from("[null, 0]"))?;
            let (s, ctype, text) = send(&app, req).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{action}: {text}");
            let err = error_body(action, &ctype, &text);
            assert_eq!(err["error"]["details"][0]["path"], "", "{err}");
        }
        let (s, listed) = app
            .call("GET", "/api/v1/delegations?all=true", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{listed}");
        assert_eq!(listed["total"], 0, "nothing stored: {listed}");

        let (_, doc) = app.call("GET", "/api/v1/openapi.json", None).await?;
        let mut failures = Vec::new();
        let mut tried = 0;
        for (template, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                // A signal's payload may be any JSON value (README: the body is its payload);
                // logging in answers 401/422 on its own terms (tests/auth_api.rs).
                if op["requestBody"].is_null()
                    || template == "/api/v1/events/{name}"
                    || template == "/api/v1/sessions"
                {
                    continue;
                }
                let path = template
                    .replace("{item}", "patient")
                    .replace("{name}", "patient")
                    .replace("{id}", "1")
                    .replace("{action}", "handle");
                for body in ["[1, 2]", "42"] {
                    let req = Request::builder()
                        .method(method.to_uppercase().as_str())
                        .uri(&path)
                        .header("content-type", "application/json")
                        .body(Body::from(body))?;
                    let (s, ctype, text) = send(&app, req).await?;
                    tried += 1;
                    let shaped = ctype.starts_with("application/json")
                        && serde_json::from_str::<Value>(&text)
                            .is_ok_and(|b| b["error"]["code"].is_string());
                    let status_ok = [
                        StatusCode::UNPROCESSABLE_ENTITY,
                        StatusCode::NOT_FOUND,
                        StatusCode::CONFLICT,
                    ]
                    .contains(&s);
                    if !(shaped && status_ok) {
                        failures.push(format!("{method} {path} {body}: {s} {text}"));
                    }
                }
            }
        }
        assert!(tried >= 30, "{tried} requests");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    })
    .await
}

/// The leave request (请假单) and its published service, for routes that need one.
async fn leave_service(app: &common::TestApp) -> anyhow::Result<()> {
    app.define(serde_json::json!({"name": "qingjia", "label": {"zh": "请假单"},
        "fields": [{"name": "days", "label": {"zh": "天数"}, "type": "integer", "required": true}]}))
        .await?;
    let service = serde_json::json!({
        "name": "leave", "label": {"zh": "请假申请"}, "subject": "qingjia",
        "steps": [{"name": "apply", "kind": "human", "label": {"zh": "填写申请"}, "operators": {"creator": true}},
                  {"name": "end", "kind": "end"}],
        "transitions": [{"from": "apply", "to": "end", "attribute": "agree"}]});
    let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
    anyhow::ensure!(s == StatusCode::CREATED, "service: {s} {b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/leave/publish", None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "publish: {s} {b}");
    Ok(())
}

/// Finding 5 (after the typed document landed, with negative data): list filters and
/// cursors outside what the document allows were answered 200 with an empty or arbitrary
/// page, so a misspelled filter looked like "nothing matches". `GET /processes?wait=AAA`
/// (wait kinds are an enum), `?parent=-1`, a negative cursor (`/events?cursor=-1`,
/// `/rules/quarantine?before=-1`), a cursor past any stored id (`/work-items?cursor=2^63`)
/// and a flowchart `version` that is not a number (`?version=abc` drew the newest) are now
/// each a 400 naming the parameter; the values the lists hand out still work.
#[tokio::test]
async fn filters_and_cursors_outside_their_documented_values_are_refused() -> anyhow::Result<()> {
    each_backend(|app| async move {
        leave_service(&app).await?;
        for (path, param) in [
            ("/api/v1/processes?wait=AAA", "wait"),
            ("/api/v1/processes?parent=-1", "parent"),
            ("/api/v1/processes?parent=true", "parent"),
            ("/api/v1/processes?cursor=9223372036854775808", "cursor"),
            ("/api/v1/events?cursor=-1", "cursor"),
            ("/api/v1/events?before=-5", "before"),
            ("/api/v1/rules/quarantine?cursor=-1", "cursor"),
            ("/api/v1/outbox?before=-1", "before"),
            ("/api/v1/work-items?cursor=9223372036854775808", "cursor"),
            (
                "/api/v1/services/leave/flowchart.svg?version=abc",
                "version",
            ),
        ] {
            let req = Request::get(path).body(Body::empty())?;
            let (s, ctype, text) = send(&app, req).await?;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {text}");
            let body = error_body(path, &ctype, &text);
            assert_eq!(
                body["error"]["details"][0]["path"],
                format!("/query/{param}"),
                "{path}: {body}"
            );
        }
        for path in [
            "/api/v1/processes?wait=resource",
            "/api/v1/processes?wait=children&cursor=1",
            "/api/v1/processes?parent=1",
            "/api/v1/events?cursor=0",
            "/api/v1/work-items?cursor=1",
        ] {
            let (s, body) = app.call("GET", path, None).await?;
            assert_eq!(s, StatusCode::OK, "{path}: {body}");
        }
        let (s, _, svg) = app
            .get_text("/api/v1/services/leave/flowchart.svg?version=1")
            .await?;
        assert_eq!(s, StatusCode::OK);
        assert!(svg.contains("<svg"), "{svg}");
        Ok(())
    })
    .await
}

/// Finding 6: `PUT /users/{id}/password` read only the keys it knew, so for a caller who
/// needs no old password (`organisation`) `{"password": "…", "old_password": {}}` was a 204
/// and an unknown key was ignored. The body is now checked whole first: a 422 naming each
/// bad key, and the password unchanged.
#[tokio::test]
async fn a_password_change_with_a_malformed_body_changes_nothing() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/users",
                Some(serde_json::json!({"id": "dr_li", "password": "dr-li-password-1"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        for (body, at) in [
            (
                serde_json::json!({"password": "new-password-2", "old_password": {}}),
                "/old_password",
            ),
            (
                serde_json::json!({"password": "new-password-2", "pasword": "x"}),
                "/pasword",
            ),
            (serde_json::json!({"password": 12345678}), "/password"),
        ] {
            let (s, b) = app
                .call("PUT", "/api/v1/users/dr_li/password", Some(body.clone()))
                .await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
            assert_eq!(b["error"]["details"][0]["path"], at, "{body}: {b}");
        }
        assert!(
            app.login("dr_li", "dr-li-password-1").await.is_ok(),
            "the password is unchanged"
        );
        let (s, b) = app
            .call(
                "PUT",
                "/api/v1/users/dr_li/password",
                Some(serde_json::json!({"password": "new-password-2", "old_password": null})),
            )
            .await?;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        assert!(app.login("dr_li", "new-password-2").await.is_ok());
        Ok(())
    })
    .await
}

/// Finding 7: an app token's `label` was stored as whatever JSON came (`0`, `false`, `""`)
/// and listed as such, against the document's label schema. Now a label is `{"zh", "en"?}`
/// or absent: anything else is a 422 naming `/label`, and no token is created.
#[tokio::test]
async fn an_app_token_label_is_a_label() -> anyhow::Result<()> {
    each_backend(|app| async move {
        for label in [serde_json::json!(0), serde_json::json!(false), serde_json::json!(""), serde_json::json!({"en": "CRM"})] {
            let body = serde_json::json!({"name": "crm", "services": ["leave"], "scopes": ["records:qingjia:*"], "label": label});
            let (s, b) = app.call("POST", "/api/v1/app-tokens", Some(body)).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {b}");
            assert_eq!(b["error"]["details"][0]["path"], "/label", "{b}");
        }
        let (_, listed) = app.call("GET", "/api/v1/app-tokens", None).await?;
        assert_eq!(listed["total"], 0, "{listed}");
        let body = serde_json::json!({"name": "crm", "services": ["leave"], "scopes": ["records:qingjia:*"], "label": {"zh": "客户系统", "en": "CRM"}});
        let (s, b) = app.call("POST", "/api/v1/app-tokens", Some(body)).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["label"]["zh"], "客户系统", "{b}");
        let (s, b) = app.call("POST", "/api/v1/app-tokens", Some(serde_json::json!({"name": "oa", "services": ["leave"], "scopes": []}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert!(b.get("label").is_none(), "no label, none shown: {b}");
        Ok(())
    })
    .await
}

/// Finding 8: the document described every `u32` as `int32` with `minimum: 0`, whose range
/// ends at 2^31 - 1, so schemathesis sent a DataItem `version` of 2^31 as invalid data and
/// the API (rightly, for a u32) took it. Unsigned 32-bit fields are now `int64` from 0 to
/// 2^32 - 1, and 2^31 is valid by the document too.
#[tokio::test]
async fn unsigned_fields_are_described_with_their_real_range() -> anyhow::Result<()> {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if map.get("format") == Some(&Value::from("int32"))
                    && map.get("minimum").and_then(Value::as_f64) == Some(0.0)
                    && !map.contains_key("maximum")
                {
                    out.push(at.to_owned());
                }
                for (k, x) in map {
                    walk(x, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    walk(x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    each_backend(|app| async move {
        let (_, doc) = app.call("GET", "/api/v1/openapi.json", None).await?;
        let version = &doc["components"]["schemas"]["DataItem"]["properties"]["version"];
        assert_eq!(version["maximum"], 4_294_967_295_u64, "{version}");
        assert_eq!(version["format"], "int64", "{version}");
        let mut narrow = Vec::new();
        walk(&doc, "", &mut narrow);
        assert!(
            narrow.is_empty(),
            "unsigned fields described as int32: {narrow:?}"
        );
        Ok(())
    })
    .await
}

/// Found by schemathesis once the demo shipped a rule: `PUT /api/v1/rules/{name}` with
/// `"name": {}` in the body was accepted (the path's name replaced it unread). The path
/// still wins over a body's name, but a name that is not a string is a 422 at `/name`,
/// and the rule is unchanged.
#[tokio::test]
async fn a_replaced_rule_s_name_in_the_body_is_a_string() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let rule = serde_json::json!({"name": "huifang", "label": {"zh": "回访"},
            "event": {"kind": "signal", "name": "x"}, "instructions": []});
        let (s, b) = app
            .call("POST", "/api/v1/rules", Some(rule.clone()))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let mut bad = rule.clone();
        bad["name"] = serde_json::json!({});
        bad["enabled"] = serde_json::json!(false);
        let (s, b) = app.call("PUT", "/api/v1/rules/huifang", Some(bad)).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/name", "{b}");
        let (_, shown) = app.call("GET", "/api/v1/rules/huifang", None).await?;
        assert_eq!(shown["enabled"], true, "unchanged: {shown}");
        let mut other = rule;
        other["name"] = serde_json::json!("another");
        let (s, b) = app
            .call("PUT", "/api/v1/rules/huifang", Some(other))
            .await?;
        assert_eq!(s, StatusCode::OK, "the path's name wins: {b}");
        assert_eq!(b["name"], "huifang");
        Ok(())
    })
    .await
}
