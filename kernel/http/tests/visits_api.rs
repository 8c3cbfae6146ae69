//! A booked visit is a process (issue 14 §2): booking 调Q激光, whose treatment runs the
//! service `visit`, starts a process that is NEW until the day before (the reminder),
//! waits for the booked time, and is dispatched onto exactly what was booked — the second
//! treatment room and 王医生 — although the first room is free and 李医生, as qualified and
//! first by name, would be picked by the step's own rule. Moving the booking moves the
//! process; cancelling it cancels the process; nobody but the kernel sets
//! `context.booking`. On both databases, with the test clock (2026-11-28 17:00 China time).

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

fn at(day: u32, hm: &str) -> String {
    format!("2026-12-{day:02}T{hm}:00+08:00")
}

fn ms(day: u32, hm: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&at(day, hm))
        .map(|t| t.timestamp_millis())
        .unwrap_or_default()
}

async fn setup(app: &TestApp) -> anyhow::Result<()> {
    app.bookable_clinic().await?;
    let ok = |(s, b): (StatusCode, Value)| {
        anyhow::ensure!(s.is_success(), "{s} {b}");
        Ok(b)
    };
    ok(app
        .call("POST", "/api/v1/users", Some(json!({"id": "doc.li", "name": "李医生", "skills": ["laser_cert"], "calendar": "menzhen"})))
        .await?)?;
    ok(app
        .call("POST", "/api/v1/services", Some(json!({
            "name": "visit", "label": {"zh": "就诊", "en": "Visit"},
            "steps": [
                {"name": "remind", "kind": "automatic", "label": {"zh": "预约提醒"},
                 "instructions": [{"op": "notify", "to": ["doc.wang"], "title": "明日预约", "body": "{{context.booking.start}}"}]},
                {"name": "wait_slot", "kind": "wait", "label": {"zh": "等待预约时间"},
                 "wait": {"until": "if \"booking\" in context { context.booking.held_from_ms } else { 0 }"}},
                {"name": "treat", "kind": "human", "label": {"zh": "治疗"}, "booked": true,
                 "operators": {"skill": "laser_cert"}},
                {"name": "end", "kind": "end", "label": {"zh": "完成"}}
            ],
            "transitions": [
                {"from": "remind", "to": "wait_slot"},
                {"from": "wait_slot", "to": "treat"},
                {"from": "treat", "to": "end"}
            ]
        })))
        .await?)?;
    ok(app
        .call("POST", "/api/v1/services/visit/publish", Some(json!({})))
        .await?)?;
    ok(app
        .call(
            "POST",
            "/api/v1/treatments",
            Some(json!({
            "name": "tiaoq", "label": {"zh": "调Q激光"}, "service": "visit",
            "duration_minutes": 30, "buffer_before_minutes": 10, "buffer_after_minutes": 10,
            "resource_types": ["treatment_room", "laser"], "skill": "laser_cert"})),
        )
        .await?)?;
    Ok(())
}

fn booking(hm: &str, end: &str) -> Value {
    json!({
        "resources": ["room-a2", "picolaser-1"], "operators": ["doc.wang"],
        "start": at(3, hm), "end": at(3, end),
        "buffer_before_minutes": 10, "buffer_after_minutes": 10,
        "treatment": "tiaoq", "patient": "单雪"
    })
}

async fn process(app: &TestApp, pid: &Value) -> anyhow::Result<Value> {
    let (s, p) = app
        .call("GET", &format!("/api/v1/processes/{pid}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {p}");
    Ok(p)
}

/// Moves the test clock to `to` (ms) and fires what is due.
async fn until(app: &TestApp, to: i64) -> anyhow::Result<()> {
    let now = app.kernel.clock.now_ms();
    app.advance(to - now).await
}

#[tokio::test]
async fn a_booked_visit_runs_on_exactly_what_it_booked() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, booked) = app
            .call("POST", "/api/v1/bookings", Some(booking("10:00", "10:30")))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{booked}");
        let pid = booked["process"].clone();
        assert!(pid.is_u64(), "the booking names its process: {booked}");
        assert_eq!(booked["version"], 1, "linking the process moves no version");
        let p = process(&app, &pid).await?;
        assert_eq!(p["state"], "NEW", "NEW until the day before: {p}");
        assert_eq!(p["context"]["booking"]["id"], booked["id"]);
        assert_eq!(
            p["context"]["booking"]["resources"],
            json!(["room-a2", "picolaser-1"])
        );

        // Moved to 14:00 the same day: the process is still NEW, and starts a day before
        // the new time, not the old one.
        let id = booked["id"].as_str().unwrap_or_default().to_owned();
        let (s, moved) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/{id}/reschedule"),
                Some(json!({"start": at(3, "14:00"), "end": at(3, "14:30"), "version": 1})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{moved}");
        until(&app, ms(2, "10:05")).await?;
        let p = process(&app, &pid).await?;
        assert_eq!(p["state"], "NEW", "the old reminder time does nothing: {p}");
        assert_eq!(p["context"]["booking"]["start_ms"], ms(3, "14:00"));
        until(&app, ms(2, "14:00")).await?;
        let p = process(&app, &pid).await?;
        assert_eq!(
            p["state"], "WAITING",
            "reminded, waiting for the booked time: {p}"
        );
        assert_eq!(p["step"], "wait_slot");
        app.kernel.outbox.deliver_due().await?;
        let (_, inbox) = app
            .call("GET", "/api/v1/notifications?user=doc.wang", None)
            .await?;
        assert_eq!(inbox["items"][0]["title"], "明日预约", "{inbox}");

        // At the held start (13:50, the buffer before 14:00) the treatment is dispatched
        // onto the second room, the laser and 王医生: not room-a1 nor 李医生, both free.
        until(&app, ms(3, "13:49")).await?;
        assert_eq!(process(&app, &pid).await?["state"], "WAITING");
        until(&app, ms(3, "13:50")).await?;
        let p = process(&app, &pid).await?;
        assert_eq!(p["state"], "RUNNING", "{p}");
        assert_eq!(p["operator"], "doc.wang", "{p}");
        let held: Vec<&str> = p["allocations"]
            .as_array()
            .map(|l| l.iter().filter_map(|a| a["resource"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(held, ["room-a2", "picolaser-1"], "{p}");
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/handle"),
                Some(json!({"user": "doc.wang", "attribute": "agree"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let p = process(&app, &pid).await?;
        assert_eq!(p["state"], "TERMINATED", "{p}");
        assert_eq!(p["exit"], "completed", "{p}");
        let (_, shown) = app
            .call("GET", &format!("/api/v1/bookings/{id}"), None)
            .await?;
        let actions: Vec<&str> = shown["history"]
            .as_array()
            .map(|l| l.iter().filter_map(|h| h["action"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            actions,
            ["booked", "process_started", "rescheduled"],
            "{shown}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cancelling_a_booking_cancels_its_visit_and_nobody_else_sets_a_booking()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, booked) = app
            .call("POST", "/api/v1/bookings", Some(booking("10:00", "10:30")))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{booked}");
        let id = booked["id"].as_str().unwrap_or_default().to_owned();
        let (s, ended) = app
            .call(
                "POST",
                &format!("/api/v1/bookings/{id}/cancel"),
                Some(json!({"reason": "患者改约"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{ended}");
        assert_eq!(ended["process"], booked["process"]);
        let p = process(&app, &booked["process"]).await?;
        assert_eq!(p["state"], "TERMINATED", "{p}");
        assert_eq!(p["exit"], "cancelled", "{p}");

        // A booking of a treatment without a service, or of free text, is a reservation only.
        let mut plain = booking("15:00", "15:30");
        plain["treatment"] = json!("水光针");
        let (s, b) = app.call("POST", "/api/v1/bookings", Some(plain)).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert!(b.get("process").is_none(), "{b}");

        // The booking in a process's context is the kernel's: a caller cannot set it.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(
                    json!({"service": "visit", "context": {"booking": {"resources": ["room-a1"]}}}),
                ),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/context/booking", "{b}");
        // A walk-in (no booking) passes the wait at once and is dispatched by the step's
        // own rule.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "visit"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        app.advance(1).await?;
        let p = process(&app, &b["id"]).await?;
        assert_eq!(p["state"], "RUNNING", "{p}");
        assert_eq!(p["operator"], "doc.li", "the rule's pick: {p}");
        // A treatment naming a service that is not published is refused at its pointer.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/treatments",
                Some(
                    json!({"name": "guangzi", "label": {"zh": "光子嫩肤"}, "service": "visti",
                "duration_minutes": 30, "resource_types": ["treatment_room"]}),
                ),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/service", "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_booking_stored_before_a_crash_gets_its_visit_at_the_next_start() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        // The booking is stored, and the kernel stops before the visit process starts
        // (the store's own call, as the application layer makes it before starting one).
        let span = |from: i64, to: i64| erpos_kernel::bookings::index::Span { from, to };
        let reservation = erpos_kernel::bookings::Reservation {
            kind: erpos_kernel::bookings::BookingKind::Visit,
            times: erpos_kernel::bookings::Times {
                served: span(ms(3, "10:00"), ms(3, "10:30")),
                held: span(ms(3, "09:50"), ms(3, "10:40")),
                before: 10,
                after: 10,
            },
            resources: vec!["room-a2".into(), "picolaser-1".into()],
            operators: vec!["doc.wang".into()],
            patient: Some("单雪".into()),
            treatment: Some("tiaoq".into()),
            note: None,
            branch: None,
        };
        let always = |_: &[String], _: erpos_kernel::bookings::index::Span| None;
        let now = app.kernel.clock.now_ms();
        let stored = app
            .kernel
            .bookings
            .book(reservation, "qiantai_zhou", now, &always)
            .await?;
        assert!(stored.process.is_none());
        let app = app.restart().await?;
        let (s, shown) = app
            .call("GET", &format!("/api/v1/bookings/{}", stored.id), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{shown}");
        let pid = shown["process"].clone();
        assert!(
            pid.is_u64(),
            "started when the kernel opened again: {shown}"
        );
        let p = process(&app, &pid).await?;
        assert_eq!(p["state"], "NEW", "{p}");
        assert_eq!(
            p["creator"], "qiantai_zhou",
            "on behalf of whoever booked: {p}"
        );
        // And only once: another start finds it linked.
        let app = app.restart().await?;
        let (_, list) = app
            .call("GET", "/api/v1/processes?service=visit", None)
            .await?;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
        Ok(())
    })
    .await
}
