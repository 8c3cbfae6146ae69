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
        2 => (1usize..140, leaf(), any::<bool>()).prop_map(|(depth, leaf, lists)| {
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

/// Whether two JSON values are the same JSON: numbers compare by value (PostgreSQL's jsonb
/// keeps numbers as decimals, so `1.4e16` reads back as `14083059255938742`, the same
/// number), objects regardless of key order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
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
            if rec["note"] != json!(c.note) || !same(&rec["data"], &c.data) {
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
            // The payload lands in the context: a clean payload may still make the context
            // larger than a context may be (64 KiB), and then either answer is right.
            let payload_verdict = match verdict(&c.payload, 2) {
                Some(true) if json_size(&c.context) + json_size(&c.payload) >= 60_000 => None,
                v => v,
            };
            let signalled = match (s, payload_verdict) {
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
    match (s, verdict(&c.signal, 0)) {
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
        if s != StatusCode::OK || r["note"] != json!(note) || !same(&r["data"], data) {
            return Ok(Err(format!("record {id} reads back as {s} {r}")));
        }
    }
    if let Some((pid, context, signalled)) = &stored.process {
        let (s, p) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        if s != StatusCode::OK || !same(&p["context"]["v"], context) {
            return Ok(Err(format!("process {pid} reads back as {s} {p}")));
        }
        let got = p["context"]["signals"].get("paid");
        let equal = match (got, signalled) {
            (Some(a), Some(b)) => same(a, b),
            (None, None) => true,
            _ => false,
        };
        if !equal {
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
        .unwrap_or(16)
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
        assert_eq!(b["error"]["details"][0]["path"], "/data/x", "{b}");
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

/// GETs `path` and reads the answer without serde_json's depth limit (what older versions
/// let in comes back deeper than 128 levels; clients such as browsers read it fine).
async fn get_deep(app: &TestApp, path: &str) -> anyhow::Result<(StatusCode, Value)> {
    use http_body_util::BodyExt as _;
    use serde::Deserialize as _;
    use tower::ServiceExt as _;
    let req = axum::http::Request::get(path).body(axum::body::Body::empty())?;
    let res = app.router.clone().oneshot(req).await?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    de.disable_recursion_limit();
    Ok((status, Value::deserialize(&mut de)?))
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
        // The deep one moves on once, so it has two history entries.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{deep}/signal"),
                Some(json!({"event": "paid"})),
            )
            .await?;
        assert!(s.is_success(), "{b}");
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

        // A signal event whose payload nests 140 levels (readable), and a delivery whose
        // payload nests past every bound (not).
        sql_exec(&app, |sql| {
            sql.push("INSERT INTO events (kind, subject, record_id, pid, at_ms, depth, payload) VALUES (")
                .text("signal")
                .push(", ")
                .text("ping")
                .push(", NULL, NULL, ")
                .int(0)
                .push(", ")
                .int(0)
                .push(", ")
                .json(&json!({"name": "ping", "data": nest(140)}))
                .push(")");
        })
        .await?;
        {
            use erpos_kernel::clock::Clock as _;
            let delivery = erpos_kernel::outbox::Delivery {
                kind: erpos_kernel::outbox::Kind::Notify,
                payload: json!({"to": ["li_yisheng"], "title": nest(600)}),
                due_ms: app.clock.now_ms(),
                rule: None,
                event_seq: None,
            };
            let sql = erpos_kernel::outbox::enqueue_sql(&app.kernel.db, &delivery, app.clock.now_ms());
            app.kernel.db.write_atomically(vec![sql]).await?;
        }

        // The server starts (it refused to before: "stored process: recursion limit").
        let app = app.restart().await?;
        let (s, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(s, StatusCode::OK, "{health}");
        assert_eq!(health["status"], "degraded", "{health}");
        assert_eq!(health["quarantined"]["rows"]["processes"], 1, "{health}");
        // The deep process reads back whole, history included (one entry past every bound
        // is shown as unreadable, the rest as stored).
        let (s, p) = get_deep(&app, &format!("/api/v1/processes/{deep}")).await?;
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
            let (_, runs) = get_deep(&app, "/api/v1/rules/on_ping/runs").await?;
            if runs["items"].as_array().is_some_and(|r| !r.is_empty()) {
                ran = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ran, "the rule after the unreadable event ran");
        // The deep signal was read and its rule ran too (the worker does not stop on it).
        for _ in 0..5 {
            app.kernel.rules.round().await?;
        }
        let (_, runs) = get_deep(&app, "/api/v1/rules/on_ping/runs").await?;
        assert_eq!(runs["items"].as_array().map(Vec::len), Some(2), "{runs}");
        // The outbox worker fails the unreadable delivery (visible) and goes on.
        app.kernel.outbox.deliver_due().await?;
        app.kernel.outbox.deliver_due().await?;
        let (_, outbox) = get_deep(&app, "/api/v1/outbox?state=failed").await?;
        assert!(
            outbox["items"].as_array().is_some_and(|i| i.iter().any(|d| d["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot be read back")))),
            "{outbox}"
        );
        let (_, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(health["quarantined"]["events"], 1, "{health}");
        let (s, events) = get_deep(&app, "/api/v1/events").await?;
        assert_eq!(s, StatusCode::OK, "{events}");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Storage faults.

/// A read-only fault on a test's database, lifted when dropped (so a failing test leaves
/// nothing immutable behind).
///
/// SQLite: the database file and its write-ahead log are made immutable (`chattr +i`; root
/// ignores permissions, not that) or, when that is not possible and the test is not root,
/// the file read-only (`chmod`). Like the probe's fault, connections opened meanwhile are
/// read-only for good (SQLite falls back to read-only when it cannot open the file for
/// writing), and writes through those opened before fail on the log. PostgreSQL: the database's transactions become read-only by default and
/// every session is ended, so the pool reconnects into read-only sessions, which keep that
/// default after it is lifted.
enum Fault {
    Sqlite {
        path: std::path::PathBuf,
        chattr: bool,
    },
    Postgres {
        admin: String,
        db: String,
    },
}

impl Fault {
    async fn begin(app: &TestApp) -> anyhow::Result<Option<Fault>> {
        if app.backend == "postgres" {
            let admin = std::env::var("ERPOS_TEST_POSTGRES_URL")?;
            let db = app.url.rsplit('/').next().unwrap_or_default().to_owned();
            let fault = Fault::Postgres { admin, db };
            fault
                .admin_sql(&[
                    "ALTER DATABASE {db} SET default_transaction_read_only = on",
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()",
                ])
                .await?;
            return Ok(Some(fault));
        }
        let path = std::path::PathBuf::from(app.url.trim_start_matches("sqlite:"));
        let writable =
            |p: &std::path::Path| std::fs::OpenOptions::new().write(true).open(p).is_ok();
        let files = [path.clone(), path.with_extension("db-wal")];
        let chattr = files.iter().all(|f| {
            std::process::Command::new("chattr")
                .arg("+i")
                .arg(f)
                .status()
                .is_ok_and(|s| s.success())
        });
        if chattr && !writable(&path) {
            return Ok(Some(Fault::Sqlite { path, chattr }));
        }
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
        if writable(&path) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
            eprintln!(
                "storage fault on SQLite not tested: the file stays writable (root without chattr +i)"
            );
            return Ok(None);
        }
        Ok(Some(Fault::Sqlite {
            path,
            chattr: false,
        }))
    }

    async fn admin_sql(&self, statements: &[&str]) -> anyhow::Result<()> {
        let Fault::Postgres { admin, db } = self else {
            return Ok(());
        };
        let pool = sqlx::PgPool::connect(admin).await?;
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.replace("{db}", db)))
                .execute(&pool)
                .await?;
        }
        pool.close().await;
        Ok(())
    }

    async fn end(self) -> anyhow::Result<()> {
        self.admin_sql(&["ALTER DATABASE {db} RESET default_transaction_read_only"])
            .await?;
        drop(self);
        Ok(())
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        if let Fault::Sqlite { path, chattr } = self {
            if *chattr {
                for f in [path.clone(), path.with_extension("db-wal")] {
                    let _ = std::process::Command::new("chattr")
                        .arg("-i")
                        .arg(f)
                        .status();
                }
            } else {
                use std::os::unix::fs::PermissionsExt as _;
                let _ = std::fs::set_permissions(&*path, std::fs::Permissions::from_mode(0o644));
            }
        }
    }
}

/// Sends `n` record writes at once; returns their statuses.
async fn writes(app: &TestApp, n: usize, tag: &str) -> anyhow::Result<Vec<StatusCode>> {
    let calls = (0..n).map(|i| {
        app.call(
            "POST",
            "/api/v1/records/fuzz",
            Some(json!({"note": format!("{tag} {i}")})),
        )
    });
    let mut out = Vec::new();
    for r in futures_util::future::join_all(calls).await {
        let (s, b) = r?;
        if s.is_server_error() && s != StatusCode::SERVICE_UNAVAILABLE {
            eprintln!("{s}: {b}");
        }
        out.push(s);
    }
    Ok(out)
}

#[tokio::test]
async fn a_read_only_fault_answers_503_and_no_poisoned_connection_outlives_it() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        setup(&app).await?;
        app.create("fuzz", json!({"note": "before"})).await?;
        let (s, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(
            (s, health["status"].as_str()),
            (StatusCode::OK, Some("ok")),
            "{health}"
        );
        let Some(fault) = Fault::begin(&app).await? else {
            return Ok(());
        };
        // During the fault: concurrent writes make the pool open connections (read-only
        // ones); every write that cannot be made is a 503, never a 500.
        let during = writes(&app, 24, "during").await?;
        assert!(
            during
                .iter()
                .all(|s| *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE),
            "{during:?}"
        );
        assert!(
            during.contains(&StatusCode::SERVICE_UNAVAILABLE),
            "{during:?}"
        );
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "intake"})),
            )
            .await?;
        assert!(
            s == StatusCode::CREATED || s == StatusCode::SERVICE_UNAVAILABLE,
            "{s} {b}"
        );
        if s == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(b["error"]["code"], "storage_unavailable", "{b}");
        }
        // Reads go on; health says what is wrong.
        let (s, list) = app
            .call("GET", "/api/v1/records/fuzz?limit=1", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        let (s, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{health}");
        assert_eq!(health["status"], "unavailable", "{health}");
        assert_eq!(health["storage"]["writable"], false, "{health}");
        assert!(
            health["problems"].as_array().is_some_and(|p| !p.is_empty()),
            "{health}"
        );

        fault.end().await?;
        // After it: every write succeeds again; no connection opened during the fault is
        // used for one.
        for round in 0..3 {
            let after = writes(&app, 16, &format!("after {round}")).await?;
            assert!(
                after.iter().all(|s| *s == StatusCode::CREATED),
                "round {round}: {after:?}"
            );
        }
        let (s, p) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "intake"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let (s, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(s, StatusCode::OK, "{health}");
        assert_eq!(health["storage"]["writable"], true, "{health}");
        assert_eq!(
            health["status"], "degraded",
            "a fault a moment ago: {health}"
        );
        assert!(
            health["storage"]["faults"].as_u64().unwrap_or(0) > 0,
            "{health}"
        );
        Ok(())
    })
    .await
}
