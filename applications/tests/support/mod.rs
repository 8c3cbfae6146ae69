//! What the binary's end-to-end tests share: one HTTP/1.1 request over a plain socket to
//! a real `erpos` process (no client library, so the server is met as any client meets it),
//! and that process itself. Each test crate uses its own part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, ensure};

pub mod clinic;

use serde_json::Value;

/// Sends one HTTP/1.1 request (a JSON body and a bearer token, both optional) and returns
/// the status and the JSON body (Null when the body is empty).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if body.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    write!(stream, "{head}\r\n{payload}")?;
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
    if body.trim().is_empty() {
        return Ok((status, Value::Null));
    }
    Ok((status, serde_json::from_str(&body)?))
}

/// The body of a chunked answer, its chunks joined.
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

/// A running `erpos serve` on a SQLite file; killed (SIGKILL) when dropped, so a failing
/// test leaves no server behind.
pub struct Server {
    child: Child,
    /// The address it serves on (`127.0.0.1:port`).
    pub addr: String,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `erpos serve` on `db` with the bootstrap `token` and the extra environment
    /// `env`, on a free port, and waits for the address it prints.
    pub fn start(db: &Path, token: &str, env: &[(&str, &str)]) -> anyhow::Result<Server> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_erpos"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database"])
            .arg(format!("sqlite:{}", db.display()))
            .env("ERPOS_LOG", "warn")
            .env("ERPOS_BOOTSTRAP_TOKEN", token)
            .stdout(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take();
        let mut server = Server {
            child,
            addr: String::new(),
            _stdout: BufReader::new(stdout.ok_or_else(|| anyhow!("no stdout"))?),
        };
        let mut first = String::new();
        server._stdout.read_line(&mut first)?;
        server.addr = first
            .split("http://")
            .nth(1)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        ensure!(!server.addr.is_empty(), "no address printed: {first:?}");
        Ok(server)
    }

    /// kill -9, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
