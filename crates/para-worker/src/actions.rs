//! Integration actions (`integration.actions.<name>(params)`) as HTTP requests, from the
//! catalog's request templates: `in = "path"` parameters fill `{placeholders}` of the path,
//! `in = "query"` ones the query, the rest the body; a parameter named with a `*` suffix is a
//! prefix (`field-*`: `field-Subject` sends body field `Subject`).

use para_catalog::{BodyFormat, Location, Method};
use para_engine::run::{HttpRequest, StepError};
use para_engine::values::text_of;
use serde_json::{Map, Value};

/// The request an action makes, relative to the integration's API base.
pub fn request(
    integration: &str,
    action: &str,
    parameters: &Map<String, Value>,
) -> Result<HttpRequest, StepError> {
    let catalog = para_catalog::lookup(integration).ok_or_else(|| {
        StepError::permanent(format!(
            "`{integration}` has no catalog actions (it is not in the catalog)"
        ))
    })?;
    let spec = catalog.action(action).ok_or_else(|| {
        StepError::permanent(format!("{} has no action `{action}`", catalog.name))
    })?;
    let mut path = spec.path.clone();
    let mut query = Vec::new();
    let mut body = Map::new();
    for (key, value) in parameters {
        let (parameter, name) = match spec.parameters.iter().find(|p| p.is_given_by(key)) {
            Some(p) => (Some(p), p.sent_as()),
            None => match spec.parameters.iter().find_map(|p| {
                let prefix = p.name.strip_suffix('*')?;
                Some((p, key.strip_prefix(prefix)?))
            }) {
                Some((p, rest)) => (Some(p), rest),
                None => (None, key.as_str()),
            },
        };
        match parameter.map(|p| p.location).unwrap_or_default() {
            Location::Path => {
                let text = text_of(Some(value));
                let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
                path = path.replace(&format!("{{{name}}}"), &encoded.replace('+', "%20"));
            }
            Location::Query => query.push((name.to_string(), text_of(Some(value)))),
            Location::Body => insert_at(&mut body, name, value.clone()),
        }
    }
    for p in spec.parameters.iter().filter(|p| p.required && !p.name.ends_with('*')) {
        if !parameters.keys().any(|k| p.is_given_by(k)) {
            return Err(StepError::permanent(format!(
                "the action `{action}` needs the parameter `{}`",
                p.name
            )));
        }
    }
    let method = match spec.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    };
    let sends_body = !matches!(spec.method, Method::Get | Method::Delete) || !body.is_empty();
    Ok(HttpRequest {
        method: method.into(),
        url: path,
        query,
        headers: Vec::new(),
        body: sends_body.then_some(Value::Object(body)),
        body_type: Some(
            match spec.body {
                BodyFormat::Json => "json",
                _ => "x-www-form-urlencoded",
            }
            .into(),
        ),
        authorization: None,
    })
}

/// Puts `value` at the dotted `path` of `body` (`properties.email`), making the objects on the
/// way; a non-object in the way is replaced.
fn insert_at(body: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            body.insert(path.to_string(), value);
        }
        Some((first, rest)) => {
            let slot = body.entry(first.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_at(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn salesforce_create_record_fills_the_path_and_strips_field_prefixes() {
        let params = json!({ "recordType": "Task", "field-Subject": "Call", "field-ActivityDate": "2026-12-02" });
        let r = request("salesforce", "createRecord", params.as_object().unwrap()).unwrap();
        assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "/sobjects/Task"));
        assert_eq!(r.body, Some(json!({ "Subject": "Call", "ActivityDate": "2026-12-02" })));
        let missing = request("salesforce", "createRecord", &Map::new()).unwrap_err();
        assert_eq!(missing.message, "the action `createRecord` needs the parameter `recordType`");
        let unknown = request("salesforce", "fly", &Map::new()).unwrap_err();
        assert_eq!(unknown.message, "Salesforce has no action `fly`");
    }
}
