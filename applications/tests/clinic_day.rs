//! A scripted clinic day (issue 14 acceptance), over the API on both databases with the test
//! clock: 40 patients — the demo's 36 and 4 newcomers, whose first visit has a consultation —
//! book all seven treatments at 徐汇店 and 静安店 from slot searches of their branch, for
//! 2026-12-01. They pay in every way the original knows (单次付清 by each method, 预充值 from
//! a 储值卡, 项目疗程 and 年度套餐 sessions), some with a discount. The day is then run as
//! the staff run it, every five minutes: the front desk claims each reception when its
//! patient arrives (an hour early), consultations, consents, payments and care are handled as
//! they reach someone's list, and each treatment is finished by its practitioner when its
//! booked time is over. Then: every booking is conflict-free on every holder (buffers
//! included) and within its branch's hours, every visit completed its flow, every charge adds
//! up and every account's ledger sums to its balance to the cent, each lot's stock on hand is
//! its receipts less its consumption and the day's consumption is what the treatments use,
//! first expiring first, and the follow-ups fire at 1, 7 and 30 days.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use erpos_design::ledger::parse_cents;
use erpos_kernel::clock::Clock;
use serde_json::{Value, json};
use support::clinic::{Clinic, DAY_MS, booking_of, on_both_databases, q};

/// 2026-12-01 00:00 in Shanghai (UTC+8), in ms.
const DAY_START_MS: i64 = 1_796_054_400_000;
const HOUR_MS: i64 = 3_600_000;
const TICK_MS: i64 = 5 * 60_000;

/// The day's treatments: all seven, as many of each as the clinic's rooms, devices and
/// practitioners can take in a day (超声炮 and 黄金微针 only 徐汇店 has devices for).
const TREATMENTS: [(&str, usize); 7] = [
    ("chaoshengpao", 3),
    ("huangjinweizhen", 3),
    ("roudusu", 8),
    ("tiaoq", 7),
    ("guangzi", 7),
    ("guosuan", 6),
    ("shuiguangzhen", 6),
];

/// How a patient pays.
#[derive(Debug, Clone)]
enum Pays {
    Single(&'static str),
    Prepaid(String),
    Course(&'static str, String),
}

/// One patient's visit as the script knows it.
#[derive(Debug, Clone)]
struct Visit {
    name: String,
    treatment: &'static str,
    branch: &'static str,
    pays: Pays,
    discount: Option<&'static str>,
    pid: u64,
    booking: Value,
}

/// Sessions by user, logged in again when the clock has let one lapse.
struct Staff {
    tokens: HashMap<String, String>,
}

impl Staff {
    /// Sends as `user`: with their session, or a new one when it has lapsed (401).
    async fn call(
        &mut self,
        c: &Clinic,
        user: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        if let Some(t) = self.tokens.get(user) {
            let answer = c.send(Some(t), method, path, body.clone()).await?;
            if answer.0 != StatusCode::UNAUTHORIZED {
                return Ok(answer);
            }
        }
        let t = c.login(user).await?;
        self.tokens.insert(user.to_owned(), t.clone());
        c.send(Some(&t), method, path, body).await
    }
}

fn cents(v: &Value) -> i64 {
    v.as_str()
        .and_then(|t| parse_cents(t).ok())
        .unwrap_or(i64::MIN)
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn desk(branch: &str, i: usize) -> &'static str {
    match (branch, i % 2) {
        ("jingan", _) => "qiantai_wu",
        (_, 0) => "qiantai_zhou",
        _ => "qiantai_sun",
    }
}

/// The patients: the demo's and four newcomers (a first visit: consultation first).
async fn patients(c: &Clinic, staff: &mut Staff) -> anyhow::Result<Vec<(String, String)>> {
    for (n, name) in ["钱多多", "孙小美", "周星星", "吴佳怡"].iter().enumerate() {
        let (s, b) = staff
            .call(
                c,
                "qiantai_zhou",
                "POST",
                "/api/v1/records/patient",
                Some(
                    json!({"xingming": name, "record_no": format!("MR2026-09{n:02}"),
                    "first_visit": true, "phone": format!("1380013800{n}")}),
                ),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    }
    let (s, list) = staff
        .call(c, "admin", "GET", "/api/v1/records/patient?limit=100", None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {list}");
    let all: Vec<(String, String)> = items(&list)
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["xingming"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    anyhow::ensure!(all.len() == 40, "40 patients: {list}");
    Ok(all)
}

/// Books each patient's treatment on the first free slot of their branch, and prepares how
/// they pay (a recharged 储值卡, a course bought earlier).
async fn book_the_day(c: &Clinic, staff: &mut Staff) -> anyhow::Result<Vec<Visit>> {
    let patients = patients(c, staff).await?;
    let treatments: Vec<&'static str> = TREATMENTS
        .iter()
        .flat_map(|(t, n)| std::iter::repeat_n(*t, *n))
        .collect();
    let methods = ["cash", "card", "wechat", "alipay", "transfer"];
    let (from, to) = ("2026-12-01T08:00:00+08:00", "2026-12-01T22:00:00+08:00");
    let mut visits = Vec::new();
    for (i, ((patient, name), treatment)) in patients.into_iter().zip(treatments).enumerate() {
        let mut branch = match treatment {
            "chaoshengpao" | "huangjinweizhen" => "xuhui",
            _ if i % 3 == 0 => "jingan",
            _ => "xuhui",
        };
        // A branch that is full that day sends the patient to the other, where it can.
        let search = |branch: &str| {
            format!(
                "/api/v1/bookings/slots?treatment={treatment}&branch={branch}&from={}&to={}&limit=1",
                q(from),
                q(to)
            )
        };
        let (_, slots) = staff.call(c, "admin", "GET", &search(branch), None).await?;
        if slots["slots"][0].is_null() && !matches!(treatment, "chaoshengpao" | "huangjinweizhen") {
            branch = if branch == "xuhui" { "jingan" } else { "xuhui" };
        }
        let desk = desk(branch, i);
        let pays = match i % 4 {
            0 | 1 => Pays::Single(methods[i % methods.len()]),
            2 => {
                let (s, a) = staff
                    .call(
                        c,
                        desk,
                        "POST",
                        "/api/v1/accounts",
                        Some(json!({"holder": patient, "label": "储值卡"})),
                    )
                    .await?;
                anyhow::ensure!(s == StatusCode::CREATED, "{s} {a}");
                let account = a["id"].as_str().unwrap_or_default().to_owned();
                let (s, r) = staff
                    .call(
                        c,
                        desk,
                        "POST",
                        &format!("/api/v1/accounts/{account}/entries"),
                        Some(json!({"kind": "recharge", "amount": "20000.00",
                            "reference": format!("充值-{i}")})),
                    )
                    .await?;
                anyhow::ensure!(s == StatusCode::CREATED, "{s} {r}");
                Pays::Prepaid(account)
            }
            _ => {
                let kind = if i % 8 == 3 { "course" } else { "yearly" };
                let (s, course) = staff
                    .call(
                        c,
                        desk,
                        "POST",
                        "/api/v1/courses",
                        Some(json!({"holder": patient, "treatment": treatment,
                            "charge_type": kind, "sessions": 5, "expires_on": "2027-11-30"})),
                    )
                    .await?;
                anyhow::ensure!(s == StatusCode::CREATED, "{s} {course}");
                Pays::Course(kind, course["id"].as_str().unwrap_or_default().to_owned())
            }
        };
        let discount = (i % 5 == 0 && !matches!(pays, Pays::Course(..))).then_some("100.00");
        let (s, slots) = staff.call(c, desk, "GET", &search(branch), None).await?;
        anyhow::ensure!(s == StatusCode::OK, "{s} {slots}");
        let slot = slots["slots"][0].clone();
        anyhow::ensure!(
            slot.is_object(),
            "no slot left for {name}'s {treatment}: {slots}"
        );
        let (s, booked) = staff
            .call(
                c,
                desk,
                "POST",
                "/api/v1/bookings",
                Some(booking_of(&slot, treatment, &patient)),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{s} {booked}");
        anyhow::ensure!(booked["branch"] == branch, "{booked}");
        visits.push(Visit {
            name,
            treatment,
            branch,
            pays,
            discount,
            pid: booked["process"].as_u64().unwrap_or_default(),
            booking: booked,
        });
    }
    Ok(visits)
}

/// Every treatment visit's process, as the administrator reads them.
async fn visit_processes(c: &Clinic, staff: &mut Staff) -> anyhow::Result<Vec<Value>> {
    let (s, list) = staff
        .call(
            c,
            "admin",
            "GET",
            "/api/v1/processes?service=treatment_visit&limit=500",
            None,
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {list}");
    Ok(items(&list))
}

/// What the handler of `step` sends for `visit`, or None when it is not time yet.
fn handling(visit: &Visit, step: &str, now: i64, p: &Value) -> Option<Value> {
    let booking = &p["context"]["booking"];
    let at = |key: &str| booking[key].as_i64().unwrap_or(i64::MAX);
    match step {
        "checkin" if now >= at("start_ms") - HOUR_MS => {
            Some(json!({"notes": "到诊，健康问卷已填：无过敏"}))
        }
        "consent" => Some(json!({"signed_name": visit.name, "risks": "红肿、淤青、色沉"})),
        "pay" => {
            let mut ctx = match &visit.pays {
                Pays::Single(method) => json!({"charge_type": "single", "method": method}),
                Pays::Prepaid(account) => json!({"charge_type": "prepaid", "account": account}),
                Pays::Course(kind, course) => json!({"charge_type": kind, "course": course}),
            };
            if let Some(d) = visit.discount {
                ctx["discount"] = json!(d);
            }
            Some(ctx)
        }
        "treat" if now >= at("end_ms") => Some(json!({"note": "治疗顺利"})),
        "care" => Some(json!({"care": "24小时内避免沾水、防晒"})),
        _ => None,
    }
}

/// Runs the day every five minutes, from 08:00 until every visit is done (or midnight).
async fn run_the_day(c: &Clinic, staff: &mut Staff, visits: &[Visit]) -> anyhow::Result<()> {
    let by_pid: HashMap<u64, &Visit> = visits.iter().map(|v| (v.pid, v)).collect();
    let mut now = DAY_START_MS + 8 * HOUR_MS;
    c.at(now).await?;
    while now < DAY_START_MS + 24 * HOUR_MS {
        loop {
            let mut acted = 0;
            let list = visit_processes(c, staff).await?;
            let open: Vec<Value> = list
                .into_iter()
                .filter(|p| {
                    p["state"] != "TERMINATED"
                        && by_pid.contains_key(&p["id"].as_u64().unwrap_or(0))
                })
                .collect();
            if open.is_empty() {
                return Ok(());
            }
            for p in &open {
                let pid = p["id"].as_u64().unwrap_or_default();
                let visit = by_pid[&pid];
                let step = p["step"].as_str().unwrap_or_default();
                if step == "consult" && p["state"] == "WAITING" {
                    // The first visit's consultation, with the branch's doctor.
                    for child in p["children"].as_array().into_iter().flatten() {
                        let child = child.as_u64().unwrap_or_default();
                        let (_, cp) = staff
                            .call(
                                c,
                                "admin",
                                "GET",
                                &format!("/api/v1/processes/{child}"),
                                None,
                            )
                            .await?;
                        if cp["state"] == "RUNNING" {
                            let doctor = cp["operator"].as_str().unwrap_or_default().to_owned();
                            let (s, b) = staff
                                .call(
                                    c,
                                    &doctor,
                                    "POST",
                                    &format!("/api/v1/processes/{child}/handle"),
                                    Some(json!({"attribute": "agree", "context":
                                        {"diagnosis": "光老化、色斑", "plan": visit.treatment}})),
                                )
                                .await?;
                            anyhow::ensure!(s == StatusCode::OK, "consult {child}: {s} {b}");
                            acted += 1;
                        }
                    }
                    continue;
                }
                let Some(context) = handling(visit, step, now, p) else {
                    continue;
                };
                let holder = if step == "checkin" && p["operator"].is_null() {
                    // Reception is claimed by the desk who receives the patient.
                    let desk = desk(visit.branch, pid as usize);
                    let (s, b) = staff
                        .call(
                            c,
                            desk,
                            "POST",
                            &format!("/api/v1/processes/{pid}/claim"),
                            Some(json!({})),
                        )
                        .await?;
                    if s != StatusCode::OK {
                        // That desk is at its capacity now; it claims on a later round.
                        anyhow::ensure!(s == StatusCode::CONFLICT, "claim {pid}: {s} {b}");
                        continue;
                    }
                    desk.to_owned()
                } else if p["state"] == "RUNNING" {
                    p["operator"].as_str().unwrap_or_default().to_owned()
                } else {
                    continue;
                };
                let (s, b) = staff
                    .call(
                        c,
                        &holder,
                        "POST",
                        &format!("/api/v1/processes/{pid}/handle"),
                        Some(json!({"attribute": "agree", "context": context})),
                    )
                    .await?;
                anyhow::ensure!(s == StatusCode::OK, "{step} of {pid} by {holder}: {s} {b}");
                acted += 1;
            }
            if acted == 0 {
                break;
            }
        }
        now += TICK_MS;
        c.at(now).await?;
    }
    let list = visit_processes(c, staff).await?;
    let left: Vec<String> = list
        .iter()
        .filter(|p| p["state"] != "TERMINATED")
        .map(|p| format!("{} {} {} {}", p["id"], p["state"], p["step"], p["wait"]))
        .collect();
    anyhow::bail!("the day ended with visits open: {left:?}")
}

/// No two bookings overlap on a holder, buffers included, and each lies within its
/// branch's hours (徐汇店 09:00–21:00, 静安店 10:00–20:00).
fn conflict_free(visits: &[Visit]) {
    let span = |b: &Value, key: &str| {
        chrono::DateTime::parse_from_rfc3339(b[key].as_str().unwrap_or_default())
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    };
    let mut by_holder: BTreeMap<String, Vec<(i64, i64, String)>> = BTreeMap::new();
    for v in visits {
        let b = &v.booking;
        let (from, to) = (span(b, "held_from"), span(b, "held_to"));
        let (open, close) = match v.branch {
            "jingan" => (10, 20),
            _ => (9, 21),
        };
        assert!(
            from >= DAY_START_MS + open * HOUR_MS && to <= DAY_START_MS + close * HOUR_MS,
            "{} is outside {}'s hours: {b}",
            v.name,
            v.branch
        );
        for h in b["resources"]
            .as_array()
            .into_iter()
            .chain(b["operators"].as_array())
            .flatten()
        {
            by_holder
                .entry(h.as_str().unwrap_or_default().to_owned())
                .or_default()
                .push((from, to, v.name.clone()));
        }
    }
    for (holder, mut spans) in by_holder {
        spans.sort();
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "{holder} is booked twice at once: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
}

/// Every visit charge adds up, each account's ledger sums to its balance, each course
/// gave one session.
async fn money_adds_up(c: &Clinic, staff: &mut Staff, visits: &[Visit]) -> anyhow::Result<()> {
    let (_, charges) = staff
        .call(c, "admin", "GET", "/api/v1/charges?limit=500", None)
        .await?;
    let charges = items(&charges);
    assert_eq!(charges.len(), visits.len(), "one charge per visit");
    let prices: HashMap<&str, i64> = [
        ("roudusu", 380_000),
        ("chaoshengpao", 1_280_000),
        ("huangjinweizhen", 480_000),
        ("tiaoq", 120_000),
        ("guangzi", 128_000),
        ("guosuan", 68_000),
        ("shuiguangzhen", 298_000),
    ]
    .into_iter()
    .collect();
    let mut by_method: BTreeMap<String, i64> = BTreeMap::new();
    for v in visits {
        let charge = charges
            .iter()
            .find(|ch| ch["process"].as_u64() == Some(v.pid))
            .unwrap_or_else(|| panic!("{}'s visit is charged", v.name));
        let receivable = cents(&charge["receivable"]);
        assert_eq!(receivable, prices[v.treatment], "{charge}");
        let discount = v.discount.map_or(0, |d| parse_cents(d).unwrap_or_default());
        assert_eq!(cents(&charge["discount"]), discount, "{charge}");
        assert_eq!(
            receivable - discount,
            cents(&charge["deposit"]) + cents(&charge["received"]) + cents(&charge["covered"]),
            "{charge}"
        );
        match &v.pays {
            Pays::Single(method) => {
                assert_eq!(charge["method"], *method, "{charge}");
                *by_method.entry((*method).to_owned()).or_default() += cents(&charge["received"]);
            }
            Pays::Prepaid(account) => {
                let (_, a) = staff
                    .call(
                        c,
                        "admin",
                        "GET",
                        &format!("/api/v1/accounts/{account}"),
                        None,
                    )
                    .await?;
                assert_eq!(
                    cents(&a["balance"]),
                    2_000_000 - (receivable - discount),
                    "{}'s 储值卡: {a}",
                    v.name
                );
                let (_, entries) = staff
                    .call(
                        c,
                        "admin",
                        "GET",
                        &format!("/api/v1/accounts/{account}/entries?limit=500"),
                        None,
                    )
                    .await?;
                let sum: i64 = items(&entries).iter().map(|e| cents(&e["amount"])).sum();
                assert_eq!(sum, cents(&a["balance"]), "the ledger sums to the balance");
            }
            Pays::Course(_, course) => {
                let (_, shown) = staff
                    .call(
                        c,
                        "admin",
                        "GET",
                        &format!("/api/v1/courses/{course}"),
                        None,
                    )
                    .await?;
                assert_eq!(shown["course"]["left"], 4, "one session used: {shown}");
                assert_eq!(charge["course"], course.as_str(), "{charge}");
            }
        }
    }
    // The day's takings at the desk, per method: every one of the five was used.
    assert_eq!(by_method.len(), 5, "{by_method:?}");
    Ok(())
}

/// A lot as FEFO sees it: its expiry date (not its usable-until, which opening a
/// multi-dose vial shortens to the same day for every opened lot), consumed that day, on
/// hand after.
type LotUse = (String, i64, i64);

/// Each lot's stock on hand is its receipts less its consumption; the day took what the
/// treatments use, per branch and material, from the lots expiring first.
async fn stock_adds_up(c: &Clinic, staff: &mut Staff, visits: &[Visit]) -> anyhow::Result<()> {
    let (_, treatments) = staff
        .call(c, "admin", "GET", "/api/v1/treatments", None)
        .await?;
    let mut uses: BTreeMap<(String, String), i64> = BTreeMap::new();
    for v in visits {
        let t = items(&treatments)
            .into_iter()
            .find(|t| t["name"] == v.treatment)
            .unwrap_or_default();
        for used in t["consumables"].as_array().into_iter().flatten() {
            *uses
                .entry((
                    v.branch.to_owned(),
                    used["material"].as_str().unwrap_or_default().to_owned(),
                ))
                .or_default() += used["quantity"].as_i64().unwrap_or_default();
        }
    }
    let (_, lots) = staff
        .call(c, "admin", "GET", "/api/v1/stock/lots?limit=500", None)
        .await?;
    let mut taken: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut by_material: BTreeMap<(String, String), Vec<LotUse>> = BTreeMap::new();
    for lot in items(&lots) {
        let id = lot["id"].as_str().unwrap_or_default();
        let (_, moves) = staff
            .call(
                c,
                "admin",
                "GET",
                &format!("/api/v1/stock/lots/{id}/movements?limit=500"),
                None,
            )
            .await?;
        let moves = items(&moves);
        let received: i64 = moves
            .iter()
            .filter(|m| m["kind"] == "in")
            .map(|m| m["quantity"].as_i64().unwrap_or_default())
            .sum();
        let consumed: i64 = moves
            .iter()
            .filter(|m| m["kind"] == "out")
            .map(|m| -m["quantity"].as_i64().unwrap_or_default())
            .sum();
        assert_eq!(
            lot["on_hand"].as_i64().unwrap_or_default(),
            received - consumed,
            "{lot}"
        );
        let key = (
            lot["branch"].as_str().unwrap_or_default().to_owned(),
            lot["material"].as_str().unwrap_or_default().to_owned(),
        );
        *taken.entry(key.clone()).or_default() += consumed;
        by_material.entry(key).or_default().push((
            lot["expires_on"].as_str().unwrap_or_default().to_owned(),
            consumed,
            lot["on_hand"].as_i64().unwrap_or_default(),
        ));
    }
    taken.retain(|_, n| *n > 0);
    assert_eq!(
        taken, uses,
        "the day's consumption is what its treatments use"
    );
    // First expiring first: a lot was only taken from once every lot expiring before it
    // (of the same material in the same branch) was empty.
    for (key, mut lots) in by_material {
        lots.sort();
        for (i, (_, consumed, _)) in lots.iter().enumerate() {
            if *consumed > 0 {
                for earlier in &lots[..i] {
                    assert_eq!(earlier.2, 0, "{key:?}: FEFO broken in {lots:?}");
                }
            }
        }
    }
    Ok(())
}

/// The follow-ups the rule starts after care: NEW until 1, 7 and 30 days later.
async fn follow_ups_fire(c: &Clinic, staff: &mut Staff, count: usize) -> anyhow::Result<()> {
    let done = c.clock.now_ms();
    for (after, fired) in [
        (0, 0),
        (DAY_MS + HOUR_MS, 1),
        (7 * DAY_MS + HOUR_MS, 2),
        (30 * DAY_MS + HOUR_MS, 3),
    ] {
        c.at(done + after).await?;
        let mut started = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => "/api/v1/processes?service=follow_up&limit=500".to_owned(),
                Some(k) => format!("/api/v1/processes?service=follow_up&limit=500&cursor={k}"),
            };
            let (s, list) = staff.call(c, "admin", "GET", &path, None).await?;
            anyhow::ensure!(s == StatusCode::OK, "{s} {list}");
            for p in items(&list) {
                let day = p["context"]["day"].as_i64().unwrap_or_default();
                let e = started.entry(day).or_insert((0, 0));
                if p["state"] == "NEW" {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
            match list["next_cursor"].as_str() {
                Some(k) => cursor = Some(k.to_owned()),
                None => break,
            }
        }
        for (i, day) in [1, 7, 30].into_iter().enumerate() {
            let expected = if i < fired { (0, count) } else { (count, 0) };
            assert_eq!(
                started.get(&day).copied(),
                Some(expected),
                "day {day} follow-ups (waiting, started) at +{after} ms"
            );
        }
    }
    Ok(())
}

async fn a_clinic_day(url: &str) -> anyhow::Result<()> {
    let c = Clinic::open(url).await?;
    c.send_walk_ins_home().await?;
    let staff = &mut Staff {
        tokens: HashMap::new(),
    };
    let visits = book_the_day(&c, staff).await?;
    assert_eq!(visits.len(), 40);
    let jingan = visits.iter().filter(|v| v.branch == "jingan").count();
    assert!(
        (8..=20).contains(&jingan),
        "静安店 takes its share: {jingan}"
    );
    for (t, _) in TREATMENTS {
        assert!(visits.iter().any(|v| v.treatment == t), "{t} is booked");
    }
    conflict_free(&visits);
    run_the_day(&c, staff, &visits).await?;
    let list = visit_processes(&c, staff).await?;
    for v in &visits {
        let p = list
            .iter()
            .find(|p| p["id"].as_u64() == Some(v.pid))
            .cloned()
            .unwrap_or_default();
        assert_eq!(p["exit"], "completed", "{}: {p}", v.name);
    }
    money_adds_up(&c, staff, &visits).await?;
    stock_adds_up(&c, staff, &visits).await?;
    follow_ups_fire(&c, staff, visits.len()).await?;
    Ok(())
}

#[tokio::test]
async fn forty_patients_two_branches_one_day() -> anyhow::Result<()> {
    on_both_databases(|url| async move { a_clinic_day(&url).await }).await
}
