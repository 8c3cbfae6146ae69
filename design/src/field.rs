//! Fields of a DataItem: their types and constraints, as analysts declare them.
//!
//! A field is pure declaration; turning it into a column, a JSON Schema property or a typed
//! value is the job of `ddl`, `form` and `value`. Nothing here touches storage.

use serde::{Deserialize, Serialize};

use crate::label::Label;

/// The type of a field: what values it holds and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free text, optionally bounded by `max_length` and `pattern`.
    Text,
    /// A whole number (64-bit).
    Integer,
    /// An exact decimal with `scale` digits after the point (default 4).
    Decimal,
    /// An amount of money: an exact decimal with two digits after the point.
    Money,
    /// True or false.
    Boolean,
    /// A calendar date (`2026-11-21`).
    Date,
    /// An instant, stored in UTC (`2026-11-21T09:30:00Z`).
    Datetime,
    /// One of a fixed list of `options`.
    Enum,
    /// The id of a record of the `target` DataItem; checked on every write.
    Reference,
    /// Any JSON value, for data whose shape the analyst does not fix.
    Json,
}

impl FieldType {
    /// Every type, in the order the designer lists them.
    pub const ALL: [FieldType; 10] = [
        FieldType::Text,
        FieldType::Integer,
        FieldType::Decimal,
        FieldType::Money,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::Enum,
        FieldType::Reference,
        FieldType::Json,
    ];

    /// The name used in definitions and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Money => "money",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Enum => "enum",
            FieldType::Reference => "reference",
            FieldType::Json => "json",
        }
    }

    /// Whether `min`/`max` bounds make sense for this type.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Integer | FieldType::Decimal | FieldType::Money
        )
    }
}

/// The default number of digits after the point of a decimal field.
pub const DEFAULT_DECIMAL_SCALE: u32 = 4;
/// The largest scale a decimal may declare: values are stored as scaled 64-bit integers, so
/// a larger scale would leave too few digits before the point.
pub const MAX_DECIMAL_SCALE: u32 = 8;

/// One field of a DataItem as the analyst declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The identifier (column and API key); derived from `label.zh` with pinyin when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What staff see.
    pub label: Label,
    /// The kind of value.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Every record must have a value.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// No two records may share a value (enforced by a unique index).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// Numbered by a series (`{"prefix": "P", "date": false, "digits": 5}` gives P-00001,
    /// P-00002, …; with `date`, P-20261201-0001 restarting each day): the kernel gives
    /// each new record the next number, gap-free, in the transaction that creates it, so
    /// nobody invents a 病历号 by hand. Callers never write it (text fields only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::serial::SerialSpec>,
    /// Computed: a Rhai expression over the record (`record.danjia * record.shuliang`) and
    /// its composed children (`sum(record.mingxi, "jine")`), evaluated by the kernel on
    /// every write and stored, so it can be filtered, sorted and read by conditions like
    /// any field. Money and decimals are exact in it. Callers never write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<String>,
    /// The field's name in the active version, when a change renames it (`"renamed_from":
    /// "dianhua"` on `shouji`): the migration renames the column, so the records keep their
    /// values under the new name instead of an archive and an empty new field. Only a
    /// pending change carries it; the version applied is stored without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// The value a new record gets when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// The smallest allowed value (numeric types; a number or a decimal string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<serde_json::Value>,
    /// The largest allowed value (numeric types; a number or a decimal string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<serde_json::Value>,
    /// A regular expression every text value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The most characters a text value may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Included in the record's pinyin search keys.
    #[serde(default, skip_serializing_if = "is_false")]
    pub searchable: bool,
    /// The allowed values of an enum field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The DataItem a reference field points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Digits after the point of a decimal field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Text shown in a text area rather than a single line.
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiline: bool,
    /// The form section this field is shown in (defaults to the item's own section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<Label>,
    /// A widget overriding the one chosen from the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget: Option<String>,
    /// Help text shown under the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<Label>,
    /// Free-form labels for callers' own logic (loonflow's field label, e.g.
    /// `{"finance": "amount"}`): stored and returned with the form, never interpreted by
    /// erpos, so changing them changes no table.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub tags: serde_json::Map<String, serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Field {
    /// Digits after the point for decimal and money fields (0 for every other type).
    pub fn scale(&self) -> u32 {
        match self.field_type {
            FieldType::Money => 2,
            FieldType::Decimal => self.scale.unwrap_or(DEFAULT_DECIMAL_SCALE),
            _ => 0,
        }
    }

    /// A minimal field, used by tests, benches and packs built in code.
    pub fn new(name: &str, zh: &str, field_type: FieldType) -> Self {
        Self {
            name: name.to_owned(),
            label: Label {
                zh: zh.to_owned(),
                en: None,
            },
            field_type,
            required: false,
            unique: false,
            series: None,
            compute: None,
            renamed_from: None,
            default: None,
            min: None,
            max: None,
            pattern: None,
            max_length: None,
            searchable: false,
            options: Vec::new(),
            target: None,
            scale: None,
            multiline: false,
            section: None,
            widget: None,
            help: None,
            tags: serde_json::Map::new(),
        }
    }
}
