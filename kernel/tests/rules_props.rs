//! The rule evaluator under random input: random Rhai expressions and scripts (built from
//! fragments that include loops, recursion, string growth and calls to unknown functions)
//! over random JSON payloads, and random events against random patterns. Whatever comes
//! in, evaluation returns (a value or an error): no panic, no hang. The operation limit is
//! what ends every loop; a hang would show as the test never finishing.

use erpos_design::rule::{Event, EventKind, EventPattern, ServiceRule};
use erpos_kernel::rules::sandbox::{Bindings, Sandbox};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z张三李四]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("record.age".to_owned()),
        Just("record.xingming".to_owned()),
        Just("context.days".to_owned()),
        Just("event.payload".to_owned()),
        Just("now".to_owned()),
        Just("1 / 0".to_owned()),
        Just("\"患者\" * 1000000".to_owned()),
        Just("[1, 2, 3].map(|x| x * 2)".to_owned()),
        Just("#{a: 1}.a".to_owned()),
        Just("open_file(\"/etc/passwd\")".to_owned()),
        Just("eval(\"1\")".to_owned()),
        Just("timestamp()".to_owned()),
        Just("record.age > 60 && record.xingming == \"张三\"".to_owned()),
        "[0-9]{1,12}",
        "\"[a-z]{0,6}\"",
        "[a-z(){}\\[\\];.+*/<>=!&|\" ]{0,24}",
    ]
}

fn expression() -> impl Strategy<Value = String> {
    (
        fragment(),
        prop::sample::select(vec![" + ", " == ", " && ", " || ", " < ", " - ", ""]),
        fragment(),
    )
        .prop_map(|(a, op, b)| {
            if op.is_empty() {
                a
            } else {
                format!("{a}{op}{b}")
            }
        })
}

fn script() -> impl Strategy<Value = String> {
    prop_oneof![
        expression(),
        expression().prop_map(|e| format!("let x = {e};\nloop {{ x += 1; }}")),
        expression().prop_map(|e| format!("fn f(n) {{ f(n + 1) + {e} }}\nf(0)")),
        expression().prop_map(|e| format!("let s = \"x\";\nwhile true {{ s += s; }}\n{e}")),
        expression().prop_map(|e| format!("if {e} {{ notify([\"dr_li\"], \"t\", \"b\") }}")),
        expression().prop_map(|e| format!("[create_record(\"huanzhe\", #{{a: {e}}})]")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_evaluator_always_returns(expr in expression(), src in script(), record in json_value(), context in json_value()) {
        let sandbox = Sandbox::new();
        let bindings = Bindings { event: json!({"payload": record.clone()}), record, context, now_ms: 1_795_856_400_000, vars: vec![], exact: vec![] };
        let _ = sandbox.eval(&expr, &bindings);
        let _ = sandbox.holds(&expr, &bindings);
        let _ = sandbox.script(&src, &bindings);
    }

    #[test]
    fn matching_random_events_never_panics(kind in 0usize..10, pattern_kind in 0usize..10, subject in prop::option::of("[a-z]{1,3}"),
                                           item in prop::option::of("[a-z]{1,3}"), payload in json_value(), fields in prop::collection::vec("[a-z]{1,3}", 0..3)) {
        let rule = ServiceRule {
            name: "r".into(), label: erpos_design::Label { zh: "规则".into(), en: None },
            event: EventPattern { kind: Some(EventKind::ALL[pattern_kind]), item: item.clone(), service: item.clone(), name: item, fields, ..EventPattern::default() },
            condition: None, instructions: vec![], enabled: true, priority: 0,
        };
        let event = Event { seq: 1, kind: EventKind::ALL[kind], subject, record_id: None, pid: None, at_ms: 0, payload, depth: 0 };
        let matched = rule.matches(&event);
        prop_assert!(!matched || EventKind::ALL[kind] == EventKind::ALL[pattern_kind], "a rule only matches its own kind");
    }
}

/// Cents as a money field stores them (`"-12.30"`).
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", (cents / 100).abs(), (cents % 100).abs())
}

proptest! {
    // Issue 13: money is exact in expressions, over 10,000 random pairs of amounts up to
    // ten million yuan: sums, differences, multiples and comparisons agree to the cent
    // with integer arithmetic on the cents (floats would not: 0.1 + 0.2).
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn money_arithmetic_in_expressions_is_exact_to_the_cent(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000, k in -1_000i64..1_000) {
        let sandbox = Sandbox::new();
        let bindings = Bindings {
            record: json!({"jine": money(a), "zhekou": money(b)}),
            exact: vec!["jine".to_owned(), "zhekou".to_owned()],
            ..Bindings::default()
        };
        let exact = |cents: i64| {
            let text = money(cents);
            let trimmed = text.trim_end_matches('0').trim_end_matches('.').to_owned();
            if trimmed.is_empty() || trimmed == "-" { "0".to_owned() } else { trimmed }
        };
        let eval = |e: &str| sandbox.eval(e, &bindings);
        prop_assert_eq!(eval("record.jine + record.zhekou"), Ok(json!(exact(a + b))));
        prop_assert_eq!(eval("record.jine - record.zhekou"), Ok(json!(exact(a - b))));
        prop_assert_eq!(eval(&format!("record.jine * {k}")), Ok(json!(exact(a * k))));
        prop_assert_eq!(eval("record.jine > record.zhekou"), Ok(json!(a > b)));
        prop_assert_eq!(eval("record.jine >= 1000"), Ok(json!(a >= 100_000)));
        prop_assert_eq!(eval("record.jine < 0.1"), Ok(json!(a < 10)));
    }
}
