//! Serial numbers (`LEAVE-20261201-0001`, `P-00042`): how they are formed and checked, for
//! the processes of a service and for a record field numbered by a series alike.

use serde::{Deserialize, Serialize};

use crate::error::Issue;

/// Serial numbers of a service's processes or of a record field: `{prefix}-{YYYYMMDD}-{n}` (or `{prefix}-{n}` without the
/// date part), counted per prefix and day, gap-free (the scheduler assigns them in the
/// same transaction that creates the process, the kernel in the one that creates the
/// record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SerialSpec {
    /// The prefix: capitals, digits, `-` and `_`, 1–16 characters.
    pub prefix: String,
    /// Whether the local date is part of the number (and the count restarts each day).
    #[serde(default = "yes")]
    pub date: bool,
    /// Zero-padded digits of the count (1–9, default 4).
    #[serde(default = "four")]
    pub digits: u8,
    /// Local time's offset from UTC in minutes, for the date part (the clinic: 480).
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

fn yes() -> bool {
    true
}

fn four() -> u8 {
    4
}

impl SerialSpec {
    /// The key a count runs under at `now_ms`: the prefix and, with `date`, the local day.
    pub fn scope(&self, now_ms: i64) -> String {
        if !self.date {
            return self.prefix.clone();
        }
        let local = now_ms + i64::from(self.utc_offset_minutes) * 60_000;
        let day = chrono::DateTime::from_timestamp_millis(local)
            .map(|t| t.format("%Y%m%d").to_string())
            .unwrap_or_default();
        format!("{}-{day}", self.prefix)
    }

    /// The serial number `n` in `scope`.
    pub fn format(&self, scope: &str, n: u64) -> String {
        format!("{scope}-{n:0width$}", width = usize::from(self.digits))
    }

    /// Splits a serial number back into its scope and count (restoring the counters).
    pub fn parse(serial: &str) -> Option<(&str, u64)> {
        let (scope, n) = serial.rsplit_once('-')?;
        Some((scope, n.parse().ok()?))
    }

    /// What is wrong with the spec, each at `at` + its key (`/serial/prefix`).
    pub fn problems(&self, at: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        let ok = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if self.prefix.is_empty() || self.prefix.len() > 16 || !self.prefix.chars().all(ok) {
            issues.push(Issue::new(
                format!("{at}/prefix"),
                "1 to 16 capitals, digits, '-' or '_' (such as LEAVE)",
            ));
        }
        if !(1..=9).contains(&self.digits) {
            issues.push(Issue::new(format!("{at}/digits"), "1 to 9 digits"));
        }
        if !(-840..=840).contains(&self.utc_offset_minutes) {
            issues.push(Issue::new(
                format!("{at}/utc_offset_minutes"),
                "must be between -840 and 840",
            ));
        }
        issues
    }
}
