//! Two figures of `erpos bench records` (issue 13): a search by pinyin initials over a
//! large list of patients, and a write with a computed field, each against a baseline
//! measured in the same run on the same SQLite file:
//!
//! - the search through the records service (`q=zl`, a page of 20 and the total) against
//!   the same `LIKE` over the same table in raw sqlx, and against a point read by primary
//!   key (what an indexed lookup costs here: the floor a search index would approach);
//! - inserting invoice lines whose 金额 = 单价 × 数量 is computed by the kernel against
//!   the same lines into a DataItem without the computed field (the client writes 金额).
//!
//! Nothing here asserts a time.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use erpos_kernel::Kernel;
use serde_json::json;

use crate::figures::{figures, print};

/// The searched patients: a name (searchable: its pinyin and initials) and a phone.
const SEARCH_ITEM: &str = r#"{
  "name": "bench_search",
  "label": {"zh": "患者(检索基准)"},
  "fields": [
    {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true},
    {"name": "dianhua", "label": {"zh": "电话"}, "type": "text", "searchable": true}
  ]
}"#;

/// Invoice lines with the amount computed, and the same without.
fn line_items() -> [serde_json::Value; 2] {
    let fields = |compute: bool| {
        let mut jine = json!({"name": "jine", "label": {"zh": "金额"}, "type": "money"});
        if compute {
            jine["compute"] = json!("record.danjia * record.shuliang");
        }
        json!([
            {"name": "xiangmu", "label": {"zh": "项目"}, "type": "text"},
            {"name": "danjia", "label": {"zh": "单价"}, "type": "money"},
            {"name": "shuliang", "label": {"zh": "数量"}, "type": "integer"},
            jine
        ])
    };
    [
        json!({"name": "bench_line", "label": {"zh": "收费明细(计算)"}, "fields": fields(true)}),
        json!({"name": "bench_line_plain", "label": {"zh": "收费明细(无计算)"}, "fields": fields(false)}),
    ]
}

const SURNAMES: [&str; 12] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "曾", "单", "解", "周",
];
const GIVEN: [&str; 12] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "雪", "晓", "东", "明",
];

fn name(i: usize) -> String {
    format!(
        "{}{}{}",
        SURNAMES[i % 12],
        GIVEN[(i / 12) % 12],
        GIVEN[(i / 144) % 12]
    )
}

/// Search figures and computed-write figures.
pub async fn run(kernel: &Kernel, search_rows: usize, rows: usize) -> anyhow::Result<()> {
    let Some(pool) = kernel.db.sqlite_pool() else {
        anyhow::bail!("the records bench runs on SQLite")
    };
    let bench = erpos_kernel::caller::Caller::system("bench");
    erpos_kernel::app::design::create_data_item(
        kernel,
        &bench,
        &serde_json::from_str(SEARCH_ITEM)?,
    )
    .await?;
    for item in line_items() {
        erpos_kernel::app::design::create_data_item(kernel, &bench, &item).await?;
    }

    // The patients, written straight into the DataItem's table with the search document
    // and grams erpos builds (creating 100,000 through the service would measure inserts, not search).
    let fill = Instant::now();
    let schema = kernel.definitions.schema();
    let fields = schema.catalog.effective_fields("bench_search");
    let stamp = chrono::Utc::now().to_rfc3339();
    let mut ids = Vec::with_capacity(search_rows);
    for chunk in (0..search_rows).collect::<Vec<_>>().chunks(1000) {
        let mut tx = pool.begin().await?;
        for &i in chunk {
            let id = uuid::Uuid::now_v7().to_string();
            let (n, phone) = (name(i), format!("138{:08}", i));
            let doc = erpos_kernel::records::search_document(&fields, |f| match f {
                "xingming" => Some(n.clone()),
                "dianhua" => Some(phone.clone()),
                _ => None,
            });
            sqlx::query(
                "INSERT INTO rec_bench_search (id, version, created_at, updated_at, _search, xingming, dianhua) \
                 VALUES (?, 1, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(&stamp)
            .bind(&stamp)
            .bind(&doc)
            .bind(&n)
            .bind(&phone)
            .execute(&mut *tx)
            .await?;
            // And its search grams, as every erpos write stores them (one statement).
            let grams = erpos_design::naming::search_grams(&doc);
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO record_search_grams (item, gram, id) ",
            );
            insert.push_values(&grams, |mut row, gram| {
                row.push_bind("bench_search").push_bind(gram).push_bind(&id);
            });
            insert.build().execute(&mut *tx).await?;
            ids.push(id);
        }
        tx.commit().await?;
    }
    println!(
        "search by pinyin initials over {search_rows} patients (filled in {:.1} s):",
        fill.elapsed().as_secs_f64()
    );
    // Initials of real names here (zl 张丽/曾丽, wfn, …), a phone's last digits, misses.
    let queries: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => "zl".to_owned(),
            1 => erpos_design::naming::search_keys(&name(i * 7919))
                .rsplit(' ')
                .next()
                .unwrap_or("zs")
                .to_owned(),
            2 => format!("{:04}", (i * 37) % 10_000),
            _ => "qqq".to_owned(),
        })
        .collect();

    let mut raw = (Vec::new(), Duration::ZERO);
    let mut erp = (Vec::new(), Duration::ZERO);
    let mut point = (Vec::new(), Duration::ZERO);
    for q in &queries {
        let t = Instant::now();
        let pattern = format!("%{q}%");
        let rows = sqlx::query(
            "SELECT id, version, created_at, updated_at, xingming, dianhua FROM rec_bench_search \
             WHERE _search LIKE ? ORDER BY id LIMIT 21",
        )
        .bind(&pattern)
        .fetch_all(pool)
        .await?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM rec_bench_search WHERE _search LIKE ?")
                .bind(&pattern)
                .fetch_one(pool)
                .await?;
        std::hint::black_box((rows.len(), total));
        raw.0.push(t.elapsed());

        let t = Instant::now();
        let schema = kernel.definitions.schema();
        let query = erpos_kernel::records::ListQuery::parse(
            &schema.catalog,
            "bench_search",
            &[("q".into(), q.clone()), ("limit".into(), "20".into())],
        )?;
        let page = kernel.records.list("bench_search", &query).await?;
        std::hint::black_box(page.total);
        erp.0.push(t.elapsed());

        let t = Instant::now();
        let id = ids
            .get(q.len() * 7919 % ids.len().max(1))
            .context("an id")?;
        let row = sqlx::query("SELECT id, xingming, dianhua FROM rec_bench_search WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        anyhow::ensure!(row.is_some(), "row {id} missing");
        point.0.push(t.elapsed());
    }
    for (f, _) in [(&mut raw, ()), (&mut erp, ()), (&mut point, ())] {
        f.1 = f.0.iter().sum();
    }
    let (raw, erp, point) = (
        figures(raw.0, raw.1),
        figures(erp.0, erp.1),
        figures(point.0, point.1),
    );
    print("raw sqlx LIKE scan (baseline)", &raw);
    print("erpos records (q=…, page + total)", &erp);
    print("indexed point read (the floor)", &point);
    println!(
        "  erpos ÷ raw scan: {:.2}x; scan ÷ indexed read (p50): {:.0}x",
        erp.p50.as_secs_f64() / raw.p50.as_secs_f64().max(1e-9),
        raw.p50.as_secs_f64() / point.p50.as_secs_f64().max(1e-9)
    );

    println!("inserts of invoice lines, {rows} each, alternating:");
    let mut plain = (Vec::new(), Duration::ZERO);
    let mut computed = (Vec::new(), Duration::ZERO);
    for i in 0..rows {
        let (price, qty) = (
            format!("{}.{:02}", 100 + i % 9000, i % 100),
            (1 + i % 5) as i64,
        );
        let amount =
            rust_decimal::Decimal::from_str_exact(&price)? * rust_decimal::Decimal::from(qty);
        let t = Instant::now();
        kernel
            .records
            .create(
                "bench_line_plain",
                &json!({"xiangmu": "水光针", "danjia": price, "shuliang": qty, "jine": amount.to_string()}),
                None,
            )
            .await?;
        plain.0.push(t.elapsed());
        let t = Instant::now();
        let stored = kernel
            .records
            .create(
                "bench_line",
                &json!({"xiangmu": "水光针", "danjia": price, "shuliang": qty}),
                None,
            )
            .await?;
        computed.0.push(t.elapsed());
        anyhow::ensure!(
            stored["jine"]
                .as_str()
                .and_then(|s| s.parse::<rust_decimal::Decimal>().ok())
                == Some(amount),
            "computed {} for {price} × {qty}",
            stored["jine"]
        );
    }
    plain.1 = plain.0.iter().sum();
    computed.1 = computed.0.iter().sum();
    let (plain, computed) = (figures(plain.0, plain.1), figures(computed.0, computed.1));
    print("amount written by the client (baseline)", &plain);
    print("amount computed by erpos", &computed);
    println!(
        "  cost of computing: {:.2}x the baseline (p50)",
        computed.p50.as_secs_f64() / plain.p50.as_secs_f64().max(1e-9)
    );
    Ok(())
}
