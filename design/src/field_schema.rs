//! The JSON Schema property of one field, on its own: the catalog checks a field's default
//! against it while a DataItem is being defined, and forms assemble it into a DataItem's
//! schema. Kept apart from `form` so the catalog does not depend on what is built from it.

use serde_json::{Map, Value as Json, json};

use crate::field::{Field, FieldType};

/// The JSON Schema property of one field.
pub fn field_schema(field: &Field) -> Json {
    let nullable = !field.required;
    let mut s = Map::new();
    s.insert("title".into(), Json::String(field.label.zh.clone()));
    if let Some(en) = &field.label.en {
        s.insert("description".into(), Json::String(en.clone()));
    }
    if field.series.is_some() || field.compute.is_some() {
        // Numbered or computed by the kernel: shown, never entered.
        s.insert("readOnly".into(), Json::Bool(true));
    }
    let with_null = |t: &str| {
        if nullable {
            json!([t, "null"])
        } else {
            json!(t)
        }
    };
    match field.field_type {
        FieldType::Text => {
            s.insert("type".into(), with_null("string"));
            if let Some(max) = field.max_length {
                s.insert("maxLength".into(), json!(max));
            }
            if let Some(p) = &field.pattern {
                s.insert("pattern".into(), json!(p));
            }
        }
        FieldType::Integer => {
            s.insert("type".into(), with_null("integer"));
            bounds(field, &mut s);
        }
        FieldType::Decimal | FieldType::Money => {
            let mut types = vec![json!("string"), json!("number")];
            if nullable {
                types.push(json!("null"));
            }
            s.insert("type".into(), Json::Array(types));
            s.insert(
                "pattern".into(),
                json!(format!(
                    "^-?[0-9]+(\\.[0-9]{{1,{}}})?$",
                    field.scale().max(1)
                )),
            );
            bounds(field, &mut s);
        }
        FieldType::Boolean => {
            s.insert("type".into(), with_null("boolean"));
        }
        FieldType::Date | FieldType::Datetime => {
            s.insert("type".into(), with_null("string"));
            let format = if field.field_type == FieldType::Date {
                "date"
            } else {
                "date-time"
            };
            s.insert("format".into(), json!(format));
        }
        FieldType::Enum => {
            let mut options: Vec<Json> = field.options.iter().map(|o| json!(o)).collect();
            if nullable {
                options.push(Json::Null);
            }
            s.insert("enum".into(), Json::Array(options));
        }
        FieldType::Reference => {
            s.insert("type".into(), with_null("string"));
            s.insert("format".into(), json!("uuid"));
        }
        FieldType::Json => {}
    }
    if let Some(d) = &field.default {
        s.insert("default".into(), d.clone());
    }
    Json::Object(s)
}

fn bounds(field: &Field, s: &mut Map<String, Json>) {
    let number = |v: &Json| {
        crate::value::decimal_from_json(v)
            .and_then(|d| serde_json::Number::from_f64(d.try_into().ok()?))
    };
    if let Some(min) = field.min.as_ref().and_then(number) {
        s.insert("minimum".into(), Json::Number(min));
    }
    if let Some(max) = field.max.as_ref().and_then(number) {
        s.insert("maximum".into(), Json::Number(max));
    }
}

/// Checks that a field's default satisfies its own schema property (pattern, bounds, …).
pub fn check_default(field: &Field, default: &Json) -> Result<(), String> {
    let schema = field_schema(field);
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| e.to_string())?;
    validator
        .iter_errors(default)
        .map(|e| e.to_string())
        .next()
        .map_or(Ok(()), Err)
}
