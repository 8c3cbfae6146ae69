//! Planning a day and capacity (issue 14 §4), on both databases. The clinic has two
//! treatment rooms, one picosecond laser and two certified practitioners, open
//! 09:00–21:00; 调Q激光 holds them 50 minutes (10 to prepare, 30, 10 to clean), so the
//! laser is the bottleneck: 14 visits a day at most. With one visit already booked, a plan
//! of 20 requests places 13, respects every window and preference, never puts a patient in
//! two places, and is bookable as proposed; the bound says no plan could place more than
//! 13.4 visits' worth. Capacity then shows the laser's load, and a week of 120 visits is
//! reported short of one laser.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

fn at(day: u32, hm: &str) -> String {
    format!("2026-12-{day:02}T{hm}:00+08:00")
}

fn ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
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
    // Each visit numbs with 5 g of 麻膏; 500 g are in stock.
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/stock/materials",
            Some(json!({"name": "mague", "label": {"zh": "麻膏"}, "unit": "g"})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/stock/receipts",
            Some(
                json!({"material": "mague", "branch": "xuhui", "lot_number": "M-2611",
            "expires_on": "2027-06-30", "quantity": 500, "reference": "送货单-M1"}),
            ),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/treatments",
            Some(json!({
            "name": "tiaoq", "label": {"zh": "调Q激光"},
            "duration_minutes": 30, "buffer_before_minutes": 10, "buffer_after_minutes": 10,
            "resource_types": ["treatment_room", "laser"], "skill": "laser_cert",
            "consumables": [{"material": "mague", "quantity": 5}]})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    Ok(())
}

fn booking_of(visit: &Value) -> Value {
    json!({
        "resources": visit["resources"], "operators": visit["operators"],
        "start": visit["start"], "end": visit["end"],
        "buffer_before_minutes": visit["buffer_before_minutes"],
        "buffer_after_minutes": visit["buffer_after_minutes"],
        "treatment": visit["treatment"], "patient": visit["patient"]
    })
}

#[tokio::test]
async fn a_day_is_planned_to_its_bound_and_booked_as_proposed() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        // One visit already booked first thing: 09:10, held 09:00–09:50.
        let (s, b) = app
            .call("POST", "/api/v1/bookings", Some(json!({
                "resources": ["room-a1", "picolaser-1"], "operators": ["doc.wang"],
                "start": at(3, "09:10"), "end": at(3, "09:40"),
                "buffer_before_minutes": 10, "buffer_after_minutes": 10,
                "treatment": "tiaoq", "patient": "单雪"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");

        let names = ["张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十", "郑一", "冯二"];
        let mut requests: Vec<Value> = (0..20)
            .map(|i| json!({"treatment": "tiaoq", "patient": format!("{}{}", names[i % 10], i / 10)}))
            .collect();
        // 张三 (request 0) comes twice; one of her visits can only be in the evening, and matters most.
        requests[2] = json!({"treatment": "tiaoq", "patient": "张三0", "priority": 5,
                             "earliest": at(3, "18:00"), "latest": at(3, "19:00")});
        requests[3] = json!({"treatment": "tiaoq", "patient": "赵六0", "practitioner": "doc.li"});
        let (s, plan) = app
            .call("POST", "/api/v1/bookings/plan", Some(json!({
                "from": at(3, "00:00"), "to": at(4, "00:00"), "requests": requests})))
            .await?;
        assert_eq!(s, StatusCode::OK, "{plan}");
        let placed = plan["placed"].as_array().cloned().unwrap_or_default();
        // 670 free laser minutes hold 13 visits of 50; the bound is 670/50 × 30 = 402 minutes.
        assert_eq!(placed.len(), 13, "{plan}");
        assert_eq!(plan["unplaced"].as_array().map(Vec::len), Some(7), "{plan}");
        assert_eq!(plan["treatment_minutes"], 390, "{plan}");
        assert_eq!(plan["bound_minutes"], 402, "{plan}");
        let ratio = plan["ratio_to_bound"].as_f64().unwrap_or(0.0);
        assert!(ratio > 0.95 && ratio <= 1.0, "{plan}");
        assert!(
            plan["unplaced"][0]["reason"].as_str().unwrap_or("").contains("filled"),
            "{plan}"
        );
        let laser = plan["load"]
            .as_array()
            .and_then(|l| l.iter().find(|h| h["id"] == "picolaser-1").cloned())
            .unwrap_or_default();
        assert_eq!(laser["free_minutes"], 670, "{plan}");
        assert_eq!(laser["planned_minutes"], 650, "{plan}");

        // The evening visit is in its window; 赵六 has her practitioner; 张三 is never in
        // two places; every visit is within opening hours, buffers included.
        let of = |request: usize| placed.iter().find(|v| v["request"] == request).cloned();
        let evening = of(2).ok_or_else(|| anyhow::anyhow!("the priority visit is placed: {plan}"))?;
        let start = ms(evening["start"].as_str().unwrap_or(""));
        assert!(start >= ms(&at(3, "18:00")) && ms(evening["end"].as_str().unwrap_or("")) <= ms(&at(3, "19:00")), "{evening}");
        if let Some(li) = of(3) {
            assert_eq!(li["operators"], json!(["doc.li"]), "{li}");
        }
        let zhang: Vec<(i64, i64)> = placed
            .iter()
            .filter(|v| v["patient"] == "张三0")
            .map(|v| (ms(v["start"].as_str().unwrap_or("")), ms(v["end"].as_str().unwrap_or(""))))
            .collect();
        assert_eq!(zhang.len(), 2, "{plan}");
        assert!(zhang[0].1 + 20 * 60_000 <= zhang[1].0 || zhang[1].1 + 20 * 60_000 <= zhang[0].0, "{zhang:?}");
        for v in &placed {
            let s = ms(v["start"].as_str().unwrap_or("")) - 10 * 60_000;
            let e = ms(v["end"].as_str().unwrap_or("")) + 10 * 60_000;
            assert!(s >= ms(&at(3, "09:00")) && e <= ms(&at(3, "21:00")), "{v}");
        }

        // Bookable as proposed: every one is taken, none refused.
        for v in &placed {
            let (s, b) = app.call("POST", "/api/v1/bookings", Some(booking_of(v))).await?;
            assert_eq!(s, StatusCode::CREATED, "{v} → {b}");
        }

        // The day's load: the laser is booked 700 of its 720 minutes.
        let path = format!("/api/v1/capacity?from={}&to={}&by=day", q(&at(3, "00:00")), q(&at(5, "00:00")));
        let (s, report) = app.call("GET", &path, None).await?;
        assert_eq!(s, StatusCode::OK, "{report}");
        let day3 = report["items"]
            .as_array()
            .and_then(|l| l.iter().find(|h| h["id"] == "picolaser-1").cloned())
            .unwrap_or_default();
        assert_eq!(day3["capacity_minutes"], 720, "{report}");
        assert_eq!(day3["booked_minutes"], 700, "{report}");
        assert_eq!(day3["of"], "laser", "{report}");
        let doc = report["items"]
            .as_array()
            .map(|l| l.iter().filter(|h| h["kind"] == "operator").count())
            .unwrap_or(0);
        assert_eq!(doc, 4, "two practitioners, two days: {report}");

        // A week of 100 visits fits the laser; 120 need a second one.
        let week = |count: u32| json!({"from": at(7, "00:00"), "to": at(14, "00:00"),
                                        "mix": [{"treatment": "tiaoq", "count": count}]});
        let (s, fits) = app.call("POST", "/api/v1/capacity/needs", Some(week(100))).await?;
        assert_eq!(s, StatusCode::OK, "{fits}");
        assert_eq!(fits["fits"], true, "{fits}");
        let (s, short) = app.call("POST", "/api/v1/capacity/needs", Some(week(120))).await?;
        assert_eq!(s, StatusCode::OK, "{short}");
        assert_eq!(short["fits"], false, "{short}");
        let laser = short["items"][0].clone();
        assert_eq!(laser["of"], "laser", "the tightest first: {short}");
        assert_eq!(laser["needed_minutes"], 6000, "{short}");
        assert_eq!(laser["free_minutes"], 5040, "{short}");
        assert_eq!(laser["shortfall_minutes"], 960, "{short}");
        assert_eq!(laser["members_needed"], 2, "{short}");
        // …and 600 g of 麻膏 where 500 g are usable.
        assert_eq!(fits["materials"][0]["fits"], true, "{fits}");
        let mague = short["materials"][0].clone();
        assert_eq!(mague["material"], "mague", "{short}");
        assert_eq!(mague["needed"], 600, "{short}");
        assert_eq!(mague["usable"], 500, "{short}");
        assert_eq!(mague["shortfall"], 100, "{short}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bad_plans_are_named_and_plans_need_a_grant() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let bad = [
            (json!({"from": at(3, "09:00"), "to": at(3, "08:00"), "requests": [{"treatment": "tiaoq"}]}), "/to"),
            (json!({"from": at(3, "09:00"), "to": at(12, "09:00"), "requests": [{"treatment": "tiaoq"}]}), "/to"),
            (json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": []}), "/requests"),
            (json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": [{"treatment": "botox"}]}), "/requests/0/treatment"),
            (json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": [{"treatment": "tiaoq", "earliest": at(3, "10:00"), "latest": at(3, "10:20")}]}), "/requests/0/latest"),
            (json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": [{"treatment": "tiaoq", "practitioner": "nurse.chen"}]}), "/requests/0/practitioner"),
            (json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": [{"treatment": "tiaoq", "priority": 1000}]}), "/requests/0/priority"),
            (json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": [{"treatment": "tiaoq", "patient": "张".repeat(201)}]}), "/requests/0/patient"),
            (json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": [{"treatment": "tiaoq"}], "apply": true}), "/apply"),
        ];
        for (body, pointer) in bad {
            let (s, b) = app.call("POST", "/api/v1/bookings/plan", Some(body.clone())).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
            let details = b["error"]["details"].as_array().cloned().unwrap_or_default();
            assert!(details.iter().any(|d| d["path"] == pointer), "{pointer} in {b}");
        }
        // A treatment consuming a material nobody defined is named.
        let (s, b) = app
            .call("POST", "/api/v1/treatments", Some(json!({"name": "guosuan", "label": {"zh": "果酸焕肤"},
                "duration_minutes": 30, "skill": "laser_cert",
                "consumables": [{"material": "guosuan_ye", "quantity": 1}, {"material": "mague", "quantity": 0}]})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<Value> = b["error"]["details"].as_array().cloned().unwrap_or_default().iter().map(|d| d["path"].clone()).collect();
        assert!(paths.contains(&json!("/consumables/0/material")) && paths.contains(&json!("/consumables/1/quantity")), "{b}");
        let (s, b) = app.call("GET", "/api/v1/capacity?from=x&by=month", None).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        let paths: Vec<Value> = b["error"]["details"].as_array().cloned().unwrap_or_default().iter().map(|d| d["path"].clone()).collect();
        for p in ["/query/from", "/query/to", "/query/by"] {
            assert!(paths.contains(&json!(p)), "{p} in {b}");
        }
        let (s, b) = app
            .call("POST", "/api/v1/capacity/needs", Some(json!({"from": at(7, "00:00"), "to": at(14, "00:00"), "mix": [{"treatment": "botox", "count": 0}]})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"].as_array().map(Vec::len), Some(2), "{b}");

        let token = app.user_with("receptionist", &[]).await?;
        let plan = json!({"from": at(3, "09:00"), "to": at(3, "21:00"), "requests": [{"treatment": "tiaoq"}]});
        let (s, b) = app.call_as(As::Bearer(&token), "POST", "/api/v1/bookings/plan", Some(plan)).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or("").contains("bookings:read"), "{b}");
        let path = format!("/api/v1/capacity?from={}&to={}", q(&at(3, "00:00")), q(&at(4, "00:00")));
        let (s, _) = app.call_as(As::Bearer(&token), "GET", &path, None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        Ok(())
    })
    .await
}
