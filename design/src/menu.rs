//! Menu layouts (MenuItem in the original metamodel): how an analyst arranges the menu —
//! which sections, in which order, which entries in each, under which labels. The kernel
//! generates the entries from the definitions (work lists, services to start, DataItems to
//! list) and filters them by each caller's grants; a layout only orders and groups them,
//! so it can never show anyone something they may not open.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::Issue;
use crate::label::Label;

/// The most sections a layout has.
pub const MAX_SECTIONS: usize = 50;
/// The most entries a layout places in all.
pub const MAX_ENTRIES: usize = 1_000;
/// The work lists a menu can open.
pub const WORK_VIEWS: [&str; 3] = ["todo", "handled", "created"];

/// What an entry opens.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = MenuEntryKind)]
pub enum EntryKind {
    /// A work list (`todo`, `handled`, `created`).
    Tasks,
    /// Starting a service.
    Service,
    /// A DataItem's records.
    Records,
}

impl EntryKind {
    /// The word the menu's entries carry (`kind`).
    pub fn word(self) -> &'static str {
        match self {
            EntryKind::Tasks => "tasks",
            EntryKind::Service => "service",
            EntryKind::Records => "records",
        }
    }
}

/// One entry a layout places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuLayoutEntry {
    /// What it opens.
    pub kind: EntryKind,
    /// The work list's view, the service's or the DataItem's name.
    pub name: String,
    /// A label replacing the definition's own (`预约` for the service 到店就诊).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
}

/// One section of a layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuLayoutSection {
    /// Its key (an identifier, unique in the layout).
    pub key: String,
    /// What staff see.
    pub label: Label,
    /// Its entries, in order.
    #[serde(default)]
    pub items: Vec<MenuLayoutEntry>,
}

/// The analyst's arrangement of the menu.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuLayout {
    /// The sections, in order. Entries it does not place follow in the generated
    /// sections (work, start, records).
    #[serde(default)]
    pub sections: Vec<MenuLayoutSection>,
}

impl MenuLayout {
    /// The problems of this layout, given whether a (kind, name) names something that
    /// exists (`known`, which answers with a close name for a slip when it can).
    pub fn problems(&self, known: impl Fn(EntryKind, &str) -> Result<(), String>) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.sections.len() > MAX_SECTIONS {
            issues.push(Issue::new(
                "/sections",
                format!(
                    "at most {MAX_SECTIONS} sections; this layout has {}",
                    self.sections.len()
                ),
            ));
            return issues;
        }
        let entries: usize = self.sections.iter().map(|s| s.items.len()).sum();
        if entries > MAX_ENTRIES {
            issues.push(Issue::new(
                "/sections",
                format!("at most {MAX_ENTRIES} entries in all; this layout places {entries}"),
            ));
            return issues;
        }
        let mut keys = BTreeSet::new();
        let mut placed = BTreeSet::new();
        for (i, section) in self.sections.iter().enumerate() {
            let at = format!("/sections/{i}");
            if !crate::naming::is_identifier(&section.key) {
                issues.push(Issue::new(
                    format!("{at}/key"),
                    format!(
                        "'{}' is not an identifier (lowercase letters, digits, underscores)",
                        section.key
                    ),
                ));
            } else if !keys.insert(section.key.as_str()) {
                issues.push(Issue::new(
                    format!("{at}/key"),
                    format!("another section is already '{}'", section.key),
                ));
            }
            if section.label.zh.trim().is_empty() {
                issues.push(Issue::new(
                    format!("{at}/label/zh"),
                    "a Chinese label is required",
                ));
            }
            issues.extend(section.label.problems(&format!("{at}/label")));
            for (j, entry) in section.items.iter().enumerate() {
                let at = format!("{at}/items/{j}");
                if let Err(problem) = known(entry.kind, &entry.name) {
                    issues.push(Issue::new(format!("{at}/name"), problem));
                }
                if !placed.insert((entry.kind, entry.name.as_str())) {
                    issues.push(Issue::new(
                        format!("{at}/name"),
                        format!(
                            "{} '{}' is already placed in this layout",
                            entry.kind.word(),
                            entry.name
                        ),
                    ));
                }
                if let Some(label) = &entry.label {
                    issues.extend(label.problems(&format!("{at}/label")));
                }
            }
        }
        issues
    }
}
