//! The catalog: every active DataItem definition, resolved together.
//!
//! Inheritance, composition and references only make sense across definitions, so they are
//! checked here: a DataItem is *prepared* against the catalog it will join (names derived,
//! every problem located by a JSON pointer) before the kernel stores it. The catalog is a
//! value: the kernel swaps in a new one after a definition is applied.

use std::collections::{BTreeMap, BTreeSet};

use crate::bounds::{MAX_CONSISTS, MAX_FIELDS, MAX_OPTIONS, label_problem};
use crate::data_item::{Cardinality, DataItem};
use crate::error::{DesignError, Issue};
use crate::field::{Field, FieldType, MAX_DECIMAL_SCALE};
use crate::naming::{derive_identifier, disambiguate, is_identifier};
use crate::value;

/// The longest help text of a field, in characters.
const MAX_HELP_CHARS: usize = 2_000;

/// Column names every record table has; no field may take them.
pub const RESERVED_NAMES: [&str; 4] = ["id", "version", "created_at", "updated_at"];

/// A field as a record of some DataItem sees it: its own or inherited.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveField {
    /// The field definition.
    pub field: Field,
    /// The DataItem that declares it (the item itself, or an ancestor).
    pub declared_in: String,
}

/// Every active DataItem, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    items: BTreeMap<String, DataItem>,
}

impl Catalog {
    /// The computed fields of `item` (its own and inherited), in the order they are
    /// computed: name, expression, type.
    pub fn computed_fields(&self, item: &str) -> Vec<(String, String, FieldType)> {
        self.effective_fields(item)
            .into_iter()
            .filter_map(|e| {
                let expression = e.field.compute.clone()?;
                Some((e.field.name, expression, e.field.field_type))
            })
            .collect()
    }

    /// The keys a record of `item` carries as expressions see it: the system fields
    /// (`id`, `version`, `created_at`, `updated_at`), every effective field and each
    /// composed child list. Empty when `item` does not exist.
    pub fn record_keys(&self, item: &str) -> std::collections::BTreeSet<String> {
        let Some(own) = self.get(item) else {
            return Default::default();
        };
        RESERVED_NAMES
            .iter()
            .map(|n| (*n).to_owned())
            .chain(
                self.effective_fields(item)
                    .into_iter()
                    .map(|e| e.field.name),
            )
            .chain(own.consists.iter().map(|c| c.item.clone()))
            .collect()
    }

    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a catalog from stored (already prepared) definitions.
    pub fn from_items(items: impl IntoIterator<Item = DataItem>) -> Self {
        Self {
            items: items.into_iter().map(|i| (i.name.clone(), i)).collect(),
        }
    }

    /// The DataItem with this name.
    pub fn get(&self, name: &str) -> Option<&DataItem> {
        self.items.get(name)
    }

    /// The DataItem with this name, or the error the API reports as 404.
    pub fn require(&self, name: &str) -> Result<&DataItem, DesignError> {
        self.get(name)
            .ok_or_else(|| DesignError::UnknownItem(name.to_owned()))
    }

    /// Every DataItem, ordered by name.
    pub fn items(&self) -> impl Iterator<Item = &DataItem> {
        self.items.values()
    }

    /// A copy of this catalog with `item` added or replaced.
    pub fn with(&self, item: DataItem) -> Catalog {
        let mut next = self.clone();
        next.items.insert(item.name.clone(), item);
        next
    }

    /// The chain of DataItems `name` extends, nearest first. Stops at a cycle or a missing
    /// item (which `prepare` refuses, so stored catalogs have neither).
    pub fn ancestors(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = self.get(name).and_then(|i| i.extends.clone());
        while let Some(parent) = current {
            if parent == name || out.contains(&parent) {
                break;
            }
            current = self.get(&parent).and_then(|i| i.extends.clone());
            out.push(parent);
        }
        out
    }

    /// Every DataItem that extends `name`, directly or not, ordered by name.
    pub fn descendants(&self, name: &str) -> Vec<String> {
        self.items
            .keys()
            .filter(|other| {
                other.as_str() != name && self.ancestors(other).iter().any(|a| a == name)
            })
            .cloned()
            .collect()
    }

    /// The fields a record of `name` has: inherited ones first (farthest ancestor first),
    /// then its own, in declaration order.
    pub fn effective_fields(&self, name: &str) -> Vec<EffectiveField> {
        let mut chain = self.ancestors(name);
        chain.reverse();
        chain.push(name.to_owned());
        chain
            .iter()
            .filter_map(|n| self.get(n))
            .flat_map(|item| {
                item.fields.iter().map(move |f| EffectiveField {
                    field: f.clone(),
                    declared_in: item.name.clone(),
                })
            })
            .collect()
    }

    /// The (item, field) pairs whose reference fields point at `target`.
    pub fn references_to(&self, target: &str) -> Vec<(String, String)> {
        self.items
            .keys()
            .flat_map(|item| {
                self.effective_fields(item)
                    .into_iter()
                    .filter(|e| e.field.target.as_deref() == Some(target))
                    .map(|e| (item.clone(), e.field.name))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// [`prepare`](Self::prepare)s a definition read from JSON: every shape problem and
    /// every problem the checks find in what could be read, in one answer, in document order
    /// (`body` is the JSON it was read from).
    pub fn prepare_reading(
        &self,
        reading: crate::shape::Reading<DataItem>,
        body: &serde_json::Value,
        existing: Option<&str>,
    ) -> Result<DataItem, DesignError> {
        reading.check(body, |item, _| self.prepare(item, existing))
    }

    /// Derives missing names and checks `input` against this catalog. `existing` is the name
    /// of the DataItem being changed (None when a new one is created). Returns the
    /// definition as it will be stored, or every problem found.
    pub fn prepare(
        &self,
        mut input: DataItem,
        existing: Option<&str>,
    ) -> Result<DataItem, DesignError> {
        let mut issues = Vec::new();
        if input.label.zh.trim().is_empty() {
            issues.push(Issue::new("/label/zh", "a Chinese label is required"));
        }
        issues.extend(input.label.problems("/label"));
        if input.consists.len() > MAX_CONSISTS {
            issues.push(Issue::new(
                "/consists",
                format!(
                    "a DataItem may consist of at most {MAX_CONSISTS} child DataItems; this one lists {}",
                    input.consists.len()
                ),
            ));
        }
        match existing {
            Some(name) => {
                if !input.name.is_empty() && input.name != name {
                    issues.push(Issue::new(
                        "/name",
                        format!("a DataItem cannot be renamed (it is '{name}')"),
                    ));
                }
                input.name = name.to_owned();
            }
            None => {
                if input.name.is_empty() {
                    let base = derive_identifier(&input.label.zh);
                    input.name = disambiguate(&base, |n| self.items.contains_key(n));
                } else if !is_identifier(&input.name) {
                    issues.push(Issue::new("/name", identifier_rule(&input.name)));
                } else if self.items.contains_key(&input.name) {
                    issues.push(Issue::new(
                        "/name",
                        format!("a DataItem named '{}' already exists", input.name),
                    ));
                }
            }
        }
        let candidate = self.with(input.clone());
        self.check_extends(&candidate, &input, &mut issues);
        let inherited: BTreeSet<String> = if issues.iter().any(|i| i.path == "/extends") {
            BTreeSet::new()
        } else {
            candidate
                .effective_fields(&input.name)
                .into_iter()
                .filter(|e| e.declared_in != input.name)
                .map(|e| e.field.name)
                .collect()
        };
        if inherited.len() + input.fields.len() > MAX_FIELDS {
            issues.push(Issue::new(
                "/fields",
                format!(
                    "a DataItem may have at most {MAX_FIELDS} fields, inherited ones included; this one would have {}",
                    inherited.len() + input.fields.len()
                ),
            ));
            // Thousands of fields are not checked one by one: the count is the problem.
            return Err(DesignError::InvalidDefinition(issues));
        }
        let child_keys: BTreeSet<String> = input.consists.iter().map(|c| c.item.clone()).collect();
        name_fields(&mut input, &inherited, &child_keys, &mut issues);
        self.check_renames(existing, &input, &mut issues);
        for (i, field) in input.fields.iter().enumerate() {
            check_field(
                &candidate,
                &input.name,
                field,
                &format!("/fields/{i}"),
                &mut issues,
            );
        }
        let candidate = self.with(input.clone());
        check_consists(&candidate, &input, &mut issues);
        check_computed(&candidate, &input, &mut issues);
        let effective: Vec<Field> = candidate
            .effective_fields(&input.name)
            .into_iter()
            .map(|e| e.field)
            .collect();
        crate::visibility::check(&input.visibility, &effective, &mut issues);
        check_descendants(&candidate, &input, &mut issues);
        if issues.is_empty() {
            Ok(input)
        } else {
            Err(DesignError::InvalidDefinition(issues))
        }
    }

    /// Every `renamed_from` names a field of the active version that leaves the definition,
    /// once, on a field that is new: otherwise two columns would claim one field's data.
    fn check_renames(&self, existing: Option<&str>, input: &DataItem, issues: &mut Vec<Issue>) {
        let active: Vec<String> = existing
            .and_then(|name| self.get(name))
            .map(|item| item.fields.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default();
        let mut claimed = BTreeSet::new();
        for (i, field) in input.fields.iter().enumerate() {
            let Some(from) = &field.renamed_from else {
                continue;
            };
            let path = format!("/fields/{i}/renamed_from");
            let problem = if existing.is_none() {
                Some("only a change of an existing DataItem can rename a field".to_owned())
            } else if from == &field.name {
                Some(format!(
                    "'{from}' is this field's own name; leave renamed_from out"
                ))
            } else if !active.contains(from) {
                Some(crate::directory::unknown(
                    "field of the active version",
                    from,
                    active.iter(),
                ))
            } else if input.fields.iter().any(|f| &f.name == from) {
                Some(format!(
                    "'{from}' is still a field of this definition; a renamed field's old name must leave it"
                ))
            } else if active.contains(&field.name) {
                Some(format!(
                    "'{}' is already a field of the active version with data of its own",
                    field.name
                ))
            } else if !claimed.insert(from.clone()) {
                Some(format!("another field is already renamed from '{from}'"))
            } else {
                None
            };
            if let Some(problem) = problem {
                issues.push(Issue::new(path, problem));
            }
        }
    }

    fn check_extends(&self, candidate: &Catalog, input: &DataItem, issues: &mut Vec<Issue>) {
        let Some(parent) = &input.extends else { return };
        if parent == &input.name {
            issues.push(Issue::new("/extends", "a DataItem cannot extend itself"));
        } else if self.get(parent).is_none() {
            issues.push(Issue::new(
                "/extends",
                format!("no DataItem named '{parent}'"),
            ));
        } else if candidate.ancestors(parent).iter().any(|a| a == &input.name) {
            issues.push(Issue::new(
                "/extends",
                format!("extending '{parent}' would make an inheritance cycle"),
            ));
        }
    }
}

fn identifier_rule(name: &str) -> String {
    format!(
        "'{name}' is not a valid identifier: use lowercase letters, digits and single underscores, \
         start with a letter, at most {} characters",
        crate::naming::MAX_IDENTIFIER_LEN
    )
}

/// Fills in derived field names and refuses invalid, reserved or duplicate ones.
fn name_fields(
    input: &mut DataItem,
    inherited: &BTreeSet<String>,
    child_keys: &BTreeSet<String>,
    issues: &mut Vec<Issue>,
) {
    let explicit: BTreeSet<String> = input
        .fields
        .iter()
        .filter(|f| !f.name.is_empty())
        .map(|f| f.name.clone())
        .collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (i, field) in input.fields.iter_mut().enumerate() {
        let path = format!("/fields/{i}/name");
        if field.name.is_empty() {
            let base = derive_identifier(&field.label.zh);
            field.name = disambiguate(&base, |n| {
                seen.contains(n)
                    || explicit.contains(n)
                    || inherited.contains(n)
                    || child_keys.contains(n)
                    || RESERVED_NAMES.contains(&n)
            });
        } else if !is_identifier(&field.name) {
            issues.push(Issue::new(path, identifier_rule(&field.name)));
            continue;
        } else if RESERVED_NAMES.contains(&field.name.as_str()) {
            issues.push(Issue::new(
                path,
                format!("'{}' is reserved for every record", field.name),
            ));
            continue;
        } else if inherited.contains(&field.name) {
            issues.push(Issue::new(
                path,
                format!(
                    "'{}' is already inherited from the extended DataItem",
                    field.name
                ),
            ));
            continue;
        } else if child_keys.contains(&field.name) {
            issues.push(Issue::new(
                path,
                format!("'{}' is the key of a composed child DataItem", field.name),
            ));
            continue;
        } else if seen.contains(&field.name) {
            issues.push(Issue::new(
                path,
                format!("duplicate field name '{}'", field.name),
            ));
            continue;
        }
        seen.insert(field.name.clone());
    }
}

/// Checks one field's constraints against its type and the catalog.
fn check_field(catalog: &Catalog, item: &str, field: &Field, path: &str, issues: &mut Vec<Issue>) {
    let ty = field.field_type;
    if field.label.zh.trim().is_empty() {
        issues.push(Issue::new(
            format!("{path}/label/zh"),
            "a Chinese label is required",
        ));
    }
    issues.extend(field.label.problems(&format!("{path}/label")));
    if let Some(section) = &field.section {
        issues.extend(section.problems(&format!("{path}/section")));
    }
    if let Some(help) = &field.help {
        issues.extend(help.text_problems(&format!("{path}/help"), MAX_HELP_CHARS));
    }
    let mut refuse =
        |key: &str, message: String| issues.push(Issue::new(format!("{path}/{key}"), message));
    if field.options.len() > MAX_OPTIONS {
        refuse(
            "options",
            format!(
                "an enum field may list at most {MAX_OPTIONS} options; this one lists {}",
                field.options.len()
            ),
        );
    }
    let only = |allowed: &[FieldType]| allowed.contains(&ty);
    if !field.options.is_empty() && ty != FieldType::Enum {
        refuse(
            "options",
            format!("options apply to enum fields, not {}", ty.as_str()),
        );
    }
    if ty == FieldType::Enum {
        if field.options.is_empty() {
            refuse("options", "an enum field needs at least one option".into());
        }
        let mut seen = BTreeSet::new();
        for (j, option) in field.options.iter().enumerate() {
            if option.trim().is_empty() {
                refuse(&format!("options/{j}"), "an option cannot be empty".into());
            } else if let Some(problem) = label_problem(option) {
                refuse(&format!("options/{j}"), problem);
            } else if !seen.insert(option) {
                refuse(
                    &format!("options/{j}"),
                    format!("duplicate option '{option}'"),
                );
            }
        }
    }
    match (&field.target, ty) {
        (Some(_), t) if t != FieldType::Reference => refuse(
            "target",
            format!("target applies to reference fields, not {}", t.as_str()),
        ),
        (None, FieldType::Reference) => {
            refuse("target", "a reference field needs a target DataItem".into())
        }
        (Some(target), _) if target != item && catalog.get(target).is_none() => {
            refuse("target", format!("no DataItem named '{target}'"))
        }
        _ => {}
    }
    if (field.pattern.is_some() || field.max_length.is_some() || field.multiline)
        && ty != FieldType::Text
    {
        refuse(
            "pattern",
            format!(
                "pattern, max_length and multiline apply to text fields, not {}",
                ty.as_str()
            ),
        );
    }
    if let Some(pattern) = &field.pattern
        && jsonschema::validator_for(&serde_json::json!({ "pattern": pattern })).is_err()
    {
        refuse(
            "pattern",
            format!("'{pattern}' is not a valid regular expression"),
        );
    }
    if field.max_length == Some(0) {
        refuse("max_length", "max_length must be at least 1".into());
    }
    if field.scale.is_some() && ty != FieldType::Decimal {
        refuse(
            "scale",
            format!("scale applies to decimal fields, not {}", ty.as_str()),
        );
    }
    if field.scale.is_some_and(|s| s > MAX_DECIMAL_SCALE) {
        refuse(
            "scale",
            format!("scale must be at most {MAX_DECIMAL_SCALE}"),
        );
    }
    if field.unique && only(&[FieldType::Json, FieldType::Boolean]) {
        refuse(
            "unique",
            format!("a {} field cannot be unique", ty.as_str()),
        );
    }
    if let Some(series) = &field.series {
        if ty != FieldType::Text {
            refuse(
                "series",
                format!(
                    "only text fields are numbered by a series, not {}",
                    ty.as_str()
                ),
            );
        }
        if field.default.is_some() {
            refuse(
                "default",
                "a field numbered by a series has no default: each record gets the next number"
                    .into(),
            );
        }
        for issue in series.problems("") {
            refuse(&format!("series{}", issue.path), issue.message);
        }
    }
    if field.searchable && !only(&[FieldType::Text, FieldType::Enum]) {
        refuse(
            "searchable",
            "only text and enum fields can be searchable".into(),
        );
    }
    let mut bound = |key: &str, v: &Option<serde_json::Value>| -> Option<rust_decimal::Decimal> {
        let v = v.as_ref()?;
        if !ty.is_numeric() {
            issues.push(Issue::new(
                format!("{path}/{key}"),
                format!(
                    "{key} applies to integer, decimal and money fields, not {}",
                    ty.as_str()
                ),
            ));
            return None;
        }
        match value::decimal_from_json(v) {
            Some(d) => Some(d),
            None => {
                issues.push(Issue::new(
                    format!("{path}/{key}"),
                    format!("{key} must be a number"),
                ));
                None
            }
        }
    };
    let min = bound("min", &field.min);
    let max = bound("max", &field.max);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        issues.push(Issue::new(
            format!("{path}/min"),
            format!("min {min} is greater than max {max}"),
        ));
    }
    if let Some(default) = &field.default {
        // Only a field otherwise valid can have its default checked against it. The `/`
        // keeps `/fields/1` from matching `/fields/10`.
        let field_prefix = format!("{path}/");
        if issues.iter().all(|i| !i.path.starts_with(&field_prefix)) {
            if let Err(message) = value::Value::from_json(field, default) {
                issues.push(Issue::new(format!("{path}/default"), message));
            } else if let Err(problems) = crate::field_schema::check_default(field, default) {
                issues.push(Issue::new(format!("{path}/default"), problems));
            }
        }
    }
}

/// Checks composition: children exist, are not the item itself, appear once, and the
/// composition graph has no cycle.
/// A computed field: a kind of value an expression can give, no default, no series, never
/// required (it always has its value), an expression that parses and reads only what a
/// record of the item has — and only computed fields declared before it (they are computed
/// in declaration order, so a cycle cannot be written).
fn check_computed(candidate: &Catalog, input: &DataItem, issues: &mut Vec<Issue>) {
    let keys = candidate.record_keys(&input.name);
    let engine = crate::expression::parsing_engine();
    let computed: Vec<String> = candidate
        .computed_fields(&input.name)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    for (i, field) in input.fields.iter().enumerate() {
        let Some(expression) = &field.compute else {
            continue;
        };
        let at = |key: &str| format!("/fields/{i}/{key}");
        if matches!(field.field_type, FieldType::Json | FieldType::Reference) {
            issues.push(Issue::new(
                at("compute"),
                format!("a {} field cannot be computed", field.field_type.as_str()),
            ));
        }
        if field.default.is_some() {
            issues.push(Issue::new(
                at("default"),
                "a computed field has no default: it always has its computed value",
            ));
        }
        if field.series.is_some() {
            issues.push(Issue::new(
                at("series"),
                "a field is numbered by a series or computed, not both",
            ));
        }
        if field.required {
            issues.push(Issue::new(
                at("required"),
                "a computed field is never entered, so it cannot be required",
            ));
        }
        let path = at("compute");
        crate::expression::check_record_fields(
            &engine,
            expression,
            &path,
            &input.name,
            &keys,
            issues,
        );
        crate::expression::check_expression(&engine, expression, path.clone(), issues);
        let position = computed.iter().position(|n| n == &field.name);
        for read in crate::expression::record_fields(&engine, expression) {
            match computed.iter().position(|n| *n == read) {
                Some(_) if read == field.name => issues.push(Issue::new(
                    path.clone(),
                    format!("'{read}' cannot be computed from itself"),
                )),
                Some(j) if position.is_some_and(|p| j > p) => issues.push(Issue::new(
                    path.clone(),
                    format!(
                        "'{read}' is computed after '{}': computed fields are computed in \
                         declaration order, so declare '{read}' first",
                        field.name
                    ),
                )),
                _ => {}
            }
        }
    }
}

fn check_consists(candidate: &Catalog, input: &DataItem, issues: &mut Vec<Issue>) {
    let mut seen = BTreeSet::new();
    for (i, c) in input.consists.iter().enumerate() {
        let path = format!("/consists/{i}/item");
        if c.item == input.name {
            issues.push(Issue::new(path, "a DataItem cannot consist of itself"));
        } else if candidate.get(&c.item).is_none() {
            issues.push(Issue::new(path, format!("no DataItem named '{}'", c.item)));
        } else if !seen.insert(c.item.clone()) {
            issues.push(Issue::new(path, format!("'{}' is listed twice", c.item)));
        } else if composes(candidate, &c.item, &input.name, &mut BTreeSet::new()) {
            issues.push(Issue::new(
                path,
                format!(
                    "'{}' already consists of '{}': composition cannot be cyclic",
                    c.item, input.name
                ),
            ));
        }
        if c.max.is_some() && c.cardinality == Cardinality::One {
            issues.push(Issue::new(
                format!("/consists/{i}/max"),
                "max applies to cardinality 'many'",
            ));
        }
    }
}

/// Whether `from` consists (directly or not) of `target`.
fn composes(catalog: &Catalog, from: &str, target: &str, visited: &mut BTreeSet<String>) -> bool {
    if !visited.insert(from.to_owned()) {
        return false;
    }
    catalog.get(from).is_some_and(|item| {
        item.consists
            .iter()
            .any(|c| c.item == target || composes(catalog, &c.item, target, visited))
    })
}

/// A change to a parent must not give any descendant two fields of the same name.
fn check_descendants(candidate: &Catalog, input: &DataItem, issues: &mut Vec<Issue>) {
    for descendant in candidate.descendants(&input.name) {
        let count = candidate.effective_fields(&descendant).len();
        if count > MAX_FIELDS {
            issues.push(Issue::new(
                "/fields",
                format!(
                    "'{descendant}' extends this DataItem and would have {count} fields; at most {MAX_FIELDS}"
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for e in candidate.effective_fields(&descendant) {
            if !seen.insert(e.field.name.clone()) {
                let index = input
                    .fields
                    .iter()
                    .position(|f| f.name == e.field.name)
                    .unwrap_or(0);
                issues.push(Issue::new(
                    format!("/fields/{index}/name"),
                    format!(
                        "'{}' clashes with a field of '{descendant}', which extends this DataItem",
                        e.field.name
                    ),
                ));
            }
        }
    }
}

/// The pinyin search document of a record: the search keys of every searchable field.
pub fn search_document(fields: &[EffectiveField], get: impl Fn(&str) -> Option<String>) -> String {
    fields
        .iter()
        .filter(|e| e.field.searchable)
        .filter_map(|e| get(&e.field.name))
        .map(|text| crate::naming::search_keys(&text))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Field;
    use crate::label::Label;

    #[test]
    fn a_bad_default_is_reported_even_when_a_field_numbered_alike_is_invalid() {
        let mut fields: Vec<Field> = (0..11)
            .map(|i| Field::new(&format!("f{i}"), "字段", FieldType::Integer))
            .collect();
        fields[1].default = Some(serde_json::json!("not a number"));
        fields[10].name = "Bad Name".into();
        let item = DataItem {
            name: "huanzhe".into(),
            label: Label::new("患者", "Patient"),
            extends: None,
            fields,
            consists: Vec::new(),
            visibility: Vec::new(),
            version: 0,
        };
        let Err(DesignError::InvalidDefinition(issues)) = Catalog::new().prepare(item, None) else {
            panic!("the definition must be refused");
        };
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert!(paths.contains(&"/fields/1/default"), "{paths:?}");
        assert!(paths.contains(&"/fields/10/name"), "{paths:?}");
    }
}
