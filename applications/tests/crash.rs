//! Crash test of `erpos serve`: while client threads start clinic visits and move them on
//! (complete, suspend, resume, terminate), the server is killed with SIGKILL. After a
//! restart on the same SQLite file, every transition acknowledged to a client (a 2xx answer
//! carrying the PCB's `version_no` and `state`) is in the stored history, no resource is
//! held by a terminated process or beyond its capacity, the queue counts add up, and timers
//! pending at the crash still fire (on the system clock, with a `PT2S` wait step) — also
//! after a second kill -9 taken while a process waits on its timer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure};
use serde_json::{Value, json};

mod support;
use support::Server;

/// Client threads driving the load.
const CLIENTS: u64 = 4;
/// How long timers pending at a restart get to fire.
const TIMER_PATIENCE: Duration = Duration::from_secs(10);
/// The bootstrap token the server is started with; every request sends it.
const TOKEN: &str = "crash-test-bootstrap-token";

// ---------------------------------------------------------------------------------------
// A tiny blocking HTTP/1.1 client (one connection per request, `Connection: close`).

/// Sends one request and returns (status, JSON body). A response cut short (the server
/// died while answering) is an error, never a status.
fn call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let sock: SocketAddr = addr.parse()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    if body.is_some() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", payload.len()));
    }
    request.push_str("\r\n");
    request.push_str(&payload);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Value)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("truncated response head ({} bytes)", raw.len()))?;
    let head = std::str::from_utf8(&raw[..end])?.to_ascii_lowercase();
    let rest = &raw[end + 4..];
    let status: u16 = head.split_whitespace().nth(1).unwrap_or("0").parse()?;
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let body = if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(n) = header("content-length:") {
        let n: usize = n.parse()?;
        ensure!(
            rest.len() == n,
            "truncated body: {} of {n} bytes",
            rest.len()
        );
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)?
    };
    Ok((status, value))
}

/// Decodes a chunked body, requiring the closing zero-size chunk.
fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunked body"))?;
        let size = std::str::from_utf8(&body[..line])?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)?;
        body = &body[line + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(body.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// A request that must answer `expected`.
fn must(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    expected: u16,
) -> anyhow::Result<Value> {
    let (status, answer) = call(addr, method, path, body.as_ref())?;
    ensure!(
        status == expected,
        "{method} {path}: {status} (expected {expected}) {answer}"
    );
    Ok(answer)
}

// ---------------------------------------------------------------------------------------
// The clinic: resources, users, services.

fn setup(addr: &str) -> anyhow::Result<()> {
    for (name, kind, zh) in [
        ("laser_room", "facility", "激光室"),
        ("laser_device", "equipment", "激光设备"),
        ("consult_room", "facility", "咨询室"),
    ] {
        must(
            addr,
            "POST",
            "/api/v1/resource-types",
            Some(json!({"name": name, "kind": kind, "label": {"zh": zh}})),
            201,
        )?;
    }
    for (id, t, zh) in [
        ("laser-1", "laser_room", "激光一室"),
        ("laser-2", "laser_room", "激光二室"),
        ("picosure", "laser_device", "PicoSure 755"),
        ("consult-1", "consult_room", "咨询室一"),
    ] {
        must(
            addr,
            "POST",
            "/api/v1/resources",
            Some(json!({"id": id, "type": t, "capacity": 1, "label": {"zh": zh}})),
            201,
        )?;
    }
    for (id, roles, skills, capacity) in [
        ("wang_hushi", json!(["front_desk"]), json!([]), 2),
        ("zhao_hushi", json!(["front_desk"]), json!([]), 1),
        ("li_yisheng", json!(["doctor"]), json!(["laser"]), 2),
        ("chen_yisheng", json!(["doctor"]), json!(["laser"]), 1),
        ("zhou_hushi", json!(["aftercare"]), json!([]), 1),
    ] {
        must(
            addr,
            "POST",
            "/api/v1/users",
            Some(json!({"id": id, "roles": roles, "skills": skills, "capacity": capacity})),
            201,
        )?;
    }
    let consultation = json!({
        "name": "consultation", "label": {"zh": "面诊", "en": "Consultation"},
        "steps": [
            {"name": "assess", "kind": "human", "label": {"zh": "面诊评估"}, "operators": {"role": "doctor"}, "resources": [{"type": "consult_room"}]},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "assess", "to": "end"}]});
    // The clinic visit of processes_api.rs, with a care timer short enough to watch fire.
    let visit = json!({
        "name": "treatment_visit", "label": {"zh": "治疗就诊", "en": "Treatment visit"},
        "steps": [
            {"name": "checkin", "kind": "human", "label": {"zh": "到诊登记"}, "operators": {"role": "front_desk"}},
            {"name": "route", "kind": "exclusive", "label": {"zh": "是否初诊"}},
            {"name": "consult", "kind": "sub_service", "service": "consultation", "label": {"zh": "面诊"}},
            {"name": "treat", "kind": "human", "label": {"zh": "激光治疗"}, "operators": {"skill": "laser", "policy": "least_loaded"},
             "resources": [{"type": "laser_room", "quantity": 1}, {"type": "laser_device", "quantity": 1}], "duration_minutes": 45, "deadline": "PT2H"},
            {"name": "split", "kind": "parallel"},
            {"name": "bill", "kind": "automatic", "label": {"zh": "结算"}},
            {"name": "care", "kind": "wait", "label": {"zh": "术后观察"}, "wait": {"after": "PT2S"}},
            {"name": "join", "kind": "join"},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "checkin", "to": "route"},
            {"from": "route", "to": "consult", "condition": "context.first_visit == true"},
            {"from": "route", "to": "treat", "default": true},
            {"from": "consult", "to": "treat"},
            {"from": "treat", "to": "split", "attribute": "agree"},
            {"from": "split", "to": "bill"}, {"from": "split", "to": "care"},
            {"from": "bill", "to": "join"}, {"from": "care", "to": "join"},
            {"from": "join", "to": "end"}]});
    // A short service with its own operator, for the timer scenario after the restart.
    let aftercare = json!({
        "name": "aftercare", "label": {"zh": "术后随访", "en": "Aftercare"},
        "steps": [
            {"name": "sign", "kind": "human", "label": {"zh": "签署知情同意"}, "operators": {"role": "aftercare"}},
            {"name": "split", "kind": "parallel"},
            {"name": "bill", "kind": "automatic", "label": {"zh": "结算"}},
            {"name": "care", "kind": "wait", "label": {"zh": "术后观察"}, "wait": {"after": "PT2S"}},
            {"name": "join", "kind": "join"},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "sign", "to": "split"},
            {"from": "split", "to": "bill"}, {"from": "split", "to": "care"},
            {"from": "bill", "to": "join"}, {"from": "care", "to": "join"},
            {"from": "join", "to": "end"}]});
    for svc in [consultation, visit, aftercare] {
        let name = svc["name"].as_str().unwrap_or_default().to_owned();
        must(addr, "POST", "/api/v1/services", Some(svc), 201)?;
        must(
            addr,
            "POST",
            &format!("/api/v1/services/{name}/publish"),
            None,
            200,
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The load.

/// A transition acknowledged to a client: the PCB the 2xx answer carried.
#[derive(Debug, Clone)]
struct Ack {
    pid: u64,
    version_no: u64,
    state: String,
    action: &'static str,
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    stop: AtomicBool,
}

impl Shared {
    fn ack(&self, pcb: &Value, action: &'static str) {
        if let Ok(a) = ack_of(pcb, action) {
            self.acks.lock().unwrap().push(a);
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    requests: u64,
    refused: u64,
    errors: u64,
}

/// xorshift64*: enough randomness for choosing moves, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// One client: starts visits and moves the processes it started (and their children) on,
/// until told to stop. Errors (the server is gone) are counted and ignored.
fn client(addr: &str, shared: &Shared, seed: u64) -> Stats {
    let mut rng = Rng(seed | 1);
    let mut mine: Vec<u64> = Vec::new();
    let mut stats = Stats::default();
    let pause = || std::thread::sleep(Duration::from_millis(5));
    while !shared.stop.load(Ordering::SeqCst) {
        stats.requests += 1;
        if mine.len() < 4 || (mine.len() < 10 && rng.below(10) == 0) {
            let body = json!({"service": "treatment_visit", "priority": rng.below(10),
                              "context": {"first_visit": rng.below(3) == 0}});
            match call(addr, "POST", "/api/v1/processes", Some(&body)) {
                Ok((201, p)) => {
                    shared.ack(&p, "start");
                    mine.extend(p["id"].as_u64());
                }
                Ok(_) => stats.refused += 1,
                Err(_) => {
                    stats.errors += 1;
                    pause();
                }
            }
            continue;
        }
        let pid = mine[rng.below(mine.len() as u64) as usize];
        let p = match call(addr, "GET", &format!("/api/v1/processes/{pid}"), None) {
            Ok((200, p)) => p,
            Ok(_) => {
                stats.refused += 1;
                continue;
            }
            Err(_) => {
                stats.errors += 1;
                pause();
                continue;
            }
        };
        let roll = rng.below(100);
        let step = p["step"].as_str().unwrap_or_default();
        let wait = p["wait"]["kind"].as_str().unwrap_or_default();
        let action: Option<(&'static str, Value)> = match p["state"].as_str().unwrap_or_default() {
            "TERMINATED" => {
                mine.retain(|x| *x != pid);
                None
            }
            "SUSPENDED" if roll < 5 => Some(("terminate", json!({"reason": "预约取消"}))),
            "SUSPENDED" => Some(("resume", json!({}))),
            "RUNNING" if roll < 4 => Some(("terminate", json!({"reason": "患者取消"}))),
            "RUNNING" if roll < 9 => Some(("suspend", json!({"reason": "患者临时离开"}))),
            "RUNNING" if step == "treat" => Some(("complete", json!({"transition": "split"}))),
            "RUNNING" => Some(("complete", json!({"context": {"note": format!("r{roll}")}}))),
            "WAITING" => {
                for child in p["children"].as_array().into_iter().flatten() {
                    if let Some(c) = child.as_u64()
                        && !mine.contains(&c)
                    {
                        mine.push(c);
                    }
                }
                match (wait, roll) {
                    ("children", 0..3) => Some(("suspend", json!({"reason": "患者临时离开"}))),
                    (_, 0..1) => Some(("terminate", json!({"reason": "预约取消"}))),
                    _ => None,
                }
            }
            "READY" | "NEW" if roll < 3 => Some(("terminate", json!({"reason": "预约取消"}))),
            "READY" | "NEW" if roll < 6 => Some(("suspend", json!({"reason": "稍后再来"}))),
            _ => None,
        };
        if let Some((action, body)) = action {
            stats.requests += 1;
            match call(
                addr,
                "POST",
                &format!("/api/v1/processes/{pid}/{action}"),
                Some(&body),
            ) {
                Ok((200, p)) => shared.ack(&p, action),
                Ok(_) => stats.refused += 1,
                Err(_) => {
                    stats.errors += 1;
                    pause();
                }
            }
        }
    }
    stats
}

// ---------------------------------------------------------------------------------------
// The checks after a restart.

/// Every process (list, paged), by id.
fn all_processes(addr: &str, filter: &str) -> anyhow::Result<BTreeMap<u64, Value>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/processes?limit=500{filter}&cursor={c}"),
            None => format!("/api/v1/processes?limit=500{filter}"),
        };
        let page = must(addr, "GET", &path, None, 200)?;
        for p in page["items"].as_array().into_iter().flatten() {
            out.insert(
                p["id"].as_u64().ok_or_else(|| anyhow!("no id: {p}"))?,
                p.clone(),
            );
        }
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                ensure!(
                    out.len() == total,
                    "listed {} processes, total says {total}",
                    out.len()
                );
                return Ok(out);
            }
        }
    }
}

/// Every acknowledged transition is in the stored history: the process's `version_no` has
/// reached it, the history holds one entry per version, and the entry at the acknowledged
/// version left the process in the acknowledged state.
fn check_acknowledged(addr: &str, acks: &[Ack]) -> anyhow::Result<()> {
    let mut by_pid: BTreeMap<u64, Vec<&Ack>> = BTreeMap::new();
    for a in acks {
        by_pid.entry(a.pid).or_default().push(a);
    }
    let mut problems = Vec::new();
    for (pid, acked) in &by_pid {
        let (status, p) = call(addr, "GET", &format!("/api/v1/processes/{pid}"), None)?;
        if status != 200 {
            problems.push(format!(
                "process {pid} ({} acknowledged transitions) is gone: {status} {p}",
                acked.len()
            ));
            continue;
        }
        let version = p["version_no"].as_u64().unwrap_or(0);
        let history = p["history"].as_array().cloned().unwrap_or_default();
        if history.len() as u64 != version {
            problems.push(format!(
                "process {pid}: version_no {version} but {} history entries",
                history.len()
            ));
        }
        for (i, h) in history.iter().enumerate() {
            if h["seq"].as_u64() != Some(i as u64 + 1) {
                problems.push(format!(
                    "process {pid}: history entry {i} has seq {}",
                    h["seq"]
                ));
            }
        }
        for a in acked {
            if version < a.version_no {
                problems.push(format!(
                    "process {pid}: {} acknowledged at version {} ({}), now at version {version}",
                    a.action, a.version_no, a.state
                ));
                continue;
            }
            let entry = history.get(a.version_no.saturating_sub(1) as usize);
            let to = entry.map_or(&Value::Null, |e| &e["to"]);
            if to.as_str() != Some(a.state.as_str()) {
                problems.push(format!(
                    "process {pid}: {} acknowledged {} at version {}, the history says {to}",
                    a.action, a.state, a.version_no
                ));
            }
        }
    }
    ensure!(
        problems.is_empty(),
        "{} acknowledged transitions missing or different after the restart:\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// No resource is held by a terminated (or unknown) process or beyond its capacity; the
/// pool and the PCBs agree on who holds what; the queue counts add up.
fn check_resources_and_queues(addr: &str, all: &BTreeMap<u64, Value>) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let resources = must(addr, "GET", "/api/v1/resources", None, 200)?;
    let mut pool: BTreeSet<(u64, String)> = BTreeSet::new();
    for r in resources["items"].as_array().into_iter().flatten() {
        let id = r["id"].as_str().unwrap_or_default();
        let (in_use, capacity) = (r["in_use"].as_u64(), r["capacity"].as_u64());
        if in_use > capacity {
            problems.push(format!("{id}: {in_use:?} in use of {capacity:?}"));
        }
        let mut held = 0;
        for a in r["allocations"].as_array().into_iter().flatten() {
            let pid = a["process"].as_u64().unwrap_or(0);
            held += a["quantity"].as_u64().unwrap_or(0);
            pool.insert((pid, id.to_owned()));
            match all
                .get(&pid)
                .map(|p| p["state"].as_str().unwrap_or_default())
            {
                None => problems.push(format!("{id} held by unknown process {pid}")),
                Some("TERMINATED") => problems.push(format!(
                    "{id} held by terminated process {pid} ({})",
                    all[&pid]["exit"]
                )),
                Some(_) => {}
            }
        }
        if Some(held) != in_use {
            problems.push(format!(
                "{id}: allocations add up to {held}, in_use {in_use:?}"
            ));
        }
    }
    for (pid, p) in all {
        let allocations = p["allocations"].as_array().cloned().unwrap_or_default();
        if p["state"] == "TERMINATED" && !allocations.is_empty() {
            problems.push(format!(
                "terminated process {pid} lists allocations {allocations:?}"
            ));
        }
        for a in &allocations {
            let r = a["resource"].as_str().unwrap_or_default().to_owned();
            if !pool.contains(&(*pid, r.clone())) {
                problems.push(format!("process {pid} lists {r}, the pool does not"));
            }
        }
    }
    let queues = must(addr, "GET", "/api/v1/queues", None, 200)?;
    let counted: u64 = queues["states"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    if counted != all.len() as u64 {
        problems.push(format!(
            "queues count {counted} processes, the list {}: {}",
            all.len(),
            queues["states"]
        ));
    }
    ensure!(
        problems.is_empty(),
        "resources or queues inconsistent:\n{}",
        problems.join("\n")
    );
    Ok(())
}

fn waiting_on_timer(p: &Value) -> bool {
    p["state"] == "WAITING" && p["wait"]["kind"] == "timer"
}

/// Polls the processes until none is still waiting on its timer, or `patience` is over.
/// Returns those that moved on (with a history entry by the timer) and those still waiting.
fn watch_timers(
    addr: &str,
    pids: &[u64],
    patience: Duration,
) -> anyhow::Result<(Vec<u64>, Vec<u64>)> {
    let until = Instant::now() + patience;
    let mut pending: Vec<u64> = pids.to_vec();
    let mut fired = Vec::new();
    loop {
        let mut still = Vec::new();
        for pid in pending {
            let p = must(addr, "GET", &format!("/api/v1/processes/{pid}"), None, 200)?;
            if waiting_on_timer(&p) {
                still.push(pid);
                continue;
            }
            let by_timer = p["history"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h["by"] == "timer");
            ensure!(
                by_timer,
                "process {pid} left its timer wait, but not by the timer: {}",
                p["history"]
            );
            fired.push(pid);
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= until {
            return Ok((fired, pending));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------

#[test]
fn acknowledged_transitions_survive_kill_9_and_timers_still_fire() -> anyhow::Result<()> {
    let began = Instant::now();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("crash.db");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;

    // 1. A server with the clinic.
    let mut server = Server::start(&db, TOKEN, &[])?;
    setup(&server.addr)?;

    // 2–3. The load, and kill -9 in the middle of it.
    let shared = Arc::new(Shared::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, shared) = (server.addr.clone(), shared.clone());
            let seed = seed ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            std::thread::spawn(move || client(&addr, &shared, seed))
        })
        .collect();
    let crash_after = Duration::from_millis(600 + seed % 600);
    std::thread::sleep(crash_after);
    server.kill9();
    shared.stop.store(true, Ordering::SeqCst);
    let mut stats = Stats::default();
    for c in clients {
        let s = c.join().map_err(|_| anyhow!("a client thread panicked"))?;
        stats.requests += s.requests;
        stats.refused += s.refused;
        stats.errors += s.errors;
    }
    drop(server);
    let acks = shared.acks.lock().unwrap().clone();
    let count = |action: &str| acks.iter().filter(|a| a.action == action).count();
    ensure!(
        count("start") >= 4 && count("complete") >= 4,
        "too little load before the crash to prove anything: {} starts, {} completions ({stats:?})",
        count("start"),
        count("complete")
    );

    // 4. Restart on the same file and check.
    let restarted = Instant::now();
    let server = Server::start(&db, TOKEN, &[])?;
    let addr = server.addr.clone();
    let all = all_processes(&addr, "")?;
    check_acknowledged(&addr, &acks)?;
    check_resources_and_queues(&addr, &all)?;
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for p in all.values() {
        *states
            .entry(p["state"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    // The first list was taken right after the restart; the timers were set during the
    // load, PT2S long, so none was due yet: what waits on a timer in it waited at the crash.
    let waited: Vec<u64> = all
        .iter()
        .filter(|(_, p)| waiting_on_timer(p))
        .map(|(pid, _)| *pid)
        .collect();
    let (fired_1, stuck_1) = watch_timers(
        &addr,
        &waited,
        TIMER_PATIENCE.saturating_sub(restarted.elapsed()),
    )?;
    // Processes suspended at the crash keep their timer: resumed, they wait on it again
    // and it fires (it is overdue by now).
    let suspended_roots: Vec<u64> = all
        .iter()
        .filter(|(_, p)| {
            p["state"] == "SUSPENDED"
                && p["parent"]
                    .as_u64()
                    .and_then(|parent| all.get(&parent))
                    .is_none_or(|parent| parent["state"] != "SUSPENDED")
        })
        .map(|(pid, _)| *pid)
        .collect();
    let mut resumed_acks = Vec::new();
    for pid in &suspended_roots {
        let p = must(
            &addr,
            "POST",
            &format!("/api/v1/processes/{pid}/resume"),
            None,
            200,
        )?;
        resumed_acks.push(ack_of(&p, "resume")?);
    }
    let resumed_waiting: Vec<u64> = all_processes(&addr, "&wait=timer")?
        .into_iter()
        .filter(|(pid, p)| waiting_on_timer(p) && !waited.contains(pid))
        .map(|(pid, _)| pid)
        .collect();
    let (fired_1r, stuck_1r) = watch_timers(&addr, &resumed_waiting, Duration::from_secs(5))?;

    // Timers, deterministically: two aftercare visits driven into their PT2S wait (the
    // care branch waits on the timer, the visit on its branches); the second is suspended.
    // kill -9 while they wait, restart, resume the second: both timers fire.
    let mut late_acks = resumed_acks;
    let mut visits = Vec::new();
    let mut branches = Vec::new();
    for _ in 0..2 {
        let p = must(
            &addr,
            "POST",
            "/api/v1/processes",
            Some(json!({"service": "aftercare"})),
            201,
        )?;
        ensure!(p["state"] == "RUNNING", "aftercare not dispatched: {p}");
        late_acks.push(ack_of(&p, "start")?);
        let pid = p["id"].as_u64().unwrap_or(0);
        let p = must(
            &addr,
            "POST",
            &format!("/api/v1/processes/{pid}/complete"),
            Some(json!({})),
            200,
        )?;
        ensure!(p["state"] == "WAITING", "aftercare not waiting: {p}");
        late_acks.push(ack_of(&p, "complete")?);
        let branch: Vec<u64> = all_processes(&addr, &format!("&parent={pid}&wait=timer"))?
            .into_keys()
            .collect();
        ensure!(
            branch.len() == 1,
            "aftercare {pid}: no care branch on its timer: {p}"
        );
        visits.push(pid);
        branches.push(branch[0]);
    }
    let p = must(
        &addr,
        "POST",
        &format!("/api/v1/processes/{}/suspend", visits[1]),
        Some(json!({"reason": "患者临时离开"})),
        200,
    )?;
    late_acks.push(ack_of(&p, "suspend")?);
    let b = must(
        &addr,
        "GET",
        &format!("/api/v1/processes/{}", branches[1]),
        None,
        200,
    )?;
    ensure!(
        b["state"] == "SUSPENDED",
        "the branch was not suspended: {b}"
    );
    let mut server = server;
    server.kill9();
    drop(server);

    let restarted_2 = Instant::now();
    let server = Server::start(&db, TOKEN, &[])?;
    let addr = server.addr.clone();
    let mut every_ack = acks.clone();
    every_ack.extend(late_acks.iter().cloned());
    check_acknowledged(&addr, &every_ack)?;
    let p = must(
        &addr,
        "POST",
        &format!("/api/v1/processes/{}/resume", visits[1]),
        None,
        200,
    )?;
    every_ack.push(ack_of(&p, "resume")?);
    let (fired_2, _) = watch_timers(&addr, &branches, TIMER_PATIENCE)?;
    let seen_ms = restarted_2.elapsed().as_millis();
    let mut outcome_2 = Vec::new();
    for (visit, branch) in visits.iter().zip(&branches) {
        let v = must(
            &addr,
            "GET",
            &format!("/api/v1/processes/{visit}"),
            None,
            200,
        )?;
        let done =
            fired_2.contains(branch) && v["state"] == "TERMINATED" && v["exit"] == "completed";
        outcome_2.push((
            *visit,
            *branch,
            done,
            format!("{} {}", v["state"], v["step"]),
        ));
    }
    check_acknowledged(&addr, &every_ack)?;
    let all = all_processes(&addr, "")?;
    check_resources_and_queues(&addr, &all)?;

    println!(
        "crash test: seed {seed}, kill -9 after {} ms under {CLIENTS} clients \
         ({} requests, {} refused, {} failed at the crash); {} acknowledged transitions \
         (start {}, complete {}, suspend {}, resume {}, terminate {}) on {} processes, all \
         present after the restart; {} processes at the crash, by state {states:?}; \
         timers after the restart: {}/{} of those WAITING on one at the crash fired, {}/{} \
         of those SUSPENDED at the crash and resumed; second kill -9: timer of the waiting \
         visit {}, of the suspended-then-resumed visit {} (watched {seen_ms} ms); \
         {:.1} s in all",
        crash_after.as_millis(),
        stats.requests,
        stats.refused,
        stats.errors,
        acks.len(),
        count("start"),
        count("complete"),
        count("suspend"),
        count("resume"),
        count("terminate"),
        acks.iter().map(|a| a.pid).collect::<BTreeSet<_>>().len(),
        states.values().sum::<usize>(),
        fired_1.len(),
        waited.len(),
        fired_1r.len(),
        resumed_waiting.len(),
        if outcome_2[0].2 {
            "fired"
        } else {
            "did NOT fire"
        },
        if outcome_2[1].2 {
            "fired"
        } else {
            "did NOT fire"
        },
        began.elapsed().as_secs_f64()
    );
    let mut problems = Vec::new();
    if !stuck_1.is_empty() {
        problems.push(format!(
            "timers pending at the crash did not fire within {TIMER_PATIENCE:?} of the \
             restart: {stuck_1:?} still WAITING on their timer ({} of {} fired)",
            fired_1.len(),
            waited.len()
        ));
    }
    if !stuck_1r.is_empty() {
        problems.push(format!(
            "processes suspended at the crash, resumed after the restart, did not see their \
             overdue timer fire within 5 s: {stuck_1r:?}"
        ));
    }
    for ((visit, branch, done, at), how) in outcome_2.iter().zip([
        "left WAITING on its timer at the kill",
        "SUSPENDED at the kill and resumed after the restart",
    ]) {
        if !done {
            problems.push(format!(
                "aftercare {visit} ({how}): the PT2S timer of its branch {branch} did not fire \
                 within {TIMER_PATIENCE:?} of the restart; the visit is at {at}"
            ));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The acknowledgement an answer carries.
fn ack_of(pcb: &Value, action: &'static str) -> anyhow::Result<Ack> {
    Ok(Ack {
        pid: pcb["id"].as_u64().ok_or_else(|| anyhow!("no id: {pcb}"))?,
        version_no: pcb["version_no"]
            .as_u64()
            .ok_or_else(|| anyhow!("no version_no: {pcb}"))?,
        state: pcb["state"].as_str().unwrap_or_default().to_owned(),
        action,
    })
}
