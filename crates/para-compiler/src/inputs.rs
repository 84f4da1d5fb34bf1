//! User Settings (`createInputs`, `createConfigInputs`): validation and conversion.

use std::collections::{BTreeMap, BTreeSet};

use para_build::Input;
use para_project::{Diagnostic, Location, naming::closest};
use serde_json::Value;

use crate::{eval::Session, lower};

/// Where a set of inputs is declared, for messages and locating.
pub struct InputScope<'a> {
    pub file: &'a str,
    /// Property chain leading to the inputs object in the file (`["inputs"]` for a workflow's
    /// class field, empty for a default export).
    pub prefix: &'a [&'a str],
    /// "integration-level User Settings", "workflow settings", "config inputs".
    pub what: &'a str,
    pub allowed_types: &'a [&'a str],
}

const KNOWN_FIELDS: &[&str] =
    &["id", "title", "type", "required", "tooltip", "placeholder", "defaultValue"];

/// Converts and validates one scope's inputs, reporting every problem found.
pub fn convert(session: &mut Session<'_>, value: &Value, scope: &InputScope<'_>) -> Vec<Input> {
    let Some(object) = value.as_object() else {
        if !value.is_null() {
            let at = session.locate(scope.file, scope.prefix);
            session.push(
                Diagnostic::error(
                    "invalid-inputs",
                    format!("{} must be an object of inputs", scope.what),
                )
                .at(at)
                .with_help("write createInputs({ key: { id, title, type } })"),
            );
        }
        return Vec::new();
    };
    let mut inputs = Vec::new();
    let mut seen_ids: BTreeMap<String, String> = BTreeMap::new();
    for (key, definition) in object {
        let Some(fields) = definition.as_object().filter(|_| lower::special(definition).is_none())
        else {
            let at = locate(session, scope, key, None);
            session.push(
                Diagnostic::error("invalid-input", format!("input `{key}` must be an object"))
                    .at(at)
                    .with_help(format!("write `{key}: {{ id: '…', title: '…', type: 'text' }}`")),
            );
            continue;
        };
        let mut ok = true;
        // `id` and `type` are what the input is (errors when missing or empty); `title` is
        // display text, accepted as written (`''` is what Paragon's generators write for a
        // field not filled in yet), with a warning when there is none.
        let mut text = |session: &mut Session<'_>, field: &str| -> Option<String> {
            match fields.get(field) {
                Some(Value::String(s)) if field == "title" || !s.trim().is_empty() => {
                    Some(s.clone())
                }
                None | Some(Value::Null) if field == "title" => None,
                None | Some(Value::Null) => {
                    let at = locate(session, scope, key, None);
                    let help = match field {
                        "id" => "add `id: '…'` with a UUID that never changes: it keys the values users store".to_string(),
                        "type" => format!("add `type: '…'`, one of: {}", scope.allowed_types.join(", ")),
                        _ => format!("add `{field}: '…'`: it is shown to users in the Connect Portal"),
                    };
                    session.push(
                        Diagnostic::error(
                            "missing-field",
                            format!("input `{key}` has no `{field}`"),
                        )
                        .at(at)
                        .with_label(format!("`{field}` missing"))
                        .with_help(help),
                    );
                    ok = false;
                    None
                }
                Some(_) => {
                    let at = locate(session, scope, key, Some(field));
                    session.push(
                        Diagnostic::error(
                            "invalid-field",
                            format!("`{field}` of input `{key}` must be a non-empty string"),
                        )
                        .at(at),
                    );
                    ok = false;
                    None
                }
            }
        };
        let id = text(session, "id");
        let title = text(session, "title");
        let input_type = text(session, "type");
        if title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            let at = locate(session, scope, key, title.is_some().then_some("title"));
            session.push(
                Diagnostic::warning("empty-field", format!("input `{key}` has no title"))
                    .at(at)
                    .with_help(
                        "set `title: '…'`: the Connect Portal shows it as the setting's label",
                    ),
            );
        }
        if let Some(t) = &input_type
            && !scope.allowed_types.contains(&t.as_str())
        {
            let at = locate(session, scope, key, Some("type"));
            let mut help = format!("allowed types here: {}", scope.allowed_types.join(", "));
            if let Some(best) = closest(t, scope.allowed_types.iter().copied(), 1).first() {
                help = format!("did you mean `{best}`? {help}");
            }
            session.push(
                Diagnostic::error(
                    "unknown-input-type",
                    format!("input `{key}` has unknown type `{t}`"),
                )
                .at(at)
                .with_label("unknown type")
                .with_help(help),
            );
            ok = false;
        }
        if let Some(id) = &id {
            if let Some(first_key) = seen_ids.get(id) {
                let at = locate(session, scope, key, Some("id"));
                let first = locate(session, scope, first_key, Some("id"));
                session.push(
                    Diagnostic::error(
                        "duplicate-input-id",
                        format!("inputs `{first_key}` and `{key}` have the same id `{id}`"),
                    )
                    .at(at)
                    .with_label("duplicate id")
                    .with_related(first, format!("`{first_key}` uses it first"))
                    .with_help(format!(
                        "ids identify the values users store, so each input of the {} needs its own; give `{key}` a new UUID",
                        scope.what
                    )),
                );
                ok = false;
            } else {
                seen_ids.insert(id.clone(), key.clone());
            }
        }
        let required = match fields.get("required") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                let at = locate(session, scope, key, Some("required"));
                session.push(
                    Diagnostic::error(
                        "invalid-field",
                        format!("`required` of input `{key}` must be true or false"),
                    )
                    .at(at),
                );
                ok = false;
                false
            }
        };
        check_type_specific(session, scope, key, fields, input_type.as_deref());
        let optional_text =
            |field: &str| fields.get(field).and_then(Value::as_str).map(str::to_string);
        let mut options = BTreeMap::new();
        let mut rejected = BTreeSet::new();
        for (name, v) in fields {
            if KNOWN_FIELDS.contains(&name.as_str()) {
                continue;
            }
            match lower::plain(v) {
                Ok(v) => {
                    options.insert(name.clone(), v);
                }
                Err(what) => {
                    rejected.insert((name.clone(), what));
                }
            }
        }
        for (name, what) in rejected {
            let at = locate(session, scope, key, Some(&name));
            session.push(
                Diagnostic::error(
                    "invalid-field",
                    format!("`{name}` of input `{key}` holds {what}"),
                )
                .at(at)
                .with_help("input options must be plain data known at build time"),
            );
            ok = false;
        }
        let default_value = fields.get("defaultValue").and_then(|v| lower::plain(v).ok());
        if ok && let (Some(id), Some(input_type)) = (id, input_type) {
            inputs.push(Input {
                id,
                key: key.clone(),
                title: title.unwrap_or_default(),
                input_type,
                required,
                tooltip: optional_text("tooltip"),
                placeholder: optional_text("placeholder"),
                default_value,
                options,
            });
        }
    }
    inputs
}

/// Where input `key` (or one of its fields) is written.
fn locate(
    session: &Session<'_>,
    scope: &InputScope<'_>,
    key: &str,
    field: Option<&str>,
) -> Location {
    let mut path: Vec<&str> = scope.prefix.to_vec();
    path.push(key);
    path.extend(field);
    session.locate(scope.file, &path)
}

/// Shape checks for the types whose extra fields the portal relies on.
fn check_type_specific(
    session: &mut Session<'_>,
    scope: &InputScope<'_>,
    key: &str,
    fields: &serde_json::Map<String, Value>,
    input_type: Option<&str>,
) {
    let (field, item_fields): (&str, &[&str]) = match input_type {
        Some("field_mapping") => ("fieldMappings", &["label"]),
        Some("custom_dropdown") => ("customDropdownOptions", &["label", "value"]),
        _ => return,
    };
    let Some(value) = fields.get(field) else { return };
    let bad = match value.as_array() {
        None => Some(format!("`{field}` of input `{key}` must be an array")),
        Some(items) => items.iter().enumerate().find_map(|(i, item)| {
            let missing = item_fields.iter().find(|f| item.get(**f).is_none_or(Value::is_null))?;
            Some(format!("item {i} of `{field}` in input `{key}` has no `{missing}`"))
        }),
    };
    if let Some(message) = bad {
        let at = locate(session, scope, key, Some(field));
        let shape = item_fields.iter().map(|f| format!("{f}: '…'")).collect::<Vec<_>>().join(", ");
        session.push(
            Diagnostic::error("invalid-field", message)
                .at(at)
                .with_help(format!("write `{field}: [{{ {shape} }}]`")),
        );
    }
}

/// Every allowed input type for an integration: the base ones plus the catalog's.
pub fn allowed_types(integration_key: &str) -> Vec<&'static str> {
    match para_catalog::lookup(integration_key) {
        Some(entry) => entry.allowed_input_types().collect(),
        None => para_catalog::BASE_INPUT_TYPES.to_vec(),
    }
}
