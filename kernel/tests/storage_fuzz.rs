//! Storage robustness on SQLite and PostgreSQL (issue 11, items 2 and 15, and the fuzz
//! acceptance point): random JSON — deep, wide, long, odd Unicode — written through
//! records, process contexts and events reads back equal after a restart (or was refused
//! with a 4xx and nothing stored); bytes that are not JSON text are a 400; a stored row that
//! cannot be read back is quarantined instead of stopping the start or the rules worker;
//! a read-only fault on the database answers 503 (never 500), `/healthz` says so, and no
//! poisoned connection outlives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use erpos_design::bounds::{MAX_JSON_DEPTH, json_depth, json_size};
use erpos_kernel::sql::Sql;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value, json};

/// `{"a": {"a": … 1}}`, `levels` deep.
fn nest(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

/// A DataItem with a text and a json field, a doctor, a service that waits for a signal
/// and then has the doctor review, and rules listening to records, the service's steps
/// and a signal (so every write also writes events the rules worker reads).
async fn setup(app: &TestApp) -> anyhow::Result<()> {
    app.define(json!({
        "name": "fuzz", "label": {"zh": "杂项"},
        "fields": [
            {"name": "note", "label": {"zh": "备注"}, "type": "text"},
            {"name": "data", "label": {"zh": "数据"}, "type": "json"}
        ]
    }))
    .await?;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"id": "li_yisheng", "roles": ["doctor"]})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    let service = json!({
        "name": "intake", "label": {"zh": "登记"}, "subject": "fuzz",
        "steps": [
            {"name": "wait_pay", "kind": "wait", "label": {"zh": "等待付款"}, "wait": {"event": "paid"}},
            {"name": "review", "kind": "human", "label": {"zh": "审核"}, "operators": {"role": "doctor"}},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "wait_pay", "to": "review"}, {"from": "review", "to": "end"}]});
    let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/intake/publish", None)
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    for rule in [
        json!({"name": "on_fuzz", "label": {"zh": "新杂项"}, "event": {"kind": "record.created", "item": "fuzz"},
               "instructions": [{"op": "notify", "to": ["li_yisheng"], "title": "新记录"}]}),
        json!({"name": "on_review", "label": {"zh": "审核中"}, "event": {"kind": "step.entered", "service": "intake"},
               "instructions": [{"op": "notify", "to": ["li_yisheng"], "title": "待审核"}]}),
        json!({"name": "on_ping", "label": {"zh": "收到信号"}, "event": {"kind": "signal", "name": "ping"},
               "instructions": [{"op": "notify", "to": ["li_yisheng"], "title": "信号"}]}),
    ] {
        let (s, b) = app.call("POST", "/api/v1/rules", Some(rule)).await?;
        anyhow::ensure!(s.is_success(), "rule: {b}");
    }
    Ok(())
}

/// Runs rule rounds until the log is read; every round must succeed.
async fn drain_rules(app: &TestApp) -> anyhow::Result<()> {
    for _ in 0..50 {
        if app.kernel.rules.round().await? == 0 {
            return Ok(());
        }
    }
    anyhow::bail!("the rules worker did not catch up")
}

// ---------------------------------------------------------------------------------------
// The property: random JSON through every write path reads back after a restart.

/// Text people and programs send: plain, any Unicode (controls and NUL included), the
/// invisible and bidirectional characters, emoji, and long runs around the bounds.
fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9 ]{0,12}",
        3 => any::<String>(),
        2 => "\\PC{0,24}",
        1 => Just("\u{0}".to_owned()),
        1 => Just("a\u{200b}\u{200d}\u{202e}\u{2066}\u{feff}z".to_owned()),
        1 => Just("张三 😀 \u{1F469}\u{200D}\u{2695}\u{FE0F} e\u{301}".to_owned()),
        1 => (1usize..40_000).prop_map(|n| "长".repeat(n)),
        1 => (60_000usize..70_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        odd_string().prop_map(Value::String),
    ]
}

/// Random JSON: nested maps and lists of odd leaves and keys; chains nested up to and past
/// the bound of 32 levels; wide lists.
fn json_value() -> impl Strategy<Value = Value> {
    let tree = leaf().prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("\\PC{0,8}|[a-z]{1,6}|\\x00", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    });
    prop_oneof![
        4 => tree,
        2 => (1usize..48, leaf(), any::<bool>()).prop_map(|(depth, leaf, lists)| {
            let mut v = leaf;
            for i in 0..depth {
                v = if lists && i % 2 == 0 { json!([v]) } else { json!({ "k": v }) };
            }
            v
        }),
        1 => (0usize..3_000).prop_map(|n| Value::Array((0..n).map(|i| json!(i)).collect())),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    note: String,
    data: Value,
    context: Value,
    payload: Value,
    signal: Value,
}

fn case() -> impl Strategy<Value = Case> {
    (
        odd_string(),
        json_value(),
        json_value(),
        json_value(),
        json_value(),
    )
        .prop_map(|(note, data, context, payload, signal)| Case {
            note,
            data,
            context,
            payload,
            signal,
        })
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Whether a value sent `wrap` levels deep in a body must be accepted (it is well inside
/// every bound) or must be refused (too deep, or NUL); None when it depends on its size.
fn verdict(v: &Value, wrap: usize) -> Option<bool> {
    let depth = json_depth(v) + wrap;
    if depth > MAX_JSON_DEPTH || has_nul(v) {
        Some(false)
    } else if json_size(v) < 30_000 {
        Some(true)
    } else {
        None
    }
}

fn check(ok: bool, what: &str) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what.to_owned()))
    }
}

/// What one case stored, to be read back after the restart.
#[derive(Default)]
struct Stored {
    record: Option<(String, String, Value)>,
    process: Option<(u64, Value, Option<Value>)>,
    event: Option<(u64, Value)>,
}

async fn write(app: &TestApp, c: &Case) -> anyhow::Result<Result<Stored, String>> {
    let mut out = Stored::default();
    let fail = |m: String| Ok(Err(m));
    // A record: text and json fields.
    let rows_before = app.count_rows("fuzz").await?;
    let (s, rec) = app
        .call(
            "POST",
            "/api/v1/records/fuzz",
            Some(json!({"note": c.note, "data": c.data})),
        )
        .await?;
    let text_ok = !c.note.contains('\0') && c.note.chars().count() <= 65_536;
    match (s, verdict(&c.data, 1)) {
        (StatusCode::CREATED, Some(false)) => return fail(format!("record accepted: {rec}")),
        (StatusCode::CREATED, _) if !text_ok => return fail("a bad text accepted".into()),
        (StatusCode::CREATED, _) => {
            let id = rec["id"].as_str().unwrap_or_default().to_owned();
            if rec["note"] != json!(c.note) || rec["data"] != c.data {
                return fail(format!("the record answered differs: {rec}"));
            }
            out.record = Some((id, c.note.clone(), c.data.clone()));
        }
        (s, Some(true)) if s.is_client_error() && !text_ok => {}
        (s, Some(true)) => return fail(format!("a clean record refused: {s} {rec}")),
        (s, _) if s.is_client_error() => {
            if app.count_rows("fuzz").await? != rows_before {
                return fail(format!("refused ({s}) yet stored"));
            }
        }
        (s, _) => return fail(format!("record: {s} {rec}")),
    }
    // A process with the value in its context (bound to the record when there is one).
    let mut start = json!({"service": "intake", "context": {"v": c.context}});
    if let Some((id, ..)) = &out.record {
        start["record"] = json!({"item": "fuzz", "id": id});
    }
    let (s, pcb) = app.call("POST", "/api/v1/processes", Some(start)).await?;
    match (s, verdict(&c.context, 2)) {
        (StatusCode::CREATED, Some(false)) => return fail(format!("context accepted: {pcb}")),
        (StatusCode::CREATED, _) => {
            let pid = pcb["id"].as_u64().unwrap_or_default();
            // And a signal whose payload lands in the context.
            let (s, after) = app
                .call(
                    "POST",
                    &format!("/api/v1/processes/{pid}/signal"),
                    Some(json!({"event": "paid", "payload": c.payload})),
                )
                .await?;
            let signalled = match (s, verdict(&c.payload, 2)) {
                (s, Some(false)) if s.is_success() => {
                    return fail(format!("payload accepted: {after}"));
                }
                (s, _) if s.is_success() => Some(c.payload.clone()),
                (s, Some(true)) => return fail(format!("a clean payload refused: {s} {after}")),
                (s, _) if s.is_client_error() => None,
                (s, _) => return fail(format!("signal: {s} {after}")),
            };
            out.process = Some((pid, c.context.clone(), signalled));
        }
        (s, Some(true)) => return fail(format!("a clean context refused: {s} {pcb}")),
        (s, _) if s.is_client_error() => {}
        (s, _) => return fail(format!("start: {s} {pcb}")),
    }
    // A signal from outside through the rules' route: the body is the payload.
    let (s, sent) = app
        .call("POST", "/api/v1/events/ping", Some(c.signal.clone()))
        .await?;
    match (s, verdict(&c.signal, 1)) {
        (StatusCode::ACCEPTED, Some(false)) => return fail(format!("signal accepted: {sent}")),
        (StatusCode::ACCEPTED, _) => {
            out.event = Some((sent["seq"].as_u64().unwrap_or_default(), c.signal.clone()));
        }
        (s, Some(true)) => return fail(format!("a clean signal refused: {s} {sent}")),
        (s, _) if s.is_client_error() => {}
        (s, _) => return fail(format!("events: {s} {sent}")),
    }
    Ok(Ok(out))
}

async fn read_back(app: &TestApp, stored: &Stored) -> anyhow::Result<Result<(), String>> {
    if let Some((id, note, data)) = &stored.record {
        let (s, r) = app
            .call("GET", &format!("/api/v1/records/fuzz/{id}"), None)
            .await?;
        if s != StatusCode::OK || r["note"] != json!(note) || r["data"] != *data {
            return Ok(Err(format!("record {id} reads back as {s} {r}")));
        }
    }
    if let Some((pid, context, signalled)) = &stored.process {
        let (s, p) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        if s != StatusCode::OK || p["context"]["v"] != *context {
            return Ok(Err(format!("process {pid} reads back as {s} {p}")));
        }
        let got = p["context"]["signals"].get("paid");
        if got != signalled.as_ref() {
            return Ok(Err(format!("process {pid}'s signal reads back as {got:?}")));
        }
        if p["history"].as_array().is_none_or(Vec::is_empty) {
            return Ok(Err(format!("process {pid} has no history: {p}")));
        }
    }
    if let Some((seq, body)) = &stored.event {
        let (s, list) = app
            .call(
                "GET",
                &format!("/api/v1/events?kind=signal&before={}&limit=1", seq + 1),
                None,
            )
            .await?;
        let event = &list["items"][0];
        if s != StatusCode::OK || event["seq"] != json!(seq) || event["payload"]["data"] != *body {
            return Ok(Err(format!("event {seq} reads back as {s} {event}")));
        }
    }
    Ok(Ok(()))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

#[test]
fn random_json_through_records_contexts_and_events_reads_back_after_a_restart() -> anyhow::Result<()>
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dbs = rt.block_on(common::backends())?;
    for db in dbs {
        let backend = db.name;
        let app = rt.block_on(async {
            let app = common::app(db).await?;
            setup(&app).await?;
            anyhow::Ok(app)
        })?;
        let app = RefCell::new(Some(app));
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            max_shrink_iters: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&case(), |c| {
            rt.block_on(async {
                let current = app.borrow_mut().take().expect("the app");
                let stored = match write(&current, &c).await {
                    Ok(Ok(stored)) => stored,
                    Ok(Err(m)) => {
                        app.replace(Some(current));
                        return Err(TestCaseError::fail(m));
                    }
                    Err(e) => {
                        app.replace(Some(current));
                        return Err(TestCaseError::fail(format!("{e:#}")));
                    }
                };
                // The server starts again on the same database, and reads it all back.
                let restarted = current
                    .restart()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("restart: {e:#}")))?;
                let (s, health) = restarted
                    .call("GET", "/healthz", None)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let outcome = async {
                    check(
                        s == StatusCode::OK && health["status"] == "ok",
                        &format!("health: {health}"),
                    )?;
                    drain_rules(&restarted)
                        .await
                        .map_err(|e| TestCaseError::fail(format!("rules: {e:#}")))?;
                    match read_back(&restarted, &stored).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(m)) => Err(TestCaseError::fail(m)),
                        Err(e) => Err(TestCaseError::fail(format!("{e:#}"))),
                    }
                }
                .await;
                app.replace(Some(restarted));
                outcome
            })
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, minimal)) => {
                let short = |v: &Value| {
                    let t = v.to_string();
                    t.chars().take(300).collect::<String>()
                };
                anyhow::bail!(
                    "on {backend}: {reason}\nminimal case: note {:?}…, data {}, context {}, payload {}, signal {}",
                    c_note(&minimal.note),
                    short(&minimal.data),
                    short(&minimal.context),
                    short(&minimal.payload),
                    short(&minimal.signal)
                )
            }
            Err(e) => anyhow::bail!("on {backend}: {e}"),
        }
    }
    Ok(())
}

fn c_note(note: &str) -> String {
    note.chars().take(60).collect()
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bytes_that_are_not_json_text_are_400_and_store_nothing() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let auth = vec![
            (
                "authorization".to_owned(),
                format!("Bearer {}", common::BOOTSTRAP),
            ),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        for body in [
            br#"{"note": "\ud800"}"#.to_vec(),
            br#"{"note": "\udc00x"}"#.to_vec(),
            b"{\"note\": \"\xff\xfe\"}".to_vec(),
            b"{\"note\": \"\xed\xa0\x80\"}".to_vec(),
            br#"{"note": "a", "note": "b""#.to_vec(),
        ] {
            let (s, b) = app
                .call_raw("POST", "/api/v1/records/fuzz", Some(body.clone()), &auth)
                .await?;
            assert_eq!(
                s,
                StatusCode::BAD_REQUEST,
                "{:?}: {b}",
                String::from_utf8_lossy(&body)
            );
            let (s, b) = app
                .call_raw(
                    "POST",
                    "/api/v1/processes/1/signal",
                    Some(body.clone()),
                    &auth,
                )
                .await?;
            assert!(s.is_client_error(), "{s} {b}");
        }
        assert_eq!(app.count_rows("fuzz").await?, 0);
        // An escaped surrogate pair is a character like any other.
        let (s, b) = app
            .call_raw(
                "POST",
                "/api/v1/records/fuzz",
                Some(br#"{"note": "\ud83d\ude00", "data": {"\u00e9": "\u0007"}}"#.to_vec()),
                &auth,
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["note"], "😀");
        // The escaped NUL is refused like a raw one.
        let (s, b) = app
            .call_raw(
                "POST",
                "/api/v1/records/fuzz",
                Some(br#"{"data": {"x": "\u0000"}}"#.to_vec()),
                &auth,
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/data", "{b}");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------

async fn sql_exec(app: &TestApp, build: impl FnOnce(&mut Sql)) -> anyhow::Result<()> {
    let mut sql = Sql::new(app.kernel.db.dialect());
    build(&mut sql);
    app.kernel.db.write_atomically(vec![sql]).await?;
    Ok(())
}

async fn stored_pcb(app: &TestApp, pid: u64) -> anyhow::Result<Value> {
    let mut sql = Sql::new(app.kernel.db.dialect());
    sql.push("SELECT CAST(pcb AS TEXT) FROM processes WHERE pid = ")
        .int(pid as i64);
    let rows = app.kernel.db.fetch(sql).await?;
    let text = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test]
async fn stored_rows_that_cannot_be_read_back_do_not_stop_a_start_or_the_rules_worker()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let mut pids = Vec::new();
        for _ in 0..3 {
            let (s, p) = app
                .call("POST", "/api/v1/processes", Some(json!({"service": "intake"})))
                .await?;
            assert_eq!(s, StatusCode::CREATED, "{p}");
            pids.push(p["id"].as_u64().unwrap_or_default());
        }
        let (deep, broken) = (pids[0], pids[1]);
        // What older versions let in: a context nested 140 levels (past serde_json's 128),
        // in the process row and one history row; a history row nested past any bound; a
        // process row of the wrong shape; an event of a kind no version writes.
        let mut poisoned = stored_pcb(&app, deep).await?;
        poisoned["context"]["deep"] = nest(140);
        sql_exec(&app, |sql| {
            sql.push("UPDATE processes SET pcb = ")
                .json(&poisoned)
                .push(" WHERE pid = ")
                .int(deep as i64);
        })
        .await?;
        sql_exec(&app, |sql| {
            sql.push("UPDATE process_history SET pcb = ")
                .json(&poisoned)
                .push(" WHERE pid = ")
                .int(deep as i64);
        })
        .await?;
        let mut beyond = poisoned.clone();
        beyond["context"]["deep"] = nest(600);
        sql_exec(&app, |sql| {
            sql.push("UPDATE process_history SET pcb = ")
                .json(&beyond)
                .push(" WHERE pid = ")
                .int(deep as i64)
                .push(" AND seq = 1");
        })
        .await?;
        sql_exec(&app, |sql| {
            sql.push("UPDATE processes SET pcb = ")
                .json(&json!({"id": "not a process"}))
                .push(" WHERE pid = ")
                .int(broken as i64);
        })
        .await?;
        sql_exec(&app, |sql| {
            sql.push("INSERT INTO events (kind, subject, record_id, pid, at_ms, depth, payload) VALUES (")
                .text("no_such_kind")
                .push(", ")
                .text("ping")
                .push(", NULL, NULL, ")
                .int(0)
                .push(", ")
                .int(0)
                .push(", ")
                .json(&json!({}))
                .push(")");
        })
        .await?;

        // The server starts (it refused to before: "stored process: recursion limit").
        let app = app.restart().await?;
        let (s, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(s, StatusCode::OK, "{health}");
        assert_eq!(health["status"], "degraded", "{health}");
        assert_eq!(health["quarantined"]["rows"]["processes"], 1, "{health}");
        // The deep process reads back whole, history included (one entry past every bound
        // is shown as unreadable, the rest as stored).
        let (s, p) = app
            .call("GET", &format!("/api/v1/processes/{deep}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["context"]["deep"], nest(140));
        let history = p["history"].as_array().cloned().unwrap_or_default();
        assert!(history.iter().any(|h| h["unreadable"].is_string()), "{p}");
        assert!(history.iter().any(|h| h["context"]["deep"] == nest(140)), "{p}");
        // The broken one is quarantined, and says so to a monitor.
        let (s, b) = app
            .call("GET", &format!("/api/v1/processes/{broken}"), None)
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "quarantined", "{b}");
        // The others run on; a new process never takes the quarantined one's number.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{}/signal", pids[2]),
                Some(json!({"event": "paid"})),
            )
            .await?;
        assert!(s.is_success(), "{b}");
        let (s, p) = app
            .call("POST", "/api/v1/processes", Some(json!({"service": "intake"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        assert!(p["id"].as_u64().unwrap_or_default() > broken, "{p}");
        // The rules worker passes the unreadable event (after its gap patience) and runs
        // the rule on the signal after it; no round fails.
        let (s, b) = app
            .call("POST", "/api/v1/events/ping", Some(json!({"n": 1})))
            .await?;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let mut ran = false;
        for _ in 0..40 {
            app.kernel.rules.round().await?;
            let (_, runs) = app.call("GET", "/api/v1/rules/on_ping/runs", None).await?;
            if runs["items"].as_array().is_some_and(|r| !r.is_empty()) {
                ran = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ran, "the rule after the unreadable event ran");
        let (_, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(health["quarantined"]["events"], 1, "{health}");
        let (s, events) = app.call("GET", "/api/v1/events", None).await?;
        assert_eq!(s, StatusCode::OK, "{events}");
        Ok(())
    })
    .await
}
