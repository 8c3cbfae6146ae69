//! Typed field values: parsed from JSON, checked against a field's constraints, written to
//! and read from storage, and converted when a field changes type.
//!
//! Storage is text at the boundary: every value is bound as a text parameter and cast by
//! the database into the column's real type (see `ddl`), and read back cast to text. That
//! keeps one code path for SQLite and PostgreSQL while columns stay properly typed. Money
//! and decimals are stored as scaled 64-bit integers (cents for money) on every dialect:
//! exact, sortable, and identical in both.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::Value as Json;
use std::str::FromStr;

use crate::dialect::Dialect;
use crate::field::{Field, FieldType};

/// A value of one field of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// Text and enum values.
    Text(String),
    /// Integer values.
    Integer(i64),
    /// Decimal and money values, already at the field's scale.
    Decimal(Decimal),
    /// Boolean values.
    Boolean(bool),
    /// Date values.
    Date(NaiveDate),
    /// Datetime values, in UTC.
    Datetime(DateTime<Utc>),
    /// Reference values: the id of the target record.
    Reference(uuid::Uuid),
    /// JSON values.
    Json(Json),
}

/// Reads a JSON number or numeric string as an exact decimal.
pub fn decimal_from_json(v: &Json) -> Option<Decimal> {
    match v {
        Json::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        Json::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

/// Formats an instant the one way erpos stores and returns it: RFC 3339, UTC, microseconds.
/// A fixed width keeps text comparison in SQLite equal to time order.
pub fn format_datetime(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an instant as clients send it (RFC 3339) or as PostgreSQL prints a timestamptz.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
}

impl Value {
    /// Parses a JSON value for `field`, checking type, length and bounds (patterns and the
    /// overall shape are checked by the form's JSON Schema). The error is a sentence.
    pub fn from_json(field: &Field, v: &Json) -> Result<Value, String> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        let ty = field.field_type;
        let want = |what: &str| format!("expected {what} for a {} field", ty.as_str());
        let value = match ty {
            FieldType::Text => {
                let s = v.as_str().ok_or_else(|| want("a string"))?;
                let max = field
                    .max_length
                    .map_or(crate::bounds::MAX_TEXT_CHARS, |m| m as usize);
                if s.chars().count() > max {
                    return Err(format!("at most {max} characters"));
                }
                if s.contains('\0') {
                    return Err("text may not contain the NUL character (U+0000)".into());
                }
                Value::Text(s.to_owned())
            }
            FieldType::Enum => {
                let s = v.as_str().ok_or_else(|| want("a string"))?;
                if !field.options.iter().any(|o| o == s) {
                    return Err(format!("'{s}' is not one of: {}", field.options.join(", ")));
                }
                Value::Text(s.to_owned())
            }
            FieldType::Integer => {
                let n = match v {
                    Json::Number(n) => n.as_i64(),
                    Json::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| want("a whole number"))?;
                Value::Integer(n)
            }
            FieldType::Decimal | FieldType::Money => {
                let d = decimal_from_json(v).ok_or_else(|| want("a number"))?;
                let scale = field.scale();
                if d.normalize().scale() > scale {
                    return Err(format!("at most {scale} digits after the point"));
                }
                let mut d = d;
                d.rescale(scale);
                if to_scaled(d, scale).is_none() {
                    return Err("the number is too large".into());
                }
                Value::Decimal(d)
            }
            FieldType::Boolean => Value::Boolean(v.as_bool().ok_or_else(|| want("true or false"))?),
            FieldType::Date => {
                let s = v.as_str().ok_or_else(|| want("a date (YYYY-MM-DD)"))?;
                Value::Date(
                    NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map_err(|_| want("a date (YYYY-MM-DD)"))?,
                )
            }
            FieldType::Datetime => {
                let s = v.as_str().ok_or_else(|| want("an RFC 3339 date-time"))?;
                Value::Datetime(parse_datetime(s).ok_or_else(|| want("an RFC 3339 date-time"))?)
            }
            FieldType::Reference => {
                let s = v.as_str().ok_or_else(|| want("a record id"))?;
                Value::Reference(uuid::Uuid::parse_str(s).map_err(|_| want("a record id (uuid)"))?)
            }
            FieldType::Json => {
                if let Some(issue) = crate::bounds::check_json(v, "", crate::bounds::MAX_JSON_DEPTH)
                {
                    return Err(match issue.path.as_str() {
                        "" => issue.message,
                        at => format!("{} (at {at})", issue.message),
                    });
                }
                let size = crate::bounds::json_size(v);
                if size > crate::bounds::MAX_JSON_VALUE_BYTES {
                    return Err(format!(
                        "the value is {size} bytes as JSON; at most {}",
                        crate::bounds::MAX_JSON_VALUE_BYTES
                    ));
                }
                Value::Json(v.clone())
            }
        };
        check_bounds(field, &value)?;
        Ok(value)
    }

    /// The value as the API returns it: money and decimals as strings with the field's
    /// exact number of decimals, so no client ever sees a binary float.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(s) => Json::String(s.clone()),
            Value::Integer(n) => Json::from(*n),
            Value::Decimal(d) => Json::String(d.to_string()),
            Value::Boolean(b) => Json::Bool(*b),
            Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
            Value::Datetime(t) => Json::String(format_datetime(t)),
            Value::Reference(id) => Json::String(id.to_string()),
            Value::Json(j) => j.clone(),
        }
    }

    /// The text bound as a parameter for this value (None for NULL); the column's cast in
    /// `Dialect::param` turns it into the column's type.
    pub fn to_storage(&self, dialect: Dialect) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Text(s) => s.clone(),
            Value::Integer(n) => n.to_string(),
            Value::Decimal(d) => to_scaled(*d, d.scale())?.to_string(),
            Value::Boolean(b) => match dialect {
                Dialect::Sqlite => if *b { "1" } else { "0" }.to_owned(),
                Dialect::Postgres => b.to_string(),
            },
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Datetime(t) => format_datetime(t),
            Value::Reference(id) => id.to_string(),
            Value::Json(j) => j.to_string(),
        })
    }

    /// Reads a value back from its column cast to text.
    pub fn from_storage(field: &Field, text: Option<&str>) -> Result<Value, String> {
        let Some(s) = text else {
            return Ok(Value::Null);
        };
        let bad = || {
            format!(
                "stored value '{s}' is not a valid {}",
                field.field_type.as_str()
            )
        };
        Ok(match field.field_type {
            FieldType::Text | FieldType::Enum => Value::Text(s.to_owned()),
            FieldType::Integer => Value::Integer(s.parse().map_err(|_| bad())?),
            FieldType::Decimal | FieldType::Money => {
                let scaled: i64 = s.parse().map_err(|_| bad())?;
                Value::Decimal(Decimal::new(scaled, field.scale()))
            }
            FieldType::Boolean => Value::Boolean(matches!(s, "1" | "true" | "t")),
            FieldType::Date => {
                Value::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?)
            }
            FieldType::Datetime => Value::Datetime(parse_datetime(s).ok_or_else(bad)?),
            FieldType::Reference => Value::Reference(uuid::Uuid::parse_str(s).map_err(|_| bad())?),
            FieldType::Json => Value::Json(serde_json::from_str(s).map_err(|_| bad())?),
        })
    }

    /// Converts a stored value of field `from` to field `to` (a retyped field). Returns None
    /// when the value has no faithful equivalent; the migration keeps the original in the
    /// archived column either way.
    pub fn convert(&self, to: &Field) -> Option<Value> {
        if matches!(self, Value::Null) {
            return Some(Value::Null);
        }
        let as_json = match (self, to.field_type) {
            (Value::Json(Json::String(s)), _) => Json::String(s.clone()),
            (Value::Json(j), FieldType::Text) => Json::String(j.to_string()),
            (Value::Json(j), _) => j.clone(),
            (Value::Integer(n), FieldType::Text | FieldType::Enum) => Json::String(n.to_string()),
            (Value::Boolean(b), FieldType::Integer) => Json::from(i64::from(*b)),
            (Value::Boolean(b), FieldType::Text) => Json::String(b.to_string()),
            (Value::Integer(n), FieldType::Boolean) => Json::Bool(*n != 0),
            (Value::Date(d), FieldType::Datetime) => {
                Json::String(format!("{}T00:00:00Z", d.format("%Y-%m-%d")))
            }
            (Value::Datetime(t), FieldType::Date) => {
                Json::String(t.date_naive().format("%Y-%m-%d").to_string())
            }
            (Value::Decimal(d), FieldType::Integer) if d.fract().is_zero() => {
                Json::String(d.trunc().to_string())
            }
            (Value::Text(s), FieldType::Boolean) => match s.trim() {
                "true" | "1" | "是" => Json::Bool(true),
                "false" | "0" | "否" => Json::Bool(false),
                _ => return None,
            },
            (Value::Text(s), FieldType::Json) => {
                serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone()))
            }
            (Value::Text(s), FieldType::Integer | FieldType::Decimal | FieldType::Money) => {
                Json::String(s.trim().to_owned())
            }
            (other, _) => other.to_json(),
        };
        Value::from_json(to, &as_json).ok()
    }
}

/// A decimal as an integer count of its smallest unit (cents for money).
pub fn to_scaled(d: Decimal, scale: u32) -> Option<i64> {
    let mut d = d;
    d.rescale(scale);
    i64::try_from(d.mantissa()).ok()
}

fn check_bounds(field: &Field, value: &Value) -> Result<(), String> {
    let n = match value {
        Value::Integer(n) => Decimal::from(*n),
        Value::Decimal(d) => *d,
        _ => return Ok(()),
    };
    if let Some(min) = field.min.as_ref().and_then(decimal_from_json)
        && n < min
    {
        return Err(format!("must be at least {min}"));
    }
    if let Some(max) = field.max.as_ref().and_then(decimal_from_json)
        && n > max
    {
        return Err(format!("must be at most {max}"));
    }
    Ok(())
}

/// Whether converting every value of `from` to `to` can fail or lose information.
pub fn conversion_is_lossy(from: &Field, to: &Field) -> bool {
    use FieldType as T;
    let (a, b) = (from.field_type, to.field_type);
    if a == b {
        return match a {
            T::Decimal => to.scale() < from.scale(),
            T::Enum => from.options.iter().any(|o| !to.options.contains(o)),
            T::Reference => from.target != to.target,
            _ => false,
        };
    }
    !matches!(
        (a, b),
        (T::Integer, T::Decimal | T::Money | T::Text | T::Json)
            | (T::Decimal | T::Money, T::Text | T::Json)
            | (T::Money, T::Decimal)
            | (T::Boolean, T::Integer | T::Text | T::Json)
            | (T::Date, T::Datetime | T::Text | T::Json)
            | (T::Datetime, T::Text | T::Json)
            | (T::Enum, T::Text | T::Json)
            | (T::Reference, T::Text)
            | (T::Text, T::Json)
    ) || (a == T::Money && b == T::Decimal && to.scale() < 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_keeps_two_decimals_and_round_trips_through_storage() {
        let f = Field::new("balance", "预充值余额", FieldType::Money);
        let v = Value::from_json(&f, &json!("12.5")).unwrap_or(Value::Null);
        assert_eq!(v.to_json(), json!("12.50"));
        let stored = v.to_storage(Dialect::Sqlite);
        assert_eq!(stored.as_deref(), Some("1250"));
        assert_eq!(Value::from_storage(&f, stored.as_deref()), Ok(v));
        assert!(Value::from_json(&f, &json!("1.234")).is_err());
        assert!(Value::from_json(&f, &json!(true)).is_err());
    }

    #[test]
    fn bounds_and_enums_are_checked() {
        let mut age = Field::new("age", "年龄", FieldType::Integer);
        age.min = Some(json!(0));
        age.max = Some(json!(150));
        assert!(Value::from_json(&age, &json!(151)).is_err());
        assert_eq!(Value::from_json(&age, &json!(31)), Ok(Value::Integer(31)));
        let mut source = Field::new("source", "客户来源", FieldType::Enum);
        source.options = vec!["小红书".into(), "微博".into()];
        assert!(Value::from_json(&source, &json!("抖音")).is_err());
    }

    #[test]
    fn retyping_integer_to_money_is_lossless_and_text_to_integer_is_not() {
        let int = Field::new("x", "x", FieldType::Integer);
        let money = Field::new("x", "x", FieldType::Money);
        let text = Field::new("x", "x", FieldType::Text);
        assert!(!conversion_is_lossy(&int, &money));
        assert!(conversion_is_lossy(&text, &int));
        assert_eq!(
            Value::Integer(3).convert(&money),
            Some(Value::Decimal(Decimal::new(300, 2)))
        );
        assert_eq!(Value::Text("abc".into()).convert(&int), None);
        assert_eq!(
            Value::Text(" 42".into()).convert(&int),
            Some(Value::Integer(42))
        );
    }

    #[test]
    fn datetimes_parse_from_postgres_text() {
        let t = parse_datetime("2026-11-21 09:30:00.123456+00");
        assert_eq!(
            t.map(|t| format_datetime(&t)).as_deref(),
            Some("2026-11-21T09:30:00.123456Z")
        );
    }
}
