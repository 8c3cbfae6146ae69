//! A step that cannot start without what an earlier step recorded (issue 14 §6: the
//! treatment needs the signed consent form), on both databases. The nurse's step creates
//! the form record with its instructions and binds it as `context.consent`, which only the
//! kernel writes: a caller setting it is refused (422 at `/context/consent`, in a handling
//! and at the start), a form missing its signature is 422 at `/context/signed_name` and
//! writes nothing. An administrator moving the process straight to the treatment leaves it
//! WAITING with the requirement's label, not queued; signed, the treatment queues.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    app.define(json!({"name": "qianshu", "label": {"zh": "知情同意书"},
    "fields": [
        {"name": "signed_name", "label": {"zh": "患者签名"}, "type": "text", "required": true},
        {"name": "risks", "label": {"zh": "已告知风险"}, "type": "text"}
    ]}))
    .await?;
    for (id, name) in [("hushi_li", "李护士"), ("dr_chen", "陈医生")] {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"id": id, "name": name, "capacity": 10})),
            )
            .await?;
        anyhow::ensure!(s.is_success(), "{b}");
    }
    let service = json!({"name": "zhiliao", "label": {"zh": "治疗就诊"},
        "steps": [
            {"name": "consent", "kind": "human", "label": {"zh": "知情同意"},
             "operators": {"user": "hushi_li"},
             "instructions": [{"op": "create_record", "item": "qianshu",
                               "compute": {"signed_name": "context.signed_name", "risks": "context.risks"},
                               "as": "consent"}]},
            {"name": "treat", "kind": "human", "label": {"zh": "治疗"},
             "operators": {"user": "dr_chen"},
             "requires": [{"condition": "\"consent\" in context",
                           "label": {"zh": "缺少已签署的知情同意书", "en": "No signed consent form"}}]},
            {"name": "end", "kind": "end"}
        ],
        "transitions": [{"from": "consent", "to": "treat"}, {"from": "treat", "to": "end"}]});
    app.publish(service).await
}

/// Starts a visit of 张三: the process's id.
async fn visit(app: &TestApp) -> anyhow::Result<u64> {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/processes",
            Some(json!({"service": "zhiliao", "context": {"patient": "张三"}})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    Ok(b["id"].as_u64().unwrap_or_default())
}

fn paths(b: &Value) -> Vec<String> {
    b["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_treatment_does_not_start_without_the_signed_consent_form() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        // Nobody forges the form into the context: not at the start, not in a handling.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "zhiliao", "context": {"consent": {"signed": true}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), ["/context/consent"], "{b}");
        let pid = visit(&app).await?;
        let handle = |context: Value| {
            let app = &app;
            async move {
                app.call(
                    "POST",
                    &format!("/api/v1/processes/{pid}/handle"),
                    Some(json!({"user": "hushi_li", "attribute": "agree", "context": context})),
                )
                .await
            }
        };
        let (s, b) = handle(json!({"consent": {"signed": true}})).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), ["/context/consent"], "{b}");
        // A form without the patient's signature is named at what the nurse sends.
        let (s, b) = handle(json!({"risks": "淤青、头痛"})).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), ["/context/signed_name"], "{b}");
        assert_eq!(app.count_rows("qianshu").await?, 0);
        assert_eq!(app.process(pid).await?["step"], "consent");

        // Moved straight to the treatment, it waits, saying why; nobody is offered it.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/change_state"),
                Some(json!({"step": "treat", "reason": "跳过签署"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(pid).await?;
        assert_eq!(p["state"], "WAITING", "{p}");
        assert_eq!(p["step"], "treat", "{p}");
        assert_eq!(p["wait"]["kind"], "requirement", "{p}");
        assert_eq!(p["wait"]["label"]["zh"], "缺少已签署的知情同意书", "{p}");
        assert!(p["operator"].is_null(), "{p}");
        assert!(
            p["history"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("cannot start: 缺少已签署的知情同意书"))),
            "{p}"
        );

        // Back to the nurse; signed, the form is a record and the treatment queues.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/change_state"),
                Some(json!({"step": "consent", "reason": "补签知情同意书"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = handle(json!({"signed_name": "张三", "risks": "淤青、头痛"})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(pid).await?;
        assert_eq!(p["step"], "treat", "{p}");
        assert!(
            p["state"] == "RUNNING" || p["state"] == "READY",
            "the treatment queues: {p}"
        );
        assert_eq!(p["context"]["consent"]["signed_name"], "张三", "{p}");
        let id = p["context"]["consent"]["id"].as_str().unwrap_or_default();
        let (s, form) = app
            .call("GET", &format!("/api/v1/records/qianshu/{id}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{form}");
        assert_eq!(form["risks"], "淤青、头痛", "{form}");
        assert_eq!(app.count_rows("qianshu").await?, 1);
        Ok(())
    })
    .await
}

/// The nurse who holds the consent step is told what its instructions take from her
/// handling (`form.inputs`: the signature and the risks, each with the DataItem and field
/// it fills), so a console can ask for them; somebody else reading the process is not.
#[tokio::test]
async fn the_holder_of_the_consent_step_is_told_its_inputs() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let nurse = app.user_with("hushi_zhang", &[]).await?;
        let pid = visit(&app).await?;
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/forward"),
                Some(json!({"user": "hushi_li", "to": "hushi_zhang", "reason": "换班"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                &format!("/api/v1/processes/{pid}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(
            b["form"]["inputs"],
            json!([
                {"key": "risks", "item": "qianshu", "field": "risks"},
                {"key": "signed_name", "item": "qianshu", "field": "signed_name"}
            ]),
            "{b}"
        );
        let (s, b) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["form"]["inputs"], json!([]), "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn requires_is_for_steps_that_start_work_and_its_condition_must_parse() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        let service = json!({"name": "bad", "label": {"zh": "坏"},
            "steps": [
                {"name": "a", "kind": "human", "operators": {"user": "admin"},
                 "requires": [{"condition": "context.(("}]},
                {"name": "w", "kind": "wait", "wait": {"after": "PT1H"},
                 "requires": [{"condition": "true"}]},
                {"name": "many", "kind": "human", "operators": {"user": "admin"},
                 "requires": vec![json!({"condition": "true"}); 17]},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [{"from": "a", "to": "w"}, {"from": "w", "to": "many"},
                            {"from": "many", "to": "end"}]});
        let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let found = paths(&b);
        for path in [
            "/steps/0/requires/0/condition",
            "/steps/1/requires/0/condition",
            "/steps/2/requires",
        ] {
            assert!(found.iter().any(|p| p == path), "{path}: {b}");
        }
        Ok(())
    })
    .await
}
