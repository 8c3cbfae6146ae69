//! Migrations of large tables run in batches and resume after a crash (issue 13 §3), on
//! both databases. A retype of 会员's 积分 over more rows than a batch holds answers 202
//! with its progress and converts a batch at a time while the old version stays in force
//! (reads answer as before, writes are refused with 409 `migration_running`, and so is any
//! other definition change). The node is then stopped between two batches (a crash: the
//! kernel is dropped with the run half done) and started again: the run is still there, at
//! the batch it had committed, and resuming it finishes the conversion, switches to the new
//! version and rebuilds the search documents in batches. Every value converts, the one that
//! cannot is kept in the archive column, and a row changed behind the run's back after its
//! batch (what a write racing the start would do) is converted again at the switch. A run
//! whose switch can no longer be applied fails and leaves the table as it found it.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use erpos_kernel::definitions::Batching;
use serde_json::{Value, json};

/// Members created; more than the batch of 50 the test sets.
const MEMBERS: usize = 240;
/// Rows per batch in the test.
const BATCH: usize = 50;

fn member(fields_jifen_type: &str, phone_searchable: bool) -> Value {
    json!({
        "label": {"zh": "会员"},
        "fields": [
            {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true},
            {"name": "jifen", "label": {"zh": "积分"}, "type": fields_jifen_type},
            {"name": "shouji", "label": {"zh": "手机"}, "type": "text", "searchable": phone_searchable},
        ]
    })
}

/// Points as the members were given them: a number as text, except every 40th, which
/// says "很多" (a lot) and cannot become a number.
fn points(i: usize) -> String {
    if i % 40 == 7 {
        "很多".into()
    } else {
        (i * 10).to_string()
    }
}

/// Proposes 积分 as an integer (and 手机 searchable or not) and applies it, confirmed.
async fn points_become_integers(
    app: &TestApp,
    phone_searchable: bool,
) -> anyhow::Result<(StatusCode, Value)> {
    let (s, proposed) = app
        .call(
            "PUT",
            "/api/v1/data-items/huiyuan",
            Some(member("integer", phone_searchable)),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {proposed}");
    app.call(
        "POST",
        "/api/v1/data-items/huiyuan/migration",
        Some(json!({"confirm_destructive": true})),
    )
    .await
}

async fn progress(app: &TestApp) -> anyhow::Result<Value> {
    let (s, p) = app
        .call("GET", "/api/v1/data-items/huiyuan/migration/progress", None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {p}");
    Ok(p)
}

async fn scalar(app: &TestApp, sql: &str) -> anyhow::Result<Option<String>> {
    let mut q = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    q.push(sql);
    Ok(app
        .kernel
        .db
        .fetch(q)
        .await?
        .first()
        .and_then(|r| r.first().cloned().flatten()))
}

#[tokio::test]
async fn a_large_retype_runs_in_batches_and_resumes_after_a_crash() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let mut def = member("text", false);
        def["name"] = json!("huiyuan");
        app.define(def).await?;
        for i in 0..MEMBERS {
            app.create(
                "huiyuan",
                json!({"xingming": format!("会员{i:03}"), "jifen": points(i), "shouji": format!("1380013{i:04}")}),
            )
            .await?;
        }
        // A batch, then a pause long enough that the test decides when the next comes.
        app.kernel.definitions.set_batching(Batching {
            rows: BATCH,
            pause: Duration::from_secs(3600),
        });
        let (s, started) = points_become_integers(&app, true).await?;
        assert_eq!(s, StatusCode::ACCEPTED, "{started}");
        assert_eq!(started["state"], "converting", "{started}");
        assert_eq!(started["version"], 2, "{started}");
        // Converted once, searched once.
        assert_eq!(started["total"], 2 * MEMBERS, "{started}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut p = progress(&app).await?;
        while p["done"] != BATCH && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            p = progress(&app).await?;
        }
        assert_eq!(p["done"], BATCH, "{p}");
        assert_eq!(p["state"], "converting", "{p}");
        assert_eq!(p["percent"], 10.4, "{p}");

        // Meanwhile the old version answers reads, and writes wait.
        let (s, list) = app
            .call("GET", "/api/v1/records/huiyuan?limit=5&sort=xingming", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"][1]["jifen"], "10", "{list}");
        let first_id = list["items"][0]["id"].as_str().unwrap_or_default().to_owned();
        let (s, refused) = app
            .call(
                "POST",
                "/api/v1/records/huiyuan",
                Some(json!({"xingming": "区家明", "jifen": "5"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["code"], "migration_running", "{refused}");
        let (s, refused) = app
            .call(
                "PATCH",
                &format!("/api/v1/records/huiyuan/{first_id}"),
                Some(json!({"jifen": "6"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        let (s, refused) = app
            .call(
                "POST",
                "/api/v1/data-items",
                Some(json!({"name": "liaocheng", "label": {"zh": "疗程"}, "fields": [
                    {"name": "mingcheng", "label": {"zh": "名称"}, "type": "text"}]})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["code"], "migration_running", "{refused}");

        // A row the first batch converted is changed behind the run's back, as a write
        // racing the start would: the switch must convert it again.
        let converted_first =
            scalar(&app, "SELECT CAST(id AS TEXT) FROM rec_huiyuan ORDER BY id LIMIT 1")
                .await?
                .unwrap_or_default();
        let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
        sql.push("UPDATE rec_huiyuan SET jifen = '777', version = version + 1 WHERE CAST(id AS TEXT) = ")
            .text(&converted_first);
        app.kernel.db.write_atomically(vec![sql]).await?;

        // The crash: the node goes away between two batches.
        let app = app.restart().await?;
        let p = progress(&app).await?;
        assert_eq!(p["state"], "converting", "{p}");
        assert_eq!(p["done"], BATCH, "{p}");
        let (s, refused) = app
            .call(
                "POST",
                "/api/v1/records/huiyuan",
                Some(json!({"xingming": "区家明", "jifen": "5"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "still read-only after the restart: {refused}");

        app.kernel.definitions.set_batching(Batching {
            rows: BATCH,
            pause: Duration::ZERO,
        });
        for run in erpos_kernel::app::migration_runs::resume(&app.kernel) {
            run.await?;
        }
        let p = progress(&app).await?;
        assert_eq!(p["state"], "done", "{p}");
        assert_eq!(p["done"], 2 * MEMBERS, "{p}");
        assert_eq!(p["percent"], 100.0, "{p}");
        assert!(p["finished_at"].is_string(), "{p}");
        assert!(p["error"].is_null(), "{p}");

        // Every value converted, the lost ones kept, the raced one converted again.
        let (s, shown) = app.call("GET", "/api/v1/data-items/huiyuan", None).await?;
        assert_eq!(s, StatusCode::OK, "{shown}");
        assert_eq!(shown["version"], 2, "{shown}");
        let (s, all) = app
            .call("GET", "/api/v1/records/huiyuan?limit=500&sort=xingming", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{all}");
        let items = all["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), MEMBERS, "{all}");
        for (i, r) in items.iter().enumerate() {
            let id = r["id"].as_str().unwrap_or_default();
            let expected = if id == converted_first {
                json!(777)
            } else if i % 40 == 7 {
                Value::Null
            } else {
                json!(i * 10)
            };
            assert_eq!(r["jifen"], expected, "member {i}: {r}");
        }
        let archived = scalar(
            &app,
            "SELECT CAST(COUNT(*) AS TEXT) FROM rec_huiyuan WHERE jifen__archived_v2 = '很多'",
        )
        .await?;
        assert_eq!(archived.as_deref(), Some("6"));
        let leftovers = app.columns("huiyuan").await?;
        assert!(
            !leftovers.iter().any(|c| c.contains("__new") || c == "_run_version"),
            "{leftovers:?}"
        );
        // The search documents follow the new version: phones are searchable now.
        let (s, found) = app
            .call("GET", "/api/v1/records/huiyuan?q=13800130123", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{found}");
        assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
        assert_eq!(found["items"][0]["xingming"], "会员123", "{found}");
        // And the item takes writes again.
        let (s, created) = app
            .call(
                "POST",
                "/api/v1/records/huiyuan",
                Some(json!({"xingming": "区家明", "jifen": 5})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_small_change_still_applies_at_once_and_has_no_run() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let mut def = member("text", false);
        def["name"] = json!("huiyuan");
        app.define(def).await?;
        for i in 0..3 {
            app.create(
                "huiyuan",
                json!({"xingming": format!("会员{i}"), "jifen": points(i)}),
            )
            .await?;
        }
        let (s, applied) = points_become_integers(&app, false).await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        assert_eq!(applied["data_item"]["version"], 2, "{applied}");
        let (s, none) = app
            .call("GET", "/api/v1/data-items/huiyuan/migration/progress", None)
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{none}");
        let (s, none) = app
            .call("GET", "/api/v1/data-items/nosuch/migration/progress", None)
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{none}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_run_whose_switch_is_refused_fails_and_leaves_the_table_as_it_was() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        let mut def = member("text", false);
        def["name"] = json!("huiyuan");
        app.define(def).await?;
        for i in 0..120 {
            app.create(
                "huiyuan",
                json!({"xingming": format!("会员{i:03}"), "jifen": points(i), "shouji": format!("1390013{i:04}")}),
            )
            .await?;
        }
        app.kernel.definitions.set_batching(Batching {
            rows: BATCH,
            pause: Duration::from_secs(3600),
        });
        // 积分 becomes an integer and 手机 unique: no phone repeats when the run starts.
        let mut change = member("integer", false);
        change["fields"][2]["unique"] = json!(true);
        let (s, proposed) = app
            .call("PUT", "/api/v1/data-items/huiyuan", Some(change))
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        let (s, started) = app
            .call(
                "POST",
                "/api/v1/data-items/huiyuan/migration",
                Some(json!({"confirm_destructive": true})),
            )
            .await?;
        assert_eq!(s, StatusCode::ACCEPTED, "{started}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while progress(&app).await?["done"] != BATCH && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Behind the run's back, two members come to share a phone: the switch counts
        // again, finds the repeat unresolved, and the run fails.
        let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
        sql.push("UPDATE rec_huiyuan SET shouji = '13900130000', version = version + 1 WHERE shouji = '13900130001'");
        app.kernel.db.write_atomically(vec![sql]).await?;
        app.kernel.definitions.set_batching(Batching {
            rows: BATCH,
            pause: Duration::ZERO,
        });
        erpos_kernel::app::migration_runs::drive(
            std::sync::Arc::downgrade(&app.kernel),
            "huiyuan".into(),
        )
        .await;
        let p = progress(&app).await?;
        assert_eq!(p["state"], "failed", "{p}");
        assert!(p["finished_at"].is_string(), "{p}");
        assert!(
            p["error"].as_str().unwrap_or_default().contains("unique"),
            "{p}"
        );
        // Nothing changed: the old version in force, its columns only, the change pending,
        // the records writable.
        let (s, shown) = app.call("GET", "/api/v1/data-items/huiyuan", None).await?;
        assert_eq!(s, StatusCode::OK, "{shown}");
        assert_eq!(shown["version"], 1, "{shown}");
        let columns = app.columns("huiyuan").await?;
        assert!(
            !columns.iter().any(|c| c.contains("__new") || c == "_run_version"),
            "{columns:?}"
        );
        let (s, plan) = app
            .call("GET", "/api/v1/data-items/huiyuan/migration", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "the change is still pending: {plan}");
        let (s, list) = app
            .call("GET", "/api/v1/records/huiyuan?limit=2&sort=xingming", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"][1]["jifen"], "10", "{list}");
        let (s, created) = app
            .call(
                "POST",
                "/api/v1/records/huiyuan",
                Some(json!({"xingming": "区家明", "jifen": "5"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        Ok(())
    })
    .await
}
