//! Stored, re-orderable menus (issue 13 §9), on both databases: an analyst arranges the
//! menu into sections of their own (前台 with 请假申请 relabelled and 患者, then the to-do
//! list), and every caller's menu follows that order, filtered by their grants, with what
//! the layout does not place following in the generated sections. A layout naming what
//! does not exist, or placing an entry twice, is refused at its pointer; resetting it gives
//! the generated menu back.

mod common;

use axum::http::StatusCode;
use common::{As, each_backend, patient_def};
use serde_json::{Value, json};

/// Per section, its key and its entries' names (labels where asked).
fn outline(menu: &Value) -> Vec<(String, Vec<String>)> {
    menu["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["key"].as_str().unwrap_or_default().to_owned(),
                s["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn own(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

#[tokio::test]
async fn a_stored_layout_orders_every_callers_menu_within_their_grants() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        app.define(json!({"label": {"zh": "过敏史"}, "fields": [{"label": {"zh": "过敏原"}, "type": "text"}]})).await?;
        let leave: Value = serde_json::from_str(include_str!("../../../seeds/clinic/leave.json"))?;
        app.define(leave["data_item"].clone()).await?;
        for role in leave["roles"].as_array().into_iter().flatten() {
            let (s, b) = app.call("POST", "/api/v1/roles", Some(role.clone())).await?;
            assert!(s.is_success(), "{b}");
        }
        let (s, b) = app.call("POST", "/api/v1/services", Some(leave["service"].clone())).await?;
        assert!(s.is_success(), "{b}");
        let (s, b) = app.call("POST", "/api/v1/services/leave/publish", None).await?;
        assert!(s.is_success(), "{b}");

        let (s, none) = app.call("GET", "/api/v1/menus/layout", None).await?;
        assert_eq!(s, StatusCode::OK, "{none}");
        assert_eq!(none["stored"], false, "{none}");

        let layout = json!({"sections": [
            {"key": "qiantai", "label": {"zh": "前台", "en": "Front desk"}, "items": [
                {"kind": "service", "name": "leave", "label": {"zh": "我要请假"}},
                {"kind": "records", "name": "huanzhe"},
                {"kind": "tasks", "name": "todo"}
            ]}
        ]});
        let (s, b) = app.call("PUT", "/api/v1/menus/layout", Some(layout.clone())).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (_, stored) = app.call("GET", "/api/v1/menus/layout", None).await?;
        assert_eq!((stored["stored"].clone(), stored["layout"].clone()), (json!(true), layout), "{stored}");

        let (s, all) = app.call("GET", "/api/v1/menus", None).await?;
        assert_eq!(s, StatusCode::OK, "{all}");
        assert_eq!(outline(&all), own(&[
            ("qiantai", &["leave", "huanzhe", "todo"]),
            ("work", &["handled", "created"]),
            ("records", &["guominshi", "qingjia"]),
        ]), "{all}");
        assert_eq!(all["items"][0]["items"][0]["label"]["zh"], "我要请假", "{all}");
        assert_eq!(all["items"][0]["items"][0]["path"], "/api/v1/services/leave", "{all}");

        // A nurse who may read patients only: the layout's section keeps what she may open.
        let nurse = app.user_with("hushi_wang", &["records:huanzhe:read"]).await?;
        let (s, mine) = app.call_as(As::Bearer(&nurse), "GET", "/api/v1/menus", None).await?;
        assert_eq!(s, StatusCode::OK, "{mine}");
        assert_eq!(outline(&mine), own(&[("qiantai", &["huanzhe", "todo"]), ("work", &["handled", "created"])]), "{mine}");
        // Only an analyst arranges the menu.
        let (s, b) = app.call_as(As::Bearer(&nurse), "PUT", "/api/v1/menus/layout", Some(json!({"sections": []}))).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

        // What does not exist, what is placed twice, a bad key: 422 at the pointer, and the
        // stored layout stays.
        let bad = json!({"sections": [
            {"key": "qiantai", "label": {"zh": "前台"}, "items": [
                {"kind": "service", "name": "leeve"},
                {"kind": "records", "name": "huanzhe"},
                {"kind": "records", "name": "huanzhe"},
                {"kind": "tasks", "name": "inbox"}
            ]},
            {"key": "Bad Key", "label": {"zh": "坏"}, "items": []},
            {"key": "x", "label": {"zh": "未知"}, "items": [{"kind": "report", "name": "r"}]}
        ]});
        let (s, b) = app.call("PUT", "/api/v1/menus/layout", Some(bad)).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let problems: Vec<(String, String)> = b["error"]["details"].as_array().into_iter().flatten()
            .map(|d| (d["path"].as_str().unwrap_or_default().to_owned(), d["message"].as_str().unwrap_or_default().to_owned())).collect();
        let at = |path: &str, says: &str| problems.iter().any(|(p, m)| p == path && m.contains(says));
        assert!(at("/sections/2/items/0/kind", "unknown variant"), "{b}");
        let (s, b) = app.call("PUT", "/api/v1/menus/layout", Some(json!({"sections": [
            {"key": "qiantai", "label": {"zh": "前台"}, "items": [
                {"kind": "service", "name": "leeve"},
                {"kind": "records", "name": "huanzhe"},
                {"kind": "records", "name": "huanzhe"},
                {"kind": "tasks", "name": "inbox"}
            ]},
            {"key": "Bad Key", "label": {"zh": "坏"}, "items": []}
        ]}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let problems: Vec<(String, String)> = b["error"]["details"].as_array().into_iter().flatten()
            .map(|d| (d["path"].as_str().unwrap_or_default().to_owned(), d["message"].as_str().unwrap_or_default().to_owned())).collect();
        let at = |path: &str, says: &str| problems.iter().any(|(p, m)| p == path && m.contains(says));
        assert!(at("/sections/0/items/0/name", "did you mean 'leave'"), "{b}");
        assert!(at("/sections/0/items/2/name", "already placed"), "{b}");
        assert!(at("/sections/0/items/3/name", "no work list named 'inbox'"), "{b}");
        assert!(at("/sections/1/key", "not an identifier"), "{b}");
        let (_, still) = app.call("GET", "/api/v1/menus/layout", None).await?;
        assert_eq!(still["stored"], true, "{still}");

        // Reset: generated again.
        let (s, _) = app.call("DELETE", "/api/v1/menus/layout", None).await?;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, all) = app.call("GET", "/api/v1/menus", None).await?;
        assert_eq!(outline(&all)[0].0, "work", "{all}");
        Ok(())
    })
    .await
}
