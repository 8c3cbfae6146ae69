//! Issue 11's authentication and authorization holes, each with the request that found it,
//! on every backend: an organisation user rewriting the administrator role or staffing an
//! approval chain it has no part in (and the last administrator kept); a WebSocket that
//! went on streaming after logout, role removal and session expiry; a resume with
//! `since: 0` that read every process's history; lockouts aimed at another user from any
//! address; failed logins keeping whole user names; "unknown app" told apart from "bad
//! signature"; and `Authorization: BEARER` refused.
//!
//! The matrix rows of the issue (role replacement by an organisation user, the WebSocket
//! after logout) are here too, named `matrix_…`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{As, TestApp, each_backend};
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt as _;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ok(app: &TestApp, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (s, b) = app.call(method, path, Some(body)).await?;
    anyhow::ensure!(s.is_success(), "{method} {path}: {s} {b}");
    Ok(b)
}

/// The clinic's leave request, cut down: every way an operator rule can pick approvers —
/// the creator's leader, a department (人事部), a skill, a role (院长).
fn leave_service() -> Value {
    json!({
        "name": "leave", "label": {"zh": "请假申请", "en": "Leave request"},
        "steps": [
            {"name": "apply", "kind": "human", "label": {"zh": "填写申请"}, "operators": {"creator": true}},
            {"name": "leader", "kind": "human", "label": {"zh": "主管审批"}, "operators": {"creator_leader": true}},
            {"name": "hr", "kind": "human", "label": {"zh": "人事审核"}, "operators": {"department": "renshi"}},
            {"name": "doctor", "kind": "human", "label": {"zh": "医生意见"}, "operators": {"skill": "laser"}},
            {"name": "president", "kind": "human", "label": {"zh": "院长审批"}, "operators": {"role": "president"}},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "apply", "to": "leader"}, {"from": "leader", "to": "hr"},
            {"from": "hr", "to": "doctor"}, {"from": "doctor", "to": "president"},
            {"from": "president", "to": "end"}]
    })
}

/// The leave service published, and the clinic's organisation around it: roles
/// `administrator` (admin), `president` (no permissions: it approves by membership),
/// `employee`; departments 医院 > 人事部; the skill laser; 陈院长 the president.
async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    for role in [
        json!({"name": "administrator", "label": {"zh": "系统管理员"}, "permissions": ["admin"]}),
        json!({"name": "president", "label": {"zh": "院长"}, "permissions": []}),
        json!({"name": "employee", "label": {"zh": "员工"}, "permissions": ["services:leave:start"]}),
    ] {
        ok(app, "POST", "/api/v1/roles", role).await?;
    }
    ok(
        app,
        "POST",
        "/api/v1/departments",
        json!({"name": "yiyuan", "label": {"zh": "医院"}}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/departments",
        json!({"name": "renshi", "label": {"zh": "人事部"}, "parent": "yiyuan"}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/departments",
        json!({"name": "pifuke", "label": {"zh": "皮肤科"}}),
    )
    .await?;
    ok(
        app,
        "POST",
        "/api/v1/skills",
        json!({"name": "laser", "label": {"zh": "激光"}}),
    )
    .await?;
    ok(app, "POST", "/api/v1/services", leave_service()).await?;
    ok(app, "POST", "/api/v1/services/leave/publish", json!({})).await?;
    ok(
        app,
        "POST",
        "/api/v1/users",
        json!({"id": "chenzong", "roles": ["president", "employee"], "password": "president-pass"}),
    )
    .await?;
    Ok(())
}

async fn role_permissions(app: &TestApp, name: &str) -> anyhow::Result<Value> {
    let (_, roles) = app.call("GET", "/api/v1/roles", None).await?;
    Ok(roles["items"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .map(|r| r.get("permissions").cloned().unwrap_or(json!([])))
        .unwrap_or(Value::Null))
}

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// Item 6: roles, approvals and the last administrator.

#[tokio::test]
async fn matrix_an_organisation_user_cannot_rewrite_the_administrator_role() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let boss = app.user_with("boss", &[]).await?;
        ok(
            &app,
            "POST",
            "/api/v1/users",
            json!({"id": "boss", "roles": ["administrator"]}),
        )
        .await?;
        let hr = app.user_with("hr", &["organisation"]).await?;
        // The probe: organisation alone rewrote administrator to ["organisation"].
        let (s, b) = app
            .call_as(
                As::Bearer(&hr),
                "POST",
                "/api/v1/roles",
                Some(json!({"name": "administrator", "label": {"zh": "系统管理员"}, "permissions": ["organisation"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(message(&b).contains("'admin'"), "names what it takes away: {b}");
        assert_eq!(role_permissions(&app, "administrator").await?, json!(["admin"]));
        let (_, me) = app
            .call_as(As::Bearer(&boss), "GET", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(me["grants"], json!(["admin"]), "the administrator is one still: {me}");
        // Nor may it take away a grant it holds none of from a role it could otherwise edit.
        ok(
            &app,
            "POST",
            "/api/v1/roles",
            json!({"name": "reception", "label": {"zh": "前台"}, "permissions": ["organisation", "records:*:read"]}),
        )
        .await?;
        let (s, b) = app
            .call_as(
                As::Bearer(&hr),
                "POST",
                "/api/v1/roles",
                Some(json!({"name": "reception", "label": {"zh": "前台"}, "permissions": ["organisation"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "records:*:read is not hr's to take away: {b}");
        assert!(message(&b).contains("records:*:read"), "{b}");
        // What it holds it may still give and take.
        let (s, b) = app
            .call_as(
                As::Bearer(&hr),
                "POST",
                "/api/v1/roles",
                Some(json!({"name": "clerk", "label": {"zh": "文员"}, "permissions": ["organisation"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");

        // Even an administrator cannot leave the installation without one.
        let (s, b) = app
            .call_as(
                As::Bearer(&boss),
                "POST",
                "/api/v1/roles",
                Some(json!({"name": "administrator", "label": {"zh": "系统管理员"}, "permissions": ["organisation"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "last_administrator", "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/permissions", "{b}");
        assert!(message(&b).contains("'administrator'"), "{b}");
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"id": "boss", "roles": []})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "nor demote the last administrator: {b}");
        assert_eq!(b["error"]["details"][0]["path"], "/roles", "{b}");
        // With a second administrator who can log in, the first may step down.
        ok(
            &app,
            "POST",
            "/api/v1/users",
            json!({"id": "boss2", "roles": ["administrator"], "password": "second-admin"}),
        )
        .await?;
        let (s, b) = app
            .call_as(
                As::Bearer(&boss),
                "POST",
                "/api/v1/users",
                Some(json!({"id": "boss", "roles": []})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(role_permissions(&app, "administrator").await?, json!(["admin"]));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn approving_memberships_are_staffed_only_by_those_who_hold_the_approval()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let hr = app
            .user_with("hr", &["organisation", "services:leave:start"])
            .await?;
        let as_hr = |method: &'static str, path: &'static str, body: Value| {
            let (app, hr) = (&app, hr.clone());
            async move { app.call_as(As::Bearer(&hr), method, path, Some(body)).await }
        };
        // president carries no permission, but its members approve every long leave.
        let (s, b) = as_hr(
            "POST",
            "/api/v1/users",
            json!({"id": "hr", "roles": ["role_hr", "president"]}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "no adding oneself to an approval role: {b}");
        let (s, b) = as_hr(
            "POST",
            "/api/v1/users",
            json!({"id": "mole", "roles": ["president"], "password": "mole-password"}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "nor anyone else: {b}");
        assert!(message(&b).contains("services:leave:handle"), "{b}");
        assert!(message(&b).contains("role 'president'"), "{b}");
        let (s, b) = as_hr(
            "POST",
            "/api/v1/users",
            json!({"id": "chenzong", "roles": ["employee"]}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "nor take the president out: {b}");
        // A skill, a department and leading a department a step picks by are approvals too.
        for (body, what) in [
            (json!({"id": "zhoumin", "skills": ["laser"]}), "skill 'laser'"),
            (json!({"id": "zhoumin", "department": "renshi"}), "department 'renshi'"),
        ] {
            let (s, b) = as_hr("POST", "/api/v1/users", body).await?;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
            assert!(message(&b).contains(what), "{what}: {b}");
        }
        let (s, b) = as_hr(
            "POST",
            "/api/v1/departments",
            json!({"name": "pifuke", "label": {"zh": "皮肤科"}, "leader": "chenzong"}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        // Moving a department under 人事部 makes its members approvers there.
        let (s, b) = as_hr(
            "POST",
            "/api/v1/departments",
            json!({"name": "pifuke", "label": {"zh": "皮肤科"}, "parent": "renshi"}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        // Nobody edits their own entitlements, even within their grants.
        let (s, b) = as_hr(
            "POST",
            "/api/v1/users",
            json!({"id": "hr", "roles": ["role_hr", "employee"]}),
        )
        .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        // Ordinary work goes on: other users, other departments, one's own capacity.
        for body in [
            json!({"id": "xiaoli", "roles": ["employee"], "department": "pifuke", "password": "xiaoli-pass"}),
            json!({"id": "hr", "roles": ["role_hr"], "capacity": 3}),
        ] {
            let (s, b) = as_hr("POST", "/api/v1/users", body).await?;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        let (s, b) = as_hr(
            "POST",
            "/api/v1/departments",
            json!({"name": "yaofang", "label": {"zh": "药房"}, "parent": "yiyuan"}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (_, users) = app.call("GET", "/api/v1/users", None).await?;
        let ids: Vec<&str> = users["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["id"].as_str())
            .collect();
        assert!(!ids.contains(&"mole") && !ids.contains(&"zhoumin"), "{ids:?}");
        // Who holds the approval may staff it (the process owner, an administrator).
        let owner = app
            .user_with("leave_owner", &["organisation", "services:leave:handle"])
            .await?;
        let (s, b) = app
            .call_as(
                As::Bearer(&owner),
                "POST",
                "/api/v1/users",
                Some(json!({"id": "deputy", "roles": ["president"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Items 12 and 16: the WebSocket.

async fn serve_bare(app: &TestApp) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let router = app.bare.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, server))
}

async fn connect(addr: &str, token: &str, topic: Value) -> anyhow::Result<Socket> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?access_token={token}"))
            .await?;
    ws.send(Message::Text(topic.to_string().into())).await?;
    Ok(ws)
}

/// The next text message as JSON, or the close frame as `{"close": code, "reason": …}`.
async fn next(ws: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the stream ended without a close frame"))??;
        match msg {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
            Message::Close(frame) => {
                return Ok(match frame {
                    Some(f) => json!({"close": u16::from(f.code), "reason": f.reason.as_str()}),
                    None => json!({"close": null}),
                });
            }
            _ => {}
        }
    }
}

/// A leave service any user may start, without approvals (the WebSocket tests' traffic).
async fn simple_leave(app: &TestApp) -> anyhow::Result<()> {
    ok(
        app,
        "POST",
        "/api/v1/services",
        json!({"name": "leave", "label": {"zh": "请假申请"},
            "steps": [{"name": "apply", "kind": "human", "label": {"zh": "填写申请"}, "operators": {"creator": true}},
                      {"name": "end", "kind": "end"}],
            "transitions": [{"from": "apply", "to": "end"}]}),
    )
    .await?;
    ok(app, "POST", "/api/v1/services/leave/publish", json!({})).await?;
    Ok(())
}

#[tokio::test]
async fn matrix_the_websocket_closes_at_logout_expiry_and_follows_role_changes()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        simple_leave(&app).await?;
        let (addr, server) = serve_bare(&app).await?;
        let topic = json!({"subscribe": "service", "name": "leave"});

        // Logout: the open socket ends with it.
        let token = app.user_with("watcher", &["services:leave:view"]).await?;
        let mut ws = connect(&addr, &token, topic.clone()).await?;
        assert_eq!(next(&mut ws).await?["type"], "snapshot");
        let (s, _) = app
            .call_as(As::Bearer(&token), "DELETE", "/api/v1/sessions/current", None)
            .await?;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let closed = next(&mut ws).await?;
        assert_eq!(closed, json!({"close": 1008, "reason": "session ended"}), "logout");

        // A password reset ends the user's sessions, and their sockets.
        let token = app.login("watcher", "password-of-watcher").await?;
        let mut ws = connect(&addr, &token, topic.clone()).await?;
        assert_eq!(next(&mut ws).await?["type"], "snapshot");
        ok(
            &app,
            "PUT",
            "/api/v1/users/watcher/password",
            json!({"password": "a-new-password"}),
        )
        .await?;
        assert_eq!(next(&mut ws).await?["close"], 1008, "password reset");

        // Expiry: the first change after the session's 12 hours closes it instead.
        let token = app.login("watcher", "a-new-password").await?;
        let mut ws = connect(&addr, &token, topic.clone()).await?;
        assert_eq!(next(&mut ws).await?["type"], "snapshot");
        app.clock.advance_ms(12 * 3600 * 1000 + 1000);
        ok(&app, "POST", "/api/v1/processes", json!({"service": "leave"})).await?;
        assert_eq!(
            next(&mut ws).await?,
            json!({"close": 1008, "reason": "session ended"}),
            "expired"
        );

        // A role change: what is streamed follows the new grants at once.
        let token = app
            .user_with("nurse", &["services:leave:view", "services:leave:start"])
            .await?;
        let mut ws = connect(&addr, &token, topic.clone()).await?;
        assert_eq!(next(&mut ws).await?["type"], "snapshot");
        ok(
            &app,
            "POST",
            "/api/v1/roles",
            json!({"name": "role_nurse", "label": {"zh": "护士"}, "permissions": ["services:leave:start"]}),
        )
        .await?;
        let theirs = ok(&app, "POST", "/api/v1/processes", json!({"service": "leave"})).await?;
        let (s, own) = app
            .call_as(
                As::Bearer(&token),
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "leave"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{own}");
        let first = next(&mut ws).await?;
        assert_eq!(
            first["process"], own["id"],
            "without the view grant someone else's process is no longer streamed: {first}"
        );
        assert_ne!(first["process"], theirs["id"]);

        // The queues without monitor: closed.
        let token = app.user_with("monitor", &["monitor"]).await?;
        let mut ws = connect(&addr, &token, json!({"subscribe": "queues"})).await?;
        assert_eq!(next(&mut ws).await?["type"], "snapshot");
        ok(
            &app,
            "POST",
            "/api/v1/roles",
            json!({"name": "role_monitor", "label": {"zh": "监控"}, "permissions": []}),
        )
        .await?;
        let closed = next(&mut ws).await?;
        assert_eq!(closed["close"], 1008, "{closed}");
        assert!(
            closed["reason"].as_str().unwrap_or_default().contains("monitor"),
            "{closed}"
        );
        server.abort();
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_socket_opened_with_an_app_signature_closes_when_the_token_is_revoked()
-> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    each_backend(|app| async move {
        simple_leave(&app).await?;
        app.user_with("xiaoli", &["services:leave:view"]).await?;
        let created = ok(
            &app,
            "POST",
            "/api/v1/app-tokens",
            json!({"name": "oa", "services": ["leave"], "scopes": ["services:leave:view"]}),
        )
        .await?;
        let secret = created["secret"].as_str().unwrap_or_default().to_owned();
        let (addr, server) = serve_bare(&app).await?;
        let mut req = format!("ws://{addr}/api/v1/ws").into_client_request()?;
        let oa = As::App {
            app: "oa",
            secret: &secret,
            user: "xiaoli",
        };
        for (k, v) in app.credentials(oa, "GET", "/api/v1/ws", b"") {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes())?,
                v.parse()?,
            );
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        ws.send(Message::Text(
            json!({"subscribe": "service", "name": "leave"})
                .to_string()
                .into(),
        ))
        .await?;
        assert_eq!(next(&mut ws).await?["type"], "snapshot");
        let (s, _) = app.call("DELETE", "/api/v1/app-tokens/oa", None).await?;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(
            next(&mut ws).await?,
            json!({"close": 1008, "reason": "session ended"})
        );
        server.abort();
        Ok(())
    })
    .await
}

/// Writes a row into the history directly (what no caller may see, or far ahead), then
/// restarts so that the kernel numbers its changes after it.
async fn plant_history(app: TestApp, pid: u64, gseq: u64) -> anyhow::Result<TestApp> {
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("INSERT INTO process_history (pid, seq, at_ms, actor, from_state, to_state, reason, pcb, gseq) VALUES (")
        .int(i64::try_from(pid)?)
        .push(", 1, 0, 'planted', 'NEW', 'READY', 'planted', ")
        .json(&json!({"not": "a process"}))
        .push(", ")
        .int(i64::try_from(gseq)?)
        .push(")");
    app.kernel.db.write_atomically(vec![sql]).await?;
    app.restart().await
}

async fn last_seq(addr: &str, token: &str) -> anyhow::Result<u64> {
    let mut ws = connect(
        addr,
        token,
        json!({"subscribe": "service", "name": "leave"}),
    )
    .await?;
    let snapshot = next(&mut ws).await?;
    snapshot["seq"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("{snapshot}"))
}

#[tokio::test]
async fn a_resume_reads_only_what_the_caller_may_see_within_a_window() -> anyhow::Result<()> {
    each_backend(|app| async move {
        simple_leave(&app).await?;
        let token = app.user_with("xiaoli", &["services:leave:start"]).await?;
        for _ in 0..3 {
            ok(
                &app,
                "POST",
                "/api/v1/processes",
                json!({"service": "leave"}),
            )
            .await?;
        }
        // A row of a process she may not see, which cannot even be read: a resume that
        // loaded every process's history before filtering fails on it.
        let (addr, server) = serve_bare(&app).await?;
        let at = last_seq(&addr, &token).await?;
        server.abort();
        let app = plant_history(app, 424_242, at + 1).await?;
        let (addr, server) = serve_bare(&app).await?;
        let mut ws = connect(
            &addr,
            &token,
            json!({"subscribe": "service", "name": "leave", "since": 0}),
        )
        .await?;
        let resume = next(&mut ws).await?;
        assert_eq!(resume["type"], "resume", "{resume}");
        assert_eq!(resume["to"], at + 1, "{resume}");
        let (s, own) = app
            .call_as(
                As::Bearer(&token),
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "leave"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{own}");
        let change = next(&mut ws).await?;
        assert_eq!(
            change["type"], "change",
            "nothing of the others was read: {change}"
        );
        assert_eq!(change["process"], own["id"], "{change}");
        server.abort();

        // Further back than the window: refused, with what to do instead.
        let app = plant_history(app, 424_243, at + 100 + erpos_http::RESUME_WINDOW).await?;
        let (addr, server) = serve_bare(&app).await?;
        let mut ws = connect(
            &addr,
            &token,
            json!({"subscribe": "service", "name": "leave", "since": at}),
        )
        .await?;
        let refused = next(&mut ws).await?;
        assert_eq!(refused["error"]["code"], "resume_too_old", "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("without since"),
            "{refused}"
        );
        assert_eq!(
            refused["error"]["details"][0]["path"], "/since",
            "{refused}"
        );
        assert_eq!(next(&mut ws).await?["close"], 4001);
        let now = last_seq(&addr, &token).await?;
        let mut ws = connect(
            &addr,
            &token,
            json!({"subscribe": "service", "name": "leave", "since": now - 1}),
        )
        .await?;
        assert_eq!(next(&mut ws).await?["type"], "resume", "within the window");
        server.abort();
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_long_resume_comes_in_pages_without_gaps() -> anyhow::Result<()> {
    each_backend(|app| async move {
        simple_leave(&app).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let router = app.router.clone();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws")).await?;
        ws.send(Message::Text(
            json!({"subscribe": "queues"}).to_string().into(),
        ))
        .await?;
        let from = next(&mut ws).await?["seq"].as_u64().unwrap_or_default();
        ws.close(None).await?;
        // More changes than one page holds (each start is two or three).
        for _ in 0..260 {
            ok(
                &app,
                "POST",
                "/api/v1/processes",
                json!({"service": "leave"}),
            )
            .await?;
        }
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws")).await?;
        ws.send(Message::Text(
            json!({"subscribe": "queues", "since": from})
                .to_string()
                .into(),
        ))
        .await?;
        let resume = next(&mut ws).await?;
        assert_eq!(resume["type"], "resume", "{resume}");
        let upto = resume["to"].as_u64().unwrap_or_default();
        assert!(
            upto - from > erpos_http::RESUME_PAGE as u64,
            "more than a page: {resume}"
        );
        let mut expect = from + 1;
        while expect <= upto {
            let c = next(&mut ws).await?;
            assert_eq!(c["seq"], expect, "in order, no gaps: {c}");
            expect += 1;
        }
        server.abort();
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Items 13 and 14: login throttling.

async fn login_from(
    app: &TestApp,
    from: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = Request::post("/api/v1/sessions")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"user": user, "password": password}).to_string(),
        ))?;
    req.extensions_mut()
        .insert(ConnectInfo(from.parse::<SocketAddr>()?));
    let res = app.bare.clone().oneshot(req).await?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok((status, body))
}

#[tokio::test]
async fn nobody_can_lock_another_user_out() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.user_with("admin_li", &["admin"]).await?;
        let right = "password-of-admin_li";
        let (home, attacker) = ("198.51.100.7:50000", "203.0.113.9:40000");
        let (s, b) = login_from(&app, home, "admin_li", right).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        // The probe: five bad logins a minute, for good.
        let mut refused = 0;
        for _ in 0..12 {
            let (s, _) = login_from(&app, attacker, "admin_li", "guess").await?;
            if s == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            } else {
                assert_eq!(s, StatusCode::UNAUTHORIZED);
            }
        }
        assert_eq!(refused, 7, "the guesser is locked out after five");
        let (s, b) = login_from(&app, home, "admin_li", right).await?;
        assert_eq!(s, StatusCode::CREATED, "the owner is not: {b}");
        // Nor from an address never used before, nor (once) from the guesser's own port.
        let (s, b) = login_from(&app, "192.0.2.44:1234", "admin_li", right).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, _) = login_from(&app, "203.0.113.9:40001", "admin_li", right).await?;
        assert_eq!(
            s,
            StatusCode::TOO_MANY_REQUESTS,
            "the same client, another port"
        );

        // Many addresses guessing one account slow it from unusual addresses, no more.
        for i in 10..15 {
            let (s, _) =
                login_from(&app, &format!("203.0.113.{i}:40000"), "admin_li", "guess").await?;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
        let (s, _) = login_from(&app, "192.0.2.50:1", "admin_li", "guess").await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "one attempt let through");
        let (s, b) = login_from(&app, "192.0.2.51:1", "admin_li", right).await?;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("retry in 5 s"),
            "{b}"
        );
        for usual in [home, "192.0.2.44:9"] {
            let (s, b) = login_from(&app, usual, "admin_li", right).await?;
            assert_eq!(
                s,
                StatusCode::CREATED,
                "usual addresses are never slowed: {b}"
            );
        }
        app.clock.advance_ms(5_000);
        let (s, b) = login_from(&app, "192.0.2.51:1", "admin_li", right).await?;
        assert_eq!(s, StatusCode::CREATED, "slowed, not locked: {b}");

        // One address spraying names is refused, but for the accounts known there.
        ok(
            &app,
            "POST",
            "/api/v1/users",
            json!({"id": "zhangsan", "roles": [], "password": "zhangsan-pass"}),
        )
        .await?;
        let office = "192.0.2.200:1";
        let (s, _) = login_from(&app, office, "zhangsan", "zhangsan-pass").await?;
        assert_eq!(s, StatusCode::CREATED);
        for i in 0..30 {
            let (s, _) = login_from(&app, office, &format!("guess_{i}"), "guess").await?;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
        let (s, _) = login_from(&app, office, "admin_li", right).await?;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "a spraying address");
        let (s, b) = login_from(&app, office, "zhangsan", "zhangsan-pass").await?;
        assert_eq!(
            s,
            StatusCode::CREATED,
            "a colleague behind the same address: {b}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_server_counts_logins_by_the_peer_address() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    each_backend(|app| async move {
        app.user_with("lisi", &[]).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(erpos_http::server::serve(
            app.kernel.clone(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let login = |password: &'static str| async move {
            let body = json!({"user": "lisi", "password": password}).to_string();
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream
                .write_all(
                    format!(
                        "POST /api/v1/sessions HTTP/1.1\r\nhost: erpos\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            Ok::<String, anyhow::Error>(answer)
        };
        for _ in 0..5 {
            assert!(login("wrong-one").await?.starts_with("HTTP/1.1 401"));
        }
        assert!(login("password-of-lisi").await?.starts_with("HTTP/1.1 429"), "locked from 127.0.0.1");
        // The same user from elsewhere (here: a caller the server knows no address of).
        let (s, b) = app
            .call_as(
                As::Nobody,
                "POST",
                "/api/v1/sessions",
                Some(json!({"user": "lisi", "password": "password-of-lisi"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let _ = stop.send(());
        server.await??;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_login_name_longer_than_any_user_is_refused_like_a_wrong_one_and_never_kept()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        app.user_with("lisi", &[]).await?;
        let (s, wrong) = login_from(&app, "192.0.2.1:1", "lisi", "wrong-password").await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // The probe sent names as long as the body allows; any name longer than a user id
        // can be is refused the same way (and other limits may refuse megabytes earlier).
        let long = "李".repeat(1_000);
        for i in 0..100 {
            let (s, b) = login_from(&app, &format!("198.51.100.{i}:1"), &long, "x").await?;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
            assert_eq!(b, wrong, "the same answer as any wrong login");
        }
        let kept = app.kernel.auth.throttle_footprint();
        assert!(kept.name_bytes < 64, "no long name is kept: {kept:?}");
        // Names of plausible length are kept, but only so many.
        let name = "x".repeat(erpos_kernel::auth::throttle::MAX_LOGIN_NAME_BYTES);
        let (s, _) = login_from(&app, "192.0.2.9:1", &name, "x").await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let kept = app.kernel.auth.throttle_footprint();
        assert!(kept.name_bytes <= 3 * name.len() + 64, "{kept:?}");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Items 21 and 23: what a caller learns before authenticating, and the scheme's case.

#[tokio::test]
async fn an_unknown_app_and_a_bad_signature_get_the_same_answer() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.user_with("zhangsan", &["records:*:read"]).await?;
        let created = ok(
            &app,
            "POST",
            "/api/v1/app-tokens",
            json!({"name": "oa", "services": ["*"], "scopes": ["records:*:read"]}),
        )
        .await?;
        let secret = created["secret"].as_str().unwrap_or_default().to_owned();
        ok(
            &app,
            "POST",
            "/api/v1/app-tokens",
            json!({"name": "old_oa", "services": ["*"], "scopes": []}),
        )
        .await?;
        let (s, _) = app
            .call("DELETE", "/api/v1/app-tokens/old_oa", None)
            .await?;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let call = |name: &'static str, secret: String| {
            let app = &app;
            async move {
                app.call_as(
                    As::App {
                        app: name,
                        secret: &secret,
                        user: "zhangsan",
                    },
                    "GET",
                    "/api/v1/data-items",
                    None,
                )
                .await
            }
        };
        let (s, unknown) = call("crm", secret.clone()).await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, bad) = call("oa", "guessed-secret".into()).await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, revoked) = call("old_oa", secret.clone()).await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown, bad, "an unknown app looks like a bad signature");
        assert_eq!(revoked, bad, "so does a revoked one");
        let (s, b) = call("oa", secret.clone()).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let token = app.user_with("zhangsan", &[]).await?;
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let (s, b) = app
                .call_raw(
                    "GET",
                    "/api/v1/sessions/current",
                    None,
                    &[("authorization".to_owned(), format!("{scheme} {token}"))],
                )
                .await?;
            assert_eq!(s, StatusCode::OK, "{scheme}: {b}");
            assert_eq!(b["user"], "zhangsan");
        }
        for bad in [
            format!("Basic {token}"),
            format!("Bearer{token}"),
            "BEARER ".to_owned(),
        ] {
            let (s, _) = app
                .call_raw(
                    "GET",
                    "/api/v1/sessions/current",
                    None,
                    &[("authorization".to_owned(), bad.clone())],
                )
                .await?;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
        }
        Ok(())
    })
    .await
}
