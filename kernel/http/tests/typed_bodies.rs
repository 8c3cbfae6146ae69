//! A misspelled key is an error, never nothing (issue 12, first slice): each definition
//! kind and each organisation body posted with one misspelled key gets a 422 naming that
//! key, and nothing is stored. Before, `POST /users` with `"skils": ["laser"]` answered
//! 201 with a user who had no skills, and resources and resource types likewise.

mod common;

use axum::http::StatusCode;
use common::each_backend;
use serde_json::{Value, json};

/// What a list answers, to compare before and after a refused write.
async fn listing(app: &common::TestApp, path: &str) -> anyhow::Result<Value> {
    let (s, b) = app.call("GET", path, None).await?;
    anyhow::ensure!(s == StatusCode::OK, "{path}: {s} {b}");
    Ok(b)
}

#[tokio::test]
async fn every_definition_and_organisation_body_refuses_a_misspelled_key() -> anyhow::Result<()> {
    each_backend(|app| async move {
        // What the bodies refer to.
        for (path, body) in [
            ("/api/v1/resource-types", json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}})),
            ("/api/v1/skills", json!({"name": "laser", "label": {"zh": "激光治疗"}})),
            ("/api/v1/roles", json!({"name": "doctor", "label": {"zh": "医生"}, "permissions": []})),
        ] {
            let (s, b) = app.call("POST", path, Some(body)).await?;
            anyhow::ensure!(s.is_success(), "{path}: {b}");
        }
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            ("/api/v1/users", "/api/v1/users",
             json!({"id": "dr_li", "name": "李医生", "roles": ["doctor"], "skils": ["laser"]}), "skils"),
            ("/api/v1/resources", "/api/v1/resources",
             json!({"id": "laser-room-1", "type": "laser_room", "capacity": 1, "skils": ["laser"]}), "skils"),
            ("/api/v1/resource-types", "/api/v1/resource-types",
             json!({"name": "rf_device", "knid": "equipment", "kind": "equipment", "label": {"zh": "射频仪"}}), "knid"),
            ("/api/v1/roles", "/api/v1/roles",
             json!({"name": "nurse", "label": {"zh": "护士"}, "permisions": []}), "permisions"),
            ("/api/v1/departments", "/api/v1/departments",
             json!({"name": "pifuke", "label": {"zh": "皮肤科"}, "parnet": "clinic"}), "parnet"),
            ("/api/v1/skills", "/api/v1/skills",
             json!({"name": "injection", "label": {"zh": "注射"}, "certifcation": true}), "certifcation"),
            ("/api/v1/calendars", "/api/v1/calendars",
             json!({"name": "day", "label": {"zh": "白班"}, "utc_offset_minutes": 480,
                    "weekly": {"mon": [["09:00", "18:00"]]}, "holidayz": []}), "holidayz"),
            ("/api/v1/data-items", "/api/v1/data-items",
             json!({"label": {"zh": "患者"}, "feilds": []}), "feilds"),
            ("/api/v1/services", "/api/v1/services",
             json!({"name": "follow_up", "label": {"zh": "术后回访"}, "stpes": [],
                    "steps": [{"name": "call", "kind": "human"}, {"name": "end", "kind": "end"}],
                    "transitions": [{"from": "call", "to": "end"}]}), "stpes"),
            ("/api/v1/rules", "/api/v1/rules",
             json!({"name": "welcome", "label": {"zh": "欢迎"}, "evnet": {"kind": "signal", "name": "x"},
                    "event": {"kind": "signal", "name": "x"}, "instructions": []}), "evnet"),
        ];
        let mut failures = Vec::new();
        for (post, list, body, key) in cases {
            let before = listing(&app, list).await?;
            let (s, b) = app.call("POST", post, Some(body)).await?;
            let named = b["error"]["details"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["path"].as_str().is_some_and(|p| p.ends_with(&format!("/{key}"))));
            if s != StatusCode::UNPROCESSABLE_ENTITY || !named {
                failures.push(format!("POST {post} with '{key}': {s} {b}"));
            }
            if listing(&app, list).await? != before {
                failures.push(format!("POST {post} with '{key}' stored something"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_api_description_is_public_and_describes_processes() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, doc) = app
            .call_as(common::As::Nobody, "GET", "/api/v1/openapi.json", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{doc}");
        assert!(doc["paths"]["/api/v1/processes"].is_object(), "{doc}");
        let about = doc["info"]["description"].as_str().unwrap_or_default();
        assert!(
            about.contains("processes") && !about.contains("(soon)"),
            "{about}"
        );
        // Everything else still needs credentials.
        let (s, _) = app
            .call_as(common::As::Nobody, "GET", "/api/v1/data-items", None)
            .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        Ok(())
    })
    .await
}
