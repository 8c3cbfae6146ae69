//! Charges (issue 14 §7), on both databases. 张三's 光子嫩肤 (1280.00) is charged from her
//! 储值卡: a balance short of it is 409 `insufficient_balance` and nothing changes; once
//! recharged the charge takes exactly the receivable less the discount, a retry answers the
//! first charge and never takes twice, and voiding gives the money back (once). A charge
//! at the desk names its method; a course's session covers a charge and comes back when it
//! is voided, and a used-up course is 409; a deposit taken at booking is applied to the
//! visit's charge and cannot be voided while it is. Bad requests name their fields; grants
//! are checked.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

async fn setup(app: &TestApp) -> anyhow::Result<String> {
    app.bookable_clinic().await?;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/treatments",
            Some(
                json!({"name": "guangzi", "label": {"zh": "光子嫩肤"}, "price": "1280.00",
            "duration_minutes": 30, "resource_types": ["treatment_room"], "skill": "laser_cert"}),
            ),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/accounts",
            Some(json!({"holder": "patient-zhangsan", "label": "储值卡"})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    let account = b["id"].as_str().unwrap_or_default().to_owned();
    recharge(app, &account, "1000.00", "充值-1").await?;
    Ok(account)
}

async fn recharge(app: &TestApp, account: &str, amount: &str, r: &str) -> anyhow::Result<()> {
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/v1/accounts/{account}/entries"),
            Some(json!({"kind": "recharge", "amount": amount, "reference": r})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    Ok(())
}

async fn balance(app: &TestApp, account: &str) -> anyhow::Result<String> {
    let (s, b) = app
        .call("GET", &format!("/api/v1/accounts/{account}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    Ok(b["balance"].as_str().unwrap_or_default().to_owned())
}

async fn charge(app: &TestApp, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    app.call("POST", "/api/v1/charges", Some(body)).await
}

async fn void(app: &TestApp, id: &Value) -> anyhow::Result<(StatusCode, Value)> {
    let id = id.as_str().unwrap_or_default();
    app.call(
        "POST",
        &format!("/api/v1/charges/{id}/void"),
        Some(json!({"reason": "录错了项目"})),
    )
    .await
}

fn paths(b: &Value) -> Vec<String> {
    b["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["path"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_prepaid_charge_takes_exactly_once_and_a_void_gives_it_back() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let account = setup(&app).await?;
        let prepaid = json!({"reference": "visit-1", "holder": "patient-zhangsan",
            "charge_type": "prepaid", "treatment": "guangzi", "account": account,
            "discount": "80.00"});
        // 1000.00 does not cover 1200.00: refused, nothing changes.
        let (s, b) = charge(&app, prepaid.clone()).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "insufficient_balance", "{b}");
        assert_eq!(balance(&app, &account).await?, "1000.00");
        let (_, list) = app.call("GET", "/api/v1/charges", None).await?;
        assert_eq!(list["items"], json!([]), "{list}");

        recharge(&app, &account, "500.00", "充值-2").await?;
        let (s, first) = charge(&app, prepaid.clone()).await?;
        assert_eq!(s, StatusCode::CREATED, "{first}");
        assert_eq!(
            first["receivable"], "1280.00",
            "the treatment's price: {first}"
        );
        assert_eq!(first["discount"], "80.00", "{first}");
        assert_eq!(first["received"], "1200.00", "{first}");
        assert_eq!(first["status"], "paid", "{first}");
        assert_eq!(balance(&app, &account).await?, "300.00");
        // The retry, and five at once, answer the first charge.
        let (s, again) = charge(&app, prepaid.clone()).await?;
        assert_eq!(s, StatusCode::OK, "{again}");
        assert_eq!(again["id"], first["id"]);
        let tries = (0..5).map(|_| charge(&app, prepaid.clone()));
        for t in futures_util::future::join_all(tries).await {
            let (s, b) = t?;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        assert_eq!(balance(&app, &account).await?, "300.00");
        // The same reference for another patient is refused.
        let (s, b) = charge(
            &app,
            json!({"reference": "visit-1", "holder": "patient-lisi",
            "charge_type": "single", "amount": "10.00", "method": "cash"}),
        )
        .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "reference_reused", "{b}");

        let (s, voided) = void(&app, &first["id"]).await?;
        assert_eq!(s, StatusCode::CREATED, "{voided}");
        assert_eq!(voided["status"], "void", "{voided}");
        assert_eq!(voided["voided"]["reason"], "录错了项目", "{voided}");
        assert_eq!(balance(&app, &account).await?, "1500.00");
        let (s, b) = void(&app, &first["id"]).await?;
        assert_eq!(s, StatusCode::OK, "voided once: {b}");
        assert_eq!(balance(&app, &account).await?, "1500.00");
        // The ledger says why: a consumption under the charge, an adjustment voiding it.
        let (_, entries) = app
            .call("GET", &format!("/api/v1/accounts/{account}/entries"), None)
            .await?;
        let refs: Vec<&str> = entries["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["reference"].as_str())
            .collect();
        assert_eq!(
            refs,
            ["充值-1", "充值-2", "charge:visit-1", "void:visit-1"],
            "{entries}"
        );

        // At the desk: the method is named, the whole price received.
        let (s, desk) = charge(
            &app,
            json!({"reference": "visit-2", "holder": "patient-zhangsan",
            "charge_type": "single", "treatment": "guangzi", "method": "wechat"}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{desk}");
        assert_eq!(
            (desk["received"].as_str(), desk["method"].as_str()),
            (Some("1280.00"), Some("wechat"))
        );
        let (s, shown) = app
            .call(
                "GET",
                &format!(
                    "/api/v1/charges/{}",
                    desk["id"].as_str().unwrap_or_default()
                ),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{shown}");
        assert_eq!(shown, desk);
        let (_, list) = app
            .call(
                "GET",
                "/api/v1/charges?holder=patient-zhangsan&limit=1",
                None,
            )
            .await?;
        assert_eq!(list["items"][0]["id"], first["id"], "{list}");
        let after = first["id"].as_str().unwrap_or_default();
        let (_, list) = app
            .call(
                "GET",
                &format!("/api/v1/charges?holder=patient-zhangsan&after={after}"),
                None,
            )
            .await?;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
        assert_eq!(list["items"][0]["id"], desk["id"], "{list}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_course_session_pays_and_a_deposit_is_applied() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, course) = app
            .call(
                "POST",
                "/api/v1/courses",
                Some(json!({"holder": "patient-zhangsan",
                "treatment": "guangzi", "charge_type": "course", "sessions": 1,
                "expires_on": "2026-12-31"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{course}");
        let by_course = json!({"reference": "visit-3", "holder": "patient-zhangsan",
            "charge_type": "course", "treatment": "guangzi"});
        let (s, paid) = charge(&app, by_course).await?;
        assert_eq!(s, StatusCode::CREATED, "{paid}");
        assert_eq!(
            (paid["covered"].as_str(), paid["received"].as_str()),
            (Some("1280.00"), Some("0.00"))
        );
        assert_eq!(paid["course"], course["id"], "the patient's course: {paid}");
        let (s, b) = charge(
            &app,
            json!({"reference": "visit-4", "holder": "patient-zhangsan",
            "charge_type": "course", "treatment": "guangzi"}),
        )
        .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "course_used_up", "{b}");
        let (s, b) = void(&app, &paid["id"]).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let cid = course["id"].as_str().unwrap_or_default();
        let (_, shown) = app
            .call("GET", &format!("/api/v1/courses/{cid}"), None)
            .await?;
        assert_eq!(shown["course"]["left"], 1, "the session is back: {shown}");

        // A deposit of 300.00 at booking, applied to the visit's charge.
        let (s, booking) = app
            .call(
                "POST",
                "/api/v1/bookings",
                Some(json!({"resources": ["room-a2"],
                "start": "2026-12-03T10:00:00+08:00", "end": "2026-12-03T10:30:00+08:00",
                "patient": "patient-zhangsan", "treatment": "guangzi"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{booking}");
        let bid = booking["id"].clone();
        let (s, deposit) = charge(
            &app,
            json!({"reference": "定金-1", "purpose": "deposit",
            "charge_type": "single", "method": "alipay", "booking": bid, "amount": "300.00"}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{deposit}");
        assert_eq!(
            deposit["holder"], "patient-zhangsan",
            "the booking's patient: {deposit}"
        );
        let (s, visit) = charge(
            &app,
            json!({"reference": "visit-5", "booking": bid,
            "charge_type": "single", "method": "cash"}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{visit}");
        assert_eq!(visit["treatment"], "guangzi", "the booking's: {visit}");
        assert_eq!(
            (visit["deposit"].as_str(), visit["received"].as_str()),
            (Some("300.00"), Some("980.00"))
        );
        let (s, b) = void(&app, &deposit["id"]).await?;
        assert_eq!(s, StatusCode::CONFLICT, "applied to visit-5: {b}");
        let (_, list) = app
            .call(
                "GET",
                &format!(
                    "/api/v1/charges?booking={}",
                    bid.as_str().unwrap_or_default()
                ),
                None,
            )
            .await?;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
        // Once the visit's charge is voided, the deposit is free to go back.
        let (s, b) = void(&app, &visit["id"]).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = void(&app, &deposit["id"]).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bad_charges_are_named_and_grants_are_checked() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let account = setup(&app).await?;
        let (s, b) = app
            .call("POST", "/api/v1/accounts", Some(json!({"holder": "patient-lisi", "label": "储值卡"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let other = b["id"].clone();
        for (body, at) in [
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "treatment": "guangzi"}), "/method"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "prepaid", "treatment": "guangzi", "account": other}), "/account"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "amount": "10.00", "discount": "10.01"}), "/discount"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "amount": "-1"}), "/amount"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash"}), "/amount"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "treatment": "no-such"}), "/treatment"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "amount": "1", "account": account}), "/account"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "course", "treatment": "guangzi", "method": "cash"}), "/method"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "purpose": "deposit", "charge_type": "single", "method": "cash", "amount": "1"}), "/booking"),
            (json!({"reference": "", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "amount": "1"}), "/reference"),
            (json!({"reference": "r", "charge_type": "single", "method": "cash", "amount": "1"}), "/holder"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "amount": "1", "booking": "x"}), "/booking"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cheque", "amount": "1"}), "/method"),
            (json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "amount": "1", "tip": "5"}), "/tip"),
        ] {
            let (s, b) = charge(&app, body.clone()).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
            assert!(paths(&b).iter().any(|p| p == at), "{at} in {b} for {body}");
        }
        let (_, list) = app.call("GET", "/api/v1/charges", None).await?;
        assert_eq!(list["items"], json!([]), "nothing was charged: {list}");
        assert_eq!(balance(&app, &account).await?, "1000.00");
        let (s, b) = app.call("GET", "/api/v1/charges?colour=red", None).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        let (s, _) = app.call("GET", "/api/v1/charges/no-such", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, b) = void(&app, &json!("no-such")).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

        let reader = app.user_with("kefu", &["money:read"]).await?;
        let body = json!({"reference": "r", "holder": "patient-zhangsan", "charge_type": "single", "method": "cash", "amount": "1"});
        let (s, b) = app.call_as(As::Bearer(&reader), "POST", "/api/v1/charges", Some(body.clone())).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, b) = app.call_as(As::Bearer(&reader), "GET", "/api/v1/charges", None).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let nobody = app.user_with("baoan", &[]).await?;
        let (s, _) = app.call_as(As::Bearer(&nobody), "GET", "/api/v1/charges", None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, b) = app.call_as(As::Bearer(&reader), "GET", "/api/v1/charges", None).await?;
        assert_eq!((s, b["items"].clone()), (StatusCode::OK, json!([])));
        Ok(())
    })
    .await
}
