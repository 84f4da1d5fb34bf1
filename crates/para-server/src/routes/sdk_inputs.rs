//! User Settings in the SDK's vocabulary.
//!
//! `GET /sdk/integrations` serves each input of the build (`para_build::Input`) the way the
//! `@useparagon/connect` SDK types it (`SerializedConnectInput`): a `SidebarInputType` value as
//! `type` and the type's own fields at the top level of the input. Integration-specific setting
//! types name a *data source* in `sourceType`; the integration's data sources are served in
//! `sdkIntegrationConfig.dataSources` (the SDK's `getSourcesForInput`, `getDataSourceOptions`)
//! and their choices are listed by `POST /sdk/actions` (`getFieldOptions`,
//! `options.rs`'s `field_options`).
//!
//! | build type | SDK type | per-type fields |
//! |---|---|---|
//! | `text` | `TEXT_NO_VARS` | |
//! | `number` | `NUMBER` | |
//! | `boolean` | `SWITCH` | |
//! | `password` | `PASSWORD` | |
//! | `custom_dropdown` | `CUSTOM_DROPDOWN` | `key`, `keyIsDefault`, `customDropdownOptions` |
//! | `field_mapping` | `FIELD_MAPPER` | `savedFieldMappings`, `useDynamicMapper`, `sourceType` when the catalog knows the record types |
//! | a catalog type whose choices para can list | `DYNAMIC_ENUM` | `sourceType` (the type's name) |
//! | a catalog type typed by hand | `TEXT_NO_VARS` | |
//!
//! Stored values keep their shapes (docs/server.md): only the description of the inputs
//! changes.

use indexmap::IndexMap;
use para_build::Input;
use serde_json::{Map, Value, json};

/// `DataSourceType` values of the SDK.
pub const DYNAMIC_SOURCE: &str = "DYNAMIC_DATA_SOURCE";
pub const FIELD_MAPPER_SOURCE: &str = "FIELD_MAPPER_DATA_SOURCE";

/// The data source of an integration's record types (the objects a field mapping maps).
pub const RECORD_TYPE: &str = "record_type";
/// The field-mapper data source of a `field_mapping` input.
pub const FIELD_MAPPING: &str = "field_mapping";
/// The fields of one record type: a source para names but cannot list.
pub const MAPPED_FIELDS: &str = "field_mapping.fields";

/// Where the choices of a data source come from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The catalog input type's `GET` listing, with the user's credential.
    Listed(&'static para_catalog::InputType),
    /// The catalog's fixed list of the integration's record types.
    RecordTypes(&'static [String]),
    /// The fields of a record type, which para does not list.
    MappedFields,
}

/// The data source `key` of the catalog integration (`None` also for integrations outside
/// the catalog: they have no data sources).
pub fn source(catalog: Option<&'static para_catalog::Integration>, key: &str) -> Option<Source> {
    let catalog = catalog?;
    let listed = catalog.input_types.iter().find(|t| t.name == key && t.options.is_some());
    if let Some(t) = listed {
        return Some(Source::Listed(t));
    }
    let has_records = record_source(catalog).is_some();
    match key {
        RECORD_TYPE if !catalog.record_types.is_empty() => {
            Some(Source::RecordTypes(&catalog.record_types))
        }
        MAPPED_FIELDS if has_records => Some(Source::MappedFields),
        _ => None,
    }
}

/// The source of the integration's record types: its listed `record_type` type, else its
/// catalog list.
fn record_source(catalog: &'static para_catalog::Integration) -> Option<Source> {
    let listed = catalog.input_types.iter().find(|t| t.name == RECORD_TYPE && t.options.is_some());
    match listed {
        Some(t) => Some(Source::Listed(t)),
        None if !catalog.record_types.is_empty() => {
            Some(Source::RecordTypes(&catalog.record_types))
        }
        None => None,
    }
}

/// A data source of `sdkIntegrationConfig.dataSources`, as the SDK's `DataSource`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DataSource {
    Dynamic(DynamicSource),
    FieldMapper(FieldMapperSource),
}

/// A list of choices `getFieldOptions` fetches by `cacheKey` (the SDK's functions
/// `mapRefreshToValues` and `getRefreshActionParameters` cannot travel).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamicSource {
    /// `DYNAMIC_DATA_SOURCE`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    /// The `sourceKey` `getFieldOptions` sends.
    pub cache_key: String,
    /// Always empty: para's sources depend on nothing but the account.
    pub refresh_dependencies: Vec<Value>,
    pub support_pagination: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
}

/// A field mapper: the record types, and the fields of one.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapperSource {
    /// `FIELD_MAPPER_DATA_SOURCE`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'static str,
    pub title: &'static str,
    pub subtitle: String,
    pub record_source: DynamicSource,
    pub field_source: DynamicSource,
}

/// A dynamic data source (the SDK's `getFieldOptions` sends its `cacheKey`).
fn dynamic(key: &str, title: &str, subtitle: Option<&str>) -> DynamicSource {
    DynamicSource {
        kind: DYNAMIC_SOURCE,
        title: title.to_string(),
        cache_key: key.to_string(),
        refresh_dependencies: Vec::new(),
        support_pagination: true,
        subtitle: subtitle.map(str::to_string),
    }
}

/// `sdkIntegrationConfig.dataSources` of an integration: one dynamic source per catalog type
/// whose choices para lists, the record types, and the field mapper built on them.
pub fn data_sources(integration_key: &str) -> IndexMap<String, DataSource> {
    let mut sources = IndexMap::new();
    let Some(catalog) = para_catalog::lookup(integration_key) else { return sources };
    for t in catalog.input_types.iter().filter(|t| t.options.is_some()) {
        let source = dynamic(&t.name, &t.label, Some(&t.description));
        sources.insert(t.name.clone(), DataSource::Dynamic(source));
    }
    let Some(records) = record_source(catalog) else { return sources };
    if let Source::RecordTypes(_) = records {
        let subtitle = format!("An object of {}", catalog.name);
        let source = dynamic(RECORD_TYPE, "Record type", Some(&subtitle));
        sources.insert(RECORD_TYPE.into(), DataSource::Dynamic(source));
    }
    let record_title = match records {
        Source::Listed(t) => t.label.as_str(),
        _ => "Record type",
    };
    let mapper = FieldMapperSource {
        kind: FIELD_MAPPER_SOURCE,
        id: FIELD_MAPPING,
        title: "Field mapping",
        subtitle: format!("Fields of your app mapped to fields of a {} object", catalog.name),
        record_source: dynamic(RECORD_TYPE, record_title, None),
        field_source: dynamic(MAPPED_FIELDS, "Field", None),
    };
    sources.insert(FIELD_MAPPING.into(), DataSource::FieldMapper(mapper));
    sources
}

/// `sdkIntegrationConfig` of an integration, as the SDK reads it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkIntegrationConfig {
    /// Always empty: para asks no values inside the OAuth flow itself.
    pub oauth_inputs: Vec<Value>,
    /// Always empty: one kind of account per integration.
    pub account_types: Vec<Value>,
    /// The values asked before connecting (`installFlow`'s `getPreOptions`).
    pub auth_config_inputs: Vec<InstallInput>,
    /// The values asked after an OAuth sign-in (`getPostOptions`).
    pub post_oauth_inputs: Vec<InstallInput>,
    /// The integration's data sources, by name.
    pub data_sources: IndexMap<String, DataSource>,
}

/// `sdkIntegrationConfig` of an integration, as the SDK reads it (no install inputs yet:
/// `api.rs` adds the connector's).
pub fn integration_config(integration_key: &str) -> SdkIntegrationConfig {
    SdkIntegrationConfig {
        oauth_inputs: Vec::new(),
        account_types: Vec::new(),
        auth_config_inputs: Vec::new(),
        post_oauth_inputs: Vec::new(),
        data_sources: data_sources(integration_key),
    }
}

/// One input as the SDK types it (`SerializedConnectInput`).
pub fn sdk_input(input: &Input, integration_key: &str) -> Value {
    let catalog = para_catalog::lookup(integration_key);
    // What the project wrote beyond the common fields stays on the input, as Paragon keeps it;
    // the fields set below take precedence.
    let mut out: Map<String, Value> = input.options.clone().into_iter().collect();
    let written_key = input.options.get("key").and_then(Value::as_str).filter(|k| !k.is_empty());
    out.insert("id".into(), json!(input.id));
    out.insert("key".into(), json!(written_key.unwrap_or(&input.key)));
    out.insert("title".into(), json!(input.title));
    out.insert("required".into(), json!(input.required));
    for (name, value) in [
        ("tooltip", input.tooltip.as_ref().map(|t| json!(t))),
        ("placeholder", input.placeholder.as_ref().map(|p| json!(p))),
        ("defaultValue", input.default_value.clone()),
    ] {
        if let Some(v) = value {
            out.insert(name.into(), v);
        }
    }
    let sdk_type = match input.input_type.as_str() {
        "text" => "TEXT_NO_VARS",
        "number" => "NUMBER",
        "boolean" => "SWITCH",
        "password" => "PASSWORD",
        "custom_dropdown" => {
            let options = input.options.get("customDropdownOptions").filter(|o| o.is_array());
            out.insert("customDropdownOptions".into(), options.cloned().unwrap_or(json!([])));
            // The key `paragon.connect(type, { dropdowns })` and `setDataSources` name the
            // dropdown by: the `key` written on the input, else its code handle.
            out.insert("keyIsDefault".into(), json!(written_key.is_none()));
            "CUSTOM_DROPDOWN"
        }
        "field_mapping" => {
            let saved: Vec<Value> = crate::settings::mapped_fields(input)
                .into_iter()
                .map(|(label, key)| json!({ "label": label, "value": key }))
                .collect();
            out.insert("savedFieldMappings".into(), json!(saved));
            let dynamic = input.options.get("useDynamicMapper").and_then(Value::as_bool);
            out.insert("useDynamicMapper".into(), json!(dynamic.unwrap_or(false)));
            if catalog.is_some_and(|c| record_source(c).is_some()) {
                out.insert("sourceType".into(), json!(FIELD_MAPPING));
            }
            "FIELD_MAPPER"
        }
        other => match source(catalog, other) {
            Some(Source::Listed(_) | Source::RecordTypes(_)) => {
                out.insert("sourceType".into(), json!(other));
                "DYNAMIC_ENUM"
            }
            _ => "TEXT_NO_VARS",
        },
    };
    out.insert("type".into(), json!(sdk_type));
    Value::Object(out)
}

/// A list of inputs as the SDK types them.
pub fn sdk_inputs(inputs: &[Input], integration_key: &str) -> Vec<Value> {
    inputs.iter().map(|i| sdk_input(i, integration_key)).collect()
}

/// A value asked when connecting, as the SDK's `IntegrationConnectInput`.
#[derive(serde::Serialize, utoipa::ToSchema, Clone)]
#[serde(rename_all = "camelCase")]
pub struct InstallInput {
    /// The key the value is sent under (`setPreOptions({[id]: value})`).
    pub id: String,
    pub title: String,
    pub required: bool,
    /// `PASSWORD`, `SWITCH`, `ENUM` or `TEXT_NO_VARS`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `number` for a number typed as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_type: Option<&'static str>,
    /// An `ENUM`'s choices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Choice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
}

/// A choice of a dropdown: what is shown and what is stored.
#[derive(serde::Serialize, utoipa::ToSchema, Clone)]
pub struct Choice {
    pub label: String,
    pub value: Value,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn input(ty: &str, options: &[(&str, Value)]) -> Input {
        Input {
            id: "i1".into(),
            key: "handle".into(),
            title: "Title".into(),
            input_type: ty.into(),
            required: true,
            tooltip: Some("help".into()),
            placeholder: None,
            default_value: None,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn base_types_take_the_sdk_names() {
        for (ty, sdk) in [
            ("text", "TEXT_NO_VARS"),
            ("number", "NUMBER"),
            ("boolean", "SWITCH"),
            ("password", "PASSWORD"),
            ("custom_dropdown", "CUSTOM_DROPDOWN"),
            ("field_mapping", "FIELD_MAPPER"),
        ] {
            let served = sdk_input(&input(ty, &[]), "custom.x");
            assert_eq!(served["type"], sdk, "{ty}");
            assert_eq!(served["id"], "i1");
            assert_eq!(served["tooltip"], "help");
            assert!(served.get("options").is_none(), "{served}");
        }
    }

    #[test]
    fn dropdowns_carry_their_options_and_key_at_the_top() {
        let options = json!([{ "label": "Sales", "value": "sales" }]);
        let served = sdk_input(
            &input("custom_dropdown", &[("customDropdownOptions", options.clone())]),
            "x",
        );
        assert_eq!(served["customDropdownOptions"], options);
        assert_eq!((&served["key"], &served["keyIsDefault"]), (&json!("handle"), &json!(true)));
        let keyed = sdk_input(&input("custom_dropdown", &[("key", json!("pipelines"))]), "x");
        assert_eq!((&keyed["key"], &keyed["keyIsDefault"]), (&json!("pipelines"), &json!(false)));
        assert_eq!(keyed["customDropdownOptions"], json!([]), "an array the SDK can replace");
    }

    #[test]
    fn catalog_types_name_their_data_source() {
        let channel = sdk_input(&input("channel", &[]), "slack");
        assert_eq!(
            (&channel["type"], &channel["sourceType"]),
            (&json!("DYNAMIC_ENUM"), &json!("channel"))
        );
        let sources = |key: &str| serde_json::to_value(data_sources(key)).unwrap();
        assert!(sources("slack")["channel"]["cacheKey"] == "channel");
        // A type typed by hand (no listing) is text.
        let table = sdk_input(&input("table", &[]), "airtable");
        assert_eq!(table["type"], "TEXT_NO_VARS");
        assert!(table.get("sourceType").is_none());
        // HubSpot's record types are a catalog list: a dynamic source and a field mapper.
        let record = sdk_input(&input("record_type", &[]), "hubspot");
        assert_eq!(record["sourceType"], "record_type");
        let sources = sources("hubspot");
        assert_eq!(sources[FIELD_MAPPING]["recordSource"]["cacheKey"], RECORD_TYPE);
        assert_eq!(sources[FIELD_MAPPING]["fieldSource"]["cacheKey"], MAPPED_FIELDS);
        let mapping = sdk_input(
            &input("field_mapping", &[("fieldMappings", json!([{ "label": "Title" }]))]),
            "hubspot",
        );
        assert_eq!(mapping["sourceType"], FIELD_MAPPING);
        assert_eq!(mapping["savedFieldMappings"], json!([{ "label": "Title", "value": "Title" }]));
        assert!(sdk_input(&input("field_mapping", &[]), "custom.x").get("sourceType").is_none());
        assert!(data_sources("custom.x").is_empty());
    }
}
