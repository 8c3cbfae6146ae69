//! Returning to the caller early (issue 13 §5), on both databases: a consultation whose
//! `notes` step is marked `returns` hands the visit its diagnosis when it enters that step;
//! the visit goes on to 收费 while the consultation is still at its notes, and cancelling
//! the visit then leaves the consultation to finish. A step that cannot return (an end) is
//! refused when saved.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    let human = |name: &str, zh: &str| json!({"name": name, "kind": "human", "label": {"zh": zh}, "operators": {"user": "dr_wang"}});
    let mut notes = human("notes", "书写病历");
    notes["returns"] = json!(true);
    let services = [
        json!({"name": "mianzhen", "label": {"zh": "面诊"},
               "steps": [human("see", "医生面诊"), notes, {"name": "end", "kind": "end"}],
               "transitions": [{"from": "see", "to": "notes"}, {"from": "notes", "to": "end"}]}),
        json!({"name": "visit", "label": {"zh": "到诊"},
               "steps": [{"name": "consult", "kind": "sub_service", "service": "mianzhen",
                          "outputs": {"zhenduan": "diagnosis"}},
                         human("charge", "收费"), {"name": "end", "kind": "end"}],
               "transitions": [{"from": "consult", "to": "charge"}, {"from": "charge", "to": "end"}]}),
    ];
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"id": "dr_wang", "name": "王医生", "capacity": 10})),
        )
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    for service in services {
        let name = service["name"].as_str().unwrap_or_default().to_owned();
        let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
        anyhow::ensure!(s.is_success(), "{name}: {b}");
        let (s, b) = app
            .call("POST", &format!("/api/v1/services/{name}/publish"), None)
            .await?;
        anyhow::ensure!(s.is_success(), "{name}: {b}");
    }
    Ok(())
}

async fn process(app: &TestApp, pid: u64) -> anyhow::Result<Value> {
    let (s, b) = app
        .call("GET", &format!("/api/v1/processes/{pid}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{b}");
    Ok(b)
}

async fn complete(app: &TestApp, pid: u64, context: Value) -> anyhow::Result<()> {
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/v1/processes/{pid}/complete"),
            Some(json!({"context": context})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "complete {pid}: {s} {b}");
    Ok(())
}

#[tokio::test]
async fn a_consultation_returns_its_diagnosis_early_and_finishes_its_notes_alone()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "visit", "context": {"patient": "曾丽"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let visit = b["id"].as_u64().unwrap_or_default();
        let p = process(&app, visit).await?;
        let child = p["children"][0].as_u64().unwrap_or_default();
        complete(&app, child, json!({"diagnosis": "轻度色斑"})).await?;

        // The consultation is at its notes; the visit already has the diagnosis and is at 收费.
        let c = process(&app, child).await?;
        assert_eq!(c["step"], "notes", "{c}");
        assert_ne!(c["state"], "TERMINATED", "{c}");
        let p = process(&app, visit).await?;
        assert_eq!(p["step"], "charge", "{p}");
        assert_eq!(p["context"]["zhenduan"], "轻度色斑", "{p}");
        assert_eq!(
            p["children"],
            json!([]),
            "the consultation is no longer the visit's child: {p}"
        );
        assert!(
            p["history"]
                .to_string()
                .contains(&format!("child {child} returned early")),
            "{p}"
        );

        // Cancelling the visit leaves the consultation be; it finishes on its own.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{visit}/terminate"),
                Some(json!({"reason": "患者离店"})),
            )
            .await?;
        assert!(s.is_success(), "{b}");
        assert_ne!(process(&app, child).await?["state"], "TERMINATED");
        complete(&app, child, json!({"notes": "建议光子嫩肤三次"})).await?;
        let c = process(&app, child).await?;
        assert_eq!(
            (c["state"].as_str(), c["exit"].as_str()),
            (Some("TERMINATED"), Some("completed")),
            "{c}"
        );
        // The visit, ended before, is not moved by the child's end.
        let p = process(&app, visit).await?;
        assert_eq!(
            (p["state"].as_str(), p["exit"].as_str()),
            (Some("TERMINATED"), Some("cancelled")),
            "{p}"
        );

        // A process started on its own (no caller) passes a returns step like any other.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "mianzhen"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let alone = b["id"].as_u64().unwrap_or_default();
        complete(&app, alone, json!({"diagnosis": "痤疮"})).await?;
        assert_eq!(process(&app, alone).await?["step"], "notes");

        // An end step cannot be marked: it returns anyway.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/services",
                Some(json!({"name": "bad", "label": {"zh": "错"},
            "steps": [{"name": "end", "kind": "end", "returns": true}], "transitions": []})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/steps/0/returns", "{b}");
        Ok(())
    })
    .await
}
