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
    ("para-server", ("routes::api", "views")),
];

/// Module path → source, for every `.rs` file below `krate`'s `src/` but `lib.rs`: `a.rs` is
/// `a`, `a/mod.rs` is `a`, `a/b.rs` is `a::b`.
fn sources(krate: &str) -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let module = if prefix.is_empty() { name.clone() } else { format!("{prefix}::{name}") };
            if path.is_dir() {
                walk(&path, &module, out);
            } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
                let module = if name == "mod" { prefix.to_string() } else { module };
                out.insert(module, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src");
    let mut out = BTreeMap::new();
    walk(&src, "", &mut out);
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

/// The paths named after `crate::` or `super::` in `source` (comment lines skipped), each
/// as its first two segments joined by `::` (or one, when the path has one), with the prefix:
/// `use crate::{a::X, b::{self, Y}}` names `crate::a::X` and `crate::b::self`, `crate::b::Y`.
fn references(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| [line, "\n"])
        .collect();
    let mut found = BTreeSet::new();
    for prefix in ["crate", "super"] {
        let marker = format!("{prefix}::");
        for (at, _) in code.match_indices(&marker) {
            if code[..at].chars().next_back().is_some_and(|c| is_ident(c) || c == '$') {
                continue; // `para_crate::`, `$crate::`
            }
            for path in paths(&code[at + marker.len()..], 2) {
                found.insert(format!("{prefix}::{path}"));
            }
        }
    }
    found
}

/// The paths of the use tree at the start of `text`, cut to `segments` segments: `a::{b, c::D}`
/// gives `a::b` and `a::c` for two.
fn paths(text: &str, segments: usize) -> Vec<String> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        // Items of the group at depth 0, each a tree of its own.
        let (mut depth, mut start, mut out) = (0, 0, Vec::new());
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.extend(paths(&group[start..i], segments));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(paths(&group[start..i], segments));
                    start = i + 1;
                }
                _ => {}
            }
        }
        return out;
    }
    let head = ident(text);
    if head.is_empty() {
        return Vec::new();
    }
    let rest = text.trim_start()[head.len()..].trim_start();
    match rest.strip_prefix("::") {
        Some(rest) if segments > 1 => {
            let tails = paths(rest, segments - 1);
            if tails.is_empty() {
                vec![head.to_string()]
            } else {
                tails.into_iter().map(|tail| format!("{head}::{tail}")).collect()
            }
        }
        _ => vec![head.to_string()],
    }
}

/// Module → the other modules it references: a path names the longest module it starts with
/// (`crate::routes::api::X` names `routes::api`; `crate::views::Y` names `views`); `super::`
/// in `a::b` is `a` (tried first) or the crate root.
fn graph(sources: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let module_of = |path: &str| -> Option<String> {
        let segments: Vec<&str> = path.split("::").collect();
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|candidate| sources.contains_key(candidate))
    };
    sources
        .iter()
        .map(|(name, source)| {
            let parent = name.rsplit_once("::").map(|(parent, _)| parent);
            let deps = references(source)
                .into_iter()
                .filter_map(|reference| {
                    if let Some(path) = reference.strip_prefix("crate::") {
                        return module_of(path);
                    }
                    let path = reference.strip_prefix("super::")?;
                    parent
                        .and_then(|p| module_of(&format!("{p}::{path}")))
                        .or_else(|| module_of(path))
                })
                // A module's own tests' `super::…` is the module itself; only modules count
                // (not items of the crate root).
                .filter(|dep| dep != name)
                .collect();
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
    let expected: BTreeSet<String> =
        ["crate::b::self", "crate::b::X", "crate::c::Y", "super::e::g"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(references(a), expected);
    let nested = "use crate::routes::{api, options::X};\nuse crate::views;\n";
    let expected: BTreeSet<String> =
        ["crate::routes::api", "crate::routes::options", "crate::views"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(references(nested), expected);

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

/// `para-server`'s JSON routes never import its pages (issue 20): a page may use a route's
/// helpers, not the other way round, so the JSON history API knows nothing of the dashboard.
#[test]
fn routes_never_import_pages() {
    let graph = graph(&sources("para-server"));
    assert!(
        graph["pages::dashboard_runs"].contains("routes::history"),
        "not the graph expected:\n{}",
        render(&graph)
    );
    let wrong: Vec<String> = graph
        .iter()
        .filter(|(name, _)| name.starts_with("routes"))
        .flat_map(|(name, deps)| {
            deps.iter().filter(|d| d.starts_with("pages")).map(move |d| format!("{name} → {d}"))
        })
        .collect();
    assert!(wrong.is_empty(), "routes import pages: {wrong:?}");
}
