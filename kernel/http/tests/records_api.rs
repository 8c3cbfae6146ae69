//! Records over HTTP, on every backend: schema validation (422, nothing written),
//! optimistic concurrency (409), unique and reference checks, filters, sort, cursor and page
//! pagination, pinyin search, and the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::{TestApp, each_backend, patient_def};
use serde_json::{Value, json};

fn paths(body: &Value) -> BTreeSet<String> {
    body["error"]["details"]
        .as_array()
        .map_or_else(BTreeSet::new, |d| {
            d.iter()
                .map(|i| i["path"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
}

async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    app.define(patient_def()).await?;
    Ok(())
}

#[tokio::test]
async fn a_bad_write_gets_422_with_every_failing_path_and_writes_nothing() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (status, body) = app
            .call(
                "POST",
                "/api/v1/records/huanzhe",
                Some(json!({
                    "age": 200, "source": "电视", "balance": "12.345", "nickname": "x"
                })),
            )
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "validation_failed");
        let expected: BTreeSet<String> = ["/xingming", "/age", "/source", "/balance", "/nickname"]
            .map(String::from)
            .into();
        assert_eq!(paths(&body), expected, "{body}");
        assert_eq!(app.count_rows("huanzhe").await?, 0);

        // Not an object at all.
        let (status, _) = app
            .call("POST", "/api/v1/records/huanzhe", Some(json!([1, 2])))
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        // A patch is validated too and changes nothing.
        let rec = app
            .create("huanzhe", json!({"xingming": "张三", "age": 31}))
            .await?;
        let id = rec["id"].as_str().unwrap();
        let (status, body) = app
            .call(
                "PATCH",
                &format!("/api/v1/records/huanzhe/{id}"),
                Some(json!({"age": -1, "xingming": null})),
            )
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(paths(&body), ["/age", "/xingming"].map(String::from).into());
        let (_, same) = app
            .call("GET", &format!("/api/v1/records/huanzhe/{id}"), None)
            .await?;
        assert_eq!(same["age"], 31);
        assert_eq!(same["version"], 1);
        // Defaults are applied and money is exact.
        assert_eq!(rec["balance"], "0.00");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn stale_writes_get_409() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let rec = app
            .create("huanzhe", json!({"xingming": "李四", "age": 40}))
            .await?;
        let url = format!("/api/v1/records/huanzhe/{}", rec["id"].as_str().unwrap());
        let (status, first) = app
            .call("PATCH", &url, Some(json!({"version": 1, "age": 41})))
            .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first["version"], 2);
        // A second writer still holding version 1 is refused; the first change stands.
        let (status, body) = app
            .call("PATCH", &url, Some(json!({"version": 1, "age": 99})))
            .await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "version_conflict");
        assert_eq!(paths(&body), ["/version"].map(String::from).into());
        let (status, _) = app
            .call_with(
                "PATCH",
                &url,
                Some(json!({"age": 99})),
                &[("if-match", "\"1\"")],
            )
            .await?;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _) = app
            .call_with("DELETE", &url, None, &[("if-match", "1")])
            .await?;
        assert_eq!(status, StatusCode::CONFLICT);
        let (_, now) = app.call("GET", &url, None).await?;
        assert_eq!(now["age"], 41);
        let (status, ok) = app
            .call_with(
                "PATCH",
                &url,
                Some(json!({"age": 42})),
                &[("if-match", "\"2\"")],
            )
            .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ok["version"], 3);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unique_fields_and_references_are_enforced() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        app.create("huanzhe", json!({"xingming": "王芳", "record_no": "MR-1"})).await?;
        let (status, body) = app.call("POST", "/api/v1/records/huanzhe", Some(json!({"xingming": "王芳芳", "record_no": "MR-1"}))).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "unique_violation");
        assert_eq!(paths(&body), ["/record_no"].map(String::from).into());
        assert_eq!(app.count_rows("huanzhe").await?, 1);

        app.define(json!({"name": "room", "label": {"zh": "诊室"}, "fields": [{"name": "room_name", "label": {"zh": "名称"}, "type": "text"}]})).await?;
        app.define(json!({"name": "device", "label": {"zh": "设备"}, "fields": [
            {"name": "device_name", "label": {"zh": "名称"}, "type": "text"},
            {"name": "room", "label": {"zh": "所在诊室"}, "type": "reference", "target": "room"}]})).await?;
        let room = app.create("room", json!({"room_name": "激光一室"})).await?;
        let room_id = room["id"].as_str().unwrap();
        let ghost = "0190a6a4-0000-7000-8000-000000000000";
        let (status, body) = app.call("POST", "/api/v1/records/device", Some(json!({"device_name": "超声炮", "room": ghost}))).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(paths(&body), ["/room"].map(String::from).into());
        let (status, body) = app.call("POST", "/api/v1/records/device", Some(json!({"device_name": "超声炮", "room": "not-a-uuid"}))).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        app.create("device", json!({"device_name": "超声炮", "room": room_id})).await?;
        // A referenced record cannot be deleted.
        let (status, body) = app.call("DELETE", &format!("/api/v1/records/room/{room_id}"), None).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "referenced");
        assert_eq!(app.count_rows("room").await?, 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_things_get_404_and_bad_parameters_400() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        for path in [
            "/api/v1/records/nothing",
            "/api/v1/records/huanzhe/not-a-uuid",
            "/api/v1/records/huanzhe/0190a6a4-0000-7000-8000-000000000000",
            "/api/v1/data-items/nothing",
            "/api/v1/data-items/nothing/form",
        ] {
            let (status, body) = app.call("GET", path, None).await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert_eq!(body["error"]["code"], "not_found");
        }
        for query in [
            "limit=0",
            "limit=501",
            "page=0",
            "nosuch=1",
            "age__between=1",
            "age=old",
            "cursor=%%%",
            "sort=ghost",
            "page=1&cursor=W10",
        ] {
            let (status, body) = app
                .call("GET", &format!("/api/v1/records/huanzhe?{query}"), None)
                .await?;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            assert!(
                paths(&body).iter().all(|p| p.starts_with("/query/")),
                "{query}: {body}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn filters_sort_and_pinyin_search() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let people = [
            ("张三", 31, "小红书", "100.00"),
            ("张伟", 25, "微博", "20.50"),
            ("李四", 40, "朋友介绍", "0.00"),
            ("王芳", 35, "小红书", "8000.00"),
            ("赵雪", 22, "微博", "99.99"),
        ];
        for (name, age, source, balance) in people {
            app.create(
                "huanzhe",
                json!({"xingming": name, "age": age, "source": source, "balance": balance}),
            )
            .await?;
        }
        app.create("huanzhe", json!({"xingming": "无名氏"})).await?;
        let names = |body: &Value| -> Vec<String> {
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["xingming"].as_str().unwrap().to_owned())
                .collect()
        };
        let get = |q: &'static str| {
            let app = &app;
            async move {
                app.call("GET", &format!("/api/v1/records/huanzhe?{q}"), None)
                    .await
            }
        };
        let (_, b) = get("q=zs").await?;
        assert_eq!(names(&b), vec!["张三"]);
        let (_, b) = get("q=zhangsan").await?;
        assert_eq!(names(&b), vec!["张三"]);
        let (_, b) = get("q=%E5%BC%A0%E4%B8%89").await?;
        assert_eq!(names(&b), vec!["张三"]);
        let (_, b) = get("q=zhang&sort=age").await?;
        assert_eq!(names(&b), vec!["张伟", "张三"]);
        let (_, b) = get("age__gt=30&sort=-age").await?;
        assert_eq!(names(&b), vec!["李四", "王芳", "张三"]);
        let (_, b) = get("age__lte=25&sort=age").await?;
        assert_eq!(names(&b), vec!["赵雪", "张伟"]);
        let (_, b) =
            get("source__in=%E5%BE%AE%E5%8D%9A,%E6%9C%8B%E5%8F%8B%E4%BB%8B%E7%BB%8D&sort=age")
                .await?;
        assert_eq!(names(&b), vec!["赵雪", "张伟", "李四"]);
        let (_, b) = get("source__ne=%E5%BE%AE%E5%8D%9A&sort=age").await?;
        assert_eq!(
            names(&b),
            vec!["张三", "王芳", "李四", "无名氏"],
            "ne keeps records without a value"
        );
        let (_, b) = get("balance__gte=99.99&sort=-balance").await?;
        assert_eq!(
            names(&b),
            vec!["王芳", "张三", "赵雪"],
            "money compares exactly"
        );
        let (_, b) = get("age__null=true").await?;
        assert_eq!(names(&b), vec!["无名氏"]);
        let (_, b) = get("xingming__contains=%E5%BC%A0").await?;
        assert_eq!(b["total"], 2);
        let (_, b) = get("sort=age").await?;
        assert_eq!(
            names(&b).last().map(String::as_str),
            Some("无名氏"),
            "records without a value sort last ascending"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cursor_and_page_pagination_visit_every_record_once() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        for i in 0..23 {
            let age = if i % 5 == 0 {
                Value::Null
            } else {
                json!(i % 7)
            };
            app.create(
                "huanzhe",
                json!({"xingming": format!("患者{i}"), "age": age}),
            )
            .await?;
        }
        for sort in ["age", "-age", "xingming", "-created_at", "age,-xingming"] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut url = format!("/api/v1/records/huanzhe?limit=4&sort={sort}");
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let (status, body) = app.call("GET", &url, None).await?;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["total"], 23);
                seen.extend(
                    body["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["id"].as_str().unwrap().to_owned()),
                );
                pages += 1;
                match body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
                assert!(pages < 10, "pagination does not end");
            }
            let unique: BTreeSet<_> = seen.iter().collect();
            assert_eq!(seen.len(), 23, "sort {sort}: {} records seen", seen.len());
            assert_eq!(unique.len(), 23, "sort {sort}: a record was seen twice");
            // The cursor walk gives the same order as one big page.
            let (_, all) = app
                .call(
                    "GET",
                    &format!("/api/v1/records/huanzhe?limit=100&sort={sort}"),
                    None,
                )
                .await?;
            let order: Vec<String> = all["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(seen, order, "sort {sort}");
        }
        let (_, p3) = app
            .call(
                "GET",
                "/api/v1/records/huanzhe?limit=10&page=3&sort=xingming",
                None,
            )
            .await?;
        assert_eq!(p3["items"].as_array().unwrap().len(), 3);
        assert_eq!(p3["next_cursor"], Value::Null);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn every_write_leaves_an_audit_trail() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let rec = app
            .create("huanzhe", json!({"xingming": "陈静", "age": 28}))
            .await?;
        let url = format!("/api/v1/records/huanzhe/{}", rec["id"].as_str().unwrap());
        app.call("PATCH", &url, Some(json!({"age": 29, "source": "微博"})))
            .await?;
        app.call("DELETE", &url, None).await?;
        let (status, history) = app.call("GET", &format!("{url}/history"), None).await?;
        assert_eq!(status, StatusCode::OK);
        let actions: Vec<&str> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, vec!["create", "update", "delete"]);
        assert_eq!(
            history["items"][1]["changes"]["age"],
            json!({"from": 28, "to": 29})
        );
        let (status, _) = app.call("GET", &url, None).await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn failed_writes_leave_no_transaction_open() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        app.create("huanzhe", json!({"xingming": "周杰", "record_no": "MR-9"}))
            .await?;
        // More failures than the pool has connections: a connection handed back with an open
        // transaction would hold the write lock and every later write would time out.
        for _ in 0..20 {
            let (status, _) = app
                .call(
                    "POST",
                    "/api/v1/records/huanzhe",
                    Some(json!({"xingming": "重复", "record_no": "MR-9"})),
                )
                .await?;
            assert_eq!(status, StatusCode::CONFLICT);
        }
        for i in 0..10 {
            app.create(
                "huanzhe",
                json!({"xingming": format!("新患者{i}"), "record_no": format!("MR-1{i}")}),
            )
            .await?;
        }
        assert_eq!(app.count_rows("huanzhe").await?, 11);
        let (_, list) = app
            .call("GET", "/api/v1/records/huanzhe?record_no=MR-9", None)
            .await?;
        assert_eq!(list["items"][0]["xingming"], "周杰");
        Ok(())
    })
    .await
}
