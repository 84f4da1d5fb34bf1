//! The documents stand together: `docs/README.md` lists every document of the repository, every
//! relative link in a document reaches an existing file (and heading, for `#anchor`s), and every
//! document section a hint or help text of the code names (`docs/server.md § OAuth clients and
//! endpoint overrides`) exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Files under `dir` whose name ends with one of `suffixes`, skipping build output, installed
/// packages and hidden folders.
fn files(dir: &Path, suffixes: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                files(&path, suffixes, out);
            }
        } else if suffixes.iter().any(|s| name.ends_with(s)) {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap().to_string_lossy().replace('\\', "/")
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `(target, line)` of every relative link `](target)` in a Markdown text, outside code blocks.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut fenced = false;
    let mut in_code = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            in_code = false;
            continue;
        }
        if fenced {
            continue;
        }
        if line.trim().is_empty() {
            in_code = false;
        }
        // Inline code (`f(...)` or `[a](b)` shown as code, possibly over two lines) is not a
        // link.
        let mut prose = String::new();
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                prose.push(' ');
            } else if !in_code {
                prose.push(c);
            }
        }
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                out.push((target.to_string(), n + 1));
            }
            rest = &after[end..];
        }
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files(&repo(), &[".md"], &mut all);
    all.sort();
    all
}

#[test]
fn the_docs_index_lists_every_document() {
    let index = repo().join("docs/README.md");
    let text = std::fs::read_to_string(&index).expect("docs/README.md exists");
    let listed: BTreeSet<PathBuf> = links(&text)
        .into_iter()
        .filter_map(|(target, _)| {
            let file = target.split('#').next().unwrap_or_default().to_string();
            index.parent().unwrap().join(file).canonicalize().ok()
        })
        .collect();
    let missing: Vec<String> = markdown_files()
        .into_iter()
        .filter(|p| *p != index && !listed.contains(p))
        // Crates' and tools' own notes are not documents of the product.
        .filter(|p| !relative(p).starts_with("crates/"))
        .map(|p| relative(&p))
        .collect();
    assert!(missing.is_empty(), "docs/README.md does not link: {missing:?}");
}

#[test]
fn relative_links_in_documents_reach_files_and_headings() {
    let mut broken = Vec::new();
    for doc in markdown_files() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (target, line) in links(&text) {
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() { doc.clone() } else { doc.parent().unwrap().join(file) };
            let here = format!("{}:{line}: `{target}`", relative(&doc));
            if !path.exists() {
                broken.push(format!("{here}: no such file"));
            } else if let Some(anchor) = anchor
                && path.extension().is_some_and(|e| e == "md")
                && !anchors(&path).contains(anchor)
            {
                broken.push(format!("{here}: no such heading"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `docs/server.md § OAuth clients` (and plain `docs/server.md`, and `README § Serving`) in a
/// line of code that is not a comment: what hints and help texts tell users to read.
fn named_sections(line: &str) -> Vec<(String, Option<String>)> {
    let bytes = line.as_bytes();
    let token_before = |end: usize| {
        let mut start = end;
        while start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || b"_./-".contains(&bytes[start - 1]))
        {
            start -= 1;
        }
        &line[start..end]
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = line[from..].find(".md") {
        let end = from + found + 3;
        if !line[end..].starts_with(" § ") {
            out.push((token_before(end).to_string(), None));
        }
        from = end;
    }
    let mut from = 0;
    while let Some(found) = line[from..].find(" § ") {
        let at = from + found;
        let token = token_before(at);
        let file = if token.ends_with(".md") {
            token.to_string()
        } else {
            // `README § X` names the README too.
            format!("{token}.md")
        };
        let rest = &line[at + " § ".len()..];
        let stop = rest.find([':', ';', '"', ')', ',', '`', '\\']).unwrap_or(rest.len());
        out.push((file, Some(rest[..stop].trim().to_string())));
        from = at + " § ".len();
    }
    out
}

#[test]
fn sections_named_in_hints_and_help_exist() {
    let mut sources = Vec::new();
    for crate_dir in std::fs::read_dir(repo().join("crates")).unwrap() {
        let crate_dir = crate_dir.unwrap().path();
        for sub in ["src", "templates"] {
            if crate_dir.join(sub).is_dir() {
                files(&crate_dir.join(sub), &[".rs", ".html", ".js"], &mut sources);
            }
        }
    }
    let mut checked = 0;
    let mut broken = Vec::new();
    for source in sources {
        let text = std::fs::read_to_string(&source).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with('*') || code.starts_with("/*") {
                continue;
            }
            for (file, section) in named_sections(line) {
                // Only paths into the repository or sections: `README.md` alone, in a test of
                // file names, is data.
                if !file.contains('/') && section.is_none() {
                    continue;
                }
                checked += 1;
                let here = format!("{}:{}: `{file}`", relative(&source), n + 1);
                let path = repo().join(&file);
                if !path.is_file() {
                    broken.push(format!("{here}: no such document"));
                } else if let Some(section) = section
                    && !anchors(&path).contains(&slug(&section))
                {
                    broken.push(format!("{here}: no section `{section}`"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "hints name what does not exist:\n{}", broken.join("\n"));
    assert!(checked > 0, "the serve hint names docs/server.md § OAuth clients…");
}

#[test]
fn section_references_are_found_in_code_lines() {
    assert_eq!(
        named_sections(r#"    "see docs/server.md § OAuth clients and endpoint overrides: x","#),
        [("docs/server.md".to_string(), Some("OAuth clients and endpoint overrides".to_string()))]
    );
    assert_eq!(named_sections("(docs/engine.md)"), [("docs/engine.md".to_string(), None)]);
    assert_eq!(
        named_sections(
            r#"Some("see README § Serving: PARA_OAUTH_<KEY>_CLIENT_ID (docs/server.md)")"#
        ),
        [
            ("docs/server.md".to_string(), None),
            ("README.md".to_string(), Some("Serving".to_string())),
        ]
    );
    assert_eq!(slug(" 4.1 Guarantees"), "41-guarantees");
    assert_eq!(slug("Proxy: `bench/proxy`"), "proxy-benchproxy");
}
