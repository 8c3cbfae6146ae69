//! The real `erpos serve` under hostile rules: a `design` user's scripts and conditions
//! written to overflow the stack (deep closures), eat memory (`replace` blow-ups, long map
//! keys), burn CPU (nested maps, costly operations) or hold a thread (`sleep`) are posted
//! over HTTP and fired. The process must stay up, under a memory bound read from
//! `/proc/<pid>/status`, every hostile rule must fail with an error naming it and the line,
//! the healthy rule beside them must run, and the server must start again on the same
//! database. (Before the sandbox was hardened the closure script aborted the process, and
//! again at each restart; the `replace` took it from 89 MB to 1.8 GB.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

const TOKEN: &str = "sandbox-bootstrap-token-0123";
/// What the server may reach at its peak (VmHWM), hostile rules and all: a debug build
/// serving an empty database is about 30 MB here.
const MEMORY_BOUND_KB: u64 = 400 * 1024;

const HOSTILE: &[(&str, Option<&str>, &str)] = &[
    (
        "deep_closures",
        None,
        "let m = #{};\nfor i in 0..30000 { let prev = m; let f = || prev; m = #{a: f}; }\n()",
    ),
    (
        "replace_blowup",
        None,
        "let s = \"x\";\ns.pad(30000, \"x\");\ns.replace(\"x\", s);\n()",
    ),
    (
        "nested_maps",
        None,
        "let m = #{};\nfor i in 0..5000 { m = #{a: m}; }\n()",
    ),
    (
        "long_keys",
        None,
        "let m = #{};\nlet s = \"k\";\ns.pad(30000, \"k\");\nfor i in 0..10000 { m[s + i] = i; }\n()",
    ),
    ("sleeper", None, "sleep(3600);\n()"),
    (
        "costly_steps",
        None,
        "let a = [];\na.pad(9999, 0);\nfor i in 0..60000 { a[0] = i; }\n()",
    ),
    ("recursion", None, "fn down(n) { [down(n + 1)] }\ndown(0)"),
    (
        "replace_condition",
        Some("(event.payload.data.text + \"\").replace(\"a\", event.payload.data.text) == ()"),
        "()",
    ),
];

/// One request as the bootstrap administrator.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    support::request(addr, method, path, body, Some(TOKEN))
}

fn serve(database: &str) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_erpos"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .env("ERPOS_LOG", "error")
        .env("ERPOS_BOOTSTRAP_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .spawn()?;
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
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    Ok((child, addr))
}

/// The peak and current resident memory of `pid`, in kB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let read = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((read("VmHWM:")?, read("VmRSS:")?))
}

fn stop(child: &mut Child) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    for _ in 0..100 {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill()?;
    Ok(())
}

#[test]
fn hostile_rules_leave_the_real_server_up_under_a_memory_bound_and_it_starts_again()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let database = format!("sqlite:{}", dir.path().join("hostile.db").display());
    let (mut child, addr) = serve(&database)?;
    let pid = child.id();
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> anyhow::Result<()> {
            anyhow::ensure!(!addr.is_empty(), "no address printed");
            for (name, condition, source) in HOSTILE {
                let mut body = json!({"name": name, "label": {"zh": "恶意规则"}, "priority": 10,
                    "event": {"kind": "signal", "name": "probe"},
                    "instructions": [{"op": "script", "source": source}]});
                if let Some(c) = condition {
                    body["condition"] = json!(c);
                }
                let (s, b) = request(&addr, "POST", "/api/v1/rules", Some(&body))?;
                assert_eq!(s, 201, "{name}: {b}");
            }
            // The person the healthy rule notifies.
            let (s, b) = request(
                &addr,
                "POST",
                "/api/v1/users",
                Some(&json!({"id": "dr_chen"})),
            )?;
            assert_eq!(s, 201, "{b}");
            let healthy = json!({"name": "front_desk", "label": {"zh": "前台提醒"},
                "event": {"kind": "signal", "name": "probe"},
                "instructions": [{"op": "notify", "to": ["dr_chen"], "title": "检查"}]});
            let (s, b) = request(&addr, "POST", "/api/v1/rules", Some(&healthy))?;
            assert_eq!(s, 201, "{b}");
            let (before, _) = memory(pid).expect("the server's /proc status");
            let ammunition = json!({"text": "a".repeat(30_000)});
            let (s, b) = request(&addr, "POST", "/api/v1/events/probe", Some(&ammunition))?;
            assert!((200..300).contains(&s), "{s} {b}");

            // The worker gets through every rule; the server answers meanwhile.
            let started = Instant::now();
            let mut peak = before;
            loop {
                anyhow::ensure!(
                    child.try_wait()?.is_none(),
                    "the server died while the hostile rules ran"
                );
                let (hwm, _) = memory(pid).expect("the server's /proc status");
                peak = peak.max(hwm);
                let (s, health) = request(&addr, "GET", "/healthz", None)?;
                assert_eq!(s, 200, "{health}");
                let (_, shown) = request(&addr, "GET", "/api/v1/rules/front_desk", None)?;
                if shown["stats"]["fired"].as_i64().unwrap_or(0) >= 1 {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(120),
                    "the healthy rule never ran: {shown}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            for (name, _, _) in HOSTILE {
                let (_, shown) = request(&addr, "GET", &format!("/api/v1/rules/{name}"), None)?;
                let error = shown["stats"]["last_error"].as_str().unwrap_or_default();
                assert_eq!(shown["stats"]["last_outcome"], "failed", "{name}: {shown}");
                assert!(error.contains(&format!("rule '{name}'")), "{name}: {error}");
                assert!(error.contains("line "), "{name}: {error}");
            }
            let (hwm, rss) = memory(pid).expect("the server's /proc status");
            peak = peak.max(hwm);
            eprintln!("memory: {before} kB before, peak {peak} kB, now {rss} kB");
            assert!(
                peak < MEMORY_BOUND_KB,
                "the server reached {peak} kB (bound {MEMORY_BOUND_KB} kB)"
            );
            let (_, set_aside) = request(&addr, "GET", "/api/v1/rules/quarantine", None)?;
            assert_eq!(set_aside["items"], json!([]), "{set_aside}");
            Ok(())
        }));
    stop(&mut child)?;
    match outcome {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    }

    // It starts again on the same database, and nothing is replayed into a crash.
    let (mut again, addr) = serve(&database)?;
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> anyhow::Result<()> {
            anyhow::ensure!(!addr.is_empty(), "no address printed at restart");
            let (s, health) = request(&addr, "GET", "/healthz", None)?;
            assert_eq!(s, 200, "{health}");
            std::thread::sleep(Duration::from_millis(500));
            anyhow::ensure!(again.try_wait()?.is_none(), "the server died at restart");
            Ok(())
        }));
    stop(&mut again)?;
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
