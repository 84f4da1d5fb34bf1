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

/// The crates of ours a package depends on directly (normal dependencies), from its manifest
/// as `cargo metadata` reads it.
fn our_direct_dependencies() -> std::collections::BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut edges = std::collections::BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let mut deps: Vec<String> = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_string())
            .filter(|n| n.starts_with("para-"))
            .collect();
        deps.sort();
        deps.dedup();
        edges.insert(p["name"].as_str().unwrap().to_string(), deps);
    }
    edges
}

/// The layers of the server, one way: `para-upstream ← para-connect ← para-worker ←
/// para-server`, and no
/// other edge between our crates than these (a new one is a decision: change it here and in
/// ARCHITECTURE.md).
#[test]
fn our_crates_depend_on_each_other_one_way() {
    let expected: &[(&str, &[&str])] = &[
        ("para-auth", &[]),
        ("para-bench", &["para-auth", "para-catalog", "para-connect", "para-store"]),
        ("para-build", &[]),
        ("para-catalog", &[]),
        (
            "para-cli",
            &[
                "para-auth",
                "para-build",
                "para-catalog",
                "para-compiler",
                "para-connect",
                "para-project",
                "para-server",
                "para-store",
                "para-telemetry",
                "para-types",
                "para-worker",
            ],
        ),
        ("para-compiler", &["para-build", "para-catalog", "para-js", "para-project"]),
        (
            // para-engine (pure, no I/O) for the one `Retry-After` reading both wait on.
            "para-connect",
            &[
                "para-auth",
                "para-build",
                "para-catalog",
                "para-engine",
                "para-store",
                "para-telemetry",
                "para-upstream",
            ],
        ),
        ("para-engine", &["para-build"]),
        ("para-js", &["para-project"]),
        ("para-project", &[]),
        (
            "para-server",
            &[
                "para-auth",
                "para-build",
                "para-catalog",
                "para-connect",
                "para-store",
                "para-telemetry",
                "para-worker",
            ],
        ),
        ("para-store", &[]),
        // Metrics and traces: every layer records into it, so it knows none of them.
        ("para-telemetry", &[]),
        ("para-types", &["para-catalog"]),
        ("para-upstream", &[]),
        (
            "para-worker",
            &[
                "para-auth",
                "para-build",
                "para-catalog",
                "para-connect",
                "para-engine",
                "para-js",
                "para-store",
                "para-telemetry",
            ],
        ),
    ];
    let expected: std::collections::BTreeMap<String, Vec<String>> = expected
        .iter()
        .map(|(name, deps)| (name.to_string(), deps.iter().map(|d| d.to_string()).collect()))
        .collect();
    assert_eq!(our_direct_dependencies(), expected);
}

/// `para-connect` (the credentials domain) and `para-worker` (the engine's host) answer no
/// HTTP: no axum, no hyper server, no `para-server`; hyper comes in only as reqwest's client.
#[test]
fn para_connect_and_para_worker_depend_on_no_server() {
    for (krate, expected) in [("para-connect", "para-upstream"), ("para-worker", "para-connect")] {
        let deps = dependencies_of(krate);
        assert!(deps.contains(expected), "{krate}: not the graph expected: {deps:?}");
        let wrong: Vec<&String> = deps
            .iter()
            .filter(|d| d.starts_with("axum") || *d == "para-server" || *d == "para-cli")
            .collect();
        assert!(wrong.is_empty(), "{krate} depends on {wrong:?}");
        let manifest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../{krate}/Cargo.toml")),
        )
        .unwrap();
        for server in ["hyper", "hyper-util", "tower", "axum"] {
            let named = manifest.lines().any(|l| l.split([' ', '=', '.']).next() == Some(server));
            assert!(!named, "{krate} names `{server}` as a dependency");
        }
    }
}

/// `para run` needs no server: its command names nothing of `para-server` (it builds a
/// `para_worker::Worker` over a `para_connect::Connect`).
#[test]
fn para_run_does_not_need_the_server() {
    let run =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands/run.rs"))
            .unwrap();
    assert!(run.contains("para_worker"), "not the run command expected");
    for server in ["para_server", "Setup", "ServeArgs", "AppState"] {
        assert!(!run.contains(server), "src/commands/run.rs names `{server}`");
    }
}

/// A user's credential is applied to a request only in `para-connect/src/send.rs`
/// (`Connect::send`, with its path guard and refresh rule): outside `connector.rs`, which
/// defines it, `.authorize(` is called there alone, but for checking that a credential can
/// be applied (`.authorize(…).is_err()`), which sends nothing.
#[test]
fn a_credential_is_applied_only_by_connect_send() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    let mut applied_in = Vec::new();
    for file in &files {
        let name = file.strip_prefix(&crates).unwrap().display().to_string();
        if !name.contains("/src/") || name.ends_with("para-connect/src/connector.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices(".authorize(") {
            let call_end = text[at..].find(')').map_or(text.len(), |end| at + end + 1);
            if !text[call_end..].starts_with(".is_err()") {
                applied_in.push(name.clone());
            }
        }
    }
    assert_eq!(applied_in, ["para-connect/src/send.rs"], "where credentials are applied");
}

/// `para-engine` decides, its host does: nothing in its dependency graph does I/O (no async
/// runtime, HTTP, database or JavaScript engine), so every effect goes through its `Host` trait.
#[test]
fn para_engine_depends_on_nothing_that_does_io() {
    let deps = dependencies_of("para-engine");
    assert!(deps.contains("para-build"), "not the graph expected: {deps:?}");
    for io in ["tokio", "reqwest", "hyper", "sqlx", "rquickjs", "para-js", "para-store"] {
        assert!(!deps.contains(io), "para-engine depends on `{io}`: {deps:?}");
    }
}
