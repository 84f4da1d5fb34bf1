//! Value sources: how a value that may depend on run-time data is written down at build time.
//!
//! A literal is a `VALUE`. A template string that mixes text with references is `TOKENIZED`.
//! Objects and arrays that contain a reference somewhere are `OBJECT`/`ARRAY` of sources (those
//! without any reference stay one `VALUE`). The remaining variants are references, resolved when
//! the workflow runs or the user connects.

use serde::{Deserialize, Serialize};

/// A value known at build time, or how to obtain it later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Source {
    /// A literal JSON value.
    Value { value: serde_json::Value },
    /// A string assembled from parts; each part is a `VALUE` string or a reference.
    Tokenized { parts: Vec<Source> },
    /// An object some of whose values are not literals, keys in written order.
    Object { entries: Vec<Entry> },
    /// An array some of whose items are not literals.
    Array { items: Vec<Source> },
    /// The output of an earlier step: `step.output.a.b`.
    #[serde(rename_all = "camelCase")]
    Variable { step_id: String, path: Vec<String> },
    /// `context.getEnvironmentSecret('NAME')`.
    EnvironmentSecret { name: String },
    /// A field of the connected account's credential: `credentials.oauthAccessToken`,
    /// `credentials.savedCredentials.X`, `credentials.tokenRequest.response.X`, or the docs'
    /// `{{settings.X}}` form.
    Credential { path: Vec<String> },
    /// A custom integration's config input (`createConfigInputs`), written `${inputs.k}`.
    #[serde(rename_all = "camelCase")]
    ConfigInput { input_id: String, key: String },
    /// A User Setting value: `context.getInput(inputs.k)` with an optional sub-path.
    #[serde(rename_all = "camelCase")]
    UserSetting { scope: SettingScope, input_id: String, key: String, path: Vec<String> },
    /// A field of the connected user: `connectUser.userId`, `.providerId`, `.providerData.x`.
    ConnectUser { field: String, path: Vec<String> },
    /// `connectUser.meta.a.b`: the user's metadata set by the company's app.
    PersonaMetadata { path: Vec<String> },
    /// A resource's own user input: `context.getInput('k')` inside a resource.
    ResourceInput { key: String },
    /// The page token of a paginated request, inside its `url`, `params`, `headers` or `body`.
    PageToken {},
    /// The request a custom webhook trigger received, `{ method, headers, query, body }`
    /// (header names lower-case): in a custom trigger's `filters` and `mapPayload.providerId`.
    WebhookRequest { path: Vec<String> },
}

/// Which set of User Settings a [`Source::UserSetting`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingScope {
    /// Integration-level (`inputs.ts`), shared by all of the integration's workflows.
    Shared,
    /// The workflow's own `inputs`.
    Workflow,
}

/// One `key: value` of an object source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub source: Source,
}

impl Source {
    pub fn text(s: impl Into<String>) -> Source {
        Source::Value { value: serde_json::Value::String(s.into()) }
    }

    /// The literal, if this source is one.
    pub fn as_value(&self) -> Option<&serde_json::Value> {
        match self {
            Source::Value { value } => Some(value),
            _ => None,
        }
    }

    /// Is this a reference (not a literal or a container)?
    pub fn is_reference(&self) -> bool {
        !matches!(
            self,
            Source::Value { .. }
                | Source::Tokenized { .. }
                | Source::Object { .. }
                | Source::Array { .. }
        )
    }

    /// Visits this source and every source nested in it, depth first.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Source)) {
        visit(self);
        match self {
            Source::Tokenized { parts: items } | Source::Array { items } => {
                items.iter().for_each(|s| s.walk(visit));
            }
            Source::Object { entries } => entries.iter().for_each(|e| e.source.walk(visit)),
            _ => {}
        }
    }
}
