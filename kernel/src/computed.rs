//! Computed fields (issue 13 §4): a field whose value a Rhai expression gives from the rest
//! of the record and its composed children — an invoice line's 金额 = 单价 × 数量, the
//! invoice's 合计 = `sum(record.mingxi, "jine")` — evaluated on every write, in the same
//! sandbox and time limit as conditions, and stored in its column like any field, so lists
//! filter and sort by it and conditions read it without evaluating anything.
//!
//! Children are computed before their parent (the parent's total reads the lines' amounts),
//! and a record's computed fields in declaration order (a later one may read an earlier
//! one; the catalog refuses the other way round). Money and decimals are exact decimals in
//! the expression, as in conditions; a decimal result is written as its normalised string
//! and then validated as the field's value, so a total with more decimals than the field
//! holds is refused at the field, never rounded in silence (`round(x, 2)` rounds).
//!
//! This module only computes: it never reads or writes storage.

use std::sync::Arc;

use erpos_design::{Cardinality, FieldType, Issue};
use rhai::{AST, Dynamic, Engine, Scope};
use serde_json::{Map, Value as Json};

use crate::definitions::Schema;
use crate::error::{KernelError, Result};
use crate::sandbox::{Budget, contained, describe};

/// The evaluator: the sandboxed engine and its compiled expressions.
pub struct Computer {
    engine: Engine,
    cache: crate::sandbox::Expressions,
}

impl Default for Computer {
    fn default() -> Self {
        Self::new()
    }
}

impl Computer {
    /// An evaluator with erpos's limits (`sandbox::limited_engine`).
    pub fn new() -> Self {
        Self {
            engine: crate::sandbox::limited_engine(),
            cache: crate::sandbox::Expressions::default(),
        }
    }

    fn compile(&self, source: &str) -> std::result::Result<Arc<AST>, String> {
        self.cache.compile(&self.engine, source)
    }

    /// Fills in the computed fields of `record` (a record of `item` as it will be stored:
    /// stored values merged with the write) and of the composed children it carries, in
    /// place. `at` is the JSON pointer of `record` in the request (`""` for the top).
    pub fn fill(
        &self,
        schema: &Schema,
        item: &str,
        record: &mut Map<String, Json>,
        at: &str,
    ) -> Result<()> {
        let Some(def) = schema.catalog.get(item) else {
            return Ok(());
        };
        for c in &def.consists {
            match (c.cardinality, record.get_mut(&c.item)) {
                (Cardinality::Many, Some(Json::Array(children))) => {
                    for (i, child) in children.iter_mut().enumerate() {
                        if let Json::Object(child) = child {
                            self.fill(schema, &c.item, child, &format!("{at}/{}/{i}", c.item))?;
                        }
                    }
                }
                (Cardinality::One, Some(Json::Object(child))) => {
                    self.fill(schema, &c.item, child, &format!("{at}/{}", c.item))?;
                }
                _ => {}
            }
        }
        for (name, expression, ty) in schema.catalog.computed_fields(item) {
            let value = self
                .evaluate(schema, item, &expression, record, ty)
                .map_err(|message| {
                    KernelError::Invalid(vec![Issue::new(
                        format!("{at}/{name}"),
                        format!("computing '{name}' ({expression}) failed: {message}"),
                    )])
                })?;
            record.insert(name, value);
        }
        Ok(())
    }

    /// The computed values a caller sent in `body` (a record of `item`, children included),
    /// each with its JSON pointer: they are accepted only when they are what the kernel
    /// computes (a form sending back what it read), see [`refuse_changed`].
    pub fn given(
        schema: &Schema,
        item: &str,
        body: &Map<String, Json>,
        at: &str,
    ) -> Vec<(String, Json)> {
        let mut out = Vec::new();
        for (name, _, _) in schema.catalog.computed_fields(item) {
            if let Some(v) = body.get(&name).filter(|v| !v.is_null()) {
                out.push((format!("{at}/{name}"), v.clone()));
            }
        }
        if let Some(def) = schema.catalog.get(item) {
            for c in &def.consists {
                match body.get(&c.item) {
                    Some(Json::Array(children)) => {
                        for (i, child) in children.iter().enumerate() {
                            if let Json::Object(child) = child {
                                out.extend(Self::given(
                                    schema,
                                    &c.item,
                                    child,
                                    &format!("{at}/{}/{i}", c.item),
                                ));
                            }
                        }
                    }
                    Some(Json::Object(child)) => {
                        out.extend(Self::given(
                            schema,
                            &c.item,
                            child,
                            &format!("{at}/{}", c.item),
                        ));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Evaluates one expression over `record` and turns the value into the field's JSON.
    fn evaluate(
        &self,
        schema: &Schema,
        item: &str,
        expression: &str,
        record: &Map<String, Json>,
        ty: FieldType,
    ) -> std::result::Result<Json, String> {
        contained(Budget::Expression, || {
            let ast = self.compile(expression)?;
            let mut bound =
                rhai::serde::to_dynamic(Json::Object(record.clone())).map_err(|e| e.to_string())?;
            crate::numbers::make_exact(&mut bound, &schema.exact_fields(item));
            if let (Some(def), Some(mut map)) =
                (schema.catalog.get(item), bound.write_lock::<rhai::Map>())
            {
                for c in &def.consists {
                    let exact = schema.exact_fields(&c.item);
                    match map.get_mut(c.item.as_str()) {
                        Some(list) if list.is_array() => {
                            if let Some(mut children) = list.write_lock::<rhai::Array>() {
                                for child in children.iter_mut() {
                                    crate::numbers::make_exact(child, &exact);
                                }
                            }
                        }
                        Some(child) => crate::numbers::make_exact(child, &exact),
                        None => {}
                    }
                }
            }
            let mut scope = Scope::new();
            scope.push_constant("record", bound);
            let value = self
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
                .map_err(|e| describe(&e))?;
            as_field_value(value, ty)
        })
    }
}

/// Refuses (422 at each pointer) the computed values a caller sent that differ from what
/// was computed into `record` (`given` from [`Computer::given`]).
pub fn refuse_changed(given: &[(String, Json)], record: &Map<String, Json>) -> Result<()> {
    let record = Json::Object(record.clone());
    let issues: Vec<Issue> = given
        .iter()
        .filter(|(at, sent)| !same(sent, record.pointer(at).unwrap_or(&Json::Null)))
        .map(|(at, sent)| {
            let computed = record.pointer(at).cloned().unwrap_or(Json::Null);
            Issue::new(
                at.clone(),
                format!(
                    "computed (it is {computed} here, not {sent}): leave it out, erpos computes it"
                ),
            )
        })
        .collect();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(KernelError::Invalid(issues))
    }
}

/// Whether two values of a field are the same (`"12.5"` and `12.50` are).
fn same(a: &Json, b: &Json) -> bool {
    if a == b {
        return true;
    }
    let number = |v: &Json| -> Option<rust_decimal::Decimal> {
        match v {
            Json::String(s) => s.trim().parse().ok(),
            Json::Number(n) => n.to_string().parse().ok(),
            _ => None,
        }
    };
    matches!((number(a), number(b)), (Some(x), Some(y)) if x == y)
}

/// The JSON a computed value is stored as, for a field of type `ty`: decimals as their
/// normalised string (money and decimals are strings everywhere), whole numbers for
/// integers, `()` as null. What does not fit is written as it is and refused by the field's
/// validation, which says why.
fn as_field_value(value: Dynamic, ty: FieldType) -> std::result::Result<Json, String> {
    if value.is_unit() {
        return Ok(Json::Null);
    }
    if let Ok(d) = value.as_decimal() {
        return Ok(match ty {
            FieldType::Integer if d.fract().is_zero() => i64::try_from(d.normalize())
                .map(Json::from)
                .unwrap_or_else(|_| Json::String(d.normalize().to_string())),
            _ => Json::String(d.normalize().to_string()),
        });
    }
    if let Ok(n) = value.as_int() {
        return Ok(match ty {
            FieldType::Money | FieldType::Decimal | FieldType::Text => Json::String(n.to_string()),
            _ => Json::from(n),
        });
    }
    if let Ok(f) = value.as_float() {
        return Ok(match ty {
            FieldType::Money | FieldType::Decimal => rust_decimal::Decimal::try_from(f)
                .map(|d| Json::String(d.normalize().to_string()))
                .map_err(|e| format!("{f} is not a decimal: {e}"))?,
            _ => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        });
    }
    rhai::serde::from_dynamic::<Json>(&value).map_err(|e| e.to_string())
}
