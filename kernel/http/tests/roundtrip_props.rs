//! The acceptance property "any valid definition round-trips": for a random DataItem
//! (1–8 fields of every storable type, random required / searchable, enum options and
//! decimal scales) and a random valid record of it, define → table → write → read gives the
//! same record, on every backend: the created record, `GET /records/{item}/{id}` and the
//! list `GET /records/{item}` all return exactly the values sent (sent already in their
//! canonical form: decimals with `scale` digits, datetimes in UTC with microseconds), and
//! null for optional fields left out or sent as null.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate};
use common::TestApp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value, json};

/// A field type with what the definition needs to say about it.
#[derive(Debug, Clone)]
enum Kind {
    Text,
    Integer,
    /// `None`: the scale is not given (the default applies).
    Decimal(Option<u32>),
    Money,
    Boolean,
    Date,
    Datetime,
    Enum(Vec<String>),
    Json,
}

const DEFAULT_SCALE: u32 = 4;

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Integer => "integer",
            Kind::Decimal(_) => "decimal",
            Kind::Money => "money",
            Kind::Boolean => "boolean",
            Kind::Date => "date",
            Kind::Datetime => "datetime",
            Kind::Enum(_) => "enum",
            Kind::Json => "json",
        }
    }

    fn searchable_allowed(&self) -> bool {
        matches!(self, Kind::Text | Kind::Enum(_))
    }
}

/// What the record says about a field.
#[derive(Debug, Clone)]
enum Sent {
    Omitted,
    Null,
    Value(Value),
}

impl Sent {
    /// What reading the record back must give.
    fn expected(&self) -> Value {
        match self {
            Sent::Value(v) => v.clone(),
            Sent::Omitted | Sent::Null => Value::Null,
        }
    }
}

#[derive(Debug, Clone)]
struct FieldCase {
    name: String,
    zh: String,
    kind: Kind,
    required: bool,
    searchable: bool,
    sent: Sent,
}

#[derive(Debug, Clone)]
struct Case {
    item_zh: String,
    fields: Vec<FieldCase>,
}

impl Case {
    fn definition(&self, item: &str) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                let mut d = json!({
                    "name": f.name,
                    "label": {"zh": f.zh},
                    "type": f.kind.name(),
                });
                if f.required {
                    d["required"] = json!(true);
                }
                if f.searchable {
                    d["searchable"] = json!(true);
                }
                match &f.kind {
                    Kind::Decimal(Some(scale)) => d["scale"] = json!(scale),
                    Kind::Enum(options) => d["options"] = json!(options),
                    _ => {}
                }
                d
            })
            .collect();
        json!({"name": item, "label": {"zh": self.item_zh}, "fields": fields})
    }

    fn record(&self) -> Value {
        let mut out = Map::new();
        for f in &self.fields {
            match &f.sent {
                Sent::Omitted => {}
                Sent::Null => {
                    out.insert(f.name.clone(), Value::Null);
                }
                Sent::Value(v) => {
                    out.insert(f.name.clone(), v.clone());
                }
            }
        }
        Value::Object(out)
    }
}

const RESERVED: [&str; 4] = ["id", "version", "created_at", "updated_at"];

/// Random identifiers, and words that are reserved in SQL or mean something in a list query.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]([a-z0-9]|_[a-z0-9]){0,9}",
        1 => proptest::sample::select(vec![
            "order", "select", "group", "user", "from", "table", "where", "default", "check",
            "limit", "offset", "sort", "page", "cursor", "q", "integer", "text", "json", "null",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_filter("reserved", |n| !RESERVED.contains(&n.as_str()))
}

fn chinese(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[一-龥]{{1,{max}}}")).expect("regex")
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 张三李四王五患者姓名备注诊室预约长行重，。！？%_'\"\\\\/-]{1,24}",
        chinese(12),
        "[a-z0-9😀é\u{00a0}ü ]{1,8}",
    ]
}

fn option_name() -> impl Strategy<Value = String> {
    prop_oneof![
        chinese(4),
        "[a-zA-Z0-9][a-zA-Z0-9 _-]{0,8}[a-zA-Z0-9]",
        "[a-zA-Z]"
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Text),
        Just(Kind::Integer),
        proptest::option::of(0..=4u32).prop_map(Kind::Decimal),
        Just(Kind::Money),
        Just(Kind::Boolean),
        Just(Kind::Date),
        Just(Kind::Datetime),
        proptest::collection::btree_set(option_name(), 1..=4)
            .prop_map(|o| o.into_iter().collect())
            .prop_shuffle()
            .prop_map(Kind::Enum),
        Just(Kind::Json),
    ]
}

/// `mantissa / 10^scale` written with exactly `scale` decimals: the form the API returns.
fn fixed_point(mantissa: i64, scale: u32) -> String {
    let sign = if mantissa < 0 { "-" } else { "" };
    let abs = mantissa.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(scale);
    format!(
        "{sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = scale as usize
    )
}

const LIMIT: i64 = 1_000_000_000_000_000;

fn scaled(scale: u32) -> impl Strategy<Value = Value> {
    prop_oneof![-LIMIT..=LIMIT, -1000i64..=1000, Just(0i64),]
        .prop_map(move |m| json!(fixed_point(m, scale)))
}

/// 1900-01-01T00:00:00Z to 2100-12-31T23:59:59Z, in seconds.
const FIRST_SECOND: i64 = -2_208_988_800;
const LAST_SECOND: i64 = 4_133_980_799;

fn datetime_value() -> impl Strategy<Value = Value> {
    let micros = prop_oneof![Just(0u32), 0..1_000_000u32, Just(999_999u32)];
    (FIRST_SECOND..=LAST_SECOND, micros).prop_map(|(s, us)| {
        let t = DateTime::from_timestamp(s, us * 1000).expect("in range");
        json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    })
}

fn date_value() -> impl Strategy<Value = Value> {
    let first = NaiveDate::from_ymd_opt(1900, 1, 1).expect("date");
    let days = (NaiveDate::from_ymd_opt(2100, 12, 31).expect("date") - first).num_days();
    (0..=days).prop_map(move |d| {
        let date = first + chrono::Duration::days(d);
        json!(date.format("%Y-%m-%d").to_string())
    })
}

/// Small JSON documents: numbers (integers and floats exact in binary), strings with
/// Chinese, booleans, nested arrays and objects (null only inside).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000_000_000i64..=1_000_000_000_000).prop_map(|n| json!(n)),
        (-4_000_000i64..=4_000_000).prop_map(|n| json!(n as f64 / 4.0)),
        "[a-z张三患者 \"\\\\]{0,8}".prop_map(Value::String),
    ];
    let nested = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z张三]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    nested.prop_filter("null at the top means no value", |v| !v.is_null())
}

fn value_of(kind: &Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Text => text_value().prop_map(Value::String).boxed(),
        Kind::Integer => prop_oneof![-LIMIT..=LIMIT, -100i64..=100]
            .prop_map(|n| json!(n))
            .boxed(),
        Kind::Decimal(scale) => scaled(scale.unwrap_or(DEFAULT_SCALE)).boxed(),
        Kind::Money => scaled(2).boxed(),
        Kind::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Date => date_value().boxed(),
        Kind::Datetime => datetime_value().boxed(),
        Kind::Enum(options) => proptest::sample::select(options.clone())
            .prop_map(Value::String)
            .boxed(),
        Kind::Json => json_value().boxed(),
    }
}

fn field_case(name: String) -> impl Strategy<Value = FieldCase> {
    (kind(), any::<bool>(), any::<bool>(), chinese(6)).prop_flat_map(
        move |(kind, required, searchable, zh)| {
            let value = value_of(&kind);
            let sent = if required {
                value.prop_map(Sent::Value).boxed()
            } else {
                prop_oneof![
                    1 => Just(Sent::Omitted),
                    1 => Just(Sent::Null),
                    3 => value.prop_map(Sent::Value),
                ]
                .boxed()
            };
            let name = name.clone();
            sent.prop_map(move |sent| FieldCase {
                name: name.clone(),
                zh: zh.clone(),
                searchable: searchable && kind.searchable_allowed(),
                kind: kind.clone(),
                required,
                sent,
            })
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::btree_set(field_name(), 1..=8),
        chinese(6),
    )
        .prop_flat_map(|(names, item_zh)| {
            // Names come sorted: shuffle the declaration order.
            let fields: Vec<_> = names.into_iter().map(field_case).collect();
            (Just(item_zh), fields.prop_shuffle())
        })
        .prop_map(|(item_zh, fields)| Case { item_zh, fields })
}

/// Compares every field of a record read back with what was sent.
fn check_record(case: &Case, got: &Value, where_: &str) -> anyhow::Result<()> {
    let obj = got
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("{where_}: not an object: {got}"))?;
    let mut problems = Vec::new();
    for f in &case.fields {
        let want = f.sent.expected();
        match obj.get(&f.name) {
            Some(v) if *v == want => {}
            Some(v) => problems.push(format!(
                "field '{}' ({}): sent {:?}, expected {want}, got {v}",
                f.name,
                f.kind.name(),
                f.sent
            )),
            None => problems.push(format!("field '{}' ({}) is missing", f.name, f.kind.name())),
        }
    }
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    let mut want_keys: BTreeSet<&str> = case.fields.iter().map(|f| f.name.as_str()).collect();
    want_keys.extend(RESERVED);
    if keys != want_keys {
        problems.push(format!("keys {keys:?}, expected {want_keys:?}"));
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{where_}:\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

async fn round_trip(app: &TestApp, item: &str, case: &Case) -> anyhow::Result<()> {
    app.define(case.definition(item)).await?;
    let created = app.create(item, case.record()).await?;
    check_record(case, &created, "the created record")?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no id in {created}"))?;

    let (status, got) = app
        .call("GET", &format!("/api/v1/records/{item}/{id}"), None)
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "GET gave {status} {got}");
    check_record(case, &got, "GET /records/{item}/{id}")?;
    anyhow::ensure!(got["version"] == json!(1), "version {}", got["version"]);

    let (status, page) = app
        .call("GET", &format!("/api/v1/records/{item}?limit=5"), None)
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "list gave {status} {page}");
    anyhow::ensure!(page["total"] == json!(1), "list total {}", page["total"]);
    let items = page["items"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no items in {page}"))?;
    anyhow::ensure!(items.len() == 1, "list has {} items", items.len());
    anyhow::ensure!(
        items[0]["id"] == json!(id),
        "list item id {}",
        items[0]["id"]
    );
    check_record(case, &items[0], "GET /records/{item}?limit=5")?;
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

#[test]
fn any_valid_definition_round_trips() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // One app per backend; every case defines a fresh DataItem in it.
    let apps = rt.block_on(async {
        let mut apps = Vec::new();
        for db in common::backends().await? {
            apps.push(common::app(db).await?);
        }
        anyhow::Ok(apps)
    })?;
    let counter = AtomicU32::new(0);
    for app in &apps {
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            max_shrink_iters: 512,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&case(), |case| {
            let item = format!("p{}", counter.fetch_add(1, Ordering::Relaxed));
            rt.block_on(round_trip(app, &item, &case)).map_err(|e| {
                let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
                TestCaseError::fail(format!(
                    "{e:#}\ndefinition: {}\nrecord: {}",
                    pretty(&case.definition(&item)),
                    pretty(&case.record())
                ))
            })
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, minimal)) => {
                anyhow::bail!("on {}: {reason}\nminimal case: {minimal:#?}", app.backend)
            }
            Err(e) => anyhow::bail!("on {}: {e}", app.backend),
        }
    }
    Ok(())
}
