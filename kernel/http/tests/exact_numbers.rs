//! Money in expressions is an exact number (issue 13): a 会员's 余额 of 1234.50 compared
//! with 1000 in a transition condition takes the VIP branch (before, the stored string was
//! compared with a number, always false, and every member went the default way); a rule's
//! condition on it holds, and a rule computing with it writes back exact cents. On every
//! backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

async fn setup(app: &TestApp) -> anyhow::Result<()> {
    app.define(json!({
        "label": {"zh": "会员", "en": "Member"},
        "fields": [
            {"label": {"zh": "姓名"}, "type": "text", "required": true},
            {"label": {"zh": "余额"}, "type": "money"},
            {"label": {"zh": "折后价"}, "type": "money"}
        ]
    }))
    .await?;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/services",
            Some(json!({
                "name": "member_visit", "label": {"zh": "会员到店"}, "subject": "huiyuan",
                "steps": [
                    {"name": "route", "kind": "exclusive"},
                    {"name": "vip", "kind": "human", "label": {"zh": "贵宾接待"}, "operators": {"creator": true}},
                    {"name": "regular", "kind": "human", "label": {"zh": "普通接待"}, "operators": {"creator": true}},
                    {"name": "done", "kind": "end"}
                ],
                "transitions": [
                    {"from": "route", "to": "vip", "condition": "record.yue > 1000"},
                    {"from": "route", "to": "regular", "name": "regular", "default": true},
                    {"from": "vip", "to": "done"},
                    {"from": "regular", "to": "done"}
                ]
            })),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/member_visit/publish", None)
        .await?;
    anyhow::ensure!(s.is_success(), "{s} {b}");
    Ok(())
}

/// Starts a visit for a new member with `yue`; answers the step it is at.
async fn visit(app: &TestApp, name: &str, yue: &str) -> anyhow::Result<Value> {
    let (s, p) = app
        .call(
            "POST",
            "/api/v1/processes",
            Some(json!({"service": "member_visit",
                        "record": {"item": "huiyuan", "fields": {"xingming": name, "yue": yue}}})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {p}");
    Ok(p["step"].clone())
}

#[tokio::test]
async fn a_money_field_compared_with_a_number_takes_the_right_branch() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        assert_eq!(visit(&app, "曾丽", "1234.50").await?, json!("vip"));
        assert_eq!(visit(&app, "单雪", "999.99").await?, json!("regular"));
        // Exactly at the bound is not above it; a cent above is.
        assert_eq!(visit(&app, "解晓东", "1000.00").await?, json!("regular"));
        assert_eq!(visit(&app, "仇敏", "1000.01").await?, json!("vip"));
        // No balance at all (null) is no number: the default way, as before.
        let (s, p) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "member_visit",
                            "record": {"item": "huiyuan", "fields": {"xingming": "区家明"}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        assert_eq!(p["step"], "regular");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_rule_computes_with_money_to_the_cent() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        // A member above 1000 gets 88% of their balance as the discounted price, computed
        // by the rule and written back: 1234.50 × 0.88 = 1086.36 exactly (in floats
        // 1086.3600000000001).
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/rules",
                Some(json!({
                    "name": "vip_discount", "label": {"zh": "贵宾折扣"},
                    "event": {"kind": "record.created", "item": "huiyuan"},
                    "condition": "record.yue > 1000",
                    "instructions": [{"op": "update_record",
                                      "compute": {"zhehoujia": "record.yue * 0.88"}}]
                })),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let rich = app
            .create("huiyuan", json!({"xingming": "查小欣", "yue": "1234.50"}))
            .await?;
        let poor = app
            .create("huiyuan", json!({"xingming": "单雪", "yue": "12.30"}))
            .await?;
        // The rules run (and their writes commit) in the worker's rounds.
        while app.kernel.rules.round().await? > 0 {}
        let read = |id: Value| {
            let app = &app;
            async move {
                let (s, r) = app
                    .call(
                        "GET",
                        &format!(
                            "/api/v1/records/huiyuan/{}",
                            id.as_str().unwrap_or_default()
                        ),
                        None,
                    )
                    .await?;
                anyhow::ensure!(s == StatusCode::OK, "{s} {r}");
                anyhow::Ok(r)
            }
        };
        let rich = read(rich["id"].clone()).await?;
        let (_, runs) = app
            .call("GET", "/api/v1/rules/vip_discount/runs", None)
            .await?;
        assert_eq!(rich["zhehoujia"], json!("1086.36"), "{rich} {runs}");
        let poor = read(poor["id"].clone()).await?;
        assert_eq!(poor["zhehoujia"], Value::Null, "{poor}");
        Ok(())
    })
    .await
}
