//! Stock as data (issue 14 §8): materials (保妥适, 玻尿酸, 麻膏 …) counted in a unit of
//! their own, lots of them per branch with an expiry date (and a shorter life once opened,
//! for multi-dose vials), and the movements that are the only way stock on hand changes:
//! in, out (consumed), adjust, write-off. Pure: the kernel's `stock` stores them.

use serde::{Deserialize, Serialize};

use crate::error::Issue;
use crate::label::Label;

/// The most one movement moves, in a material's unit.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// The longest life after opening, in hours (a year).
pub const MAX_OPENED_HOURS: u32 = 24 * 366;

/// A material the clinic keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// Its identifier (`baotuoshi`); derived from `label.zh` when left out.
    #[serde(default)]
    pub name: String,
    /// What staff see (保妥适 100U).
    pub label: Label,
    /// The unit stock is counted in (`U`, `支`, `ml`): whole numbers of it.
    pub unit: String,
    /// Below this on hand in a branch, a low-stock alert.
    #[serde(default)]
    pub reorder_level: i64,
    /// Hours an opened lot stays usable (a reconstituted vial); none: until its expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_within_hours_of_opening: Option<u32>,
}

impl Material {
    /// Checks the material on its own: every problem at its pointer. Derives `name` from
    /// the label when it is empty.
    pub fn prepare(mut self) -> Result<Self, Vec<Issue>> {
        let mut issues = Vec::new();
        if self.label.zh.trim().is_empty() {
            issues.push(Issue::new("/label/zh", "a Chinese label is required"));
        }
        if self.name.is_empty() {
            self.name = crate::naming::derive_identifier(&self.label.zh);
        }
        if !crate::naming::is_identifier(&self.name) {
            issues.push(Issue::new(
                "/name",
                "use lowercase letters, digits and single underscores, starting with a letter",
            ));
        }
        let unit = self.unit.trim();
        if unit.is_empty() || unit.chars().count() > 16 {
            issues.push(Issue::new("/unit", "from 1 to 16 characters"));
        }
        if !(0..=MAX_QUANTITY).contains(&self.reorder_level) {
            issues.push(Issue::new(
                "/reorder_level",
                format!("from 0 to {MAX_QUANTITY}"),
            ));
        }
        if let Some(h) = self.use_within_hours_of_opening
            && !(1..=MAX_OPENED_HOURS).contains(&h)
        {
            issues.push(Issue::new(
                "/use_within_hours_of_opening",
                format!("from 1 to {MAX_OPENED_HOURS} hours"),
            ));
        }
        if issues.is_empty() {
            Ok(self)
        } else {
            Err(issues)
        }
    }
}

/// What a movement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Received into the lot.
    In,
    /// Consumed (a treatment took it).
    Out,
    /// A count corrected, up or down.
    Adjust,
    /// Thrown away: expired, broken, contaminated.
    WriteOff,
}

impl MovementKind {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::In => "in",
            MovementKind::Out => "out",
            MovementKind::Adjust => "adjust",
            MovementKind::WriteOff => "write_off",
        }
    }

    /// The kind a stored word names.
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "in" => MovementKind::In,
            "out" => MovementKind::Out,
            "adjust" => MovementKind::Adjust,
            "write_off" => MovementKind::WriteOff,
            _ => return None,
        })
    }
}

/// A lot as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lot {
    /// Its id.
    pub id: String,
    /// The material.
    pub material: String,
    /// The branch that holds it.
    pub branch: String,
    /// The supplier's lot number (traceability).
    pub lot_number: String,
    /// The last day it may be used (YYYY-MM-DD).
    pub expires_on: String,
    /// When it was opened, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    /// The first instant it may no longer be used: the end of its expiry day (UTC), or
    /// sooner once opened.
    pub usable_until: String,
    /// On hand: the sum of its movements, never negative.
    pub on_hand: i64,
    /// How many movements it has had.
    pub movements: i64,
}

/// A movement as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Movement {
    /// Its number in its lot, from 1.
    pub seq: i64,
    /// What it did.
    pub kind: MovementKind,
    /// The change to on hand, signed.
    pub quantity: i64,
    /// On hand after it.
    pub on_hand: i64,
    /// The operation's reference (a receipt's delivery note, a treatment's id).
    pub reference: String,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who.
    pub actor: String,
    /// When.
    pub at: String,
}

/// The first millisecond after the day `date` (YYYY-MM-DD, UTC), or None when it is no date.
pub fn end_of_day_ms(date: &str) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let next = day.succ_opt()?;
    Some(next.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_material_is_checked_at_its_pointers() {
        let bad = Material {
            name: String::new(),
            label: Label {
                zh: String::new(),
                en: None,
            },
            unit: String::new(),
            reorder_level: -1,
            use_within_hours_of_opening: Some(0),
        };
        let issues = bad.prepare().err().unwrap_or_default();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        for p in [
            "/label/zh",
            "/unit",
            "/reorder_level",
            "/use_within_hours_of_opening",
        ] {
            assert!(paths.contains(&p), "{p} in {paths:?}");
        }
        assert_eq!(end_of_day_ms("2026-12-31"), Some(1_798_761_600_000));
        assert_eq!(end_of_day_ms("2026-13-01"), None);
        assert_eq!(
            MovementKind::parse("write_off"),
            Some(MovementKind::WriteOff)
        );
    }
}
