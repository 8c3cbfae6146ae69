//! Tickets' conveniences (issue 5), over HTTP on every backend: serial numbers per service
//! with a prefix and a date part, unique and gap-free under concurrency and across a
//! restart.

mod common;

use axum::http::StatusCode;
use common::each_backend;
use serde_json::{Value, json};

fn leave_service() -> Value {
    json!({
        "name": "leave", "label": {"zh": "请假申请", "en": "Leave request"},
        "serial": {"prefix": "LEAVE", "digits": 4, "utc_offset_minutes": 480},
        "steps": [
            {"name": "apply", "kind": "human", "label": {"zh": "填写申请"}},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "apply", "to": "end"}]
    })
}

#[tokio::test]
async fn serial_numbers_stay_gap_free_and_unique_with_50_concurrent_creations() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        let (s, b) = app
            .call("POST", "/api/v1/services", Some(leave_service()))
            .await?;
        assert!(s.is_success(), "{b}");
        app.call("POST", "/api/v1/services/leave/publish", None)
            .await?;

        let mut tasks = Vec::new();
        for _ in 0..50 {
            let router = app.router.clone();
            tasks.push(tokio::spawn(async move {
                let request = axum::http::Request::builder()
                    .method("POST")
                    .uri("/api/v1/processes")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        json!({"service": "leave"}).to_string(),
                    ))?;
                let response = tower::ServiceExt::oneshot(router, request).await?;
                let status = response.status();
                let bytes = http_body_util::BodyExt::collect(response.into_body())
                    .await?
                    .to_bytes();
                let body: Value = serde_json::from_slice(&bytes)?;
                anyhow::ensure!(status == StatusCode::CREATED, "{body}");
                Ok::<String, anyhow::Error>(body["serial"].as_str().unwrap_or_default().to_owned())
            }));
        }
        let mut serials = Vec::new();
        for t in tasks {
            serials.push(t.await??);
        }
        serials.sort();
        // The clock starts at 2026-11-28 17:00 China time.
        let want: Vec<String> = (1..=50).map(|n| format!("LEAVE-20261128-{n:04}")).collect();
        assert_eq!(serials, want, "unique, gap-free, in the local day");

        let app = app.restart().await?;
        let (_, p) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "leave"})),
            )
            .await?;
        assert_eq!(
            p["serial"], "LEAVE-20261128-0051",
            "the count goes on after a restart"
        );
        let (_, found) = app
            .call("GET", "/api/v1/processes?serial=LEAVE-20261128-0007", None)
            .await?;
        assert_eq!(found["total"], 1, "{found}");

        // Seven hours later it is the next day in China: the count starts again.
        app.advance(7 * 3_600_000).await?;
        let (_, p) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "leave"})),
            )
            .await?;
        assert_eq!(p["serial"], "LEAVE-20261129-0001");

        let mut bad = leave_service();
        bad["name"] = json!("leave2");
        bad["serial"] = json!({"prefix": "请假", "digits": 12});
        let (s, b) = app.call("POST", "/api/v1/services", Some(bad)).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<&str> = b["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["path"].as_str())
            .collect();
        assert!(
            paths.contains(&"/serial/prefix") && paths.contains(&"/serial/digits"),
            "{paths:?}"
        );
        Ok(())
    })
    .await
}
