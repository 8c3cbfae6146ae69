//! Prepaid accounts as data (issue 14 §7): the kinds of ledger entry and exact amounts in
//! cents. A balance is the sum of its entries and never negative; an entry names its
//! `reference` so a retried charge is recognised and never booked twice. Pure: the
//! kernel's `ledger` stores and decides.

use serde::{Deserialize, Serialize};

/// The largest amount one entry moves: ten million yuan, in cents.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000;

/// What an entry does to a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = LedgerEntryKind)]
pub enum EntryKind {
    /// 充值: money paid in (adds).
    Recharge,
    /// 消费: a treatment or product paid from the account (takes).
    Consumption,
    /// 退款: money paid back to the patient (takes).
    Refund,
    /// 调整: a correction by someone allowed to make one (adds or takes, as signed).
    Adjustment,
}

impl EntryKind {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Recharge => "recharge",
            EntryKind::Consumption => "consumption",
            EntryKind::Refund => "refund",
            EntryKind::Adjustment => "adjustment",
        }
    }

    /// The kind a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        [
            EntryKind::Recharge,
            EntryKind::Consumption,
            EntryKind::Refund,
            EntryKind::Adjustment,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// The change to the balance of an entry of `cents` (as given: positive, except an
    /// adjustment's, which carries its sign).
    pub fn signed(self, cents: i64) -> i64 {
        match self {
            EntryKind::Recharge | EntryKind::Adjustment => cents,
            EntryKind::Consumption | EntryKind::Refund => -cents,
        }
    }
}

/// An amount of yuan written as text (`"1234.50"`, `"-20"`) in cents, exactly: at most two
/// decimals, at most [`MAX_AMOUNT_CENTS`]. Says what is wrong otherwise.
pub fn parse_cents(text: &str) -> Result<i64, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || (digits.contains('.') && fraction.is_empty())
    {
        return Err(format!("'{text}' is not an amount of yuan (1234.50)"));
    }
    if fraction.len() > 2 {
        return Err(format!(
            "'{text}' has more than two decimals: amounts are exact to the fen"
        ));
    }
    if whole.len() > 12 {
        return Err(format!("'{text}' is more than one entry may move"));
    }
    let whole: i64 = whole
        .parse()
        .map_err(|_| format!("'{text}' is not an amount"))?;
    let fraction: i64 = format!("{fraction:0<2}").parse().unwrap_or(0);
    let cents = whole * 100 + fraction;
    if cents > MAX_AMOUNT_CENTS {
        return Err(format!(
            "'{text}' is more than one entry may move (10,000,000.00)"
        ));
    }
    Ok(if negative { -cents } else { cents })
}

/// Cents as yuan text with two decimals (`123450` → `"1234.50"`).
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A prepaid account as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    /// Its id.
    pub id: String,
    /// Whose it is: the patient's record id.
    pub holder: String,
    /// What staff call it (储值卡).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The balance, yuan with two decimals: the sum of its entries.
    pub balance: String,
    /// How many entries it has.
    pub entries: i64,
    /// When it was opened (RFC 3339).
    pub created_at: String,
    /// When its last entry was booked.
    pub updated_at: String,
}

/// One entry of an account's ledger as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// Its place in the ledger, from 1.
    pub seq: i64,
    /// What it is.
    pub kind: EntryKind,
    /// The change to the balance, signed, yuan with two decimals.
    pub amount: String,
    /// The balance after it.
    pub balance: String,
    /// The caller's reference: a retry with the same one answers this entry.
    pub reference: String,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who booked it.
    pub actor: String,
    /// When (RFC 3339).
    pub at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_cents() {
        assert_eq!(parse_cents("1234.50"), Ok(123_450));
        assert_eq!(parse_cents("0.05"), Ok(5));
        assert_eq!(parse_cents("7"), Ok(700));
        assert_eq!(parse_cents("-20.1"), Ok(-2_010));
        for bad in [
            "",
            "1.",
            ".5",
            "12.345",
            "1e3",
            "１２",
            "10000000.01",
            "--1",
            "1,000",
        ] {
            assert!(parse_cents(bad).is_err(), "{bad}");
        }
        assert_eq!(format_cents(123_450), "1234.50");
        assert_eq!(format_cents(-5), "-0.05");
        for cents in [-1_000_000_000, -1, 0, 1, 99, 100, 123_456_789] {
            assert_eq!(parse_cents(&format_cents(cents)), Ok(cents));
        }
    }
}
