//! The `erpos` binary end to end: `erpos demo` on a real socket serves the clinic, and
//! stops cleanly on SIGTERM; `erpos migrate` prepares a database; `--help` explains itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;
use support::request;

/// The bootstrap token the demo is started with.
const TOKEN: &str = "e2e-bootstrap-token-0123";

fn erpos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_erpos"))
}

/// Sends one HTTP/1.1 GET over a plain socket as the bootstrap administrator and returns
/// (status, body).
fn get(addr: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    request(addr, "GET", path, None, Some(TOKEN))
}

/// Logs in as a demo user with the demo password: the status and the session.
fn log_in(addr: &str, user: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let body = serde_json::json!({"user": user, "password": "erpos-demo"});
    request(addr, "POST", "/api/v1/sessions", Some(&body), None)
}

#[test]
fn demo_serves_the_clinic_and_stops_on_sigterm() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = erpos()
        .args(["demo", "--listen", "127.0.0.1:0", "--file"])
        .arg(dir.path().join("demo.db"))
        .env("ERPOS_LOG", "warn")
        .env("ERPOS_BOOTSTRAP_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first)?;
    let addr = first
        .split("http://")
        .nth(1)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    // A failed assertion must still stop the child (else it outlives the test and holds the
    // test runner's output open): catch it, clean up, then fail.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> anyhow::Result<()> {
            anyhow::ensure!(!addr.is_empty(), "no address printed: {first:?}");
            let (status, health) = get(&addr, "/healthz")?;
            assert_eq!(status, 200, "{health}");
            let (status, found) = get(&addr, "/api/v1/records/patient?q=zs")?;
            assert_eq!(status, 200);
            assert_eq!(found["items"][0]["xingming"], "张三");
            let (_, patients) = get(&addr, "/api/v1/records/patient?limit=1")?;
            assert!(patients["total"].as_u64().unwrap_or(0) >= 30, "{patients}");
            let (_, rooms) = get(&addr, "/api/v1/records/room?limit=100")?;
            assert_eq!(rooms["total"], 8);
            let (_, queues) = get(&addr, "/api/v1/queues")?;
            // A walk-in (and, once they have started the day before, tomorrow's booked
            // visits) waits at check-in, offered to the front desk; the week's later visits
            // are NEW until their day before. Today's other walk-ins are with staff (at the
            // cashier, in treatment, a new patient's consultation, for which her visit
            // waits), suspended, done or declined.
            let ready = queues["states"]["READY"].as_u64().unwrap_or(0);
            assert!(ready >= 1, "the demo's visits at check-in: {queues}");
            assert!(
                queues["waiting"]["children"].as_u64().unwrap_or(0) >= 1,
                "a first visit waits for its consultation: {queues}"
            );
            assert!(
                queues["states"]["NEW"].as_u64().unwrap_or(0) >= 30,
                "the week's later visits: {queues}"
            );
            for (state, least) in [("RUNNING", 3), ("SUSPENDED", 1), ("WAITING", 1)] {
                let n = queues["states"][state].as_u64().unwrap_or(0);
                assert!(n >= least, "visits {state}: {queues}");
            }
            let (_, ended) = get(
                &addr,
                "/api/v1/processes?service=treatment_visit&state=TERMINATED",
            )?;
            let mut exits: Vec<&str> = ended["items"]
                .as_array()
                .map(|l| l.iter().filter_map(|p| p["exit"].as_str()).collect())
                .unwrap_or_default();
            exits.sort_unstable();
            assert_eq!(
                exits,
                ["completed", "completed"],
                "done and declined: {ended}"
            );
            let (_, follow_ups) = get(&addr, "/api/v1/processes?service=follow_up")?;
            assert_eq!(
                follow_ups["items"].as_array().map(Vec::len),
                Some(3),
                "the done visit's follow-ups at 1, 7 and 30 days: {follow_ups}"
            );
            for branch in ["xuhui", "jingan"] {
                let (status, list) = get(
                    &addr,
                    &format!("/api/v1/bookings?branch={branch}&limit=500"),
                )?;
                assert_eq!(status, 200, "{list}");
                let n = list["items"].as_array().map_or(0, Vec::len);
                assert!(n >= 20, "a week at {branch}: {n} bookings");
            }
            let (_, accounts) = get(&addr, "/api/v1/accounts")?;
            assert!(
                accounts["items"].as_array().map_or(0, Vec::len) >= 6,
                "the demo's 储值卡: {accounts}"
            );
            let (status, services) = get(&addr, "/api/v1/services")?;
            assert_eq!(status, 200);
            // The clinic's visit, consultation and follow-up services and the leave request.
            assert_eq!(services["total"], 4, "{services}");
            // The seven treatments of the original, each bookable from a slot search.
            let (_, treatments) = get(&addr, "/api/v1/treatments")?;
            let names: Vec<&str> = treatments["items"]
                .as_array()
                .map(|l| l.iter().filter_map(|t| t["label"]["zh"].as_str()).collect())
                .unwrap_or_default();
            for zh in [
                "肉毒素",
                "超声炮",
                "黄金微针",
                "调Q激光",
                "光子嫩肤",
                "果酸焕肤",
                "水光针",
            ] {
                assert!(names.contains(&zh), "{zh} in {names:?}");
            }
            let from = chrono::Utc::now() + chrono::Duration::days(1);
            let to = from + chrono::Duration::days(2);
            let q = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339().replace('+', "%2B").replace(':', "%3A")
            };
            for t in [
                "roudusu",
                "chaoshengpao",
                "huangjinweizhen",
                "tiaoq",
                "guangzi",
                "guosuan",
                "shuiguangzhen",
            ] {
                let (status, slots) = get(
                    &addr,
                    &format!(
                        "/api/v1/bookings/slots?treatment={t}&from={}&to={}&limit=1",
                        q(from),
                        q(to)
                    ),
                )?;
                assert_eq!(status, 200, "{slots}");
                assert_eq!(
                    slots["slots"].as_array().map(Vec::len),
                    Some(1),
                    "{t}: {slots}"
                );
            }
            // Stock with lots near expiry: 麻膏 MG1102 in 10 days, 保妥适 C2911 in 20 (徐汇店),
            // 果酸液 JGS01 in 25 (静安店); 嗨体 under its reorder level of 10 in both branches.
            let (_, alerts) = get(&addr, "/api/v1/stock/alerts")?;
            let expiring: Vec<&str> = alerts["expiring"]
                .as_array()
                .map(|l| l.iter().filter_map(|x| x["lot_number"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(expiring, ["MG1102", "C2911", "JGS01"], "{alerts}");
            let low: Vec<(&str, &str, i64)> = alerts["low"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|x| {
                            (
                                x["material"].as_str().unwrap_or_default(),
                                x["branch"].as_str().unwrap_or_default(),
                                x["on_hand"].as_i64().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(
                low,
                [("haiti", "jingan", 5), ("haiti", "xuhui", 8)],
                "{alerts}"
            );
            let (_, doc) = get(&addr, "/api/v1/openapi.json")?;
            assert!(doc["paths"]["/api/v1/records/{item}"].is_object());
            let (status, refused) = request(&addr, "GET", "/api/v1/services", None, None)?;
            assert_eq!(status, 401, "{refused}");
            let (status, _) = log_in(&addr, "admin")?;
            assert_eq!(
                status, 401,
                "with a bootstrap token, no demo passwords are set"
            );
            Ok(())
        }));
    // SIGTERM: graceful shutdown, exit code 0.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait()? {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        child.kill()?;
    }
    match outcome {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "erpos did not stop cleanly on SIGTERM: {status:?}"
    );
    Ok(())
}

/// Starts `erpos demo` with `envs` and returns the child and the address it serves on.
fn start_demo(
    dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> anyhow::Result<(std::process::Child, String)> {
    let mut cmd = erpos();
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--file"])
        .arg(dir.join("demo.db"))
        .env("ERPOS_LOG", "warn")
        .env_remove("ERPOS_BOOTSTRAP_TOKEN")
        .stdout(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let addr = first
        .split("http://")
        .nth(1)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    // Keep reading (and dropping) what it prints, so it never writes to a closed pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    Ok((child, addr))
}

#[test]
fn demo_without_a_bootstrap_token_lets_a_person_log_in_with_the_demo_password() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (mut child, addr) = start_demo(dir.path(), &[])?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || -> anyhow::Result<()> {
            anyhow::ensure!(!addr.is_empty(), "no address printed");
            let (status, _) = request(&addr, "GET", "/api/v1/records/patient", None, None)?;
            assert_eq!(status, 401);
            let (status, session) = log_in(&addr, "qiantai_zhou")?;
            assert_eq!(status, 201, "{session}");
            let token = session["token"].as_str().unwrap_or_default();
            let (status, found) = request(
                &addr,
                "GET",
                "/api/v1/records/patient?q=zs",
                None,
                Some(token),
            )?;
            assert_eq!(status, 200, "{found}");
            assert_eq!(found["items"][0]["xingming"], "张三");
            let (status, refused) = request(
                &addr,
                "POST",
                "/api/v1/data-items",
                Some(&serde_json::json!({})),
                Some(token),
            )?;
            assert_eq!(status, 403, "front desk staff do not design: {refused}");
            let (status, admin) = log_in(&addr, "admin")?;
            assert_eq!(status, 201, "{admin}");
            let (status, queues) = request(
                &addr,
                "GET",
                "/api/v1/queues",
                None,
                admin["token"].as_str(),
            )?;
            assert_eq!(status, 200, "{queues}");
            // The leave request ships with the demo: a nurse logs in and applies.
            let (status, nurse) = log_in(&addr, "xiaoli")?;
            assert_eq!(status, 201, "{nurse}");
            let token = nurse["token"].as_str().unwrap_or_default();
            let (status, form) = request(
                &addr,
                "POST",
                "/api/v1/records/qingjia",
                Some(&serde_json::json!({"days": 2, "reason": "休息"})),
                Some(token),
            )?;
            assert_eq!(status, 201, "{form}");
            let (status, started) = request(
                &addr,
                "POST",
                "/api/v1/processes",
                Some(
                    &serde_json::json!({"service": "leave", "record": {"item": "qingjia", "id": form["id"]}}),
                ),
                Some(token),
            )?;
            assert_eq!(status, 201, "{started}");
            assert_eq!(started["creator"], "xiaoli");
            Ok(())
        },
    ));
    let _ = child.kill();
    let _ = child.wait();
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn migrate_prepares_a_database_and_help_explains_each_command() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("erpos.db");
    let out = erpos()
        .args(["migrate", "--database"])
        .arg(format!("sqlite:{}", db.display()))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
    let help = erpos().arg("--help").output()?;
    let text = String::from_utf8(help.stdout)?;
    for command in ["serve", "demo", "migrate", "bench"] {
        assert!(
            text.contains(command),
            "--help does not mention {command}:\n{text}"
        );
    }
    Ok(())
}
