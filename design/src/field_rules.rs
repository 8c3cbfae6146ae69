//! A field's rules asked of values already stored: a tightened bound, a shorter length, an
//! enum value removed, a new pattern or a new `required` leave old records breaking the
//! rules a write would enforce. A migration plan counts those records with the same checks
//! a write makes, so what the plan reports is what the next write would refuse.

use crate::field::{Field, FieldType};
use crate::value::Value;

/// The rules of one field, compiled once (the pattern) and asked of many values.
pub struct FieldRules<'a> {
    field: &'a Field,
    pattern: Option<jsonschema::Validator>,
}

impl<'a> FieldRules<'a> {
    /// The rules of `field`. The pattern is compiled by the JSON Schema engine that
    /// validates writes, so both read it the same way; one that does not compile was
    /// refused when the definition was saved, and is then not checked.
    pub fn new(field: &'a Field) -> Self {
        let pattern = match (&field.pattern, field.field_type) {
            (Some(p), FieldType::Text) => {
                jsonschema::validator_for(&serde_json::json!({ "type": "string", "pattern": p }))
                    .ok()
            }
            _ => None,
        };
        Self { field, pattern }
    }

    /// What is wrong with `value` under these rules, in words, or None when it conforms:
    /// empty where required, not one of the options, too long, out of bounds, too many
    /// decimals, or not matching the pattern.
    pub fn problem(&self, value: &Value) -> Option<String> {
        if matches!(value, Value::Null) {
            return self.field.required.then(|| "is required".to_owned());
        }
        let json = value.to_json();
        if let Err(message) = Value::from_json(self.field, &json) {
            return Some(message);
        }
        if let Some(pattern) = &self.pattern
            && !pattern.is_valid(&json)
        {
            return Some(format!(
                "does not match the pattern '{}'",
                self.field.pattern.as_deref().unwrap_or_default()
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tightened_rules_name_what_breaks() {
        let mut age = Field::new("nianling", "年龄", FieldType::Integer);
        age.min = Some(serde_json::json!(18));
        age.required = true;
        let rules = FieldRules::new(&age);
        assert_eq!(rules.problem(&Value::Integer(30)), None);
        assert_eq!(
            rules.problem(&Value::Integer(16)).as_deref(),
            Some("must be at least 18")
        );
        assert_eq!(rules.problem(&Value::Null).as_deref(), Some("is required"));

        let mut phone = Field::new("shouji", "手机", FieldType::Text);
        phone.pattern = Some("^1[0-9]{10}$".into());
        let rules = FieldRules::new(&phone);
        assert_eq!(rules.problem(&Value::Text("13800138000".into())), None);
        assert!(
            rules
                .problem(&Value::Text("8008".into()))
                .unwrap()
                .contains("pattern")
        );

        let mut source = Field::new("laiyuan", "来源", FieldType::Enum);
        source.options = vec!["小红书".into(), "朋友介绍".into()];
        let rules = FieldRules::new(&source);
        assert!(
            rules
                .problem(&Value::Text("微博".into()))
                .unwrap()
                .contains("not one of")
        );
    }
}
