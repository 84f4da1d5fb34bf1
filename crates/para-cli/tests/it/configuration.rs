//! The configuration surface: every `PARA_*` variable the sources name is in
//! docs/configuration.md, every variable the page lists is named somewhere in the sources, and
//! only `para-cli` (the binary) and `para-bench` read the environment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::repo;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The sources a variable may be read in: `crates/*/src` and `scripts/`.
fn sources() -> Vec<(PathBuf, String)> {
    let root = repo();
    let mut paths = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        files(&krate.unwrap().path().join("src"), &mut paths);
    }
    files(&root.join("scripts"), &mut paths);
    paths
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|text| (p, text)))
        .collect()
}

/// Every `PARA_[A-Z0-9_]*` word of `text`.
pub(crate) fn para_words(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("PARA_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start + 5;
        while end < bytes.len()
            && (bytes[end].is_ascii_uppercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if before_ok {
            words.push(&text[start..end]);
        }
        i = end;
    }
    words
}

/// A name the page lists: exact (`PARA_PORT`) or a pattern with `<…>` parts
/// (`PARA_OAUTH_<KEY>_CLIENT_ID`).
pub(crate) struct Listed {
    name: String,
}

impl Listed {
    /// The literal parts between the `<…>` placeholders.
    fn parts(&self) -> Vec<&str> {
        let mut parts = Vec::new();
        let mut rest = self.name.as_str();
        while let Some(open) = rest.find('<') {
            parts.push(&rest[..open]);
            let close = rest[open..].find('>').map_or(rest.len(), |c| open + c + 1);
            rest = &rest[close..];
        }
        parts.push(rest);
        parts
    }

    fn is_pattern(&self) -> bool {
        self.name.contains('<')
    }

    /// Whether a source word is this name: equal, an instance of the pattern
    /// (`PARA_OAUTH_SLACK_CLIENT_ID`), or a prefix the sources build names from
    /// (`PARA_OAUTH_`, `PARA_SECRET_`, `PARA_ENGINE_`).
    pub(crate) fn covers(&self, word: &str) -> bool {
        if word == self.name {
            return true;
        }
        if word.ends_with('_') && self.name.starts_with(word) {
            return true;
        }
        if !self.is_pattern() {
            return false;
        }
        let parts = self.parts();
        let (first, last) = (parts[0], parts[parts.len() - 1]);
        let Some(mut rest) = word.strip_prefix(first) else { return false };
        for middle in &parts[1..parts.len() - 1] {
            match rest.get(1..).and_then(|r| r.find(middle)) {
                Some(at) => rest = &rest[1 + at + middle.len()..],
                None => return false,
            }
        }
        (last.is_empty() && !rest.is_empty()) || (rest.len() > last.len() && rest.ends_with(last))
    }
}

/// The names in the first column of the page's tables.
pub(crate) fn listed() -> Vec<Listed> {
    let page = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let mut names = Vec::new();
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let cell = line[1..].split(" | ").next().unwrap();
        for name in cell.split('`').skip(1).step_by(2) {
            if name.starts_with("PARA_") {
                names.push(Listed { name: name.to_string() });
            }
        }
    }
    assert!(names.len() > 40, "the page lists {} variables", names.len());
    names
}

#[test]
fn every_variable_the_sources_name_is_documented() {
    let listed = listed();
    let mut missing = BTreeSet::new();
    for (path, text) in sources() {
        for word in para_words(&text) {
            if !listed.iter().any(|l| l.covers(word)) {
                missing
                    .insert(format!("{word} ({})", path.strip_prefix(repo()).unwrap().display()));
            }
        }
    }
    assert!(missing.is_empty(), "add these to docs/configuration.md: {missing:#?}");
}

#[test]
fn every_documented_variable_is_read() {
    let sources = sources();
    let unread: Vec<String> = listed()
        .into_iter()
        .filter(|l| {
            // A pattern is read where the sources build its names: its literal parts appear.
            let needles: Vec<&str> = if l.is_pattern() {
                l.parts().into_iter().filter(|p| p.len() > 1).collect()
            } else {
                vec![l.name.as_str()]
            };
            !needles.iter().all(|needle| {
                sources.iter().any(|(_, text)| {
                    if l.is_pattern() {
                        text.contains(needle)
                    } else {
                        para_words(text).contains(needle)
                    }
                })
            })
        })
        .map(|l| l.name)
        .collect();
    assert!(unread.is_empty(), "docs/configuration.md lists variables nothing reads: {unread:?}");
}

/// Library crates take their settings as values: only the binary (and the benchmark driver)
/// read the environment.
#[test]
fn only_the_binary_reads_the_environment() {
    let root = repo();
    let mut offenders = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        if name == "para-cli" || name == "para-bench" {
            continue;
        }
        let mut paths = Vec::new();
        files(&krate.join("src"), &mut paths);
        for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
            let text = std::fs::read_to_string(path).unwrap();
            for needle in ["env::var(", "env::var_os(", "env::vars(", "env::vars_os("] {
                if text.contains(needle) {
                    offenders.push(format!(
                        "{} ({needle})",
                        path.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "pass these settings in from para-cli's config.rs: {offenders:?}"
    );
}

#[test]
fn patterns_cover_their_instances_only() {
    let oauth = Listed { name: "PARA_OAUTH_<KEY>_CLIENT_ID".into() };
    assert!(oauth.covers("PARA_OAUTH_SLACK_CLIENT_ID"));
    assert!(oauth.covers("PARA_OAUTH_CUSTOM_ACMECRM_CLIENT_ID"));
    assert!(oauth.covers("PARA_OAUTH_"));
    assert!(!oauth.covers("PARA_OAUTH__CLIENT_ID"));
    assert!(!oauth.covers("PARA_OAUTH_SLACK_CLIENT_SECRET"));
    let secret = Listed { name: "PARA_SECRET_<NAME>".into() };
    assert!(secret.covers("PARA_SECRET_TASKFLOW") && secret.covers("PARA_SECRET_"));
    assert!(!secret.covers("PARA_SECRETS"));
    let port = Listed { name: "PARA_PORT".into() };
    assert!(port.covers("PARA_PORT") && !port.covers("PARA_PORTS") && !port.covers("PARA_POR"));
    assert_eq!(para_words("x PARA_A_B, MY_PARA_C $PARA_D"), ["PARA_A_B", "PARA_D"]);
}
