//! `erpos bench clinic`: slot searches and booking decisions on SQLite (issue 14). A clinic
//! of 5 treatment rooms, 3 lasers and 10 certified practitioners, open 09:00–21:00, with
//! a month of bookings already made; then
//!
//! - slot searches for 调Q激光 over the 30 days ahead (20 slots each), per second and p99,
//!   against the least a search from storage costs: one indexed read of the window's holds;
//! - booking decisions (taken or refused with alternatives) from 64 clients at once, most
//!   of them wanting the same few slots, against raw inserts of the same rows (one
//!   transaction per booking, as erpos writes them);
//! - a day planned: 160 requests of three treatments (more than the clinic can take), with
//!   patients' windows and priorities, against the bound no plan can beat, computed in the
//!   same run from the holders' free time.
//!
//! Nothing here asserts a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use erpos_kernel::Kernel;
use erpos_kernel::caller::Caller;
use serde_json::{Value, json};

use crate::figures::{figures, print};

const DAY_MS: i64 = 86_400_000;
/// 2026-12-03T00:00+08:00.
const DAY0: i64 = 1_796_227_200_000;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

async fn clinic(k: &Kernel, bench: &Caller) -> anyhow::Result<()> {
    let day = json!([["09:00", "21:00"]]);
    erpos_kernel::app::design::save_calendar(
        k,
        bench,
        &json!({"name": "menzhen", "label": {"zh": "门诊时间"}, "utc_offset_minutes": 480,
                "weekly": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day}}),
    )
    .await?;
    let audit = erpos_kernel::audit::Audit::new("bench", "bench", 0);
    for (name, kind, zh) in [
        ("treatment_room", "facility", "治疗室"),
        ("laser", "equipment", "激光设备"),
    ] {
        erpos_kernel::resources::put_type(
            k,
            &json!({"name": name, "kind": kind, "label": {"zh": zh}}),
            &audit,
        )
        .await?;
    }
    for i in 1..=5 {
        erpos_kernel::resources::put(k, &json!({"id": format!("room-{i}"), "type": "treatment_room", "label": {"zh": format!("治疗室{i}")}, "calendar": "menzhen"}), &audit).await?;
    }
    for i in 1..=3 {
        erpos_kernel::resources::put(k, &json!({"id": format!("laser-{i}"), "type": "laser", "label": {"zh": format!("激光{i}号")}, "calendar": "menzhen"}), &audit).await?;
    }
    erpos_kernel::resources::put_type(
        k,
        &json!({"name": "ipl", "kind": "equipment", "label": {"zh": "强脉冲光设备"}}),
        &audit,
    )
    .await?;
    for i in 1..=2 {
        erpos_kernel::resources::put(k, &json!({"id": format!("ipl-{i}"), "type": "ipl", "label": {"zh": format!("光子{i}号")}, "calendar": "menzhen"}), &audit).await?;
    }
    for i in 1..=10 {
        // Four of them also inject (肉毒素).
        let skills = if i <= 4 {
            json!(["laser_cert", "injector"])
        } else {
            json!(["laser_cert"])
        };
        erpos_kernel::resources::put_user(k, &json!({"id": format!("doc-{i}"), "name": format!("医生{i}"), "skills": skills, "calendar": "menzhen"}), &audit).await?;
    }
    erpos_kernel::app::treatments::put(
        k,
        bench,
        &json!({"name": "tiaoq", "label": {"zh": "调Q激光"}, "duration_minutes": 30,
                "buffer_before_minutes": 10, "buffer_after_minutes": 10,
                "resource_types": ["treatment_room", "laser"], "skill": "laser_cert"}),
    )
    .await?;
    for treatment in [
        json!({"name": "roudusu", "label": {"zh": "肉毒素"}, "duration_minutes": 20,
               "buffer_before_minutes": 5, "buffer_after_minutes": 10,
               "resource_types": ["treatment_room"], "skill": "injector"}),
        json!({"name": "guangzi", "label": {"zh": "光子嫩肤"}, "duration_minutes": 40,
               "buffer_before_minutes": 10, "buffer_after_minutes": 10,
               "resource_types": ["treatment_room", "ipl"], "skill": "laser_cert"}),
    ] {
        erpos_kernel::app::treatments::put(k, bench, &treatment).await?;
    }
    Ok(())
}

/// A day's requests for the planner: more than the clinic can take (so utilisation, not
/// demand, is measured), patients' windows from two hours to the whole day, some of them
/// with a priority, a few preferring a practitioner; deterministic.
fn day_requests(day: i64, count: usize) -> Vec<Value> {
    let mut seed: u64 = 0x5eed_c11c;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    (0..count)
        .map(|i| {
            let treatment = ["tiaoq", "tiaoq", "guangzi", "roudusu", "tiaoq"][next(5) as usize];
            let open = day + 9 * 3_600_000;
            let mut request = json!({"treatment": treatment, "patient": format!("患者{i}"),
                                     "priority": i64::from(next(10) == 0) * 5});
            if next(2) == 0 {
                let hours = 2 + next(6) as i64;
                let start = open + next((12 - hours as u64) * 4) as i64 * 900_000;
                request["earliest"] = json!(iso(start));
                request["latest"] = json!(iso(start + hours * 3_600_000));
            }
            if next(8) == 0 {
                request["practitioner"] = json!(format!("doc-{}", 1 + next(4)));
            }
            request
        })
        .collect()
}

fn search_params(from: i64, to: i64) -> Vec<(String, String)> {
    vec![
        ("treatment".into(), "tiaoq".into()),
        ("from".into(), iso(from)),
        ("to".into(), iso(to)),
    ]
}

fn booking_of(slot: &Value) -> Value {
    json!({"resources": slot["resources"], "operators": slot["operators"], "start": slot["start"],
           "end": slot["end"], "buffer_before_minutes": 10, "buffer_after_minutes": 10, "treatment": "tiaoq"})
}

/// Runs the suite and prints its figures.
pub async fn run(searches: usize, attempts: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench-clinic.db");
    let url = format!("sqlite:{}", path.display());
    let clock = Arc::new(erpos_kernel::clock::ManualClock::new(DAY0 - DAY_MS));
    let k = Kernel::open_with_clock(&url, clock).await?;
    let bench = Caller::system("bench");
    clinic(&k, &bench).await?;

    // A month of bookings: 24 visits a day, at starts spread over the day.
    let mut booked = 0;
    for day in 0..30 {
        for n in 0..24 {
            let from = DAY0 + day * DAY_MS + (9 * 60 + (n * 29) % 700) * 60_000;
            let found = erpos_kernel::app::slots::search(
                &k,
                &bench,
                &search_params(from, from + DAY_MS / 2),
            )
            .await?;
            if let Some(slot) = found.slots.first() {
                let slot = serde_json::to_value(slot)?;
                if erpos_kernel::app::bookings::book(&k, &bench, &booking_of(&slot))
                    .await
                    .is_ok()
                {
                    booked += 1;
                }
            }
        }
    }
    println!(
        "clinic: 5 rooms, 3 lasers, 10 practitioners, 09:00–21:00; {booked} visits booked over 30 days"
    );

    // 1. Slot searches over the 30 days ahead.
    let mut latencies = Vec::with_capacity(searches);
    let mut found_total = 0;
    let started = Instant::now();
    for i in 0..searches {
        let from = DAY0 + (i as i64 % 30) * DAY_MS / 3;
        let t = Instant::now();
        let found =
            erpos_kernel::app::slots::search(&k, &bench, &search_params(from, from + 30 * DAY_MS))
                .await?;
        latencies.push(t.elapsed());
        found_total += found.slots.len();
    }
    let search = figures(latencies, started.elapsed());
    // The baseline: one indexed read of the window's holds, what any search from storage
    // must do at least.
    let mut latencies = Vec::with_capacity(searches);
    let started = Instant::now();
    for i in 0..searches {
        let from = DAY0 + (i as i64 % 30) * DAY_MS / 3;
        let mut sql = erpos_kernel::sql::Sql::new(k.db.dialect());
        sql.push(
            "SELECT holder, CAST(held_from_ms AS TEXT), CAST(held_to_ms AS TEXT) FROM booking_holds WHERE held_from_ms < ",
        )
        .int(from + 30 * DAY_MS)
        .push(" AND held_to_ms > ")
        .int(from);
        let t = Instant::now();
        let rows = k.db.fetch(sql).await?;
        latencies.push(t.elapsed());
        std::hint::black_box(rows);
    }
    let baseline = figures(latencies, started.elapsed());
    // The same, 200 slots each, the tightest first (ten days or so of starts looked at).
    let mut latencies = Vec::with_capacity(searches / 3 + 1);
    let started = Instant::now();
    for i in 0..searches / 3 + 1 {
        let from = DAY0 + (i as i64 % 30) * DAY_MS / 3;
        let mut params = search_params(from, from + 30 * DAY_MS);
        params.push(("limit".into(), "200".into()));
        params.push(("order".into(), "tightest".into()));
        let t = Instant::now();
        std::hint::black_box(erpos_kernel::app::slots::search(&k, &bench, &params).await?);
        latencies.push(t.elapsed());
    }
    let tightest = figures(latencies, started.elapsed());
    println!(
        "slot searches (调Q激光, 30 days × 10 practitioners × 5 rooms × 3 lasers, 20 slots each, {found_total} found):"
    );
    print("search in the kernel's index", &search);
    print("tightest of the first 200 slots", &tightest);
    print("baseline: read the window's holds", &baseline);
    println!(
        "  ratio search / baseline: {:.2}x (p99), {:.2}x (ops/s); goal: p99 under 20 ms ({})",
        search.p99.as_secs_f64() / baseline.p99.as_secs_f64().max(1e-9),
        search.per_second / baseline.per_second.max(1e-9),
        if search.p99 < Duration::from_millis(20) {
            "met"
        } else {
            "not met"
        }
    );

    // 2. Booking decisions under contention: 64 clients, each asking for one of a few
    // slots on a fresh day (most of them collide).
    let k = Arc::new(k);
    let contended_day = DAY0 + 31 * DAY_MS;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per_client = attempts.div_ceil(64);
    for c in 0..64 {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let bench = Caller::system("bench");
            let mut out = Vec::new();
            for n in 0..per_client {
                let quarter = ((c * 7 + n * 13) % 40) as i64;
                let start = contended_day + (9 * 60 + 15 + quarter * 15) * 60_000;
                let body = json!({"resources": [format!("room-{}", 1 + (c + n) % 5), format!("laser-{}", 1 + n % 3)],
                    "operators": [format!("doc-{}", 1 + c % 10)], "start": iso(start), "end": iso(start + 30 * 60_000),
                    "buffer_before_minutes": 10, "buffer_after_minutes": 10, "treatment": "tiaoq"});
                let t = Instant::now();
                let answer = erpos_kernel::app::bookings::book(&k, &bench, &body).await;
                out.push((t.elapsed(), answer.is_ok()));
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    let mut won = 0;
    for t in tasks {
        for (d, ok) in t.await? {
            latencies.push(d);
            won += usize::from(ok);
        }
    }
    let decisions = figures(latencies, started.elapsed());
    println!(
        "booking decisions (64 clients at once, {} attempts on 40 contended starts: {won} taken, {} refused with alternatives):",
        per_client * 64,
        per_client * 64 - won
    );
    print("erpos: decide (and commit the winners)", &decisions);

    // 3. Bookings taken one after another, every one committed, against raw inserts of
    // the same rows, one transaction each.
    let count = attempts.min(2_000);
    let mut latencies = Vec::with_capacity(count);
    let mut taken = 0;
    let started = Instant::now();
    for i in 0..count {
        let day = DAY0 + (40 + i as i64 / 40) * DAY_MS;
        let start = day + (9 * 60 + 15 + (i as i64 % 40) * 15) * 60_000;
        let body = json!({"resources": [format!("room-{}", 1 + i % 5)], "start": iso(start), "end": iso(start + 15 * 60_000), "treatment": "tiaoq"});
        let t = Instant::now();
        taken += usize::from(
            erpos_kernel::app::bookings::book(&k, &bench, &body)
                .await
                .is_ok(),
        );
        latencies.push(t.elapsed());
    }
    let writes = figures(latencies, started.elapsed());
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let id = uuid::Uuid::now_v7().to_string();
        let mut booking = erpos_kernel::sql::Sql::new(k.db.dialect());
        booking.push("INSERT INTO bookings (id, state, start_ms, end_ms, held_from_ms, held_to_ms, version, definition, updated_ms) VALUES (")
            .text(&id).push(", 'cancelled', 0, 1, 0, 1, 1, '{}', ").int(i as i64).push(")");
        let mut hold = erpos_kernel::sql::Sql::new(k.db.dialect());
        hold.push(
            "INSERT INTO booking_holds (booking_id, holder, held_from_ms, held_to_ms) VALUES (",
        )
        .text(&id)
        .push(", 'resource:raw', ")
        .int(i as i64 * 10)
        .push(", ")
        .int(i as i64 * 10 + 5)
        .push(")");
        let t = Instant::now();
        k.db.write_atomically(vec![booking, hold]).await?;
        latencies.push(t.elapsed());
    }
    let raw = figures(latencies, started.elapsed());
    println!(
        "bookings taken one after another ({taken} of {count}, each one transaction with its hold, history and audit row):"
    );
    print("erpos: book", &writes);
    print("baseline: raw insert, one tx each", &raw);
    println!(
        "  ratio erpos / raw: {:.2}x (ops/s)",
        writes.per_second / raw.per_second.max(1e-9)
    );

    // 4. A day planned: the requests of a fresh day on the clinic as it is.
    let plan_day = DAY0 + 120 * DAY_MS;
    let requests = day_requests(plan_day, 160);
    let count = requests.len();
    let body = json!({"from": iso(plan_day), "to": iso(plan_day + DAY_MS), "requests": requests});
    let t = Instant::now();
    let planned = erpos_kernel::app::plan::propose(&k, &bench, &body).await?;
    let took = t.elapsed();
    let busiest = planned
        .load
        .iter()
        .filter(|l| l.kind == "resource")
        .map(|l| l.utilisation)
        .fold(0.0, f64::max);
    println!(
        "a day planned ({count} requests of 调Q激光, 光子嫩肤 and 肉毒素 on 5 rooms, 3 lasers, 2 IPL, 10 practitioners):"
    );
    println!(
        "  placed {} ({} treatment minutes), left out {}, in {:.1} ms (order: {})",
        planned.placed.len(),
        planned.treatment_minutes,
        planned.unplaced.len(),
        took.as_secs_f64() * 1000.0,
        planned.order
    );
    println!(
        "  bound (linear relaxation: every holder group's free time at once): {} treatment minutes; ratio plan / bound: {:.3}; goal ≥ 0.95 ({}); busiest resource held {:.0}% of its free time",
        planned.bound_minutes,
        planned.ratio_to_bound,
        if planned.ratio_to_bound >= 0.95 {
            "met"
        } else {
            "not met"
        },
        busiest * 100.0
    );
    Ok(())
}
