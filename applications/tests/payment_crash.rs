//! Charges retried after a crash are never doubled (issue 14 acceptance): `erpos serve` on a
//! SQLite file; client threads book consumptions on prepaid accounts, each with its own
//! reference, and the server is killed with SIGKILL while they do. Restarted on the same
//! file, every charge is sent again with the same reference — whether or not its first
//! answer arrived — as a till would after a crash. Then each reference is in its account's
//! ledger exactly once, every balance is its recharge less its charges, and the ledger sums
//! to the balance. Every other charge is a visit's 预充值 charge (`POST /api/v1/charges`,
//! which writes the charge and its ledger consumption in one transaction): each of those is
//! listed once among the holder's charges, paid by the one ledger entry `charge:<ref>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::ensure;
use serde_json::{Value, json};

mod support;
use support::{Server, request};

const TOKEN: &str = "payment-crash-test-token";
const ACCOUNTS: usize = 4;
const CHARGES: usize = 400;
/// Charges answered before the kill: the kill comes once this many are.
const BEFORE_KILL: usize = 200;

fn call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    request(addr, method, path, body, Some(TOKEN))
}

fn amount(n: usize) -> String {
    format!("{}.{:02}", 1 + n % 7, n % 100)
}

/// The till's `n`th charge on `account` of `holder`: even ones a consumption booked on the
/// ledger, odd ones a visit's prepaid charge. Answers the status.
fn charge(addr: &str, account: &str, holder: &str, n: usize) -> anyhow::Result<(u16, Value)> {
    let reference = format!("{account}-charge-{n}");
    if n.is_multiple_of(2) {
        call(
            addr,
            "POST",
            &format!("/api/v1/accounts/{account}/entries"),
            Some(&json!({"kind": "consumption", "amount": amount(n), "reference": reference})),
        )
    } else {
        call(
            addr,
            "POST",
            "/api/v1/charges",
            Some(
                &json!({"reference": reference, "holder": holder, "charge_type": "prepaid",
                "account": account, "amount": amount(n), "note": "光子嫩肤"}),
            ),
        )
    }
}

fn holder(i: usize) -> String {
    format!("patient-{i}")
}

fn cents(text: &str) -> i64 {
    erpos_design::ledger::parse_cents(text).unwrap_or(i64::MIN)
}

#[test]
fn charges_retried_after_kill_9_are_booked_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("erpos.db");
    let mut server = Server::start(&db, TOKEN, &[])?;
    let addr = server.addr.clone();
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        let (s, a) = call(
            &addr,
            "POST",
            "/api/v1/accounts",
            Some(&json!({"holder": holder(i), "label": "储值卡"})),
        )?;
        ensure!(s == 201, "{s} {a}");
        let id = a["id"].as_str().unwrap_or_default().to_owned();
        let (s, r) = call(
            &addr,
            "POST",
            &format!("/api/v1/accounts/{id}/entries"),
            Some(
                &json!({"kind": "recharge", "amount": "100000.00", "reference": format!("{id}-recharge")}),
            ),
        )?;
        ensure!(s == 201, "{s} {r}");
        accounts.push(id);
    }

    // Tills charging, one per account, until the server dies under them.
    let stop = Arc::new(AtomicBool::new(false));
    let so_far = Arc::new(AtomicUsize::new(0));
    let mut tills = Vec::new();
    for (i, id) in accounts.clone().into_iter().enumerate() {
        let (addr, stop, so_far) = (addr.clone(), stop.clone(), so_far.clone());
        tills.push(std::thread::spawn(move || {
            let mut answered = 0;
            for n in 0..CHARGES {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match charge(&addr, &id, &holder(i), n) {
                    Ok((201, _)) => {
                        answered += 1;
                        so_far.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
            answered
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while so_far.load(Ordering::Relaxed) < BEFORE_KILL && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let answered: usize = tills.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    ensure!(answered > 0, "nothing was charged before the kill");
    ensure!(
        answered < ACCOUNTS * CHARGES,
        "the kill came after every charge"
    );

    // Restarted: every charge sent again, as a till does after a crash.
    let server = Server::start(&db, TOKEN, &[])?;
    let addr = server.addr.clone();
    for (i, id) in accounts.iter().enumerate() {
        for n in 0..CHARGES {
            let (s, r) = charge(&addr, id, &holder(i), n)?;
            ensure!(s == 201 || s == 200, "{s} {r}");
        }
        let (s, a) = call(&addr, "GET", &format!("/api/v1/accounts/{id}"), None)?;
        ensure!(s == 200, "{s} {a}");
        let mut entries = Vec::new();
        let mut after = 0;
        loop {
            let (s, page) = call(
                &addr,
                "GET",
                &format!("/api/v1/accounts/{id}/entries?limit=500&after={after}"),
                None,
            )?;
            ensure!(s == 200, "{s} {page}");
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                break;
            }
            after = items
                .last()
                .and_then(|e| e["seq"].as_i64())
                .unwrap_or(after);
            entries.extend(items);
        }
        assert_eq!(
            entries.len(),
            CHARGES + 1,
            "every charge once, and the recharge"
        );
        let mut references: Vec<&str> = entries
            .iter()
            .filter_map(|e| e["reference"].as_str())
            .collect();
        references.sort_unstable();
        references.dedup();
        assert_eq!(references.len(), CHARGES + 1, "no reference twice");
        for n in (1..CHARGES).step_by(2) {
            let paid_by = format!("charge:{id}-charge-{n}");
            assert!(
                references.binary_search(&paid_by.as_str()).is_ok(),
                "{paid_by} is on the ledger"
            );
        }
        // The holder's charges: every odd one once, each received in full from the account.
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = match &after {
                None => format!("/api/v1/charges?holder={}&limit=500", holder(i)),
                Some(a) => format!("/api/v1/charges?holder={}&limit=500&after={a}", holder(i)),
            };
            let (s, page) = call(&addr, "GET", &page, None)?;
            ensure!(s == 200, "{s} {page}");
            let items = page["items"].as_array().cloned().unwrap_or_default();
            match items.last().and_then(|c| c["id"].as_str()) {
                None => break,
                Some(last) => after = Some(last.to_owned()),
            }
            listed.extend(items);
        }
        let mut charged_refs: Vec<String> = listed
            .iter()
            .map(|c| c["reference"].as_str().unwrap_or_default().to_owned())
            .collect();
        charged_refs.sort_unstable();
        let mut expected: Vec<String> = (1..CHARGES)
            .step_by(2)
            .map(|n| format!("{id}-charge-{n}"))
            .collect();
        expected.sort_unstable();
        assert_eq!(charged_refs, expected, "each prepaid charge once");
        for c in &listed {
            assert_eq!(c["receivable"], c["received"], "{c}");
        }
        let charged: i64 = (0..CHARGES).map(|n| cents(&amount(n))).sum();
        assert_eq!(
            cents(a["balance"].as_str().unwrap_or_default()),
            10_000_000 - charged,
            "{a}"
        );
        let sum: i64 = entries
            .iter()
            .map(|e| cents(e["amount"].as_str().unwrap_or_default()))
            .sum();
        assert_eq!(sum, 10_000_000 - charged);
    }
    Ok(())
}
