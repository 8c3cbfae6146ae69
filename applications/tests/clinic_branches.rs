//! Two branches of one clinic (issue 14 §9), end to end on the clinic pack, on both
//! databases: 徐汇店 and 静安店 share their patients, each has its own rooms, devices,
//! staff, stock and hours. 静安店's front desk 吴倩 books 果酸 for 李四 from a slot search
//! of her branch; the booking is 静安店's (one mixing the branches' holders is refused), and
//! 徐汇店's front desk does not see it. The visit is worked by 静安店 alone: the reminder
//! reaches 吴倩, reception is hers, the first visit's consultation takes 静安店's room and
//! doctor, consent and the treatment 静安店's nurse, and the consumables leave 静安店's stock,
//! which is all her nurse sees and moves. The visit and its charge are on 静安店's lists
//! only; a walk-in at 静安店's desk is 静安店's visit, and no handling moves a visit to
//! another branch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use erpos_kernel::clock::Clock;
use serde_json::{Value, json};
use support::clinic::{Clinic, DAY_MS, on_both_databases, q};

/// 李四, one of the demo's patients.
const LI_SI: &str = "6167b2c8-eb0b-4af6-a848-c701f8dc013e";

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect()
}

async fn titles(c: &Clinic, user: &str) -> anyhow::Result<Vec<String>> {
    let (_, inbox) = c
        .send(
            Some(&c.login(user).await?),
            "GET",
            "/api/v1/notifications",
            None,
        )
        .await?;
    Ok(inbox["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["title"].as_str().map(str::to_owned))
        .collect())
}

fn held(p: &Value) -> Vec<String> {
    p["allocations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["resource"].as_str().map(str::to_owned))
        .collect()
}

async fn on_hand(c: &Clinic, branch: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let (s, lots) = c
        .get(
            "admin",
            &format!("/api/v1/stock/lots?material=guosuan_ye&branch={branch}"),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {lots}");
    Ok(lots["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["lot_number"].as_str().unwrap_or_default().to_owned(),
                l["on_hand"].as_i64().unwrap_or_default(),
            )
        })
        .collect())
}

async fn two_branches(url: &str) -> anyhow::Result<()> {
    let c = Clinic::open(url).await?;
    c.send_walk_ins_home().await?;
    let wu = || c.login("qiantai_wu");
    // Each user is told the branches they see, so a console offers no other: the desk of
    // 静安店 its own, a nurse of 徐汇店 hers, the administrator both.
    for (user, seen) in [
        ("qiantai_wu", json!(["jingan"])),
        ("hushi_wang", json!(["xuhui"])),
        ("admin", json!(["jingan", "xuhui"])),
    ] {
        let (s, me) = c
            .send(
                Some(&c.login(user).await?),
                "GET",
                "/api/v1/sessions/current",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{me}");
        assert_eq!(me["branches"], seen, "{user}: {me}");
    }
    // 李四 comes for the first time to 静安店.
    let (s, b) = c
        .send(
            Some(&wu().await?),
            "PATCH",
            &format!("/api/v1/records/patient/{LI_SI}"),
            Some(json!({"first_visit": true})),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{b}");

    // 静安店's slots: its skin-care room and nurse, within its hours (10:00–20:00).
    let (from, to) = ("2026-12-01T09:00:00+08:00", "2026-12-01T21:00:00+08:00");
    let (s, slots) = c
        .send(
            Some(&wu().await?),
            "GET",
            &format!(
                "/api/v1/bookings/slots?treatment=guosuan&branch=jingan&from={}&to={}&limit=1",
                q(from),
                q(to)
            ),
            None,
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{slots}");
    let slot = slots["slots"][0].clone();
    assert_eq!(slot["resources"], json!(["jingan-skin-room"]), "{slot}");
    assert_eq!(slot["operators"], json!(["hushi_liu"]), "{slot}");
    // The first start on the quarter-hour grid whose buffer fits 静安店's opening at 10:00.
    assert!(
        slot["start"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-12-01T02:15")),
        "10:15 in Shanghai: {slot}"
    );
    // A search naming no branch offers no slot mixing two branches' holders (it would be
    // refused when booked): each branch is searched on its own and the slots merged —
    // every branch for head office, the caller's own for 静安店's desk.
    let holders_of = |slots: &Value| -> std::collections::BTreeSet<String> {
        slots["slots"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| {
                let list = |k: &str| s[k].as_array().cloned().unwrap_or_default();
                list("resources").into_iter().chain(list("operators"))
            })
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect()
    };
    let search = |user: &'static str, branch: &'static str| {
        let c = &c;
        async move {
            let (s, slots) = c
                .get(
                    user,
                    &format!(
                        "/api/v1/bookings/slots?treatment=guangzi{branch}&from={}&to={}&limit=40",
                        q(from),
                        q(to)
                    ),
                )
                .await?;
            anyhow::ensure!(s == StatusCode::OK, "{s} {slots}");
            anyhow::Ok(slots)
        }
    };
    let xuhui = holders_of(&search("admin", "&branch=xuhui").await?);
    let jingan = holders_of(&search("admin", "&branch=jingan").await?);
    let either = search("admin", "").await?;
    let mut branches_seen = std::collections::BTreeSet::new();
    for slot in either["slots"].as_array().into_iter().flatten() {
        let one = holders_of(&json!({ "slots": [slot] }));
        let side = if one.is_subset(&xuhui) {
            "xuhui"
        } else if one.is_subset(&jingan) {
            "jingan"
        } else {
            panic!("a slot mixing the branches' holders: {slot}")
        };
        branches_seen.insert(side);
    }
    assert_eq!(
        branches_seen.len(),
        2,
        "head office is offered both branches: {either}"
    );
    let own = holders_of(&search("qiantai_wu", "").await?);
    assert!(
        !own.is_empty() && own.is_subset(&jingan),
        "静安店's desk is offered her branch's slots: {own:?}"
    );
    let body = |operators: Value| {
        json!({
            "resources": slot["resources"], "operators": operators,
            "start": slot["start"], "end": slot["end"],
            "buffer_before_minutes": slot["buffer_before_minutes"],
            "buffer_after_minutes": slot["buffer_after_minutes"],
            "treatment": "guosuan", "patient": LI_SI
        })
    };
    // 徐汇店's nurse in 静安店's room: one booking never spans two branches.
    let (s, b) = c
        .send(
            Some(&wu().await?),
            "POST",
            "/api/v1/bookings",
            Some(body(json!(["hushi_wang"]))),
        )
        .await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["details"][0]["path"], "/operators/0", "{b}");
    let (s, booked) = c
        .send(
            Some(&wu().await?),
            "POST",
            "/api/v1/bookings",
            Some(body(slot["operators"].clone())),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{booked}");
    assert_eq!(booked["branch"], "jingan", "{booked}");
    let booking = booked["id"].as_str().unwrap_or_default().to_owned();
    let pid = booked["process"].as_u64().expect("a visit process");

    // Each branch's desk sees its own bookings; another branch is refused or unknown.
    let zhou = c.login("qiantai_zhou").await?;
    let (s, list) = c.send(Some(&zhou), "GET", "/api/v1/bookings", None).await?;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(!ids(&list).contains(&booking), "{list}");
    let (s, b) = c
        .send(Some(&zhou), "GET", "/api/v1/bookings?branch=jingan", None)
        .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = c
        .send(
            Some(&zhou),
            "GET",
            &format!("/api/v1/bookings/{booking}"),
            None,
        )
        .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (_, list) = c
        .send(Some(&wu().await?), "GET", "/api/v1/bookings", None)
        .await?;
    assert!(ids(&list).contains(&booking), "{list}");
    let admin = c.login("admin").await?;
    for (branch, sees) in [("jingan", true), ("xuhui", false)] {
        let (s, list) = c
            .send(
                Some(&admin),
                "GET",
                &format!("/api/v1/bookings?branch={branch}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(ids(&list).contains(&booking), sees, "{branch}: {list}");
    }
    // A regional manager of 徐汇店 granted 静安店 sees both.
    let (s, b) = c
        .send(
            Some(&admin),
            "POST",
            "/api/v1/roles",
            Some(json!({"name": "quyu", "label": {"zh": "区域经理"},
                "permissions": ["bookings:read", "branches:jingan"]})),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = c
        .send(
            Some(&admin),
            "POST",
            "/api/v1/users",
            Some(json!({"id": "jingli_ma", "name": "马丽", "roles": ["quyu"],
                "branch": "xuhui", "password": "erpos-demo"})),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let ma = c.login("jingli_ma").await?;
    let (s, list) = c.send(Some(&ma), "GET", "/api/v1/bookings", None).await?;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(ids(&list).contains(&booking), "{list}");
    let (s, b) = c
        .send(
            Some(&ma),
            "GET",
            &format!("/api/v1/bookings/{booking}"),
            None,
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = c
        .send(
            Some(&admin),
            "POST",
            "/api/v1/roles",
            Some(json!({"name": "bad", "label": {"zh": "坏"}, "permissions": ["branches:静安"]})),
        )
        .await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = c
        .send(Some(&admin), "GET", "/api/v1/bookings?branch=pudong", None)
        .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["details"][0]["path"], "/query/branch", "{b}");

    // The day before, 静安店's desk is reminded, not 徐汇店's; reception is hers.
    let p = c.process(&admin, pid).await?;
    assert_eq!(p["context"]["booking"]["branch"], "jingan", "{p}");
    let start_ms = p["context"]["booking"]["start_ms"]
        .as_i64()
        .unwrap_or_default();
    let held_from = p["context"]["booking"]["held_from_ms"]
        .as_i64()
        .unwrap_or_default();
    let reminder = "明日预约提醒：李四".to_owned();
    let count = |list: Vec<String>| list.iter().filter(|t| **t == reminder).count();
    // (The demo's walk-in visits, 徐汇店's, reminded 徐汇店's desk as they started.)
    c.at(c.clock.now_ms()).await?;
    let zhou_before = count(titles(&c, "qiantai_zhou").await?);
    c.at(start_ms - DAY_MS).await?;
    assert_eq!(count(titles(&c, "qiantai_wu").await?), 1);
    assert_eq!(count(titles(&c, "qiantai_zhou").await?), zhou_before);
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "checkin", "{p}");
    c.at(start_ms - 3_600_000).await?;
    let (s, b) = c.claim("qiantai_zhou", pid).await?;
    assert!(
        s.is_client_error(),
        "徐汇店's desk is not offered it: {s} {b}"
    );
    let (s, b) = c.claim("qiantai_wu", pid).await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    c.agree(&wu().await?, pid, json!({"notes": "初诊，敏感肌"}))
        .await?;

    // The first visit's consultation: 静安店's doctor in 静安店's room.
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "consult", "{p}");
    let child = p["children"][0].as_u64().expect("the consultation");
    let cp = c.process(&c.login("admin").await?, child).await?;
    assert_eq!(cp["operator"], "dr_zhao", "{cp}");
    assert_eq!(held(&cp), ["jingan-consult-room"], "{cp}");
    c.agree(
        &c.login("dr_zhao").await?,
        child,
        json!({"diagnosis": "痤疮后色沉", "plan": "果酸焕肤 20%"}),
    )
    .await?;

    // Consent with 静安店's nurse, payment at 静安店's desk (WeChat Pay).
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "consent", "{p}");
    assert_eq!(p["operator"], "hushi_liu", "{p}");
    c.agree(
        &c.login("hushi_liu").await?,
        pid,
        json!({"signed_name": "李四", "risks": "刺痛、泛红、脱屑"}),
    )
    .await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "pay", "{p}");
    assert_eq!(p["operator"], "qiantai_wu", "{p}");
    c.agree(
        &wu().await?,
        pid,
        json!({"charge_type": "single", "method": "wechat"}),
    )
    .await?;

    // The visit and its charge are 静安店's: on 静安店's lists, not on 徐汇店's.
    let visit_lists = |user: &'static str| {
        let c = &c;
        async move {
            let token = c.login(user).await?;
            let (s, visits) = c
                .send(
                    Some(&token),
                    "GET",
                    "/api/v1/processes?service=treatment_visit",
                    None,
                )
                .await?;
            anyhow::ensure!(s == StatusCode::OK, "{s} {visits}");
            let (s, charges) = c.send(Some(&token), "GET", "/api/v1/charges", None).await?;
            anyhow::ensure!(s == StatusCode::OK, "{s} {charges}");
            let pids: Vec<u64> = visits["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["id"].as_u64())
                .collect();
            Ok::<_, anyhow::Error>((pids, ids(&charges)))
        }
    };
    let (_, charges) = c
        .get("admin", &format!("/api/v1/charges?booking={booking}"))
        .await?;
    let charge = charges["items"][0].clone();
    assert_eq!(charge["branch"], "jingan", "{charge}");
    let charge_id = charge["id"].as_str().unwrap_or_default().to_owned();
    let (zhou_visits, zhou_charges) = visit_lists("qiantai_zhou").await?;
    assert!(
        !zhou_visits.contains(&pid),
        "徐汇店's desk: {zhou_visits:?}"
    );
    assert!(!zhou_charges.contains(&charge_id), "{zhou_charges:?}");
    let (s, b) = c
        .get("qiantai_zhou", &format!("/api/v1/charges/{charge_id}"))
        .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = c
        .get("qiantai_zhou", "/api/v1/charges?branch=jingan")
        .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (wu_visits, wu_charges) = visit_lists("qiantai_wu").await?;
    assert!(wu_visits.contains(&pid), "静安店's desk: {wu_visits:?}");
    assert!(wu_charges.contains(&charge_id), "{wu_charges:?}");
    let (s, b) = c
        .get("qiantai_wu", &format!("/api/v1/charges/{charge_id}"))
        .await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A handling cannot move a visit to another branch.
    let (s, b) = c
        .send(
            Some(&c.login("admin").await?),
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(json!({"attribute": "agree", "context": {"branch": "xuhui"}})),
        )
        .await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["details"][0]["path"], "/context/branch", "{b}");

    // A walk-in at 静安店's desk is 静安店's visit; 徐汇店's desk cannot start one there.
    let (s, walk_in) = c
        .send(
            Some(&wu().await?),
            "POST",
            "/api/v1/processes",
            Some(json!({"service": "treatment_visit",
                "record": {"item": "patient", "id": LI_SI}, "context": {}})),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{walk_in}");
    assert_eq!(walk_in["context"]["branch"], "jingan", "{walk_in}");
    let walk_pid = walk_in["id"].as_u64().unwrap_or_default();
    let (zhou_visits, _) = visit_lists("qiantai_zhou").await?;
    assert!(!zhou_visits.contains(&walk_pid), "{zhou_visits:?}");
    for (context, status, path) in [
        (json!({"branch": "jingan"}), StatusCode::FORBIDDEN, None),
        (
            json!({"branch": "pudong"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/context/branch"),
        ),
        (
            json!({"branch": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/context/branch"),
        ),
    ] {
        let (s, b) = c
            .send(
                Some(&c.login("qiantai_zhou").await?),
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "treatment_visit",
                    "record": {"item": "patient", "id": LI_SI}, "context": context})),
            )
            .await?;
        assert_eq!(s, status, "{context}: {b}");
        if let Some(path) = path {
            assert_eq!(b["error"]["details"][0]["path"], path, "{b}");
        }
    }
    let (s, b) = c
        .send(
            Some(&c.login("admin").await?),
            "POST",
            &format!("/api/v1/processes/{walk_pid}/terminate"),
            Some(json!({"reason": "测试"})),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{b}");

    // At the booked time: 静安店's nurse in 静安店's room; the acid leaves 静安店's stock.
    c.at(held_from).await?;
    let p = c.process(&c.login("admin").await?, pid).await?;
    assert_eq!(p["step"], "treat", "{p}");
    assert_eq!(p["operator"], "hushi_liu", "{p}");
    assert_eq!(held(&p), ["jingan-skin-room"], "{p}");
    c.agree(&c.login("hushi_liu").await?, pid, json!({}))
        .await?;
    assert_eq!(on_hand(&c, "jingan").await?, [("JGS01".to_owned(), 195)]);
    assert_eq!(on_hand(&c, "xuhui").await?, [("GS0901".to_owned(), 250)]);
    let (_, records) = c.get("admin", "/api/v1/records/treatment_record").await?;
    assert_eq!(records["items"][0]["lots"], "果酸液 JGS01 ×5", "{records}");

    // 静安店's nurse sees and moves 静安店's stock only.
    let liu = c.login("hushi_liu").await?;
    let (s, lots) = c
        .send(
            Some(&liu),
            "GET",
            "/api/v1/stock/lots?material=guosuan_ye",
            None,
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{lots}");
    let numbers: Vec<&str> = lots["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["lot_number"].as_str())
        .collect();
    assert_eq!(numbers, ["JGS01"], "{lots}");
    let (s, b) = c
        .send(Some(&liu), "GET", "/api/v1/stock/lots?branch=xuhui", None)
        .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, alerts) = c
        .send(Some(&liu), "GET", "/api/v1/stock/alerts", None)
        .await?;
    assert_eq!(s, StatusCode::OK, "{alerts}");
    for list in ["expiring", "low"] {
        assert!(
            alerts[list]
                .as_array()
                .into_iter()
                .flatten()
                .all(|a| a["branch"] == "jingan"),
            "{alerts}"
        );
    }
    let (s, b) = c
        .send(
            Some(&liu),
            "POST",
            "/api/v1/stock/consumptions",
            Some(
                json!({"material": "guosuan_ye", "branch": "xuhui", "quantity": 5,
                "reference": "借用-001"}),
            ),
        )
        .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(on_hand(&c, "xuhui").await?, [("GS0901".to_owned(), 250)]);
    Ok(())
}

#[tokio::test]
async fn each_branch_books_and_works_its_own_visits() -> anyhow::Result<()> {
    on_both_databases(|url| async move { two_branches(&url).await }).await
}
