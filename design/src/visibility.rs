//! Row visibility: which records of a DataItem a role sees. A grant (`records:huanzhe:read`)
//! says whether someone reads a DataItem at all; a visibility rule says which of its records
//! — a nurse of 静安店 sees the patients of her own branch, a doctor the visits he attends.
//! Rules compare one field of the record with who is asking, so that a list, a search, a
//! read and a stream all apply them the same way, and a list applies them in its query
//! (its total and pages count only what the caller may see).
//!
//! Once a DataItem has rules, a caller sees a record when some rule of a role they hold
//! (or of `*`, everyone) admits it; a caller none of whose roles has a rule sees none of its
//! records. Administrators see every record.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::Issue;
use crate::field::{Field, FieldType};

/// The most visibility rules a DataItem has (one per role and field is plenty).
pub const MAX_RULES: usize = 100;

/// What a role sees of a DataItem's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sees {
    /// Every record.
    All,
    /// The records whose `field` names the caller's department or one below it (a branch
    /// manager sees the branches under her).
    Department,
    /// The records whose `field` holds the caller's user id (the doctor attending).
    User,
}

/// One visibility rule of a DataItem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowRule {
    /// The role it is for; `*` for everyone who reads the DataItem.
    pub role: String,
    /// What they see.
    pub sees: Sees,
    /// The record's field compared with the caller (`department` and `user`): a text or
    /// enum field holding a department name or a user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Which records a caller sees, decided from the rules and who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowScope {
    /// Every record (no rules, an administrator, or a rule that sees all).
    All,
    /// The records where some listed field holds one of its listed values; none when the
    /// list is empty.
    Where(Vec<(String, BTreeSet<String>)>),
}

impl RowScope {
    /// Whether a record (the API's JSON of it) is within this scope.
    pub fn admits(&self, record: &serde_json::Value) -> bool {
        match self {
            RowScope::All => true,
            RowScope::Where(list) => list.iter().any(|(field, values)| {
                record
                    .get(field)
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|v| values.contains(v))
            }),
        }
    }
}

/// Who is asking, as far as visibility is concerned.
pub struct Asker<'a> {
    /// Their user id.
    pub user: &'a str,
    /// The roles they hold.
    pub roles: &'a BTreeSet<String>,
    /// Their department and every department below it.
    pub departments: &'a BTreeSet<String>,
}

/// The scope `rules` give `asker` (not an administrator: the caller decides that).
pub fn scope(rules: &[RowRule], asker: &Asker<'_>) -> RowScope {
    if rules.is_empty() {
        return RowScope::All;
    }
    let mut list: Vec<(String, BTreeSet<String>)> = Vec::new();
    for rule in rules
        .iter()
        .filter(|r| r.role == "*" || asker.roles.contains(&r.role))
    {
        let values: BTreeSet<String> = match rule.sees {
            Sees::All => return RowScope::All,
            Sees::Department => asker.departments.clone(),
            Sees::User => BTreeSet::from([asker.user.to_owned()]),
        };
        let Some(field) = &rule.field else { continue };
        match list.iter_mut().find(|(f, _)| f == field) {
            Some((_, known)) => known.extend(values),
            None => list.push((field.clone(), values)),
        }
    }
    list.retain(|(_, values)| !values.is_empty());
    RowScope::Where(list)
}

/// The problems of `rules` for a DataItem with `fields` (its effective fields): a
/// comparison needs a text or enum field of the item, `all` needs none, and one role has
/// one rule per field.
pub fn check(rules: &[RowRule], fields: &[Field], issues: &mut Vec<Issue>) {
    if rules.len() > MAX_RULES {
        issues.push(Issue::new(
            "/visibility",
            format!(
                "at most {MAX_RULES} visibility rules; this DataItem has {}",
                rules.len()
            ),
        ));
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = |key: &str| format!("/visibility/{i}/{key}");
        if rule.role.trim().is_empty() {
            issues.push(Issue::new(
                at("role"),
                "a rule names a role, or * for everyone",
            ));
        }
        match (rule.sees, &rule.field) {
            (Sees::All, Some(_)) => issues.push(Issue::new(
                at("field"),
                "a rule that sees all records compares no field; leave field out",
            )),
            (Sees::All, None) => {}
            (_, None) => issues.push(Issue::new(
                at("field"),
                "a rule comparing the record with the caller names the field it compares",
            )),
            (_, Some(name)) => match fields.iter().find(|f| &f.name == name) {
                None => {
                    let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
                    issues.push(Issue::new(
                        at("field"),
                        crate::directory::unknown("field", name, names.iter()),
                    ));
                }
                Some(f) if !matches!(f.field_type, FieldType::Text | FieldType::Enum) => {
                    issues.push(Issue::new(
                        at("field"),
                        format!(
                            "'{name}' is a {} field; a department or a user id is held in a text or enum field",
                            f.field_type.as_str()
                        ),
                    ))
                }
                Some(_) => {}
            },
        }
        if !seen.insert((rule.role.clone(), rule.field.clone())) {
            issues.push(Issue::new(
                at("role"),
                format!("'{}' already has a rule for this field", rule.role),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_nurse_sees_her_branch_a_doctor_his_patients_a_manager_all() {
        let rules = vec![
            RowRule {
                role: "nurse".into(),
                sees: Sees::Department,
                field: Some("mendian".into()),
            },
            RowRule {
                role: "doctor".into(),
                sees: Sees::User,
                field: Some("yisheng".into()),
            },
            RowRule {
                role: "manager".into(),
                sees: Sees::All,
                field: None,
            },
        ];
        let (nurse, doctor, manager, clerk) = (
            set(&["nurse"]),
            set(&["doctor"]),
            set(&["manager", "nurse"]),
            set(&["clerk"]),
        );
        let branches = set(&["jingan"]);
        let ask = |roles| Asker {
            user: "li",
            roles,
            departments: &branches,
        };
        let jingan = serde_json::json!({"mendian": "jingan", "yisheng": "wang"});
        let xuhui = serde_json::json!({"mendian": "xuhui", "yisheng": "li"});
        assert!(scope(&rules, &ask(&nurse)).admits(&jingan));
        assert!(!scope(&rules, &ask(&nurse)).admits(&xuhui));
        assert!(scope(&rules, &ask(&doctor)).admits(&xuhui));
        assert!(!scope(&rules, &ask(&doctor)).admits(&jingan));
        assert_eq!(scope(&rules, &ask(&manager)), RowScope::All);
        assert_eq!(scope(&rules, &ask(&clerk)), RowScope::Where(Vec::new()));
        assert!(!scope(&rules, &ask(&clerk)).admits(&jingan));
        assert_eq!(scope(&[], &ask(&clerk)), RowScope::All);
    }
}
