//! The modules of a crate's `src/` import each other without a cycle (issue 20), for the
//! crates whose layering matters (`CHECKED`): read from the sources,
//! every `crate::<module>` / `super::<module>` reference (`use` or inline path, `{…}` groups
//! included) is an edge; `lib.rs`, the crate root that declares them all, is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crates checked, with an edge each that is known to exist (so a reading that finds no
/// edges cannot pass).
const CHECKED: &[(&str, (&str, &str))] = &[
    ("para-compiler", ("workflows", "eval")),
    ("para-connect", ("connect", "connector")),
    ("para-worker", ("engine", "actions")),
    ("para-server", ("api", "views")),
];

/// Module name → source, for every `src/*.rs` of `krate` but `lib.rs`.
fn sources(krate: &str) -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            !path.is_dir(),
            "{} is a directory: this check reads only flat `src/*.rs` modules; extend it",
            path.display()
        );
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            out.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The leading identifier of `text` (after whitespace).
fn ident(text: &str) -> &str {
    let text = text.trim_start();
    &text[..text.find(|c: char| !is_ident(c)).unwrap_or(text.len())]
}

/// The first path segments named after `crate::` or `super::` in `source` (comment lines
/// skipped). `use crate::{a::X, b::{self, Y}}` names `a` and `b`.
fn references(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| [line, "\n"])
        .collect();
    let mut found = BTreeSet::new();
    for prefix in ["crate::", "super::"] {
        for (at, _) in code.match_indices(prefix) {
            if code[..at].chars().next_back().is_some_and(|c| is_ident(c) || c == '$') {
                continue; // `para_crate::`, `$crate::`
            }
            let rest = &code[at + prefix.len()..];
            let Some(group) = rest.strip_prefix('{') else {
                found.insert(ident(rest).to_string());
                continue;
            };
            // Items of the group at depth 0: the first segment of each.
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(&group[start..i]).to_string());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(&group[start..i]).to_string());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// Module → the other modules it references.
fn graph(sources: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    sources
        .iter()
        .map(|(name, source)| {
            let mut deps = references(source);
            // Only modules count (not items of the crate root), and a module's own tests'
            // `super::…` is the module itself.
            deps.retain(|dep| dep != name && sources.contains_key(dep));
            (name.clone(), deps)
        })
        .collect()
}

/// A cycle, as the modules along it with the first repeated at the end, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(dep, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn render(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    graph
        .iter()
        .map(|(name, deps)| {
            format!("{name} → {}\n", deps.iter().cloned().collect::<Vec<_>>().join(", "))
        })
        .collect()
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    for (krate, (from, to)) in CHECKED {
        let sources = sources(krate);
        let graph = graph(&sources);
        assert!(graph[*from].contains(*to), "{krate}: not the graph expected:\n{}", render(&graph));
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{krate}'s modules import each other in a circle: {}\n\nthe graph:\n{}",
                cycle.join(" → "),
                render(&graph)
            );
        }
    }
}

/// The check itself: group imports, inline paths and comments are read as intended, and a
/// circle is found and named.
#[test]
fn the_check_reads_imports_and_names_a_circle() {
    let a = "use crate::{\n    b::{self, X},\n    c::Y,\n};\n// crate::d in a comment\nfn f() { super::e::g(); para_crate::h(); }\nmod tests { use super::*; }\n";
    let expected: BTreeSet<String> = ["b", "c", "e"].into_iter().map(String::from).collect();
    assert_eq!(references(a), expected);

    let sources: BTreeMap<String, String> = [
        ("a", "use crate::b::X;"),
        ("b", "fn f() -> crate::c::Y { todo!() }"),
        ("c", "use crate::{a::Z, Root};"),
        ("d", "use crate::a;"),
    ]
    .into_iter()
    .map(|(name, source)| (name.to_string(), source.to_string()))
    .collect();
    let graph = graph(&sources);
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let mut broken = graph.clone();
    broken.get_mut("c").unwrap().remove("a");
    assert_eq!(find_cycle(&broken), None);
}
