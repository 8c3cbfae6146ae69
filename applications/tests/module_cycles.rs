//! No import cycles between the top-level modules of any crate (issue 12): a module that
//! uses `crate::x` depends on `x`, and no chain of such uses may come back to where it
//! started. Dependencies then point one way, and a layer can be read (and tested) without
//! the ones above it: the store below the engine, the engine below the application layer,
//! the rules and the outbox above it.
//!
//! The crate root (`lib.rs`) is left out: it declares every module and holds `Kernel`,
//! which everything is handed. Test modules count, comments do not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of the crate whose sources are in `src`, with the modules of the
/// same crate it uses.
fn dependencies(src: &Path) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if path.is_dir() {
            modules.entry(name).or_default().extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            modules.entry(name).or_default().push(path);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut out = BTreeMap::new();
    for (module, files) in &modules {
        let mut uses = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(file)?;
            for used in crate_uses(&text) {
                if used != *module && names.contains(&used) {
                    uses.insert(used);
                }
            }
        }
        out.insert(module.clone(), uses);
    }
    Ok(out)
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

/// The first segments after `crate::` in `text` (comments left out), including each name
/// of a `crate::{a, b::c}` group.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `erpos_kernel::…` ends in no `crate::`, but `mycrate::` would.
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            for item in group.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The groups of modules that depend on each other in a circle (Tarjan's strongly
/// connected components of more than one module).
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            let next: Vec<&'a str> = self
                .deps
                .get(v)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            for w in next {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.insert(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.out.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        deps,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in deps.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut problems = Vec::new();
    for src in [
        "design/src",
        "kernel/src",
        "kernel/http/src",
        "applications/src",
    ] {
        let deps = dependencies(&root.join(src))?;
        assert!(deps.len() > 3, "{src}: no modules found");
        for group in cycles(&deps) {
            let edges: Vec<String> = group
                .iter()
                .map(|m| {
                    let inside: Vec<&String> =
                        deps[m].iter().filter(|d| group.contains(*d)).collect();
                    format!("{m} → {inside:?}")
                })
                .collect();
            problems.push(format!("{src}: {}", edges.join("; ")));
        }
    }
    assert!(
        problems.is_empty(),
        "modules that use each other in a circle:\n{}",
        problems.join("\n")
    );
    Ok(())
}

#[test]
fn the_check_finds_a_cycle_and_reads_groups_and_comments() {
    // The check itself can fail: a circle through three modules is found, a use in a
    // comment is not one, and every name of a `crate::{…}` group counts.
    assert_eq!(
        crate_uses(
            "use crate::{engine, store::Select};\n// crate::rules\nlet x = crate::app::f();"
        ),
        ["app", "engine", "store"].map(String::from).into()
    );
    let deps: BTreeMap<String, BTreeSet<String>> = [
        ("engine", vec!["outbox"]),
        ("outbox", vec!["app"]),
        ("app", vec!["engine", "store"]),
        ("store", vec![]),
    ]
    .into_iter()
    .map(|(m, d)| (m.to_owned(), d.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycles(&deps),
        vec![["app", "engine", "outbox"].map(String::from).into()]
    );
}
