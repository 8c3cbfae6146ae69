//! Context switching for clinical staff (issue 14 §10), on both databases: 王医生 puts her
//! running treatment aside for an urgent patient and takes it up again afterwards — her own
//! right, no administrator. Whether the set-aside treatment keeps its laser room is its
//! step's choice (`hold_while_waiting`): kept, she takes it up at once; freed, the room goes
//! to 李医生's patient and hers queues until it is free again. Taking up while at capacity
//! is refused, and an administrator's resume never puts her over capacity either: the
//! process queues for her instead.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

async fn clinic(app: &TestApp) -> anyhow::Result<(String, String)> {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/resource-types",
            Some(json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}})),
        )
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/resources",
            Some(json!({"id": "laser-1", "type": "laser_room", "label": {"zh": "激光一室"}})),
        )
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let grants = ["services:*:view", "services:*:handle"];
    let wang = app.user_with("dr_wang", &grants).await?;
    let li = app.user_with("dr_li", &grants).await?;
    let treat = |name: &str, doctor: &str, hold: bool| {
        json!({"name": name, "label": {"zh": "光子嫩肤"},
            "steps": [
                {"name": "treat", "kind": "human", "label": {"zh": "治疗"},
                 "operators": {"user": doctor},
                 "resources": [{"type": "laser_room", "hold_while_waiting": hold}]},
                {"name": "end", "kind": "end"}],
            "transitions": [{"from": "treat", "to": "end"}]})
    };
    app.publish(treat("keeps_room", "dr_wang", true)).await?;
    app.publish(treat("frees_room", "dr_wang", false)).await?;
    app.publish(treat("li_treats", "dr_li", false)).await?;
    app.publish(
        json!({"name": "urgent", "label": {"zh": "急诊"}, "priority": 90,
        "steps": [{"name": "see", "kind": "human", "label": {"zh": "急诊处置"},
                   "operators": {"user": "dr_wang"}},
                  {"name": "end", "kind": "end"}],
        "transitions": [{"from": "see", "to": "end"}]}),
    )
    .await?;
    Ok((wang, li))
}

async fn start(app: &TestApp, service: &str) -> anyhow::Result<u64> {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/processes",
            Some(json!({"service": service, "context": {"patient": "张三"}})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    Ok(b["id"].as_u64().unwrap_or_default())
}

fn held(p: &Value) -> Vec<&str> {
    p["allocations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["resource"].as_str())
        .collect()
}

async fn act(
    app: &TestApp,
    token: &str,
    pid: u64,
    action: &str,
    body: Value,
) -> anyhow::Result<(StatusCode, Value)> {
    app.call_as(
        As::Bearer(token),
        "POST",
        &format!("/api/v1/processes/{pid}/{action}"),
        Some(body),
    )
    .await
}

async fn actions(app: &TestApp, token: &str, pid: u64) -> anyhow::Result<Vec<String>> {
    let (s, b) = app
        .call_as(
            As::Bearer(token),
            "GET",
            &format!("/api/v1/processes/{pid}/actions"),
            None,
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{b}");
    Ok(b["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["action"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn a_doctor_sets_her_treatment_aside_for_an_urgent_patient_and_takes_it_up_again()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let (wang, li) = clinic(&app).await?;
        let a = start(&app, "keeps_room").await?;
        let p = app.process(a).await?;
        assert_eq!(
            (p["state"].as_str(), p["operator"].as_str()),
            (Some("RUNNING"), Some("dr_wang")),
            "{p}"
        );
        assert!(
            actions(&app, &wang, a)
                .await?
                .contains(&"set_aside".to_owned())
        );
        let urgent = start(&app, "urgent").await?;
        assert_eq!(app.process(urgent).await?["state"], "READY", "she is busy");

        // Nobody else sets her work aside; she does, and takes the urgent patient.
        let (s, b) = act(&app, &li, a, "set_aside", json!({"reason": "x"})).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let (s, b) = act(&app, &wang, a, "set_aside", json!({"reason": "急诊患者"})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(a).await?;
        assert_eq!(p["state"], "SUSPENDED", "{p}");
        assert_eq!(p["wait"]["kind"], "set_aside", "{p}");
        assert_eq!(p["wait"]["by"], "dr_wang", "{p}");
        assert_eq!(
            held(&p),
            ["laser-1"],
            "the step keeps its room while set aside: {p}"
        );
        let u = app.process(urgent).await?;
        assert_eq!(
            (u["state"].as_str(), u["operator"].as_str()),
            (Some("RUNNING"), Some("dr_wang")),
            "{u}"
        );
        assert!(
            actions(&app, &wang, a)
                .await?
                .contains(&"take_up".to_owned())
        );

        // At her capacity, taking it up is refused and changes nothing.
        let (s, b) = act(&app, &wang, a, "take_up", json!({})).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(app.process(a).await?["state"], "SUSPENDED");
        let (s, b) = act(&app, &li, a, "take_up", json!({})).await?;
        assert_eq!(s, StatusCode::CONFLICT, "only she takes it up: {b}");

        // The urgent patient seen, she takes it up: running again, in the same room.
        let (s, b) = act(&app, &wang, urgent, "handle", json!({"attribute": "agree"})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = act(&app, &wang, a, "take_up", json!({})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(a).await?;
        assert_eq!(
            (p["state"].as_str(), p["operator"].as_str()),
            (Some("RUNNING"), Some("dr_wang")),
            "{p}"
        );
        assert_eq!(held(&p), ["laser-1"], "{p}");
        assert!(p["wait"].is_null(), "{p}");
        let history = p["history"].as_array().cloned().unwrap_or_default();
        assert!(
            history
                .iter()
                .any(|h| h["reason"] == "set aside by dr_wang: 急诊患者"),
            "{p}"
        );
        let (s, b) = act(&app, &wang, a, "handle", json!({"attribute": "agree"})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_step_that_frees_its_room_queues_for_it_when_taken_up() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (wang, li) = clinic(&app).await?;
        let a = start(&app, "frees_room").await?;
        assert_eq!(held(&app.process(a).await?), ["laser-1"]);
        let (s, b) = act(&app, &wang, a, "set_aside", json!({})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(a).await?;
        assert!(held(&p).is_empty(), "the room is freed: {p}");
        assert_eq!(p["wait"]["released"], json!(["laser-1"]), "{p}");
        // 李医生's patient takes the room.
        let b_pid = start(&app, "li_treats").await?;
        assert_eq!(held(&app.process(b_pid).await?), ["laser-1"]);
        // Taken up, hers waits for the room, for her.
        let (s, b) = act(&app, &wang, a, "take_up", json!({})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(a).await?;
        assert_eq!(p["state"], "READY", "{p}");
        assert_eq!(p["wait"]["kind"], "resource", "{p}");
        let (s, b) = act(&app, &li, b_pid, "handle", json!({"attribute": "agree"})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(a).await?;
        assert_eq!(
            (p["state"].as_str(), p["operator"].as_str()),
            (Some("RUNNING"), Some("dr_wang")),
            "{p}"
        );
        assert_eq!(held(&p), ["laser-1"], "{p}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_administrators_resume_never_puts_an_operator_over_capacity() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (wang, _) = clinic(&app).await?;
        let a = start(&app, "keeps_room").await?;
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{a}/suspend"),
                Some(json!({"reason": "设备检修"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let urgent = start(&app, "urgent").await?;
        assert_eq!(app.process(urgent).await?["operator"], "dr_wang");
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{a}/resume"),
                Some(json!({})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        // She has one task (the urgent one); the resumed treatment queues for her.
        let p = app.process(a).await?;
        assert_eq!(p["state"], "READY", "{p}");
        assert_eq!(p["assignee"], "dr_wang", "{p}");
        let (s, b) = act(&app, &wang, urgent, "handle", json!({"attribute": "agree"})).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = app.process(a).await?;
        assert_eq!(
            (p["state"].as_str(), p["operator"].as_str()),
            (Some("RUNNING"), Some("dr_wang")),
            "{p}"
        );
        Ok(())
    })
    .await
}
