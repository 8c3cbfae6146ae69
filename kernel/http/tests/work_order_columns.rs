//! Work-order views (issue 13 §9): a service names the fields of its bound record a work
//! list shows, and each entry of `GET /work-items` carries them, labelled, in that order,
//! as the caller may see them. A column that is not a field of the subject is refused when
//! the service is saved, at its pointer.

mod common;

use axum::http::StatusCode;
use common::{each_backend, patient_def};
use serde_json::json;

#[tokio::test]
async fn a_work_list_shows_the_services_columns_of_the_bound_record() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        let nurse = app.user_with("xiaoli", &["records:huanzhe:read", "services:fuzhen:start"]).await?;
        let service = |columns: serde_json::Value| json!({
            "name": "fuzhen", "label": {"zh": "复诊"}, "subject": "huanzhe", "columns": columns,
            "steps": [{"name": "see", "kind": "human", "label": {"zh": "复诊接待"}, "operators": {"user": "xiaoli"}},
                      {"name": "end", "kind": "end"}],
            "transitions": [{"from": "see", "to": "end"}]});
        let (s, b) = app.call("POST", "/api/v1/services", Some(service(json!(["age", "xingmin", "age"])))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let details = b["error"]["details"].to_string();
        assert!(details.contains("/columns/1") && details.contains("did you mean 'xingming'") && details.contains("/columns/2"), "{b}");
        let (s, b) = app.call("POST", "/api/v1/services", Some(service(json!(["xingming", "age", "balance"])))).await?;
        assert!(s.is_success(), "{b}");
        let (s, b) = app.call("POST", "/api/v1/services/fuzhen/publish", None).await?;
        assert!(s.is_success(), "{b}");
        let (s, b) = app.call("POST", "/api/v1/processes", Some(json!({"service": "fuzhen",
            "record": {"item": "huanzhe", "fields": {"xingming": "曾丽", "age": 32, "balance": "1234.50"}}}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, list) = app.call_as(common::As::Bearer(&nurse), "GET", "/api/v1/work-items", None).await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        let columns = &list["items"][0]["columns"];
        assert_eq!(columns[0], json!({"name": "xingming", "label": {"zh": "姓名", "en": "Name"}, "value": "曾丽"}), "{list}");
        assert_eq!((columns[1]["name"].as_str(), &columns[1]["value"]), (Some("age"), &json!(32)), "{list}");
        assert_eq!(columns[2]["name"], "balance", "{list}");
        Ok(())
    })
    .await
}
