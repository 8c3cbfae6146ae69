//! Computed fields (issue 13 §4) on both databases: a clinic invoice (收费单) whose lines'
//! 金额 = 单价 × 数量 and whose 合计 and 应付 follow from them, kept current on every write,
//! stored (so lists filter and sort by them), read-only in the form, and filled in on the
//! records that exist when a computed field is added. Before, `"compute"` got a 422.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

async fn invoices(app: &TestApp) -> anyhow::Result<()> {
    app.define(json!({
        "name": "mingxi", "label": {"zh": "收费明细"},
        "fields": [
            {"name": "xiangmu", "label": {"zh": "项目"}, "type": "text"},
            {"name": "danjia", "label": {"zh": "单价"}, "type": "money"},
            {"name": "shuliang", "label": {"zh": "数量"}, "type": "integer", "default": 1},
            {"name": "jine", "label": {"zh": "金额"}, "type": "money", "compute": "record.danjia * record.shuliang"}
        ]
    }))
    .await?;
    app.define(json!({
        "name": "shoufei", "label": {"zh": "收费单"},
        "fields": [
            {"name": "huanzhe", "label": {"zh": "患者"}, "type": "text"},
            {"name": "zhekou", "label": {"zh": "折扣"}, "type": "decimal", "scale": 2, "default": "1"},
            {"name": "heji", "label": {"zh": "合计"}, "type": "money", "compute": "sum(record.mingxi, \"jine\")"},
            {"name": "yingfu", "label": {"zh": "应付"}, "type": "money", "compute": "round_half_up(record.heji * record.zhekou, 2)"}
        ],
        "consists": [{"item": "mingxi", "cardinality": "many"}]
    }))
    .await?;
    Ok(())
}

async fn call_ok(app: &TestApp, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (s, b) = app.call(method, path, Some(body)).await?;
    anyhow::ensure!(s.is_success(), "{method} {path}: {s} {b}");
    Ok(b)
}

#[tokio::test]
async fn an_invoice_totals_its_lines_exactly_on_every_write() -> anyhow::Result<()> {
    each_backend(|app| async move {
        invoices(&app).await?;
        let created = call_ok(
            &app,
            "POST",
            "/api/v1/records/shoufei",
            json!({
                "huanzhe": "曾丽", "zhekou": "0.88",
                "mingxi": [{"xiangmu": "肉毒素", "danjia": "1280.00"},
                           {"xiangmu": "水光针", "danjia": "680.50", "shuliang": 2}]
            }),
        )
        .await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        let lines: Vec<&str> = created["mingxi"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["jine"].as_str())
            .collect();
        assert_eq!(lines, ["1280.00", "1361.00"], "{created}");
        assert_eq!(created["heji"], "2641.00", "{created}");
        // 2641.00 × 0.88 = 2324.08, exactly.
        assert_eq!(created["yingfu"], "2324.08", "{created}");

        // A changed discount recomputes what depends on it; the lines stay.
        let path = format!("/api/v1/records/shoufei/{id}");
        let patched = call_ok(&app, "PATCH", &path, json!({"zhekou": "0.95"})).await?;
        // 2641.00 × 0.95 = 2508.95
        assert_eq!(patched["yingfu"], "2508.95", "{patched}");
        assert_eq!(patched["heji"], "2641.00", "{patched}");
        // New lines: every total follows.
        let patched = call_ok(
            &app,
            "PATCH",
            &path,
            json!({"mingxi": [
            {"xiangmu": "光子嫩肤", "danjia": "999.99", "shuliang": 3}]}),
        )
        .await?;
        assert_eq!(patched["heji"], "2999.97", "{patched}");
        // 2999.97 × 0.95 = 2849.9715 → 2849.97
        assert_eq!(patched["yingfu"], "2849.97", "{patched}");

        // A computed value sent back as read is fine; another one is refused at its pointer
        // and nothing changes.
        call_ok(
            &app,
            "PATCH",
            &path,
            json!({"heji": "2999.97", "huanzhe": "曾丽丽"}),
        )
        .await?;
        let (s, b) = app
            .call(
                "PATCH",
                &path,
                Some(json!({"heji": "1.00", "huanzhe": "别人"})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/heji", "{b}");
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/records/shoufei",
                Some(json!({
            "mingxi": [{"danjia": "10.00", "jine": "99.00"}]})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/mingxi/0/jine", "{b}");
        let (_, now) = app.call("GET", &path, None).await?;
        assert_eq!(now["huanzhe"], "曾丽丽", "{now}");

        // Stored: lists filter and sort by computed fields.
        call_ok(
            &app,
            "POST",
            "/api/v1/records/shoufei",
            json!({
            "huanzhe": "单雪", "mingxi": [{"xiangmu": "超声炮", "danjia": "5800.00"}]}),
        )
        .await?;
        call_ok(
            &app,
            "POST",
            "/api/v1/records/shoufei",
            json!({
            "huanzhe": "解晓东", "mingxi": [{"xiangmu": "水光针", "danjia": "680.50"}]}),
        )
        .await?;
        let (s, list) = app
            .call(
                "GET",
                "/api/v1/records/shoufei?yingfu__gte=2000&sort=-yingfu",
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        let names: Vec<&str> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["huanzhe"].as_str())
            .collect();
        assert_eq!(names, ["单雪", "曾丽丽"], "{list}");

        // The form shows them read-only and never required.
        let (_, form) = app
            .call("GET", "/api/v1/data-items/shoufei/form", None)
            .await?;
        let schema = if form["schema"].is_object() {
            &form["schema"]
        } else {
            &form
        };
        assert_eq!(schema["properties"]["heji"]["readOnly"], true, "{form}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_computed_field_added_later_is_filled_in_on_existing_records() -> anyhow::Result<()> {
    each_backend(|app| async move {
        invoices(&app).await?;
        for (name, price) in [("曾丽", "100.00"), ("仇敏", "250.50")] {
            call_ok(
                &app,
                "POST",
                "/api/v1/records/shoufei",
                json!({
                "huanzhe": name, "mingxi": [{"danjia": price, "shuliang": 2}]}),
            )
            .await?;
        }
        let (_, def) = app.call("GET", "/api/v1/data-items/shoufei", None).await?;
        let mut changed = def.clone();
        if let Some(o) = changed.as_object_mut() {
            for derived in ["version", "descendants", "pending_change"] {
                o.remove(derived);
            }
        }
        if let Some(fields) = changed["fields"].as_array_mut() {
            fields.push(
                json!({"name": "shui", "label": {"zh": "税额"}, "type": "money",
                               "compute": "round_half_up(record.yingfu * 0.06, 2)"}),
            );
        }
        let (s, b) = app
            .call("PUT", "/api/v1/data-items/shoufei", Some(changed))
            .await?;
        assert!(s.is_success(), "{b}");
        let steps = b["plan"]["steps"].to_string();
        assert!(
            steps.contains("recompute") && steps.contains("compute 'shui' on every record"),
            "{b}"
        );
        call_ok(
            &app,
            "POST",
            "/api/v1/data-items/shoufei/migration",
            json!({}),
        )
        .await?;
        let (_, list) = app
            .call("GET", "/api/v1/records/shoufei?sort=huanzhe", None)
            .await?;
        let taxes: Vec<(String, String)> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["huanzhe"].as_str().unwrap_or_default().to_owned(),
                    r["shui"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        // 200.00 × 0.06 = 12.00; 501.00 × 0.06 = 30.06
        assert!(
            taxes.contains(&("曾丽".to_owned(), "12.00".to_owned()))
                && taxes.contains(&("仇敏".to_owned(), "30.06".to_owned())),
            "{list}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_computed_field_that_cannot_be_computed_is_refused_when_defined() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, b) = app.call("POST", "/api/v1/data-items", Some(json!({
            "name": "dingdan", "label": {"zh": "订单"},
            "fields": [
                {"name": "danjia", "label": {"zh": "单价"}, "type": "money"},
                {"name": "zongjia", "label": {"zh": "总价"}, "type": "money", "compute": "record.danjai * 2"},
                {"name": "a", "label": {"zh": "甲"}, "type": "money", "compute": "record.b + 1", "default": "0"},
                {"name": "b", "label": {"zh": "乙"}, "type": "money", "compute": "record.danjia"},
                {"name": "c", "label": {"zh": "丙"}, "type": "money", "compute": "record.danjia +", "required": true}
            ]
        }))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let at = |p: &str| -> String {
            b["error"]["details"].as_array().into_iter().flatten()
                .filter(|d| d["path"] == p).filter_map(|d| d["message"].as_str()).collect::<Vec<_>>().join(" | ")
        };
        assert!(at("/fields/1/compute").contains("did you mean 'danjia'"), "{b}");
        assert!(at("/fields/2/compute").contains("declare 'b' first"), "{b}");
        assert!(!at("/fields/2/default").is_empty(), "{b}");
        assert!(at("/fields/4/compute").contains("not a valid Rhai expression"), "{b}");
        assert!(!at("/fields/4/required").is_empty(), "{b}");
        let (s, _) = app.call("GET", "/api/v1/data-items/dingdan", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        Ok(())
    })
    .await
}
