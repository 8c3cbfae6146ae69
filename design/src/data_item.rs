//! DataItems: the business entities an analyst defines (患者, 诊室, 治疗项目, …).
//!
//! A DataItem has fields, may extend another DataItem (inheriting its fields, as Practitioner
//! extends Person) and may consist of child DataItems stored with it as one document (an
//! invoice and its lines, a patient and their allergies).

use serde::{Deserialize, Serialize};

use crate::field::Field;
use crate::label::Label;
use crate::shape::{Reading, Shape, stand_in_label};

/// How many children of a composed DataItem a parent record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cardinality {
    /// At most one child (a patient's single consent form).
    One,
    /// Any number of children (a patient's allergies).
    Many,
}

/// Composition: the parent DataItem consists of records of `item` (DataItemConsists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consists {
    /// The child DataItem.
    pub item: String,
    /// How many children a parent holds.
    pub cardinality: Cardinality,
    /// The most children a parent may hold (`many` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// A DataItem definition as posted by an analyst and stored (with `version`) by the kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataItem {
    /// The identifier (table and API path); derived from `label.zh` when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What staff see.
    pub label: Label,
    /// The DataItem whose fields this one inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// The fields declared by this DataItem itself (inherited ones are not repeated).
    #[serde(default)]
    pub fields: Vec<Field>,
    /// The child DataItems stored with each record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consists: Vec<Consists>,
    /// Which records each role sees (none: everyone who reads the DataItem sees every
    /// record); see [`crate::visibility`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visibility: Vec<crate::visibility::RowRule>,
    /// The active version, set by the kernel: 1 when created, +1 per applied migration.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl DataItem {
    /// The field with this name, declared by this DataItem itself.
    pub fn own_field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Reads a DataItem definition from JSON as far as it can be read (see [`crate::shape`]):
/// each field and each composed child on its own, every shape problem at its pointer, so that
/// [`crate::Catalog::prepare_reading`] can check what was read and answer every problem at
/// once.
pub fn read_data_item(json: &serde_json::Value) -> Reading<DataItem> {
    let mut shape = Shape::new();
    let mut top = json.clone();
    let fields: Vec<Field> = shape.take_list(&mut top, "fields", "/fields", |s, v, at| {
        s.read(v, at, &[("label", stand_in_label())])
    });
    let consists: Vec<Consists> = shape.take_list(&mut top, "consists", "/consists", |s, v, at| {
        s.read(v, at, &[])
    });
    let value = shape
        .read::<DataItem>(&top, "", &[("label", stand_in_label())])
        .map(|mut item| {
            item.fields = fields;
            item.consists = consists;
            item
        });
    Reading { value, shape }
}
