//! The application layer (`erpos_kernel::app`): every audited change writes its audit row
//! in its own transaction, and a leave request is filed — record, start and first
//! decision — in one request, all or nothing. Over HTTP, on SQLite and PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

/// The audit log, oldest first, as `actor action subject` lines.
async fn audit_lines(app: &TestApp) -> anyhow::Result<Vec<String>> {
    let (s, log) = app.call("GET", "/api/v1/audit?limit=500", None).await?;
    anyhow::ensure!(s == StatusCode::OK, "{log}");
    let mut lines: Vec<String> = log["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{} {} {}",
                e["actor"].as_str().unwrap_or_default(),
                e["action"].as_str().unwrap_or_default(),
                e["subject"].as_str().unwrap_or_default()
            )
        })
        .collect();
    lines.reverse();
    Ok(lines)
}

/// Makes the database refuse every new audit row (a trigger), or allow them again.
async fn refuse_audit_rows(app: &TestApp, refuse: bool) -> anyhow::Result<()> {
    let statements: &[&str] = match (app.backend, refuse) {
        ("sqlite", true) => &[
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit rows refused by the test'); END",
        ],
        ("sqlite", false) => &["DROP TRIGGER refuse_audit"],
        (_, true) => &[
            "CREATE OR REPLACE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit rows refused by the test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ],
        (_, false) => &["DROP TRIGGER refuse_audit ON audit_log"],
    };
    let mut tx = app.kernel.db.begin().await?;
    for s in statements {
        tx.execute_ddl(s).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One audited change of each kind, as `(method, path, body, "action subject")`: the
/// clinic's analyst and administrator at work.
fn audited_changes() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    vec![
        (
            "POST",
            "/api/v1/data-items",
            json!({"label": {"zh": "治疗"}, "fields": [{"label": {"zh": "项目"}, "type": "text"}]}),
            "data_item.create zhiliao",
        ),
        (
            "POST",
            "/api/v1/calendars",
            json!({"name": "clinic_days", "label": {"zh": "门诊日历"}, "utc_offset_minutes": 480,
                   "weekly": {"mon": [["09:00", "18:00"]]}}),
            "calendar.save clinic_days",
        ),
        (
            "POST",
            "/api/v1/resource-types",
            json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}}),
            "resource_type.save laser_room",
        ),
        (
            "POST",
            "/api/v1/skills",
            json!({"name": "laser", "label": {"zh": "激光治疗"}}),
            "skill.save laser",
        ),
        (
            "POST",
            "/api/v1/roles",
            json!({"name": "doctor", "label": {"zh": "医生"}, "permissions": ["records:zhiliao:read"]}),
            "role.save doctor",
        ),
        (
            "POST",
            "/api/v1/departments",
            json!({"name": "pifuke", "label": {"zh": "皮肤科"}}),
            "department.save pifuke",
        ),
        (
            "POST",
            "/api/v1/users",
            json!({"id": "dr_li", "name": "李医生", "roles": ["doctor"], "password": "li-yisheng-2026"}),
            "user.save dr_li",
        ),
        (
            "POST",
            "/api/v1/users",
            json!({"id": "dr_wang", "name": "王医生", "roles": ["doctor"]}),
            "user.save dr_wang",
        ),
        (
            "POST",
            "/api/v1/delegations",
            json!({"user": "dr_li", "deputy": "dr_wang", "from": "2026-12-20T09:00:00+08:00",
                   "to": "2027-01-03T18:00:00+08:00"}),
            "delegation.create dr_li → dr_wang",
        ),
        (
            "POST",
            "/api/v1/services",
            json!({"name": "follow_up", "label": {"zh": "术后回访"},
                   "steps": [{"name": "call", "kind": "human", "label": {"zh": "电话回访"}, "operators": {"creator": true}},
                             {"name": "done", "kind": "end"}],
                   "transitions": [{"from": "call", "to": "done"}]}),
            "service.save follow_up",
        ),
        (
            "POST",
            "/api/v1/services/follow_up/publish",
            Value::Null,
            "service.publish follow_up",
        ),
        (
            "POST",
            "/api/v1/rules",
            json!({"name": "welcome", "label": {"zh": "新患者回访"},
                   "event": {"kind": "signal", "name": "welcome"},
                   "instructions": [{"op": "notify", "to": ["dr_li"], "title": "欢迎"}]}),
            "rule.save welcome",
        ),
        (
            "POST",
            "/api/v1/events/welcome",
            json!({"patient": "张三"}),
            "signal.send welcome",
        ),
        (
            "POST",
            "/api/v1/app-tokens",
            json!({"name": "booking_site", "services": ["follow_up"], "scopes": ["services:follow_up:start"]}),
            "app_token.create booking_site",
        ),
        (
            "PUT",
            "/api/v1/users/dr_li/password",
            json!({"password": "li-yisheng-2027"}),
            "user.password dr_li",
        ),
        (
            "DELETE",
            "/api/v1/app-tokens/booking_site",
            Value::Null,
            "app_token.revoke booking_site",
        ),
        (
            "DELETE",
            "/api/v1/rules/welcome",
            Value::Null,
            "rule.delete welcome",
        ),
        (
            "DELETE",
            "/api/v1/calendars/clinic_days",
            Value::Null,
            "calendar.delete clinic_days",
        ),
    ]
}

/// What the API shows of the state each audited change touches: if a change were made
/// without its audit row, this would differ.
async fn visible_state(app: &TestApp) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    for path in [
        "/api/v1/data-items",
        "/api/v1/calendars",
        "/api/v1/resource-types",
        "/api/v1/skills",
        "/api/v1/roles",
        "/api/v1/departments",
        "/api/v1/users",
        "/api/v1/services",
        "/api/v1/rules",
        "/api/v1/events",
        "/api/v1/app-tokens",
        "/api/v1/delegations?all=true",
    ] {
        let (_, b) = app.call("GET", path, None).await?;
        // Rules carry counters that move with time; names are what a change adds.
        let names: Vec<Value> = b["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                json!([
                    i.get("name").or(i.get("id")).or(i.get("seq")).cloned(),
                    i.get("revoked_at").cloned(),
                    i.get("published").map(|p| !p.is_null()),
                ])
            })
            .collect();
        out.insert(path.to_owned(), json!(names));
    }
    Ok(Value::Object(out))
}

#[tokio::test]
async fn every_audited_change_commits_with_its_audit_row_or_not_at_all() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let changes = audited_changes();
        for (i, (method, path, body, want)) in changes.iter().enumerate() {
            let body = (!body.is_null()).then(|| body.clone());
            // With the audit row refused by the database, the change is refused with it:
            // nothing the API shows has changed, and no row was written.
            let before = visible_state(&app).await?;
            let log_before = audit_lines(&app).await?;
            refuse_audit_rows(&app, true).await?;
            let (s, b) = app.call(method, path, body.clone()).await?;
            refuse_audit_rows(&app, false).await?;
            assert!(
                s.is_server_error(),
                "#{i} {method} {path} was made without its audit row: {s} {b}"
            );
            assert_eq!(
                visible_state(&app).await?,
                before,
                "#{i} {method} {path} changed something without its audit row"
            );
            assert_eq!(audit_lines(&app).await?, log_before, "#{i}");
            // Allowed, it is made with exactly one row naming the actor, the action and
            // the subject.
            let (s, b) = app.call(method, path, body).await?;
            assert!(s.is_success(), "#{i} {method} {path}: {s} {b}");
            let log = audit_lines(&app).await?;
            assert_eq!(
                log.len(),
                log_before.len() + 1,
                "#{i} {method} {path}: {log:?}"
            );
            assert_eq!(
                log.last().map(String::as_str),
                Some(format!("admin {want}").as_str()),
                "#{i}"
            );
        }
        // Ending the delegation (its id is the database's): refused with its row, then
        // made with it.
        let (_, list) = app
            .call("GET", "/api/v1/delegations?all=true", None)
            .await?;
        let id = list["items"][0]["id"].as_i64().unwrap_or_default();
        let path = format!("/api/v1/delegations/{id}");
        let log_before = audit_lines(&app).await?;
        refuse_audit_rows(&app, true).await?;
        let (s, b) = app.call("DELETE", &path, None).await?;
        refuse_audit_rows(&app, false).await?;
        assert!(s.is_server_error(), "ended without its audit row: {s} {b}");
        let (_, after) = app
            .call("GET", "/api/v1/delegations?all=true", None)
            .await?;
        assert_eq!(after["total"], json!(1), "{after}");
        assert_eq!(audit_lines(&app).await?, log_before);
        let (s, b) = app.call("DELETE", &path, None).await?;
        assert!(s.is_success(), "{s} {b}");
        let log = audit_lines(&app).await?;
        assert_eq!(
            log.last().map(String::as_str),
            Some("admin delegation.end dr_li → dr_wang")
        );
        assert_eq!(log.len(), log_before.len() + 1);
        // A refused change (bad input, a missing grant) leaves no row either.
        let log_before = audit_lines(&app).await?;
        let (s, _) = app
            .call(
                "POST",
                "/api/v1/roles",
                Some(json!({"label": {"zh": ""}, "permissions": ["nonsense"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let token = app.login("dr_li", "li-yisheng-2027").await?;
        let (s, _) = app
            .call_as(
                As::Bearer(&token),
                "POST",
                "/api/v1/skills",
                Some(json!({"name": "botox", "label": {"zh": "肉毒素注射"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .call("DELETE", "/api/v1/rules/nothing_here", None)
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(audit_lines(&app).await?, log_before);
        Ok(())
    })
    .await
}

/// The clinic's leave request, as the demo pack ships it: organisation, form, service.
async fn leave_setup(app: &TestApp) -> anyhow::Result<()> {
    let seed: Value = serde_json::from_str(include_str!("../../../seeds/clinic/leave.json"))?;
    let list = |key: &str| seed[key].as_array().cloned().unwrap_or_default();
    for (path, key) in [
        ("/api/v1/departments", "departments"),
        ("/api/v1/roles", "roles"),
        ("/api/v1/users", "users"),
    ] {
        for body in list(key) {
            let (s, b) = app.call("POST", path, Some(body)).await?;
            anyhow::ensure!(s.is_success(), "{path}: {b}");
        }
    }
    app.define(seed["data_item"].clone()).await?;
    let (s, b) = app
        .call("POST", "/api/v1/services", Some(seed["service"].clone()))
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/leave/publish", None)
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    Ok(())
}

/// How many leave records and processes there are.
async fn leave_counts(app: &TestApp) -> anyhow::Result<(i64, u64)> {
    let (_, p) = app
        .call("GET", "/api/v1/processes?service=leave", None)
        .await?;
    Ok((
        app.count_rows("qingjia").await?,
        p["total"].as_u64().unwrap_or(u64::MAX),
    ))
}

#[tokio::test]
async fn one_request_files_a_leave_request_and_submits_it_or_leaves_nothing() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        leave_setup(&app).await?;
        let nurse = app.login("xiaoli", "clinic-pass-2026").await?;
        let file = |body: Value| {
            let app = &app;
            let nurse = nurse.clone();
            async move {
                app.call_as(As::Bearer(&nurse), "POST", "/api/v1/processes", Some(body))
                    .await
            }
        };

        // A bad field: 422 at its place in this body; neither record nor process.
        let (s, b) = file(json!({"service": "leave",
            "record": {"item": "qingjia", "fields": {"days": "六", "reason": "家中有事"}},
            "decision": {"attribute": "agree"}}))
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(
            b["error"]["details"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["path"] == "/record/fields/days"),
            "{b}"
        );
        assert_eq!(leave_counts(&app).await?, (0, 0));

        // A decision the first step cannot take (no way out of `apply` is a reject): the
        // record written in the same transaction is gone with it.
        let (s, b) = file(json!({"service": "leave",
            "record": {"item": "qingjia", "fields": {"days": 6, "reason": "家中有事"}},
            "decision": {"attribute": "reject"}}))
        .await?;
        assert!(s.is_client_error(), "{s} {b}");
        assert_eq!(leave_counts(&app).await?, (0, 0), "{b}");
        // A misspelled key of the decision: 422 naming it.
        let (s, b) = file(json!({"service": "leave",
            "record": {"item": "qingjia", "fields": {"days": 6, "reason": "家中有事"}},
            "decision": {"atribute": "agree"}}))
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(
            b["error"]["details"][0]["path"], "/decision/atribute",
            "{b}"
        );
        assert_eq!(leave_counts(&app).await?, (0, 0));
        // A required field missing at the first step: refused by the decision's check.
        let (s, b) = file(json!({"service": "leave",
            "record": {"item": "qingjia", "fields": {"days": 2}},
            "decision": {"attribute": "agree"}}))
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(
            b["error"]["details"][0]["path"], "/decision/fields/reason",
            "{b}"
        );
        assert_eq!(leave_counts(&app).await?, (0, 0));

        // The request as loonflow files a ticket: one call, and it is with the leader.
        let (s, p) = file(json!({"service": "leave",
            "record": {"item": "qingjia", "fields": {"days": 6, "reason": "家中有事"}},
            "decision": {"attribute": "agree", "comment": "请批准"}}))
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        assert_eq!(p["creator"], "xiaoli", "{p}");
        assert_eq!(p["step"], "leader", "{p}");
        assert_eq!(leave_counts(&app).await?, (1, 1));
        let pid = p["id"].as_u64().unwrap_or_default();
        let rid = p["record"]["id"].as_str().unwrap_or_default().to_owned();
        let (s, rec) = app
            .call("GET", &format!("/api/v1/records/qingjia/{rid}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{rec}");
        assert_eq!(rec["days"], 6, "{rec}");
        // The history shows the start and the submission, both by the nurse (the
        // dispatches between are the scheduler's).
        let (_, detail) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        let by_nurse: Vec<String> = detail["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["by"] == "xiaoli")
            .map(|h| {
                format!(
                    "{} {}",
                    h["to"].as_str().unwrap_or_default(),
                    h["step"].as_str().unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(by_nurse, ["READY apply", "READY leader"], "{detail}");
        // Without a decision, the start stops at the first step, the record made with it.
        let (s, p) = file(json!({"service": "leave",
            "record": {"item": "qingjia", "fields": {"days": 1, "reason": "看病"}}}))
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        assert_eq!(p["step"], "apply", "{p}");
        assert_eq!(
            p["record_snapshot"]
                .get("days")
                .or(p["context"]["record"].get("days")),
            Some(&json!(1)),
            "{p}"
        );
        assert_eq!(leave_counts(&app).await?, (2, 2));
        // Both a stored record and new fields: refused, naming the record.
        let (s, b) = file(json!({"service": "leave",
            "record": {"item": "qingjia", "id": rid, "fields": {"days": 1}}}))
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/record", "{b}");
        Ok(())
    })
    .await
}
