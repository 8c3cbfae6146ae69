//! Reading a definition's JSON as far as it can be read, so that one answer carries every
//! problem of the definition: its shape, and the checks of everything that could be read.
//!
//! `serde` stops at the first problem. Read that way, a DataItem with a misspelled key and a
//! reference to a DataItem that does not exist was refused twice: the key now, the reference
//! on the next try. Here a document is read *leniently*: lists of elements (fields, steps,
//! transitions, instructions) are read one element at a time, and inside an element a value
//! that does not fit is reported at its JSON pointer and *set aside* (removed from a private
//! copy) so that the rest can still be read. The checks then run over what was read, and
//! [`Shape::finish`] merges their problems with the shape's: located in the document the
//! analyst posted (indexes of elements left out are mapped back), without the problems that
//! only repeat a shape problem (a check complaining about a value that was set aside), and in
//! document order.
//!
//! Every shape problem keeps the path and message serde gives it, so a definition with one
//! problem is answered exactly as before. Nothing here is stored or executed, and reading never
//! accepts what serde would refuse: a definition with any shape problem is refused whole.

use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use serde_path_to_error::Segment;

use crate::error::{DesignError, Issue, serde_path_to_pointer};

/// The most values set aside inside one element before it is given up as unreadable: bounds
/// the work a document with thousands of bad keys can cause (each try reads the element again).
const MAX_SET_ASIDE_PER_ELEMENT: usize = 32;

/// The shape problems after which the elements of a list are no longer read: more than a
/// person acts on in one go, and a 2 MiB body of thousands of empty elements must not
/// become an answer a hundred times its size.
pub const MAX_SHAPE_ISSUES: usize = 200;

/// What reading a document found: its shape problems, the values set aside to read the rest,
/// and where elements of lists were left out.
#[derive(Debug, Default)]
pub struct Shape {
    /// Every shape problem, at its pointer in the document.
    issues: Vec<Issue>,
    /// Pointers (in the document) of values left out to read the rest: a check reporting at
    /// or under one of them only repeats the shape problem found there.
    set_aside: Vec<String>,
    /// Each list read element by element (a check's `/steps/2` is the third step *read*).
    lists: Vec<List>,
    /// Check pointers whose problems depend on a whole part of the document: (at, on) drops a
    /// problem located exactly at `at` when anything at or under `on` was set aside.
    depends: Vec<(String, String)>,
}

/// A list read element by element.
#[derive(Debug)]
struct List {
    /// Its pointer in the document (`/steps/1/instructions`).
    pointer: String,
    /// How many elements the document has.
    len: usize,
    /// The document index of each element that was read, in order.
    kept: Vec<usize>,
}

impl List {
    fn whole(&self) -> bool {
        self.kept.len() == self.len
    }
}

/// A message serde gives for a struct missing a key: "missing field `label`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// A message serde gives for a key a struct does not have: "unknown field `feilds`, expected
/// one of …".
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// Whether `path` is `prefix` or lies under it (`/fields/1` is not under `/fields/10`).
fn at_or_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || prefix.is_empty()
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// One step of a walk down a JSON document.
enum Hop {
    Key(String),
    Index(usize),
}

/// The hops of a serde path that can be followed in the document. An enum's variant is a key
/// only where the document has it as one (externally tagged); a key that is not a string
/// cannot be followed, so the walk stops there.
fn hops(doc: &Json, path: &serde_path_to_error::Path) -> Vec<Hop> {
    let mut out = Vec::new();
    let mut at = Some(doc);
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                out.push(Hop::Index(*index));
                at = at.and_then(|v| v.get(*index));
            }
            Segment::Map { key } => {
                out.push(Hop::Key(key.clone()));
                at = at.and_then(|v| v.get(key));
            }
            Segment::Enum { variant } => {
                if let Some(inner) = at.and_then(|v| v.get(variant)) {
                    out.push(Hop::Key(variant.clone()));
                    at = Some(inner);
                }
            }
            Segment::Unknown => break,
        }
    }
    out
}

/// The JSON pointer of `hops` under `base`.
fn pointer(base: &str, hops: &[Hop]) -> String {
    let mut out = base.to_owned();
    for hop in hops {
        out.push('/');
        match hop {
            Hop::Key(k) => out.push_str(k),
            Hop::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// Removes the member `hops` ends with (a key) from `doc`; false if it is not there.
fn remove(doc: &mut Json, hops: &[Hop]) -> bool {
    let Some((Hop::Key(last), parents)) = hops.split_last() else {
        return false;
    };
    let mut at = doc;
    for hop in parents {
        let next = match hop {
            Hop::Key(k) => at.get_mut(k.as_str()),
            Hop::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    at.as_object_mut()
        .and_then(|o| o.shift_remove(last.as_str()))
        .is_some()
}

impl Shape {
    /// Nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no shape problem was found.
    pub fn is_clean(&self) -> bool {
        self.issues.is_empty()
    }

    /// The shape problems found so far, in the order they were found.
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Whether every element of the lists at or under `prefix` was read, and no value there
    /// set aside: what a check spanning that part (a service's graph) needs to be sound.
    pub fn whole_under(&self, prefix: &str) -> bool {
        self.set_aside.iter().all(|s| !at_or_under(s, prefix))
            && self
                .lists
                .iter()
                .filter(|l| at_or_under(&l.pointer, prefix))
                .all(List::whole)
    }

    /// Whether the value at `pointer` (or one under it) was set aside.
    pub fn set_aside_at(&self, pointer: &str) -> bool {
        self.set_aside.iter().any(|s| at_or_under(s, pointer))
    }

    /// Declares that a check's problem located exactly at `at` depends on the whole part of
    /// the document at `on`: it is dropped when anything there was set aside (a calendar
    /// "works at no time" when a weekday's malformed hours were left out).
    pub fn depends(&mut self, at: &str, on: &str) {
        self.depends.push((at.to_owned(), on.to_owned()));
    }

    /// Reads `json` (the value at `base` in the document) as a `T`: every value that does not
    /// fit is reported and set aside until the rest reads. `stand_ins` are values put in for
    /// required keys that are missing or were set aside (a label), so that the checks can
    /// still run over the rest; problems the checks find at a stand-in are dropped. None
    /// when even that does not make it readable (a field without a type).
    pub fn read<T: DeserializeOwned>(
        &mut self,
        json: &Json,
        base: &str,
        stand_ins: &[(&str, Json)],
    ) -> Option<T> {
        let mut doc = json.clone();
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..=MAX_SET_ASIDE_PER_ELEMENT {
            let error = match serde_path_to_error::deserialize::<_, T>(&doc) {
                Ok(value) => return Some(value),
                Err(e) => e,
            };
            let message = error.inner().to_string();
            let at = format!("{base}{}", serde_path_to_pointer(&error.path().to_string()));
            let mut walk = hops(&doc, error.path());
            let missing = missing_field(&message);
            let consequence =
                missing.is_some_and(|k| removed.iter().any(|r| *r == format!("{at}/{k}")));
            if !consequence {
                self.issues.push(Issue::new(at.clone(), message.clone()));
            }
            // A required key missing at the top: put in its stand-in.
            if let Some(key) = missing
                && walk.is_empty()
                && let Some((_, value)) = stand_ins.iter().find(|(k, _)| *k == key)
                && let Some(o) = doc.as_object_mut()
            {
                o.insert(key.to_owned(), value.clone());
                self.set_aside.push(format!("{base}/{key}"));
                removed.push(format!("{base}/{key}"));
                continue;
            }
            // An unknown key reported at the object holding it (as internally tagged enums
            // do): that key is what to set aside.
            if let Some(key) = unknown_field(&message)
                && !matches!(walk.last(), Some(Hop::Key(k)) if k == key)
                && json_at(&doc, &walk).is_some_and(|v| v.get(key).is_some())
            {
                walk.push(Hop::Key(key.to_owned()));
            }
            // Set aside the innermost member holding the problem: the bad value itself, the
            // object missing a key, or the whole list a bad element is in (removing just the
            // element would renumber the others). At the element's own top there is nothing
            // to set aside: the element cannot be read.
            let j = walk.iter().rposition(|s| matches!(s, Hop::Key(_)))?;
            walk.truncate(j + 1);
            let target = pointer(base, &walk);
            if !remove(&mut doc, &walk) {
                return None;
            }
            self.set_aside.push(target.clone());
            removed.push(target);
        }
        None
    }

    /// Takes the list at `key` out of the object `parent` (leaving an empty list, which every
    /// definition reads) and reads its elements one by one with `read_one` (given the element
    /// and its pointer). Returns the elements that could be read; the document indexes of the
    /// others are remembered, so that the checks' pointers can be mapped back. A `key` that
    /// is absent or not a list is left for `parent`'s own reading to report.
    pub fn take_list<T>(
        &mut self,
        parent: &mut Json,
        key: &str,
        base: &str,
        mut read_one: impl FnMut(&mut Shape, &Json, &str) -> Option<T>,
    ) -> Vec<T> {
        let Some(Json::Array(items)) = parent.get_mut(key) else {
            return Vec::new();
        };
        let items = std::mem::take(items);
        let mut kept = Vec::with_capacity(items.len());
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if self.issues.len() >= MAX_SHAPE_ISSUES {
                self.issues.push(Issue::new(
                    base,
                    format!(
                        "only the first {i} of {} elements were read: fix the problems found \
                         in them to have the rest checked",
                        items.len()
                    ),
                ));
                break;
            }
            if let Some(value) = read_one(self, item, &format!("{base}/{i}")) {
                out.push(value);
                kept.push(i);
            }
        }
        self.lists.push(List {
            pointer: base.to_owned(),
            len: items.len(),
            kept,
        });
        out
    }

    /// The document indexes of the elements of the list at `list` that could not be read.
    pub fn unread(&self, list: &str) -> Vec<usize> {
        self.lists
            .iter()
            .filter(|l| l.pointer == list)
            .flat_map(|l| (0..l.len).filter(|i| !l.kept.contains(i)))
            .collect()
    }

    /// Whether every element of the list at `list` was read.
    pub fn list_whole(&self, list: &str) -> bool {
        self.lists
            .iter()
            .filter(|l| l.pointer == list)
            .all(List::whole)
    }

    /// Merges the checks' problems with the shape's: each check pointer mapped back to the
    /// document's indexes, the problems that only repeat a shape problem dropped, every
    /// problem in document order (a node's own problem after those inside it), duplicates
    /// once.
    pub fn finish(mut self, checks: Vec<Issue>, body: &Json) -> Vec<Issue> {
        // Outer lists first: `/steps/1/instructions/0` maps its step, then its instruction.
        self.lists.sort_by_key(|l| l.pointer.matches('/').count());
        let mut out = std::mem::take(&mut self.issues);
        for mut issue in checks {
            for list in &self.lists {
                issue.path = remap(&issue.path, &list.pointer, &list.kept);
            }
            let repeats = self.set_aside.iter().any(|s| at_or_under(&issue.path, s))
                || self.depends.iter().any(|(at, on)| {
                    issue.path == *at && self.set_aside.iter().any(|s| at_or_under(s, on))
                });
            if !repeats {
                out.push(issue);
            }
        }
        let mut keyed: Vec<(Vec<usize>, Issue)> = out
            .into_iter()
            .map(|i| (document_position(body, &i.path), i))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut seen = std::collections::HashSet::new();
        keyed
            .into_iter()
            .map(|(_, issue)| issue)
            .filter(|i| seen.insert((i.path.clone(), i.message.clone())))
            .collect()
    }
}

/// A definition read from JSON as far as it could be: the value (None when not even its top
/// level could be read) and what reading found.
#[derive(Debug)]
pub struct Reading<T> {
    /// What was read.
    pub value: Option<T>,
    /// The shape problems, and what was set aside to read the rest.
    pub shape: Shape,
}

impl<T> Reading<T> {
    /// The definition when its shape is sound, else every shape problem.
    pub fn into_result(self, body: &Json) -> Result<T, DesignError> {
        self.check(body, |value, _| Ok(value))
    }

    /// The refusal of every shape problem, None when the shape is sound: for a caller that
    /// must refuse for another reason (the DataItem to change does not exist) and keeps a
    /// shape problem first.
    pub fn refusal(self, body: &Json) -> Option<DesignError> {
        if self.shape.is_clean() {
            return None;
        }
        Some(DesignError::InvalidDefinition(
            self.shape.finish(Vec::new(), body),
        ))
    }

    /// Runs `checks` over what was read (given the shape, to know what is whole) and answers
    /// the checked definition when nothing is wrong, else every problem found: the shape's and
    /// the checks', merged by [`Shape::finish`]. An error of the checks that is not about the
    /// definition (none today) is answered as it is when the shape is sound.
    pub fn check(
        self,
        body: &Json,
        checks: impl FnOnce(T, &Shape) -> Result<T, DesignError>,
    ) -> Result<T, DesignError> {
        let checked = self.value.map(|v| checks(v, &self.shape));
        match checked {
            Some(Ok(value)) if self.shape.is_clean() => Ok(value),
            Some(Err(DesignError::InvalidDefinition(issues))) => Err(
                DesignError::InvalidDefinition(self.shape.finish(issues, body)),
            ),
            Some(Err(other)) if self.shape.is_clean() => Err(other),
            _ => Err(DesignError::InvalidDefinition(
                self.shape.finish(Vec::new(), body),
            )),
        }
    }
}

/// What stands in for a required label that is missing or unreadable, so that the checks
/// can run over the rest (its identifier derives to `item`; nothing with it is ever stored,
/// the label's own problem refuses the definition).
pub fn stand_in_label() -> Json {
    serde_json::json!({"zh": "item"})
}

/// The value at `hops` in `doc`.
fn json_at<'a>(doc: &'a Json, hops: &[Hop]) -> Option<&'a Json> {
    let mut at = doc;
    for hop in hops {
        at = match hop {
            Hop::Key(k) => at.get(k.as_str())?,
            Hop::Index(i) => at.get(*i)?,
        };
    }
    Some(at)
}

/// Maps `path`'s index into the list at `list` from the elements read to the document's.
fn remap(path: &str, list: &str, kept: &[usize]) -> String {
    let Some(rest) = path.strip_prefix(list).and_then(|r| r.strip_prefix('/')) else {
        return path.to_owned();
    };
    let (index, tail) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match index.parse::<usize>().ok().and_then(|i| kept.get(i)) {
        Some(original) => format!("{list}/{original}{tail}"),
        None => path.to_owned(),
    }
}

/// Where `pointer` is in `body`, as a sort key: the position of each key in its object (the
/// order the analyst wrote them, kept by serde_json's `preserve_order`) and each index, then
/// `usize::MAX` for the node itself, so that a node's own problem ("the calendar never
/// works", at `/weekly`) comes after the problems inside it. A part of the pointer the body
/// does not have (a derived name) sorts after what the body has there.
fn document_position(body: &Json, pointer: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = Some(body);
    for segment in pointer.split('/').skip(1) {
        let position = match at {
            Some(Json::Object(map)) => map.keys().position(|k| k == segment),
            Some(Json::Array(list)) => segment.parse::<usize>().ok().filter(|i| *i < list.len()),
            _ => None,
        };
        match position {
            Some(p) => {
                out.push(p);
                at = at.and_then(|v| match v {
                    Json::Object(map) => map.get(segment),
                    _ => v.get(p),
                });
            }
            None => {
                out.push(usize::MAX - 1);
                break;
            }
        }
    }
    out.push(usize::MAX);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Field {
        label: String,
        #[serde(rename = "type")]
        ty: Kind,
        #[serde(default)]
        max_length: Option<u32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Text,
    }

    #[test]
    fn serde_messages_are_still_what_the_reader_expects() {
        let e = serde_json::from_value::<Field>(json!({"label": "x", "type": "text", "lable": 1}))
            .unwrap_err()
            .to_string();
        assert_eq!(unknown_field(&e), Some("lable"), "{e}");
        let e = serde_json::from_value::<Field>(json!({"type": "text"}))
            .unwrap_err()
            .to_string();
        assert_eq!(missing_field(&e), Some("label"), "{e}");
    }

    #[test]
    fn every_bad_value_of_an_element_is_reported_and_the_rest_read() {
        let mut shape = Shape::new();
        let field: Option<Field> = shape.read(
            &json!({"label": "姓名", "type": "text", "max_lenght": 3, "max_length": "x"}),
            "/fields/0",
            &[],
        );
        assert!(field.is_some());
        let paths: Vec<&str> = shape.issues().iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["/fields/0/max_lenght", "/fields/0/max_length"]);
    }

    #[test]
    fn an_element_without_what_it_needs_is_left_out_and_pointers_map_back() {
        let mut shape = Shape::new();
        let mut doc =
            json!({"fields": [{"label": "a", "type": "txet"}, {"label": "b", "type": "text"}]});
        let fields: Vec<Field> =
            shape.take_list(&mut doc, "fields", "/fields", |s, v, at| s.read(v, at, &[]));
        assert_eq!(fields.len(), 1);
        assert!(!shape.list_whole("/fields"));
        let body =
            json!({"fields": [{"label": "a", "type": "txet"}, {"label": "b", "type": "text"}]});
        let issues = shape.finish(vec![Issue::new("/fields/0/label", "checked")], &body);
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        // The unknown type is reported once (not again as a missing type), the check at the
        // one field read is mapped back to the second field.
        assert_eq!(paths, ["/fields/0/type", "/fields/1/label"]);
    }

    #[test]
    fn a_missing_required_key_gets_its_stand_in_and_checks_there_are_dropped() {
        let mut shape = Shape::new();
        let body = json!({"type": "text"});
        let field: Option<Field> = shape.read(&body, "", &[("label", json!(""))]);
        assert!(field.is_some());
        let issues = shape.finish(vec![Issue::new("/label", "a label is required")], &body);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].message, "missing field `label`");
    }

    #[test]
    fn thousands_of_unreadable_elements_give_a_bounded_answer() {
        let mut shape = Shape::new();
        let elements: Vec<Json> = (0..10_000).map(|_| json!({})).collect();
        let mut doc = json!({ "fields": elements });
        let read: Vec<Field> =
            shape.take_list(&mut doc, "fields", "/fields", |s, v, at| s.read(v, at, &[]));
        assert!(read.is_empty());
        assert_eq!(shape.issues().len(), MAX_SHAPE_ISSUES + 1);
        let last = shape.issues().last().unwrap();
        assert_eq!(last.path, "/fields");
        assert!(
            last.message.contains("of 10000 elements"),
            "{}",
            last.message
        );
    }

    #[test]
    fn document_order_puts_a_node_after_what_it_holds() {
        let body = json!({"name": "x", "weekly": {"mon": [1]}, "label": {}});
        let mut keys = ["/label/zh", "/weekly", "/weekly/mon/0", "/name"]
            .map(|p| (document_position(&body, p), p));
        keys.sort();
        assert_eq!(
            keys.map(|(_, p)| p),
            ["/name", "/weekly/mon/0", "/weekly", "/label/zh"]
        );
    }
}
