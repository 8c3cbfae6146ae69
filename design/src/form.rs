//! Forms generated from DataItems: a JSON Schema (draft 2020-12) that every record write is
//! validated against, and a layout (sections, order, widgets, bilingual labels) that the
//! console renders. The schema is the single description of a valid record: the API, the
//! console and integrators all read the same one.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::catalog::{Catalog, EffectiveField};
use crate::data_item::Cardinality;
use crate::error::{DesignError, Issue};
use crate::field::{Field, FieldType};
use crate::label::Label;
use crate::value::Value;

/// Record keys that are not fields: accepted on writes (and ignored where read-only) so a
/// client can send back a record it read.
pub const SYSTEM_KEYS: [&str; 4] = ["id", "version", "created_at", "updated_at"];

pub use crate::field_schema::{check_default, field_schema};

fn object_schema(
    catalog: &Catalog,
    item: &str,
    with_required: bool,
    defs: &mut Map<String, Json>,
) -> Json {
    let fields = catalog.effective_fields(item);
    let mut properties = Map::new();
    properties.insert(
        "id".into(),
        json!({"type": "string", "format": "uuid", "readOnly": true}),
    );
    properties.insert("version".into(), json!({"type": "integer", "minimum": 1}));
    properties.insert(
        "created_at".into(),
        json!({"type": "string", "readOnly": true}),
    );
    properties.insert(
        "updated_at".into(),
        json!({"type": "string", "readOnly": true}),
    );
    for e in &fields {
        properties.insert(e.field.name.clone(), field_schema(&e.field));
    }
    if let Some(def) = catalog.get(item) {
        for c in &def.consists {
            if !defs.contains_key(&c.item) {
                defs.insert(c.item.clone(), Json::Null);
                let child = object_schema(catalog, &c.item, true, defs);
                defs.insert(c.item.clone(), child);
            }
            let reference = json!({"$ref": format!("#/$defs/{}", c.item)});
            let schema = match c.cardinality {
                Cardinality::Many => {
                    let mut s = json!({"type": "array", "items": reference});
                    if let Some(max) = c.max {
                        s["maxItems"] = json!(max);
                    }
                    s
                }
                Cardinality::One => json!({"anyOf": [reference, {"type": "null"}]}),
            };
            properties.insert(c.item.clone(), schema);
        }
    }
    let required: Vec<Json> = fields
        .iter()
        .filter(|e| {
            with_required
                && e.field.required
                && e.field.default.is_none()
                && e.field.series.is_none()
                && e.field.compute.is_none()
        })
        .map(|e| json!(e.field.name))
        .collect();
    let label = catalog
        .get(item)
        .map(|i| i.label.zh.clone())
        .unwrap_or_default();
    json!({
        "title": label,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The JSON Schema of a DataItem's records. `for_create` lists the required fields;
/// a patch schema does not (a patch changes only the fields it names).
pub fn json_schema(catalog: &Catalog, item: &str, for_create: bool) -> Json {
    let mut defs = Map::new();
    let mut schema = object_schema(catalog, item, for_create, &mut defs);
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    schema["$id"] = json!(format!("erpos:data-item:{item}"));
    if !defs.is_empty() {
        schema["$defs"] = Json::Object(defs);
    }
    schema
}

/// A compiled form: validates record writes of one DataItem version. Compiling is the
/// expensive part, so the kernel caches one per DataItem version.
pub struct FormValidator {
    create: jsonschema::Validator,
    patch: jsonschema::Validator,
}

impl FormValidator {
    /// Compiles the create and patch schemas of `item`.
    pub fn compile(catalog: &Catalog, item: &str) -> Result<Self, DesignError> {
        catalog.require(item)?;
        let build = |schema: &Json| {
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(schema)
                .map_err(|e| DesignError::InvalidDefinition(vec![Issue::new("", e.to_string())]))
        };
        Ok(Self {
            create: build(&json_schema(catalog, item, true))?,
            patch: build(&json_schema(catalog, item, false))?,
        })
    }

    /// Every problem with a record write, each at the JSON pointer of the failing value.
    /// An empty list means the write may proceed.
    pub fn issues(&self, record: &Json, for_create: bool) -> Vec<Issue> {
        let validator = if for_create {
            &self.create
        } else {
            &self.patch
        };
        let mut out: Vec<Issue> = Vec::new();
        let mut seen = BTreeSet::new();
        for error in validator.iter_errors(record) {
            let base = error.instance_path().as_str().to_owned();
            let found: Vec<Issue> = match error.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or_default();
                    vec![Issue::new(format!("{base}/{name}"), "is required")]
                }
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    unexpected
                        .iter()
                        .map(|u| {
                            Issue::new(format!("{base}/{u}"), "is not a field of this DataItem")
                        })
                        .collect()
                }
                _ => vec![Issue::new(base, error.to_string())],
            };
            for issue in found {
                if seen.insert(issue.path.clone()) {
                    out.push(issue);
                }
            }
        }
        out
    }
}

/// Parses every field present in `record` into typed values, collecting every problem.
/// Absent keys are left out of the result (a patch keeps them; a create gets defaults).
pub fn parse_record(
    fields: &[EffectiveField],
    record: &Map<String, Json>,
    base: &str,
) -> Result<Vec<(String, Value)>, Vec<Issue>> {
    let mut values = Vec::new();
    let mut issues = Vec::new();
    for e in fields {
        if let Some(v) = record.get(&e.field.name) {
            match Value::from_json(&e.field, v) {
                Ok(Value::Null) if e.field.required => issues.push(Issue::new(
                    format!("{base}/{}", e.field.name),
                    "is required",
                )),
                Ok(value) => values.push((e.field.name.clone(), value)),
                Err(message) => {
                    issues.push(Issue::new(format!("{base}/{}", e.field.name), message))
                }
            }
        }
    }
    if issues.is_empty() {
        Ok(values)
    } else {
        Err(issues)
    }
}

/// One input of a layout.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LayoutField {
    /// The field's name (the record key).
    pub name: String,
    /// Its label.
    pub label: Label,
    /// The widget the console renders.
    pub widget: String,
    /// The field's type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether a value is required.
    pub required: bool,
    /// Enum options, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The DataItem a reference looks up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Help text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<Label>,
    /// The field's labels for callers' own logic.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub tags: serde_json::Map<String, serde_json::Value>,
}

/// A section of a layout: a group of fields, or a composed child DataItem edited inline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LayoutSection {
    /// The section's heading.
    pub label: Label,
    /// `fields` for a group of inputs, `children` for a composed DataItem.
    pub kind: &'static str,
    /// The composed DataItem (children sections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Cardinality of the composed DataItem (children sections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cardinality: Option<Cardinality>,
    /// The inputs, in order.
    pub fields: Vec<LayoutField>,
}

/// The widget a field is rendered with unless it names one.
pub fn widget_for(field: &Field) -> String {
    if let Some(w) = &field.widget {
        return w.clone();
    }
    match field.field_type {
        FieldType::Text if field.multiline => "textarea",
        FieldType::Text => "input",
        FieldType::Integer | FieldType::Decimal => "number",
        FieldType::Money => "money",
        FieldType::Boolean => "switch",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Enum if field.options.len() <= 3 => "radio",
        FieldType::Enum => "select",
        FieldType::Reference => "lookup",
        FieldType::Json => "json",
    }
    .to_owned()
}

fn layout_field(field: &Field) -> LayoutField {
    LayoutField {
        name: field.name.clone(),
        label: field.label.clone(),
        widget: widget_for(field),
        field_type: field.field_type,
        required: field.required,
        options: field.options.clone(),
        target: field.target.clone(),
        help: field.help.clone(),
        tags: field.tags.clone(),
    }
}

/// The layout of a DataItem's form: inherited fields under their ancestor's heading first,
/// then the item's own fields, fields naming a `section` grouped under it, then one section
/// per composed child DataItem.
pub fn layout(catalog: &Catalog, item: &str) -> Vec<LayoutSection> {
    let mut sections: Vec<LayoutSection> = Vec::new();
    for e in catalog.effective_fields(item) {
        let heading = e.field.section.clone().unwrap_or_else(|| {
            catalog
                .get(&e.declared_in)
                .map(|i| i.label.clone())
                .unwrap_or_else(|| Label::new("基本信息", "Details"))
        });
        match sections.iter_mut().find(|s| s.label == heading) {
            Some(section) => section.fields.push(layout_field(&e.field)),
            None => sections.push(LayoutSection {
                label: heading,
                kind: "fields",
                item: None,
                cardinality: None,
                fields: vec![layout_field(&e.field)],
            }),
        }
    }
    if let Some(def) = catalog.get(item) {
        for c in &def.consists {
            let label = catalog
                .get(&c.item)
                .map(|i| i.label.clone())
                .unwrap_or_else(|| Label::new(&c.item, &c.item));
            sections.push(LayoutSection {
                label,
                kind: "children",
                item: Some(c.item.clone()),
                cardinality: Some(c.cardinality),
                fields: catalog
                    .effective_fields(&c.item)
                    .iter()
                    .map(|e| layout_field(&e.field))
                    .collect(),
            });
        }
    }
    sections
}
