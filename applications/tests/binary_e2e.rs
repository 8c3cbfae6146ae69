//! The `erpos` binary end to end: `erpos demo` on a real socket serves the clinic, and
//! stops cleanly on SIGTERM; `erpos migrate` prepares a database; `--help` explains itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn erpos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_erpos"))
}

/// Sends one HTTP/1.1 GET over a plain socket and returns (status, body).
fn get(addr: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split_whitespace().nth(1).unwrap_or("0").parse()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, serde_json::from_str(&body)?))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn demo_serves_the_clinic_and_stops_on_sigterm() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = erpos()
        .args(["demo", "--listen", "127.0.0.1:0", "--file"])
        .arg(dir.path().join("demo.db"))
        .env("ERPOS_LOG", "warn")
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
    let outcome = (|| -> anyhow::Result<()> {
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
        assert_eq!(
            queues["states"]["RUNNING"], 6,
            "six demo visits at check-in: {queues}"
        );
        let (status, services) = get(&addr, "/api/v1/services")?;
        assert_eq!(status, 200);
        assert_eq!(services["total"], 2);
        let (_, doc) = get(&addr, "/api/v1/openapi.json")?;
        assert!(doc["paths"]["/api/v1/records/{item}"].is_object());
        Ok(())
    })();
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
    outcome?;
    assert!(
        status.is_some_and(|s| s.success()),
        "erpos did not stop cleanly on SIGTERM: {status:?}"
    );
    Ok(())
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
