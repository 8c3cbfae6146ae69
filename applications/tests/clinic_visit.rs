//! The clinic's visit flow, end to end on the clinic pack (issue 14 §6), on both databases
//! with the test clock: front desk 周婷 books 肉毒素 for a patient from a slot search; the
//! visit process is NEW until the day before, reminds the front desk, then reception,
//! (a first visit's consultation with the doctor, returning the diagnosis), informed
//! consent recorded by nurse 王丽 on the visit with her own rights (a signed form record the
//! treatment cannot start without), payment charged from the
//! patient's prepaid account (refused while it is short, the step staying), and — at the
//! booked time — the treatment on exactly the booked injection room and practitioner, care
//! instructions, and the follow-ups the rule starts at 1, 7 and 30 days.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use erpos_kernel::clock::Clock;
use serde_json::{Value, json};
use support::clinic::{Clinic, DAY_MS, booking_of, on_both_databases, q};

async fn a_visit(url: &str) -> anyhow::Result<()> {
    let c = Clinic::open(url).await?;
    // Sessions lapse while the clock jumps days ahead: each request logs in afresh.
    // The demo's walk-in visits fill the front desk's hands: they go home first.
    c.send_walk_ins_home().await?;
    let (_, found) = c
        .get("qiantai_zhou", "/api/v1/records/patient?q=zs")
        .await?;
    let patient = found["items"][0].clone();
    let patient_id = patient["id"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(!patient_id.is_empty(), "张三: {found}");

    // Three days ahead, the first free 肉毒素 slot; booked by the front desk.
    let from = "2026-12-01T09:00:00+08:00";
    let to = "2026-12-01T21:00:00+08:00";
    let (s, slots) = c
        .get(
            "qiantai_zhou",
            &format!(
                "/api/v1/bookings/slots?treatment=roudusu&from={}&to={}&limit=1",
                q(from),
                q(to)
            ),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {slots}");
    let slot = slots["slots"][0].clone();
    let (s, booked) = c
        .send(
            Some(&c.login("qiantai_zhou").await?),
            "POST",
            "/api/v1/bookings",
            Some(booking_of(&slot, "roudusu", &patient_id)),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{booked}");
    let pid = booked["process"].as_u64().expect("a visit process");
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["state"], "NEW", "{p}");
    assert_eq!(p["service"], "treatment_visit");
    assert_eq!(
        p["record"]["id"],
        patient_id.as_str(),
        "bound to the patient: {p}"
    );
    let start_ms = p["context"]["booking"]["start_ms"]
        .as_i64()
        .unwrap_or_default();
    let held_from = p["context"]["booking"]["held_from_ms"]
        .as_i64()
        .unwrap_or_default();

    // The day before: the reminder reaches the front desk, and reception is on its list.
    c.at(start_ms - DAY_MS).await?;
    let (_, inbox) = c.get("qiantai_zhou", "/api/v1/notifications").await?;
    let titles: Vec<&str> = inbox["items"]
        .as_array()
        .map(|l| l.iter().filter_map(|n| n["title"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        titles.contains(&"明日预约提醒：张三"),
        "the reminder: {titles:?}"
    );
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "checkin", "{p}");

    // The patient arrives (an hour before): the front desk who receives her claims the
    // reception (offered to every front desk until then, it holds nobody's capacity).
    assert!(p["operator"].is_null(), "{p}");
    c.at(start_ms - 3_600_000).await?;
    let (s, b) = c.claim("qiantai_sun", pid).await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    let token = c.login("qiantai_sun").await?;
    c.agree(&token, pid, json!({"health_survey": "无过敏，近期未服药"}))
        .await?;
    let mut p = c.process(&c.login("admin").await?, pid).await?;
    if p["step"] == "consult" {
        // A first visit: the doctor's consultation returns the diagnosis to the visit.
        let child = p["children"][0].as_u64().expect("the consultation");
        let cp = c.process(&c.login("admin").await?, child).await?;
        let doctor = c.login(cp["operator"].as_str().unwrap_or_default()).await?;
        c.agree(
            &doctor,
            child,
            json!({"diagnosis": "动态皱纹（额纹、鱼尾纹）", "plan": "肉毒素 50U"}),
        )
        .await?;
        p = c.process(&c.login("admin").await?, pid).await?;
        assert_eq!(p["context"]["diagnosis"], "动态皱纹（额纹、鱼尾纹）", "{p}");
    }
    // Consent: the nurse records it on the visit, with her own rights.
    assert_eq!(p["step"], "consent", "{p}");
    assert_eq!(p["operator"], "hushi_wang", "{p}");
    // The signed form is a record the step creates: she cannot set it herself, and a form
    // without the patient's signature is named at what she sends.
    let nurse = c.login("hushi_wang").await?;
    for (context, path) in [
        (json!({"consent": {"signed": true}}), "/context/consent"),
        (
            json!({"risks": "淤青、头痛、眼睑下垂"}),
            "/context/signed_name",
        ),
    ] {
        let (s, b) = c
            .send(
                Some(&nurse),
                "POST",
                &format!("/api/v1/processes/{pid}/handle"),
                Some(json!({"attribute": "agree", "context": context})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], path, "{b}");
    }
    c.agree(
        &nurse,
        pid,
        json!({"signed_name": "张三", "risks": "淤青、头痛、眼睑下垂"}),
    )
    .await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "pay", "{p}");
    let form = &p["context"]["consent"];
    assert_eq!(form["signed_name"], "张三", "{p}");
    assert_eq!(form["patient"], patient_id.as_str(), "{p}");
    assert_eq!(form["treatment"], "roudusu", "{p}");
    assert_eq!(form["booking"], p["context"]["booking"]["id"], "{p}");
    // Payment charges the visit in the handling's transaction: 3800.00 for 肉毒素 from
    // 张三's 储值卡, 200.00 off. 3000.00 does not cover it: 409, the step stays, nothing
    // is written; recharged, the same handling charges once.
    let cashier_id = p["operator"].as_str().unwrap_or_default().to_owned();
    let (s, account) = c
        .send(
            Some(&c.login(&cashier_id).await?),
            "POST",
            "/api/v1/accounts",
            Some(json!({"holder": patient_id, "label": "储值卡"})),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account = account["id"].as_str().unwrap_or_default().to_owned();
    let recharge = |amount: &'static str, reference: &'static str| {
        let account = account.clone();
        let cashier_id = cashier_id.clone();
        let c = &c;
        async move {
            let (s, b) = c
                .send(
                    Some(&c.login(&cashier_id).await?),
                    "POST",
                    &format!("/api/v1/accounts/{account}/entries"),
                    Some(json!({"kind": "recharge", "amount": amount, "reference": reference})),
                )
                .await?;
            anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
            Ok::<_, anyhow::Error>(())
        }
    };
    recharge("3000.00", "充值-0001").await?;
    let pay = json!({"attribute": "agree", "context": {
        "charge_type": "prepaid", "account": account, "discount": "200.00"}});
    let (s, refused) = c
        .send(
            Some(&c.login(&cashier_id).await?),
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(pay.clone()),
        )
        .await?;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        refused["error"]["code"], "insufficient_balance",
        "{refused}"
    );
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "pay", "the step stays: {p}");
    let (_, charges) = c.get("admin", "/api/v1/charges").await?;
    assert_eq!(charges["items"], json!([]), "{charges}");
    // A bad choice is named at the handler's context.
    let (s, bad) = c
        .send(
            Some(&c.login(&cashier_id).await?),
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(json!({"attribute": "agree", "context": {"charge_type": "single"}})),
        )
        .await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(
        bad["error"]["details"][0]["path"], "/context/method",
        "{bad}"
    );
    recharge("1000.00", "充值-0002").await?;
    let (s, b) = c
        .send(
            Some(&c.login(&cashier_id).await?),
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(pay),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["state"], "WAITING", "until the booked time: {p}");
    let (_, charges) = c
        .get(
            "admin",
            &format!(
                "/api/v1/charges?booking={}",
                booked["id"].as_str().unwrap_or_default()
            ),
        )
        .await?;
    let charge = &charges["items"][0];
    assert_eq!(
        charges["items"].as_array().map(Vec::len),
        Some(1),
        "{charges}"
    );
    assert_eq!(charge["reference"], format!("visit-{pid}"), "{charge}");
    assert_eq!(charge["process"], pid, "{charge}");
    assert_eq!(charge["actor"], cashier_id.as_str(), "{charge}");
    assert_eq!(
        (charge["receivable"].as_str(), charge["received"].as_str()),
        (Some("3800.00"), Some("3600.00")),
        "{charge}"
    );
    let (_, shown) = c
        .get("admin", &format!("/api/v1/accounts/{account}"))
        .await?;
    assert_eq!(shown["balance"], "400.00", "{shown}");

    // At the held start the treatment runs on exactly what was booked.
    c.at(held_from).await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["state"], "RUNNING", "{p}");
    assert_eq!(p["step"], "treat");
    assert_eq!(p["operator"], slot["operators"][0], "{p}");
    let held: Vec<Value> = p["allocations"]
        .as_array()
        .map(|l| l.iter().map(|a| a["resource"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(Value::Array(held), slot["resources"], "{p}");
    let practitioner = c.login(p["operator"].as_str().unwrap_or_default()).await?;
    // Called away mid-treatment, the doctor sets it aside herself and comes back to it: the
    // booked room and device stay the visit's meanwhile.
    for action in ["set_aside", "take_up"] {
        let (s, b) = c
            .send(
                Some(&practitioner),
                "POST",
                &format!("/api/v1/processes/{pid}/{action}"),
                Some(json!({})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{action}: {b}");
        let shown: Vec<Value> = b["allocations"]
            .as_array()
            .map(|l| l.iter().map(|a| a["resource"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(Value::Array(shown), slot["resources"], "{action}: {b}");
    }
    c.agree(&practitioner, pid, json!({"note": "额纹 20U，鱼尾纹 30U"}))
        .await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "care", "{p}");
    // The consumables left stock first expiring first (保妥适 C2911, 20 days to expiry,
    // before C3201), and the treatment record carries the lot numbers.
    let (_, records) = c.get("admin", "/api/v1/records/treatment_record").await?;
    assert_eq!(records["total"], 1, "{records}");
    let record = &records["items"][0];
    assert_eq!(record["patient"], patient_id.as_str(), "{record}");
    assert_eq!(record["treatment"], "roudusu");
    assert_eq!(record["lots"], "保妥适 C2911 ×50", "{record}");
    let (_, lots) = c
        .get("admin", "/api/v1/stock/lots?material=baotuoshi")
        .await?;
    let on_hand: Vec<(String, i64)> = lots["items"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| {
                    (
                        x["lot_number"].as_str().unwrap_or_default().to_owned(),
                        x["on_hand"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        on_hand.contains(&("C2911".to_owned(), 150))
            && on_hand.contains(&("C3201".to_owned(), 500)),
        "{lots}"
    );
    c.agree(
        &c.login("hushi_wang").await?,
        pid,
        json!({"care": "24小时内勿按摩注射部位"}),
    )
    .await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["state"], "TERMINATED", "{p}");
    assert_eq!(p["exit"], "completed", "{p}");

    // The follow-ups: the rule starts three, NEW until 1, 7 and 30 days after care.
    let done_ms = c.clock.now_ms();
    c.at(done_ms).await?;
    let (_, list) = c
        .get("admin", "/api/v1/processes?service=follow_up")
        .await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{list}");
    for (day, expected) in [(1, 1), (7, 1), (30, 1)] {
        let n = items
            .iter()
            .filter(|i| i["context"]["day"] == day && i["state"] == "NEW")
            .count();
        assert_eq!(n, expected, "day {day}: {list}");
    }
    c.at(done_ms + DAY_MS).await?;
    let (_, list) = c
        .get("admin", "/api/v1/processes?service=follow_up&state=RUNNING")
        .await?;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "the first follow-up call is on the front desk's list a day later: {list}"
    );
    Ok(())
}

#[tokio::test]
async fn a_booked_visit_runs_the_clinic_flow() -> anyhow::Result<()> {
    on_both_databases(|url| async move { a_visit(&url).await }).await
}
