//! Prepaid accounts (issue 14 §7), on both databases: 曾丽's 储值卡 takes a recharge,
//! consumptions, a refund and an adjustment, exact to the fen; a consumption beyond the
//! balance is 409 `insufficient_balance` and changes nothing; a retried charge (the same
//! reference) answers the first entry and never books twice, even 20 retries at once; a
//! reference reused for another amount is refused; 50 consumptions at once from a balance
//! that covers 20 leave exactly 20 booked and the balance at zero. And a model-based
//! property: over random entries the balance is always the sum of the entries and never
//! negative.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

async fn open(app: &TestApp, holder: &str) -> anyhow::Result<String> {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/accounts",
            Some(json!({"holder": holder, "label": "储值卡"})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{s} {b}");
    assert_eq!(b["balance"], "0.00", "{b}");
    Ok(b["id"].as_str().unwrap_or_default().to_owned())
}

async fn entry(
    app: &TestApp,
    account: &str,
    kind: &str,
    amount: &str,
    reference: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    app.call(
        "POST",
        &format!("/api/v1/accounts/{account}/entries"),
        Some(json!({"kind": kind, "amount": amount, "reference": reference})),
    )
    .await
}

async fn balance(app: &TestApp, account: &str) -> anyhow::Result<String> {
    let (s, b) = app
        .call("GET", &format!("/api/v1/accounts/{account}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    Ok(b["balance"].as_str().unwrap_or_default().to_owned())
}

/// The sum of an account's entries, in cents, read from its ledger.
async fn ledger_sum(app: &TestApp, account: &str) -> anyhow::Result<(i64, usize)> {
    let (s, b) = app
        .call(
            "GET",
            &format!("/api/v1/accounts/{account}/entries?limit=500"),
            None,
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    let items = b["items"].as_array().cloned().unwrap_or_default();
    let mut sum = 0;
    for e in &items {
        sum += erpos_design::ledger::parse_cents(e["amount"].as_str().unwrap_or_default())
            .map_err(anyhow::Error::msg)?;
    }
    Ok((sum, items.len()))
}

#[tokio::test]
async fn a_prepaid_account_is_exact_never_negative_and_never_charged_twice() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let card = open(&app, "patient-zengli").await?;
        let (s, r) = entry(&app, &card, "recharge", "5000.00", "pay-20261203-001").await?;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        assert_eq!(r["balance"], "5000.00", "{r}");
        let (s, r) = entry(&app, &card, "consumption", "1234.50", "charge-botox-01").await?;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        assert_eq!(r["amount"], "-1234.50", "{r}");
        assert_eq!(r["balance"], "3765.50", "{r}");
        // Too much: refused, nothing booked.
        let (s, r) = entry(&app, &card, "consumption", "3765.51", "charge-hifu-01").await?;
        assert_eq!(s, StatusCode::CONFLICT, "{r}");
        assert_eq!(r["error"]["code"], "insufficient_balance", "{r}");
        assert!(r["error"]["message"].as_str().unwrap_or_default().contains("3765.50"), "{r}");
        assert_eq!(balance(&app, &card).await?, "3765.50");
        // A retry answers the first entry.
        let (s, r) = entry(&app, &card, "consumption", "1234.50", "charge-botox-01").await?;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["seq"], 2, "{r}");
        assert_eq!(balance(&app, &card).await?, "3765.50");
        let (s, r) = entry(&app, &card, "consumption", "99.00", "charge-botox-01").await?;
        assert_eq!(s, StatusCode::CONFLICT, "{r}");
        assert_eq!(r["error"]["code"], "reference_reused", "{r}");
        // Bad amounts are named.
        for (kind, amount) in [("consumption", "12.345"), ("recharge", "-5"), ("recharge", "0"), ("refund", "abc")] {
            let (s, r) = entry(&app, &card, kind, amount, "bad-1").await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{kind} {amount}: {r}");
            assert_eq!(r["error"]["details"][0]["path"], "/amount", "{r}");
        }
        let (s, r) = entry(&app, &card, "gift", "5", "bad-2").await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
        // A cashier may charge but not adjust.
        let cashier = app.user_with("cashier", &["money:charge", "money:read"]).await?;
        let (s, r) = app
            .call_as(As::Bearer(&cashier), "POST", &format!("/api/v1/accounts/{card}/entries"),
                Some(json!({"kind": "adjustment", "amount": "-0.50", "reference": "adj-1"})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{r}");
        let (s, r) = app
            .call_as(As::Bearer(&cashier), "POST", &format!("/api/v1/accounts/{card}/entries"),
                Some(json!({"kind": "refund", "amount": "765.00", "reference": "refund-1", "note": "疗程取消退款"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        assert_eq!(r["actor"], "cashier", "{r}");
        let (s, r) = entry(&app, &card, "adjustment", "-0.50", "adj-1").await?;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        assert_eq!(balance(&app, &card).await?, "3000.00");
        assert_eq!(ledger_sum(&app, &card).await?, (300_000, 4));
        let nobody = app.user_with("visitor", &[]).await?;
        let (s, _) = app.call_as(As::Bearer(&nobody), "GET", &format!("/api/v1/accounts/{card}"), None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, list) = app.call("GET", "/api/v1/accounts?holder=patient-zengli", None).await?;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
        // Pages: a second account, listed after the first.
        let second = open(&app, "patient-shanxue").await?;
        let (s, page) = app.call("GET", "/api/v1/accounts?limit=1", None).await?;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["items"][0]["id"], card.as_str(), "{page}");
        let (s, page) = app.call("GET", &format!("/api/v1/accounts?limit=1&after={card}"), None).await?;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["items"][0]["id"], second.as_str(), "{page}");

        // 20 retries of one charge at once: one entry.
        let retries = (0..20).map(|_| entry(&app, &card, "consumption", "100.00", "charge-ipl-07"));
        let answers = futures_util::future::join_all(retries).await;
        let created = answers.iter().filter(|a| a.as_ref().is_ok_and(|(s, _)| *s == StatusCode::CREATED)).count();
        let repeated = answers.iter().filter(|a| a.as_ref().is_ok_and(|(s, _)| *s == StatusCode::OK)).count();
        assert_eq!((created, repeated), (1, 19));
        assert_eq!(balance(&app, &card).await?, "2900.00");

        // 50 different consumptions at once, the balance covering 29: exactly 29 booked.
        let charges: Vec<String> = (0..50).map(|i| format!("charge-wave-{i}")).collect();
        let answers = futures_util::future::join_all(
            charges.iter().map(|r| entry(&app, &card, "consumption", "100.00", r)),
        )
        .await;
        let mut booked = 0;
        for answer in answers {
            let (s, b) = answer?;
            match s {
                StatusCode::CREATED => booked += 1,
                StatusCode::CONFLICT => assert_eq!(b["error"]["code"], "insufficient_balance", "{b}"),
                other => anyhow::bail!("{other} {b}"),
            }
        }
        assert_eq!(booked, 29);
        assert_eq!(balance(&app, &card).await?, "0.00");
        assert_eq!(ledger_sum(&app, &card).await?.0, 0);
        Ok(())
    })
    .await
}

#[derive(Debug, Clone)]
enum Move {
    Entry {
        kind: &'static str,
        cents: i64,
        reference: u8,
    },
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    let kind = proptest::sample::select(vec!["recharge", "consumption", "refund", "adjustment"]);
    proptest::collection::vec(
        (kind, 1i64..200_000, any::<bool>(), 0u8..12).prop_map(
            |(kind, cents, negative, reference)| Move::Entry {
                kind,
                cents: if kind == "adjustment" && negative {
                    -cents
                } else {
                    cents
                },
                reference,
            },
        ),
        1..25,
    )
}

#[test]
fn the_balance_is_the_sum_of_the_entries_and_never_negative() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let apps = rt.block_on(async {
        let mut apps = Vec::new();
        for db in common::backends().await? {
            apps.push(common::app(db).await?);
        }
        anyhow::Ok(apps)
    })?;
    for app in &apps {
        let mut runner = TestRunner::new(Config {
            cases: 24,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&moves(), |moves| {
            rt.block_on(async {
                let card = open(app, "patient-random")
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
                let mut balance = 0i64;
                let mut booked: std::collections::BTreeMap<u8, (&str, i64)> = Default::default();
                for m in &moves {
                    let Move::Entry {
                        kind,
                        cents,
                        reference,
                    } = m;
                    let signed = match *kind {
                        "recharge" | "adjustment" => *cents,
                        _ => -*cents,
                    };
                    let expected = match booked.get(reference) {
                        Some((k, c)) if k == kind && *c == signed => StatusCode::OK,
                        Some(_) => StatusCode::CONFLICT,
                        None if balance + signed < 0 => StatusCode::CONFLICT,
                        None => StatusCode::CREATED,
                    };
                    let amount = erpos_design::ledger::format_cents(*cents);
                    let (s, b) = entry(app, &card, kind, &amount, &format!("ref-{reference}"))
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
                    if s != expected {
                        return Err(TestCaseError::fail(format!(
                            "{kind} {amount} ref-{reference}: expected {expected}, got {s} {b}"
                        )));
                    }
                    if s == StatusCode::CREATED {
                        balance += signed;
                        booked.insert(*reference, (kind, signed));
                    }
                }
                let shown = self::balance(app, &card)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
                let (sum, _) = ledger_sum(app, &card)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
                if shown != erpos_design::ledger::format_cents(balance)
                    || sum != balance
                    || balance < 0
                {
                    return Err(TestCaseError::fail(format!(
                        "balance {shown}, ledger sum {sum}, model {balance}"
                    )));
                }
                Ok(())
            })
        });
        if let Err(e) = result {
            anyhow::bail!("on {}: {e}", app.backend);
        }
    }
    Ok(())
}
