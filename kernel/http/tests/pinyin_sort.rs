//! A list sorted by a name is in pinyin order (issue 13 §7), the same on both databases,
//! surnames read as surnames (曾 zeng, 单 shan, 解 xie), page after page, after edits and
//! deletions, and for records stored before the keys existed. Before, `sort=xingming` was
//! code-point order: 单雪 before 张三 before 曾丽 before 李四, by the characters' numbers.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend, patient_def};
use serde_json::{Value, json};

const PINYIN_ORDER: [&str; 9] = [
    "阿花",
    "李四",
    "梁晓",
    "单雪",
    "王五",
    "解晓东",
    "曾丽",
    "张三",
    "赵六",
];

async fn names(app: &TestApp, query: &str) -> anyhow::Result<(Vec<String>, Value)> {
    let (s, b) = app
        .call("GET", &format!("/api/v1/records/huanzhe?{query}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{b}");
    let names = b["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["xingming"].as_str().map(str::to_owned))
        .collect();
    Ok((names, b))
}

/// Every name, page by page (`limit` each), following the cursors.
async fn paged(app: &TestApp, sort: &str, limit: usize) -> anyhow::Result<Vec<String>> {
    let mut all = Vec::new();
    let (mut page, mut body) = names(app, &format!("sort={sort}&limit={limit}")).await?;
    loop {
        all.append(&mut page);
        let Some(cursor) = body["next_cursor"].as_str() else {
            break;
        };
        let cursor = cursor
            .replace('%', "%25")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        (page, body) = names(app, &format!("sort={sort}&limit={limit}&cursor={cursor}")).await?;
    }
    Ok(all)
}

#[tokio::test]
async fn a_name_sorted_list_is_in_pinyin_order_page_after_page() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        let mut ids = std::collections::BTreeMap::new();
        for name in [
            "张三",
            "曾丽",
            "赵六",
            "单雪",
            "阿花",
            "解晓东",
            "王五",
            "梁晓",
            "李四",
        ] {
            let r = app.create("huanzhe", json!({"xingming": name})).await?;
            ids.insert(name, r["id"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(names(&app, "sort=xingming").await?.0, PINYIN_ORDER);
        let mut reversed = PINYIN_ORDER.to_vec();
        reversed.reverse();
        assert_eq!(names(&app, "sort=-xingming").await?.0, reversed);
        for limit in [1, 2, 4] {
            assert_eq!(
                paged(&app, "xingming", limit).await?,
                PINYIN_ORDER,
                "pages of {limit}"
            );
            assert_eq!(
                paged(&app, "-xingming", limit).await?,
                reversed,
                "pages of {limit}, descending"
            );
        }
        // Renamed and removed records take their new place.
        let (s, b) = app
            .call(
                "PATCH",
                &format!("/api/v1/records/huanzhe/{}", ids["赵六"]),
                Some(json!({"xingming": "艾米"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app
            .call(
                "DELETE",
                &format!("/api/v1/records/huanzhe/{}", ids["王五"]),
                None,
            )
            .await?;
        assert!(s.is_success(), "{b}");
        assert_eq!(
            names(&app, "sort=xingming").await?.0,
            [
                "阿花",
                "艾米",
                "李四",
                "梁晓",
                "单雪",
                "解晓东",
                "曾丽",
                "张三"
            ]
        );
        // Filters and search combine with it.
        assert_eq!(
            names(&app, "sort=xingming&q=x").await?.0,
            ["梁晓", "单雪", "解晓东"]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn records_stored_before_the_sort_keys_get_them_at_start() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        for name in ["张三", "曾丽", "单雪", "阿花"] {
            app.create("huanzhe", json!({"xingming": name})).await?;
        }
        // As an older erpos left them: no sort keys, an older search-keys version noted.
        for statement in ["DELETE FROM record_sort_keys", "DELETE FROM kernel_state"] {
            let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
            sql.push(statement);
            app.kernel.db.write_atomically(vec![sql]).await?;
        }
        let app = app.restart().await?;
        assert_eq!(
            names(&app, "sort=xingming").await?.0,
            ["阿花", "单雪", "曾丽", "张三"]
        );
        Ok(())
    })
    .await
}
