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
        // Batch state lookup by ids.
        let (_, batch) = app
            .call("GET", "/api/v1/processes?ids=1,3,5,999", None)
            .await?;
        let mut ids: Vec<u64> = batch["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["id"].as_u64())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 3, 5], "{batch}");
        assert!(batch["items"][0]["state"].is_string());
        let (s, b) = app.call("GET", "/api/v1/processes?ids=1,x", None).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/query/ids");

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

#[tokio::test]
async fn departments_form_a_tree_and_steps_resolve_participants_from_it() -> anyhow::Result<()> {
    each_backend(|app| async move {
        for id in ["dr_li", "dr_chen", "hushi_wang", "qiantai_zhou"] {
            let (s, b) = app.call("POST", "/api/v1/users", Some(json!({"id": id, "capacity": 3}))).await?;
            assert!(s.is_success(), "{b}");
        }
        let (s, b) = app.call("POST", "/api/v1/departments", Some(json!({"label": {"zh": "门诊部", "en": "Outpatients"}, "leader": "dr_li"}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["name"], "menzhenbu", "named from the Chinese label");
        let (s, b) = app.call("POST", "/api/v1/departments", Some(json!({"name": "pifuke", "label": {"zh": "皮肤科"}, "parent": "menzhenbu", "leader": "dr_chen"}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        app.call("POST", "/api/v1/departments", Some(json!({"name": "qiantai", "label": {"zh": "前台"}}))).await?;

        // The tree stays a tree; parents and leaders must exist.
        let (s, b) = app.call("POST", "/api/v1/departments", Some(json!({"name": "menzhenbu", "label": {"zh": "门诊部"}, "parent": "pifuke"}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/parent");
        let (s, b) = app.call("POST", "/api/v1/departments", Some(json!({"label": {"zh": "美容科"}, "parent": "nowhere", "leader": "nobody"}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<&str> = b["error"]["details"].as_array().into_iter().flatten().filter_map(|d| d["path"].as_str()).collect();
        assert_eq!(paths, ["/parent", "/leader"]);
        let (s, b) = app.call("POST", "/api/v1/users", Some(json!({"id": "ghost", "department": "nowhere"}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

        for (id, dept) in [("hushi_wang", "pifuke"), ("qiantai_zhou", "qiantai"), ("dr_chen", "pifuke"), ("dr_li", "menzhenbu")] {
            let (s, b) = app.call("POST", "/api/v1/users", Some(json!({"id": id, "capacity": 3, "department": dept}))).await?;
            assert!(s.is_success(), "{b}");
        }
        let (s, _) = app.call("POST", "/api/v1/roles", Some(json!({"name": "front_desk", "label": {"zh": "前台接待"}}))).await?;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _) = app.call("POST", "/api/v1/skills", Some(json!({"name": "laser", "label": {"zh": "激光治疗"}, "certification": true}))).await?;
        assert_eq!(s, StatusCode::CREATED);
        let (_, skills) = app.call("GET", "/api/v1/skills", None).await?;
        assert_eq!(skills["items"][0]["certification"], true);

        let (s, b) = app.call("POST", "/api/v1/services", Some(json!({
            "name": "skin_check", "label": {"zh": "皮肤检测"},
            "steps": [
                {"name": "triage", "kind": "human", "label": {"zh": "分诊"}, "operators": {"department": "pifuke"}},
                {"name": "review", "kind": "human", "label": {"zh": "复核"}, "operators": {"variable": "reviewer"}},
                {"name": "end", "kind": "end"}],
            "transitions": [{"from": "triage", "to": "review"}, {"from": "review", "to": "end"}]
        }))).await?;
        assert!(s.is_success(), "{b}");
        app.call("POST", "/api/v1/services/skin_check/publish", None).await?;
        let (_, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "skin_check"}))).await?;
        let pid = p["id"].as_u64().unwrap_or_default();
        assert!(["hushi_wang", "dr_chen"].contains(&p["operator"].as_str().unwrap_or_default()), "a member of 皮肤科: {p}");

        let (s, p) = app.call("POST", &format!("/api/v1/processes/{pid}/complete"), Some(json!({"context": {"reviewer": "dr_li"}}))).await?;
        assert!(s.is_success(), "{p}");
        assert_eq!(p["operator"], "dr_li", "the handler named by the previous step: {p}");

        let (_, users) = app.call("GET", "/api/v1/users", None).await?;
        let li = users["items"].as_array().into_iter().flatten().find(|u| u["id"] == "dr_li").cloned().unwrap_or_default();
        assert_eq!(li["department"], "menzhenbu");
        assert_eq!(li["load"], 1);

        // A department higher up takes its sub-departments' members too.
        let app = app.restart().await?;
        let (_, b) = app.call("POST", "/api/v1/services", Some(json!({
            "name": "outpatient_task", "label": {"zh": "门诊任务"},
            "steps": [{"name": "do", "kind": "human", "operators": {"department": "menzhenbu", "users": ["hushi_wang", "qiantai_zhou"]}}, {"name": "end", "kind": "end"}],
            "transitions": [{"from": "do", "to": "end"}]
        }))).await?;
        assert!(b.get("error").is_none(), "{b}");
        app.call("POST", "/api/v1/services/outpatient_task/publish", None).await?;
        let (_, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "outpatient_task"}))).await?;
        assert_eq!(p["operator"], "hushi_wang", "皮肤科 lies below 门诊部, 前台 does not (the tree survives a restart): {p}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn nothing_is_dispatched_to_a_user_outside_their_working_calendar() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, b) = app.call("POST", "/api/v1/calendars", Some(json!({
            "name": "day_shift", "label": {"zh": "白班"}, "utc_offset_minutes": 480,
            "weekly": {"mon": [["09:00", "18:00"]], "tue": [["09:00", "18:00"]], "wed": [["09:00", "18:00"]],
                       "thu": [["09:00", "18:00"]], "fri": [["09:00", "18:00"]]}
        }))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = app.call("POST", "/api/v1/users", Some(json!({"id": "dr_wang", "calendar": "night"}))).await?;
        assert_eq!((s, b["error"]["details"][0]["path"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("/calendar")), "{b}");
        for user in [json!({"id": "dr_wang", "calendar": "day_shift", "capacity": 5}), json!({"id": "dr_zhao", "capacity": 5})] {
            let (s, b) = app.call("POST", "/api/v1/users", Some(user)).await?;
            assert!(s.is_success(), "{b}");
        }
        let (_, b) = app.call("POST", "/api/v1/services", Some(json!({
            "name": "skin_check", "label": {"zh": "皮肤检测"},
            "steps": [{"name": "check", "kind": "human", "operators": {"users": ["dr_wang"]}}, {"name": "end", "kind": "end"}],
            "transitions": [{"from": "check", "to": "end"}]
        }))).await?;
        assert!(b.get("error").is_none(), "{b}");
        app.call("POST", "/api/v1/services/skin_check/publish", None).await?;
        // Saturday 17:00 in China: dr_wang is off; the step waits for him.
        let (_, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "skin_check"}))).await?;
        assert_eq!((p["state"].clone(), p["wait"]["kind"].clone()), (json!("READY"), json!("operator")), "{p}");
        // Monday 08:59 still nothing; at 09:00 it is his.
        app.advance(40 * 3_600_000 - 60_000).await?;
        let (_, now) = app.call("GET", &format!("/api/v1/processes/{}", p["id"]), None).await?;
        assert_eq!(now["state"], "READY");
        app.advance(60_000).await?;
        let (_, now) = app.call("GET", &format!("/api/v1/processes/{}", p["id"]), None).await?;
        assert_eq!((now["state"].clone(), now["operator"].clone()), (json!("RUNNING"), json!("dr_wang")), "{now}");
        Ok(())
    })
    .await
}
