//! The booking property (issue 14 acceptance), on every backend: random bookings,
//! cancellations and reschedules over two rooms, a laser and a practitioner, each with the
//! clinic's hours and random buffers, checked against a model that knows only the rule —
//! a span is refused (422) when it leaves a holder's working hours, refused (409) when it
//! overlaps, buffers included, an active booking sharing a holder, and taken otherwise.
//! Every answer must be the model's, and at the end no two stored holds of one holder
//! overlap, none lies outside the hours, and the kernel's index holds what storage holds.
//! On PostgreSQL the database itself refuses an overlapping hold written behind the
//! kernel's back (the exclusion constraint).

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use common::TestApp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

const HOLDERS: [(&str, bool); 4] = [
    ("room-a1", true),
    ("room-a2", true),
    ("picolaser-1", true),
    ("doc.wang", false),
];
/// 2026-12-03T00:00+08:00, in ms.
const DAY0: i64 = 1_796_227_200_000;
const MINUTE: i64 = 60_000;

#[derive(Debug, Clone)]
struct Slot {
    /// Which of `HOLDERS` (a non-empty mask).
    mask: u8,
    day: i64,
    /// Minutes after midnight, local.
    start: i64,
    minutes: i64,
    before: i64,
    after: i64,
}

#[derive(Debug, Clone)]
enum Op {
    Book(Slot),
    Cancel(usize),
    Reschedule(usize, Slot),
}

fn slot() -> impl Strategy<Value = Slot> {
    (1u8..16, 0i64..2, 30i64..92, 1i64..9, 0i64..4, 0i64..4).prop_map(
        |(mask, day, quarter, length, before, after)| Slot {
            mask,
            day,
            start: quarter * 15,
            minutes: length * 15,
            before: before * 10,
            after: after * 10,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => slot().prop_map(Op::Book),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (any::<usize>(), slot()).prop_map(|(i, s)| Op::Reschedule(i, s)),
    ]
}

impl Slot {
    fn holders(&self) -> Vec<usize> {
        (0..HOLDERS.len())
            .filter(|i| self.mask & (1 << i) != 0)
            .collect()
    }

    fn served(&self) -> (i64, i64) {
        let from = DAY0 + self.day * 1440 * MINUTE + self.start * MINUTE;
        (from, from + self.minutes * MINUTE)
    }

    fn held(&self) -> (i64, i64) {
        let (from, to) = self.served();
        (from - self.before * MINUTE, to + self.after * MINUTE)
    }

    /// Within 09:00–21:00 of its own day, buffers included.
    fn in_hours(&self) -> bool {
        let (from, to) = self.held();
        let open = DAY0 + self.day * 1440 * MINUTE + 9 * 60 * MINUTE;
        let close = open + 12 * 60 * MINUTE;
        from >= open && to <= close
    }

    fn times(&self) -> serde_json::Value {
        let iso = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        };
        let (from, to) = self.served();
        json!({"start": iso(from), "end": iso(to), "buffer_before_minutes": self.before, "buffer_after_minutes": self.after})
    }
}

/// An active booking, as the model knows it.
#[derive(Debug, Clone)]
struct Held {
    id: String,
    holders: Vec<usize>,
    span: (i64, i64),
}

fn predicted(
    model: &[Held],
    holders: &[usize],
    span: (i64, i64),
    except: Option<&str>,
    in_hours: bool,
) -> StatusCode {
    if !in_hours {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let clash = model.iter().any(|h| {
        Some(h.id.as_str()) != except
            && h.holders.iter().any(|x| holders.contains(x))
            && h.span.0 < span.1
            && span.0 < h.span.1
    });
    if clash {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    }
}

async fn run(app: &TestApp, ops: &[Op]) -> anyhow::Result<Result<(), String>> {
    // Each case starts from no active booking: whatever an earlier case left is cancelled.
    loop {
        let (st, list) = app
            .call("GET", "/api/v1/bookings?state=booked&limit=500", None)
            .await?;
        anyhow::ensure!(st == StatusCode::OK, "{st} {list}");
        let ids: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["id"].as_str().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            break;
        }
        for id in ids {
            let (st, b) = app
                .call("POST", &format!("/api/v1/bookings/{id}/cancel"), None)
                .await?;
            anyhow::ensure!(st == StatusCode::OK, "{st} {b}");
        }
    }
    let mut model: Vec<Held> = Vec::new();
    for op in ops {
        let (expected, answer, path) = match op {
            Op::Book(s) => {
                let holders = s.holders();
                let expected = predicted(&model, &holders, s.held(), None, s.in_hours());
                let mut body = s.times();
                body["resources"] = json!(
                    holders
                        .iter()
                        .filter(|i| HOLDERS[**i].1)
                        .map(|i| HOLDERS[*i].0)
                        .collect::<Vec<_>>()
                );
                body["operators"] = json!(
                    holders
                        .iter()
                        .filter(|i| !HOLDERS[**i].1)
                        .map(|i| HOLDERS[*i].0)
                        .collect::<Vec<_>>()
                );
                let answer = app.call("POST", "/api/v1/bookings", Some(body)).await?;
                if answer.0 == StatusCode::CREATED {
                    model.push(Held {
                        id: answer.1["id"].as_str().unwrap_or_default().to_owned(),
                        holders,
                        span: s.held(),
                    });
                }
                let expected = if expected == StatusCode::OK {
                    StatusCode::CREATED
                } else {
                    expected
                };
                (expected, answer, "book")
            }
            Op::Cancel(i) => {
                if model.is_empty() {
                    continue;
                }
                let held = model.remove(i % model.len());
                let answer = app
                    .call(
                        "POST",
                        &format!("/api/v1/bookings/{}/cancel", held.id),
                        None,
                    )
                    .await?;
                (StatusCode::OK, answer, "cancel")
            }
            Op::Reschedule(i, s) => {
                if model.is_empty() {
                    continue;
                }
                let at = i % model.len();
                let holders = model[at].holders.clone();
                let in_hours = s.in_hours();
                let expected = predicted(&model, &holders, s.held(), Some(&model[at].id), in_hours);
                let answer = app
                    .call(
                        "POST",
                        &format!("/api/v1/bookings/{}/reschedule", model[at].id),
                        Some(s.times()),
                    )
                    .await?;
                if answer.0 == StatusCode::OK {
                    model[at].span = s.held();
                }
                (expected, answer, "reschedule")
            }
        };
        if answer.0 != expected {
            return Ok(Err(format!(
                "{path}: expected {expected}, got {} {}\nmodel: {model:?}",
                answer.0, answer.1
            )));
        }
    }
    // Storage: no overlap per holder, nothing outside the hours, as much as the model.
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("SELECT holder, CAST(held_from_ms AS TEXT), CAST(held_to_ms AS TEXT) FROM booking_holds ORDER BY holder, held_from_ms");
    let rows = app.kernel.db.fetch(sql).await?;
    let parsed: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| {
            let t = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            (t(0), t(1).parse().unwrap_or(0), t(2).parse().unwrap_or(0))
        })
        .collect();
    for pair in parsed.windows(2) {
        if pair[0].0 == pair[1].0 && pair[1].1 < pair[0].2 {
            return Ok(Err(format!("overlapping holds stored: {pair:?}")));
        }
    }
    for (holder, from, to) in &parsed {
        let day = (from - DAY0).div_euclid(1440 * MINUTE);
        let open = DAY0 + day * 1440 * MINUTE + 9 * 60 * MINUTE;
        if *from < open || *to > open + 12 * 60 * MINUTE {
            return Ok(Err(format!(
                "a hold of {holder} outside the hours: {from}..{to}"
            )));
        }
    }
    let modelled: usize = model.iter().map(|h| h.holders.len()).sum();
    if parsed.len() != modelled {
        return Ok(Err(format!(
            "{} holds stored, the model has {modelled}",
            parsed.len()
        )));
    }
    let in_memory = app.kernel.bookings.holds_in_memory().await;
    if in_memory != modelled {
        return Ok(Err(format!(
            "{in_memory} holds in memory, the model has {modelled}"
        )));
    }
    Ok(Ok(()))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24)
}

#[test]
fn random_bookings_never_overlap_nor_leave_the_hours() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let apps = rt.block_on(async {
        let mut apps = Vec::new();
        for db in common::backends().await? {
            let app = common::app(db).await?;
            app.bookable_clinic().await?;
            apps.push(app);
        }
        anyhow::Ok(apps)
    })?;
    let booked = AtomicU32::new(0);
    for app in &apps {
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            max_shrink_iters: 128,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&proptest::collection::vec(op(), 5..30), |ops| {
            booked.fetch_add(ops.len() as u32, Ordering::Relaxed);
            match rt.block_on(run(app, &ops)) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(m)) => Err(TestCaseError::fail(m)),
                Err(e) => Err(TestCaseError::fail(format!("{e:#}"))),
            }
        });
        if let Err(e) = result {
            anyhow::bail!("on {}: {e}", app.backend);
        }
        if app.backend == "postgres" {
            rt.block_on(the_database_refuses_an_overlap_itself(app))?;
        }
    }
    anyhow::ensure!(booked.load(Ordering::Relaxed) > 0);
    Ok(())
}

/// A hold overlapping another of the same holder, written straight into the table behind
/// the kernel's back: the exclusion constraint refuses it.
async fn the_database_refuses_an_overlap_itself(app: &TestApp) -> anyhow::Result<()> {
    let (s, b) = app
        .call("POST", "/api/v1/bookings", Some(json!({"resources": ["room-a2"], "start": "2026-12-05T10:00:00+08:00", "end": "2026-12-05T11:00:00+08:00"})))
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("INSERT INTO bookings (id, state, start_ms, end_ms, held_from_ms, held_to_ms, version, definition, updated_ms) VALUES ('00000000-0000-7000-8000-000000000001', 'booked', 0, 1, 0, 1, 1, '{}', 0)");
    app.kernel.db.write_atomically(vec![sql]).await?;
    // 10:30–11:30 on 2026-12-05 (UTC+8), over the booking's 10:00–11:00.
    let from = DAY0 + 2 * 1440 * MINUTE + 630 * MINUTE;
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("INSERT INTO booking_holds (booking_id, holder, held_from_ms, held_to_ms) VALUES ('00000000-0000-7000-8000-000000000001', 'resource:room-a2', ")
        .int(from)
        .push(", ")
        .int(from + 60 * MINUTE)
        .push(")");
    let refused = app.kernel.db.write_atomically(vec![sql]).await;
    let text = format!("{refused:?}");
    anyhow::ensure!(
        refused.is_err() && text.contains("booking_holds_never_overlap"),
        "the overlap was stored: {text}"
    );
    Ok(())
}
