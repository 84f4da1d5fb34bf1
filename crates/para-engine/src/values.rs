//! Resolving a [`Source`] to JSON for one run. A reference that has no value (a step that did
//! not run, a setting never saved, a missing key) resolves to `None`, JavaScript's
//! `undefined`; inside a template it renders as the empty string.

use para_build::{SettingScope, Source};
use serde_json::{Map, Value};

/// Step outputs by step id, in layers: inside a fan-out branch each instance has its own
/// layer over the enclosing one.
#[derive(Debug, Clone, Default)]
pub struct Outputs<'p> {
    pub local: Map<String, Value>,
    pub parent: Option<&'p Outputs<'p>>,
}

impl<'p> Outputs<'p> {
    pub fn get(&self, step_id: &str) -> Option<&Value> {
        self.local.get(step_id).or_else(|| self.parent?.get(step_id))
    }

    /// A layer over this one.
    pub fn child(&self) -> Outputs<'_> {
        Outputs { local: Map::new(), parent: Some(self) }
    }
}

/// What a run knows, for references to read.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// Step id → output, for `VARIABLE`.
    pub outputs: Option<&'a Outputs<'a>>,
    /// Integration-level settings by input id.
    pub shared_settings: Option<&'a Map<String, Value>>,
    /// The running workflow's settings by input id.
    pub workflow_settings: Option<&'a Map<String, Value>>,
    /// Environment secrets by name.
    pub secrets: Option<&'a Map<String, Value>>,
    pub user_id: Option<&'a str>,
    pub provider_id: Option<&'a str>,
    pub provider_data: Option<&'a Value>,
    /// The user's metadata (`connectUser.meta`).
    pub meta: Option<&'a Value>,
    /// Credential fields (`credentials.x`) and config inputs by key.
    pub credential: Option<&'a Map<String, Value>>,
    pub config_inputs: Option<&'a Map<String, Value>>,
    /// The current page token of a paginated request.
    pub page_token: Option<&'a Value>,
    /// The request a custom webhook trigger received (`{ method, headers, query, body }`), for
    /// its `filters` and `providerId`.
    pub webhook_request: Option<&'a Value>,
}

/// Follows `path` into `value`: object keys, array indexes, and `length` of arrays and strings.
pub fn walk(value: &Value, path: &[String]) -> Option<Value> {
    let mut current = value;
    for (i, segment) in path.iter().enumerate() {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) if segment == "length" && i + 1 == path.len() => {
                return Some(Value::from(items.len()));
            }
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            Value::String(s) if segment == "length" && i + 1 == path.len() => {
                return Some(Value::from(s.chars().count()));
            }
            _ => return None,
        };
    }
    Some(current.clone())
}

/// Follows `path` into a step's output. A step of a fan-out's branch reads, after the fan-out,
/// as the list of its instances' outputs (a list of lists for nested fan-outs; `null` where an
/// instance did not run the step): a path that does not index the list (`result`, not `0` or
/// `length`) is followed into each instance, so `y.output.result` is the list of the results.
/// Outputs themselves are always objects, so a list here is always such a gathering.
pub fn read_output(output: &Value, path: &[String]) -> Option<Value> {
    match (output, path.first()) {
        (Value::Array(instances), Some(first))
            if first != "length" && first.parse::<usize>().is_err() =>
        {
            Some(Value::Array(
                instances
                    .iter()
                    .map(|i| match i {
                        Value::Null => Value::Null,
                        i => read_output(i, path).unwrap_or(Value::Null),
                    })
                    .collect(),
            ))
        }
        _ => walk(output, path),
    }
}

fn from_map(map: Option<&Map<String, Value>>, key: &str, path: &[String]) -> Option<Value> {
    walk(map?.get(key)?, path)
}

/// The value of `source` (`None`: undefined).
pub fn resolve(source: &Source, scope: &Scope<'_>) -> Option<Value> {
    match source {
        Source::Value { value } => Some(value.clone()),
        // A template that is one reference and nothing else (`${step.output.items}`) is a
        // token for that reference: undefined stays undefined (so `DoesNotExist` can see it)
        // and a list or object stays itself (pagination's `outputPath`); a number or a
        // boolean becomes text, as the template string would make it.
        Source::Tokenized { parts } if parts.len() == 1 && parts[0].is_reference() => {
            match resolve(&parts[0], scope)? {
                v @ (Value::Number(_) | Value::Bool(_)) => Some(Value::String(v.to_string())),
                v => Some(v),
            }
        }
        Source::Tokenized { parts } => {
            let mut out = String::new();
            for part in parts {
                out.push_str(&text_of(resolve(part, scope).as_ref()));
            }
            Some(Value::String(out))
        }
        Source::Object { entries } => {
            let mut map = Map::new();
            for entry in entries {
                // An undefined value drops the key, as JSON.stringify does.
                if let Some(v) = resolve(&entry.source, scope) {
                    map.insert(entry.key.clone(), v);
                }
            }
            Some(Value::Object(map))
        }
        Source::Array { items } => Some(Value::Array(
            items.iter().map(|i| resolve(i, scope).unwrap_or(Value::Null)).collect(),
        )),
        Source::Variable { step_id, path } => read_output(scope.outputs?.get(step_id)?, path),
        Source::EnvironmentSecret { name } => scope.secrets?.get(name).cloned(),
        Source::Credential { path } => {
            let (first, rest) = path.split_first()?;
            from_map(scope.credential, first, rest)
        }
        Source::ConfigInput { input_id, key } => {
            scope.config_inputs.and_then(|m| m.get(key).or_else(|| m.get(input_id))).cloned()
        }
        Source::UserSetting { scope: which, input_id, path, .. } => {
            let settings = match which {
                SettingScope::Shared => scope.shared_settings,
                SettingScope::Workflow => scope.workflow_settings,
            };
            from_map(settings, input_id, path)
        }
        Source::ConnectUser { field, path } => {
            let root = match field.as_str() {
                "userId" => Value::String(scope.user_id?.to_string()),
                "providerId" => Value::String(scope.provider_id?.to_string()),
                "providerData" => scope.provider_data?.clone(),
                _ => return None,
            };
            walk(&root, path)
        }
        Source::PersonaMetadata { path } => walk(scope.meta?, path),
        Source::ResourceInput { key } => scope.config_inputs?.get(key).cloned(),
        Source::PageToken {} => scope.page_token.cloned(),
        Source::WebhookRequest { path } => walk(scope.webhook_request?, path),
    }
}

/// A value rendered into text as a JavaScript template string would: strings as they are,
/// undefined and null as empty, numbers and booleans as written, objects and arrays as JSON.
pub fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// [`resolve`] rendered as text.
pub fn resolve_text(source: &Source, scope: &Scope<'_>) -> String {
    text_of(resolve(source, scope).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use para_build::Entry;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn references_read_what_the_run_knows() {
        let outputs = Outputs {
            local: obj(json!({ "s1": { "response": { "body": { "items": [{ "id": 7 }] } } } })),
            parent: None,
        };
        let shared = obj(json!({ "in-1": "sales" }));
        let meta = json!({ "plan": "pro", "seats": 3 });
        let scope = Scope {
            outputs: Some(&outputs),
            shared_settings: Some(&shared),
            user_id: Some("ann"),
            meta: Some(&meta),
            ..Scope::default()
        };
        let var = |path: &[&str]| Source::Variable {
            step_id: "s1".into(),
            path: path.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            resolve(&var(&["response", "body", "items", "0", "id"]), &scope),
            Some(json!(7))
        );
        assert_eq!(resolve(&var(&["response", "body", "items", "length"]), &scope), Some(json!(1)));
        assert_eq!(resolve(&var(&["nope"]), &scope), None);
        let setting = Source::UserSetting {
            scope: SettingScope::Shared,
            input_id: "in-1".into(),
            key: "pipeline".into(),
            path: vec![],
        };
        assert_eq!(resolve(&setting, &scope), Some(json!("sales")));
        let template = Source::Tokenized {
            parts: vec![
                Source::text("user "),
                Source::ConnectUser { field: "userId".into(), path: vec![] },
                Source::text(" on "),
                Source::PersonaMetadata { path: vec!["plan".into()] },
                Source::text(" ("),
                Source::PersonaMetadata { path: vec!["missing".into()] },
                Source::text(")"),
            ],
        };
        assert_eq!(resolve_text(&template, &scope), "user ann on pro ()");
        let object = Source::Object {
            entries: vec![
                Entry {
                    key: "seats".into(),
                    source: Source::PersonaMetadata { path: vec!["seats".into()] },
                },
                Entry {
                    key: "gone".into(),
                    source: Source::PersonaMetadata { path: vec!["x".into()] },
                },
            ],
        };
        assert_eq!(resolve(&object, &scope), Some(json!({ "seats": 3 })));
    }
}
