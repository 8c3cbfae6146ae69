//! A course's session is deducted at the treatment, not at the payment (issue 14 §7), on
//! both databases with the test clock: 张三 holds a 项目疗程 of one 肉毒素 session. Her
//! first visit's payment keeps the session for the treatment (`pending`: nothing is
//! deducted yet), so a second visit cannot count on the same session (409, the step
//! stays); she leaves before the first treatment, the desk voids that charge, and the
//! session is free again without ever having been used. The second visit pays, the
//! doctor completes the treatment and the session is deducted then, under the charge's
//! reference; voiding that charge restores it. A third visit paid while her other course
//! was valid is refused at the treatment once that course has expired: the doctor's
//! handling gets 409 `course_expired` and nothing changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::clinic::{Clinic, DAY_MS, booking_of, on_both_databases, q};

/// A visit of 肉毒素 for `patient` on `day` (YYYY-MM-DD), booked by the front desk from
/// the first free slot: answers (process, booking id, held start in ms, start in ms).
async fn book(c: &Clinic, patient: &str, day: &str) -> anyhow::Result<(u64, String, i64, i64)> {
    let (s, slots) = c
        .get(
            "qiantai_zhou",
            &format!(
                "/api/v1/bookings/slots?treatment=roudusu&from={}&to={}&limit=1",
                q(&format!("{day}T09:00:00+08:00")),
                q(&format!("{day}T21:00:00+08:00"))
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
            Some(booking_of(&slot, "roudusu", patient)),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {booked}");
    let pid = booked["process"].as_u64().expect("a visit process");
    let p = c.process(&c.login("admin").await?, pid).await?;
    let ms = |key: &str| p["context"]["booking"][key].as_i64().unwrap_or_default();
    Ok((
        pid,
        booked["id"].as_str().unwrap_or_default().to_owned(),
        ms("held_from_ms"),
        ms("start_ms"),
    ))
}

/// Reception and consent of visit `pid` (its process started: the day before), up to its
/// payment step; answers who takes the payment.
async fn to_payment(c: &Clinic, pid: u64) -> anyhow::Result<String> {
    let (s, b) = c.claim("qiantai_sun", pid).await?;
    anyhow::ensure!(s == StatusCode::OK, "claim {pid}: {s} {b}");
    c.agree(&c.login("qiantai_sun").await?, pid, json!({}))
        .await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    anyhow::ensure!(p["step"] == "consent", "{p}");
    let nurse = p["operator"].as_str().unwrap_or_default().to_owned();
    c.agree(
        &c.login(&nurse).await?,
        pid,
        json!({"signed_name": "张三", "risks": "淤青、头痛、眼睑下垂"}),
    )
    .await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    anyhow::ensure!(p["step"] == "pay", "{p}");
    Ok(p["operator"].as_str().unwrap_or_default().to_owned())
}

/// `user` handles their open work item of `pid` with `context`: the status and body.
async fn handle(
    c: &Clinic,
    user: &str,
    pid: u64,
    context: Value,
) -> anyhow::Result<(StatusCode, Value)> {
    c.send(
        Some(&c.login(user).await?),
        "POST",
        &format!("/api/v1/processes/{pid}/handle"),
        Some(json!({"attribute": "agree", "context": context})),
    )
    .await
}

/// Course `id` as the admin reads it.
async fn course(c: &Clinic, id: &str) -> anyhow::Result<Value> {
    Ok(course_and_uses(c, id).await?["course"].clone())
}

/// Course `id` and its history (`{course, uses}`).
async fn course_and_uses(c: &Clinic, id: &str) -> anyhow::Result<Value> {
    let (s, b) = c.get("admin", &format!("/api/v1/courses/{id}")).await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    Ok(b)
}

/// Voids charge `charge` as the front desk, for `reason`: the voided charge.
async fn void(c: &Clinic, charge: &Value, reason: &str) -> anyhow::Result<Value> {
    let id = charge["id"].as_str().unwrap_or_default();
    let (s, voided) = c
        .send(
            Some(&c.login("qiantai_zhou").await?),
            "POST",
            &format!("/api/v1/charges/{id}/void"),
            Some(json!({"reason": reason})),
        )
        .await?;
    anyhow::ensure!(s.is_success(), "{s} {voided}");
    Ok(voided)
}

/// The charge of visit `pid`.
async fn charge_of(c: &Clinic, booking: &str) -> anyhow::Result<Value> {
    let (_, list) = c
        .get("admin", &format!("/api/v1/charges?booking={booking}"))
        .await?;
    anyhow::ensure!(list["items"].as_array().map(Vec::len) == Some(1), "{list}");
    Ok(list["items"][0].clone())
}

async fn sessions(url: &str) -> anyhow::Result<()> {
    let c = Clinic::open(url).await?;
    c.send_walk_ins_home().await?;
    let (_, found) = c
        .get("qiantai_zhou", "/api/v1/records/patient?q=zs")
        .await?;
    let patient = found["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sell = |sessions: i64, expires_on: &'static str| {
        let (c, patient) = (&c, patient.clone());
        async move {
            let (s, b) = c
                .send(
                    Some(&c.login("qiantai_zhou").await?),
                    "POST",
                    "/api/v1/courses",
                    Some(json!({"holder": patient, "treatment": "roudusu",
                        "charge_type": "course", "sessions": sessions, "expires_on": expires_on})),
                )
                .await?;
            anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
            Ok::<_, anyhow::Error>(b["id"].as_str().unwrap_or_default().to_owned())
        }
    };
    let one = sell(1, "2027-06-30").await?;

    // Two visits, on 11-30 and 12-01; both reminded by 11-30.
    let (a, a_booking, _, _) = book(&c, &patient, "2026-11-30").await?;
    let (b, b_booking, b_held, b_start) = book(&c, &patient, "2026-12-01").await?;
    c.at(b_start - DAY_MS).await?;
    let cashier = to_payment(&c, a).await?;
    let pay = json!({"charge_type": "course", "course": one});
    let (s, body) = handle(&c, &cashier, a, pay.clone()).await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    let charge = charge_of(&c, &a_booking).await?;
    assert_eq!(charge["session"], "pending", "{charge}");
    assert_eq!(charge["course"], one.as_str(), "{charge}");
    assert_eq!(
        course(&c, &one).await?["left"],
        1,
        "nothing deducted at payment"
    );

    // The second visit cannot count on the session the first awaits.
    let cashier_b = to_payment(&c, b).await?;
    let (s, refused) = handle(&c, &cashier_b, b, pay.clone()).await?;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "course_used_up", "{refused}");
    let p = c.process(&c.login("admin").await?, b).await?;
    assert_eq!(p["step"], "pay", "the step stays: {p}");

    // She leaves before the first treatment: the visit ends, its charge is voided, and
    // the session — never deducted — is free; nothing was restored because nothing was used.
    let (s, body) = c
        .send(
            Some(&c.login("admin").await?),
            "POST",
            &format!("/api/v1/processes/{a}/terminate"),
            Some(json!({"reason": "患者临时离开"})),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    let voided = void(&c, &charge, "未治疗").await?;
    assert_eq!(voided["session"], "restored", "{voided}");
    let uses = course_and_uses(&c, &one).await?;
    assert_eq!(uses["uses"], json!([]), "never used: {uses}");

    // The second visit pays now; the session is deducted when the doctor completes the
    // treatment, under the charge's reference.
    let (s, body) = handle(&c, &cashier_b, b, pay.clone()).await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(charge_of(&c, &b_booking).await?["session"], "pending");
    c.at(b_held).await?;
    let p = c.process(&c.login("admin").await?, b).await?;
    assert_eq!(p["step"], "treat", "{p}");
    let doctor = p["operator"].as_str().unwrap_or_default().to_owned();
    let (s, body) = handle(&c, &doctor, b, json!({"note": "额纹 20U"})).await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    let p = c.process(&c.login("admin").await?, b).await?;
    assert_eq!(p["context"]["session"]["course"], one.as_str(), "{p}");
    assert_eq!(p["context"]["session"]["left"], 0, "{p}");
    let charge = charge_of(&c, &b_booking).await?;
    assert_eq!(charge["session"], "used", "{charge}");
    assert_eq!(course(&c, &one).await?["left"], 0);
    let uses = course_and_uses(&c, &one).await?;
    assert_eq!(
        uses["uses"][0]["reference"],
        format!("charge:visit-{b}"),
        "{uses}"
    );
    assert_eq!(uses["uses"][0]["actor"], doctor.as_str(), "{uses}");
    // Voided (the treatment was recorded on the wrong patient): the session comes back.
    let voided = void(&c, &charge, "治疗作废").await?;
    assert_eq!(voided["session"], "restored", "{voided}");
    assert_eq!(course(&c, &one).await?["left"], 1, "restored");

    // A course that expires between the payment and the treatment stops the treatment.
    let short = sell(3, "2026-12-02").await?;
    let (d, d_booking, d_held, d_start) = book(&c, &patient, "2026-12-03").await?;
    c.at(d_start - DAY_MS).await?;
    let cashier_d = to_payment(&c, d).await?;
    let (s, body) = handle(
        &c,
        &cashier_d,
        d,
        json!({"charge_type": "course", "course": short}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    c.at(d_held).await?;
    let p = c.process(&c.login("admin").await?, d).await?;
    assert_eq!(p["step"], "treat", "{p}");
    let doctor = p["operator"].as_str().unwrap_or_default().to_owned();
    let (s, refused) = handle(&c, &doctor, d, json!({})).await?;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "course_expired", "{refused}");
    let p = c.process(&c.login("admin").await?, d).await?;
    assert_eq!(p["step"], "treat", "the step stays: {p}");
    assert_eq!(charge_of(&c, &d_booking).await?["session"], "pending");
    assert_eq!(course(&c, &short).await?["left"], 3, "nothing deducted");
    Ok(())
}

#[tokio::test]
async fn a_course_session_is_deducted_at_the_treatment_and_restored_when_voided()
-> anyhow::Result<()> {
    on_both_databases(|url| async move { sessions(&url).await }).await
}
