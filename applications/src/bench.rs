//! `erpos bench`: figures measured on this machine, with a baseline measured in the same run.
//!
//! Machines here are noisy, so absolute times do not travel; the ratio to raw sqlx on the
//! same database file, measured in the same process, does. Nothing here asserts a time.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Subcommand;
use erpos_kernel::Kernel;
use serde_json::{Value, json};

/// What `erpos bench` can measure.
#[derive(Subcommand, Debug, Clone)]
pub enum Suite {
    /// Record inserts/s and point reads/s through the metamodel vs raw sqlx (SQLite).
    Records {
        /// Rows inserted per measured round.
        #[arg(long, default_value_t = 2000)]
        rows: usize,
        /// Measured rounds (each runs the baseline and erpos once, alternating).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Patients searched by pinyin initials.
        #[arg(long, default_value_t = 100_000)]
        search_rows: usize,
    },
    /// PCB transitions/s in memory and persisted (SQLite), five-step processes/s end to end,
    /// and the ratio to raw sqlx inserts of the same history rows.
    Kernel {
        /// Processes run through the in-memory core (enough to measure the steady state, not
        /// the warm-up).
        #[arg(long, default_value_t = 200_000)]
        memory_processes: usize,
        /// Processes run end to end on SQLite.
        #[arg(long, default_value_t = 20_000)]
        processes: usize,
        /// Clients driving processes at once (group commit batches their transitions).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Cached rule-condition evaluations/s (one core) and events/s through the rules
    /// engine end to end (SQLite).
    Rules {
        /// Condition evaluations measured.
        #[arg(long, default_value_t = 200_000)]
        evaluations: usize,
        /// Signals sent through the rules engine.
        #[arg(long, default_value_t = 2_000)]
        events: usize,
    },
    /// Slot searches/s and p99 over a month of a clinic (5 rooms, 3 lasers, 10
    /// practitioners), and booking decisions/s under contention, each against a baseline
    /// (SQLite).
    Clinic {
        /// Slot searches measured.
        #[arg(long, default_value_t = 300)]
        searches: usize,
        /// Booking attempts from 64 clients at once.
        #[arg(long, default_value_t = 2_000)]
        attempts: usize,
    },
    /// Handled work items/s end to end over HTTP: the clinic's leave request, every person
    /// with their own session (SQLite).
    Tasks {
        /// Leave requests run from start to end.
        #[arg(long, default_value_t = 600)]
        processes: usize,
        /// Clients at once (one applying nurse each).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

/// Runs a suite and prints its figures.
pub async fn run(suite: Suite) -> anyhow::Result<()> {
    match suite {
        Suite::Records {
            rows,
            rounds,
            search_rows,
        } => records(rows, rounds, search_rows).await.map(|_| ()),
        Suite::Kernel {
            memory_processes,
            processes,
            concurrency,
        } => crate::bench_kernel::run(memory_processes, processes, concurrency).await,
        Suite::Rules {
            evaluations,
            events,
        } => crate::bench_rules::run(evaluations, events).await,
        Suite::Tasks {
            processes,
            concurrency,
        } => crate::bench_tasks::run(processes, concurrency).await,
        Suite::Clinic { searches, attempts } => crate::bench_clinic::run(searches, attempts).await,
    }
}

pub use crate::figures::Figures;
use crate::figures::{figures, print};

/// A patient row as the clinic would write it.
fn sample(i: usize) -> Value {
    const SURNAMES: [&str; 8] = ["张", "王", "李", "赵", "刘", "陈", "杨", "黄"];
    const GIVEN: [&str; 8] = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊"];
    const SOURCES: [&str; 3] = ["小红书", "微博", "朋友介绍"];
    json!({
        "xingming": format!("{}{}{}", SURNAMES[i % 8], GIVEN[(i / 8) % 8], GIVEN[(i / 64) % 8]),
        "age": 18 + (i % 60) as i64,
        "balance": format!("{}.{:02}", (i * 37) % 20000, i % 100),
        "source": SOURCES[i % 3],
        "birthday": format!("19{:02}-{:02}-{:02}", 60 + i % 40, 1 + i % 12, 1 + i % 28),
        "vip": i.is_multiple_of(5),
        "notes": "术后72小时内避免日晒",
    })
}

const BENCH_ITEM: &str = r#"{
  "name": "bench_patient",
  "label": {"zh": "患者(基准)", "en": "Patient (bench)"},
  "fields": [
    {"label": {"zh": "姓名"}, "type": "text", "required": true, "searchable": true, "max_length": 40},
    {"name": "age", "label": {"zh": "年龄"}, "type": "integer", "min": 0, "max": 150},
    {"name": "balance", "label": {"zh": "预充值余额"}, "type": "money", "min": "0.00"},
    {"name": "source", "label": {"zh": "客户来源"}, "type": "enum", "options": ["小红书", "微博", "朋友介绍"]},
    {"name": "birthday", "label": {"zh": "出生日期"}, "type": "date"},
    {"name": "vip", "label": {"zh": "会员"}, "type": "boolean"},
    {"name": "notes", "label": {"zh": "备注"}, "type": "text"}
  ]
}"#;

/// The figures of `erpos bench records`.
#[derive(Debug, Clone, Copy)]
pub struct RecordFigures {
    /// Raw sqlx inserts into a plain table.
    pub raw_insert: Figures,
    /// Inserts through the records service (validation, typing, search keys, audit row).
    pub erpos_insert: Figures,
    /// Raw sqlx point reads by primary key.
    pub raw_read: Figures,
    /// Point reads through the records service.
    pub erpos_read: Figures,
}

/// Measures record inserts and point reads on a fresh SQLite file.
pub async fn records(
    rows: usize,
    rounds: usize,
    search_rows: usize,
) -> anyhow::Result<RecordFigures> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let kernel = Kernel::open(&format!("sqlite:{}", path.display())).await?;
    let Some(pool) = kernel.db.sqlite_pool() else {
        anyhow::bail!("the records bench runs on SQLite")
    };
    let bench = erpos_kernel::caller::Caller::system("bench");
    erpos_kernel::app::design::create_data_item(
        &kernel,
        &bench,
        &serde_json::from_str(BENCH_ITEM)?,
    )
    .await?;
    sqlx::query(
        "CREATE TABLE raw_patient (id TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at TEXT NOT NULL, \
         updated_at TEXT NOT NULL, xingming TEXT, age INTEGER, balance INTEGER, source TEXT, birthday TEXT, \
         vip INTEGER, notes TEXT) STRICT",
    )
    .execute(pool)
    .await?;
    println!(
        "erpos bench records: {rows} rows x {rounds} rounds, SQLite WAL (synchronous=NORMAL), {}",
        path.display()
    );

    let mut raw_ins = (Vec::new(), Duration::ZERO);
    let mut erp_ins = (Vec::new(), Duration::ZERO);
    let mut raw_ids = Vec::new();
    let mut erp_ids = Vec::new();
    for round in 0..rounds {
        let start = Instant::now();
        for i in 0..rows {
            let r = sample(round * rows + i);
            let id = uuid::Uuid::now_v7().to_string();
            let stamp = chrono::Utc::now().to_rfc3339();
            let balance: f64 = r["balance"].as_str().unwrap_or("0").parse().unwrap_or(0.0);
            let t = Instant::now();
            sqlx::query("INSERT INTO raw_patient VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                .bind(&id)
                .bind(&stamp)
                .bind(&stamp)
                .bind(r["xingming"].as_str())
                .bind(r["age"].as_i64())
                .bind((balance * 100.0).round() as i64)
                .bind(r["source"].as_str())
                .bind(r["birthday"].as_str())
                .bind(r["vip"].as_bool().map(i64::from))
                .bind(r["notes"].as_str())
                .execute(pool)
                .await?;
            raw_ins.0.push(t.elapsed());
            raw_ids.push(id);
        }
        raw_ins.1 += start.elapsed();

        let start = Instant::now();
        for i in 0..rows {
            let r = sample(round * rows + i);
            let t = Instant::now();
            let stored = kernel.records.create("bench_patient", &r, None).await?;
            erp_ins.0.push(t.elapsed());
            erp_ids.push(
                stored["id"]
                    .as_str()
                    .context("created record has an id")?
                    .to_owned(),
            );
        }
        erp_ins.1 += start.elapsed();
    }

    let mut raw_rd = (Vec::new(), Duration::ZERO);
    let mut erp_rd = (Vec::new(), Duration::ZERO);
    let reads = raw_ids.len().min(erp_ids.len());
    let start = Instant::now();
    for id in raw_ids.iter().take(reads) {
        let t = Instant::now();
        let row = sqlx::query("SELECT * FROM raw_patient WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        raw_rd.0.push(t.elapsed());
        anyhow::ensure!(row.is_some(), "raw row {id} missing");
    }
    raw_rd.1 = start.elapsed();
    let start = Instant::now();
    for id in erp_ids.iter().take(reads) {
        let t = Instant::now();
        kernel.records.get("bench_patient", id).await?;
        erp_rd.0.push(t.elapsed());
    }
    erp_rd.1 = start.elapsed();

    // The CPU part of a write alone (schema validation, typing, search keys), to tell it
    // apart from the database round trips.
    let schema = kernel.definitions.schema();
    let validator = schema.validator("bench_patient")?;
    let fields = schema.catalog.effective_fields("bench_patient");
    let samples: Vec<Value> = (0..rows).map(sample).collect();
    let mut cpu = (Vec::with_capacity(rows), Duration::ZERO);
    let start = Instant::now();
    for r in &samples {
        let t = Instant::now();
        anyhow::ensure!(
            validator.issues(r, true).is_empty(),
            "bench sample is invalid"
        );
        let obj = r.as_object().context("sample is an object")?;
        let values = erpos_design::form::parse_record(&fields, obj, "")
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let doc = erpos_kernel::records::search_document(&fields, |n| {
            values
                .iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, v)| v.to_json().as_str().map(str::to_owned))
        });
        std::hint::black_box(doc);
        cpu.0.push(t.elapsed());
    }
    cpu.1 = start.elapsed();
    let cpu = figures(cpu.0, cpu.1);

    let out = RecordFigures {
        raw_insert: figures(raw_ins.0, raw_ins.1),
        erpos_insert: figures(erp_ins.0, erp_ins.1),
        raw_read: figures(raw_rd.0, raw_rd.1),
        erpos_read: figures(erp_rd.0, erp_rd.1),
    };
    println!("inserts (one transaction each):");
    print("raw sqlx (baseline)", &out.raw_insert);
    print("erpos records (validated, audited)", &out.erpos_insert);
    println!(
        "  cost of the metamodel layer: {:.2}x raw (target < 2x)",
        out.raw_insert.per_second / out.erpos_insert.per_second.max(1e-9)
    );
    print("  of which validation + typing (CPU)", &cpu);
    println!("point reads by id:");
    print("raw sqlx (baseline)", &out.raw_read);
    print("erpos records", &out.erpos_read);
    println!(
        "  cost of the metamodel layer: {:.2}x raw",
        out.raw_read.per_second / out.erpos_read.per_second.max(1e-9)
    );
    crate::bench_search::run(&kernel, search_rows, rows).await?;
    kernel.db.close().await;
    Ok(out)
}
