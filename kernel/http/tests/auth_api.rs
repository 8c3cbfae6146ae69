//! Authentication and authorization over HTTP, on every backend: login, sessions and
//! logout; one 401 message for a wrong user or password, and a lockout; passwords never in
//! a response; the bootstrap token; app tokens (a correct signature acts as the named user,
//! a tampered, stale or replayed one is refused, services outside the token are not
//! found); grants from roles, per-field record grants; and the matrix: every route of the
//! OpenAPI document refuses a request without credentials (401), and every write refuses a
//! user without grants (403/404) leaving the database unchanged.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{As, BOOTSTRAP, TestApp, each_backend, patient_def};
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn leave_service(name: &str) -> Value {
    json!({
        "name": name, "label": {"zh": "请假申请", "en": "Leave request"},
        "steps": [
            {"name": "apply", "kind": "human", "label": {"zh": "填写申请"}},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "apply", "to": "end"}]
    })
}

async fn ok(app: &TestApp, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (s, b) = app.call(method, path, Some(body)).await?;
    anyhow::ensure!(s.is_success(), "{method} {path}: {s} {b}");
    Ok(b)
}

#[tokio::test]
async fn login_use_logout_and_sessions_survive_a_restart() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, created) = app
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"id": "zhangsan", "roles": [], "password": "s3cret-pass"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        assert!(!created.to_string().contains("s3cret-pass"), "{created}");
        assert!(created.get("password").is_none(), "{created}");
        let (_, users) = app.call("GET", "/api/v1/users", None).await?;
        assert!(!users.to_string().contains("s3cret-pass"), "{users}");
        assert!(!users.to_string().contains("argon2"), "{users}");

        let (s, session) = app
            .call_as(
                As::Nobody,
                "POST",
                "/api/v1/sessions",
                Some(json!({"user": "zhangsan", "password": "s3cret-pass"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{session}");
        assert_eq!(session["user"], "zhangsan");
        assert!(
            session["expires_at"]
                .as_str()
                .is_some_and(|e| e.starts_with("2026-11-28")),
            "{session}"
        );
        assert!(!session.to_string().contains("s3cret-pass"));
        let token = session["token"].as_str().unwrap_or_default().to_owned();
        assert!(token.len() >= 43, "a 256-bit token: {token}");

        let (s, me) = app
            .call_as(As::Bearer(&token), "GET", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{me}");
        assert_eq!(me["user"], "zhangsan");
        assert_eq!(me["kind"], "user");
        let (s, _) = app
            .call_as(As::Bearer(&token), "GET", "/api/v1/data-items", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "any user reads definitions");

        // The session is stored: a restart keeps it.
        let app = app.restart().await?;
        let (s, _) = app
            .call_as(As::Bearer(&token), "GET", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "the session survives a restart");

        let (s, _) = app
            .call_as(
                As::Bearer(&token),
                "DELETE",
                "/api/v1/sessions/current",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, b) = app
            .call_as(As::Bearer(&token), "GET", "/api/v1/data-items", None)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        assert_eq!(b["error"]["code"], "unauthorized");
        let app = app.restart().await?;
        let (s, _) = app
            .call_as(As::Bearer(&token), "GET", "/api/v1/data-items", None)
            .await?;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "logged out is logged out after a restart too"
        );

        // A session lasts 12 hours from login, no longer.
        let token = app.login("zhangsan", "s3cret-pass").await?;
        app.clock.advance_ms(12 * 3600 * 1000 - 1000);
        let (s, _) = app
            .call_as(As::Bearer(&token), "GET", "/api/v1/data-items", None)
            .await?;
        assert_eq!(s, StatusCode::OK);
        app.clock.advance_ms(1000);
        let (s, _) = app
            .call_as(As::Bearer(&token), "GET", "/api/v1/data-items", None)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "expired after 12 h");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_wrong_user_and_a_wrong_password_look_the_same_and_guessing_is_slowed()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        ok(
            &app,
            "POST",
            "/api/v1/users",
            json!({"id": "lisi", "password": "right-password"}),
        )
        .await?;
        let login = |user: &'static str, password: &'static str| {
            let app = &app;
            async move {
                app.call_as(
                    As::Nobody,
                    "POST",
                    "/api/v1/sessions",
                    Some(json!({"user": user, "password": password})),
                )
                .await
            }
        };
        let (s1, wrong_password) = login("lisi", "wrong-password").await?;
        let (s2, unknown_user) = login("nobody_here", "wrong-password").await?;
        assert_eq!(s1, StatusCode::UNAUTHORIZED);
        assert_eq!(s2, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong_password, unknown_user, "no user enumeration");
        assert_eq!(wrong_password["error"]["code"], "unauthorized");
        let (s, b) = app
            .call_as(
                As::Nobody,
                "POST",
                "/api/v1/sessions",
                Some(json!({"user": "lisi"})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(b["error"]["details"][0]["path"], "/password");

        // Five failures in a row lock the name for a minute, even for the right password;
        // unknown names lock the same way.
        for _ in 0..4 {
            login("lisi", "wrong-password").await?;
        }
        for _ in 0..4 {
            login("nobody_here", "wrong-password").await?;
        }
        let (s, b) = login("lisi", "right-password").await?;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
        assert_eq!(b["error"]["code"], "too_many_attempts");
        let (s, _) = login("nobody_here", "right-password").await?;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        app.clock.advance_ms(61_000);
        let (s, b) = login("lisi", "right-password").await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn passwords_are_checked_and_changed_by_their_owner_or_the_organisation() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"id": "wangwu", "password": "short"})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/password", "{b}");
        let (_, users) = app.call("GET", "/api/v1/users", None).await?;
        assert_eq!(users["total"], 0, "nothing stored: {users}");

        let wangwu = app.user_with("wangwu", &[]).await?;
        let hr = app.user_with("hr", &["organisation"]).await?;
        let other = app.user_with("zhaoliu", &[]).await?;
        let second = app.login("wangwu", "password-of-wangwu").await?;
        let put = |token: String, user: &'static str, body: Value| {
            let app = &app;
            async move {
                app.call_as(
                    As::Bearer(&token),
                    "PUT",
                    &format!("/api/v1/users/{user}/password"),
                    Some(body),
                )
                .await
            }
        };
        let (s, b) = put(
            wangwu.clone(),
            "wangwu",
            json!({"password": "a-new-password"}),
        )
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/old_password");
        let (s, b) = put(
            wangwu.clone(),
            "wangwu",
            json!({"password": "a-new-password", "old_password": "wrong-one"}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, b) = put(
            wangwu.clone(),
            "wangwu",
            json!({"password": "short", "old_password": "password-of-wangwu"}),
        )
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/password");
        let (s, b) = put(other.clone(), "wangwu", json!({"password": "taken-over-1"})).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("needs organisation"),
            "{b}"
        );
        let (s, b) = put(
            wangwu.clone(),
            "wangwu",
            json!({"password": "a-new-password", "old_password": "password-of-wangwu"}),
        )
        .await?;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        // The session that changed it goes on; the user's other session ended.
        let (s, _) = app
            .call_as(As::Bearer(&wangwu), "GET", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app
            .call_as(As::Bearer(&second), "GET", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(app.login("wangwu", "password-of-wangwu").await.is_err());
        app.login("wangwu", "a-new-password").await?;
        // The organisation sets anyone's password without the old one.
        let (s, b) = put(hr, "wangwu", json!({"password": "reset-by-hr"})).await?;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let (s, _) = app
            .call_as(As::Bearer(&wangwu), "GET", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "a reset ends every session");
        app.login("wangwu", "reset-by-hr").await?;
        let (s, _) = app
            .call(
                "PUT",
                "/api/v1/users/ghost/password",
                Some(json!({"password": "whatever-1"})),
            )
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_bootstrap_token_is_the_administrator_and_bad_credentials_get_401() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        let (s, me) = app
            .call_as(
                As::Bearer(BOOTSTRAP),
                "GET",
                "/api/v1/sessions/current",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(me["user"], "admin");
        assert_eq!(me["kind"], "bootstrap");
        let (s, _) = app
            .call_as(
                As::Bearer(BOOTSTRAP),
                "POST",
                "/api/v1/data-items",
                Some(patient_def()),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED);
        // A path that does not exist: 401 without credentials (nothing to learn about which
        // paths exist), 404 with them; /healthz stays open, other paths outside /api/v1 404.
        for method in ["GET", "POST", "DELETE"] {
            let (s, b) = app
                .call_as(As::Nobody, method, "/api/v1/no-such-thing/7", None)
                .await?;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method}: {b}");
            let (s, b) = app
                .call_as(
                    As::Bearer(BOOTSTRAP),
                    method,
                    "/api/v1/no-such-thing/7",
                    None,
                )
                .await?;
            assert_eq!(s, StatusCode::NOT_FOUND, "{method}: {b}");
            assert_eq!(b["error"]["code"], "not_found", "{b}");
        }
        let (s, _) = app.call_as(As::Nobody, "GET", "/healthz", None).await?;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.call_as(As::Nobody, "GET", "/nowhere", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, b) = app
            .call_as(
                As::Nobody,
                "POST",
                "/api/v1/sessions",
                Some(json!({"user": "admin", "password": "wrong-password-1"})),
            )
            .await?;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "logging in still reaches the login: {b}"
        );
        assert_ne!(b["error"]["code"], "not_found", "{b}");
        for bad in [
            "test-bootstrap-token-012345678",
            "test-bootstrap-token-0123456789x",
            "x",
        ] {
            let (s, b) = app
                .call_as(As::Bearer(bad), "GET", "/api/v1/data-items", None)
                .await?;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}: {b}");
            assert_eq!(b["error"]["code"], "unauthorized");
        }
        // The refusal has the one error shape and asks for a bearer token.
        let res = app
            .bare
            .clone()
            .oneshot(Request::get("/api/v1/data-items").body(Body::empty())?)
            .await?;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "{:?}",
            res.headers()
        );
        let res = app
            .bare
            .clone()
            .oneshot(
                Request::get("/api/v1/data-items")
                    .header("authorization", "Basic YWRtaW46YWRtaW4=")
                    .body(Body::empty())?,
            )
            .await?;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        // Health stays open.
        let (s, _) = app.call_as(As::Nobody, "GET", "/healthz", None).await?;
        assert_eq!(s, StatusCode::OK);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn roles_give_grants_and_handlers_refuse_what_they_do_not_allow() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/roles",
                Some(json!({"name": "bad", "label": {"zh": "坏"}, "permissions": ["design", "records:huanzhe:write"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/permissions/1", "{b}");
        let (s, b) = app
            .call("POST", "/api/v1/skills", Some(json!({"name": "laser", "label": {"zh": "激光"}, "permissions": ["design"]})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

        let analyst = app.user_with("analyst", &["design"]).await?;
        let clerk = app.user_with("clerk", &["records:huanzhe:read", "records:huanzhe:create"]).await?;
        let (s, b) = app.call_as(As::Bearer(&clerk), "POST", "/api/v1/data-items", Some(patient_def())).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert_eq!(b["error"]["code"], "forbidden");
        assert!(b["error"]["message"].as_str().unwrap_or_default().ends_with("needs design"), "{b}");
        let (s, b) = app.call_as(As::Bearer(&analyst), "POST", "/api/v1/data-items", Some(patient_def())).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = app
            .call_as(As::Bearer(&analyst), "POST", "/api/v1/records/huanzhe", Some(json!({"xingming": "张三"})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("records:huanzhe:create"), "{b}");
        let (s, rec) = app
            .call_as(As::Bearer(&clerk), "POST", "/api/v1/records/huanzhe", Some(json!({"xingming": "张三", "age": 30})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{rec}");
        let id = rec["id"].as_str().unwrap_or_default().to_owned();
        let (s, _) = app
            .call_as(As::Bearer(&clerk), "PATCH", &format!("/api/v1/records/huanzhe/{id}"), Some(json!({"age": 31})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "no update grant");
        let (_, history) = app.call("GET", &format!("/api/v1/records/huanzhe/{id}/history"), None).await?;
        assert_eq!(history["items"][0]["actor"], "clerk", "the change records who made it: {history}");

        // A role's new permission applies at once to everyone holding it.
        ok(&app, "POST", "/api/v1/roles", json!({"name": "role_clerk", "label": {"zh": "文员"},
            "permissions": ["records:huanzhe:*"]})).await?;
        let (s, b) = app
            .call_as(As::Bearer(&clerk), "PATCH", &format!("/api/v1/records/huanzhe/{id}"), Some(json!({"age": 31, "version": 1})))
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        // And a user's roles, when the user changes.
        ok(&app, "POST", "/api/v1/users", json!({"id": "clerk", "roles": []})).await?;
        let (s, _) = app.call_as(As::Bearer(&clerk), "GET", "/api/v1/records/huanzhe", None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "no roles, no grants");

        // Monitoring needs monitor; the outbox retry needs admin.
        let watcher = app.user_with("watcher", &["monitor"]).await?;
        for path in ["/api/v1/events", "/api/v1/outbox", "/api/v1/stats/services"] {
            let (s, _) = app.call_as(As::Bearer(&analyst), "GET", path, None).await?;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
            let (s, b) = app.call_as(As::Bearer(&watcher), "GET", path, None).await?;
            assert_eq!(s, StatusCode::OK, "{path}: {b}");
        }
        let (s, b) = app.call_as(As::Bearer(&watcher), "POST", "/api/v1/outbox/1/retry", None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or_default().ends_with("needs admin"));
        // Notifications: one's own by default; another's with monitor only.
        let (s, b) = app.call_as(As::Bearer(&analyst), "GET", "/api/v1/notifications", None).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, _) = app.call_as(As::Bearer(&analyst), "GET", "/api/v1/notifications?user=analyst", None).await?;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.call_as(As::Bearer(&analyst), "GET", "/api/v1/notifications?user=watcher", None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app.call_as(As::Bearer(&watcher), "GET", "/api/v1/notifications?user=analyst", None).await?;
        assert_eq!(s, StatusCode::OK);
        // Changes without a history of their own are in the audit log, with their actor.
        let (s, log) = app
            .call_as(As::Bearer(&watcher), "GET", "/api/v1/audit?actor=analyst", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{log}");
        assert_eq!(log["items"][0]["action"], "data_item.create", "{log}");
        assert_eq!(log["items"][0]["subject"], "huanzhe", "{log}");
        let (_, log) = app.call("GET", "/api/v1/audit?limit=500", None).await?;
        let actions: Vec<String> = log["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{} {} {}", e["actor"].as_str().unwrap_or(""), e["action"].as_str().unwrap_or(""), e["subject"].as_str().unwrap_or("")))
            .collect();
        for want in ["admin role.save role_clerk", "admin user.save clerk", "analyst data_item.create huanzhe"] {
            assert!(actions.iter().any(|a| a == want), "{want} not in {actions:?}");
        }
        let (s, _) = app.call_as(As::Bearer(&analyst), "GET", "/api/v1/audit", None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_organisation_cannot_hand_out_more_than_it_holds() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let hr = app
            .user_with("hr", &["organisation", "records:*:read"])
            .await?;
        app.user_with("boss", &["admin"]).await?;
        let as_hr = |method: &'static str, path: &'static str, body: Value| {
            let (app, hr) = (&app, hr.clone());
            async move { app.call_as(As::Bearer(&hr), method, path, Some(body)).await }
        };
        let (s, b) = as_hr(
            "POST",
            "/api/v1/roles",
            json!({"name": "root", "label": {"zh": "超级"}, "permissions": ["admin"]}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("'admin'"),
            "{b}"
        );
        let (s, b) = as_hr(
            "POST",
            "/api/v1/roles",
            json!({"name": "reader", "label": {"zh": "读者"},
            "permissions": ["records:huanzhe:read", "records:*:read:age"]}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "what it holds it may give: {b}");
        let (s, b) = as_hr(
            "POST",
            "/api/v1/users",
            json!({"id": "mole", "roles": ["role_boss"], "password": "mole-password"}),
        )
        .await?;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a user with a role beyond its grants: {b}"
        );
        let (s, b) = as_hr(
            "POST",
            "/api/v1/users",
            json!({"id": "boss", "roles": [], "password": "taken-over-1"}),
        )
        .await?;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "nor rewrite an administrator: {b}"
        );
        let (s, b) = as_hr(
            "PUT",
            "/api/v1/users/boss/password",
            json!({"password": "taken-over-1"}),
        )
        .await?;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "nor take one over by their password: {b}"
        );
        let (s, b) = as_hr(
            "POST",
            "/api/v1/app-tokens",
            json!({"name": "backdoor", "services": ["*"], "scopes": ["admin"]}),
        )
        .await?;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "nor mint a token wider than itself: {b}"
        );
        let (s, b) = as_hr(
            "POST",
            "/api/v1/users",
            json!({"id": "newbie", "roles": ["reader"], "password": "newbie-password"}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        app.login("boss", "password-of-boss").await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn per_field_grants_limit_what_is_written_and_shown() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        let rec = app
            .create(
                "huanzhe",
                json!({"xingming": "张三", "age": 30, "record_no": "A1"}),
            )
            .await?;
        let id = rec["id"].as_str().unwrap_or_default().to_owned();
        let nurse = app
            .user_with(
                "nurse",
                &[
                    "records:huanzhe:read:xingming",
                    "records:huanzhe:read:age",
                    "records:huanzhe:update:age",
                ],
            )
            .await?;
        let (s, shown) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                &format!("/api/v1/records/huanzhe/{id}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{shown}");
        assert_eq!(shown["xingming"], "张三");
        assert_eq!(shown["age"], 30);
        assert_eq!(shown["id"], id.as_str());
        assert!(
            shown.get("record_no").is_none(),
            "a field without a read grant is left out: {shown}"
        );
        assert!(shown.get("balance").is_none(), "{shown}");
        let (s, list) = app
            .call_as(As::Bearer(&nurse), "GET", "/api/v1/records/huanzhe", None)
            .await?;
        assert_eq!(s, StatusCode::OK);
        assert!(list["items"][0].get("record_no").is_none(), "{list}");
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                "/api/v1/records/huanzhe?record_no=A1",
                None,
            )
            .await?;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "filtering on a hidden field would reveal it: {b}"
        );
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                "/api/v1/records/huanzhe?sort=-record_no",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                "/api/v1/records/huanzhe?age__gte=18&sort=-age",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK);
        // A search matches the searchable name: fine for the nurse, who may read it, but it
        // would answer "is this patient 张三?" for someone who may only read ages.
        let (s, found) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                "/api/v1/records/huanzhe?q=zhangsan",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{found}");
        assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
        let ages_only = app
            .user_with("ages_only", &["records:huanzhe:read:age"])
            .await?;
        let (s, b) = app
            .call_as(
                As::Bearer(&ages_only),
                "GET",
                "/api/v1/records/huanzhe?q=zhangsan",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("records:huanzhe:read:xingming"),
            "{b}"
        );

        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "PATCH",
                &format!("/api/v1/records/huanzhe/{id}"),
                Some(json!({"age": 31, "record_no": "B2", "version": 1})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("records:huanzhe:update:record_no"),
            "{b}"
        );
        let (_, now) = app
            .call("GET", &format!("/api/v1/records/huanzhe/{id}"), None)
            .await?;
        assert_eq!(now["age"], 30, "nothing changed");
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "PATCH",
                &format!("/api/v1/records/huanzhe/{id}"),
                Some(json!({"age": 31, "version": 1})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(
            b.get("record_no").is_none(),
            "the answer is redacted too: {b}"
        );
        let (s, _) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                &format!("/api/v1/records/huanzhe/{id}/history"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "the history needs the whole read");
        let (s, _) = app
            .call_as(
                As::Bearer(&nurse),
                "POST",
                "/api/v1/records/huanzhe",
                Some(json!({"xingming": "李四"})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .call_as(
                As::Bearer(&nurse),
                "DELETE",
                &format!("/api/v1/records/huanzhe/{id}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        Ok(())
    })
    .await
}

/// An app token `oa` for the service `leave`, scoped to leave records and processes, and
/// a user `zhangsan` (design and every record) it acts for; returns the secret.
/// Signs a request with a nonce, as an app would that sends the same request twice in a
/// second.
fn with_nonce(
    app: &TestApp,
    secret: &str,
    method: &str,
    path: &str,
    nonce: &str,
) -> Vec<(String, String)> {
    let mut headers = app.credentials(
        As::App {
            app: "oa",
            secret,
            user: "zhangsan",
        },
        method,
        path,
        b"",
    );
    let ts = headers
        .iter()
        .find(|(k, _)| k == "x-erpos-timestamp")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let text = erpos_kernel::auth::apps::with_nonce(
        erpos_kernel::auth::apps::string_to_sign(&ts, "zhangsan", method, path, b""),
        nonce,
    );
    for (k, v) in &mut headers {
        if k == "x-erpos-signature" {
            *v = erpos_kernel::auth::apps::sign(secret, &text);
        }
    }
    headers.push(("x-erpos-nonce".into(), nonce.into()));
    headers
}

#[tokio::test]
async fn a_signed_nonce_tells_identical_requests_in_the_same_second_apart() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let secret = oa_fixture(&app).await?;
        let path = "/api/v1/services/leave";
        // Without a nonce the second identical request looks like a replay.
        let plain = app.credentials(
            As::App {
                app: "oa",
                secret: &secret,
                user: "zhangsan",
            },
            "GET",
            path,
            b"",
        );
        let (s, b) = app.call_raw("GET", path, None, &plain).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, _) = app.call_raw("GET", path, None, &plain).await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // With a different nonce each, both pass; a nonce used again is a replay.
        for nonce in ["poll-1", "poll-2"] {
            let (s, b) = app
                .call_raw(
                    "GET",
                    path,
                    None,
                    &with_nonce(&app, &secret, "GET", path, nonce),
                )
                .await?;
            assert_eq!(s, StatusCode::OK, "{nonce}: {b}");
        }
        let (s, b) = app
            .call_raw(
                "GET",
                path,
                None,
                &with_nonce(&app, &secret, "GET", path, "poll-1"),
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        // The nonce is signed: changing it breaks the signature; a bad one is named.
        let mut changed = with_nonce(&app, &secret, "GET", path, "poll-3");
        for (k, v) in &mut changed {
            if k == "x-erpos-nonce" {
                *v = "poll-4".into();
            }
        }
        let (s, b) = app.call_raw("GET", path, None, &changed).await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        assert!(b.to_string().contains("bad signature"), "{b}");
        let long = "n".repeat(65);
        let (s, b) = app
            .call_raw(
                "GET",
                path,
                None,
                &with_nonce(&app, &secret, "GET", path, &long),
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        assert!(b.to_string().contains("X-Erpos-Nonce"), "{b}");
        Ok(())
    })
    .await
}

async fn oa_fixture(app: &TestApp) -> anyhow::Result<String> {
    ok(
        app,
        "POST",
        "/api/v1/data-items",
        json!({"name": "leave", "label": {"zh": "请假单"},
        "fields": [{"name": "days", "label": {"zh": "天数"}, "type": "integer"}]}),
    )
    .await?;
    for name in ["leave", "expense"] {
        ok(app, "POST", "/api/v1/services", leave_service(name)).await?;
        ok(
            app,
            "POST",
            &format!("/api/v1/services/{name}/publish"),
            json!({}),
        )
        .await?;
    }
    app.user_with("zhangsan", &["design", "records:*:*", "services:*:*"])
        .await?;
    let (s, token) = app
        .call(
            "POST",
            "/api/v1/app-tokens",
            Some(json!({"name": "oa", "services": ["leave"], "scopes": ["records:leave:*", "services:leave:*"], "label": {"zh": "办公系统"}})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {token}");
    Ok(token["secret"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn app_tokens_sign_requests_for_a_user_and_refuse_tampering_staleness_and_replay()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let secret = oa_fixture(&app).await?;
        assert!(secret.len() >= 43, "{secret}");
        let (s, list) = app.call("GET", "/api/v1/app-tokens", None).await?;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list["items"][0]["name"], "oa");
        assert!(
            !list.to_string().contains(&secret),
            "the secret is shown once: {list}"
        );
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/app-tokens",
                Some(json!({"name": "oa", "services": [], "scopes": ["records:leave:writ"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/scopes/0");
        let (s, _) = app
            .call(
                "POST",
                "/api/v1/app-tokens",
                Some(json!({"name": "oa", "services": []})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT);
        let oa = As::App {
            app: "oa",
            secret: &secret,
            user: "zhangsan",
        };

        // A correct signature acts as the named user, and the change is theirs.
        let (s, me) = app
            .call_as(oa, "GET", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{me}");
        assert_eq!(me["user"], "zhangsan");
        assert_eq!(me["kind"], "app");
        assert_eq!(
            me["grants"],
            json!(["records:leave:*", "services:leave:*"]),
            "the user's grants within the scopes"
        );
        let (s, rec) = app
            .call_as(
                oa,
                "POST",
                "/api/v1/records/leave",
                Some(json!({"days": 3})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{rec}");
        let id = rec["id"].as_str().unwrap_or_default().to_owned();
        let (_, history) = app
            .call("GET", &format!("/api/v1/records/leave/{id}/history"), None)
            .await?;
        assert_eq!(history["items"][0]["actor"], "zhangsan", "{history}");
        // The scopes narrow the user: zhangsan designs, the token does not.
        let (s, b) = app
            .call_as(
                oa,
                "POST",
                "/api/v1/data-items",
                Some(json!({"label": {"zh": "x"}, "fields": []})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

        // Only its own services exist for it.
        let (s, services) = app.call_as(oa, "GET", "/api/v1/services", None).await?;
        assert_eq!(s, StatusCode::OK);
        let names: Vec<&str> = services["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(names, ["leave"], "{services}");
        for path in [
            "/api/v1/services/expense",
            "/api/v1/services/expense/flowchart.svg",
        ] {
            let (s, _) = app.call_as(oa, "GET", path, None).await?;
            assert!(
                s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN,
                "{path}: {s}"
            );
        }
        let (s, _) = app
            .call_as(oa, "GET", "/api/v1/services/leave", None)
            .await?;
        assert_eq!(s, StatusCode::OK);

        // Tampering: another body, another path, another user than signed.
        let body = json!({"days": 5}).to_string().into_bytes();
        let signed = app.credentials(oa, "POST", "/api/v1/records/leave", &body);
        let (s, b) = app
            .call_raw(
                "POST",
                "/api/v1/records/leave",
                Some(json!({"days": 50}).to_string().into_bytes()),
                &signed,
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "tampered body: {b}");
        assert_eq!(b["error"]["code"], "unauthorized");
        let (s, _) = app
            .call_raw(
                "POST",
                "/api/v1/records/leave?x=1",
                Some(body.clone()),
                &signed,
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "tampered path");
        // Another user who exists and could make this very request: only the signature,
        // which covers the user, stands in the way.
        app.user_with("lisi", &["records:*:*", "services:*:*"])
            .await?;
        let mut as_lisi = signed.clone();
        for (k, v) in &mut as_lisi {
            if k == "x-erpos-user" {
                *v = "lisi".into();
            }
        }
        let (s, b) = app
            .call_raw(
                "POST",
                "/api/v1/records/leave",
                Some(body.clone()),
                &as_lisi,
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "tampered user: {b}");
        assert!(b.to_string().contains("bad signature"), "{b}");
        // The untouched request passes once; its replay is refused.
        let (s, b) = app
            .call_raw("POST", "/api/v1/records/leave", Some(body.clone()), &signed)
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = app
            .call_raw("POST", "/api/v1/records/leave", Some(body.clone()), &signed)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "replayed: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("already used"),
            "{b}"
        );
        // ... even after a restart.
        let app = app.restart().await?;
        let (s, _) = app
            .call_raw("POST", "/api/v1/records/leave", Some(body.clone()), &signed)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "replayed after a restart");
        let (_, all) = app.call("GET", "/api/v1/records/leave", None).await?;
        assert_eq!(
            all["total"], 2,
            "only the two accepted requests wrote: {all}"
        );

        // Stale: signed now, sent more than 300 s later (and a timestamp from the future).
        let oa = As::App {
            app: "oa",
            secret: &secret,
            user: "zhangsan",
        };
        let stale = app.credentials(oa, "GET", "/api/v1/records/leave", b"");
        app.clock.advance_ms(301_000);
        let (s, b) = app
            .call_raw("GET", "/api/v1/records/leave", None, &stale)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "stale: {b}");
        app.clock.advance_ms(-301_000);
        let (s, _) = app
            .call_raw("GET", "/api/v1/records/leave", None, &stale)
            .await?;
        assert_eq!(s, StatusCode::OK, "within the window it passes");
        let ahead = app.credentials(oa, "GET", "/api/v1/records/leave?n=2", b"");
        app.clock.advance_ms(-301_000);
        let (s, _) = app
            .call_raw("GET", "/api/v1/records/leave?n=2", None, &ahead)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "from the future");
        app.clock.advance_ms(301_000);

        // Unknown user, unknown app, wrong secret, a missing header, a revoked token.
        let (s, _) = app
            .call_as(
                As::App {
                    app: "oa",
                    secret: &secret,
                    user: "ghost",
                },
                "GET",
                "/api/v1/records/leave",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "unknown user");
        let (s, _) = app
            .call_as(
                As::App {
                    app: "crm",
                    secret: &secret,
                    user: "zhangsan",
                },
                "GET",
                "/api/v1/records/leave",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "unknown app");
        let (s, _) = app
            .call_as(
                As::App {
                    app: "oa",
                    secret: "guessed",
                    user: "zhangsan",
                },
                "GET",
                "/api/v1/records/leave",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "wrong secret");
        let partial: Vec<(String, String)> = app
            .credentials(oa, "GET", "/api/v1/records/leave", b"")
            .into_iter()
            .filter(|(k, _)| k != "x-erpos-timestamp")
            .collect();
        let (s, _) = app
            .call_raw("GET", "/api/v1/records/leave", None, &partial)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "missing header");
        let zhangsan = app.login("zhangsan", "password-of-zhangsan").await?;
        let (s, _) = app
            .call_as(
                As::Bearer(&zhangsan),
                "DELETE",
                "/api/v1/app-tokens/oa",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "revoking needs organisation");
        let (s, _) = app.call("DELETE", "/api/v1/app-tokens/oa", None).await?;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app
            .call_as(oa, "GET", "/api/v1/records/leave", None)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "revoked");
        let (_, list) = app.call("GET", "/api/v1/app-tokens", None).await?;
        assert_eq!(list["items"][0]["revoked_by"], "admin", "{list}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_websocket_needs_credentials_and_takes_them_in_the_query() -> anyhow::Result<()> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    each_backend(|app| async move {
        let token = app.user_with("watcher", &["monitor"]).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let router = app.bare.clone();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws")).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED)
            }
            other => anyhow::bail!("a socket without credentials: {other:?}"),
        }
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?access_token={token}"))
                .await?;
        ws.send(Message::Text(
            json!({"subscribe": "queues"}).to_string().into(),
        ))
        .await?;
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
        let first: Value = serde_json::from_str(first.to_text()?)?;
        assert_eq!(first["type"], "snapshot", "{first}");
        server.abort();
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// The matrix: every route of the OpenAPI document, without credentials and as a user
// without grants.

/// Write routes left out of the matrix because their checks are not in yet: none. (Add a
/// route here only while its handler's checks are being written, and say where.)
const CHECKED_ELSEWHERE: &[(&str, &str)] = &[];

/// Writes any authenticated user may make about themselves.
const OWN: &[(&str, &str)] = &[("DELETE", "/api/v1/sessions/current")];

struct Fixture {
    record: String,
    pid: String,
}

async fn matrix_fixture(app: &TestApp) -> anyhow::Result<Fixture> {
    // The person the rule below notifies.
    app.staff(&["zhangsan"]).await?;
    app.define(patient_def()).await?;
    let record = app
        .create("huanzhe", json!({"xingming": "张三", "age": 30}))
        .await?;
    let mut changed = patient_def();
    changed["name"] = json!("huanzhe");
    if let Some(fields) = changed["fields"].as_array_mut() {
        fields.push(json!({"name": "phone", "label": {"zh": "电话"}, "type": "text"}));
    }
    ok(app, "PUT", "/api/v1/data-items/huanzhe", changed).await?;
    ok(app, "POST", "/api/v1/services", leave_service("leave")).await?;
    ok(app, "POST", "/api/v1/services/leave/publish", json!({})).await?;
    let pcb = ok(
        app,
        "POST",
        "/api/v1/processes",
        json!({"service": "leave"}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/rules",
        json!({"name": "welcome", "label": {"zh": "欢迎"},
        "event": {"kind": "record.created", "item": "huanzhe"},
        "instructions": [{"op": "notify", "to": ["zhangsan"], "title": "新患者"}]}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/calendars",
        json!({"name": "organisation", "label": {"zh": "日历"},
        "utc_offset_minutes": 480, "weekly": {"mon": [["09:00", "18:00"]]}}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/departments",
        json!({"name": "menzhen", "label": {"zh": "门诊部"}}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/skills",
        json!({"name": "laser", "label": {"zh": "激光"}}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/resource-types",
        json!({"name": "room", "kind": "facility", "label": {"zh": "诊室"}}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/resources",
        json!({"id": "room-1", "type": "room", "label": {"zh": "一室"}}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/users",
        json!({"id": "zhangsan", "roles": [], "password": "zhangsans-password"}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/app-tokens",
        json!({"name": "oa", "services": ["leave"], "scopes": []}),
    )
    .await?;
    Ok(Fixture {
        record: record["id"].as_str().unwrap_or_default().to_owned(),
        pid: pcb["id"].to_string(),
    })
}

/// A concrete path for an OpenAPI path template: plausible values for its parameters.
fn concrete(template: &str, f: &Fixture) -> String {
    let mut out = Vec::new();
    let parts: Vec<&str> = template.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let previous = if i > 0 { parts[i - 1] } else { "" };
        let value = match (*part, previous) {
            ("{item}", _) => "huanzhe".to_owned(),
            ("{id}", "{item}") => f.record.clone(),
            ("{id}", "processes") => f.pid.clone(),
            ("{id}", "outbox") => "1".to_owned(),
            ("{id}", "users") => "zhangsan".to_owned(),
            ("{id}", _) => "1".to_owned(),
            ("{action}", _) => "suspend".to_owned(),
            ("{name}", "data-items") => "huanzhe".to_owned(),
            ("{name}", "services") => "leave".to_owned(),
            ("{name}", "rules") => "welcome".to_owned(),
            ("{name}", "calendars") => "organisation".to_owned(),
            ("{name}", "events") => "ping".to_owned(),
            ("{name}", "app-tokens") => "oa".to_owned(),
            ("{name}", _) => "leave".to_owned(),
            (p, _) if p.starts_with('{') => "1".to_owned(),
            (p, _) => p.to_owned(),
        };
        out.push(value);
    }
    out.join("/")
}

/// A body the route would accept from someone allowed to call it, so that only the
/// caller's grants stand in the way.
fn plausible_body(method: &str, template: &str) -> Value {
    match (method, template) {
        ("POST", "/api/v1/data-items") => json!({"name": "zhiliao", "label": {"zh": "治疗"},
            "fields": [{"name": "title", "label": {"zh": "名称"}, "type": "text"}]}),
        ("PUT", "/api/v1/data-items/{name}") => patient_def(),
        ("POST", "/api/v1/data-items/{name}/migration") => json!({"confirm_destructive": true}),
        ("POST", "/api/v1/records/{item}") => json!({"xingming": "李四", "age": 40}),
        ("PATCH", "/api/v1/records/{item}/{id}") => json!({"age": 41}),
        ("POST", "/api/v1/services") => leave_service("other"),
        ("POST", "/api/v1/processes") => json!({"service": "leave"}),
        ("POST", "/api/v1/rules") => json!({"name": "other", "label": {"zh": "别的"},
            "event": {"kind": "signal", "name": "ping"}, "instructions": []}),
        ("PUT", "/api/v1/rules/{name}") => json!({"label": {"zh": "改"},
            "event": {"kind": "signal", "name": "ping"}, "instructions": []}),
        ("POST", "/api/v1/calendars") => json!({"name": "other", "label": {"zh": "别的"},
            "utc_offset_minutes": 480, "weekly": {"tue": [["09:00", "18:00"]]}}),
        ("POST", "/api/v1/departments") => json!({"name": "other", "label": {"zh": "别的"}}),
        ("POST", "/api/v1/roles") => {
            json!({"name": "boss", "label": {"zh": "老板"}, "permissions": ["admin"]})
        }
        ("POST", "/api/v1/skills") => json!({"name": "other", "label": {"zh": "别的"}}),
        ("POST", "/api/v1/resource-types") => {
            json!({"name": "other", "kind": "facility", "label": {"zh": "别的"}})
        }
        ("POST", "/api/v1/resources") => {
            json!({"id": "room-2", "type": "room", "label": {"zh": "二室"}})
        }
        ("POST", "/api/v1/users") => {
            json!({"id": "nobody", "roles": ["boss"], "password": "escalated-1"})
        }
        ("PUT", "/api/v1/users/{id}/password") => json!({"password": "taken-over-1"}),
        ("POST", "/api/v1/app-tokens") => {
            json!({"name": "mine", "services": ["*"], "scopes": ["admin"]})
        }
        ("POST", "/api/v1/delegations") => json!({"user": "zhangsan", "deputy": "nobody",
            "from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}),
        _ => json!({}),
    }
}

/// What a user sees of the kernel's state, read as the administrator: compared before and
/// after the refused writes.
async fn digest(app: &TestApp, f: &Fixture) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for path in [
        "/api/v1/data-items".to_owned(),
        "/api/v1/data-items/huanzhe".to_owned(),
        "/api/v1/records/huanzhe".to_owned(),
        format!("/api/v1/records/huanzhe/{}/history", f.record),
        "/api/v1/services".to_owned(),
        "/api/v1/services/leave".to_owned(),
        "/api/v1/processes".to_owned(),
        format!("/api/v1/processes/{}", f.pid),
        "/api/v1/rules".to_owned(),
        "/api/v1/calendars".to_owned(),
        "/api/v1/users".to_owned(),
        "/api/v1/roles".to_owned(),
        "/api/v1/departments".to_owned(),
        "/api/v1/skills".to_owned(),
        "/api/v1/resource-types".to_owned(),
        "/api/v1/resources".to_owned(),
        "/api/v1/app-tokens".to_owned(),
        "/api/v1/events".to_owned(),
        "/api/v1/outbox".to_owned(),
        "/api/v1/queues".to_owned(),
        "/api/v1/audit".to_owned(),
    ] {
        let (s, b) = app.call("GET", &path, None).await?;
        anyhow::ensure!(s == StatusCode::OK, "{path}: {s} {b}");
        out.insert(path, b);
    }
    // The password of someone else must still be theirs.
    out.insert(
        "zhangsan can log in".into(),
        json!(app.login("zhangsan", "zhangsans-password").await.is_ok()),
    );
    Ok(out)
}

#[tokio::test]
async fn every_route_refuses_no_credentials_and_every_write_refuses_a_user_without_grants()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let f = matrix_fixture(&app).await?;
        let nobody = app.user_with("nobody", &[]).await?;
        let (s, doc) = app.call_as(As::Bearer(BOOTSTRAP), "GET", "/api/v1/openapi.json", None).await?;
        assert_eq!(s, StatusCode::OK);
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.len() > 40, "{} paths", paths.len());
        let mut routes = Vec::new();
        for (template, item) in &paths {
            for method in item.as_object().into_iter().flat_map(|o| o.keys()) {
                routes.push((method.to_uppercase(), template.clone()));
            }
        }

        // 1. No credentials: 401 everywhere but health, login, the API's description and
        // its reference page (public, issue 12). Every failure is collected, so one run
        // names every route that needs work.
        let mut failures = Vec::new();
        let mut checked = 0;
        for (method, template) in &routes {
            if template == "/healthz"
                || template == "/api/v1/openapi.json"
                || template.starts_with("/api/v1/docs")
                || (method == "POST" && template == "/api/v1/sessions")
            {
                continue;
            }
            let path = concrete(template, &f);
            let body = (method != "GET").then(|| plausible_body(method, template));
            let (s, b) = app.call_as(As::Nobody, method, &path, body).await?;
            if s != StatusCode::UNAUTHORIZED || b["error"]["code"] != "unauthorized" {
                failures.push(format!("{method} {path} without credentials: {s} {b}"));
            }
            checked += 1;
        }
        assert!(checked > 40, "{checked}");

        // 2. A user without grants: every write refused, nothing changed.
        let before = digest(&app, &f).await?;
        let mut writes = 0;
        for (method, template) in &routes {
            let key = (method.as_str(), template.as_str());
            if method == "GET"
                || (method == "POST" && template == "/api/v1/sessions")
                || OWN.contains(&key)
                || CHECKED_ELSEWHERE.contains(&key)
            {
                continue;
            }
            let path = concrete(template, &f);
            let (s, b) = app
                .call_as(As::Bearer(&nobody), method, &path, Some(plausible_body(method, template)))
                .await?;
            // A 403 says which grant is missing.
            let message = b["error"]["message"].as_str().unwrap_or_default();
            let names_grant = ["admin", "design", "organisation", "monitor", "records:", "services:", "bookings:", "money:", "stock:"]
                .iter()
                .any(|g| message.contains(g));
            let refused = s == StatusCode::NOT_FOUND
                || (s == StatusCode::FORBIDDEN && b["error"]["code"] == "forbidden" && names_grant);
            if !refused {
                failures.push(format!("{method} {path} by a user without grants: {s} {b}"));
            }
            writes += 1;
        }
        assert!(writes >= 25, "{writes} writes checked");
        let after = digest(&app, &f).await?;
        for (path, was) in &before {
            if Some(was) != after.get(path) {
                failures.push(format!("{path} changed: {was} → {:?}", after.get(path)));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // 3. An app token outside its services, acting for a user who may do anything:
        // every write refused (the fixture's process and service are `leave`'s; the token
        // holds only `crm` and the service scopes), the process hidden, nothing changed.
        ok(&app, "POST", "/api/v1/roles", json!({"name": "chief", "label": {"zh": "主任"}, "permissions": ["admin"]})).await?;
        ok(&app, "POST", "/api/v1/users", json!({"id": "boss", "roles": ["chief"], "password": "boss-password-1"})).await?;
        let (s, token) = app
            .call("POST", "/api/v1/app-tokens", Some(json!({"name": "crm_app", "services": ["crm"], "scopes": ["services:*:*"]})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{token}");
        let secret = token["secret"].as_str().unwrap_or_default().to_owned();
        let crm_app = As::App { app: "crm_app", secret: &secret, user: "boss" };
        let before = digest(&app, &f).await?;
        let mut tried = 0;
        for (method, template) in &routes {
            let key = (method.as_str(), template.as_str());
            let about_leave = template.contains("/processes/{id}") || template.contains("/services/{name}");
            if (method == "GET" && !about_leave)
                || (method == "POST" && template == "/api/v1/sessions")
                || OWN.contains(&key)
            {
                continue;
            }
            let path = concrete(template, &f);
            let body = (method != "GET").then(|| plausible_body(method, template));
            let (s, b) = app.call_as(crm_app, method, &path, body).await?;
            if !(s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND) {
                failures.push(format!("{method} {path} by an app token outside its services: {s} {b}"));
            }
            tried += 1;
        }
        assert!(tried >= 30, "{tried} routes tried with the app token");
        let (s, listed) = app.call_as(crm_app, "GET", "/api/v1/processes", None).await?;
        assert_eq!(s, StatusCode::OK, "{listed}");
        assert!(
            !listed.to_string().contains("\"leave\""),
            "another service's processes are not listed: {listed}"
        );
        let after = digest(&app, &f).await?;
        for (path, was) in &before {
            // Nothing may change, the audit log included.
            if Some(was) != after.get(path) {
                failures.push(format!("{path} changed by the app token: {was} → {:?}", after.get(path)));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // Reads of what needs a grant are refused too.
        for path in ["/api/v1/records/huanzhe", "/api/v1/events", "/api/v1/outbox", "/api/v1/stats/services", "/api/v1/rules/welcome/runs", "/api/v1/app-tokens", "/api/v1/audit"] {
            let (s, b) = app.call_as(As::Bearer(&nobody), "GET", path, None).await?;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        }
        // An app token for `leave` reaches no other service.
        let (s, token) = app
            .call("POST", "/api/v1/app-tokens", Some(json!({"name": "leave_app", "services": ["leave"], "scopes": ["design", "services:*:*"]})))
            .await?;
        assert_eq!(s, StatusCode::CREATED);
        ok(&app, "POST", "/api/v1/roles", json!({"name": "role_nobody", "label": {"zh": "x"}, "permissions": ["design", "services:*:*"]})).await?;
        let secret = token["secret"].as_str().unwrap_or_default().to_owned();
        let leave_app = As::App { app: "leave_app", secret: &secret, user: "nobody" };
        for (method, path, body) in [
            ("GET", "/api/v1/services/other", None),
            ("POST", "/api/v1/services/other/publish", Some(json!({}))),
            ("POST", "/api/v1/services", Some(leave_service("other"))),
        ] {
            let (s, b) = app.call_as(leave_app, method, path, body).await?;
            assert!(s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND, "{method} {path}: {s} {b}");
        }
        let (s, b) = app.call_as(leave_app, "POST", "/api/v1/services", Some(leave_service("leave"))).await?;
        assert_eq!(s, StatusCode::CREATED, "its own service, with design in scope: {b}");
        Ok(())
    })
    .await
}

/// Every route the router serves is in the OpenAPI document (so the matrix above covers
/// it): the routes are read from `api/mod.rs` itself.
#[tokio::test]
async fn every_route_of_the_router_is_in_the_openapi_document() -> anyhow::Result<()> {
    let source = include_str!("../src/lib.rs");
    let doc = serde_json::to_value(<erpos_http::ApiDoc as utoipa::OpenApi>::openapi())?;
    let mut missing = Vec::new();
    let mut rest = source;
    let mut seen = 0;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The route's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &rest[..end];
        let Some(path) = args.split('"').nth(1) else {
            continue;
        };
        let full = if path == "/healthz" {
            path.to_owned()
        } else {
            format!("/api/v1{path}")
        };
        seen += 1;
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = args.contains(&format!("{method}("));
            // A false match (a handler whose name ends in `get`) only makes this stricter.
            if called && doc["paths"][&full][method].is_null() {
                missing.push(format!("{} {full}", method.to_uppercase()));
            }
        }
    }
    assert!(seen > 30, "{seen} routes read");
    assert!(
        missing.is_empty(),
        "routes without #[utoipa::path]: {missing:?}"
    );
    Ok(())
}
