//! Bookings as kernel reservations (issue 14 §2), on both databases: a visit holds its
//! treatment room, its device and its practitioner over its time plus the buffers before
//! and after, all or nothing; an overlap on any one of them is refused with 409
//! `booking_conflict`, naming the booking in the way and the next free starts; a span
//! outside a holder's working calendar, an unknown holder or bad times get 422 at their
//! pointer and nothing is written; rescheduling, cancelling and no-show leave a history;
//! the holds survive a restart. And 200 requests for one slot at once: exactly one wins.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

/// 2026-12-03, a Thursday, at `hh:mm` in the clinic's time (UTC+8).
fn at(hm: &str) -> String {
    format!("2026-12-03T{hm}:00+08:00")
}

/// The same instant as the API shows it (UTC, microseconds).
fn shown(hm: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(&at(hm))
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        })
        .unwrap_or_default()
}

fn visit(start: &str, end: &str) -> Value {
    json!({
        "resources": ["room-a1", "picolaser-1"], "operators": ["doc.wang"],
        "start": at(start), "end": at(end),
        "buffer_before_minutes": 15, "buffer_after_minutes": 15,
        "patient": "曾丽", "treatment": "调Q激光"
    })
}

/// Rows of one of erpos's own tables.
async fn rows(app: &TestApp, table: &str) -> anyhow::Result<i64> {
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("SELECT CAST(COUNT(*) AS TEXT) FROM ").ident(table);
    let found = app.kernel.db.fetch(sql).await?;
    Ok(found
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|t| t.parse().ok())
        .unwrap_or(-1))
}

async fn holds(app: &TestApp) -> anyhow::Result<i64> {
    rows(app, "booking_holds").await
}

fn details(b: &Value) -> Vec<(String, String)> {
    b["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["path"].as_str().unwrap_or_default().to_owned(),
                d["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn detail_at<'a>(d: &'a [(String, String)], path: &str) -> Option<&'a str> {
    d.iter().find(|(p, _)| p == path).map(|(_, m)| m.as_str())
}

#[tokio::test]
async fn a_visit_holds_room_device_and_practitioner_all_or_nothing() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.bookable_clinic().await?;
        let (s, first) = app.call("POST", "/api/v1/bookings", Some(visit("10:00", "11:00"))).await?;
        assert_eq!(s, StatusCode::CREATED, "{first}");
        assert_eq!(first["state"], "booked", "{first}");
        assert_eq!(first["held_from"], shown("09:45"), "{first}");
        assert_eq!(first["held_to"], shown("11:15"), "{first}");
        assert_eq!(first["version"], 1, "{first}");
        let id = first["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(holds(&app).await?, 3);

        // 11:00 with a quarter of an hour to prepare reaches into the first one's cleaning.
        let (s, refused) = app.call("POST", "/api/v1/bookings", Some(visit("11:00", "12:00"))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["code"], "booking_conflict", "{refused}");
        let d = details(&refused);
        assert!(detail_at(&d, "/resources/0").is_some_and(|m| m.contains(&id)), "{refused}");
        assert!(detail_at(&d, "/operators/0").is_some(), "{refused}");
        // The next free start: the first one's holds end at 11:15, this one's begin 15
        // minutes before its start.
        assert_eq!(detail_at(&d, "/alternatives/0"), Some(shown("11:30").as_str()), "{refused}");
        assert_eq!(d.iter().filter(|(p, _)| p.starts_with("/alternatives/")).count(), 3, "{refused}");

        // All or nothing: the laser is taken, so room A2 is not held either.
        let (s, refused) = app
            .call("POST", "/api/v1/bookings", Some(json!({
                "resources": ["room-a2", "picolaser-1"], "start": at("10:30"), "end": at("11:00")})))
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        assert_eq!(holds(&app).await?, 3);
        let (s, a2) = app
            .call("POST", "/api/v1/bookings", Some(json!({
                "resources": ["room-a2"], "start": at("10:30"), "end": at("11:00"), "treatment": "水光针"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{a2}");
        // Touching is not overlapping: held from 11:15, where the first one's holds end.
        let (s, touching) = app.call("POST", "/api/v1/bookings", Some(visit("11:30", "12:00"))).await?;
        assert_eq!(s, StatusCode::CREATED, "{touching}");

        // Bad requests name every problem and write nothing.
        let before = rows(&app, "bookings").await?;
        let (s, bad) = app
            .call("POST", "/api/v1/bookings", Some(json!({
                "resources": ["room-a9"], "operators": ["doc.wang"], "start": at("23:00"), "end": at("22:00"),
                "buffer_before_minutes": 300})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let d = details(&bad);
        assert!(detail_at(&d, "/resources/0").is_some_and(|m| m.contains("did you mean 'room-a1'")), "{bad}");
        assert!(detail_at(&d, "/end").is_some(), "{bad}");
        assert!(detail_at(&d, "/buffer_before_minutes").is_some(), "{bad}");
        let (s, late) = app
            .call("POST", "/api/v1/bookings", Some(json!({
                "resources": ["room-a2"], "operators": ["doc.wang"], "start": at("20:30"), "end": at("21:30")})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{late}");
        let d = details(&late);
        assert!(detail_at(&d, "/resources/0").is_some_and(|m| m.contains("does not work then")), "{late}");
        assert!(detail_at(&d, "/operators/0").is_some_and(|m| m.contains("menzhen")), "{late}");
        let (s, past) = app
            .call("POST", "/api/v1/bookings", Some(json!({
                "resources": ["room-a2"], "start": "2026-11-27T10:00:00+08:00", "end": "2026-11-27T11:00:00+08:00"})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{past}");
        let (s, unknown) = app
            .call("POST", "/api/v1/bookings", Some(json!({"resources": ["room-a1"], "start": at("15:00"), "end": at("16:00"), "room": "A1"})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{unknown}");
        assert_eq!(rows(&app, "bookings").await?, before);

        // Moved to the afternoon: the morning is free again, and the history says so.
        let (s, moved) = app
            .call("POST", &format!("/api/v1/bookings/{id}/reschedule"), Some(json!({"start": at("14:00"), "end": at("15:00"), "version": 1})))
            .await?;
        assert_eq!(s, StatusCode::OK, "{moved}");
        assert_eq!(moved["version"], 2, "{moved}");
        assert_eq!(moved["held_from"], shown("13:45"), "{moved}");
        let (s, stale) = app
            .call("POST", &format!("/api/v1/bookings/{id}/cancel"), Some(json!({"version": 1})))
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{stale}");
        assert_eq!(stale["error"]["code"], "version_conflict", "{stale}");
        let (s, morning) = app.call("POST", "/api/v1/bookings", Some(visit("10:00", "11:00"))).await?;
        assert_eq!(s, StatusCode::CREATED, "{morning}");
        let (s, cancelled) = app
            .call("POST", &format!("/api/v1/bookings/{id}/cancel"), Some(json!({"reason": "患者改期"})))
            .await?;
        assert_eq!(s, StatusCode::OK, "{cancelled}");
        assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
        let (s, again) = app.call("POST", &format!("/api/v1/bookings/{id}/no-show"), None).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{again}");
        assert_eq!(again["error"]["code"], "booking_not_active", "{again}");
        let (s, detail) = app.call("GET", &format!("/api/v1/bookings/{id}"), None).await?;
        assert_eq!(s, StatusCode::OK, "{detail}");
        let actions: Vec<&str> = detail["history"].as_array().into_iter().flatten().filter_map(|h| h["action"].as_str()).collect();
        assert_eq!(actions, ["booked", "rescheduled", "cancelled"], "{detail}");
        assert_eq!(detail["history"][2]["detail"]["reason"], "患者改期", "{detail}");

        // Lists: room A1's active bookings of the day, by start.
        let (s, list) = app
            .call("GET", &format!("/api/v1/bookings?resource=room-a1&state=booked&from={}&to={}",
                urlencoding(&at("00:00")), urlencoding(&at("23:59"))), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        let starts: Vec<&str> = list["items"].as_array().into_iter().flatten().filter_map(|b| b["start"].as_str()).collect();
        assert_eq!(starts, [shown("10:00"), shown("11:30")], "{list}");
        let (s, bad) = app.call("GET", "/api/v1/bookings?room=a1", None).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");

        // A clerk without the grant may not book; one with bookings:read may look.
        let clerk = app.user_with("clerk", &["bookings:read"]).await?;
        let (s, _) = app.call_as(As::Bearer(&clerk), "GET", "/api/v1/bookings", None).await?;
        assert_eq!(s, StatusCode::OK);
        let (s, denied) = app
            .call_as(As::Bearer(&clerk), "POST", "/api/v1/bookings", Some(visit("16:00", "17:00")))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{denied}");

        // The holds outlive a restart: the morning is still taken.
        let app = app.restart().await?;
        let (s, refused) = app.call("POST", "/api/v1/bookings", Some(visit("10:30", "11:00"))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        assert_eq!(app.kernel.bookings.holds_in_memory().await, 7);
        Ok(())
    })
    .await
}

fn urlencoding(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn two_hundred_requests_for_one_slot_exactly_one_wins() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.bookable_clinic().await?;
        let attempts =
            (0..200).map(|_| app.call("POST", "/api/v1/bookings", Some(visit("15:00", "16:00"))));
        let answers = futures_util::future::join_all(attempts).await;
        let mut won = 0;
        for answer in answers {
            let (s, b) = answer?;
            match s {
                StatusCode::CREATED => won += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(b["error"]["code"], "booking_conflict", "{b}");
                    let d = details(&b);
                    assert_eq!(
                        detail_at(&d, "/alternatives/0"),
                        Some(shown("16:30").as_str()),
                        "{b}"
                    );
                }
                other => anyhow::bail!("{other}: {b}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(rows(&app, "bookings").await?, 1);
        assert_eq!(holds(&app).await?, 3);
        Ok(())
    })
    .await
}
