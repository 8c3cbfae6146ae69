//! Bounds on the shape of what erpos accepts: how deep JSON may nest, which characters text
//! and labels may hold, how many fields a DataItem may have.
//!
//! Whatever erpos accepts it must be able to read back. erpos wraps what it is given in
//! more JSON before storing it (a record's field inside the record, inside a process's
//! context, inside the PCB, inside a history row or an event), and serde_json refuses to
//! read documents nested deeper than 128 levels; PostgreSQL refuses text holding NUL; a
//! table has at most 1,600 columns on PostgreSQL. So the bounds are checked where input
//! enters, with every problem located by its JSON pointer, never where it is stored. This
//! module is pure: it only looks at values.

use serde_json::Value as Json;

use crate::error::Issue;

/// How deep a JSON document sent to erpos may nest (`{"a": [1]}` nests 2 levels). Leaves
/// room for the levels erpos adds around a value (PCB → context → record → field, history,
/// events) well below serde_json's read limit of 128.
pub const MAX_JSON_DEPTH: usize = 32;

/// The longest value of a text field that declares no `max_length`, in characters.
pub const MAX_TEXT_CHARS: usize = 65_536;

/// The largest value of a json field, serialised.
pub const MAX_JSON_VALUE_BYTES: usize = 65_536;

/// The most fields a DataItem may have, inherited ones included. Each is a column of the
/// record table: PostgreSQL allows 1,600 columns, SQLite 2,000, but a PostgreSQL row must
/// also fit in an 8 KB page once long values are moved out (18 bytes a pointer), and
/// removed fields keep archived columns; 300 leaves room for all of that.
pub const MAX_FIELDS: usize = 300;

/// The most child DataItems one DataItem may consist of (each is a table read and written
/// with every record).
pub const MAX_CONSISTS: usize = 32;

/// The most options an enum field may list.
pub const MAX_OPTIONS: usize = 500;

/// The longest label (a DataItem's, a field's, an option, a user's display name), in
/// characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// The longest identifier of a user or a resource (`dr_li`, `laser-room-1`).
pub const MAX_ID_LEN: usize = 64;

/// How deep `value` nests: 0 for a scalar, 1 for `[]` or `{}`, 2 for `{"a": []}`. Counted
/// without recursion, so any value (even one built by a script) is measured safely.
pub fn json_depth(value: &Json) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Json>> = match v {
            Json::Array(a) => Box::new(a.iter()),
            Json::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    deepest
}

/// How many bytes `value` takes serialised as compact JSON, counted without building the
/// text.
pub fn json_size(value: &Json) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serialises.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// One step of a JSON pointer.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer(base: &str, steps: &[Step<'_>]) -> String {
    let mut out = base.to_owned();
    for s in steps {
        out.push('/');
        match s {
            Step::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Step::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// The first problem with a JSON document sent to erpos, at its JSON pointer under `base`
/// (`""` for a whole body): nesting deeper than `max_depth`, or a NUL character in a string
/// or a key (PostgreSQL cannot store it, so neither database accepts it). A value nested too
/// deep is named by its first two steps (`/context/a`), enough to say which input it is.
pub fn check_json(value: &Json, base: &str, max_depth: usize) -> Option<Issue> {
    let mut steps = Vec::new();
    walk(value, 0, max_depth, &mut steps)
        .map(|(at, message)| Issue::new(pointer(base, &at), message))
}

/// Depth-first search for the first problem; recursion is bounded by `max_depth` + 1.
fn walk<'a>(
    value: &'a Json,
    depth: usize,
    max_depth: usize,
    steps: &mut Vec<Step<'a>>,
) -> Option<(Vec<Step<'a>>, String)> {
    let copy = |steps: &[Step<'a>], keep: usize| -> Vec<Step<'a>> {
        steps
            .iter()
            .take(keep)
            .map(|s| match s {
                Step::Key(k) => Step::Key(k),
                Step::Index(i) => Step::Index(*i),
            })
            .collect()
    };
    match value {
        Json::String(s) if s.contains('\0') => Some((
            copy(steps, steps.len()),
            "text may not contain the NUL character (U+0000)".into(),
        )),
        Json::Array(_) | Json::Object(_) if depth + 1 > max_depth => Some((
            copy(steps, 2),
            format!("nested deeper than {max_depth} levels"),
        )),
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                steps.push(Step::Index(i));
                if let Some(found) = walk(item, depth + 1, max_depth, steps) {
                    return Some(found);
                }
                steps.pop();
            }
            None
        }
        Json::Object(map) => {
            for (key, item) in map {
                steps.push(Step::Key(key));
                if key.contains('\0') {
                    return Some((
                        copy(steps, steps.len()),
                        "a key may not contain the NUL character (U+0000)".into(),
                    ));
                }
                if let Some(found) = walk(item, depth + 1, max_depth, steps) {
                    return Some(found);
                }
                steps.pop();
            }
            None
        }
        _ => None,
    }
}

/// What is wrong with a label (or another short text people read as a name: a display
/// name, an enum option): empty is the caller's business, but it may not be longer than
/// [`MAX_LABEL_CHARS`] nor hold characters that are invisible or change how the text
/// around them reads — control characters (tabs and newlines included), format characters
/// (zero-width spaces and joiners, bidirectional overrides and isolates, the BOM, soft
/// hyphens, tag characters) and line or paragraph separators — so that `admin\u{200b}` or
/// a right-to-left override cannot pass for something it is not. Chinese, accents and
/// emoji without joiners are fine.
pub fn label_problem(text: &str) -> Option<String> {
    text_problem(text, MAX_LABEL_CHARS, false)
}

/// Like [`label_problem`] for longer text people read (a field's help): at most
/// `max_chars` characters, newlines allowed when `newlines`.
pub fn text_problem(text: &str, max_chars: usize, newlines: bool) -> Option<String> {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    let count = text.chars().count();
    if count > max_chars {
        return Some(format!("is {count} characters long; at most {max_chars}"));
    }
    text.chars().find_map(|c| {
        let what = match get_general_category(c) {
            G::Control if newlines && c == '\n' => return None,
            G::Control => "a control character",
            G::Format => "an invisible formatting character (zero-width or bidirectional)",
            G::LineSeparator | G::ParagraphSeparator => "a line separator",
            G::Surrogate => "a surrogate",
            _ => return None,
        };
        Some(format!(
            "contains {what} (U+{:04X}); only visible characters and spaces are allowed",
            c as u32
        ))
    })
}

/// Whether `id` is a safe identifier for a user or a resource: 1 to [`MAX_ID_LEN`] ASCII
/// letters, digits and `_ . - @`, starting with a letter or digit. Nothing invisible, no
/// look-alike letters from other scripts, nothing that needs quoting in a URL path. Ids are
/// also unique without regard to case (the kernel refuses `Admin` next to `admin`).
pub fn is_safe_id(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
}

/// The rule [`is_safe_id`] checks, in words for an error message.
pub const SAFE_ID_RULE: &str =
    "use 1 to 64 ASCII letters, digits, '_', '.', '-' or '@', starting with a letter or digit";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Json {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn depth_is_counted_in_containers() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!([])), 1);
        assert_eq!(json_depth(&json!({"a": [1]})), 2);
        assert_eq!(json_depth(&nested(200)), 200);
    }

    #[test]
    fn too_deep_and_nul_are_located() {
        assert!(check_json(&nested(32), "", 32).is_none());
        let issue = check_json(&json!({ "data": nested(32) }), "", 32);
        assert_eq!(issue.map(|i| i.path), Some("/data/a".to_owned()));
        let issue = check_json(&json!({"x": [1, "a\u{0}b"]}), "/context", 32);
        assert_eq!(issue.map(|i| i.path), Some("/context/x/1".to_owned()));
        let issue = check_json(&json!({"a/b\u{0}": 1}), "", 32);
        assert_eq!(issue.map(|i| i.path), Some("/a~1b\u{0}".to_owned()));
    }

    #[test]
    fn labels_refuse_invisible_characters_but_not_chinese() {
        assert!(label_problem("患者 Patient 👩").is_none());
        assert!(label_problem("admin\u{200b}").is_some());
        assert!(label_problem("\u{202e}nimda").is_some());
        assert!(label_problem("a\tb").is_some());
        assert!(label_problem(&"长".repeat(201)).is_some());
    }

    #[test]
    fn safe_ids() {
        assert!(is_safe_id("dr_li") && is_safe_id("laser-room-1") && is_safe_id("a.b@c"));
        assert!(!is_safe_id("admin\u{200b}") && !is_safe_id("") && !is_safe_id("-x"));
        assert!(!is_safe_id("аdmin"), "a Cyrillic a");
        assert!(!is_safe_id(&"a".repeat(65)));
    }
}
