//! From the JSON the JavaScript side records (see `js/core.js`, `lower()`) to build values.
//!
//! Special values arrive as single-key objects whose key starts with NUL: `\0ref` (a reference
//! descriptor), `\0template` (parts of a template string), `\0function`, `\0workflow` (a workflow
//! class, by id), `\0customTrigger` (a custom trigger class, by id) and `\0step`. Everything else
//! is plain JSON.

use para_build::{Entry, SettingScope, Source};
use serde_json::{Map, Value};

pub const REF: &str = "\u{0}ref";
pub const TEMPLATE: &str = "\u{0}template";
pub const FUNCTION: &str = "\u{0}function";
pub const WORKFLOW: &str = "\u{0}workflow";
pub const CUSTOM_TRIGGER: &str = "\u{0}customTrigger";
pub const STEP: &str = "\u{0}step";

const TOKEN_OPEN: char = '\u{E000}';
const TOKEN_CLOSE: char = '\u{E001}';
const TOKEN_BARE: char = '\u{E002}';

/// Replaces, in place, the reference tokens JSON.stringify left in strings (see `js/core.js`):
/// a string that is one bare token becomes a `\0ref`, a string with tokens among text a
/// `\0template`. `tokens` is the recording's table of reference descriptors.
pub fn expand_tokens(value: &mut Value, tokens: &[Value]) {
    match value {
        Value::String(text) if text.contains([TOKEN_OPEN, TOKEN_BARE]) => {
            let descriptor = |index: &str| {
                index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| tokens.get(i))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            if let Some(index) =
                text.strip_prefix(TOKEN_BARE).and_then(|t| t.strip_suffix(TOKEN_CLOSE))
                && !index.contains(TOKEN_CLOSE)
            {
                *value = serde_json::json!({ REF: descriptor(index) });
                return;
            }
            let mut parts = Vec::new();
            let mut rest = text.as_str();
            while let Some(open) = rest.find(TOKEN_OPEN) {
                let Some(close) = rest[open..].find(TOKEN_CLOSE).map(|c| open + c) else { break };
                if open > 0 {
                    parts.push(Value::String(rest[..open].to_string()));
                }
                parts.push(serde_json::json!({ REF: descriptor(&rest[open + TOKEN_OPEN.len_utf8()..close]) }));
                rest = &rest[close + TOKEN_CLOSE.len_utf8()..];
            }
            if !rest.is_empty() {
                parts.push(Value::String(rest.to_string()));
            }
            *value = serde_json::json!({ TEMPLATE: parts });
        }
        Value::Array(items) => items.iter_mut().for_each(|v| expand_tokens(v, tokens)),
        Value::Object(_) => {
            if special(value).is_some_and(|(marker, _)| marker == REF || marker == TEMPLATE) {
                return; // already lowered (and its strings are plain text)
            }
            if let Value::Object(map) = value {
                map.values_mut().for_each(|v| expand_tokens(v, tokens));
            }
        }
        _ => {}
    }
}

/// The special marker of a value, if it is one: (marker key, payload).
pub fn special(value: &Value) -> Option<(&str, &Value)> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    let (key, payload) = object.iter().next()?;
    key.starts_with('\u{0}').then_some((key.as_str(), payload))
}

/// What a value that should be plain data turned out to contain, in words.
pub fn describe_special(marker: &str) -> &'static str {
    match marker {
        REF => "a reference to a run-time value",
        TEMPLATE => "a template string with run-time references",
        FUNCTION => "a function",
        WORKFLOW => "a workflow class",
        CUSTOM_TRIGGER => "a custom trigger class",
        STEP => "a workflow step",
        _ => "a value para does not understand",
    }
}

/// The value as plain JSON, or the first special value found in it.
pub fn plain(value: &Value) -> Result<Value, &'static str> {
    if let Some((marker, _)) = special(value) {
        return Err(describe_special(marker));
    }
    match value {
        Value::Array(items) => {
            items.iter().map(plain).collect::<Result<Vec<_>, _>>().map(Value::Array)
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), plain(v)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Resolves names used in templates: the custom integration's config inputs by key.
#[derive(Default)]
pub struct Scope<'a> {
    /// Step ids by the serial number the recording gave each step (inside a workflow).
    pub steps: Option<&'a std::collections::BTreeMap<u64, String>>,
    /// (key, id) of each config input.
    pub config_inputs: &'a [(String, String)],
    /// Ids of the integration-level User Settings (to tell shared from workflow settings).
    pub shared_input_ids: &'a [String],
    /// Whether `{{settings.x}}`-style placeholders in plain strings are templates here.
    pub mustache: bool,
}

/// Why a value could not become a [`Source`].
#[derive(Debug, PartialEq, Eq)]
pub struct LowerError(pub String);

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn str_field(descriptor: &Value, name: &str) -> String {
    descriptor.get(name).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// A reference descriptor recorded by `js/core.js` as a [`Source`].
pub fn reference(descriptor: &Value, scope: &Scope<'_>) -> Result<Source, LowerError> {
    let path = strings(descriptor.get("path"));
    match descriptor.get("kind").and_then(Value::as_str).unwrap_or_default() {
        "credential" => Ok(Source::Credential { path }),
        "configInput" => Ok(Source::ConfigInput {
            input_id: str_field(descriptor, "id"),
            key: str_field(descriptor, "key"),
        }),
        "input" => {
            let input_id = str_field(descriptor, "id");
            let scope_kind = if scope.shared_input_ids.contains(&input_id) {
                SettingScope::Shared
            } else {
                SettingScope::Workflow
            };
            Ok(Source::UserSetting {
                scope: scope_kind,
                input_id,
                key: str_field(descriptor, "key"),
                path,
            })
        }
        "resourceInput" => Ok(Source::ResourceInput { key: str_field(descriptor, "key") }),
        "secret" => Ok(Source::EnvironmentSecret { name: str_field(descriptor, "name") }),
        "user" => Ok(Source::ConnectUser { field: str_field(descriptor, "field"), path }),
        "persona" => Ok(Source::PersonaMetadata { path }),
        "pageToken" => Ok(Source::PageToken {}),
        "webhookRequest" => Ok(Source::WebhookRequest { path }),
        "step" => {
            let serial = descriptor.get("step").and_then(Value::as_u64).unwrap_or(u64::MAX);
            match scope.steps {
                // A step that was not registered has no id; that is reported on its own.
                Some(steps) => Ok(Source::Variable {
                    step_id: steps.get(&serial).cloned().unwrap_or_default(),
                    path,
                }),
                None => Err(LowerError(
                    "a step's output can only be used inside a workflow's steps".into(),
                )),
            }
        }
        other => Err(LowerError(format!("unknown reference kind `{other}`"))),
    }
}

/// Splits `{{settings.x}}`, `{{credentials.x}}` and `{{inputs.k}}` placeholders out of text.
fn mustache_parts(text: &str, scope: &Scope<'_>, out: &mut Vec<Source>) {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close_rel) = rest[open + 2..].find("}}") else { break };
        let inner = rest[open + 2..open + 2 + close_rel].trim();
        let segments: Vec<&str> = inner.split('.').map(str::trim).collect();
        let source = match segments.as_slice() {
            ["settings" | "credentials" | "inputs", first, more @ ..] if !first.is_empty() => {
                match scope.config_inputs.iter().find(|(key, _)| key == first) {
                    Some((key, id)) if more.is_empty() => {
                        Some(Source::ConfigInput { input_id: id.clone(), key: key.clone() })
                    }
                    _ if segments[0] == "inputs" => None,
                    _ => Some(Source::Credential {
                        path: segments[1..].iter().map(|s| s.to_string()).collect(),
                    }),
                }
            }
            _ => None,
        };
        let end = open + 2 + close_rel + 2;
        match source {
            Some(source) => {
                if open > 0 {
                    out.push(Source::text(&rest[..open]));
                }
                out.push(source);
            }
            None => out.push(Source::text(&rest[..end])),
        }
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        out.push(Source::text(rest));
    }
}

/// Merges adjacent text parts.
fn merge_text(parts: Vec<Source>) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::with_capacity(parts.len());
    for part in parts {
        if let (
            Some(Source::Value { value: Value::String(prev) }),
            Source::Value { value: Value::String(next) },
        ) = (out.last_mut(), &part)
        {
            prev.push_str(next);
            continue;
        }
        out.push(part);
    }
    out
}

fn string_source(text: &str, scope: &Scope<'_>) -> Source {
    if !scope.mustache || !text.contains("{{") {
        return Source::text(text);
    }
    let mut parts = Vec::new();
    mustache_parts(text, scope, &mut parts);
    let parts = merge_text(parts);
    if parts.iter().all(|p| !p.is_reference()) {
        Source::text(text)
    } else {
        Source::Tokenized { parts }
    }
}

/// Converts a recorded value into a [`Source`]: literals stay one `VALUE`, anything holding a
/// reference becomes the matching structure.
pub fn to_source(value: &Value, scope: &Scope<'_>) -> Result<Source, LowerError> {
    if let Some((marker, payload)) = special(value) {
        return match marker {
            REF => reference(payload, scope),
            TEMPLATE => {
                let mut parts = Vec::new();
                for part in payload.as_array().into_iter().flatten() {
                    match part {
                        Value::String(text) if scope.mustache => {
                            mustache_parts(text, scope, &mut parts)
                        }
                        Value::String(text) => parts.push(Source::text(text)),
                        other => match special(other) {
                            Some((REF, descriptor)) => parts.push(reference(descriptor, scope)?),
                            _ => {
                                return Err(LowerError(
                                    "a template holds an unexpected value".into(),
                                ));
                            }
                        },
                    }
                }
                Ok(Source::Tokenized { parts: merge_text(parts) })
            }
            other => Err(LowerError(format!("{} cannot be used here", describe_special(other)))),
        };
    }
    match value {
        Value::String(text) => Ok(string_source(text, scope)),
        Value::Array(items) => {
            let items = items.iter().map(|v| to_source(v, scope)).collect::<Result<Vec<_>, _>>()?;
            if items.iter().all(|s| s.as_value().is_some()) {
                Ok(Source::Value {
                    value: Value::Array(items.into_iter().filter_map(into_value).collect()),
                })
            } else {
                Ok(Source::Array { items })
            }
        }
        Value::Object(map) => {
            let entries = map
                .iter()
                .map(|(k, v)| Ok(Entry { key: k.clone(), source: to_source(v, scope)? }))
                .collect::<Result<Vec<_>, LowerError>>()?;
            if entries.iter().all(|e| e.source.as_value().is_some()) {
                let object = entries
                    .into_iter()
                    .filter_map(|e| Some((e.key, into_value(e.source)?)))
                    .collect();
                Ok(Source::Value { value: Value::Object(object) })
            } else {
                Ok(Source::Object { entries })
            }
        }
        other => Ok(Source::Value { value: other.clone() }),
    }
}

fn into_value(source: Source) -> Option<Value> {
    match source {
        Source::Value { value } => Some(value),
        _ => None,
    }
}

/// A template-capable field as an [`Source`], rendering it with placeholder text in place of
/// each reference, for syntax checks such as "is this a URL".
pub fn sample_text(source: &Source) -> Option<String> {
    match source {
        Source::Value { value: Value::String(s) } => Some(s.clone()),
        Source::Tokenized { parts } => Some(
            parts
                .iter()
                .map(|p| match p {
                    Source::Value { value: Value::String(s) } => s.clone(),
                    _ => "x".to_string(),
                })
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn template_with_config_input_and_mustache() {
        let inputs = vec![("region".to_string(), "id-1".to_string())];
        let scope = Scope { config_inputs: &inputs, mustache: true, ..Scope::default() };
        let recorded = json!({ TEMPLATE: ["https://", { REF: { "kind": "configInput", "id": "id-1", "key": "region", "path": [] } }, ".example"] });
        let source = to_source(&recorded, &scope).unwrap();
        assert_eq!(
            source,
            Source::Tokenized {
                parts: vec![
                    Source::text("https://"),
                    Source::ConfigInput { input_id: "id-1".into(), key: "region".into() },
                    Source::text(".example"),
                ]
            }
        );
        let docs_form = to_source(&json!("Bearer {{settings.oauthAccessToken}}"), &scope).unwrap();
        assert_eq!(
            docs_form,
            Source::Tokenized {
                parts: vec![
                    Source::text("Bearer "),
                    Source::Credential { path: vec!["oauthAccessToken".into()] }
                ]
            }
        );
        assert_eq!(to_source(&json!("{{unknown}}"), &scope).unwrap(), Source::text("{{unknown}}"));
        assert_eq!(sample_text(&source).unwrap(), "https://x.example");
    }

    #[test]
    fn tokens_left_by_json_stringify_expand() {
        let tokens = vec![json!({ "kind": "step", "step": 3, "path": ["a"] })];
        let mut value =
            json!({ "bare": "\u{E002}0\u{E001}", "mixed": ["x \u{E000}0\u{E001}!"], "plain": "p" });
        expand_tokens(&mut value, &tokens);
        assert_eq!(value["bare"], json!({ REF: tokens[0] }));
        assert_eq!(value["mixed"][0], json!({ TEMPLATE: ["x ", { REF: tokens[0] }, "!"] }));
        assert_eq!(value["plain"], "p");
    }

    #[test]
    fn literal_containers_stay_values() {
        let scope = Scope::default();
        let v = json!({ "a": [1, "b"], "c": null });
        assert_eq!(to_source(&v, &scope).unwrap(), Source::Value { value: v });
        assert!(plain(&json!({ "f": { FUNCTION: { "name": "f" } } })).is_err());
    }
}
