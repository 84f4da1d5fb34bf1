//! The `out/build.json` document: the one contract between the compiler and everything that runs
//! a project (server, engine, portal, editor support).
//!
//! The document is versioned ([`FORMAT_VERSION`]), additive, and deterministic: maps are
//! `BTreeMap`s, lists keep source or display order, nothing depends on time or the machine, and
//! [`Build::seal`] stamps a SHA-256 hash of the content. `docs/build-format.md` documents every
//! field; keep the two in step. This crate has no engine, HTTP or database code so that every
//! side can depend on it.

mod graph;
mod source;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use graph::{
    Condition, DelayUnit, OPERATORS, Operation, Pagination, Request, Step, StepKind, Validation,
};
pub use source::{Entry, SettingScope, Source};

/// Bumped only for incompatible changes; new optional fields do not bump it.
pub const FORMAT_VERSION: u32 = 1;

/// The whole compiled project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub format_version: u32,
    /// `sha256:<hex>` of the document with this field empty. Identical sources give an identical hash.
    pub build_hash: String,
    /// The `para` version that wrote the document.
    pub generator: String,
    pub project: ProjectInfo,
    pub persona: Persona,
    /// App Events by their stable id.
    pub events: BTreeMap<String, Event>,
    /// Integrations by key: a catalog key (`salesforce`) or `custom.<slug>`.
    pub integrations: BTreeMap<String, Integration>,
    /// API resources by id.
    pub resources: BTreeMap<String, Resource>,
    /// Names of the environment secrets the project reads (`context.getEnvironmentSecret`), sorted.
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectInfo {
    pub project_id: Option<String>,
    pub project_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persona {
    /// The example user metadata from `src/persona.meta.ts` (`null` if the file is absent).
    pub meta: serde_json::Value,
    pub source: Option<String>,
}

/// An App Event (`src/events/<name>.ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// UUID v5 of the event name: stable across rebuilds and machines.
    pub id: String,
    pub name: String,
    /// The `schema` object: an example payload.
    pub sample_data: serde_json::Value,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationKind {
    /// A built-in catalog integration (`salesforce`).
    Catalog,
    /// A custom integration defined by the project (`custom.<slug>`).
    Custom,
}

/// One integration folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    pub key: String,
    pub kind: IntegrationKind,
    /// Display name: the custom integration's `name`, or the catalog's name for the key.
    pub name: String,
    /// The folder, relative to the project root.
    pub source: String,
    pub config: IntegrationConfig,
    /// Integration-level User Settings (`inputs.ts`), in declaration order.
    pub inputs: Vec<Input>,
    /// Workflows by id.
    pub workflows: BTreeMap<String, Workflow>,
    /// Custom webhook triggers (`triggers/*.ts`) by id.
    pub custom_triggers: BTreeMap<String, CustomTrigger>,
}

/// A custom webhook trigger (`src/integrations/<key>/triggers/<name>.ts`): a webhook the
/// provider sends to a URL para serves, which starts the workflows built on it
/// (`CustomTriggerStep`) when the request passes `filters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomTrigger {
    /// The class's `readonly id` (a UUID kept for the trigger's life: the webhook URLs users
    /// paste into their apps name it).
    pub id: String,
    /// Display name (the SDK's `getTriggers` title).
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `triggerLevel`: one webhook per connected user, or one for the whole app.
    #[serde(default)]
    pub level: TriggerLevel,
    /// How the webhook comes to exist: pasted by the user into the provider (`manual`,
    /// `ManualWebhookTrigger`) or created through the provider's API (`api`,
    /// `ApiEndpointWebhookTrigger`).
    #[serde(default)]
    pub setup: TriggerSetup,
    /// Which requests start runs: a condition over the request (`WEBHOOK_REQUEST` sources);
    /// absent, every request does.
    #[serde(default)]
    pub filters: Option<Condition>,
    /// `mapPayload.providerId`: for an app-level trigger, the provider's account id read from
    /// the request (`WEBHOOK_REQUEST` sources), matched against connected users' provider ids.
    #[serde(default)]
    pub provider_id: Option<Source>,
    /// `samplePayload`: an example request body, for test data and the dashboard (`null` when
    /// not written).
    #[serde(default)]
    pub sample_payload: serde_json::Value,
    /// The file, relative to the project root.
    #[serde(default)]
    pub source: String,
}

/// `triggerLevel` of a custom trigger (Paragon's `'USER'` / `'APP'`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerLevel {
    /// Each connected user has their own webhook URL.
    #[default]
    User,
    /// One webhook for the app; each request names its user through `providerId`.
    App,
}

/// How a custom trigger's webhook is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerSetup {
    /// The user (or the company) pastes the URL into the provider.
    #[default]
    Manual,
    /// Created through the provider's webhook API when a workflow is enabled.
    Api,
}

/// `config.ts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationConfig {
    pub description: Option<String>,
    /// `overviewText`: Markdown shown in the Connect Portal.
    pub overview: Option<String>,
    /// `showWatermark` ("Powered by" link in the portal). Defaults to true when absent.
    pub show_watermark: bool,
    /// `active`: whether the integration is offered to users. Defaults to true when absent.
    pub active: bool,
    /// Workflow ids in `workflowDisplayOrder` order.
    pub workflow_display_order: Vec<String>,
    /// Present for custom integrations only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomIntegrationConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthenticationType {
    Oauth,
    Basic,
    OauthClientCredential,
    RopcApp,
}

impl AuthenticationType {
    pub const ALL: [(&'static str, AuthenticationType); 4] = [
        ("oauth", AuthenticationType::Oauth),
        ("basic", AuthenticationType::Basic),
        ("oauth_client_credential", AuthenticationType::OauthClientCredential),
        ("ropc_app", AuthenticationType::RopcApp),
    ];
}

/// The `ICustomIntegrationConfig` part of a custom integration's `config.ts`. Every field that
/// may hold a template is a [`Source`]: a literal `VALUE` or a `TOKENIZED` mix of text and
/// references (credentials, config inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomIntegrationConfig {
    pub name: String,
    /// The slug `paragon.connect()` takes: the key without `custom.`.
    pub slug: String,
    pub accent_color: Option<String>,
    pub authentication_type: AuthenticationType,
    pub authorization_url: Option<Source>,
    pub access_token_url: Option<Source>,
    /// `scopes`, split on whitespace.
    pub scopes: Vec<String>,
    pub include_client_id_and_secrets: bool,
    #[serde(rename = "usePKCEInCodeExchange")]
    pub use_pkce_in_code_exchange: bool,
    pub api_base_url: Option<Source>,
    pub test_endpoint_path: Option<Source>,
    pub authorization: Authorization,
    pub user_profile_config: Option<Source>,
    pub request_options: Option<Source>,
    /// `createConfigInputs`: asked of the user before connecting, referenced as `${inputs.k}`.
    pub config_inputs: Vec<Input>,
}

/// How requests to the integration's API are authorised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Authorization {
    Bearer { token: Source },
    Basic { username: Source, password: Source },
    AuthHeader { headers: Vec<Entry> },
    QueryParams { params: Vec<Entry> },
    None,
}

/// A User Setting (integration-level, workflow-level, or a custom integration's config input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// Stable identifier stored with users' values.
    pub id: String,
    /// The code handle: the object key in `createInputs({ key: … })`.
    pub key: String,
    pub title: String,
    /// `text`, `number`, `boolean`, `password`, `field_mapping`, `custom_dropdown`, or an
    /// integration-specific type from the catalog.
    #[serde(rename = "type")]
    pub input_type: String,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tooltip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_value: Option<serde_json::Value>,
    /// Every other property, as written (type-specific ones such as `fieldMappings`,
    /// `useDynamicMapper`, `customDropdownOptions`), sorted by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, serde_json::Value>,
}

/// A workflow. The step graph (`trigger`, `steps`) is filled by the workflow compiler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Position in the integration's display order (0-based). Workflows missing from
    /// `workflowDisplayOrder` follow the listed ones, by file path.
    pub order: u32,
    pub default_enabled: bool,
    pub hidden: bool,
    /// Workflow-level User Settings.
    pub inputs: Vec<Input>,
    pub source: String,
    /// Id of the trigger step.
    pub trigger: Option<String>,
    /// Every step, in graph order from the trigger (a step, its branches, then what follows).
    pub steps: Vec<Step>,
    /// `definePermissions()` as a condition over persona metadata; `None` when unrestricted.
    pub permissions: Option<Condition>,
}

/// An API resource (`src/resources/<name>/config.ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub id: String,
    pub name: String,
    /// `user` (`UserLevelAPIResource`) or `app` (`AppLevelAPIResource`).
    pub level: String,
    pub source: String,
    /// Each `get…Config(context)` method's result by method name without `get` (e.g.
    /// `requestConfig`), with `context.*` reads recorded as references.
    pub configs: BTreeMap<String, Source>,
}

impl Build {
    /// The workflow of id `workflow_id` and the integration it belongs to (ids are unique across
    /// the build). The one lookup of a workflow by id.
    pub fn workflow(&self, workflow_id: &str) -> Option<(&Integration, &Workflow)> {
        self.integrations.values().find_map(|i| Some((i, i.workflows.get(workflow_id)?)))
    }

    /// Stamps `build_hash`. Call after every other field is final.
    pub fn seal(&mut self) {
        self.build_hash = String::new();
        self.build_hash = self.content_hash();
    }

    /// Stamps `build_hash` and returns the document as written to `out/build.json`, hashing on one
    /// thread while rendering on another (both walk the whole build; large builds take a while).
    pub fn seal_and_render(&mut self) -> Rendered {
        self.build_hash = String::new();
        let this = &*self;
        let (hash, mut document) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| this.content_hash());
            let mut document = Rendered::default();
            this.write_pretty(&mut document).expect("a build serialises");
            (hashing.join().unwrap_or_else(|_| this.content_hash()), document)
        });
        // The document was rendered with an empty hash: put the hash in its place (near the top,
        // so in the first piece).
        let empty: &[u8] = b"\"buildHash\": \"\"";
        if let Some(first) = document.pieces.first_mut()
            && let Some(at) = first.windows(empty.len()).position(|w| w == empty)
        {
            let inside = at + empty.len() - 1;
            first.splice(inside..inside, hash.bytes());
        }
        self.build_hash = hash;
        document
    }

    /// `sha256:<hex>` of the compact serialisation, as the document stands (`build_hash` must be
    /// empty for the result to be the build's hash).
    fn content_hash(&self) -> String {
        // Hash while serialising: the compact form is never held as one buffer.
        let mut hasher = HashWriter(Sha256::new());
        serde_json::to_writer(&mut hasher, self).expect("a build serialises");
        let digest = hasher.0.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Writes the document as it goes to `out/build.json` (pretty, trailing newline).
    pub fn write_pretty(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        out.write_all(b"\n")
    }

    /// The document as written to `out/build.json`: pretty, with a trailing newline.
    pub fn to_json_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a build serialises");
        text.push('\n');
        text
    }
}

/// A rendered document, held in pieces of at least [`Rendered::PIECE`] bytes: rendering a large
/// build never copies what it already wrote into a larger buffer, and needs no more memory than
/// the document's size.
#[derive(Debug, Default)]
pub struct Rendered {
    pieces: Vec<Vec<u8>>,
}

impl Rendered {
    const PIECE: usize = 1 << 20;

    /// Writes the whole document to `out`.
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.pieces.iter().try_for_each(|piece| out.write_all(piece))
    }

    /// The document in one buffer.
    pub fn into_bytes(self) -> Vec<u8> {
        self.pieces.concat()
    }
}

impl std::io::Write for Rendered {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.pieces.last_mut() {
            Some(piece) if piece.capacity() - piece.len() >= bytes.len() => {
                piece.extend_from_slice(bytes)
            }
            _ => {
                let mut piece = Vec::with_capacity(bytes.len().max(Self::PIECE));
                piece.extend_from_slice(bytes);
                self.pieces.push(piece);
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Feeds serialised bytes straight into the hash.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Build {
        Build {
            format_version: FORMAT_VERSION,
            build_hash: String::new(),
            generator: "test".into(),
            project: ProjectInfo::default(),
            persona: Persona::default(),
            events: BTreeMap::new(),
            integrations: BTreeMap::new(),
            resources: BTreeMap::new(),
            secrets: vec![],
        }
    }

    #[test]
    fn hash_depends_on_content_only() {
        let mut a = empty();
        let mut b = empty();
        a.seal();
        b.seal();
        assert_eq!(a.build_hash, b.build_hash);
        assert!(a.build_hash.starts_with("sha256:"));
        b.secrets.push("K".into());
        b.seal();
        assert_ne!(a.build_hash, b.build_hash);
    }

    #[test]
    fn hash_is_sha256_of_the_compact_document_without_hash() {
        let mut a = empty();
        a.seal();
        let mut copy = a.clone();
        copy.build_hash = String::new();
        let digest = Sha256::digest(serde_json::to_vec(&copy).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(a.build_hash, format!("sha256:{hex}"));
        let mut written = Vec::new();
        a.write_pretty(&mut written).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), a.to_json_pretty());
        let mut b = empty();
        let document = b.seal_and_render();
        assert_eq!(b.build_hash, a.build_hash, "sealing either way gives one hash");
        assert_eq!(String::from_utf8(document.into_bytes()).unwrap(), a.to_json_pretty());
    }

    #[test]
    fn a_document_larger_than_one_piece_renders_whole() {
        let mut a = empty();
        a.secrets = (0..60_000).map(|i| format!("SECRET_NUMBER_{i:08}_OF_A_LARGE_BUILD")).collect();
        let mut b = a.clone();
        a.seal();
        let document = b.seal_and_render();
        assert!(document.pieces.len() > 1, "the test must cross a piece boundary");
        assert_eq!(b.build_hash, a.build_hash);
        assert_eq!(String::from_utf8(document.into_bytes()).unwrap(), a.to_json_pretty());
    }

    #[test]
    fn round_trips_through_json() {
        let mut a = empty();
        a.seal();
        let back: Build = serde_json::from_str(&a.to_json_pretty()).unwrap();
        assert_eq!(a, back);
    }
}
