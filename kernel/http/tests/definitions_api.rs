//! DataItem definitions over HTTP, on every backend: validation errors that name the path,
//! tables really created, pinyin identifiers, inheritance, composition, and migrations that
//! add, retype and remove fields without losing data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{each_backend, patient_def};
use serde_json::{Value, json};

fn paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map_or_else(Vec::new, |d| {
            d.iter()
                .map(|i| i["path"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
}

#[tokio::test]
async fn invalid_definitions_are_refused_naming_the_path() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(json!({"name": "room", "label": {"zh": "诊室"}, "fields": [{"name": "room_name", "label": {"zh": "名称"}, "type": "text"}]})).await?;
        let cases = [
            (json!({"label": {"zh": "患者"}, "fields": [{"label": {"zh": "年龄"}, "type": "strin"}]}), "/fields/0/type"),
            (json!({"label": {"zh": "患者"}, "fields": [
                {"name": "age", "label": {"zh": "年龄"}, "type": "integer"},
                {"name": "age", "label": {"zh": "岁数"}, "type": "integer"}]}), "/fields/1/name"),
            (json!({"label": {"zh": "设备"}, "fields": [{"name": "room", "label": {"zh": "诊室"}, "type": "reference", "target": "nowhere"}]}), "/fields/0/target"),
            (json!({"label": {"zh": "设备"}, "extends": "ghost", "fields": []}), "/extends"),
            (json!({"label": {"zh": "患者"}, "fields": [{"name": "source", "label": {"zh": "来源"}, "type": "enum"}]}), "/fields/0/options"),
            (json!({"label": {"zh": "患者"}, "fields": [{"name": "age", "label": {"zh": "年龄"}, "type": "integer", "min": 10, "max": 1}]}), "/fields/0/min"),
            (json!({"label": {"zh": "患者"}, "fields": [{"name": "Bad Name", "label": {"zh": "年龄"}, "type": "integer"}]}), "/fields/0/name"),
            (json!({"label": {"zh": "患者"}, "fields": [{"name": "version", "label": {"zh": "版本"}, "type": "integer"}]}), "/fields/0/name"),
            (json!({"label": {"zh": "患者"}, "fields": [{"name": "age", "label": {"zh": "年龄"}, "type": "integer", "default": "old"}]}), "/fields/0/default"),
            (json!({"label": {"zh": "患者"}, "fields": [{"name": "phone", "label": {"zh": "手机"}, "type": "text", "pattern": "([a-"}]}), "/fields/0/pattern"),
            (json!({"label": {"zh": "患者"}, "fields": [], "colour": "red"}), "/colour"),
            (json!({"label": {"zh": "患者"}, "consists": [{"item": "nothing", "cardinality": "many"}]}), "/consists/0/item"),
        ];
        for (def, path) in cases {
            let (status, body) = app.call("POST", "/api/v1/data-items", Some(def.clone())).await?;
            anyhow::ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{def} gave {status} {body}");
            assert_eq!(body["error"]["code"], "invalid_definition");
            assert!(paths(&body).iter().any(|p| p == path), "{def}: expected {path}, got {body}");
        }
        // Nothing was created by any refused definition.
        let (_, list) = app.call("GET", "/api/v1/data-items", None).await?;
        assert_eq!(list["total"], 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn inheritance_cycles_are_refused() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(json!({"name": "person", "label": {"zh": "人员"}, "fields": [{"label": {"zh": "姓名"}, "type": "text"}]})).await?;
        app.define(json!({"name": "practitioner", "label": {"zh": "医护人员"}, "extends": "person"})).await?;
        let (status, body) = app
            .call("PUT", "/api/v1/data-items/person", Some(json!({"label": {"zh": "人员"}, "extends": "practitioner"})))
            .await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(paths(&body), vec!["/extends"]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_data_item_becomes_a_typed_table_with_pinyin_names() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let stored = app.define(patient_def()).await?;
        assert_eq!(stored["name"], "huanzhe");
        assert_eq!(stored["version"], 1);
        assert_eq!(stored["fields"][0]["name"], "xingming");
        let columns = app.columns("huanzhe").await?;
        for c in [
            "id",
            "version",
            "created_at",
            "updated_at",
            "xingming",
            "age",
            "source",
            "balance",
            "record_no",
        ] {
            assert!(
                columns.iter().any(|x| x == c),
                "column {c} missing from {columns:?}"
            );
        }
        // Two items labelled alike get predictable names.
        let again = app
            .define(json!({"label": {"zh": "患者"}, "fields": [
            {"label": {"zh": "备注"}, "type": "text"}, {"label": {"zh": "备注"}, "type": "text"}]}))
            .await?;
        assert_eq!(again["name"], "huanzhe_2");
        assert_eq!(again["fields"][1]["name"], "beizhu_2");
        let (status, _) = app
            .call("GET", "/api/v1/data-items/huanzhe_2/form", None)
            .await?;
        assert_eq!(status, StatusCode::OK);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn inheritance_and_composition_store_one_document() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(json!({"name": "person", "label": {"zh": "人员", "en": "Person"}, "fields": [
            {"label": {"zh": "姓名"}, "type": "text", "required": true, "searchable": true},
            {"name": "phone", "label": {"zh": "手机"}, "type": "text", "pattern": "^1[3-9][0-9]{9}$"}]})).await?;
        app.define(json!({"name": "allergy", "label": {"zh": "过敏史"}, "fields": [
            {"name": "allergen", "label": {"zh": "过敏原"}, "type": "text", "required": true},
            {"name": "severity", "label": {"zh": "严重程度"}, "type": "enum", "options": ["轻度", "中度", "重度"]}]})).await?;
        app.define(json!({"name": "patient", "label": {"zh": "患者"}, "extends": "person",
            "fields": [{"name": "record_no", "label": {"zh": "病历号"}, "type": "text", "unique": true}],
            "consists": [{"item": "allergy", "cardinality": "many"}]})).await?;
        let columns = app.columns("patient").await?;
        assert!(columns.contains(&"xingming".to_owned()) && columns.contains(&"phone".to_owned()), "{columns:?}");

        let (_, form) = app.call("GET", "/api/v1/data-items/patient/form", None).await?;
        let sections: Vec<&str> = form["layout"].as_array().unwrap().iter().map(|s| s["label"]["zh"].as_str().unwrap()).collect();
        assert_eq!(sections, vec!["人员", "患者", "过敏史"]);
        assert_eq!(form["schema"]["$schema"], "https://json-schema.org/draft/2020-12/schema");

        let created = app.create("patient", json!({"xingming": "王芳", "phone": "13800138000", "record_no": "MR2026-0001",
            "allergy": [{"allergen": "利多卡因", "severity": "中度"}, {"allergen": "青霉素"}]})).await?;
        let id = created["id"].as_str().unwrap();
        let (_, read) = app.call("GET", &format!("/api/v1/records/patient/{id}"), None).await?;
        assert_eq!(read["xingming"], "王芳");
        assert_eq!(read["allergy"].as_array().unwrap().len(), 2);
        assert_eq!(read["allergy"][0]["allergen"], "利多卡因");

        // A bad child refuses the whole document, naming the child's path; nothing is written.
        let (status, body) = app.call("POST", "/api/v1/records/patient", Some(json!({"xingming": "李四",
            "allergy": [{"allergen": "花粉"}, {"severity": "致命"}]}))).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let p = paths(&body);
        assert!(p.contains(&"/allergy/1/allergen".to_owned()) && p.contains(&"/allergy/1/severity".to_owned()), "{body}");
        assert_eq!(app.count_rows("patient").await?, 1);
        assert_eq!(app.count_rows("allergy").await?, 2);

        // Replacing the children replaces them in one transaction.
        let (status, patched) = app.call("PATCH", &format!("/api/v1/records/patient/{id}"),
            Some(json!({"version": 1, "allergy": [{"allergen": "海鲜", "severity": "轻度"}]}))).await?;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["allergy"].as_array().unwrap().len(), 1);
        assert_eq!(app.count_rows("allergy").await?, 1);

        // Deleting the parent deletes its children.
        let (status, _) = app.call("DELETE", &format!("/api/v1/records/patient/{id}"), None).await?;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.count_rows("allergy").await?, 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn migrations_add_retype_and_remove_fields_keeping_data() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(json!({"name": "treatment", "label": {"zh": "治疗项目"}, "fields": [
            {"name": "treatment_name", "label": {"zh": "名称"}, "type": "text", "required": true, "searchable": true},
            {"name": "duration", "label": {"zh": "时长"}, "type": "integer"},
            {"name": "code", "label": {"zh": "编码"}, "type": "text"},
            {"name": "legacy", "label": {"zh": "旧备注"}, "type": "text"}]})).await?;
        let botox = app.create("treatment", json!({"treatment_name": "肉毒素", "duration": 30, "code": "42", "legacy": "保妥适"})).await?;
        app.create("treatment", json!({"treatment_name": "光子嫩肤", "duration": 45, "code": "IPL"})).await?;

        // Add price (money), retype duration integer → decimal (lossless) and code text →
        // integer (lossy), remove legacy.
        let next = json!({"label": {"zh": "治疗项目"}, "fields": [
            {"name": "treatment_name", "label": {"zh": "名称"}, "type": "text", "required": true, "searchable": true},
            {"name": "duration", "label": {"zh": "时长"}, "type": "decimal", "scale": 1},
            {"name": "code", "label": {"zh": "编码"}, "type": "integer"},
            {"name": "price", "label": {"zh": "价格"}, "type": "money", "default": "0.00"}]});
        let (status, proposed) = app.call("PUT", "/api/v1/data-items/treatment", Some(next)).await?;
        assert_eq!(status, StatusCode::OK, "{proposed}");
        let (_, plan) = app.call("GET", "/api/v1/data-items/treatment/migration", None).await?;
        assert_eq!(plan["destructive"], true);
        let actions: Vec<(String, bool)> = plan["steps"].as_array().unwrap().iter()
            .map(|s| (format!("{}:{}", s["action"].as_str().unwrap(), s["description"].as_str().unwrap().split('\'').nth(1).unwrap_or("")), s["destructive"].as_bool().unwrap()))
            .collect();
        assert!(actions.contains(&("archive_column:legacy".into(), true)), "{actions:?}");
        assert!(actions.contains(&("retype_column:duration".into(), false)), "{actions:?}");
        assert!(actions.contains(&("retype_column:code".into(), true)), "{actions:?}");
        assert!(actions.contains(&("add_column:price".into(), false)), "{actions:?}");
        // Until applied, nothing changed.
        let (_, before) = app.call("GET", &format!("/api/v1/records/treatment/{}", botox["id"].as_str().unwrap()), None).await?;
        assert_eq!(before["legacy"], "保妥适");

        // Destructive steps need confirmation; refusing changes nothing.
        let (status, body) = app.call("POST", "/api/v1/data-items/treatment/migration", None).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "destructive_change_unconfirmed");
        assert!(app.columns("treatment").await?.contains(&"legacy".to_owned()));

        let (status, applied) = app.call("POST", "/api/v1/data-items/treatment/migration", Some(json!({"confirm_destructive": true}))).await?;
        assert_eq!(status, StatusCode::OK, "{applied}");
        assert_eq!(applied["data_item"]["version"], 2);
        let (_, after) = app.call("GET", &format!("/api/v1/records/treatment/{}", botox["id"].as_str().unwrap()), None).await?;
        assert_eq!(after["duration"], "30.0");
        assert_eq!(after["code"], 42);
        assert!(after.get("legacy").is_none(), "{after}");
        let (_, ipl) = app.call("GET", "/api/v1/records/treatment?treatment_name=光子嫩肤", None).await?;
        assert_eq!(ipl["items"][0]["code"], Value::Null, "IPL does not convert to an integer");
        // The removed and the lossy columns are archived, not dropped.
        let columns = app.columns("treatment").await?;
        assert!(columns.contains(&"legacy__archived_v2".to_owned()), "{columns:?}");
        assert!(columns.contains(&"code__archived_v2".to_owned()), "{columns:?}");
        // Writes follow the new definition.
        app.create("treatment", json!({"treatment_name": "水光针", "duration": "20.5", "code": 7, "price": "980.00"})).await?;
        let (status, _) = app.call("POST", "/api/v1/records/treatment", Some(json!({"treatment_name": "x", "legacy": "y"}))).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        // Nothing pending any more.
        let (status, _) = app.call("GET", "/api/v1/data-items/treatment/migration", None).await?;
        assert_eq!(status, StatusCode::CONFLICT);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn making_a_field_unique_is_refused_while_values_repeat() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(json!({"name": "room", "label": {"zh": "诊室"}, "fields": [{"name": "room_name", "label": {"zh": "名称"}, "type": "text"}]})).await?;
        app.create("room", json!({"room_name": "激光一室"})).await?;
        app.create("room", json!({"room_name": "激光一室"})).await?;
        let (status, _) = app.call("PUT", "/api/v1/data-items/room", Some(json!({"label": {"zh": "诊室"},
            "fields": [{"name": "room_name", "label": {"zh": "名称"}, "type": "text", "unique": true}]}))).await?;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = app.call("POST", "/api/v1/data-items/room/migration", None).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "unique_violation");
        let (_, item) = app.call("GET", "/api/v1/data-items/room", None).await?;
        assert_eq!(item["version"], 1, "the failed migration changed nothing");
        // Discarding the pending change is possible.
        let (status, _) = app.call("DELETE", "/api/v1/data-items/room/migration", None).await?;
        assert_eq!(status, StatusCode::NO_CONTENT);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_parent_change_migrates_the_tables_that_inherit_it() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(json!({"name": "person", "label": {"zh": "人员"}, "fields": [{"label": {"zh": "姓名"}, "type": "text", "searchable": true}]})).await?;
        app.define(json!({"name": "practitioner", "label": {"zh": "医护人员"}, "extends": "person", "fields": [
            {"name": "title", "label": {"zh": "职称"}, "type": "text"}]})).await?;
        app.create("practitioner", json!({"xingming": "李医生", "title": "主治医师"})).await?;
        app.call("PUT", "/api/v1/data-items/person", Some(json!({"label": {"zh": "人员"}, "fields": [
            {"label": {"zh": "姓名"}, "type": "text", "searchable": true},
            {"name": "phone", "label": {"zh": "手机"}, "type": "text"}]}))).await?;
        let (status, applied) = app.call("POST", "/api/v1/data-items/person/migration", None).await?;
        assert_eq!(status, StatusCode::OK, "{applied}");
        assert!(app.columns("practitioner").await?.contains(&"phone".to_owned()));
        let (_, found) = app.call("GET", "/api/v1/records/practitioner?q=lys", None).await?;
        assert_eq!(found["total"], 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn field_tags_travel_with_the_form_and_change_no_table() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let def = |tags: serde_json::Value| {
            json!({"name": "qingjia", "label": {"zh": "请假单"}, "fields": [
            {"name": "days", "label": {"zh": "请假天数"}, "type": "integer", "tags": tags}]})
        };
        app.define(def(json!({"hr": "leave_days", "report": true})))
            .await?;
        let (_, form) = app
            .call("GET", "/api/v1/data-items/qingjia/form", None)
            .await?;
        assert_eq!(
            form["layout"][0]["fields"][0]["tags"],
            json!({"hr": "leave_days", "report": true}),
            "{form}"
        );
        let (_, shown) = app.call("GET", "/api/v1/data-items/qingjia", None).await?;
        assert_eq!(shown["fields"][0]["tags"]["hr"], "leave_days", "{shown}");
        // New tags are a new version of the definition, but touch no table.
        let (status, proposed) = app
            .call(
                "PUT",
                "/api/v1/data-items/qingjia",
                Some(def(json!({"hr": "annual_leave"}))),
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{proposed}");
        let (_, plan) = app
            .call("GET", "/api/v1/data-items/qingjia/migration", None)
            .await?;
        assert_eq!(plan["destructive"], false, "{plan}");
        let sql: Vec<&Value> = plan["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["sql"].as_array().into_iter().flatten())
            .collect();
        assert!(sql.is_empty(), "{plan}");
        Ok(())
    })
    .await
}

/// The designer's live preview: the form a definition would have, checked as saving it
/// would check it, and nothing stored.
#[tokio::test]
async fn a_preview_answers_the_form_and_stores_nothing() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let card = json!({"label": {"zh": "会员卡"}, "fields": [
            {"label": {"zh": "卡号"}, "type": "text", "required": true},
            {"label": {"zh": "积分"}, "type": "integer", "min": 0}]});
        let (s, form) = app
            .call("POST", "/api/v1/data-items/preview", Some(card.clone()))
            .await?;
        assert_eq!(s, StatusCode::OK, "{form}");
        assert_eq!(form["item"], "huiyuanka", "{form}");
        assert_eq!(form["schema"]["required"], json!(["kahao"]), "{form}");
        assert_eq!(form["layout"][0]["fields"][1]["name"], "jifen", "{form}");
        let (s, _) = app.call("GET", "/api/v1/data-items/huiyuanka", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "nothing stored");
        let bad = json!({"label": {"zh": "会员卡"}, "fields": [{"label": {"zh": "卡号"}, "type": "strin"}]});
        let (s, b) = app
            .call("POST", "/api/v1/data-items/preview", Some(bad))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), ["/fields/0/type"], "{b}");
        // As a change: the preview of a DataItem with one more field, which stays unchanged.
        app.define(card.clone()).await?;
        let mut more = card.clone();
        more["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"label": {"zh": "等级"}, "type": "enum", "options": ["银卡", "金卡"]}));
        let (s, form) = app
            .call("POST", "/api/v1/data-items/preview?replaces=huiyuanka", Some(more.clone()))
            .await?;
        assert_eq!(s, StatusCode::OK, "{form}");
        assert!(form["schema"]["properties"]["dengji"].is_object(), "{form}");
        let (_, stored) = app.call("GET", "/api/v1/data-items/huiyuanka/form", None).await?;
        assert!(stored["schema"]["properties"]["dengji"].is_null(), "unchanged: {stored}");
        // As a new one, its derived name is taken: it would be `huiyuanka_2`, as saving
        // it would make it; named, it is refused at /name as saving it would be.
        let (_, form) = app
            .call("POST", "/api/v1/data-items/preview", Some(more.clone()))
            .await?;
        assert_eq!(form["item"], "huiyuanka_2", "{form}");
        let mut named = more.clone();
        named["name"] = json!("huiyuanka");
        let (s, b) = app
            .call("POST", "/api/v1/data-items/preview", Some(named))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a new one of an existing name: {b}");
        assert_eq!(paths(&b), ["/name"], "{b}");
        let (s, b) = app
            .call("POST", "/api/v1/data-items/preview?replaces=nothing", Some(more))
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        let (s, b) = app
            .call("POST", "/api/v1/data-items/preview?replace=huiyuanka", Some(card))
            .await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        Ok(())
    })
    .await
}
