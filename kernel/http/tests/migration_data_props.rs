//! The acceptance property of data-aware migration plans (issue 13 §3), on every backend:
//! for a random DataItem (text, integer, decimal, money, boolean, date and enum fields,
//! some required), random records of it, and a random change of every field — kept,
//! removed, retyped, renamed (`renamed_from`), or one rule tightened (a bound, a length, an
//! enum value removed, `required`, `unique`) — plus new fields (some required, some with a
//! default), applying the plan with a random allowed resolution for every field whose
//! records break its new rules:
//!
//! - never loses a value the plan did not count: per field, the values that did not arrive
//!   (as the conversion would carry them) are at most the plan's counted losses plus the
//!   records it counted as breaking and resolved by fixing or archiving;
//! - keeps every lost value, as it was stored, in the field's archive column (and every
//!   value of a removed field in its archive column);
//! - counts a retype's losses exactly: the plan's count equals the values the conversion
//!   (computed here, independently, value by value) cannot carry.
//!
//! Half the cases migrate in batches (a run in the background, see `migration_batches`)
//! with batches of one to three rows, so the property holds of both ways of applying.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use common::TestApp;
use erpos_design::{Field, Value as Stored};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// The field types the property draws from.
const TYPES: [&str; 7] = [
    "text", "integer", "decimal", "money", "boolean", "date", "enum",
];
const OPTIONS: [&str; 4] = ["小红书", "微博", "朋友介绍", "42"];

/// A field's declaration, as JSON, from its type and a few choices.
fn declare(name: &str, ty: &str, required: bool, options: &[&str]) -> Value {
    let mut f = json!({"name": name, "label": {"zh": format!("字段{name}")}, "type": ty});
    if required {
        f["required"] = json!(true);
    }
    if ty == "enum" {
        f["options"] = json!(options);
    }
    if ty == "decimal" {
        f["scale"] = json!(2);
    }
    f
}

fn value_of(ty: &str) -> BoxedStrategy<Value> {
    match ty {
        "text" => proptest::sample::select(vec![
            "曾丽",
            "13800138000",
            "42",
            "7.5",
            "true",
            "IPL",
            "2026-12-01",
            "单雪",
        ])
        .prop_map(|s| json!(s))
        .boxed(),
        "integer" => (-5i64..200).prop_map(|n| json!(n)).boxed(),
        "decimal" | "money" => {
            proptest::sample::select(vec!["0.50", "12.25", "-3.00", "1000.00", "42.00"])
                .prop_map(|s| json!(s))
                .boxed()
        }
        "boolean" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        "date" => proptest::sample::select(vec!["2026-12-01", "2025-02-28", "1990-07-15"])
            .prop_map(|s| json!(s))
            .boxed(),
        _ => proptest::sample::select(OPTIONS.to_vec())
            .prop_map(|s| json!(s))
            .boxed(),
    }
}

/// What a change does to one old field.
#[derive(Debug, Clone)]
enum Change {
    Keep,
    Remove,
    Retype {
        ty: &'static str,
        required: bool,
    },
    Rename,
    /// One rule tightened: 0 min bound, 1 max length, 2 enum value removed, 3 required,
    /// 4 unique (whichever applies to the type; otherwise required).
    Tighten(u8),
}

#[derive(Debug, Clone)]
struct OldField {
    ty: &'static str,
    required: bool,
    change: Change,
}

#[derive(Debug, Clone)]
struct NewField {
    ty: &'static str,
    required: bool,
    default: Option<Value>,
}

#[derive(Debug, Clone)]
struct Case {
    old: Vec<OldField>,
    /// Per record, per old field: its value (null only where optional).
    records: Vec<Vec<Value>>,
    added: Vec<NewField>,
    /// Per field with violations, a choice among the resolutions its steps take (index
    /// into the list, or none to rely on `confirm_destructive`).
    resolve_choice: Vec<Option<u8>>,
    /// Rows per batch, when the case migrates in batches (a run in the background) rather
    /// than in one transaction (every table of the case is larger than the batch).
    batch_rows: Option<u8>,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        2 => Just(Change::Keep),
        1 => Just(Change::Remove),
        2 => (proptest::sample::select(TYPES.to_vec()), any::<bool>())
            .prop_map(|(ty, required)| Change::Retype { ty, required }),
        1 => Just(Change::Rename),
        3 => (0u8..5).prop_map(Change::Tighten),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let old = proptest::collection::vec(
        (
            proptest::sample::select(TYPES.to_vec()),
            proptest::bool::weighted(0.2),
            change(),
        )
            .prop_map(|(ty, required, change)| OldField {
                ty,
                required,
                change,
            }),
        1..=5,
    );
    old.prop_flat_map(|old| {
        let record = old
            .iter()
            .map(|f| {
                if f.required {
                    value_of(f.ty).boxed()
                } else {
                    proptest::option::weighted(0.8, value_of(f.ty))
                        .prop_map(|v| v.unwrap_or(Value::Null))
                        .boxed()
                }
            })
            .collect::<Vec<_>>();
        let records = proptest::collection::vec(record, 0..=8);
        let added = proptest::collection::vec(
            (
                proptest::sample::select(TYPES.to_vec()),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_flat_map(|(ty, required, with_default)| {
                    let default = if with_default {
                        value_of(ty).prop_map(Some).boxed()
                    } else {
                        Just(None).boxed()
                    };
                    default.prop_map(move |default| NewField {
                        ty,
                        required,
                        default,
                    })
                }),
            0..=2,
        );
        let choices = proptest::collection::vec(proptest::option::of(0u8..3), 8);
        let batch_rows = proptest::option::of(1u8..=3);
        (Just(old), records, added, choices, batch_rows).prop_map(
            |(old, records, added, resolve_choice, batch_rows)| Case {
                old,
                records,
                added,
                resolve_choice,
                batch_rows,
            },
        )
    })
}

/// Per old field: its new name (None when removed) and whether it is retyped.
type Fates = Vec<(Option<String>, bool)>;

/// The old and new definitions' fields, as JSON, and what becomes of each old field.
fn definitions(case: &Case) -> (Vec<Value>, Vec<Value>, Fates) {
    let mut old = Vec::new();
    let mut new = Vec::new();
    let mut fate = Vec::new();
    for (i, f) in case.old.iter().enumerate() {
        let name = format!("f{i}");
        old.push(declare(&name, f.ty, f.required, &OPTIONS));
        match &f.change {
            Change::Keep => {
                new.push(declare(&name, f.ty, f.required, &OPTIONS));
                fate.push((Some(name), false));
            }
            Change::Remove => fate.push((None, false)),
            Change::Retype { ty, required } => {
                new.push(declare(&name, ty, *required, &OPTIONS[..3]));
                fate.push((Some(name), *ty != f.ty));
            }
            Change::Rename => {
                let to = format!("g{i}");
                let mut d = declare(&to, f.ty, f.required, &OPTIONS);
                d["renamed_from"] = json!(name);
                new.push(d);
                fate.push((Some(to), false));
            }
            Change::Tighten(rule) => {
                let mut d = declare(&name, f.ty, f.required, &OPTIONS);
                match (rule, f.ty) {
                    (0, "integer") => d["min"] = json!(18),
                    (0, "decimal" | "money") => d["min"] = json!("10.00"),
                    (1, "text") => d["max_length"] = json!(3),
                    (2, "enum") => d["options"] = json!(["小红书", "朋友介绍"]),
                    (4, "text" | "integer" | "date" | "enum") => d["unique"] = json!(true),
                    _ => d["required"] = json!(true),
                }
                new.push(d);
                fate.push((Some(name), false));
            }
        }
    }
    for (i, f) in case.added.iter().enumerate() {
        let mut d = declare(&format!("n{i}"), f.ty, f.required, &OPTIONS);
        if let Some(default) = &f.default {
            d["default"] = default.clone();
        }
        new.push(d);
    }
    (old, new, fate)
}

/// A value that satisfies `field`'s rules (a fix), from its declaration.
fn conforming(field: &Value) -> Value {
    match field["type"].as_str().unwrap_or_default() {
        "text" => json!("补"),
        "integer" => json!(field["min"].as_i64().unwrap_or(0).max(20)),
        "decimal" | "money" => json!("20.00"),
        "boolean" => json!(true),
        "date" => json!("2026-12-01"),
        _ => field["options"][0].clone(),
    }
}

/// Every column of the item's table, as text per record id (via the kernel's own cast).
async fn snapshot(
    app: &TestApp,
    table: &str,
    columns: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<Option<String>>>> {
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("SELECT ").col_text("id");
    for c in columns {
        sql.push(", ").col_text(c);
    }
    sql.push(" FROM ").ident(table);
    let mut out = BTreeMap::new();
    for row in app.kernel.db.fetch(sql).await? {
        let id = row.first().cloned().flatten().unwrap_or_default();
        out.insert(id, row.into_iter().skip(1).collect());
    }
    Ok(out)
}

fn field_of(def: &Value, name: &str) -> Option<Field> {
    def["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| serde_json::from_value(f.clone()).ok())
}

async fn check(app: &TestApp, item: &str, case: &Case) -> anyhow::Result<Result<bool, String>> {
    let (old_fields, new_fields, fate) = definitions(case);
    let table = format!("rec_{item}");
    let (s, defined) = app
        .call(
            "POST",
            "/api/v1/data-items",
            Some(json!({"name": item, "label": {"zh": "随机"}, "fields": old_fields})),
        )
        .await?;
    if s != StatusCode::CREATED {
        return Ok(Err(format!("define: {s} {defined}")));
    }
    for values in &case.records {
        let mut record = serde_json::Map::new();
        for (i, v) in values.iter().enumerate() {
            record.insert(format!("f{i}"), v.clone());
        }
        let (s, r) = app
            .call(
                "POST",
                &format!("/api/v1/records/{item}"),
                Some(Value::Object(record)),
            )
            .await?;
        if s != StatusCode::CREATED {
            // A unique old field never repeats in the old data: the draw said otherwise.
            return Ok(Err(format!("create: {s} {r}")));
        }
    }
    let names: Vec<String> = (0..case.old.len()).map(|i| format!("f{i}")).collect();
    let before = snapshot(app, &table, &names).await?;

    let (s, proposed) = app
        .call(
            "PUT",
            &format!("/api/v1/data-items/{item}"),
            Some(json!({"label": {"zh": "随机"}, "fields": new_fields})),
        )
        .await?;
    if s == StatusCode::UNPROCESSABLE_ENTITY {
        // A change the definition checks refuse (e.g. a default breaking its own rules).
        return Ok(Ok(false));
    }
    if s != StatusCode::OK {
        return Ok(Err(format!("propose: {s} {proposed}")));
    }
    let new_def = &proposed["pending_change"];
    // A resolution for every field with violations, drawn among those its steps all take.
    let mut resolve = serde_json::Map::new();
    let mut allowed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for step in proposed["plan"]["steps"].as_array().into_iter().flatten() {
        if let Some(v) = step.get("violations") {
            let kinds: Vec<String> = v["resolutions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect();
            let field = v["field"].as_str().unwrap_or_default().to_owned();
            allowed
                .entry(field)
                .and_modify(|a| a.retain(|k| kinds.contains(k)))
                .or_insert(kinds);
        }
    }
    for (n, (field, kinds)) in allowed.iter().enumerate() {
        let choice = case.resolve_choice.get(n).copied().flatten();
        let kind = match choice {
            None if kinds.iter().any(|k| k == "accept") => continue,
            None => kinds.first(),
            Some(c) => kinds.get(usize::from(c) % kinds.len().max(1)),
        };
        let Some(kind) = kind else {
            return Ok(Err(format!(
                "no resolution fits every step of {field}: {proposed}"
            )));
        };
        let declared = new_def["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == *field)
            .cloned()
            .unwrap_or_default();
        resolve.insert(
            field.clone(),
            match kind.as_str() {
                "fix" => json!({"action": "fix", "value": conforming(&declared)}),
                other => json!({"action": other}),
            },
        );
    }
    app.kernel
        .definitions
        .set_batching(erpos_kernel::definitions::Batching {
            rows: case.batch_rows.map_or(1_000, usize::from),
            pause: std::time::Duration::ZERO,
        });
    let (s, applied) = app
        .call(
            "POST",
            &format!("/api/v1/data-items/{item}/migration"),
            Some(json!({"confirm_destructive": true, "resolve": resolve})),
        )
        .await?;
    let applied = match s {
        StatusCode::OK => applied["applied"].clone(),
        StatusCode::ACCEPTED => {
            BATCHED.fetch_add(1, Ordering::Relaxed);
            match run_to_its_end(app, item).await? {
                Ok(plan) => plan,
                Err(m) => return Ok(Err(format!("{m}\nproposed: {proposed}"))),
            }
        }
        _ => return Ok(Err(format!("apply: {s} {applied}\nproposed: {proposed}"))),
    };
    let plan = &applied;
    let version = plan["to_version"].as_u64().unwrap_or_default();
    let steps: Vec<&Value> = plan["steps"].as_array().into_iter().flatten().collect();

    for (i, (to, retyped)) in fate.iter().enumerate() {
        let from_name = format!("f{i}");
        let old_field = field_of(&defined, &from_name).expect("old field");
        let old_values: Vec<(&String, Option<&String>)> = before
            .iter()
            .map(|(id, row)| (id, row.get(i).and_then(Option::as_ref)))
            .collect();
        let Some(to) = to else {
            // Removed: every value is in its archive column.
            let archive = steps
                .iter()
                .find(|s| {
                    s["action"] == "archive_column" && s["field"]["name"] == from_name.as_str()
                })
                .and_then(|s| s["archived_as"].as_str())
                .unwrap_or_default()
                .to_owned();
            let kept = snapshot(app, &table, std::slice::from_ref(&archive)).await?;
            for (id, old) in &old_values {
                if kept
                    .get(*id)
                    .and_then(|r| r.first().cloned().flatten())
                    .as_ref()
                    != *old
                {
                    return Ok(Err(format!(
                        "removed {from_name}: record {id} lost {old:?} ({archive})\n{plan}"
                    )));
                }
            }
            continue;
        };
        let new_field = field_of(&proposed["pending_change"], to).expect("new field");
        let after = snapshot(app, &table, std::slice::from_ref(to)).await?;
        let field_steps: Vec<&&Value> = steps
            .iter()
            .filter(|s| {
                s["field"]["name"] == to.as_str()
                    || s["to"]["name"] == to.as_str()
                    || s["violations"]["field"] == to.as_str()
            })
            .collect();
        let counted_losses: u64 = field_steps
            .iter()
            .filter_map(|s| s["losses"]["count"].as_u64())
            .sum();
        let counted_resolved: u64 = field_steps
            .iter()
            .filter(|s| {
                matches!(
                    s["violations"]["resolved"].as_str(),
                    Some("fix" | "archive")
                )
            })
            .filter_map(|s| s["violations"]["count"].as_u64())
            .sum();
        let archive_name = steps
            .iter()
            .find(|s| s["action"] == "retype_column" && s["to"]["name"] == to.as_str())
            .and_then(|s| s["archived_as"].as_str())
            .map_or_else(|| format!("{to}__archived_v{version}"), str::to_owned);
        let archive = if app.columns(item).await?.contains(&archive_name) {
            Some(snapshot(app, &table, std::slice::from_ref(&archive_name)).await?)
        } else {
            None
        };
        let mut lost = 0u64;
        let mut unconvertible = 0u64;
        for (id, old) in &old_values {
            let Some(old) = old else { continue };
            let expected = Stored::from_storage(&old_field, Some(old.as_str()))
                .ok()
                .and_then(|v| {
                    if *retyped {
                        v.convert(&new_field)
                    } else {
                        Some(v)
                    }
                });
            if expected.is_none() {
                unconvertible += 1;
            }
            let now = after.get(*id).and_then(|r| r.first().cloned().flatten());
            let arrived = Stored::from_storage(&new_field, now.as_deref()).ok();
            if expected.is_some() && arrived == expected {
                continue;
            }
            lost += 1;
            let kept = archive
                .as_ref()
                .and_then(|a| a.get(*id))
                .and_then(|r| r.first().cloned().flatten());
            if kept.as_ref() != Some(*old) {
                return Ok(Err(format!(
                    "{from_name} → {to}: record {id} lost {old:?} (now {now:?}), not kept in {archive_name} ({kept:?})\n{plan}"
                )));
            }
        }
        if lost > counted_losses + counted_resolved {
            return Ok(Err(format!(
                "{from_name} → {to}: {lost} values lost, the plan counted {counted_losses} + {counted_resolved}\n{plan}"
            )));
        }
        if *retyped && counted_losses != unconvertible {
            return Ok(Err(format!(
                "{from_name} → {to}: the plan counted {counted_losses} losses, {unconvertible} do not convert\n{plan}"
            )));
        }
    }
    // The item still reads.
    let (s, list) = app
        .call("GET", &format!("/api/v1/records/{item}?limit=50"), None)
        .await?;
    if s != StatusCode::OK {
        return Ok(Err(format!("list after: {s} {list}")));
    }
    Ok(Ok(true))
}

/// Waits for the run in batches of `item` to end and answers the plan it applied (as the
/// switch decided it, stored with the version), or why the run did not end well.
async fn run_to_its_end(app: &TestApp, item: &str) -> anyhow::Result<Result<Value, String>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (s, p) = app
            .call(
                "GET",
                &format!("/api/v1/data-items/{item}/migration/progress"),
                None,
            )
            .await?;
        if s != StatusCode::OK {
            return Ok(Err(format!("progress: {s} {p}")));
        }
        match p["state"].as_str() {
            Some("done") => break,
            Some("failed") => return Ok(Err(format!("the run failed: {p}"))),
            _ if std::time::Instant::now() > deadline => {
                return Ok(Err(format!("the run did not end: {p}")));
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("SELECT CAST(plan AS TEXT) FROM data_item_versions WHERE name = ")
        .text(item)
        .push(" ORDER BY version DESC LIMIT 1");
    let text = app
        .kernel
        .db
        .fetch(sql)
        .await?
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    Ok(Ok(serde_json::from_str(&text)?))
}

/// How many cases migrated in batches, over every backend.
static BATCHED: AtomicU32 = AtomicU32::new(0);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64)
}

#[test]
fn applying_a_plan_loses_nothing_it_did_not_count_and_archives_what_it_counted()
-> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let apps = rt.block_on(async {
        let mut apps = Vec::new();
        for db in common::backends().await? {
            apps.push(common::app(db).await?);
        }
        anyhow::Ok(apps)
    })?;
    let counter = AtomicU32::new(0);
    for app in &apps {
        let applied = AtomicU32::new(0);
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            max_shrink_iters: 256,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&case(), |case| {
            let item = format!("m{}", counter.fetch_add(1, Ordering::Relaxed));
            match rt.block_on(check(app, &item, &case)) {
                Ok(Ok(done)) => {
                    if done {
                        applied.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                }
                Ok(Err(m)) => Err(TestCaseError::fail(m)),
                Err(e) => Err(TestCaseError::fail(format!("{e:#}"))),
            }
        });
        if let Err(e) = result {
            anyhow::bail!("on {}: {e}", app.backend);
        }
        // The property must be about migrations that ran, not refused changes.
        let ran = applied.load(Ordering::Relaxed);
        anyhow::ensure!(
            ran * 4 >= cases() * 3,
            "on {}: only {ran} of {} cases applied a plan",
            app.backend,
            cases()
        );
    }
    // And it must be about both ways of applying.
    let batched = BATCHED.load(Ordering::Relaxed);
    eprintln!("{batched} cases migrated in batches");
    anyhow::ensure!(batched > 0, "no case migrated in batches");
    Ok(())
}
