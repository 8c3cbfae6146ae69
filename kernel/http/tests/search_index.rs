//! Search by an index (issue 13 §7), on both databases: every write keeps a record's search
//! grams (every suffix of every word of its search document) in `record_search_grams`, so a
//! search for 曾丽's initials is a range of that index rather than a scan of every record;
//! a renamed patient is found by the new name only, a deleted one not at all, and a long
//! searchable note (more grams than a record stores) is still found, checked against its
//! document. Before, every search was `LIKE '%…%'` over the whole table.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::json;

async fn found(app: &TestApp, q: &str) -> anyhow::Result<Vec<String>> {
    let (s, b) = app
        .call(
            "GET",
            &format!("/api/v1/records/huanzhe?q={}", urlencode(q)),
            None,
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    Ok(b["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["xingming"].as_str().map(str::to_owned))
        .collect())
}

fn urlencode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn grams(app: &TestApp, id: &str) -> anyhow::Result<Vec<String>> {
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("SELECT gram FROM record_search_grams WHERE item = 'huanzhe' AND id = ")
        .text(id)
        .push(" ORDER BY gram");
    Ok(app
        .kernel
        .db
        .fetch(sql)
        .await?
        .into_iter()
        .filter_map(|r| r.first().cloned().flatten())
        .collect())
}

#[tokio::test]
async fn every_write_keeps_the_search_grams_and_searches_use_them() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(
            json!({"name": "huanzhe", "label": {"zh": "患者"}, "fields": [
                {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true},
                {"name": "shouji", "label": {"zh": "手机"}, "type": "text", "searchable": true},
                {"name": "beizhu", "label": {"zh": "备注"}, "type": "text", "searchable": true}
            ]}),
        )
        .await?;
        let zeng = app
            .create(
                "huanzhe",
                json!({"xingming": "曾丽", "shouji": "13800138000"}),
            )
            .await?;
        app.create(
            "huanzhe",
            json!({"xingming": "张林", "shouji": "13900139111"}),
        )
        .await?;
        let id = zeng["id"].as_str().unwrap_or_default().to_owned();
        let g = grams(&app, &id).await?;
        for gram in ["zl", "zengli", "li", "曾丽", "丽", "8000", "13800138000"] {
            assert!(g.iter().any(|x| x == gram), "{gram} in {g:?}");
        }
        assert_eq!(found(&app, "zl").await?.len(), 2, "曾丽 and 张林");
        assert_eq!(found(&app, "zengli").await?, ["曾丽"]);
        assert_eq!(found(&app, "8000").await?, ["曾丽"]);
        assert_eq!(
            found(&app, "zl 8000").await?,
            ["曾丽"],
            "every word must be found"
        );
        assert_eq!(found(&app, "qqq").await?, Vec::<String>::new());

        // Renamed: found by the new name only.
        let (s, b) = app
            .call(
                "PATCH",
                &format!("/api/v1/records/huanzhe/{id}"),
                Some(json!({"xingming": "单雪"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(found(&app, "sx").await?, ["单雪"]);
        assert_eq!(found(&app, "zengli").await?, Vec::<String>::new());
        assert!(!grams(&app, &id).await?.iter().any(|g| g == "zengli"));

        // A note with more words than a record keeps grams for: still found.
        let note: String =
            (0..400).map(|i| format!("第{i}次 ")).collect::<String>() + "光子嫩肤 复诊";
        let long = app
            .create("huanzhe", json!({"xingming": "解晓东", "beizhu": note}))
            .await?;
        let long_id = long["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            grams(&app, &long_id).await?,
            [" "],
            "an overflowing document keeps one marker"
        );
        assert_eq!(found(&app, "复诊").await?, ["解晓东"]);
        assert_eq!(found(&app, "xxd").await?, ["解晓东"]);

        // Deleted: its grams go with it.
        let (s, _) = app
            .call("DELETE", &format!("/api/v1/records/huanzhe/{id}"), None)
            .await?;
        assert!(s.is_success());
        assert!(grams(&app, &id).await?.is_empty());
        assert_eq!(found(&app, "sx").await?, Vec::<String>::new());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_restart_rebuilds_the_grams_of_records_written_before_they_existed() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        app.define(
            json!({"name": "huanzhe", "label": {"zh": "患者"}, "fields": [
                {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true}
            ]}),
        )
        .await?;
        let r = app.create("huanzhe", json!({"xingming": "仇敏"})).await?;
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        // As a database from before the grams: none stored, an older search-keys version.
        let d = app.kernel.db.dialect();
        let mut forget = erpos_kernel::sql::Sql::new(d);
        forget.push("DELETE FROM record_search_grams");
        let mut older = erpos_kernel::sql::Sql::new(d);
        older.push("UPDATE kernel_state SET value = '3' WHERE name = 'search_keys_version'");
        app.kernel.db.write_atomically(vec![forget, older]).await?;
        let app = app.restart().await?;
        assert!(
            grams(&app, &id).await?.iter().any(|g| g == "qm"),
            "仇 reads qiu: qm"
        );
        assert_eq!(found(&app, "qm").await?, ["仇敏"]);
        Ok(())
    })
    .await
}
