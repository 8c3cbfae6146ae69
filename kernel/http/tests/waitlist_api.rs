//! The waitlist (issue 14 §3), on both databases. The clinic's one laser is booked
//! 10:00–10:50 on 3 December; 张三 can only come between 10:00 and 11:00, so she waits.
//! When that booking is cancelled the freed slot is offered to her — the first waiting,
//! not 李四 who joined after — and accepting books it. A second offer, taken by a walk-in
//! before it is accepted, is refused with the usual 409 and the entry waits again; a
//! withdrawn entry is offered nothing. Bad input is named; grants are checked.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

fn at(hm: &str) -> String {
    format!("2026-12-03T{hm}:00+08:00")
}

async fn setup(app: &TestApp) -> anyhow::Result<()> {
    app.bookable_clinic().await?;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/treatments",
            Some(json!({
            "name": "tiaoq", "label": {"zh": "调Q激光"}, "duration_minutes": 30,
            "buffer_before_minutes": 10, "buffer_after_minutes": 10,
            "resource_types": ["treatment_room", "laser"], "skill": "laser_cert"})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    Ok(())
}

async fn book(
    app: &TestApp,
    start: &str,
    end: &str,
    patient: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    app.call(
        "POST",
        "/api/v1/bookings",
        Some(json!({
        "resources": ["room-a1", "picolaser-1"], "operators": ["doc.wang"],
        "start": at(start), "end": at(end), "buffer_before_minutes": 10, "buffer_after_minutes": 10,
        "treatment": "tiaoq", "patient": patient})),
    )
    .await
}

async fn join(app: &TestApp, patient: &str) -> anyhow::Result<String> {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/bookings/waitlist",
            Some(json!({
            "patient": patient, "treatment": "tiaoq", "from": at("10:00"), "to": at("11:00")})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    anyhow::ensure!(b["state"] == "waiting", "{b}");
    Ok(b["id"].as_str().unwrap_or_default().to_owned())
}

async fn entry(app: &TestApp, id: &str) -> anyhow::Result<Value> {
    let (s, list) = app
        .call("GET", "/api/v1/bookings/waitlist?limit=500", None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{list}");
    list["items"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["id"] == id).cloned())
        .ok_or_else(|| anyhow::anyhow!("no entry {id}: {list}"))
}

#[tokio::test]
async fn a_freed_slot_is_offered_to_the_first_waiting_patient() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, taken) = book(&app, "10:10", "10:40", "单雪").await?;
        assert_eq!(s, StatusCode::CREATED, "{taken}");
        let zhang = join(&app, "张三").await?;
        let li = join(&app, "李四").await?;

        // 单雪 cancels: the slot goes to 张三, who joined first.
        let id = taken["id"].as_str().unwrap_or_default();
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/{id}/cancel"),
                Some(json!({"reason": "改期"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let offered = entry(&app, &zhang).await?;
        assert_eq!(offered["state"], "offered", "{offered}");
        assert_eq!(offered["offer"]["patient"], "张三", "{offered}");
        assert_eq!(
            entry(&app, &li).await?["state"],
            "waiting",
            "one slot, one offer"
        );
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/waitlist/{zhang}/accept"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["state"], "booked", "{b}");
        let booking = b["booking"].as_str().unwrap_or_default().to_owned();
        let (s, shown) = app
            .call("GET", &format!("/api/v1/bookings/{booking}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{shown}");
        assert_eq!(shown["patient"], "张三", "{shown}");
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/waitlist/{zhang}/accept"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "waitlist_not_offered", "{b}");

        // 张三 moves her visit to the afternoon: her morning slot is offered to 李四, but a
        // walk-in takes it first; 李四's acceptance is refused and she waits again.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/{booking}/reschedule"),
                Some(json!({"start": at("15:00"), "end": at("15:30")})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let offered = entry(&app, &li).await?;
        assert_eq!(offered["state"], "offered", "{offered}");
        let start = offered["offer"]["start"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let end = offered["offer"]["end"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/bookings",
                Some(json!({
            "resources": ["room-a2", "picolaser-1"], "start": start, "end": end,
            "buffer_before_minutes": 10, "buffer_after_minutes": 10, "patient": "散客"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/waitlist/{li}/accept"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "booking_conflict", "{b}");
        assert_eq!(entry(&app, &li).await?["state"], "waiting");
        // Withdrawn, she is offered nothing more.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/waitlist/{li}/withdraw"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["state"], "withdrawn", "{b}");
        let (_, list) = app
            .call("GET", "/api/v1/bookings/waitlist?state=withdrawn", None)
            .await?;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bad_waitlist_input_is_named_and_grants_are_checked() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, b) = app
            .call("POST", "/api/v1/bookings/waitlist", Some(json!({
                "patient": "", "treatment": "botox", "from": "tomorrow", "to": at("11:00"), "practitioner": "doc.li"})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<Value> = b["error"]["details"].as_array().cloned().unwrap_or_default().iter().map(|d| d["path"].clone()).collect();
        for p in ["/patient", "/treatment", "/from"] {
            assert!(paths.contains(&json!(p)), "{p} in {b}");
        }
        let (s, b) = app
            .call("POST", "/api/v1/bookings/waitlist", Some(json!({
                "patient": "张三", "treatment": "tiaoq", "from": at("11:00"), "to": at("10:00"), "practitioner": "doc.li"})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<Value> = b["error"]["details"].as_array().cloned().unwrap_or_default().iter().map(|d| d["path"].clone()).collect();
        assert!(paths.contains(&json!("/to")) && paths.contains(&json!("/practitioner")), "{b}");
        let (s, _) = app.call("GET", "/api/v1/bookings/waitlist?state=lost", None).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = app.call("POST", "/api/v1/bookings/waitlist/nope/accept", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let reader = app.user_with("reader", &["bookings:read"]).await?;
        let (s, _) = app.call_as(As::Bearer(&reader), "GET", "/api/v1/bookings/waitlist", None).await?;
        assert_eq!(s, StatusCode::OK);
        let (s, b) = app
            .call_as(As::Bearer(&reader), "POST", "/api/v1/bookings/waitlist", Some(json!({
                "patient": "张三", "treatment": "tiaoq", "from": at("10:00"), "to": at("11:00")})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or("").contains("bookings:book"), "{b}");
        Ok(())
    })
    .await
}
