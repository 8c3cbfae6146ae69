//! What every erpos expression is checked and parsed with — the engine (its depths and
//! disabled symbols), the check of one expression, and ISO 8601 durations — on its own, so
//! services and rules both use it without depending on each other.

use crate::error::Issue;

/// The deepest expression nesting a condition may have. Set explicitly because rhai's default
/// differs between debug and release builds, and a definition must not be valid in one and
/// refused in the other.
pub const MAX_EXPR_DEPTH: usize = 64;
/// The deepest expression nesting inside a script's own functions (`fn f(x) { … }`).
pub const MAX_FN_EXPR_DEPTH: usize = 32;
/// Keywords and functions no erpos script may use, refused when the definition is saved
/// and again by the engine that runs it: `eval` (code from data), `curry` (a function
/// pointer's curried values escape the size limits, like a closure's captures).
pub const DISABLED_SYMBOLS: [&str; 2] = ["eval", "curry"];

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
