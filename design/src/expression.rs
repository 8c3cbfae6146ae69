//! What every erpos expression is checked and parsed with — the engine (its depths and
//! disabled symbols), the check of one expression, and ISO 8601 durations — on its own, so
//! services and rules both use it without depending on each other.

use std::collections::BTreeSet;

use crate::error::Issue;

/// The deepest expression nesting a condition may have. Set explicitly because rhai's default
/// differs between debug and release builds, and a definition must not be valid in one and
/// refused in the other.
pub const MAX_EXPR_DEPTH: usize = 64;
/// The deepest expression nesting inside a script's own functions (`fn f(x) { … }`).
pub const MAX_FN_EXPR_DEPTH: usize = 32;
/// Keywords and functions no erpos script may use, refused when the definition is saved
/// and again by the engine that runs it: `eval` (code from data), `curry` (a function
/// pointer's curried values escape the size limits, like a closure's captures) and
/// `import` (modules: the running engine loads none, so a script importing one would fail
/// on every run).
pub const DISABLED_SYMBOLS: [&str; 3] = ["eval", "curry", "import"];

/// Parses an ISO 8601 duration of days, hours, minutes and seconds (`P7D`, `PT2H`, `PT10M`,
/// `PT30S`, `P1DT2H30M`, also weeks alone as `P2W`) into seconds.
///
/// Years and months are refused on purpose: their length depends on the calendar, and a
/// deadline must mean the same span whenever a process enters the step. Fractions, signs,
/// lowercase letters, units out of order or repeated, and an empty `P` / `T` are refused too.
/// Returns None for anything that is not such a duration (or that overflows).
pub fn parse_iso_duration(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut any = false;
    for (part, units) in [
        (date, &[('W', 604_800u64), ('D', 86_400)][..]),
        (time.unwrap_or(""), &[('H', 3_600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut remaining = part;
        let mut next_unit = 0;
        while !remaining.is_empty() {
            let digits = remaining.find(|c: char| !c.is_ascii_digit())?;
            if digits == 0 {
                return None;
            }
            let number: u64 = remaining.get(..digits)?.parse().ok()?;
            let unit = remaining.get(digits..)?.chars().next()?;
            let position = units.iter().position(|(u, _)| *u == unit)?;
            if position < next_unit {
                return None;
            }
            next_unit = position + 1;
            total = total.checked_add(number.checked_mul(units[position].1)?)?;
            any = true;
            remaining = remaining.get(digits + unit.len_utf8()..)?;
        }
    }
    // Weeks stand alone in ISO 8601 (`P1W`, never `P1W2D`).
    if date.contains('W') && (date.contains('D') || time.is_some()) {
        return None;
    }
    // `PT` with nothing after the designator is not a duration.
    if time.is_some_and(str::is_empty) || !any {
        return None;
    }
    Some(total)
}

/// The engine every erpos Rhai expression and script is parsed with: no packages (parsing
/// needs none), the expression depths and the disabled symbols. The kernel's sandbox builds
/// its running engine on this one, so that what saves fine also compiles when it runs, and
/// what is refused at run time is refused when it is saved.
pub fn parsing_engine() -> rhai::Engine {
    let mut engine = rhai::Engine::new_raw();
    engine.set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH);
    for symbol in DISABLED_SYMBOLS {
        engine.disable_symbol(symbol);
    }
    engine
}

/// The engine conditions and scripts are checked with when a definition is saved.
pub(crate) fn condition_engine() -> rhai::Engine {
    parsing_engine()
}

/// Checks that `script` parses as one Rhai expression, reporting rhai's own message (which
/// carries the line and position) at `path`.
pub(crate) fn check_expression(
    engine: &rhai::Engine,
    script: &str,
    path: String,
    issues: &mut Vec<Issue>,
) {
    if script.trim().is_empty() {
        issues.push(Issue::new(path, "the expression is empty"));
    } else if let Err(e) = engine.compile_expression(script) {
        issues.push(Issue::new(
            path,
            format!("'{script}' is not a valid Rhai expression: {e}"),
        ));
    }
}

/// The fields of the bound record that `script` reads by name — `record.xingming`,
/// `record?.yue`, `record["dianhua"]`, the first name of a longer chain
/// (`record.items[0].price` reads `items`) — in the order they appear, each once. A script
/// that does not parse reads nothing here (its parse error is reported by
/// [`check_expression`]); a field named by a computed string (`record[name]`) cannot be
/// known before the script runs and is not listed.
pub fn record_fields(engine: &rhai::Engine, script: &str) -> Vec<String> {
    use rhai::{ASTNode, Expr};
    // Conditions are expressions; a rule's script is statements.
    let Ok(ast) = engine
        .compile_expression(script)
        .or_else(|_| engine.compile(script))
    else {
        return Vec::new();
    };
    let mut found: Vec<String> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::Dot(chain, ..) | Expr::Index(chain, ..))) = path.last() else {
            return true;
        };
        let is_record = matches!(&chain.lhs, Expr::Variable(v, ..) if v.1 == "record");
        if is_record
            && let Some(name) = first_key(&chain.rhs)
            && !found.contains(&name)
        {
            found.push(name);
        }
        true
    });
    found
}

/// The first key of the right side of a chain: a property (`.name`) or a literal index
/// (`["name"]`), also when more of the chain follows.
fn first_key(rhs: &rhai::Expr) -> Option<String> {
    use rhai::Expr;
    match rhs {
        Expr::Property(p, _) => Some(p.2.to_string()),
        Expr::StringConstant(s, _) => Some(s.to_string()),
        Expr::Dot(chain, ..) | Expr::Index(chain, ..) => first_key(&chain.lhs),
        _ => None,
    }
}

/// Reports each record field `script` reads that `item`'s records do not have (`keys`: the
/// names a record of `item` carries), at `path`, with "did you mean" for a slip.
pub(crate) fn check_record_fields(
    engine: &rhai::Engine,
    script: &str,
    path: &str,
    item: &str,
    keys: &BTreeSet<String>,
    issues: &mut Vec<Issue>,
) {
    for name in record_fields(engine, script) {
        if !keys.contains(&name) {
            let message = match crate::directory::did_you_mean(&name, keys) {
                Some(close) => {
                    format!(
                        "'{item}' has no field '{name}' (record.{name}); did you mean '{close}'?"
                    )
                }
                None => format!("'{item}' has no field '{name}' (record.{name})"),
            };
            issues.push(Issue::new(path, message));
        }
    }
}

/// The bound record's DataItem and the keys its records carry, which conditions may read.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The DataItem.
    pub item: &'a str,
    /// Its records' keys (see `Catalog::record_keys`).
    pub keys: &'a BTreeSet<String>,
}

impl Record<'_> {
    /// Reports the fields `script` reads that the record does not have.
    pub(crate) fn check(
        self,
        engine: &rhai::Engine,
        script: &str,
        path: &str,
        issues: &mut Vec<Issue>,
    ) {
        check_record_fields(engine, script, path, self.item, self.keys, issues);
    }
}

/// Checks `script` and, when the record is known, the fields it reads.
pub(crate) fn check_condition(
    engine: &rhai::Engine,
    script: &str,
    path: String,
    record: Option<Record<'_>>,
    issues: &mut Vec<Issue>,
) {
    if let Some(record) = record {
        record.check(engine, script, &path, issues);
    }
    check_expression(engine, script, path, issues);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_fields_an_expression_reads_are_found() {
        let e = parsing_engine();
        assert_eq!(
            record_fields(
                &e,
                r#"record.yue > 1000 && record["xingming"] != "" || record?.dianhua == context.x"#
            ),
            vec!["yue", "xingming", "dianhua"]
        );
        assert_eq!(
            record_fields(
                &e,
                "record.items[0].price + record.items.len() + record.zhekou.abs()"
            ),
            vec!["items", "zhekou"]
        );
        assert!(record_fields(&e, "context.record.x == 1 && priority > 3").is_empty());
        assert!(record_fields(&e, "record.(").is_empty());
    }
}
