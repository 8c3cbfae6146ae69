//! The caller's menu (issue 13 §9): generated from the definitions, filtered by grants. An
//! administrator sees every service and DataItem; 护士小王, who may read patients and start
//! leave requests, sees her work lists, 请假申请 and 患者, and nothing else. On every
//! backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{As, each_backend, patient_def};
use serde_json::{Value, json};

fn names(menu: &Value, key: &str) -> Vec<String> {
    menu["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .map(|s| {
            s["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn each_caller_sees_what_their_grants_open() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        app.define(json!({"label": {"zh": "过敏史"}, "fields": [{"label": {"zh": "过敏原"}, "type": "text"}]}))
            .await?;
        let leave: Value =
            serde_json::from_str(include_str!("../../../seeds/clinic/leave.json"))?;
        app.define(leave["data_item"].clone()).await?;
        // The roles the service's steps pick their approvers by.
        for role in leave["roles"].as_array().into_iter().flatten() {
            let (s, b) = app.call("POST", "/api/v1/roles", Some(role.clone())).await?;
            assert!(s.is_success(), "{b}");
        }
        for service in [leave["service"].clone()] {
            let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
            assert!(s.is_success(), "{b}");
        }
        let (s, b) = app.call("POST", "/api/v1/services/leave/publish", None).await?;
        assert!(s.is_success(), "{b}");

        let (s, all) = app.call("GET", "/api/v1/menus", None).await?;
        assert_eq!(s, StatusCode::OK, "{all}");
        assert_eq!(names(&all, "work"), ["todo", "handled", "created"]);
        assert_eq!(names(&all, "start"), ["leave"]);
        assert_eq!(names(&all, "records"), ["guominshi", "huanzhe", "qingjia"]);

        let nurse = app
            .user_with("hushi_wang", &["records:huanzhe:read", "services:leave:start"])
            .await?;
        let (s, mine) = app
            .call_as(As::Bearer(&nurse), "GET", "/api/v1/menus", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{mine}");
        assert_eq!(names(&mine, "start"), ["leave"]);
        assert_eq!(names(&mine, "records"), ["huanzhe"], "{mine}");
        let section = mine["items"].as_array().unwrap().iter().find(|s| s["key"] == "records").unwrap();
        assert_eq!(section["items"][0]["label"]["zh"], "患者");
        assert_eq!(section["items"][0]["path"], "/api/v1/records/huanzhe");

        // Someone with no grants still has their work lists, and only those.
        let cleaner = app.user_with("baojie_li", &[]).await?;
        let (_, bare) = app
            .call_as(As::Bearer(&cleaner), "GET", "/api/v1/menus", None)
            .await?;
        let keys: Vec<&str> = bare["items"].as_array().unwrap().iter().filter_map(|s| s["key"].as_str()).collect();
        assert_eq!(keys, ["work"], "{bare}");
        // Without credentials: 401.
        let (s, _) = app.call_as(As::Nobody, "GET", "/api/v1/menus", None).await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        Ok(())
    })
    .await
}
