//! Records numbered by a series (issue 13 §8): a patient's 病历号 comes from the kernel —
//! P-00001, P-00002, … — counted in the transaction that creates the record, so 50
//! receptionists creating patients at once get 50 different numbers with no gap, and
//! nobody invents one by hand. On every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::each_backend;
use serde_json::{Value, json};

fn numbered_patient() -> Value {
    json!({
        "label": {"zh": "患者", "en": "Patient"},
        "fields": [
            {"label": {"zh": "姓名"}, "type": "text", "required": true, "searchable": true},
            {"name": "record_no", "label": {"zh": "病历号"}, "type": "text", "required": true,
             "unique": true, "series": {"prefix": "P", "date": false, "digits": 5}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_patients_created_at_once_get_fifty_numbers_without_a_gap() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(numbered_patient()).await?;
        // The form shows the number but does not ask for it.
        let (s, form) = app.call("GET", "/api/v1/data-items/huanzhe/form", None).await?;
        assert_eq!(s, StatusCode::OK, "{form}");
        let schema = &form["schema"];
        assert_eq!(schema["required"], json!(["xingming"]), "{schema}");
        assert_eq!(schema["properties"]["record_no"]["readOnly"], true, "{schema}");
        let names: Vec<String> = (0..50).map(|i| format!("患者{i:02}")).collect();
        let created = futures_util::future::join_all(
            names
                .iter()
                .map(|n| app.call("POST", "/api/v1/records/huanzhe", Some(json!({"xingming": n})))),
        )
        .await;
        let mut numbers = BTreeSet::new();
        for answer in created {
            let (s, r) = answer?;
            assert_eq!(s, StatusCode::CREATED, "{r}");
            numbers.insert(r["record_no"].as_str().unwrap().to_owned());
        }
        let want: BTreeSet<String> = (1..=50).map(|n| format!("P-{n:05}")).collect();
        assert_eq!(numbers, want, "50 different numbers, none missing");

        // A caller cannot choose one, nor change one; sending it back unchanged is fine.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/records/huanzhe",
                Some(json!({"xingming": "曾丽", "record_no": "P-99999"})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/record_no", "{b}");
        assert_eq!(app.count_rows("huanzhe").await?, 50, "nothing stored");
        let (_, first) = app
            .call("GET", "/api/v1/records/huanzhe?record_no=P-00001", None)
            .await?;
        let first = first["items"][0].clone();
        let id = first["id"].as_str().unwrap();
        let (s, b) = app
            .call(
                "PATCH",
                &format!("/api/v1/records/huanzhe/{id}"),
                Some(json!({"record_no": "P-00002", "version": first["version"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, b) = app
            .call(
                "PATCH",
                &format!("/api/v1/records/huanzhe/{id}"),
                Some(json!({"record_no": "P-00001", "xingming": "曾丽", "version": first["version"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");

        // A creation that fails gives its number back: the next one is P-00051.
        let (s, _) = app
            .call("POST", "/api/v1/records/huanzhe", Some(json!({"xingming": null})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, r) = app
            .call("POST", "/api/v1/records/huanzhe", Some(json!({"xingming": "单雪"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        assert_eq!(r["record_no"], "P-00051");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_series_on_a_field_that_cannot_carry_one_is_refused() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/data-items",
                Some(json!({
                    "label": {"zh": "患者"},
                    "fields": [
                        {"label": {"zh": "年龄"}, "type": "integer", "series": {"prefix": "P"}},
                        {"label": {"zh": "病历号"}, "type": "text", "default": "P-1",
                         "series": {"prefix": "p", "digits": 12}}
                    ]
                })),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<&str> = b["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["path"].as_str())
            .collect();
        for want in [
            "/fields/0/series",
            "/fields/1/default",
            "/fields/1/series/prefix",
            "/fields/1/series/digits",
        ] {
            assert!(paths.contains(&want), "{want} missing in {b}");
        }
        Ok(())
    })
    .await
}
