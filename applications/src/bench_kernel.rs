//! `erpos bench kernel`: the scheduler core in memory, the process runtime on SQLite with
//! group commit, and raw sqlx inserts of the same history rows as the baseline, all in one
//! run on one machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use erpos_design::service::Service;
use erpos_kernel::Kernel;
use erpos_kernel::app::processes::StartProcess;
use erpos_kernel::audit::Audit;
use erpos_kernel::caller::Caller;
use erpos_kernel::conditions::RhaiConditions;
use erpos_kernel::scheduler::{Command, Operator, ProcessState, Resource, Scheduler};
use serde_json::json;

/// The five-step service measured: check-in (human) → route (exclusive, a Rhai condition)
/// → treat (human, needs a room) → bill (automatic) → end.
pub fn five_step_service() -> serde_json::Value {
    json!({
        "name": "bench_visit", "label": {"zh": "基准就诊"},
        "steps": [
            {"name": "checkin", "kind": "human", "operators": {"role": "staff"}},
            {"name": "route", "kind": "exclusive"},
            {"name": "treat", "kind": "human", "operators": {"role": "staff"}, "resources": [{"type": "room"}]},
            {"name": "bill", "kind": "automatic"},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "checkin", "to": "route"},
            {"from": "route", "to": "treat", "condition": "context.vip == true"},
            {"from": "route", "to": "treat", "name": "regular", "default": true},
            {"from": "treat", "to": "bill"},
            {"from": "bill", "to": "end"}]
    })
}

fn staff(capacity: u32) -> Operator {
    Operator {
        id: "staff".into(),
        roles: ["staff".to_owned()].into(),
        skills: Default::default(),
        capacity,
        department: None,
        calendar: None,
        branch: None,
    }
}

fn room(capacity: u32) -> Resource {
    Resource {
        id: "room-1".into(),
        resource_type: "room".into(),
        capacity,
        skills: Default::default(),
        calendar: None,
        branch: None,
    }
}

/// One history row as the raw baseline inserts it.
type RawRow = (i64, i64, i64, String, String, String, String, String);

/// Runs the kernel suite and prints its figures.
pub async fn run(
    memory_processes: usize,
    processes: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    println!(
        "erpos bench kernel: five-step service (human → exclusive → human+room → automatic → end)"
    );

    // 1. The core alone: no I/O.
    let mut service: Service = serde_json::from_value(five_step_service())?;
    service.version = 1;
    let conditions = RhaiConditions::new();
    let mut core = Scheduler::new(60_000);
    core.publish(service.clone());
    core.add_operator(staff(u32::MAX));
    core.add_resource(room(u32::MAX));
    let mut entries = 0usize;
    let mut moves = 0usize;
    let start = Instant::now();
    for i in 0..memory_processes {
        let out = core.apply(
            Command::Start {
                service: "bench_visit".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({"vip": i % 2 == 0}),
                predecessor: None,
                start_at_ms: None,
                by: "bench".into(),
            },
            i as i64,
            &conditions,
        )?;
        let pid = out.pid.unwrap_or_default();
        entries += out.entries.len();
        moves += out.entries.iter().filter(|e| e.from != e.to).count();
        for _ in 0..2 {
            let out = core.apply(
                Command::Complete {
                    pid,
                    transition: None,
                    context: None,
                    record: None,
                    by: "staff".into(),
                },
                i as i64,
                &conditions,
            )?;
            entries += out.entries.len();
            moves += out.entries.iter().filter(|e| e.from != e.to).count();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let done = core
        .pcbs()
        .filter(|p| p.state == ProcessState::Terminated)
        .count();
    println!("in memory (scheduler core, {memory_processes} processes, {done} completed):");
    println!(
        "  {:>12.0} state transitions/s   ({moves} moves)",
        moves as f64 / secs
    );
    println!(
        "  {:>12.0} history entries/s      ({entries} entries, every change incl. step moves)",
        entries as f64 / secs
    );
    println!(
        "  {:>12.0} five-step processes/s",
        memory_processes as f64 / secs
    );

    // 2. End to end on SQLite with group commit.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench-kernel.db");
    let kernel = Kernel::open(&format!("sqlite:{}", path.display())).await?;
    let bench = erpos_kernel::caller::Caller::system("bench");
    erpos_kernel::app::design::save_service(&kernel, &bench, &five_step_service()).await?;
    erpos_kernel::app::design::publish_service(&kernel, &bench, "bench_visit", &Default::default())
        .await?;
    kernel
        .engine
        .put_operator(staff(u32::MAX), Vec::new())
        .await?;
    let Some(pool) = kernel.db.sqlite_pool() else {
        anyhow::bail!("the kernel bench runs on SQLite")
    };
    sqlx::query(
        "INSERT INTO resource_types (name, kind, definition) VALUES ('room', 'facility', '{}')",
    )
    .execute(pool)
    .await?;
    kernel
        .engine
        .put_resource(
            room(u32::MAX),
            &json!({"id": "room-1", "type": "room"}),
            Audit::new("bench", "resource.save", 0).row(kernel.db.dialect(), "room-1"),
        )
        .await?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let kernel = kernel.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            // Through the application layer, as the API and the rules start and complete
            // processes: the grant checks, the record reads and the commands' building
            // are measured with the scheduler and the group commit.
            let bench = Caller::system("bench");
            let staff = Caller::system("staff");
            while next.fetch_add(1, Ordering::SeqCst) < processes {
                let started = erpos_kernel::app::processes::start(
                    &kernel,
                    &bench,
                    StartProcess {
                        service: "bench_visit".into(),
                        context: json!({"vip": false}),
                        ..Default::default()
                    },
                )
                .await?;
                for _ in 0..2 {
                    let pcb = erpos_kernel::app::processes::visible_to_act(
                        &kernel,
                        &staff,
                        &started.pid.to_string(),
                    )
                    .await?;
                    erpos_kernel::app::work::act(&kernel, &staff, &pcb, "complete", &json!({}))
                        .await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM process_history")
        .fetch_one(pool)
        .await?;
    let completed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM processes WHERE state = 'TERMINATED'")
            .fetch_one(pool)
            .await?;
    let persisted_rate = stored as f64 / secs;
    println!(
        "persisted on SQLite ({processes} processes by {concurrency} clients, group commit, WAL synchronous=NORMAL):"
    );
    println!(
        "  {:>12.0} history entries/s persisted ({stored} rows)",
        persisted_rate
    );
    println!(
        "  {:>12.0} complete five-step processes/s end to end ({completed} completed, full history)",
        completed as f64 / secs
    );

    // 3. Baseline: raw sqlx inserts of the same history rows into a plain table, in
    // transactions of 256 rows (a bulk loader's best simple path).
    sqlx::query(
        "CREATE TABLE raw_history (pid INTEGER, seq INTEGER, at_ms INTEGER, actor TEXT, from_state TEXT, \
         to_state TEXT, reason TEXT, pcb TEXT, gseq INTEGER, PRIMARY KEY (pid, seq)) STRICT",
    )
    .execute(pool)
    .await?;
    // The very rows erpos stored, read back.
    let rows: Vec<RawRow> = sqlx::query_as(
        "SELECT pid, seq, at_ms, actor, from_state, to_state, reason, pcb FROM process_history ORDER BY gseq",
    )
    .fetch_all(pool)
    .await?;
    let start = Instant::now();
    for (n, chunk) in rows.chunks(256).enumerate() {
        let mut tx = pool.begin().await?;
        for (i, r) in chunk.iter().enumerate() {
            sqlx::query("INSERT INTO raw_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                .bind(r.0)
                .bind(r.1)
                .bind(r.2)
                .bind(&r.3)
                .bind(&r.4)
                .bind(&r.5)
                .bind(&r.6)
                .bind(&r.7)
                .bind((n * 256 + i) as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let raw_rate = rows.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "baseline: raw sqlx inserts of the same history rows ({} rows, 256 per transaction):",
        rows.len()
    );
    println!("  {:>12.0} rows/s", raw_rate);
    // What each row carries (the PCB snapshot, work items included), so a change in
    // throughput can be told apart from a change in what is written.
    let bytes: usize = rows.iter().map(|r| r.7.len()).sum();
    println!(
        "  {:>12.0} bytes per history row on average (the PCB snapshot)",
        bytes as f64 / rows.len().max(1) as f64
    );
    println!(
        "  persisted erpos transitions / raw inserts: {:.2} (target ≥ 0.5)",
        persisted_rate / raw_rate.max(1e-9)
    );
    kernel.db.close().await;
    Ok(())
}
