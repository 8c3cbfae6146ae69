//! Bilingual labels. Every design object is named for people in Chinese first (the clinic's
//! staff) and optionally in English (integrators); identifiers are derived from the Chinese.

use serde::{Deserialize, Serialize};

use crate::error::Issue;

/// A label in Chinese (required) and English (optional).
///
/// Chinese is required because it is what the clinic's staff read and what identifiers are
/// derived from when an analyst gives none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

    /// Every problem with this label's texts (too long, invisible characters; see
    /// [`crate::bounds::label_problem`]), at `base/zh` and `base/en`.
    pub fn problems(&self, base: &str) -> Vec<Issue> {
        [("zh", Some(&self.zh)), ("en", self.en.as_ref())]
            .into_iter()
            .filter_map(|(key, text)| {
                let problem = crate::bounds::label_problem(text?)?;
                Some(Issue::new(format!("{base}/{key}"), problem))
            })
            .collect()
    }

    /// Like [`Label::problems`] for longer texts (a field's help: newlines allowed, up
    /// to `max_chars`).
    pub fn text_problems(&self, base: &str, max_chars: usize) -> Vec<Issue> {
        [("zh", Some(&self.zh)), ("en", self.en.as_ref())]
            .into_iter()
            .filter_map(|(key, text)| {
                let problem = crate::bounds::text_problem(text?, max_chars, true)?;
                Some(Issue::new(format!("{base}/{key}"), problem))
            })
            .collect()
    }
}
