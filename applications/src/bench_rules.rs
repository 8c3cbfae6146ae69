//! `erpos bench rules`: cached Rhai condition evaluations per second on one core (the
//! sandbox with its limits, the bindings converted each time as a rule run does), and the
//! rules engine end to end on SQLite: signals appended to the event log, read in order,
//! conditions evaluated, and for half of them a run committed with its outbox row.

use std::time::Instant;

use erpos_design::rule::EventKind;
use erpos_kernel::Kernel;
use erpos_kernel::events::NewEvent;
use erpos_kernel::rules::sandbox::{Bindings, Sandbox};
use serde_json::json;

/// Runs the suite and prints its figures.
pub async fn run(evaluations: usize, events: usize) -> anyhow::Result<()> {
    // 1. Conditions, in the sandbox, compiled once and cached.
    let sandbox = Sandbox::new();
    let bindings = Bindings {
        event: json!({"kind": "record.created", "subject": "huanzhe", "seq": 1}),
        record: json!({"id": "0193", "xingming": "张三", "age": 31, "source": "小红书",
                       "balance": "3800.00", "phone": "13800000000", "first_visit": true}),
        context: json!({"days": 4}),
        now_ms: 1_795_856_400_000,
        vars: Vec::new(),
        exact: vec!["balance".to_owned()],
    };
    let condition = "record.age >= 18 && record.source == \"小红书\" && context.days > 3";
    let mut held = 0usize;
    let started = Instant::now();
    for _ in 0..evaluations {
        if sandbox.holds(condition, &bindings).unwrap_or(false) {
            held += 1;
        }
    }
    let rate = evaluations as f64 / started.elapsed().as_secs_f64();
    println!(
        "conditions (sandboxed, cached AST, {evaluations} evaluations, {held} true, one core):"
    );
    println!("  {rate:>12.0} evaluations/s   ({condition})");

    // 2. End to end on SQLite.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench-rules.db");
    let kernel = Kernel::open(&format!("sqlite:{}", path.display())).await?;
    let bench = erpos_kernel::caller::Caller::system("bench");
    erpos_kernel::app::design::save_rule(
        &kernel,
        &bench,
        &json!({"name": "bench_ping", "label": {"zh": "基准规则"},
                "event": {"kind": "signal", "name": "ping"},
                "condition": "event.payload.n % 2 == 0",
                "instructions": [{"op": "notify", "to": ["dr_li"], "title": "ping {{event.payload.n}}"}]}),
        "defining rules",
    )
    .await?;
    let started = Instant::now();
    for n in 0..events {
        kernel
            .events
            .append(NewEvent {
                kind: EventKind::Signal,
                subject: Some("ping".into()),
                record_id: None,
                pid: None,
                payload: json!({"n": n}),
                depth: 0,
            })
            .await?;
    }
    let appended = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut read = 0usize;
    loop {
        let n = kernel.rules.round().await?;
        read += n;
        if n == 0 {
            break;
        }
    }
    let evaluated = started.elapsed().as_secs_f64();
    let shown = kernel.rules.show("bench_ping").await?;
    println!(
        "end to end (SQLite WAL, {events} signals, one rule, half of them fire a notification):"
    );
    println!(
        "  {:>12.0} events/s appended (one transaction each)",
        events as f64 / appended
    );
    println!(
        "  {:>12.0} events/s through the rules engine ({read} read, {} runs committed, {} skipped)",
        read as f64 / evaluated,
        shown["stats"]["fired"],
        shown["stats"]["evaluated"].as_i64().unwrap_or(0)
            - shown["stats"]["fired"].as_i64().unwrap_or(0),
    );
    Ok(())
}
