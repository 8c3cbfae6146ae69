//! A large migration survives `kill -9` (issue 13 §3): `erpos serve` on a SQLite file, with
//! batches of 200 rows and a pause between them, starts retyping 会员's 积分 over 2,000
//! members (202, progress at `Location`), and is killed with SIGKILL in the middle of the
//! conversion. Started again on the same file, it resumes the run by itself from its last
//! committed batch, and the run ends with every value converted (the ones that cannot are
//! kept in the archive column), the search documents rebuilt and the item writable again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{Value, json};

mod support;
use support::{Server, request};

const TOKEN: &str = "migration-crash-test-token";
const MEMBERS: usize = 2_000;

fn call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    request(addr, method, path, body, Some(TOKEN))
}

fn member(jifen: &str, phone_searchable: bool) -> Value {
    json!({
        "name": "huiyuan",
        "label": {"zh": "会员"},
        "fields": [
            {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true},
            {"name": "jifen", "label": {"zh": "积分"}, "type": jifen},
            {"name": "shouji", "label": {"zh": "手机"}, "type": "text", "searchable": phone_searchable},
        ]
    })
}

/// Every 100th member's points say "很多" and cannot become a number.
fn points(i: usize) -> String {
    if i % 100 == 3 {
        "很多".into()
    } else {
        (i * 3).to_string()
    }
}

fn progress(addr: &str) -> anyhow::Result<Value> {
    let (s, p) = call(
        addr,
        "GET",
        "/api/v1/data-items/huiyuan/migration/progress",
        None,
    )?;
    ensure!(s == 200, "{s} {p}");
    Ok(p)
}

#[test]
fn a_large_migration_killed_midway_resumes_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("erpos.db");
    let throttled = [
        ("ERPOS_MIGRATION_BATCH_ROWS", "200"),
        ("ERPOS_MIGRATION_PAUSE_MS", "100"),
    ];
    let mut server = Server::start(&db, TOKEN, &throttled)?;
    let addr = server.addr.clone();
    let (s, r) = call(
        &addr,
        "POST",
        "/api/v1/data-items",
        Some(&member("text", false)),
    )?;
    ensure!(s == 201, "{s} {r}");
    for i in 0..MEMBERS {
        let body = json!({"xingming": format!("会员{i:04}"), "jifen": points(i), "shouji": format!("139{i:08}")});
        let (s, r) = call(&addr, "POST", "/api/v1/records/huiyuan", Some(&body))?;
        ensure!(s == 201, "{s} {r}");
    }
    let (s, r) = call(
        &addr,
        "PUT",
        "/api/v1/data-items/huiyuan",
        Some(&member("integer", true)),
    )?;
    ensure!(s == 200, "{s} {r}");
    let (s, started) = call(
        &addr,
        "POST",
        "/api/v1/data-items/huiyuan/migration",
        Some(&json!({"confirm_destructive": true})),
    )?;
    ensure!(s == 202, "{s} {started}");
    assert_eq!(started["total"], 2 * MEMBERS, "{started}");

    // Killed once a few batches of the conversion are committed, before its end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before_kill = loop {
        let p = progress(&addr)?;
        let done = p["done"].as_u64().unwrap_or(0);
        if p["state"] == "converting" && done >= 400 {
            break p;
        }
        ensure!(
            p["state"] == "converting",
            "the conversion ended before the kill: {p}"
        );
        ensure!(Instant::now() < deadline, "no progress: {p}");
        std::thread::sleep(Duration::from_millis(10));
    };
    server.kill9();
    let done_at_kill = before_kill["done"].as_u64().unwrap_or(0);
    assert!(done_at_kill < MEMBERS as u64, "{before_kill}");

    // Started again, unthrottled: the run goes on by itself from where it was.
    let server = Server::start(&db, TOKEN, &[])?;
    let addr = server.addr.clone();
    let p = progress(&addr)?;
    assert!(
        p["done"].as_u64().unwrap_or(0) >= done_at_kill,
        "the committed batches are kept: {p} (at the kill: {before_kill})"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let p = progress(&addr)?;
        if p["state"] == "done" {
            break p;
        }
        ensure!(p["state"] != "failed", "{p}");
        ensure!(
            Instant::now() < deadline,
            "the resumed run did not end: {p}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(finished["done"], 2 * MEMBERS, "{finished}");
    assert_eq!(finished["percent"], 100.0, "{finished}");

    let mut seen = 0;
    for page in 1..=(MEMBERS / 500) {
        let (s, list) = call(
            &addr,
            "GET",
            &format!("/api/v1/records/huiyuan?limit=500&page={page}&sort=xingming"),
            None,
        )?;
        ensure!(s == 200, "{s} {list}");
        for r in list["items"].as_array().cloned().unwrap_or_default() {
            let i = seen;
            let expected = if i % 100 == 3 {
                Value::Null
            } else {
                json!(i * 3)
            };
            assert_eq!(r["jifen"], expected, "member {i}: {r}");
            seen += 1;
        }
    }
    assert_eq!(seen, MEMBERS);
    let (s, found) = call(&addr, "GET", "/api/v1/records/huiyuan?q=13900001234", None)?;
    ensure!(s == 200, "{s} {found}");
    assert_eq!(found["items"][0]["xingming"], "会员1234", "{found}");
    let (s, r) = call(
        &addr,
        "POST",
        "/api/v1/records/huiyuan",
        Some(&json!({"xingming": "查小欣", "jifen": 12})),
    )?;
    ensure!(s == 201, "writable again: {s} {r}");
    Ok(())
}
