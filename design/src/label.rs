//! Bilingual labels. Every design object is named for people in Chinese first (the clinic's
//! staff) and optionally in English (integrators); identifiers are derived from the Chinese.

use serde::{Deserialize, Serialize};

/// A label in Chinese (required) and English (optional).
///
/// Chinese is required because it is what the clinic's staff read and what identifiers are
/// derived from when an analyst gives none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The Chinese label, shown to staff and used to derive identifiers.
    pub zh: String,
    /// The English label, shown to integrators and English-speaking users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

impl Label {
    /// A label with both languages, used by built-in sections of generated layouts.
    pub fn new(zh: &str, en: &str) -> Self {
        Self {
            zh: zh.to_owned(),
            en: Some(en.to_owned()),
        }
    }
}
