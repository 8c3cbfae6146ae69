//! Exact numbers in expressions (issue 13): a record's money and decimal fields reach Rhai
//! as exact decimals (rhai's `decimal` feature, rust_decimal underneath), not as the
//! strings they are stored as.
//!
//! Before, `record.yue > 1000` with 余额 = 1234.50 compared a string with a number, which
//! Rhai answers `false`, so the default branch was taken without a word. Now the value is a
//! `Decimal`: comparing it with a whole number (built into Rhai) or a float (registered
//! here, the float taken at its shortest exact reading) does what the analyst means, and
//! arithmetic on money stays exact to the cent. A decimal an expression gives back becomes
//! a JSON string without trailing zeros (`1234.50 × 0.88` → `"1086.36"`), which is how
//! money and decimals are written everywhere else; one finer than a field's scale is
//! refused by the field, never rounded in silence (`round(x, 2)` rounds).

use std::str::FromStr;

use erpos_design::catalog::Catalog;
use erpos_design::field::FieldType;
use rhai::{Dynamic, Engine};
use rust_decimal::Decimal;

/// The fields of `item` (its own and inherited) whose values are exact numbers.
pub fn exact_fields(catalog: &Catalog, item: &str) -> Vec<String> {
    catalog
        .effective_fields(item)
        .into_iter()
        .filter(|e| matches!(e.field.field_type, FieldType::Money | FieldType::Decimal))
        .map(|e| e.field.name)
        .collect()
}

/// Turns the `fields` of a record (a Rhai map) into decimals: a string that reads as a
/// decimal, or a number. Anything else (null, a value that does not read) is left as it is,
/// so an expression sees what is stored.
pub fn make_exact(record: &mut Dynamic, fields: &[String]) {
    if fields.is_empty() {
        return;
    }
    let Some(mut map) = record.write_lock::<rhai::Map>() else {
        return;
    };
    for name in fields {
        let Some(value) = map.get_mut(name.as_str()) else {
            continue;
        };
        let exact = if let Ok(s) = value.as_immutable_string_ref() {
            Decimal::from_str(s.trim()).ok()
        } else if let Ok(i) = value.as_int() {
            Some(Decimal::from(i))
        } else if let Ok(f) = value.as_float() {
            Decimal::try_from(f).ok()
        } else {
            None
        };
        if let Some(d) = exact {
            *value = Dynamic::from_decimal(d);
        }
    }
}

/// A float taken exactly as it reads (`0.1` is one tenth, not its binary neighbour).
fn decimal_of(f: f64) -> Result<Decimal, Box<rhai::EvalAltResult>> {
    Decimal::try_from(f).map_err(|e| format!("{f} is not a decimal: {e}").into())
}

/// Registers comparisons and arithmetic between decimals and floats (Rhai has those
/// between decimals and whole numbers already), so `record.yue > 999.5` and
/// `record.jiage * 0.9` work on money.
pub fn register(engine: &mut Engine) {
    type R<T> = Result<T, Box<rhai::EvalAltResult>>;
    macro_rules! compare {
        ($($op:tt)*) => {$(
            engine.register_fn(stringify!($op), |a: Decimal, b: f64| -> R<bool> { Ok(a $op decimal_of(b)?) });
            engine.register_fn(stringify!($op), |a: f64, b: Decimal| -> R<bool> { Ok(decimal_of(a)? $op b) });
        )*};
    }
    compare!(> >= < <= == !=);
    macro_rules! arithmetic {
        ($($op:tt $checked:ident)*) => {$(
            engine.register_fn(stringify!($op), |a: Decimal, b: f64| -> R<Decimal> {
                a.$checked(decimal_of(b)?).ok_or_else(|| "decimal overflow or division by zero".into())
            });
            engine.register_fn(stringify!($op), |a: f64, b: Decimal| -> R<Decimal> {
                decimal_of(a)?.$checked(b).ok_or_else(|| "decimal overflow or division by zero".into())
            });
        )*};
    }
    arithmetic!(+ checked_add - checked_sub * checked_mul / checked_div % checked_rem);
    // `sum(record.mingxi, "jine")`: the exact total of one field over a list of records (an
    // invoice's lines); an empty value counts 0, anything that is not a number is an error
    // naming it.
    engine.register_fn("sum", |list: rhai::Array, field: &str| -> R<Decimal> {
        let mut total = Decimal::ZERO;
        for (i, entry) in list.iter().enumerate() {
            let Some(map) = entry.read_lock::<rhai::Map>() else {
                return Err(format!("sum: entry {i} is not a record").into());
            };
            let value = match map.get(field) {
                None => continue,
                Some(v) if v.is_unit() => continue,
                Some(v) => v,
            };
            let exact = if let Ok(d) = value.as_decimal() {
                d
            } else if let Ok(n) = value.as_int() {
                Decimal::from(n)
            } else if let Ok(f) = value.as_float() {
                decimal_of(f)?
            } else if let Ok(s) = value.as_immutable_string_ref() {
                Decimal::from_str(s.trim()).map_err(|_| {
                    format!(
                        "sum: '{field}' of entry {i} is not a number: '{}'",
                        s.as_str()
                    )
                })?
            } else {
                return Err(format!("sum: '{field}' of entry {i} is not a number").into());
            };
            total = total
                .checked_add(exact)
                .ok_or_else(|| "sum: decimal overflow".to_owned())?;
        }
        Ok(total)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine with the packages expressions have and the numbers registered (the
    /// sandbox builds its own the same way; using it here would make the two modules
    /// depend on each other).
    fn engine() -> Engine {
        use rhai::packages::Package;
        let mut e = erpos_design::service_check::parsing_engine();
        e.register_global_module(rhai::packages::CorePackage::new().as_shared_module());
        e.register_global_module(rhai::packages::BasicMathPackage::new().as_shared_module());
        register(&mut e);
        e
    }

    #[test]
    fn money_compares_with_whole_numbers_and_floats() -> Result<(), Box<rhai::EvalAltResult>> {
        let e = engine();
        let mut record = Dynamic::from_map(rhai::Map::from_iter([
            ("yue".into(), Dynamic::from("1234.50")),
            ("beizhu".into(), Dynamic::from("1234.50")),
        ]));
        make_exact(&mut record, &["yue".to_owned()]);
        let mut scope = rhai::Scope::new();
        scope.push_constant("record", record);
        for (expr, want) in [
            ("record.yue > 1000", true),
            ("record.yue > 1234.5", false),
            ("record.yue >= 1234.5", true),
            ("record.yue == 1234.5", true),
            ("1000 < record.yue", true),
            ("record.yue * 2 == 2469", true),
            ("record.yue * 0.1 == 123.45", true),
            // Only typed fields change: a text field stays a string.
            ("type_of(record.beizhu) == \"string\"", true),
        ] {
            let got: bool = e.eval_expression_with_scope(&mut scope, expr)?;
            assert_eq!(got, want, "{expr}");
        }
        Ok(())
    }
}
