//! Patients found by the initials of their names read as names (issue 13): 曾丽 is `zl`,
//! not `cl`; 单雪 `sx`, 解晓东 `xxd`, 仇敏 `qm`, 区家明 `ojm`, 查小欣 `zxx`. Before, the
//! search keys took each character's common reading and the front desk found none of them.
//! On every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{each_backend, patient_def};
use serde_json::json;

#[tokio::test]
async fn the_six_surnames_are_found_by_their_initials() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        let names = [
            ("曾丽", "zl"),
            ("单雪", "sx"),
            ("解晓东", "xxd"),
            ("仇敏", "qm"),
            ("区家明", "ojm"),
            ("查小欣", "zxx"),
        ];
        for (name, _) in names {
            app.create("huanzhe", json!({"xingming": name})).await?;
        }
        // Another patient, found by none of the six.
        app.create("huanzhe", json!({"xingming": "张三"})).await?;
        for (name, initials) in names {
            let (s, page) = app
                .call(
                    "GET",
                    &format!("/api/v1/records/huanzhe?q={initials}"),
                    None,
                )
                .await?;
            assert_eq!(s, StatusCode::OK, "{page}");
            let found: Vec<&str> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["xingming"].as_str())
                .collect();
            assert_eq!(found, vec![name], "q={initials}");
        }
        // The full reading finds her too, and the common one still does.
        for q in ["zengli", "cengli"] {
            let (_, page) = app
                .call("GET", &format!("/api/v1/records/huanzhe?q={q}"), None)
                .await?;
            assert_eq!(page["items"][0]["xingming"], "曾丽", "q={q}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn documents_built_by_older_search_keys_are_rebuilt_once_at_start() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        app.create("huanzhe", json!({"xingming": "曾丽"})).await?;
        // As an older erpos left them: the common reading only, and no version noted.
        for statement in [
            "UPDATE rec_huanzhe SET _search = '曾丽 cengli cl'",
            "DELETE FROM kernel_state",
        ] {
            let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
            sql.push(statement);
            app.kernel.db.write_atomically(vec![sql]).await?;
        }
        let (_, before) = app
            .call("GET", "/api/v1/records/huanzhe?q=zl", None)
            .await?;
        assert_eq!(
            before["items"].as_array().map(Vec::len),
            Some(0),
            "{before}"
        );
        let app = app.restart().await?;
        let (_, after) = app
            .call("GET", "/api/v1/records/huanzhe?q=zl", None)
            .await?;
        assert_eq!(after["items"][0]["xingming"], "曾丽", "{after}");
        Ok(())
    })
    .await
}

/// Phone numbers and identifiers marked searchable are found by any part of them: the front
/// desk types the last four digits of a phone, or a record number as the patient reads it.
#[tokio::test]
async fn phones_and_identifiers_are_found_by_any_part() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(json!({"name": "laike", "label": {"zh": "来客"}, "fields": [
            {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true},
            {"name": "dianhua", "label": {"zh": "电话"}, "type": "text", "searchable": true},
            {"name": "bingli", "label": {"zh": "病历号"}, "type": "text", "searchable": true}]}))
            .await?;
        app.create(
            "laike",
            json!({"xingming": "仇敏", "dianhua": "13812345678", "bingli": "P-00012"}),
        )
        .await?;
        app.create(
            "laike",
            json!({"xingming": "区家明", "dianhua": "+86 139 0000 1111", "bingli": "P-00013"}),
        )
        .await?;
        for (q, who) in [
            ("5678", "仇敏"),
            ("138123", "仇敏"),
            ("1111", "区家明"),
            ("p-00012", "仇敏"),
            ("P-00013", "区家明"),
        ] {
            let (s, b) = app
                .call(
                    "GET",
                    &format!("/api/v1/records/laike?q={}", q.replace('+', "%2B")),
                    None,
                )
                .await?;
            assert_eq!(s, StatusCode::OK, "{b}");
            let found: Vec<&str> = b["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["xingming"].as_str())
                .collect();
            assert_eq!(found, [who], "q={q}: {b}");
        }
        Ok(())
    })
    .await
}
