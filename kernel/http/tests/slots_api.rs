//! Treatments and slot search (issue 14 §1, §3), on both databases. 调Q激光 needs a
//! treatment room, the laser and a practitioner certified for it, 30 minutes with 10 to
//! prepare and 10 to clean. A slot search answers the starts where one of each is free
//! within their hours, with what each would take: the body of the booking that takes it.
//! The practitioner asked for is taken first; a booked laser moves every slot past it;
//! booking a slot twice is refused; bad parameters are named.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

fn at(day: u32, hm: &str) -> String {
    format!("2026-12-{day:02}T{hm}:00+08:00")
}

fn shown(day: u32, hm: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(&at(day, hm))
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        })
        .unwrap_or_default()
}

fn q(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

async fn setup(app: &TestApp) -> anyhow::Result<()> {
    app.bookable_clinic().await?;
    let (s, b) = app
        .call("POST", "/api/v1/users", Some(json!({"id": "doc.li", "name": "李医生", "skills": ["laser_cert"], "calendar": "menzhen"})))
        .await?;
    anyhow::ensure!(s.is_success(), "{s} {b}");
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/treatments",
            Some(json!({
            "name": "tiaoq", "label": {"zh": "调Q激光", "en": "Q-switched laser"},
            "duration_minutes": 30, "buffer_before_minutes": 10, "buffer_after_minutes": 10,
            "resource_types": ["treatment_room", "laser"], "skill": "laser_cert"})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    Ok(())
}

async fn slots(app: &TestApp, extra: &str) -> anyhow::Result<Value> {
    let path = format!(
        "/api/v1/bookings/slots?treatment=tiaoq&from={}&to={}{extra}",
        q(&at(3, "09:00")),
        q(&at(3, "21:00"))
    );
    let (s, b) = app.call("GET", &path, None).await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    Ok(b)
}

fn booking_of(slot: &Value) -> Value {
    json!({
        "resources": slot["resources"], "operators": slot["operators"],
        "start": slot["start"], "end": slot["end"],
        "buffer_before_minutes": slot["buffer_before_minutes"],
        "buffer_after_minutes": slot["buffer_after_minutes"],
        "treatment": "tiaoq", "patient": "单雪"
    })
}

#[tokio::test]
async fn a_slot_search_finds_a_room_the_laser_and_a_certified_practitioner() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, list) = app.call("GET", "/api/v1/treatments", None).await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"][0]["label"]["zh"], "调Q激光", "{list}");

        // Opening at 09:00, with 10 minutes to prepare: the first start on the quarter-hour
        // grid is 09:15.
        let found = slots(&app, "").await?;
        let first = &found["slots"][0];
        assert_eq!(first["start"], shown(3, "09:15"), "{found}");
        assert_eq!(first["end"], shown(3, "09:45"), "{found}");
        assert_eq!(first["resources"][1], "picolaser-1", "{found}");
        assert_eq!(first["operators"].as_array().map(Vec::len), Some(1), "{found}");
        assert_eq!(found["slots"].as_array().map(Vec::len), Some(20), "{found}");

        // The laser is in service until 10:30: every slot moves past it (10:40 → 10:45).
        let (s, service) = app
            .call("POST", "/api/v1/bookings", Some(json!({
                "kind": "maintenance", "resources": ["picolaser-1"], "start": at(3, "09:00"), "end": at(3, "10:30"),
                "note": "激光器季度保养"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{service}");
        let found = slots(&app, "").await?;
        assert_eq!(found["slots"][0]["start"], shown(3, "10:45"), "{found}");

        // 李医生 asked for: taken first.
        let found = slots(&app, "&practitioner=doc.li").await?;
        let slot = found["slots"][0].clone();
        assert_eq!(slot["operators"], json!(["doc.li"]), "{found}");
        assert_eq!(slot["preferred_practitioner"], true, "{found}");

        // The slot is the body of its booking; booked twice, the second is refused.
        let (s, booked) = app.call("POST", "/api/v1/bookings", Some(booking_of(&slot))).await?;
        assert_eq!(s, StatusCode::CREATED, "{booked}");
        let (s, again) = app.call("POST", "/api/v1/bookings", Some(booking_of(&slot))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{again}");
        // The laser is now held 10:35–11:25: the next slot starts at 11:35 → 11:45, which
        // leaves the laser 10 idle minutes, too few for another visit; the tightest slot
        // leaves none.
        let found = slots(&app, "").await?;
        assert_eq!(found["slots"][0]["start"], shown(3, "11:45"), "{found}");
        assert_eq!(found["slots"][0]["fragmentation_minutes"], 10, "{found}");
        let found = slots(&app, "&order=tightest&limit=3").await?;
        assert_eq!(found["slots"][0]["fragmentation_minutes"], 0, "{found}");
        assert_eq!(found["slots"][0]["start"], shown(3, "12:15"), "{found}");
        assert_eq!(found["slots"].as_array().map(Vec::len), Some(3), "{found}");

        // Bad requests are named.
        for (path, pointer) in [
            (format!("/api/v1/bookings/slots?from={}&to={}", q(&at(3, "09:00")), q(&at(3, "12:00"))), "/query/treatment"),
            (format!("/api/v1/bookings/slots?treatment=tiaoq&from={}&to={}", q(&at(3, "12:00")), q(&at(3, "09:00"))), "/query/to"),
            (format!("/api/v1/bookings/slots?treatment=tiaoq&from={}&to={}", q(&at(3, "09:00")), q("2027-02-01T00:00:00+08:00")), "/query/to"),
            (format!("/api/v1/bookings/slots?treatment=tiaoq&from={}&to={}&practitioner=doc.zhao", q(&at(3, "09:00")), q(&at(3, "12:00"))), "/query/practitioner"),
            (format!("/api/v1/bookings/slots?treatment=tiaoq&from={}&to={}&branch=b1", q(&at(3, "09:00")), q(&at(3, "12:00"))), "/query/branch"),
        ] {
            let (s, b) = app.call("GET", &path, None).await?;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
            assert!(
                b["error"]["details"].as_array().into_iter().flatten().any(|d| d["path"] == pointer),
                "{path}: {b}"
            );
        }
        let (s, b) = app
            .call("GET", &format!("/api/v1/bookings/slots?treatment=nosuch&from={}&to={}", q(&at(3, "09:00")), q(&at(3, "12:00"))), None)
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

        // A treatment naming what does not exist is refused at its pointer.
        let (s, bad) = app
            .call("POST", "/api/v1/treatments", Some(json!({
                "label": {"zh": "光子嫩肤"}, "duration_minutes": 0,
                "resource_types": ["treatment_room", "lazer"], "skill": "ipl_cert"})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let paths: Vec<&str> = bad["error"]["details"].as_array().into_iter().flatten().filter_map(|d| d["path"].as_str()).collect();
        assert!(paths.contains(&"/duration_minutes"), "{bad}");
        assert!(paths.contains(&"/resource_types/1"), "{bad}");
        assert!(paths.contains(&"/skill"), "{bad}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_branch_searches_its_own_holders_and_the_shared_ones() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        // 静安 gets a room, a laser and a practitioner of its own; 徐汇 keeps the clinic's
        // (which, with no branch, serve every branch).
        for (path, body) in [
            ("/api/v1/resources", json!({"id": "ja-room-1", "type": "treatment_room", "label": {"zh": "静安治疗室1"}, "calendar": "menzhen", "branch": "jingan"})),
            ("/api/v1/resources", json!({"id": "ja-laser-1", "type": "laser", "label": {"zh": "静安激光1号"}, "calendar": "menzhen", "branch": "jingan"})),
            ("/api/v1/users", json!({"id": "doc.zhao", "name": "赵医生", "skills": ["laser_cert"], "calendar": "menzhen", "branch": "jingan"})),
            ("/api/v1/users", json!({"id": "doc.li", "name": "李医生", "skills": ["laser_cert"], "calendar": "menzhen", "branch": "xuhui"})),
        ] {
            let (s, b) = app.call("POST", path, Some(body)).await?;
            assert!(s.is_success(), "{s} {b}");
        }
        let xuhui = slots(&app, "&branch=xuhui&limit=200").await?;
        let jingan = slots(&app, "&branch=jingan&limit=200").await?;
        let took = |found: &Value, key: &str| -> std::collections::BTreeSet<String> {
            found["slots"].as_array().cloned().unwrap_or_default().iter()
                .flat_map(|s| s[key].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_str().map(str::to_owned)).collect()
        };
        assert!(!took(&xuhui, "resources").iter().any(|r| r.starts_with("ja-")), "{xuhui}");
        assert!(!took(&xuhui, "operators").contains("doc.zhao"), "{xuhui}");
        assert!(!took(&jingan, "operators").contains("doc.li"), "{jingan}");
        assert!(took(&jingan, "resources").contains("ja-laser-1"), "{jingan}");
        // A plan for 静安 takes its own practitioner and the shared 王医生, never 徐汇's 李医生.
        let (s, plan) = app
            .call("POST", "/api/v1/bookings/plan", Some(json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "branch": "jingan",
                "requests": [{"treatment": "tiaoq", "patient": "周九"}, {"treatment": "tiaoq", "patient": "吴十"}]})))
            .await?;
        assert_eq!(s, StatusCode::OK, "{plan}");
        let planned = took(&json!({"slots": plan["placed"]}), "operators");
        assert!(!planned.contains("doc.li") && planned.contains("doc.zhao"), "{plan}");
        let (s, b) = app
            .call("POST", "/api/v1/resources", Some(json!({"id": "x", "type": "laser", "label": {"zh": "x"}, "branch": "Jing An"})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/branch", "{b}");
        Ok(())
    })
    .await
}
