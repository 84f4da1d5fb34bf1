//! Checking User Settings values against the inputs that declare them.
//!
//! Both ways of saving settings go through [`validate`]: the Connect Portal's forms and the
//! Connect API's `PATCH /sdk/credentials/{id}`. Values are keyed by input id (`Input.id`), as
//! the SDK stores them; keys that name no input are not our business and are left alone.
//!
//! What a valid value is, per input type:
//!
//! | type | accepted |
//! |---|---|
//! | `text`, `password` | a string of at most [`MAX_TEXT_CHARS`] characters |
//! | `number` | a JSON number, or a string holding one (`"25"`, `" 2.5 "`) |
//! | `boolean` | `true` or `false` |
//! | `custom_dropdown` | the `value` of one of its `customDropdownOptions`; through the Connect API, whose app can replace the options, any text, number or boolean ([`Dropdowns`]) |
//! | `field_mapping` | an object whose values are strings (field names) or null |
//! | catalog types (`channel`, `record_type`…) | a string, number or boolean, or a small object/array as a dynamic picker stores it |
//!
//! A required input with no value (absent, `null`, blank text, an empty mapping) is an error;
//! an optional one with no value is fine.

use para_build::Input;
use serde_json::{Map, Value};

/// The longest text value accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The largest structured value (mapping, picker value) accepted, as compact JSON bytes.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// A problem with the value of one input: `message` names the input and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub input_id: String,
    pub message: String,
}

/// Who offered the choices of a `custom_dropdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropdowns {
    /// Only the options the project declared (para's server-rendered portal).
    Declared,
    /// The company's app may have replaced them (`paragon.connect(type, { dropdowns })`,
    /// `setDataSources`), so any text, number or boolean is a possible choice: values saved
    /// through the Connect API.
    FromApp,
}

/// Checks `values` against `inputs`. Returns one error per input at most, in input order;
/// an empty list means the values can be saved.
pub fn validate(inputs: &[Input], values: &Map<String, Value>) -> Vec<FieldError> {
    validate_with(inputs, values, Dropdowns::Declared)
}

/// [`validate`] with the dropdowns' choices offered by `dropdowns`.
pub fn validate_with(
    inputs: &[Input],
    values: &Map<String, Value>,
    dropdowns: Dropdowns,
) -> Vec<FieldError> {
    inputs
        .iter()
        .filter_map(|input| {
            check(input, values.get(&input.id), dropdowns)
                .map(|message| FieldError { input_id: input.id.clone(), message })
        })
        .collect()
}

/// The options of a `custom_dropdown` input, as `(label, value)` pairs in declared order.
pub fn dropdown_options(input: &Input) -> Vec<(String, Value)> {
    input
        .options
        .get("customDropdownOptions")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let value = item.get("value").filter(|v| !v.is_null())?.clone();
                    let label = item
                        .get("label")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| display(&value));
                    Some((label, value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The declared fields of a `field_mapping` input, as `(label, key)` pairs: `key` is the
/// mapping's `value`, or its label when it has none. A mapping's saved value is an object
/// from these keys to the integration's field names (plus `record_type`, the integration's
/// object the fields belong to).
pub fn mapped_fields(input: &Input) -> Vec<(String, String)> {
    input
        .options
        .get("fieldMappings")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let label = item.get("label").and_then(Value::as_str)?.to_string();
                    let key = item
                        .get("value")
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                        .map_or_else(|| label.clone(), str::to_string);
                    Some((label, key))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The number a value stands for: a JSON number, or a string that parses as a finite one.
pub fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// True when a value counts as "not filled in".
pub fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(map)) => map.values().all(|v| is_blank(Some(v))),
        Some(_) => false,
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The error message for one input's value, if it has a problem.
fn check(input: &Input, value: Option<&Value>, dropdowns: Dropdowns) -> Option<String> {
    let title = input.title.trim();
    let title = if title.is_empty() { input.key.as_str() } else { title };
    if is_blank(value) {
        if !input.required {
            return None;
        }
        return Some(match input.input_type.as_str() {
            "custom_dropdown" => format!("{title} is required: choose one of the options."),
            "boolean" => format!("{title} is required: turn it on or off."),
            "field_mapping" => format!("{title} is required: map at least one field."),
            _ => format!("{title} is required: enter a value."),
        });
    }
    let value = value?;
    match input.input_type.as_str() {
        "text" | "password" => match value {
            Value::String(s) => too_long(title, s),
            _ => Some(format!("{title} must be text: enter it as a string.")),
        },
        "number" => match as_number(value) {
            Some(_) => None,
            None => Some(format!(
                "{title} must be a number (for example 25); “{}” is not one.",
                shorten(&display(value))
            )),
        },
        "boolean" => match value {
            Value::Bool(_) => None,
            _ => Some(format!("{title} must be on or off (true or false).")),
        },
        "custom_dropdown" => {
            let options = dropdown_options(input);
            if dropdowns == Dropdowns::FromApp {
                return match value {
                    Value::String(s) => too_long(title, s),
                    Value::Number(_) | Value::Bool(_) => None,
                    _ => Some(format!("{title} must be one of its options (text).")),
                };
            }
            if options.iter().any(|(_, v)| same_option(v, value)) {
                None
            } else if options.is_empty() {
                Some(format!("{title} has no options to choose from: leave it empty."))
            } else {
                let labels: Vec<&str> = options.iter().map(|(l, _)| l.as_str()).collect();
                Some(format!("{title} must be one of: {}.", labels.join(", ")))
            }
        }
        "field_mapping" => match value {
            Value::Object(map) => {
                if let Some((key, _)) =
                    map.iter().find(|(_, v)| !matches!(v, Value::String(_) | Value::Null))
                {
                    return Some(format!(
                        "{title}: the field mapped to “{}” must be a field name (text).",
                        shorten(key)
                    ));
                }
                if let Some(message) = map.values().find_map(|v| match v {
                    Value::String(s) => too_long(title, s),
                    _ => None,
                }) {
                    return Some(message);
                }
                too_big(title, value)
            }
            _ => Some(format!(
                "{title} must map fields: give an object from field to the integration's field name."
            )),
        },
        // An integration-specific type (a channel, a record type…): usually an id, sometimes
        // the object a picker stored.
        _ => match value {
            Value::String(s) => too_long(title, s),
            Value::Number(_) | Value::Bool(_) => None,
            _ => too_big(title, value),
        },
    }
}

/// A dropdown value matches an option by JSON equality, or by its text (forms send text).
fn same_option(option: &Value, value: &Value) -> bool {
    option == value || (value.is_string() && display(option) == display(value))
}

fn too_long(title: &str, text: &str) -> Option<String> {
    let chars = text.chars().count();
    (chars > MAX_TEXT_CHARS).then(|| {
        format!("{title} is too long ({chars} characters): keep it to {MAX_TEXT_CHARS} at most.")
    })
}

fn too_big(title: &str, value: &Value) -> Option<String> {
    let bytes = value.to_string().len();
    (bytes > MAX_JSON_BYTES).then(|| {
        format!("{title} is too large ({bytes} bytes): keep it under {MAX_JSON_BYTES} bytes.")
    })
}

/// At most 40 characters of a value, for quoting it in a message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        return text.to_string();
    }
    let mut short: String = text.chars().take(39).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn input(id: &str, title: &str, ty: &str, required: bool) -> Input {
        Input {
            id: id.into(),
            key: id.into(),
            title: title.into(),
            input_type: ty.into(),
            required,
            tooltip: None,
            placeholder: None,
            default_value: None,
            options: BTreeMap::new(),
        }
    }

    fn dropdown() -> Input {
        let mut i = input("pipe", "ACME pipeline", "custom_dropdown", true);
        i.options.insert(
            "customDropdownOptions".into(),
            json!([{ "label": "Sales", "value": "sales" }, { "label": "Support", "value": "support" }]),
        );
        i
    }

    fn values(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn messages(inputs: &[Input], v: Value) -> Vec<(String, String)> {
        validate(inputs, &values(v)).into_iter().map(|e| (e.input_id, e.message)).collect()
    }

    #[test]
    fn required_inputs_need_a_value() {
        let inputs = [
            input("a", "Channel", "text", true),
            dropdown(),
            input("m", "Mapping", "field_mapping", true),
            input("opt", "Optional", "text", false),
        ];
        let found = messages(&inputs, json!({ "a": "  ", "m": { "title": "" }, "opt": "" }));
        assert_eq!(
            found,
            vec![
                ("a".into(), "Channel is required: enter a value.".into()),
                ("pipe".into(), "ACME pipeline is required: choose one of the options.".into()),
                ("m".into(), "Mapping is required: map at least one field.".into()),
            ]
        );
        assert!(
            messages(
                &inputs,
                json!({ "a": "#general", "pipe": "sales", "m": { "title": "Subject" } })
            )
            .is_empty()
        );
    }

    #[test]
    fn numbers_accept_json_numbers_and_numeric_strings() {
        let inputs = [input("n", "Max tasks per sync", "number", false)];
        for ok in [json!(25), json!(2.5), json!("25"), json!(" -3.5 "), json!(null), json!("")] {
            assert!(messages(&inputs, json!({ "n": ok })).is_empty(), "{ok}");
        }
        for bad in [json!("lots"), json!(true), json!([1]), json!("NaN"), json!("inf")] {
            let found = messages(&inputs, json!({ "n": bad }));
            assert_eq!(found.len(), 1, "{bad}");
            assert!(found[0].1.starts_with("Max tasks per sync must be a number"), "{found:?}");
        }
        assert!(messages(&inputs, json!({ "n": "lots" }))[0].1.contains("“lots” is not one"));
    }

    #[test]
    fn booleans_must_be_booleans() {
        let inputs = [input("b", "Push every task", "boolean", true)];
        assert!(messages(&inputs, json!({ "b": false })).is_empty());
        assert_eq!(
            messages(&inputs, json!({ "b": "yes" })),
            vec![("b".into(), "Push every task must be on or off (true or false).".into())]
        );
        assert_eq!(
            messages(&inputs, json!({})),
            vec![("b".into(), "Push every task is required: turn it on or off.".into())]
        );
    }

    #[test]
    fn dropdown_values_must_be_options() {
        let inputs = [dropdown()];
        assert!(messages(&inputs, json!({ "pipe": "support" })).is_empty());
        assert_eq!(
            messages(&inputs, json!({ "pipe": "marketing" })),
            vec![("pipe".into(), "ACME pipeline must be one of: Sales, Support.".into())]
        );
        let mut numeric = input("level", "Level", "custom_dropdown", false);
        numeric.options.insert(
            "customDropdownOptions".into(),
            json!([{ "label": "One", "value": 1 }, { "label": "Two", "value": 2 }]),
        );
        assert!(messages(&[numeric.clone()], json!({ "level": 2 })).is_empty());
        assert!(messages(&[numeric.clone()], json!({ "level": "2" })).is_empty(), "form text");
        assert_eq!(messages(&[numeric], json!({ "level": 3 })).len(), 1);
        assert_eq!(
            dropdown_options(&dropdown()),
            vec![("Sales".into(), json!("sales")), ("Support".into(), json!("support"))]
        );
    }

    #[test]
    fn dropdown_options_from_the_app_are_accepted_through_the_api() {
        let inputs = [dropdown()];
        let from_app = |v: Value| {
            validate_with(&inputs, &values(json!({ "pipe": v })), Dropdowns::FromApp)
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
        };
        assert!(from_app(json!("marketing")).is_empty(), "an option the app offered");
        assert!(from_app(json!(7)).is_empty());
        assert_eq!(
            from_app(json!({ "x": 1 })),
            ["ACME pipeline must be one of its options (text)."]
        );
        assert!(from_app(json!("x".repeat(MAX_TEXT_CHARS + 1)))[0].contains("too long"));
        assert_eq!(
            from_app(json!(null)),
            ["ACME pipeline is required: choose one of the options."]
        );
    }

    #[test]
    fn text_and_mappings_have_shapes_and_limits() {
        let inputs = [
            input("t", "Owner", "text", false),
            input("m", "Task mapping", "field_mapping", false),
            input("c", "Channel", "channel", false),
        ];
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        let found = messages(&inputs, json!({ "t": long, "m": "Subject", "c": { "id": "C1" } }));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.starts_with("Owner is too long (10001 characters)"), "{found:?}");
        assert!(found[1].1.starts_with("Task mapping must map fields"), "{found:?}");
        assert_eq!(
            messages(&inputs, json!({ "t": 5 }))[0].1,
            "Owner must be text: enter it as a string."
        );
        assert_eq!(
            messages(&inputs, json!({ "m": { "title": 3 } }))[0].1,
            "Task mapping: the field mapped to “title” must be a field name (text)."
        );
        let huge: Map<String, Value> =
            (0..3000).map(|i| (format!("field{i}"), json!("x".repeat(30)))).collect();
        assert!(messages(&inputs, json!({ "m": huge }))[0].1.contains("too large"));
    }

    #[test]
    fn unknown_keys_are_ignored_and_titles_fall_back_to_keys() {
        let mut untitled = input("id1", "", "number", true);
        untitled.key = "syncLimit".into();
        assert!(messages(&[], json!({ "whatever": [1, 2] })).is_empty());
        assert_eq!(
            messages(&[untitled], json!({ "other": 1 })),
            vec![("id1".into(), "syncLimit is required: enter a value.".into())]
        );
    }

    #[test]
    fn mapped_fields_use_the_label_when_there_is_no_value() {
        let mut m = input("m", "Mapping", "field_mapping", false);
        m.options.insert(
            "fieldMappings".into(),
            json!([{ "label": "Title", "value": "title" }, { "label": "Due date" }]),
        );
        assert_eq!(
            mapped_fields(&m),
            vec![("Title".into(), "title".into()), ("Due date".into(), "Due date".into())]
        );
    }
}
