//! The design layer's error type: what is wrong with a definition or a value, and where.

use serde::Serialize;

/// One problem, located by a JSON pointer into the document that was submitted
/// (`/fields/2/type`), so that a designer can highlight the offending input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Issue {
    /// JSON pointer to the offending part of the submitted document.
    pub path: String,
    /// What is wrong, in words an analyst understands.
    pub message: String,
}

impl Issue {
    /// An issue at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Everything the design layer can refuse.
#[derive(Debug, thiserror::Error)]
pub enum DesignError {
    /// A definition (DataItem, field, …) is invalid; every problem found is listed.
    #[error("the definition is invalid: {}", summary(.0))]
    InvalidDefinition(Vec<Issue>),
    /// A record (or a default) does not fit its form; every failing field is listed.
    #[error("the record is invalid: {}", summary(.0))]
    InvalidRecord(Vec<Issue>),
    /// A DataItem named in a request does not exist.
    #[error("no DataItem named '{0}'")]
    UnknownItem(String),
}

fn summary(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Converts a serde path (`fields[2].type`) as reported by `serde_path_to_error` style
/// parsers into a JSON pointer (`/fields/2/type`).
pub fn serde_path_to_pointer(path: &str) -> String {
    if path.is_empty() || path == "." {
        return String::new();
    }
    let mut out = String::new();
    for segment in path.split('.') {
        let mut rest = segment;
        if let Some(idx) = rest.find('[') {
            let (name, indexes) = rest.split_at(idx);
            if !name.is_empty() {
                out.push('/');
                out.push_str(name);
            }
            rest = indexes;
            for index in rest.split('[').filter(|s| !s.is_empty()) {
                out.push('/');
                out.push_str(index.trim_end_matches(']'));
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_pointers() {
        assert_eq!(serde_path_to_pointer("fields[2].type"), "/fields/2/type");
        assert_eq!(serde_path_to_pointer("label"), "/label");
        assert_eq!(serde_path_to_pointer("."), "");
    }
}
