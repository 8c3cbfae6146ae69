//! Data-aware migration plans (issue 13 §3, first part), on both databases: the plan counts
//! the records each step touches and, for a retype, the values that will not convert —
//! with the first few records and values — before anything is applied; the count of the
//! applied plan is what was lost, each lost value kept in the archive column; a new field
//! with a default gives it to the records that exist. Before, "abc" silently became NULL
//! and old rows kept NULL for a new field with a default.

mod common;

use axum::http::StatusCode;
use common::each_backend;
use serde_json::{Value, json};

fn step<'a>(plan: &'a Value, action: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["action"] == action))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn a_plan_counts_what_it_touches_and_what_a_retype_loses() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let fields = |code: &str, extra: Option<Value>| {
            let mut f = vec![
                json!({"name": "mingcheng", "label": {"zh": "名称"}, "type": "text"}),
                json!({"name": "code", "label": {"zh": "编码"}, "type": code}),
            ];
            f.extend(extra);
            json!({"label": {"zh": "治疗项目"}, "fields": f})
        };
        let mut def = fields("text", None);
        def["name"] = json!("xiangmu");
        app.define(def).await?;
        let mut ids = Vec::new();
        for (name, code) in [("肉毒素", json!("42")), ("光子嫩肤", json!("IPL")), ("水光针", json!("7.5")), ("超声炮", Value::Null)] {
            let r = app.create("xiangmu", json!({"mingcheng": name, "code": code})).await?;
            ids.push(r["id"].as_str().unwrap_or_default().to_owned());
        }
        let next = fields("integer", Some(json!({"name": "jiage", "label": {"zh": "价格"}, "type": "money", "default": "980.00"})));
        let (s, proposed) = app.call("PUT", "/api/v1/data-items/xiangmu", Some(next)).await?;
        assert_eq!(s, StatusCode::OK, "{proposed}");
        for plan in [proposed["plan"].clone(), app.call("GET", "/api/v1/data-items/xiangmu/migration", None).await?.1] {
            let retype = step(&plan, "retype_column");
            assert_eq!(retype["rows"], 4, "{plan}");
            assert_eq!(retype["losses"]["count"], 2, "IPL and 7.5 are no integers: {plan}");
            let lost: Vec<(&str, &str)> = retype["losses"]["examples"].as_array().into_iter().flatten()
                .map(|e| (e["id"].as_str().unwrap_or_default(), e["value"].as_str().unwrap_or_default())).collect();
            assert!(lost.contains(&(ids[1].as_str(), "IPL")) && lost.contains(&(ids[2].as_str(), "7.5")), "{plan}");
            assert!(retype["description"].as_str().unwrap_or_default().contains("2 value(s) will not convert"), "{plan}");
            assert_eq!(step(&plan, "add_column")["rows"], 4, "{plan}");
        }
        let (s, applied) = app.call("POST", "/api/v1/data-items/xiangmu/migration", Some(json!({"confirm_destructive": true}))).await?;
        assert_eq!(s, StatusCode::OK, "{applied}");
        assert_eq!(step(&applied["applied"], "retype_column")["losses"]["count"], 2, "{applied}");
        // Every counted loss is in the archive column; every record got the default.
        let archive = step(&applied["applied"], "retype_column")["archived_as"].as_str().unwrap_or_default().to_owned();
        let mut sql = erpos_kernel::sql::Sql::new(app.kernel.db.dialect());
        sql.push("SELECT CAST(id AS TEXT), ").ident(&archive).push(" FROM rec_xiangmu WHERE code IS NULL AND ")
            .ident(&archive).push(" IS NOT NULL ORDER BY 2");
        let kept: Vec<String> = app.kernel.db.fetch(sql).await?.into_iter()
            .filter_map(|r| r.get(1).cloned().flatten()).collect();
        assert_eq!(kept, ["7.5", "IPL"]);
        let (_, list) = app.call("GET", "/api/v1/records/xiangmu?limit=10", None).await?;
        let prices: Vec<&Value> = list["items"].as_array().into_iter().flatten().map(|r| &r["jiage"]).collect();
        assert_eq!(prices, [&json!("980.00"); 4], "{list}");
        Ok(())
    })
    .await
}
