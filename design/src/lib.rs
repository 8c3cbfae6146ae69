//! erpos-design: the metamodel.
//!
//! Analysts describe a business as definitions: DataItems with typed fields, composition and
//! inheritance. This crate turns those definitions into the things the kernel executes:
//! validated definitions with derived pinyin identifiers, JSON Schemas and layouts for forms,
//! typed values, and DDL / migration plans for SQLite and PostgreSQL. It also holds the
//! time-service building blocks the kernel's timers compute with: working calendars and
//! recurring schedules, and the ServiceRules that react to events.
//!
//! It must stay pure: no I/O, no async, no database driver. That is what lets every rule
//! about definitions be tested exhaustively and fast.

pub mod booking;
pub mod bounds;
pub mod calendar;
pub mod catalog;
pub mod charge;
pub mod course;
pub mod data_item;
pub mod ddl;
pub mod dialect;
pub mod directory;
pub mod error;
pub mod expression;
pub mod field;
pub mod field_rules;
pub mod field_schema;
pub mod flowchart;
pub mod form;
pub mod label;
pub mod ledger;
pub mod menu;
pub mod migration;
pub mod naming;
pub mod recurrence;
pub mod rule;
pub mod serial;
pub mod service;
pub mod service_check;
pub mod shape;
pub mod stock;
pub mod template;
pub mod treatment;
pub mod value;
pub mod visibility;

pub use calendar::{ClockTime, Interval, LocalDate, Weekly, WorkingCalendar};
pub use catalog::{Catalog, EffectiveField};
pub use data_item::{Cardinality, Consists, DataItem};
pub use ddl::Dialect;
pub use error::{DesignError, Issue};
pub use field::{Field, FieldType};
pub use label::Label;
pub use migration::{MigrationPlan, MigrationStep, StepAction};
pub use recurrence::{Offset, Recurrence};
pub use value::Value;

/// Parses a DataItem definition from JSON, reporting every shape problem (unknown key,
/// unknown field type, wrong JSON type) at its JSON pointer: each field and composed child
/// is read on its own, so a problem in one does not hide those in the others.
pub fn parse_data_item(json: &serde_json::Value) -> Result<DataItem, DesignError> {
    data_item::read_data_item(json).into_result(json)
}
