//! The `@useparagon/*` modules `para` provides, and which imports a project may use.
//!
//! The modules are JavaScript shipped inside the binary (`js/`). Type-only modules are empty:
//! oxc erases imports used only as types, so they are only loaded when a project imports a
//! value from them (and then fails with a clear "no export named" error).

use std::collections::BTreeMap;

use para_js::{Transpiled, normalize_path, resolve_relative};
use para_project::{Diagnostic, Location};

pub const HOST_MODULE: &str = "para:host";

const CORE: &str = include_str!("../js/core.js");
const HOST: &str = include_str!("../js/host.js");
const OPERATOR: &str = include_str!("../js/operator.js");
pub const INPUTS: &str = include_str!("../js/inputs.js");
const INTEGRATION: &str = include_str!("../js/integration.js");
const TRIGGERS: &str = include_str!("../js/triggers.js");

/// `@useparagon/core` subpaths that hold only types.
const TYPE_ONLY_SUBPATHS: &[&str] =
    &["event", "execution", "persona", "user", "steps/library/conditional"];

/// Integration-specific module prefixes: `@useparagon/integrations/<key>` and the older
/// `@useparagon/types/<key>`.
const INTEGRATION_PREFIXES: &[&str] = &["@useparagon/integrations/", "@useparagon/types/"];

fn is_integration_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

/// The source of a virtual module, by specifier.
pub fn virtual_module(specifier: &str) -> Option<&'static str> {
    match specifier {
        "@useparagon/core" => return Some(CORE),
        "@useparagon/core/inputs" => return Some(INPUTS),
        "@useparagon/core/integration" => return Some(INTEGRATION),
        "@useparagon/core/operator" => return Some(OPERATOR),
        "@useparagon/core/triggers/customTrigger" => return Some(TRIGGERS),
        HOST_MODULE => return Some(HOST),
        _ => {}
    }
    if let Some(sub) = specifier.strip_prefix("@useparagon/core/")
        && TYPE_ONLY_SUBPATHS.contains(&sub)
    {
        return Some("export {};\n");
    }
    INTEGRATION_PREFIXES
        .iter()
        .filter_map(|prefix| specifier.strip_prefix(prefix))
        .any(is_integration_key)
        .then_some(INPUTS)
}

/// The specifiers a project may import from, for error messages.
fn known_specifiers() -> String {
    let mut list = vec![
        "@useparagon/core".to_string(),
        "@useparagon/core/inputs".into(),
        "@useparagon/core/integration".into(),
        "@useparagon/core/operator".into(),
        "@useparagon/core/triggers/customTrigger".into(),
    ];
    list.extend(TYPE_ONLY_SUBPATHS.iter().map(|s| format!("@useparagon/core/{s}")));
    list.push("@useparagon/integrations/<key>".into());
    list.join(", ")
}

/// Checks every runtime import of `path`. Returns findings; a file with any is not evaluated.
pub fn check_imports(
    path: &str,
    file: &Transpiled,
    modules: &BTreeMap<String, Transpiled>,
    drafts: &[String],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for import in &file.imports {
        let spec = import.specifier.as_str();
        let at = Location { file: path.to_string(), span: Some(import.span) };
        if spec.starts_with("./") || spec.starts_with("../") || spec == "." || spec == ".." {
            if resolve_relative(modules, path, spec).is_some() {
                continue;
            }
            let draft = draft_target(path, spec, drafts);
            let mut d = Diagnostic::error("unresolved-import", format!("cannot find `{spec}`"))
                .at(at)
                .with_label("imported here");
            d = match draft {
                Some(draft) => d.with_help(format!(
                    "`{draft}` is a draft (its name starts with `~`) and drafts are not built; rename it or remove this import"
                )),
                None => d.with_help(
                    "imports are resolved relative to this file; `.ts`, `.tsx` and a folder's `index.ts` are tried",
                ),
            };
            out.push(d);
        } else if spec.starts_with("@useparagon/") {
            // An import used only for types is erased and never loaded: real projects import
            // types from subpaths para need not know.
            if !import.erased && virtual_module(spec).is_none() {
                out.push(
                    Diagnostic::error(
                        "unknown-paragon-module",
                        format!("`{spec}` is not a module para provides"),
                    )
                    .at(at)
                    .with_label("imported here")
                    .with_help(format!("modules available to projects: {}", known_specifiers())),
                );
            }
        } else {
            out.push(
                Diagnostic::error("bare-import", format!("cannot import package `{spec}`"))
                    .at(at)
                    .with_label("package import")
                    .with_help(
                        "a Paragraph project may import only its own files (with a relative path such as `./lib/util`) and @useparagon/* modules; copy the code you need into the project",
                    ),
            );
        }
    }
    out
}

/// If a relative import names a draft (`~name.ts`), the draft's path.
fn draft_target(base: &str, spec: &str, drafts: &[String]) -> Option<String> {
    let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
    let (spec_dir, name) = spec.rsplit_once('/').unwrap_or(("", spec));
    let wanted = normalize_path(&format!("{dir}/{spec_dir}/~{name}"));
    drafts
        .iter()
        .find(|d| {
            d.as_str() == wanted
                || d.strip_suffix(".ts").is_some_and(|c| c == wanted)
                || d.strip_suffix(".tsx").is_some_and(|c| c == wanted)
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provides_paragon_modules() {
        assert!(virtual_module("@useparagon/core").is_some());
        assert!(virtual_module("@useparagon/core/user").is_some());
        assert!(virtual_module("@useparagon/core/triggers/customTrigger").is_some());
        assert!(virtual_module("@useparagon/integrations/googleCalendar").is_some());
        assert!(virtual_module("@useparagon/types/salesforce").is_some());
        assert!(virtual_module("@useparagon/core/nope").is_none());
        assert!(virtual_module("lodash").is_none());
    }
}
