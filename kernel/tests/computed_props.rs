//! Computed money is exact to the cent (issue 13 §4): over 10,000 random invoices, every
//! line's 金额 = 单价 × 数量 and the invoice's 合计 = Σ 金额 − 优惠, computed by the kernel's
//! evaluator from the strings money is stored as, equal the same sums done in whole cents.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use erpos_design::Catalog;
use erpos_kernel::computed::Computer;
use erpos_kernel::definitions::Schema;
use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};

/// 收费明细 (a line) and 收费单 (the invoice that consists of its lines).
fn schema() -> Schema {
    let line = erpos_design::parse_data_item(&json!({
        "name": "mingxi", "label": {"zh": "收费明细"},
        "fields": [
            {"name": "danjia", "label": {"zh": "单价"}, "type": "money"},
            {"name": "shuliang", "label": {"zh": "数量"}, "type": "integer"},
            {"name": "jine", "label": {"zh": "金额"}, "type": "money", "compute": "record.danjia * record.shuliang"}
        ]
    }))
    .expect("the line parses");
    let invoice = erpos_design::parse_data_item(&json!({
        "name": "shoufei", "label": {"zh": "收费单"},
        "fields": [
            {"name": "youhui", "label": {"zh": "优惠"}, "type": "money"},
            {"name": "heji", "label": {"zh": "合计"}, "type": "money", "compute": "sum(record.mingxi, \"jine\") - record.youhui"}
        ],
        "consists": [{"item": "mingxi", "cardinality": "many"}]
    }))
    .expect("the invoice parses");
    Schema::new(Catalog::from_items([line, invoice]))
}

fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// The same amount read back from what was computed, in cents.
fn cents(value: &Json) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("money is a string: {value}"));
    let d: rust_decimal::Decimal = text.parse().unwrap_or_else(|_| panic!("'{text}' reads"));
    assert!(d.scale() <= 2, "'{text}' has more than cents");
    i64::try_from(d * rust_decimal::Decimal::from(100)).unwrap_or_else(|_| panic!("{text}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn computed_money_is_exact_to_the_cent(
        lines in prop::collection::vec((0i64..100_000_000, 0i64..1_000), 1..6),
        youhui in 0i64..10_000_000,
    ) {
        let schema = schema();
        let computer = Computer::new();
        let mut invoice = Map::new();
        invoice.insert("youhui".into(), json!(yuan(youhui)));
        invoice.insert("mingxi".into(), Json::Array(lines.iter().map(|(price, qty)| {
            json!({"danjia": yuan(*price), "shuliang": qty})
        }).collect()));
        computer.fill(&schema, "shoufei", &mut invoice, "").expect("computes");
        let mut total = 0i64;
        for (i, (price, qty)) in lines.iter().enumerate() {
            let jine = cents(&invoice["mingxi"][i]["jine"]);
            prop_assert_eq!(jine, price * qty);
            total += price * qty;
        }
        prop_assert_eq!(cents(&invoice["heji"]), total - youhui);
    }
}
