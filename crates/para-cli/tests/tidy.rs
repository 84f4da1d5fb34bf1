//! Repository hygiene: every Rust module starts with a `//!` line saying what it owns.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("fixtures") && !path.ends_with("snapshots") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_has_a_doc_header() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    assert!(files.len() > 10);
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(&crates).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a `//!` header: {missing:?}");
}

/// The packages `name` depends on, directly or not (normal dependencies, as `cargo metadata`
/// resolves them for this workspace).
fn dependencies_of(name: &str) -> std::collections::BTreeSet<String> {
    // This machine's target only: the crates other platforms need may not be downloaded.
    let rustc = std::process::Command::new("rustc").arg("-vV").output().unwrap();
    let host = String::from_utf8(rustc.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform"])
        .arg(&host)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let start = nodes.iter().find(|n| name_of(n["id"].as_str().unwrap()) == name).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![start];
    while let Some(node) = todo.pop() {
        for dep in node["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            let id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(name_of(id)) {
                todo.push(nodes.iter().find(|n| n["id"] == id).unwrap());
            }
        }
    }
    seen
}

/// `para-upstream` (the proxy's HTTP client) knows no other crate of ours and no axum (hyper and
/// tower-http come in through reqwest, as client code).
#[test]
fn para_upstream_depends_on_no_server_and_no_crate_of_ours() {
    let deps = dependencies_of("para-upstream");
    assert!(deps.contains("tokio-rustls"), "not the graph expected: {deps:?}");
    let wrong: Vec<&String> =
        deps.iter().filter(|d| d.starts_with("para-") || d.starts_with("axum")).collect();
    assert!(wrong.is_empty(), "para-upstream depends on {wrong:?}");
}
