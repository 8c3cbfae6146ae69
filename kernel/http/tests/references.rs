//! Every name a definition uses is checked when it is saved, and again when what it names
//! is removed (issue 13 §2). Before, a service naming a role nobody holds, a misspelt field
//! in a condition, a rule notifying a user who does not exist or a script importing a
//! module all saved fine; the processes then waited forever or the rule failed on every run.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend, patient_def};
use serde_json::{Value, json};

/// The clinic's organisation: a nurse role held by 小李, a laser skill, a dermatology
/// department, a working calendar, a laser room, and a published consultation service
/// (which waits for the signal `paid`).
async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    app.define(patient_def()).await?;
    for (path, body) in [
        (
            "/api/v1/roles",
            json!({"name": "nurse", "label": {"zh": "护士"}}),
        ),
        (
            "/api/v1/roles",
            json!({"name": "cashier", "label": {"zh": "收银"}}),
        ),
        (
            "/api/v1/skills",
            json!({"name": "laser", "label": {"zh": "激光治疗"}, "certification": true}),
        ),
        (
            "/api/v1/departments",
            json!({"name": "pifuke", "label": {"zh": "皮肤科"}}),
        ),
        (
            "/api/v1/users",
            json!({"id": "xiaoli", "name": "护士小李", "roles": ["nurse"], "department": "pifuke"}),
        ),
        (
            "/api/v1/users",
            json!({"id": "dr_wang", "name": "王医生", "skills": ["laser"]}),
        ),
        (
            "/api/v1/calendars",
            json!({"name": "menzhen", "label": {"zh": "门诊时间"}, "utc_offset_minutes": 480,
                                      "weekly": {"mon": [["09:00", "18:00"]]}}),
        ),
        (
            "/api/v1/resource-types",
            json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}}),
        ),
        (
            "/api/v1/resources",
            json!({"id": "laser-room-1", "type": "laser_room", "label": {"zh": "激光一室"}}),
        ),
        (
            "/api/v1/services",
            json!({"name": "consultation", "label": {"zh": "面诊"}, "subject": "huanzhe",
            "steps": [{"name": "see", "kind": "human", "operators": {"role": "nurse"}, "calendar": "menzhen"},
                      {"name": "pay", "kind": "wait", "wait": {"event": "paid"}},
                      {"name": "end", "kind": "end"}],
            "transitions": [{"from": "see", "to": "pay"}, {"from": "pay", "to": "end"}]}),
        ),
        ("/api/v1/services/consultation/publish", json!({})),
    ] {
        let (s, b) = app.call("POST", path, Some(body)).await?;
        anyhow::ensure!(s.is_success(), "{path}: {s} {b}");
    }
    Ok(())
}

/// The problems of a 422, pointer → message.
fn problems(status: StatusCode, body: &Value) -> anyhow::Result<Vec<(String, String)>> {
    anyhow::ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {body}"
    );
    Ok(body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["path"].as_str().unwrap_or_default().to_owned(),
                d["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// The message at `pointer`, failing when there is none.
fn at<'a>(problems: &'a [(String, String)], pointer: &str) -> anyhow::Result<&'a str> {
    problems
        .iter()
        .find(|(p, _)| p == pointer)
        .map(|(_, m)| m.as_str())
        .ok_or_else(|| anyhow::anyhow!("nothing at {pointer}: {problems:?}"))
}

#[tokio::test]
async fn a_service_naming_what_does_not_exist_is_refused_at_each_name() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, b) = app
            .call("POST", "/api/v1/services", Some(json!({
                "name": "laser_visit", "label": {"zh": "激光治疗"}, "subject": "huanzhe",
                "steps": [
                    {"name": "triage", "kind": "human", "operators": {"role": "nures"}},
                    {"name": "treat", "kind": "human", "operators": {"skill": "lazer"}, "calendar": "menzen",
                     "resources": [{"type": "laser_rom", "skill": "ipl"}]},
                    {"name": "approve", "kind": "human", "deadline": "PT1H",
                     "operators": {"user": "dr_wnag", "users": ["xiaoli", "ghost"], "department": "pifu"},
                     "escalation": {"notify": ["nobody"], "reassign": "dr_wang"}},
                    {"name": "consult", "kind": "sub_service", "service": "consultaton"},
                    {"name": "end", "kind": "end"}],
                "transitions": [
                    {"from": "triage", "to": "treat", "condition": "record.agee >= 18 && record.balance > 100"},
                    {"from": "treat", "to": "approve"}, {"from": "approve", "to": "consult"},
                    {"from": "consult", "to": "end"}]
            })))
            .await?;
        let p = problems(s, &b)?;
        assert_eq!(at(&p, "/steps/0/operators/role")?, "no role named 'nures'; did you mean 'nurse'?");
        assert_eq!(at(&p, "/steps/1/operators/skill")?, "no skill named 'lazer'; did you mean 'laser'?");
        assert_eq!(at(&p, "/steps/1/calendar")?, "no calendar named 'menzen'; did you mean 'menzhen'?");
        assert!(at(&p, "/steps/1/resources/0/type")?.contains("did you mean 'laser_room'"));
        assert_eq!(at(&p, "/steps/1/resources/0/skill")?, "no skill named 'ipl'");
        assert_eq!(at(&p, "/steps/2/operators/user")?, "no user named 'dr_wnag'; did you mean 'dr_wang'?");
        assert_eq!(at(&p, "/steps/2/operators/users/1")?, "no user named 'ghost'");
        assert!(at(&p, "/steps/2/operators/department")?.contains("did you mean 'pifuke'"));
        assert_eq!(at(&p, "/steps/2/escalation/notify/0")?, "no user named 'nobody'");
        assert!(at(&p, "/steps/3/service")?.contains("did you mean 'consultation'"));
        assert!(at(&p, "/transitions/0/condition")?.contains("no field 'agee'") && at(&p, "/transitions/0/condition")?.contains("did you mean 'age'"));
        assert_eq!(p.len(), 11, "the names that exist are not reported: {p:?}");
        // Nothing was saved.
        let (s, _) = app.call("GET", "/api/v1/services/laser_visit", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_rule_naming_what_does_not_exist_is_refused_and_uses_the_runtime_engine()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, b) = app
            .call("POST", "/api/v1/rules", Some(json!({
                "name": "welcome", "label": {"zh": "新患者欢迎"},
                "event": {"kind": "record.created", "item": "huanzhe"},
                "condition": "record.xingmin != \"\"",
                "instructions": [
                    {"op": "start_service", "service": "consultaton"},
                    {"op": "notify", "to": ["xiaoli", "xiaolii"], "title": "新患者 {{record.xingming}}"},
                    {"op": "assign_operator", "user": "ghost"},
                    {"op": "allocate_resource", "resource": "laser-room-2"},
                    {"op": "signal_process", "signal": "payed"},
                    {"op": "update_record", "compute": {"balance": "record.balanse + 1"}}]
            })))
            .await?;
        let p = problems(s, &b)?;
        assert!(at(&p, "/condition")?.contains("no field 'xingmin'") && at(&p, "/condition")?.contains("did you mean 'xingming'"));
        assert!(at(&p, "/instructions/0/service")?.contains("did you mean 'consultation'"));
        assert_eq!(at(&p, "/instructions/1/to/1")?, "no user named 'xiaolii'; did you mean 'xiaoli'?");
        assert_eq!(at(&p, "/instructions/2/user")?, "no user named 'ghost'");
        assert!(at(&p, "/instructions/3/resource")?.contains("did you mean 'laser-room-1'"));
        assert!(at(&p, "/instructions/4/signal")?.contains("no service has a wait step for it") && at(&p, "/instructions/4/signal")?.contains("'paid'"));
        assert!(at(&p, "/instructions/5/compute/balance")?.contains("no field 'balanse'"));
        assert_eq!(p.len(), 7, "{p:?}");
        // A rule on a service's events reads that service's bound record.
        let (s, b) = app
            .call("POST", "/api/v1/rules", Some(json!({
                "name": "seen", "label": {"zh": "面诊完成"},
                "event": {"kind": "step.left", "service": "consultation", "step": "see"},
                "condition": "record.age > 60 && record.nianling > 1",
                "instructions": [{"op": "notify", "to": ["xiaoli"], "title": "面诊完成"}]})))
            .await?;
        assert!(at(&problems(s, &b)?, "/condition")?.contains("no field 'nianling'"));
        // The engine that checks is the engine that runs: eval and import are refused when
        // saved, as they would fail on every run.
        for (rule, pointer) in [
            (json!({"name": "evil", "label": {"zh": "求值"}, "event": {"kind": "signal", "name": "probe"},
                    "condition": "eval(\"1 + 1\") == 2",
                    "instructions": [{"op": "notify", "to": ["xiaoli"], "title": "x"}]}), "/condition"),
            (json!({"name": "modules", "label": {"zh": "模块"}, "event": {"kind": "signal", "name": "probe"},
                    "instructions": [{"op": "script", "source": "import \"fs\" as fs; 1"}]}), "/instructions/0/source"),
        ] {
            let (s, b) = app.call("POST", "/api/v1/rules", Some(rule)).await?;
            at(&problems(s, &b)?, pointer)?;
        }
        // Every name right: saved.
        let (s, b) = app
            .call("POST", "/api/v1/rules", Some(json!({
                "name": "welcome", "label": {"zh": "新患者欢迎"},
                "event": {"kind": "record.created", "item": "huanzhe"},
                "condition": "record.xingming != \"\" && record.balance >= 0",
                "instructions": [
                    {"op": "start_service", "service": "consultation"},
                    {"op": "notify", "to": ["xiaoli"], "title": "新患者 {{record.xingming}}"},
                    {"op": "signal_process", "signal": "paid"}]})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_data_item_naming_an_item_that_does_not_exist_is_refused() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, b) = app
            .call("POST", "/api/v1/data-items", Some(json!({
                "name": "zhiliao", "label": {"zh": "治疗记录"}, "extends": "jilu",
                "fields": [{"name": "patient", "label": {"zh": "患者"}, "type": "reference", "target": "huanzhee"}],
                "consists": [{"item": "xiangmu", "cardinality": "many"}]
            })))
            .await?;
        let p = problems(s, &b)?;
        at(&p, "/extends")?;
        at(&p, "/fields/0/target")?;
        at(&p, "/consists/0/item")?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn removing_what_a_published_service_or_a_user_uses_is_refused_naming_them()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        // The nurse role: the consultation picks its operators by it, and 小李 holds it.
        let (s, b) = app.call("DELETE", "/api/v1/roles/nurse", None).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "in_use", "{b}");
        let message = b["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("'consultation'") && message.contains("'xiaoli'"), "{message}");
        let places: Vec<&str> = b["error"]["details"].as_array().into_iter().flatten()
            .filter_map(|d| d["path"].as_str()).collect();
        assert_eq!(places, ["/services/consultation/versions/1/steps/0/operators/role", "/users/xiaoli/roles"], "{b}");
        // The calendar its step counts in.
        let (s, b) = app.call("DELETE", "/api/v1/calendars/menzhen", None).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("'consultation'"), "{b}");
        // Still there, both.
        let (_, roles) = app.call("GET", "/api/v1/roles", None).await?;
        assert!(roles["items"].as_array().into_iter().flatten().any(|r| r["name"] == "nurse"), "{roles}");
        let (s, _) = app.call("GET", "/api/v1/calendars/menzhen", None).await?;
        assert_eq!(s, StatusCode::OK);
        // A draft may name the cashier role while it exists; once it is removed (nothing
        // published uses it), publishing the draft is refused at the name.
        let draft = json!({"name": "billing", "label": {"zh": "收费"},
            "steps": [{"name": "charge", "kind": "human", "operators": {"role": "cashier"}}, {"name": "end", "kind": "end"}],
            "transitions": [{"from": "charge", "to": "end"}]});
        let (s, b) = app.call("POST", "/api/v1/services", Some(draft)).await?;
        assert!(s.is_success(), "{b}");
        let (s, b) = app.call("DELETE", "/api/v1/roles/cashier", None).await?;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let (s, b) = app.call("POST", "/api/v1/services/billing/publish", None).await?;
        assert_eq!(at(&problems(s, &b)?, "/steps/0/operators/role")?, "no role named 'cashier'");
        let (s, _) = app.call("DELETE", "/api/v1/roles/cashier", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // The removal is audited.
        let (_, audit) = app.call("GET", "/api/v1/audit", None).await?;
        assert!(
            audit["items"].as_array().into_iter().flatten()
                .any(|a| a["action"] == "role.remove" && a.to_string().contains("cashier")),
            "{audit}"
        );
        Ok(())
    })
    .await
}

/// The resources list names each resource as staff do (its label as defined, read from
/// storage: the scheduler's instance does not carry it), also after a restart, so a
/// designer can show and edit it.
#[tokio::test]
async fn the_resource_list_shows_each_resources_label() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let label_of = |b: &Value| {
            b["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"] == "laser-room-1")
                .map(|r| r["label"].clone())
        };
        let (s, b) = app.call("GET", "/api/v1/resources", None).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(label_of(&b), Some(json!({"zh": "激光一室"})), "{b}");
        let app = app.restart().await?;
        let (_, b) = app.call("GET", "/api/v1/resources", None).await?;
        assert_eq!(label_of(&b), Some(json!({"zh": "激光一室"})), "{b}");
        Ok(())
    })
    .await
}
