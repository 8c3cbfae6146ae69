//! Courses and packages (issue 14 §7), on both databases. 张三 buys a course of three 光子
//! sessions; each treatment deducts one under its reference (a retry, and ten at once,
//! deduct once), a voided treatment gives its session back, a fourth is refused when the
//! three are used, and once the course expires nothing more is deducted. Bad sales are
//! named; grants are checked.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

async fn setup(app: &TestApp) -> anyhow::Result<String> {
    app.bookable_clinic().await?;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/treatments",
            Some(json!({"name": "guangzi", "label": {"zh": "光子嫩肤"},
            "duration_minutes": 30, "resource_types": ["treatment_room"], "skill": "laser_cert"})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    // The test clock stands at 2026-11-28: the course runs to the end of December.
    let (s, course) = app
        .call(
            "POST",
            "/api/v1/courses",
            Some(json!({"holder": "patient-zhangsan", "treatment": "guangzi",
            "charge_type": "course", "sessions": 3, "expires_on": "2026-12-31"})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {course}");
    anyhow::ensure!(course["left"] == 3, "{course}");
    Ok(course["id"].as_str().unwrap_or_default().to_owned())
}

async fn deduct(
    app: &TestApp,
    id: &str,
    reference: &str,
    restore: bool,
) -> anyhow::Result<(StatusCode, Value)> {
    app.call(
        "POST",
        &format!("/api/v1/courses/{id}/uses"),
        Some(json!({"reference": reference, "restore": restore})),
    )
    .await
}

#[tokio::test]
async fn sessions_are_deducted_once_restored_when_voided_and_refused_when_gone()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let id = setup(&app).await?;
        let (s, b) = deduct(&app, &id, "治疗-0001", false).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["course"]["left"], 2, "{b}");
        // The retry answers the first deduction.
        let (s, b) = deduct(&app, &id, "治疗-0001", false).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["course"]["left"], 2, "{b}");
        // Ten tills retrying one deduction at once: one session.
        let attempts = (0..10).map(|_| deduct(&app, &id, "治疗-0002", false));
        let mut created = 0;
        for a in futures_util::future::join_all(attempts).await {
            let (s, b) = a?;
            assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {b}");
            created += usize::from(s == StatusCode::CREATED);
        }
        assert_eq!(created, 1);
        // The second treatment is voided: its session comes back, once.
        let (s, b) = deduct(&app, &id, "治疗-0002", true).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["course"]["left"], 2, "{b}");
        let (s, b) = deduct(&app, &id, "治疗-0002", true).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["course"]["left"], 2, "{b}");
        let (s, b) = deduct(&app, &id, "治疗-9999", true).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "nothing used under it: {b}");
        for r in ["治疗-0003", "治疗-0004"] {
            let (s, b) = deduct(&app, &id, r, false).await?;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        let (s, b) = deduct(&app, &id, "治疗-0005", false).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "course_used_up", "{b}");
        let (s, shown) = app
            .call("GET", &format!("/api/v1/courses/{id}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{shown}");
        assert_eq!(shown["course"]["used"], 3, "{shown}");
        let kinds: Vec<Value> = shown["uses"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|u| u["kind"].clone())
            .collect();
        assert_eq!(
            kinds,
            [
                json!("use"),
                json!("use"),
                json!("restore"),
                json!("use"),
                json!("use")
            ],
            "{shown}"
        );

        // A second course, expired after its day: nothing is deducted.
        let (s, c) = app
            .call(
                "POST",
                "/api/v1/courses",
                Some(json!({"holder": "patient-zhangsan", "treatment": "guangzi",
                "charge_type": "yearly", "sessions": 12, "expires_on": "2026-11-30"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        let second = c["id"].as_str().unwrap_or_default().to_owned();
        app.advance(3 * DAY).await?;
        let (s, b) = deduct(&app, &second, "治疗-0006", false).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "course_expired", "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("2026-11-30"),
            "{b}"
        );
        let (_, list) = app
            .call("GET", "/api/v1/courses?holder=patient-zhangsan", None)
            .await?;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
        assert_eq!(list["items"][1]["used"], 0, "{list}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bad_sales_are_named_and_grants_are_checked() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let id = setup(&app).await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/courses",
                Some(json!({"holder": "", "treatment": "botox",
                "charge_type": "single", "sessions": 0, "expires_on": "2026-11-01"})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<Value> = b["error"]["details"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|d| d["path"].clone())
            .collect();
        for p in [
            "/holder",
            "/treatment",
            "/charge_type",
            "/sessions",
            "/expires_on",
        ] {
            assert!(paths.contains(&json!(p)), "{p} in {b}");
        }
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/courses/{id}/uses"),
                Some(json!({"reference": "", "sessions": 2})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, _) = deduct(&app, "no-such-course", "r", false).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let reader = app.user_with("kefu", &["money:read"]).await?;
        let (s, b) = app
            .call_as(
                As::Bearer(&reader),
                "GET",
                &format!("/api/v1/courses/{id}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app
            .call_as(
                As::Bearer(&reader),
                "POST",
                &format!("/api/v1/courses/{id}/uses"),
                Some(json!({"reference": "r"})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("money:charge"),
            "{b}"
        );
        Ok(())
    })
    .await
}
