//! Moving running processes to a new service version (issue 13 §6), on both databases:
//! twelve consent processes run version 1; version 2 replaces the 复核 step by 核对. A dry
//! run says ten can move and the two at 复核 cannot, and why; the real run moves the ten as
//! one recorded transition each (they survive a restart and go on in the new graph); a
//! mapping then moves the other two. Before, running processes could never leave their
//! version.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

fn consent(review: (&str, &str)) -> Value {
    let human = |name: &str, zh: &str| json!({"name": name, "kind": "human", "label": {"zh": zh}, "operators": {"user": "dr_wang"}});
    json!({"name": "consent", "label": {"zh": "知情同意"},
           "steps": [human("sign", "签署同意书"), human(review.0, review.1), {"name": "end", "kind": "end"}],
           "transitions": [{"from": "sign", "to": review.0}, {"from": review.0, "to": "end"}]})
}

async fn publish(app: &TestApp, service: Value) -> anyhow::Result<()> {
    let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/consent/publish", None)
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    Ok(())
}

async fn process(app: &TestApp, pid: u64) -> anyhow::Result<Value> {
    let (s, b) = app
        .call("GET", &format!("/api/v1/processes/{pid}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{b}");
    Ok(b)
}

async fn complete(app: &TestApp, pid: u64) -> anyhow::Result<()> {
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/v1/processes/{pid}/complete"),
            Some(json!({})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "complete {pid}: {b}");
    Ok(())
}

fn pids(list: &Value, key: &str) -> Vec<u64> {
    list[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["pid"].as_u64())
        .collect()
}

#[tokio::test]
async fn ten_running_processes_move_to_version_two_and_the_two_without_a_mapping_are_refused()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"id": "dr_wang", "name": "王医生", "capacity": 20})),
            )
            .await?;
        assert!(s.is_success(), "{b}");
        publish(&app, consent(("review", "复核"))).await?;
        let mut all = Vec::new();
        for i in 0..12 {
            let (s, b) = app
                .call(
                    "POST",
                    "/api/v1/processes",
                    Some(json!({"service": "consent", "context": {"n": i}})),
                )
                .await?;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            all.push(b["id"].as_u64().unwrap_or_default());
        }
        let (at_review, at_sign) = all.split_at(2);
        for pid in at_review {
            complete(&app, *pid).await?;
        }
        publish(&app, consent(("check", "核对"))).await?;

        let path = "/api/v1/services/consent/instance-migration";
        let (s, dry) = app
            .call(
                "POST",
                path,
                Some(json!({"from_version": 1, "dry_run": true})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{dry}");
        assert_eq!(
            (dry["to_version"].as_u64(), dry["dry_run"].as_bool()),
            (Some(2), Some(true)),
            "{dry}"
        );
        assert_eq!(pids(&dry, "moved"), at_sign, "{dry}");
        assert_eq!(pids(&dry, "refused"), at_review, "{dry}");
        for r in dry["refused"].as_array().into_iter().flatten() {
            let reason = r["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains("step 'review' has no counterpart in version 2"),
                "{reason}"
            );
        }
        assert_eq!(
            process(&app, at_sign[0]).await?["version"],
            1,
            "a dry run changes nothing"
        );

        let (s, done) = app
            .call(
                "POST",
                path,
                Some(json!({"from_version": 1, "to_version": 2})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{done}");
        assert_eq!(pids(&done, "moved").len(), 10, "{done}");
        assert_eq!(pids(&done, "refused"), at_review, "{done}");
        // One recorded transition each, kept across a restart.
        let app = app.restart().await?;
        for pid in at_sign {
            let p = process(&app, *pid).await?;
            assert_eq!(
                (p["version"].as_u64(), p["step"].as_str()),
                (Some(2), Some("sign")),
                "{p}"
            );
            let reasons: Vec<&str> = p["history"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["reason"].as_str())
                .collect();
            assert!(
                reasons.iter().any(|r| r.starts_with("migrated v1 → v2")),
                "{reasons:?}"
            );
        }
        for pid in at_review {
            assert_eq!(process(&app, *pid).await?["version"], 1);
        }
        // A moved process goes on in the new graph.
        complete(&app, at_sign[0]).await?;
        assert_eq!(process(&app, at_sign[0]).await?["step"], "check");

        // With a mapping, the other two move too.
        let (s, mapped) = app
            .call(
                "POST",
                path,
                Some(json!({"from_version": 1, "steps": {"review": "check"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{mapped}");
        assert_eq!(pids(&mapped, "moved"), at_review, "{mapped}");
        let p = process(&app, at_review[0]).await?;
        assert_eq!(
            (p["version"].as_u64(), p["step"].as_str()),
            (Some(2), Some("check")),
            "{p}"
        );

        // Mistakes are 422 at their pointer; changing nothing.
        for (body, pointer) in [
            (
                json!({"from_version": 1, "steps": {"review": "nowhere"}}),
                "/steps/review",
            ),
            (json!({"from_version": 9}), "/from_version"),
            (json!({"from_version": 2}), "/to_version"),
            (json!({"from_version": 1, "dryrun": true}), "/dryrun"),
            // A list longer than one request takes.
            (
                json!({"from_version": 1, "processes": (1..=1001).collect::<Vec<u64>>()}),
                "/processes",
            ),
        ] {
            let (s, b) = app.call("POST", path, Some(body)).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert_eq!(b["error"]["details"][0]["path"], pointer, "{b}");
        }
        // Only an administrator of the service may move its processes.
        let nurse = app
            .user_with(
                "xiaoli",
                &["services:consent:start", "services:consent:view"],
            )
            .await?;
        let (s, b) = app
            .call_as(
                common::As::Bearer(&nurse),
                "POST",
                path,
                Some(json!({"from_version": 1})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        Ok(())
    })
    .await
}
