//! What a definition may name outside itself — roles, skills, departments, users, resource
//! types and instances, calendars, services, signals — as the kernel knows it when the
//! definition is saved.
//!
//! Before this, a service naming a role nobody holds published fine and its processes waited
//! forever for an operator. Now every such name is looked up here when the definition is
//! checked, and an unknown one is an [`Issue`] at its JSON pointer, with "did you mean" when
//! a close name exists (`'nures'`: did you mean `'nurse'`?).
//!
//! The directory is plain data handed in by the kernel, so the checks stay pure. A kind the
//! caller did not fill in is not checked (a unit test of a graph need not invent an
//! organisation); the kernel always fills in every kind.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Issue;

/// A kind of name a definition may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A role (defined under `/roles` or held by a user).
    Role,
    /// A skill (defined under `/skills` or held by a user).
    Skill,
    /// A department.
    Department,
    /// A user (an operator).
    User,
    /// A resource type.
    ResourceType,
    /// A resource instance.
    Resource,
    /// A working calendar.
    Calendar,
    /// A service (published, or a draft where drafts may be named).
    Service,
    /// A signal some service's wait step waits for.
    Signal,
}

impl Kind {
    /// The noun an analyst reads in a message.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Role => "role",
            Kind::Skill => "skill",
            Kind::Department => "department",
            Kind::User => "user",
            Kind::ResourceType => "resource type",
            Kind::Resource => "resource",
            Kind::Calendar => "calendar",
            Kind::Service => "service",
            Kind::Signal => "signal",
        }
    }
}

/// The names that exist, per kind, and each known service's subject DataItem.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    names: BTreeMap<Kind, BTreeSet<String>>,
    subjects: BTreeMap<String, String>,
}

impl Directory {
    /// A directory that checks nothing (every kind unknown, so every name accepted).
    pub fn unchecked() -> Self {
        Self::default()
    }

    /// Checks names of `kind` against `names` (adding to those already given).
    pub fn with(mut self, kind: Kind, names: impl IntoIterator<Item = String>) -> Self {
        self.add(kind, names);
        self
    }

    /// Adds names of `kind` (and makes the kind checked).
    pub fn add(&mut self, kind: Kind, names: impl IntoIterator<Item = String>) {
        self.names.entry(kind).or_default().extend(names);
    }

    /// Adds names of `kind` when that kind is checked (a definition's own names, such as
    /// the signals its wait steps wait for, on top of what the caller gave).
    pub fn also(&mut self, kind: Kind, names: impl IntoIterator<Item = String>) {
        if let Some(known) = self.names.get_mut(&kind) {
            known.extend(names);
        }
    }

    /// Adds a service (when services are checked) and the DataItem its processes are
    /// bound to, for the fields a rule on its events may read.
    pub fn add_service(&mut self, name: &str, subject: Option<&str>) {
        self.also(Kind::Service, [name.to_owned()]);
        if let Some(subject) = subject {
            self.subjects.insert(name.to_owned(), subject.to_owned());
        }
    }

    /// Whether `name` exists as a `kind` (always, for a kind not checked).
    pub fn knows(&self, kind: Kind, name: &str) -> bool {
        self.names.get(&kind).is_none_or(|n| n.contains(name))
    }

    /// The subject DataItem of a known service.
    pub fn subject_of(&self, service: &str) -> Option<&str> {
        self.subjects.get(service).map(String::as_str)
    }

    /// Reports `name` at `at` when no `kind` of that name exists.
    pub fn check(&self, kind: Kind, name: &str, at: impl Into<String>, issues: &mut Vec<Issue>) {
        if !self.knows(kind, name) {
            issues.push(Issue::new(at, self.unknown(kind, name)));
        }
    }

    /// The message for a `kind` named `name` that does not exist, with a suggestion.
    pub fn unknown(&self, kind: Kind, name: &str) -> String {
        unknown(
            kind.noun(),
            name,
            self.names.get(&kind).into_iter().flatten(),
        )
    }
}

/// One name a definition uses: what kind of thing, its name, and the JSON pointer of the
/// place that names it (see `Service::uses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// What it names.
    pub kind: Kind,
    /// The name.
    pub name: String,
    /// Where, in the definition.
    pub at: String,
}

/// "no role named 'nures'; did you mean 'nurse'?" — the message of an unknown name, with
/// the closest of `known` when one is close enough to be a slip.
pub fn unknown<'a>(noun: &str, name: &str, known: impl IntoIterator<Item = &'a String>) -> String {
    match did_you_mean(name, known) {
        Some(close) => format!("no {noun} named '{name}'; did you mean '{close}'?"),
        None => format!("no {noun} named '{name}'"),
    }
}

/// The name in `known` closest to `name`, if it is close enough to be a slip of the
/// keyboard: at most a third of the longer name's characters (rounded up) differ, by edit
/// distance (so a swapped pair or a missing letter counts), and never for a one-letter name.
pub fn did_you_mean<'a>(
    name: &str,
    known: impl IntoIterator<Item = &'a String>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in known {
        let distance = strsim::damerau_levenshtein(name, candidate);
        let longest = name.chars().count().max(candidate.chars().count());
        if distance == 0 || longest < 2 || distance > longest.div_ceil(3) {
            continue;
        }
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_unchecked_kind_accepts_every_name() {
        let d = Directory::unchecked().with(Kind::Role, names(&["nurse"]));
        assert!(d.knows(Kind::Skill, "anything"));
        assert!(d.knows(Kind::Role, "nurse"));
        assert!(!d.knows(Kind::Role, "doctor"));
    }

    #[test]
    fn a_slip_gets_a_suggestion_and_a_stranger_does_not() {
        let d = Directory::unchecked().with(Kind::Role, names(&["nurse", "doctor", "yishi"]));
        let mut issues = Vec::new();
        d.check(Kind::Role, "nures", "/steps/0/operators/role", &mut issues);
        d.check(
            Kind::Role,
            "cashier",
            "/steps/1/operators/role",
            &mut issues,
        );
        assert_eq!(issues[0].path, "/steps/0/operators/role");
        assert_eq!(
            issues[0].message,
            "no role named 'nures'; did you mean 'nurse'?"
        );
        assert_eq!(issues[1].message, "no role named 'cashier'");
    }

    #[test]
    fn the_closest_of_several_is_suggested() {
        let known = names(&["laser_room", "laser_device", "room"]);
        assert_eq!(did_you_mean("laser_rom", &known), Some("laser_room"));
        assert_eq!(did_you_mean("x", &known), None);
    }
}
