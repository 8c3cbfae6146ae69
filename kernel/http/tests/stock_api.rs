//! Stock (issue 14 §8), on both databases. 保妥适 (botulinum toxin, counted in units, usable
//! 24 hours once reconstituted) arrives at the 徐汇 branch in three lots; a consumption takes
//! the first-expiring lot first and opens what it takes; a retry moves nothing twice; an
//! opened vial past its 24 hours is skipped, alerted and written off; taking more than is
//! usable is 409 and changes nothing; on hand is always the sum of a lot's movements; many
//! tills at once never take a lot below zero; bad input is named; grants are checked.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;

async fn setup(app: &TestApp) -> anyhow::Result<()> {
    for m in [
        json!({"name": "baotuoshi", "label": {"zh": "保妥适", "en": "Botox"}, "unit": "U",
               "reorder_level": 200, "use_within_hours_of_opening": 24}),
        json!({"label": {"zh": "玻尿酸"}, "unit": "支", "reorder_level": 5}),
    ] {
        let (s, b) = app.call("POST", "/api/v1/stock/materials", Some(m)).await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    }
    Ok(())
}

fn receipt(lot: &str, expires: &str, quantity: i64, reference: &str) -> Value {
    json!({"material": "baotuoshi", "branch": "xuhui", "lot_number": lot, "expires_on": expires,
           "quantity": quantity, "reference": reference})
}

fn consumption(quantity: i64, reference: &str) -> Value {
    json!({"material": "baotuoshi", "branch": "xuhui", "quantity": quantity, "reference": reference})
}

async fn lot_by_number(app: &TestApp, number: &str) -> anyhow::Result<Value> {
    let (s, b) = app
        .call(
            "GET",
            "/api/v1/stock/lots?material=baotuoshi&branch=xuhui",
            None,
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    b["items"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["lot_number"] == number).cloned())
        .ok_or_else(|| anyhow::anyhow!("no lot {number}: {b}"))
}

/// Every lot's on hand is the sum of its movements, and the last movement says it too.
async fn on_hand_is_its_movements(app: &TestApp) -> anyhow::Result<()> {
    let (_, lots) = app.call("GET", "/api/v1/stock/lots", None).await?;
    for lot in lots["items"].as_array().cloned().unwrap_or_default() {
        let id = lot["id"].as_str().unwrap_or_default();
        let (s, m) = app
            .call(
                "GET",
                &format!("/api/v1/stock/lots/{id}/movements?limit=500"),
                None,
            )
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "{m}");
        let items = m["items"].as_array().cloned().unwrap_or_default();
        let sum: i64 = items
            .iter()
            .map(|x| x["quantity"].as_i64().unwrap_or(0))
            .sum();
        anyhow::ensure!(lot["on_hand"] == sum, "{lot} vs {m}");
        anyhow::ensure!(lot["movements"] == items.len(), "{lot} vs {m}");
        if let Some(last) = items.last() {
            anyhow::ensure!(last["on_hand"] == sum, "{last}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn consumption_takes_the_first_expiring_lot_and_is_never_doubled() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        for (lot, expires, reference) in [
            ("C3201", "2027-03-31", "送货单-0001"),
            ("C2911", "2026-12-20", "送货单-0002"),
            ("C3305", "2027-06-30", "送货单-0003"),
        ] {
            let (s, b) = app.call("POST", "/api/v1/stock/receipts", Some(receipt(lot, expires, 100, reference))).await?;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            assert_eq!(b["lots"][0]["lot"]["on_hand"], 100, "{b}");
        }
        // A retried receipt answers the first; the same reference for another is refused.
        let (s, b) = app.call("POST", "/api/v1/stock/receipts", Some(receipt("C3201", "2027-03-31", 100, "送货单-0001"))).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app.call("POST", "/api/v1/stock/receipts", Some(receipt("C3201", "2027-03-31", 90, "送货单-0001"))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "reference_reused", "{b}");
        // The same lot number with another expiry is a mistake, named.
        let (s, b) = app.call("POST", "/api/v1/stock/receipts", Some(receipt("C3201", "2027-04-30", 10, "送货单-0004"))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/expires_on", "{b}");
        assert_eq!(lot_by_number(&app, "C3201").await?["on_hand"], 100);

        // 150 U for 单雪's 肉毒素: all of C2911 (expiring first), then 50 of C3201.
        let (s, taken) = app.call("POST", "/api/v1/stock/consumptions", Some(consumption(150, "治疗-0001-保妥适"))).await?;
        assert_eq!(s, StatusCode::CREATED, "{taken}");
        let lots: Vec<(Value, Value)> = taken["lots"].as_array().cloned().unwrap_or_default().iter()
            .map(|l| (l["lot"]["lot_number"].clone(), l["movement"]["quantity"].clone())).collect();
        assert_eq!(lots, vec![(json!("C2911"), json!(-100)), (json!("C3201"), json!(-50))], "{taken}");
        // Taking from it opened C3201: usable 24 hours from now, not until March.
        let opened = lot_by_number(&app, "C3201").await?;
        assert!(opened["opened_at"].is_string(), "{opened}");
        assert_eq!(opened["on_hand"], 50);
        // The retry takes nothing more.
        let (s, again) = app.call("POST", "/api/v1/stock/consumptions", Some(consumption(150, "治疗-0001-保妥适"))).await?;
        assert_eq!(s, StatusCode::OK, "{again}");
        assert_eq!(again["lots"], taken["lots"], "{again}");
        assert_eq!(lot_by_number(&app, "C3201").await?["on_hand"], 50);

        // A day later the opened vial is past its 24 hours: the next takes C3305.
        app.advance(25 * HOUR).await?;
        let (s, taken) = app.call("POST", "/api/v1/stock/consumptions", Some(consumption(60, "治疗-0002-保妥适"))).await?;
        assert_eq!(s, StatusCode::CREATED, "{taken}");
        assert_eq!(taken["lots"].as_array().map(Vec::len), Some(1), "{taken}");
        assert_eq!(taken["lots"][0]["lot"]["lot_number"], "C3305", "{taken}");
        // More than is usable (40) is refused, and nothing moves.
        let (s, b) = app.call("POST", "/api/v1/stock/consumptions", Some(consumption(41, "治疗-0003-保妥适"))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "insufficient_stock", "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or("").contains("40"), "{b}");
        assert_eq!(lot_by_number(&app, "C3305").await?["on_hand"], 40);
        let (s, b) = app.call("POST", "/api/v1/stock/consumptions", Some(consumption(40, "治疗-0003-保妥适"))).await?;
        assert_eq!(s, StatusCode::CREATED, "a refused reference is free to use again: {b}");

        // Alerts: the opened vial with 50 U left is expired; 保妥适 is under its 200 U.
        let (s, alerts) = app.call("GET", "/api/v1/stock/alerts?branch=xuhui", None).await?;
        assert_eq!(s, StatusCode::OK, "{alerts}");
        let expiring: Vec<Value> = alerts["expiring"].as_array().cloned().unwrap_or_default().iter().map(|l| l["lot_number"].clone()).collect();
        assert_eq!(expiring, vec![json!("C3201")], "{alerts}");
        assert_eq!(alerts["low"][0]["material"], "baotuoshi", "{alerts}");
        assert_eq!(alerts["low"][0]["on_hand"], 0, "{alerts}");
        // Written off, with the reason; more than is there is refused.
        let id = opened["id"].as_str().unwrap_or_default().to_owned();
        let off = |q: i64, r: &str| json!({"kind": "write_off", "quantity": q, "reference": r, "note": "开封超过24小时"});
        let (s, b) = app.call("POST", &format!("/api/v1/stock/lots/{id}/movements"), Some(off(51, "报废-0001"))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let (s, b) = app.call("POST", &format!("/api/v1/stock/lots/{id}/movements"), Some(off(50, "报废-0001"))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["lots"][0]["lot"]["on_hand"], 0, "{b}");
        let (s, b) = app.call("POST", &format!("/api/v1/stock/lots/{id}/movements"), Some(json!({"kind": "adjust", "quantity": 3, "reference": "盘点-0001", "note": "盘点多出"}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["lots"][0]["movement"]["kind"], "adjust", "{b}");
        on_hand_is_its_movements(&app).await
    })
    .await
}

#[tokio::test]
async fn many_tills_at_once_never_take_a_lot_below_zero() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/stock/receipts",
                Some(receipt("C4001", "2027-05-31", 60, "送货单-0101")),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        // 20 tills want 5 U each (100 U of 60): exactly 12 are served.
        let attempts = (0..20).map(|i| {
            let body = consumption(5, &format!("治疗-{i:04}"));
            app.call("POST", "/api/v1/stock/consumptions", Some(body))
        });
        let answers = futures_util::future::join_all(attempts).await;
        let mut served = 0;
        for a in answers {
            let (s, b) = a?;
            match s {
                StatusCode::CREATED => served += 1,
                StatusCode::CONFLICT => assert_eq!(b["error"]["code"], "insufficient_stock", "{b}"),
                other => panic!("{other}: {b}"),
            }
        }
        assert_eq!(served, 12);
        assert_eq!(lot_by_number(&app, "C4001").await?["on_hand"], 0);
        // Ten retries of one receipt at once: one movement.
        let attempts = (0..10).map(|_| {
            app.call(
                "POST",
                "/api/v1/stock/receipts",
                Some(receipt("C4001", "2027-05-31", 30, "送货单-0102")),
            )
        });
        let answers = futures_util::future::join_all(attempts).await;
        let mut created = 0;
        for a in answers {
            let (s, b) = a?;
            assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {b}");
            created += usize::from(s == StatusCode::CREATED);
        }
        assert_eq!(created, 1);
        assert_eq!(lot_by_number(&app, "C4001").await?["on_hand"], 30);
        on_hand_is_its_movements(&app).await
    })
    .await
}

#[tokio::test]
async fn bad_stock_input_is_named_and_grants_are_checked() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let bad = [
            ("/api/v1/stock/materials", json!({"label": {"zh": ""}, "unit": ""}), vec!["/label/zh", "/unit"]),
            ("/api/v1/stock/receipts", json!({"material": "botox", "branch": "Xu Hui", "lot_number": "", "expires_on": "2027-02-30", "quantity": 0, "reference": "r"}),
             vec!["/material", "/branch", "/lot_number", "/expires_on", "/quantity"]),
            ("/api/v1/stock/consumptions", json!({"material": "baotuoshi", "branch": "xuhui", "quantity": -5, "reference": ""}), vec!["/quantity", "/reference"]),
            ("/api/v1/stock/consumptions", json!({"material": "baotuoshi", "branch": "xuhui", "quantity": 5, "reference": "r", "lot": "x"}), vec!["/lot"]),
        ];
        for (path, body, pointers) in bad {
            let (s, b) = app.call("POST", path, Some(body.clone())).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
            let got: Vec<Value> = b["error"]["details"].as_array().cloned().unwrap_or_default().iter().map(|d| d["path"].clone()).collect();
            for p in pointers {
                assert!(got.contains(&json!(p)), "{p} in {b}");
            }
        }
        let (s, b) = app.call("GET", "/api/v1/stock/alerts?days=0", None).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        let (s, _) = app.call("GET", "/api/v1/stock/lots/nope/movements", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app.call("POST", "/api/v1/stock/lots/nope/open", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let nurse = app.user_with("nurse_chen", &["stock:read"]).await?;
        let (s, b) = app.call_as(As::Bearer(&nurse), "GET", "/api/v1/stock/materials", None).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app
            .call_as(As::Bearer(&nurse), "POST", "/api/v1/stock/consumptions", Some(consumption(1, "r1")))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or("").contains("stock:move"), "{b}");
        let (s, b) = app
            .call_as(As::Bearer(&nurse), "POST", "/api/v1/stock/materials", Some(json!({"label": {"zh": "麻膏"}, "unit": "g"})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or("").contains("stock:manage"), "{b}");
        Ok(())
    })
    .await
}
