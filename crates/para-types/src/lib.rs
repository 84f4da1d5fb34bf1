//! TypeScript declarations for Paragraph projects.
//!
//! `para build` evaluates a project against JavaScript modules of ours (`para-compiler/js`) and
//! needs no `node_modules`; editors and `tsc` do. [`declarations`] produces the `.d.ts` files
//! (and `package.json`s) to put under a project's `node_modules/` so that VS Code autocompletes
//! and `tsc --noEmit` type-checks the project, without any network:
//!
//! - `@useparagon/core`: hand-written declarations of our DSL (`assets/core/`), with a subpath per
//!   module the compiler provides (`inputs`, `integration`, `operator`) and per type-only module
//!   (`event`, `execution`, `persona`, `user`, `steps/library/conditional`).
//! - `@useparagon/integrations/<key>`: generated per integration from the catalog: the
//!   `I<Key>Integration` interface (typed `actions` and `triggers`), `InputResultMap` and a
//!   `createInputs` that accepts the integration's User Setting types. Custom integrations
//!   (`custom.<slug>`) get the base input types and no catalog actions.
//! - `@useparagon/types/<key>`: the older name of the same module, re-exporting it.
//!
//! The declarations are ours, written from `core.js` and `docs/catalog.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use para_catalog::{Integration, Parameter};

/// `@useparagon/core`'s files, relative to the package folder.
const CORE_FILES: &[(&str, &str)] = &[
    ("index.d.ts", include_str!("../assets/core/index.d.ts")),
    ("inputs.d.ts", include_str!("../assets/core/inputs.d.ts")),
    ("integration.d.ts", include_str!("../assets/core/integration.d.ts")),
    ("operator.d.ts", include_str!("../assets/core/operator.d.ts")),
    ("event.d.ts", include_str!("../assets/core/event.d.ts")),
    ("execution.d.ts", include_str!("../assets/core/execution.d.ts")),
    ("persona.d.ts", include_str!("../assets/core/persona.d.ts")),
    ("user.d.ts", include_str!("../assets/core/user.d.ts")),
    (
        "steps/library/conditional.d.ts",
        include_str!("../assets/core/steps/library/conditional.d.ts"),
    ),
    ("triggers/customTrigger.d.ts", include_str!("../assets/core/triggers/customTrigger.d.ts")),
];

/// The subpaths of `@useparagon/core` (`""` is the package itself), each with its `.d.ts`.
const CORE_SUBPATHS: &[(&str, &str)] = &[
    ("", "index.d.ts"),
    ("inputs", "inputs.d.ts"),
    ("integration", "integration.d.ts"),
    ("operator", "operator.d.ts"),
    ("event", "event.d.ts"),
    ("execution", "execution.d.ts"),
    ("persona", "persona.d.ts"),
    ("user", "user.d.ts"),
    ("steps/library/conditional", "steps/library/conditional.d.ts"),
    ("triggers/customTrigger", "triggers/customTrigger.d.ts"),
];

/// The version written into the generated `package.json`s (not a published package's).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-para");

/// User Setting types every integration accepts (mirrors `para_catalog::BASE_INPUT_TYPES`).
const BASE_INPUT_TYPES: &[&str] = para_catalog::BASE_INPUT_TYPES;

/// Every declaration file for a project whose integrations are `integration_keys` (folder names
/// under `src/integrations/`: catalog keys and `custom.<slug>`), as (path relative to
/// `node_modules/`, contents), sorted by path. Keys that cannot be folder names are skipped;
/// duplicates are written once. Deterministic: the same keys give the same files.
pub fn declarations(integration_keys: &[String]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    files.push(("@useparagon/core/package.json".to_string(), core_package_json()));
    for (path, text) in CORE_FILES {
        files.push((format!("@useparagon/core/{path}"), (*text).to_string()));
    }
    let keys: BTreeSet<&str> =
        integration_keys.iter().map(String::as_str).filter(|k| is_integration_key(k)).collect();
    for scope in ["integrations", "types"] {
        files.push((format!("@useparagon/{scope}/package.json"), scope_package_json(scope)));
    }
    for key in keys {
        files.push((format!("@useparagon/integrations/{key}/index.d.ts"), integration_module(key)));
        files.push((
            format!("@useparagon/types/{key}/index.d.ts"),
            format!(
                "// @useparagon/types/{key} — the older name of @useparagon/integrations/{key}. Written by para; do not edit.\n\nexport * from '@useparagon/integrations/{key}';\n"
            ),
        ));
    }
    files.sort();
    files
}

/// The interface names `@useparagon/integrations/<key>` exports for the integration, the first
/// being the canonical one: `I` + PascalCase of the key + `Integration` (`salesforce` →
/// `ISalesforceIntegration`, `googleCalendar` → `IGoogleCalendarIntegration`,
/// `custom.acmecrm` → `ICustomAcmecrmIntegration`), then the spelling with the rest of the key
/// lower-cased when it differs (`IGooglecalendarIntegration`).
pub fn interface_names(key: &str) -> Vec<String> {
    let pascal: String = key
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(capitalize)
        .collect();
    let lower: String = key
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| capitalize(&part.to_ascii_lowercase()))
        .collect();
    let mut names = vec![format!("I{pascal}Integration")];
    if lower != pascal {
        names.push(format!("I{lower}Integration"));
    }
    names
}

fn capitalize(part: &str) -> String {
    let mut chars = part.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Same rule as the compiler's module resolver: what may follow `@useparagon/integrations/`.
fn is_integration_key(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && key != ".."
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

fn core_package_json() -> String {
    let mut exports = String::new();
    for (i, (sub, file)) in CORE_SUBPATHS.iter().enumerate() {
        let entry = if sub.is_empty() { ".".to_string() } else { format!("./{sub}") };
        let comma = if i + 1 < CORE_SUBPATHS.len() { "," } else { "" };
        let _ = writeln!(exports, "    \"{entry}\": {{ \"types\": \"./{file}\" }}{comma}");
    }
    format!(
        "{{\n  \"name\": \"@useparagon/core\",\n  \"version\": \"{VERSION}\",\n  \"description\": \"Type declarations for Paragraph projects, written by para. The modules themselves are provided by para at build time.\",\n  \"private\": true,\n  \"types\": \"./index.d.ts\",\n  \"exports\": {{\n{exports}  }}\n}}\n"
    )
}

fn scope_package_json(scope: &str) -> String {
    format!(
        "{{\n  \"name\": \"@useparagon/{scope}\",\n  \"version\": \"{VERSION}\",\n  \"description\": \"Per-integration type declarations for Paragraph projects, written by para.\",\n  \"private\": true,\n  \"exports\": {{\n    \"./*\": {{ \"types\": \"./*/index.d.ts\" }}\n  }}\n}}\n"
    )
}

/// What kind of integration a key names.
enum Kind<'a> {
    Catalog(&'a Integration),
    Custom,
    /// Neither custom nor in the catalog: `para build` reports the folder; the declarations
    /// accept any action, trigger and input type so that the rest of the project still checks.
    Unknown,
}

fn kind_of(key: &str) -> Kind<'static> {
    if key.starts_with("custom.") {
        Kind::Custom
    } else {
        match para_catalog::lookup(key) {
            Some(entry) => Kind::Catalog(entry),
            None => Kind::Unknown,
        }
    }
}

/// `integration.withTrigger(integration.triggers.X, parameters)`, the form of Paragon's older
/// generated workflows.
const WITH_TRIGGER: &str = "  /** The trigger `trigger` with `parameters`: the same as `trigger(parameters, options)`. */\n  withTrigger<P>(trigger: (parameters: P, options?: StepOptions) => IntegrationTriggerStep, parameters: P, options?: StepOptions): IntegrationTriggerStep;\n";

/// The names code may call a catalog operation by: its name, its aliases, its intent in
/// camelCase (when that is another name), then its intent.
fn handles(name: &str, aliases: &[String], intent: &str) -> Vec<String> {
    let mut all: Vec<String> =
        std::iter::once(name).chain(aliases.iter().map(String::as_str)).map(String::from).collect();
    let camel: String = para_catalog::intent_in_camel_case(intent).collect();
    for extra in [camel, intent.to_string()] {
        if !all.contains(&extra) {
            all.push(extra);
        }
    }
    all
}

/// One method signature per name an operation answers to, the first one documented by the
/// caller and the others as the same as it.
fn signatures(out: &mut String, names: &[String], parameters: &[Parameter], step: &str) {
    let (optional, params) = parameters_type(parameters);
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out, "    /** The same as `{}`. */", names[0]);
        }
        let _ = writeln!(
            out,
            "    {}(parameters{optional}: {params}, options?: StepOptions): {step};",
            property_name(name)
        );
    }
}

/// `@useparagon/integrations/<key>/index.d.ts`.
fn integration_module(key: &str) -> String {
    let kind = kind_of(key);
    let names = interface_names(key);
    let main = &names[0];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// @useparagon/integrations/{key} — type declarations written by para (`para install`)"
    );
    match &kind {
        Kind::Catalog(_) => out.push_str("// from its integration catalog entry; do not edit.\n"),
        Kind::Custom => out.push_str("// for a custom integration; do not edit.\n"),
        Kind::Unknown => out.push_str(
            "// `para` has no catalog entry for this key, so everything is loosely typed; do not edit.\n",
        ),
    }
    out.push('\n');
    if matches!(kind, Kind::Custom) {
        out.push_str("import type { ICustomIntegration } from '@useparagon/core/integration';\n");
    } else {
        out.push_str(
            "import type { IntegrationActionStep, IntegrationTriggerStep, StepOptions } from '@useparagon/core';\n",
        );
    }
    out.push_str(
        "import type { DefaultInputToResultMap, InputDefinition, UserInputs } from '@useparagon/core/inputs';\n",
    );
    out.push('\n');

    // The integration interface.
    match &kind {
        Kind::Catalog(entry) => {
            out.push_str(&doc_comment("", &[&entry.name, &entry.description]));
            let _ = writeln!(out, "export interface {main} {{");
            out.push_str("  /** Steps that call the integration's API: `integration.actions.<name>(parameters, options)`. */\n");
            out.push_str("  readonly actions: {\n");
            for action in &entry.actions {
                let detail = format!("`{} {}`", action.method.as_str(), action.path);
                out.push_str(&doc_comment("    ", &[&action.title, &action.description, &detail]));
                let names = handles(&action.name, &action.aliases, &action.intent);
                signatures(&mut out, &names, &action.parameters, "IntegrationActionStep");
            }
            out.push_str("  };\n");
            out.push_str("  /** Triggers from the integration: `integration.triggers.<name>(parameters)`. */\n");
            out.push_str("  readonly triggers: {\n");
            for trigger in &entry.triggers {
                out.push_str(&doc_comment("    ", &[&trigger.title, &trigger.description]));
                let names = handles(&trigger.name, &trigger.aliases, &trigger.intent);
                signatures(&mut out, &names, &trigger.parameters, "IntegrationTriggerStep");
            }
            out.push_str("  };\n");
            out.push_str(WITH_TRIGGER);
            out.push_str("}\n");
        }
        Kind::Custom => {
            let _ = writeln!(
                out,
                "/** What `integration` is in `{key}`'s workflows: use `IntegrationRequestStep` for its API. */"
            );
            let _ = writeln!(out, "export interface {main} extends ICustomIntegration {{}}");
        }
        Kind::Unknown => {
            let _ = writeln!(
                out,
                "/** `{key}` is not in para's catalog: actions and triggers are not checked. */"
            );
            let _ = writeln!(out, "export interface {main} {{");
            out.push_str("  readonly actions: {\n    readonly [name: string]: (parameters?: { readonly [name: string]: unknown }, options?: StepOptions) => IntegrationActionStep;\n  };\n");
            out.push_str("  readonly triggers: {\n    readonly [name: string]: (parameters?: { readonly [name: string]: unknown }, options?: StepOptions) => IntegrationTriggerStep;\n  };\n");
            out.push_str(WITH_TRIGGER);
            out.push_str("}\n");
        }
    }
    for alias in &names[1..] {
        let _ = writeln!(out, "/** The same as `{main}`. */\nexport type {alias} = {main};");
    }
    out.push('\n');

    // Input types.
    let extra: Vec<(String, String)> = match &kind {
        Kind::Catalog(entry) => entry
            .input_types
            .iter()
            .filter(|t| !BASE_INPUT_TYPES.contains(&t.name.as_str()))
            .map(|t| (t.name.clone(), format!("{}: {}", t.label, t.description)))
            .collect(),
        Kind::Custom | Kind::Unknown => Vec::new(),
    };
    let extra_union = match &kind {
        Kind::Unknown => "string".to_string(),
        _ if extra.is_empty() => "never".to_string(),
        _ => extra.iter().map(|(name, _)| ts_string(name)).collect::<Vec<_>>().join(" | "),
    };
    out.push_str("/** The User Setting types this integration accepts beyond the base ones. */\n");
    let _ = writeln!(out, "export type IntegrationInputType = {extra_union};\n");
    out.push_str(
        "/** The value a User Setting of each type holds when a workflow runs (`context.getInput`). */\n",
    );
    if extra.is_empty() {
        out.push_str("export type InputResultMap = DefaultInputToResultMap;\n\n");
    } else {
        out.push_str("export type InputResultMap = DefaultInputToResultMap & {\n");
        for (name, doc) in &extra {
            out.push_str(&doc_comment("  ", &[doc]));
            let _ = writeln!(out, "  {}: any;", property_name(name));
        }
        out.push_str("};\n\n");
    }
    let allowed: Vec<String> = BASE_INPUT_TYPES
        .iter()
        .map(|t| format!("`{t}`"))
        .chain(extra.iter().map(|(name, _)| format!("`{name}`")))
        .collect();
    out.push_str(&doc_comment(
        "",
        &[
            "Declares User Settings: `{ key: { id, title, type, … } }`.",
            &format!("Types allowed here: {}.", allowed.join(", ")),
        ],
    ));
    out.push_str(
        "export declare function createInputs<\n  const T extends { readonly [key: string]: InputDefinition<IntegrationInputType> },\n>(inputs: T): UserInputs<T>;\n",
    );
    out
}

/// `(optional marker, type)` of an operation's parameters object.
fn parameters_type(parameters: &[Parameter]) -> (&'static str, String) {
    if parameters.is_empty() {
        return ("?", "{ readonly [name: string]: never }".to_string());
    }
    let mut body = String::from("{\n");
    for p in parameters {
        let doc = if p.description.is_empty() {
            String::new()
        } else {
            doc_comment("      ", &[&p.description])
        };
        body.push_str(&doc);
        let ty = p.ty.typescript();
        match p.name.strip_suffix('*') {
            Some(prefix) => {
                let _ = writeln!(
                    body,
                    "      readonly [parameter: `{}${{string}}`]: {ty};",
                    template_text(prefix)
                );
            }
            None => {
                let optional = if p.required { "" } else { "?" };
                let _ =
                    writeln!(body, "      readonly {}{optional}: {ty};", property_name(&p.name));
            }
        }
    }
    body.push_str("    }");
    let optional = if parameters.iter().any(|p| p.required) { "" } else { "?" };
    (optional, body)
}

/// A property name: bare when it is an identifier, quoted otherwise.
fn property_name(name: &str) -> String {
    let mut chars = name.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if identifier { name.to_string() } else { ts_string(name) }
}

/// A single-quoted TypeScript string literal.
pub fn ts_string(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Text inside a template literal type.
fn template_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '$' => out.push_str("\\$"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A `/** … */` comment of the non-empty paragraphs, indented, or nothing.
fn doc_comment(indent: &str, paragraphs: &[&str]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for paragraph in paragraphs.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.extend(paragraph.lines().map(|l| l.trim_end().replace("*/", "*\\/")));
    }
    match lines.as_slice() {
        [] => String::new(),
        [one] => format!("{indent}/** {one} */\n"),
        many => {
            let mut out = format!("{indent}/**\n");
            for line in many {
                if line.is_empty() {
                    let _ = writeln!(out, "{indent} *");
                } else {
                    let _ = writeln!(out, "{indent} * {line}");
                }
            }
            let _ = writeln!(out, "{indent} */");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_key() {
        assert_eq!(interface_names("salesforce"), ["ISalesforceIntegration"]);
        assert_eq!(interface_names("slack"), ["ISlackIntegration"]);
        assert_eq!(
            interface_names("googleCalendar"),
            ["IGoogleCalendarIntegration", "IGooglecalendarIntegration"]
        );
        assert_eq!(interface_names("custom.acmecrm"), ["ICustomAcmecrmIntegration"]);
    }

    #[test]
    fn writes_every_module_once_and_sorted() {
        let keys = ["slack", "custom.acme", "slack", "../evil", "salesforce"].map(String::from);
        let files = declarations(&keys);
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(paths, sorted);
        for expected in [
            "@useparagon/core/package.json",
            "@useparagon/core/index.d.ts",
            "@useparagon/core/steps/library/conditional.d.ts",
            "@useparagon/integrations/package.json",
            "@useparagon/integrations/slack/index.d.ts",
            "@useparagon/integrations/custom.acme/index.d.ts",
            "@useparagon/types/salesforce/index.d.ts",
        ] {
            assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.contains("..")), "{paths:?}");
        assert_eq!(declarations(&keys), files, "deterministic");
    }

    #[test]
    fn catalog_operations_are_typed() {
        let sf = integration_module("salesforce");
        assert!(sf.contains("export interface ISalesforceIntegration {"), "{sf}");
        assert!(sf.contains("createRecord(parameters: {"), "{sf}");
        assert!(sf.contains("readonly recordType: string;"), "{sf}");
        assert!(sf.contains("readonly [parameter: `field-${string}`]: unknown;"), "{sf}");
        assert!(sf.contains("'record_type'"), "{sf}");
        let custom = integration_module("custom.acme");
        assert!(
            custom.contains("export interface ICustomAcmeIntegration extends ICustomIntegration")
        );
        assert!(custom.contains("export type IntegrationInputType = never;"));
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(property_name("field-x"), "'field-x'");
        assert_eq!(property_name("ok_1"), "ok_1");
        assert_eq!(ts_string("it's"), "'it\\'s'");
        assert_eq!(template_text("a`${b}"), "a\\`\\${b}");
        assert_eq!(doc_comment("", &["a */ b"]), "/** a *\\/ b */\n");
    }
}
