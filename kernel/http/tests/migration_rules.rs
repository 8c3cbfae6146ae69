//! Tightened rules, new required fields, new unique fields and renames (issue 13 §3), on
//! both databases. The plan names the records a change would leave breaking the field's
//! rules (with the problem), and applying refuses until each field is resolved — fixed to a
//! value, archived, or accepted as it is — and the originals of what is fixed or archived
//! stay in the archive column. A new required field needs a default or a fix; a unique
//! field's repeats can only be archived; `renamed_from` keeps a field's values under its new
//! name. Before, a tightened bound left old records invalid without a word, and a renamed
//! field was removed and added empty.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

fn step<'a>(plan: &'a Value, action: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["action"] == action))
        .unwrap_or(&Value::Null)
}

fn patient(fields: Vec<Value>) -> Value {
    json!({"label": {"zh": "患者"}, "fields": fields})
}

fn base_fields() -> Vec<Value> {
    vec![
        json!({"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true}),
        json!({"name": "nianling", "label": {"zh": "年龄"}, "type": "integer"}),
        json!({"name": "shouji", "label": {"zh": "手机"}, "type": "text"}),
        json!({"name": "laiyuan", "label": {"zh": "来源"}, "type": "enum", "options": ["小红书", "微博", "朋友介绍"]}),
    ]
}

/// Defines 患者 and creates four patients; returns their ids by name.
async fn four_patients(app: &TestApp) -> anyhow::Result<Vec<(String, String)>> {
    let mut def = patient(base_fields());
    def["name"] = json!("huanzhe");
    app.define(def).await?;
    let mut ids = Vec::new();
    for (name, age, phone, source) in [
        ("曾丽", 34, "13800138000", "小红书"),
        ("单雪", 16, "13900139000", "微博"),
        ("解晓东", 52, "13800138000", "朋友介绍"),
        ("仇敏", 41, "8008", "微博"),
    ] {
        let r = app
            .create(
                "huanzhe",
                json!({"xingming": name, "nianling": age, "shouji": phone, "laiyuan": source}),
            )
            .await?;
        ids.push((
            name.to_owned(),
            r["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(ids)
}

fn id_of<'a>(ids: &'a [(String, String)], name: &str) -> &'a str {
    ids.iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, id)| id.as_str())
}

/// A column's values as text, by record id (the archive columns are not in the API).
async fn column(app: &TestApp, name: &str) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
    sql.push("SELECT CAST(id AS TEXT), CAST(")
        .ident(name)
        .push(" AS TEXT) FROM rec_huanzhe ORDER BY 1");
    Ok(app
        .kernel
        .db
        .fetch(sql)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.first().cloned().flatten()?, r.get(1).cloned().flatten())))
        .collect())
}

async fn record(app: &TestApp, id: &str) -> anyhow::Result<Value> {
    let (s, r) = app
        .call("GET", &format!("/api/v1/records/huanzhe/{id}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {r}");
    Ok(r)
}

#[tokio::test]
async fn a_tightened_bound_names_the_records_it_breaks_and_waits_to_be_told_how()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let ids = four_patients(&app).await?;
        let mut fields = base_fields();
        fields[1]["min"] = json!(18);
        let (s, proposed) = app
            .call("PUT", "/api/v1/data-items/huanzhe", Some(patient(fields)))
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        let rules = step(&proposed["plan"], "change_rules");
        assert_eq!(rules["violations"]["field"], "nianling", "{proposed}");
        assert_eq!(rules["violations"]["count"], 1, "{proposed}");
        assert_eq!(
            rules["violations"]["examples"][0]["id"],
            id_of(&ids, "单雪"),
            "{proposed}"
        );
        assert_eq!(
            rules["violations"]["examples"][0]["value"], "16",
            "{proposed}"
        );
        assert_eq!(
            rules["violations"]["examples"][0]["problem"], "must be at least 18",
            "{proposed}"
        );
        assert_eq!(
            rules["violations"]["resolutions"],
            json!(["fix", "archive", "accept"]),
            "{proposed}"
        );
        assert_eq!(rules["destructive"], true, "{proposed}");
        assert_eq!(proposed["plan"]["destructive"], true, "{proposed}");

        // Untold, the plan is refused and nothing changes.
        let (s, refused) = app
            .call("POST", "/api/v1/data-items/huanzhe/migration", None)
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        assert_eq!(
            refused["error"]["code"], "destructive_change_unconfirmed",
            "{refused}"
        );
        assert_eq!(
            refused["error"]["details"][0]["path"], "/resolve/nianling",
            "{refused}"
        );
        assert!(
            refused["error"]["details"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("1 record(s)"),
            "{refused}"
        );
        // A fix that breaks the rule itself, a field that does not exist, an action that
        // does not exist: 422 at the pointer, nothing changes.
        for (body, at, says) in [
            (
                json!({"resolve": {"nianling": {"action": "fix", "value": 10}}}),
                "/resolve/nianling/value",
                "must be at least 18",
            ),
            (
                json!({"resolve": {"nainling": {"action": "archive"}}}),
                "/resolve/nainling",
                "did you mean 'nianling'",
            ),
            (
                json!({"resolve": {"nianling": {"action": "drop"}}}),
                "/resolve/nianling",
                "unknown variant",
            ),
            (json!({"reslove": {}}), "/reslove", "unknown field"),
        ] {
            let (s, bad) = app
                .call(
                    "POST",
                    "/api/v1/data-items/huanzhe/migration",
                    Some(body.clone()),
                )
                .await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {bad}");
            let detail = &bad["error"]["details"][0];
            assert!(
                detail["path"].as_str().unwrap_or_default().starts_with(at),
                "{body}: {bad}"
            );
            assert!(
                detail["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(says),
                "{body}: {bad}"
            );
        }
        assert_eq!(record(&app, id_of(&ids, "单雪")).await?["nianling"], 16);

        // Archived: the value leaves the field, stays in the archive column, and the record's
        // version moves on.
        let before = record(&app, id_of(&ids, "单雪")).await?["version"]
            .as_i64()
            .unwrap_or_default();
        let (s, applied) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"resolve": {"nianling": {"action": "archive"}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        assert_eq!(
            step(&applied["applied"], "change_rules")["violations"]["resolved"],
            "archive",
            "{applied}"
        );
        let after = record(&app, id_of(&ids, "单雪")).await?;
        assert_eq!(after["nianling"], Value::Null, "{after}");
        assert_eq!(
            after["version"].as_i64().unwrap_or_default(),
            before + 1,
            "{after}"
        );
        assert_eq!(record(&app, id_of(&ids, "曾丽")).await?["nianling"], 34);
        let archive = column(&app, "nianling__archived_v2").await?;
        let kept: Vec<&(String, Option<String>)> =
            archive.iter().filter(|(_, v)| v.is_some()).collect();
        assert_eq!(
            kept,
            [&(id_of(&ids, "单雪").to_owned(), Some("16".to_owned()))]
        );

        // An enum value removed, fixed to another: the originals are archived too.
        let mut fields = base_fields();
        fields[1]["min"] = json!(18);
        fields[3]["options"] = json!(["小红书", "朋友介绍"]);
        let (s, proposed) = app
            .call("PUT", "/api/v1/data-items/huanzhe", Some(patient(fields)))
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        let rules = step(&proposed["plan"], "change_rules");
        assert_eq!(rules["violations"]["count"], 2, "{proposed}");
        assert!(
            rules["violations"]["examples"][0]["problem"]
                .as_str()
                .unwrap_or_default()
                .contains("not one of"),
            "{proposed}"
        );
        let (s, applied) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"resolve": {"laiyuan": {"action": "fix", "value": "朋友介绍"}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        for name in ["单雪", "仇敏"] {
            assert_eq!(
                record(&app, id_of(&ids, name)).await?["laiyuan"],
                "朋友介绍"
            );
        }
        let archive = column(&app, "laiyuan__archived_v3").await?;
        assert_eq!(
            archive
                .iter()
                .filter(|(_, v)| v.as_deref() == Some("微博"))
                .count(),
            2,
            "{archive:?}"
        );

        // A pattern accepted as it is with confirm_destructive: the record keeps its value.
        let mut fields = base_fields();
        fields[1]["min"] = json!(18);
        fields[3]["options"] = json!(["小红书", "朋友介绍"]);
        fields[2]["pattern"] = json!("^1[0-9]{10}$");
        let (s, proposed) = app
            .call("PUT", "/api/v1/data-items/huanzhe", Some(patient(fields)))
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        assert_eq!(
            step(&proposed["plan"], "change_rules")["violations"]["count"],
            1,
            "{proposed}"
        );
        let (s, applied) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"confirm_destructive": true})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        assert_eq!(
            step(&applied["applied"], "change_rules")["violations"]["resolved"],
            "accept",
            "{applied}"
        );
        assert_eq!(record(&app, id_of(&ids, "仇敏")).await?["shouji"], "8008");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_new_required_field_needs_a_value_and_a_new_unique_field_archives_its_repeats()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let ids = four_patients(&app).await?;
        let mut fields = base_fields();
        fields.push(
            json!({"name": "mendian", "label": {"zh": "门店"}, "type": "text", "required": true}),
        );
        let (s, proposed) = app
            .call(
                "PUT",
                "/api/v1/data-items/huanzhe",
                Some(patient(fields.clone())),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        let add = step(&proposed["plan"], "add_column");
        assert_eq!(add["violations"]["count"], 4, "{proposed}");
        assert_eq!(
            add["violations"]["resolutions"],
            json!(["fix"]),
            "{proposed}"
        );
        // Accepting empty values for a new required field is not possible.
        let (s, refused) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"confirm_destructive": true})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        assert_eq!(
            refused["error"]["details"][0]["path"], "/resolve/mendian",
            "{refused}"
        );
        let (s, refused) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"resolve": {"mendian": {"action": "accept"}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert!(
            refused["error"]["details"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("this step takes: fix"),
            "{refused}"
        );
        assert!(
            !app.columns("huanzhe")
                .await?
                .contains(&"mendian".to_owned()),
            "nothing changed"
        );
        let (s, applied) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"resolve": {"mendian": {"action": "fix", "value": "静安店"}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        for (name, _) in &ids {
            assert_eq!(record(&app, id_of(&ids, name)).await?["mendian"], "静安店");
        }

        // 曾丽 and 解晓东 share a phone number: a unique phone can only archive the repeat.
        let mut unique = fields.clone();
        unique[2]["unique"] = json!(true);
        let (s, proposed) = app
            .call("PUT", "/api/v1/data-items/huanzhe", Some(patient(unique)))
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        let index = step(&proposed["plan"], "add_unique_index");
        assert_eq!(index["violations"]["count"], 1, "{proposed}");
        assert_eq!(
            index["violations"]["resolutions"],
            json!(["archive"]),
            "{proposed}"
        );
        let later = if id_of(&ids, "曾丽") < id_of(&ids, "解晓东") {
            "解晓东"
        } else {
            "曾丽"
        };
        assert_eq!(
            index["violations"]["examples"][0]["id"],
            id_of(&ids, later),
            "{proposed}"
        );
        let (s, refused) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"confirm_destructive": true})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{refused}");
        let (s, applied) = app
            .call(
                "POST",
                "/api/v1/data-items/huanzhe/migration",
                Some(json!({"resolve": {"shouji": {"action": "archive"}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        assert_eq!(
            record(&app, id_of(&ids, later)).await?["shouji"],
            Value::Null
        );
        // The index holds from now on.
        let (s, dup) = app
            .call(
                "POST",
                "/api/v1/records/huanzhe",
                Some(json!({"xingming": "区家明", "shouji": "13900139000", "mendian": "静安店"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{dup}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn renamed_from_keeps_a_fields_values_under_its_new_name() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let ids = four_patients(&app).await?;
        // Without renamed_from, a relabelled field is removed and added: the plan says how
        // to keep its values.
        let mut fields = base_fields();
        fields[2] = json!({"label": {"zh": "电话"}, "type": "text"});
        let (s, proposed) = app
            .call(
                "PUT",
                "/api/v1/data-items/huanzhe",
                Some(patient(fields.clone())),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        let archive = step(&proposed["plan"], "archive_column");
        assert!(
            archive["description"]
                .as_str()
                .unwrap_or_default()
                .contains("\"renamed_from\": \"shouji\""),
            "{proposed}"
        );
        // Renamed from a field that is not there: 422 with a suggestion.
        fields[2]["renamed_from"] = json!("shouj");
        let (s, bad) = app
            .call(
                "PUT",
                "/api/v1/data-items/huanzhe",
                Some(patient(fields.clone())),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(
            bad["error"]["details"][0]["path"], "/fields/2/renamed_from",
            "{bad}"
        );
        assert!(
            bad["error"]["details"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("did you mean 'shouji'"),
            "{bad}"
        );
        // Renamed (and made searchable): one rename step, nothing destructive.
        fields[2]["renamed_from"] = json!("shouji");
        fields[2]["searchable"] = json!(true);
        let (s, proposed) = app
            .call("PUT", "/api/v1/data-items/huanzhe", Some(patient(fields)))
            .await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        let plan = &proposed["plan"];
        let rename = step(plan, "rename_column");
        assert_eq!(rename["from"], "shouji", "{plan}");
        assert_eq!(rename["field"]["name"], "dianhua", "{plan}");
        assert!(
            step(plan, "archive_column").is_null() && step(plan, "add_column").is_null(),
            "{plan}"
        );
        assert_eq!(plan["destructive"], false, "{plan}");
        let (s, applied) = app
            .call("POST", "/api/v1/data-items/huanzhe/migration", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        assert!(
            applied["data_item"]["fields"][2]
                .get("renamed_from")
                .is_none(),
            "{applied}"
        );
        let r = record(&app, id_of(&ids, "仇敏")).await?;
        assert_eq!(r["dianhua"], "8008", "{r}");
        assert!(r.get("shouji").is_none(), "{r}");
        let (_, found) = app
            .call("GET", "/api/v1/records/huanzhe?q=8008", None)
            .await?;
        assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
        // The next change of the item needs no rename again.
        let (s, def) = app.call("GET", "/api/v1/data-items/huanzhe", None).await?;
        assert_eq!(s, StatusCode::OK, "{def}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_plan_quotes_records_only_to_whoever_may_read_them() -> anyhow::Result<()> {
    each_backend(|app| async move {
        four_patients(&app).await?;
        let mut fields = base_fields();
        fields[1]["min"] = json!(18);
        fields[3] = json!({"name": "laiyuan", "label": {"zh": "来源"}, "type": "integer"});
        let (s, b) = app
            .call("PUT", "/api/v1/data-items/huanzhe", Some(patient(fields)))
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        // The administrator sees which records and values.
        let (_, full) = app
            .call("GET", "/api/v1/data-items/huanzhe/migration", None)
            .await?;
        assert_eq!(
            step(&full, "change_rules")["violations"]["examples"][0]["value"],
            "16",
            "{full}"
        );
        assert!(
            !step(&full, "retype_column")["losses"]["examples"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "{full}"
        );
        // An analyst without the patients' read grant, and any other reader of definitions,
        // sees the counts alone.
        let analyst = app.user_with("fenxi_li", &["design"]).await?;
        for (method, path) in [("GET", "/api/v1/data-items/huanzhe/migration")] {
            let (s, shown) = app
                .call_as(common::As::Bearer(&analyst), method, path, None)
                .await?;
            assert_eq!(s, StatusCode::OK, "{shown}");
            assert_eq!(
                step(&shown, "change_rules")["violations"]["count"],
                1,
                "{shown}"
            );
            assert_eq!(
                step(&shown, "change_rules")["violations"]["examples"],
                json!([]),
                "{shown}"
            );
            assert_eq!(
                step(&shown, "retype_column")["losses"]["examples"],
                json!([]),
                "{shown}"
            );
            assert!(
                !shown.to_string().contains("\"value\":"),
                "no record value: {shown}"
            );
        }
        Ok(())
    })
    .await
}
