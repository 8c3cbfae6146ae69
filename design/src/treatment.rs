//! Treatments as data (issue 14 §1): what one visit of a treatment needs — how long it
//! takes, the buffers before and after it (preparation, cleaning), one resource of each
//! type it names (a treatment room, a device) and a practitioner holding its skill or
//! certification. Slot search and booking read it; nothing here touches storage.

use serde::{Deserialize, Serialize};

use crate::error::Issue;
use crate::label::Label;

/// The longest treatment, in minutes.
pub const MAX_DURATION_MINUTES: u32 = 600;
/// The longest buffer, in minutes (the same as a booking's).
pub const MAX_BUFFER_MINUTES: u32 = 240;
/// The most resource types one treatment needs.
pub const MAX_RESOURCE_TYPES: usize = 5;

/// A treatment and what a visit of it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Treatment {
    /// Its identifier (`tiao_q`); derived from `label.zh` when left out.
    #[serde(default)]
    pub name: String,
    /// What staff and patients see (调Q激光).
    pub label: Label,
    /// How long the treatment itself takes.
    pub duration_minutes: u32,
    /// Minutes its resources and practitioner are held before it (preparation).
    #[serde(default)]
    pub buffer_before_minutes: u32,
    /// Minutes they are held after it (cleaning).
    #[serde(default)]
    pub buffer_after_minutes: u32,
    /// One resource of each of these types is held (`treatment_room`, `picolaser`).
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// A practitioner holding this skill or certification is held (none: no practitioner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// What one visit consumes from stock (保妥适 50 U); capacity planning counts it
    /// against what is usable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumables: Vec<Consumable>,
    /// The service a booked visit of it runs (the clinic's visit flow: reminder,
    /// reception, consultation, consent, payment, the treatment on the booked holders,
    /// care, follow-ups): booking one starts a process of it. None: a booking is a
    /// reservation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What one visit costs, yuan with at most two decimals (`"3800.00"`): a visit's charge
    /// receives it unless the desk gives another amount. None: every charge names its amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
}

/// A material a visit consumes, and how much of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumable {
    /// The material's name.
    pub material: String,
    /// How much, in the material's unit (1 … 1 000 000).
    pub quantity: i64,
}

impl Treatment {
    /// Checks the treatment on its own (references are the caller's to check): every
    /// problem at its pointer. Derives `name` from the label when it is empty.
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
        if !(5..=MAX_DURATION_MINUTES).contains(&self.duration_minutes) {
            issues.push(Issue::new(
                "/duration_minutes",
                format!("from 5 to {MAX_DURATION_MINUTES} minutes"),
            ));
        }
        for (minutes, at) in [
            (self.buffer_before_minutes, "/buffer_before_minutes"),
            (self.buffer_after_minutes, "/buffer_after_minutes"),
        ] {
            if minutes > MAX_BUFFER_MINUTES {
                issues.push(Issue::new(
                    at,
                    format!("at most {MAX_BUFFER_MINUTES} minutes"),
                ));
            }
        }
        if self.resource_types.len() > MAX_RESOURCE_TYPES {
            issues.push(Issue::new(
                "/resource_types",
                format!("at most {MAX_RESOURCE_TYPES}"),
            ));
        }
        for (i, t) in self.resource_types.iter().enumerate() {
            if self.resource_types[..i].contains(t) {
                issues.push(Issue::new(
                    format!("/resource_types/{i}"),
                    format!("'{t}' is named twice: a treatment holds one resource of each type"),
                ));
            }
        }
        if let Some(price) = &self.price {
            match crate::ledger::parse_cents(price) {
                Ok(cents) if cents < 0 => {
                    issues.push(Issue::new("/price", "must not be negative"));
                }
                Ok(_) => {}
                Err(e) => issues.push(Issue::new("/price", e)),
            }
        }
        for (i, c) in self.consumables.iter().enumerate() {
            if !(1..=crate::stock::MAX_QUANTITY).contains(&c.quantity) {
                issues.push(Issue::new(
                    format!("/consumables/{i}/quantity"),
                    format!("from 1 to {}", crate::stock::MAX_QUANTITY),
                ));
            }
            if self.consumables[..i]
                .iter()
                .any(|o| o.material == c.material)
            {
                issues.push(Issue::new(
                    format!("/consumables/{i}/material"),
                    format!("'{}' is named twice", c.material),
                ));
            }
        }
        if self.resource_types.is_empty() && self.skill.is_none() {
            issues.push(Issue::new(
                "/resource_types",
                "a treatment needs at least one resource type or a skill",
            ));
        }
        if issues.is_empty() {
            Ok(self)
        } else {
            Err(issues)
        }
    }
}
