//! The built-in integration catalog.
//!
//! One TOML file per integration lives in `crates/para-catalog/integrations/<key>.toml` (the schema
//! is documented in `docs/catalog.md`). `build.rs` embeds every file into the binary; a file is
//! parsed the first time its integration is looked up, so a build that touches two integrations
//! parses two files. `validate_all` checks every file; a test runs it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

mod validate;

pub use validate::{CATEGORIES, validate_all, validate_file};

include!(concat!(env!("OUT_DIR"), "/catalog_files.rs"));

/// User Setting types every integration accepts.
pub const BASE_INPUT_TYPES: &[&str] =
    &["text", "number", "boolean", "password", "field_mapping", "custom_dropdown"];

/// One catalog integration, as written in its TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// The folder name real projects use: `salesforce`, `googleCalendar`, `microsoftTeams`.
    pub key: String,
    pub name: String,
    pub category: String,
    /// `#RRGGBB`.
    pub accent_color: String,
    pub description: String,
    /// The provider's API documentation, where the facts in this file come from.
    pub docs_url: String,
    #[serde(default)]
    pub icon: Icon,
    pub auth: Auth,
    pub api: Api,
    /// Integration-specific User Setting types (`type: 'channel'` in `createInputs`).
    #[serde(default)]
    pub input_types: Vec<InputType>,
    /// Record types a `field_mapping` input can map for this integration (CRMs).
    #[serde(default)]
    pub record_types: Vec<String>,
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// How the provider delivers webhooks (`[webhooks]`): set when the integration has webhook
    /// triggers.
    pub webhooks: Option<Webhooks>,
    /// How para registers, renews and removes a webhook with the provider for one user's
    /// workflow (`[subscription]`): set when triggers have `webhook.subscribe`.
    pub subscription: Option<Subscription>,
}

/// The integration's icon: an SVG of ours, or a monogram drawn in the accent colour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Icon {
    /// One to three characters drawn on the accent colour (default: the name's initials).
    pub glyph: Option<String>,
    /// A whole `<svg>` document, used instead of the monogram.
    pub svg: Option<String>,
}

/// How a connected user's account is authorised.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// OAuth 2 authorization code grant.
    Oauth2 {
        authorize_url: String,
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default = "space")]
        scope_separator: String,
        /// PKCE with S256 in the code exchange.
        #[serde(default)]
        pkce: bool,
        #[serde(default)]
        client_auth: ClientAuth,
        refresh: Refresh,
        /// Extra query parameters on the authorize URL (`access_type = "offline"`).
        #[serde(default)]
        authorize_params: BTreeMap<String, String>,
        /// Values asked of the user before the redirect (a shop domain, a subdomain).
        #[serde(default)]
        fields: Vec<Field>,
    },
    /// OAuth 2 client credentials grant, the user supplying the client (or the app's own).
    Oauth2ClientCredentials {
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default = "space")]
        scope_separator: String,
        #[serde(default)]
        client_auth: ClientAuth,
        #[serde(default)]
        fields: Vec<Field>,
    },
    /// One or more keys the user pastes; `api.headers` / `api.query` say where they go.
    ApiKey { fields: Vec<Field> },
    /// HTTP Basic: `fields` name the username and password prompts (and any others).
    Basic { fields: Vec<Field> },
}

fn space() -> String {
    " ".to_string()
}

impl Auth {
    /// The name used in docs and the portal: `oauth2`, `api_key`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::Oauth2 { .. } => "oauth2",
            Auth::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
            Auth::ApiKey { .. } => "api_key",
            Auth::Basic { .. } => "basic",
        }
    }

    /// Values the user types when connecting.
    pub fn fields(&self) -> &[Field] {
        match self {
            Auth::Oauth2 { fields, .. }
            | Auth::Oauth2ClientCredentials { fields, .. }
            | Auth::ApiKey { fields }
            | Auth::Basic { fields } => fields,
        }
    }
}

/// How the OAuth client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    Body,
    /// HTTP Basic `client_id:client_secret`.
    Basic,
}

/// How access stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refresh {
    /// Access tokens expire; a refresh token renews them.
    RefreshToken,
    /// Access tokens do not expire (revoked only by the user).
    None,
    /// Access tokens expire and cannot be renewed: the user reconnects.
    Reauthorize,
}

/// A value the user types when connecting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The name templates use: `{apiKey}`.
    pub key: String,
    pub label: String,
    /// Stored encrypted and shown masked.
    #[serde(default)]
    pub secret: bool,
    pub help: Option<String>,
    pub placeholder: Option<String>,
}

/// Where requests go and how they are authorised.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// May hold `{placeholders}` (see `docs/catalog.md`).
    pub base_url: String,
    /// `GET` after connecting to check the credential: a path below `base_url` or an absolute URL.
    pub test_endpoint: Option<String>,
    /// Headers on every request. OAuth integrations get `Authorization: Bearer {accessToken}`
    /// unless they set `Authorization` here.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters on every request.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A request made once after connecting whose answer fills `{account.<name>}` placeholders.
    pub account: Option<AccountLookup>,
    /// HTTP Basic credentials on every request (templates). `basic` auth defaults to
    /// `{username}` / `{password}`; an API key sent as a Basic username sets this.
    pub basic_auth: Option<BasicAuth>,
}

/// Templates for HTTP Basic credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// `GET url`, then each `fields` value is a dotted path into the JSON answer (`0.id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountLookup {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

/// An integration-specific User Setting type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputType {
    /// The `type:` value in `createInputs`: `channel`, `folder`, `record_type`.
    pub name: String,
    pub label: String,
    pub description: String,
    /// Where the portal gets the choices from.
    pub options: Option<Options>,
}

/// A `GET` below `base_url` listing the choices of an input type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub path: String,
    /// Dotted path to the array in the answer (empty: the answer is the array).
    #[serde(default)]
    pub items: String,
    /// Field of an item stored as the value.
    pub value: String,
    /// Field of an item shown to the user.
    pub label: String,
}

/// `integration.actions.<name>(parameters)`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The code handle, camelCase: Paragon's own name where Paragon has the action.
    pub name: String,
    /// SCREAMING_SNAKE, as stored in builds: Paragon's intent where Paragon has the action.
    pub intent: String,
    /// Other camelCase names code may call the action by (names para used before), accepted
    /// like `name`.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub method: Method,
    /// Below `base_url`; `{param}` placeholders name `in = "path"` parameters.
    pub path: String,
    /// How body parameters are encoded.
    #[serde(default)]
    pub body: BodyFormat,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// The encoding of an action's body parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// A JSON object.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// `integration.triggers.<name>(parameters)`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The code handle, camelCase: Paragon's own name where Paragon has the trigger.
    pub name: String,
    /// SCREAMING_SNAKE, as stored in builds: Paragon's intent where Paragon has the trigger.
    pub intent: String,
    /// Other camelCase names code may call the trigger by, accepted like `name`.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub kind: TriggerKind,
    /// Set when `kind = "webhook"`.
    pub webhook: Option<Webhook>,
    /// Set when `kind = "polling"`.
    pub polling: Option<Polling>,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// How a trigger learns of new data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// The provider calls us.
    Webhook,
    /// We ask on an interval.
    Polling,
}

/// A webhook trigger: `event` is the provider's event name; `subscribe` (optional) the path
/// below `base_url` that registers the webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The provider's event type (what `[webhooks] event_type` reads). Several are separated by
    /// `|`; `*` is any.
    pub event: String,
    pub subscribe: Option<String>,
    /// Trigger parameters an event must match, each with where the event holds its value
    /// (a [locator](Webhooks)): `{ repo = "body:repository.full_name" }`. An event reaches a
    /// workflow only when every listed parameter the workflow set equals the event's value.
    #[serde(default)]
    pub filter: BTreeMap<String, String>,
    /// Fixed conditions, locator → value, an event must meet besides its type:
    /// `{ "body:event.channel_type" = "im" }`. A value may name trigger parameters as `{name}`,
    /// filled from the workflow's parameters before comparing, where the event holds them
    /// combined: `{ "body:repository.full_name" = "{workspace}/{repoSlug}" }`; a condition whose
    /// parameter the workflow left unset is skipped.
    #[serde(default)]
    pub when: BTreeMap<String, String>,
}

impl Webhook {
    /// Whether `event_type` (from the request) is one this trigger listens to.
    pub fn listens_to(&self, event_type: &str) -> bool {
        self.event.split('|').map(str::trim).any(|e| e == "*" || e == event_type)
    }
}

/// How a provider delivers webhooks to `POST /webhooks/{project}/{integration}` (`[webhooks]`).
///
/// Values that say where something is in a request are *locators*: `header:<Name>`,
/// `query:<name>` or `body:<dotted.path>` (`body:` alone is the whole body); several separated
/// by `|` are tried in order. Inside a batch (several events in one request), `body:` paths are
/// read from each event. A path segment that is a number indexes an array
/// (`body:history_items.0.id`). A form body (`application/x-www-form-urlencoded`, as Mailchimp
/// and ActiveCampaign send) is read as an object of its fields, a bracketed name being a path:
/// `data[list_id]=…` is `body:data.list_id`. Values are compared as text (a JSON number `42`
/// equals the parameter `"42"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    /// Where the webhook is configured: once for the company's app in the provider's console
    /// (`app`: one URL per integration, events routed by `account`), or per connected account
    /// (`user`: a URL per account with its own secret, registered through `webhook.subscribe`).
    pub level: WebhookLevel,
    /// How a request proves it comes from the provider.
    pub signature: Signature,
    /// Where each event's id is: a second delivery of the same id starts nothing.
    pub event_id: Option<String>,
    /// Where the event's type is, matched against each trigger's `webhook.event`. Needed unless
    /// every trigger listens to `*` (Dropbox's notifications carry no type).
    pub event_type: Option<String>,
    /// Where the account the event belongs to is, and the credential field it must equal.
    pub account: Option<AccountMatch>,
    /// One request carries several events: the locator of the array (`body:` for a body that
    /// is an array).
    pub batch: Option<String>,
    /// The handshake the provider sends to check the URL.
    pub challenge: Option<Challenge>,
    /// What the company configures in the provider's console (for `app`), shown in the docs.
    #[serde(default)]
    pub setup: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookLevel {
    App,
    User,
}

/// A webhook signature scheme.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub scheme: SignatureScheme,
    /// Where the signature (or token) is: a locator, usually `header:<Name>`.
    #[serde(default)]
    pub from: String,
    /// Text before the signature in its header (`sha256=`, `v0=`), removed before comparing.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// What is signed: a template over `{body}` (the raw bytes), `{timestamp}`, `{method}`,
    /// `{url}` (the URL the provider called, as configured) and `{form}` (the form fields sorted
    /// by name, each name then value). Default `{body}`.
    #[serde(default = "body_template")]
    pub signed: String,
    /// The signature header is a list of `key=value` pairs (`t=…,v1=…`): the signature is the
    /// value of this key (any of several), the timestamp of `timestamp_key`.
    pub signature_key: Option<String>,
    pub timestamp_key: Option<String>,
    /// Where the timestamp is, when not in the signature header (a locator).
    pub timestamp: Option<String>,
    #[serde(default)]
    pub timestamp_unit: TimestampUnit,
    /// How old (or how far ahead) a timestamp may be, in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: u32,
    /// Which secret signs: the company's webhook secret for the app (`app`), the OAuth app's
    /// client secret (`client_secret`), or the secret made for each registered URL (`hook`).
    #[serde(default)]
    pub secret: SecretSource,
    /// How the secret's text becomes the HMAC key: as its bytes (`text`, the default), or
    /// decoded from hex (`hex`: Close hands out its signature keys hex-encoded and signs with the
    /// decoded bytes) or base64 (`base64`).
    #[serde(default)]
    pub secret_encoding: SecretEncoding,
}

fn body_template() -> String {
    "{body}".into()
}

fn default_tolerance() -> u32 {
    300
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    HmacSha256,
    HmacSha1,
    /// The request carries the secret itself (`X-Gitlab-Token`), compared in constant time.
    Token,
    /// No signature: only a per-account URL, whose path holds a random secret, is accepted.
    UrlSecret,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampUnit {
    #[default]
    Seconds,
    Milliseconds,
    /// An RFC 3339 date and time (`2026-01-01T00:00:00-08:00`): Box's `BOX-DELIVERY-TIMESTAMP`.
    /// Signed as the text received.
    Rfc3339,
}

/// How a webhook secret's text is turned into the HMAC key ([`Signature::secret_encoding`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretEncoding {
    /// The secret's UTF-8 bytes.
    #[default]
    Text,
    /// The bytes the secret spells in hex.
    Hex,
    /// The bytes the secret spells in standard base64.
    Base64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    #[default]
    App,
    ClientSecret,
    Hook,
}

/// `account = { from = "body:team_id", credential = "account.teamId" }`: the event's account id
/// and the dotted path in a credential's provider data (its `account` lookup and non-secret
/// connect fields) that must equal it. `token.<field>` names a field of the OAuth token
/// response (`token.account_id` for Dropbox, `token.workspace_id` for Notion, whose accounts
/// cannot be looked up with a `GET`): para keeps that one non-secret field in the credential's
/// provider data when connecting, so events can be routed without opening the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountMatch {
    pub from: String,
    pub credential: String,
}

/// A provider's URL check, answered without starting anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Challenge {
    /// Slack: a signed `{"type":"url_verification","challenge":…}`, answered with the challenge.
    Slack,
    /// Zoom: a signed `endpoint.url_validation` with `payload.plainToken`, answered with it and
    /// its HMAC-SHA256 under the secret (`encryptedToken`, hex).
    Zoom,
    /// Microsoft Graph: `?validationToken=…`, echoed as text.
    Graph,
    /// Dropbox: `GET ?challenge=…`, echoed as text.
    Dropbox,
    /// monday.com: `{"challenge":…}`, echoed as JSON.
    Monday,
    /// Smartsheet: the `Smartsheet-Hook-Challenge` header, echoed in `Smartsheet-Hook-Response`
    /// and as `{"smartsheetHookResponse":…}`.
    Smartsheet,
    /// Trello: a `HEAD` when the webhook is made, answered 200.
    Trello,
    /// Google push channels: `X-Goog-Resource-State: sync` when the channel opens, answered 200.
    Google,
    /// Mailchimp: a `GET` to the URL when the webhook is made, answered 200 (a webhook whose
    /// URL does not answer it is not created).
    Mailchimp,
    /// Notion: an unsigned `{"verification_token":…}` POSTed once when the subscription is made,
    /// answered 200 without starting anything. The token is the secret later events are signed
    /// with: the company copies it into the integration's settings (to verify the subscription)
    /// and into para as the webhook secret. para keeps it sealed as a `verification` event
    /// (never logs it); no page shows it yet.
    Notion,
}

/// How para registers a webhook with the provider through its API, with the user's credential,
/// when a workflow whose trigger has `webhook.subscribe` becomes active for them, and removes it
/// when the workflow is turned off or the account disconnected (`[subscription]`).
///
/// Paths and bodies are templates. A string placeholder is replaced by text: `{url}` (the
/// per-account URL para made, `<public URL>/webhooks/<project>/<integration>/<id>`), `{secret}`
/// (the signing secret para chose for it), `{event}` (the trigger's `webhook.event`; several
/// joined with `,`), `{id}` (the provider's id of the registration), `{expires}` (RFC 3339, now +
/// `lifetime_seconds`) and `{<parameter>}` (the trigger's parameters as the workflow set them).
/// In a body, a string that is exactly `{#name}` is inserted as a JSON number (Jira's webhook
/// ids), and an array element that is exactly `{event}` becomes one element per event.
///
/// The answer is read with [locators](Webhooks): `body:<dotted.path>` (a number indexes an
/// array) or `header:<Name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The registration's method, sent to the trigger's `webhook.subscribe` path. Default
    /// `POST`.
    #[serde(default = "post")]
    pub method: String,
    /// How bodies are encoded: `json` (default) or `form` (each field `name=value`; an array
    /// field sends its name once per element, `enabled_events[]=a&enabled_events[]=b`, as Stripe
    /// takes them).
    #[serde(default)]
    pub format: BodyFormat,
    /// The registration's body (a template, see above).
    pub body: Option<toml::Value>,
    /// Where the answer holds the provider's id of the registration (`body:id`).
    pub id: String,
    /// Where the answer holds the signing secret the provider chose (Stripe's `body:secret`).
    /// Without it, para chooses one when `[webhooks] signature.secret = "hook"` and sends it as
    /// `{secret}`.
    pub secret: Option<String>,
    /// Where an answer (registration or renewal) holds when the registration expires: RFC 3339
    /// text, or a number of milliseconds since the epoch (seconds when below 10¹¹).
    pub expires: Option<String>,
    /// How long a registration lasts when the answer does not say (`expires`), in seconds.
    pub lifetime_seconds: Option<u64>,
    /// How an expiring registration is kept alive, before it expires.
    pub renew: Option<SubscriptionCall>,
    /// How a registration is removed (`{id}` names it).
    pub remove: SubscriptionCall,
}

/// One call of a [`Subscription`] besides the registration: a method, a path below `base_url`
/// and an optional body, all templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionCall {
    pub method: String,
    pub path: String,
    pub body: Option<toml::Value>,
}

fn post() -> String {
    "POST".into()
}

/// A polling trigger: `GET path` every `interval_seconds`; `items` is the dotted path to the
/// array in the answer and `id` the field that tells items apart (new ids start runs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Polling {
    pub path: String,
    #[serde(default)]
    pub items: String,
    pub id: String,
    pub interval_seconds: u32,
}

/// An action's or trigger's parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// The key in the parameters object. A name ending in `*` is a prefix: `field-*` accepts
    /// `field-subject` and sends it as body field `subject`.
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    #[serde(default)]
    pub required: bool,
    #[serde(rename = "in", default)]
    pub location: Location,
    #[serde(default)]
    pub description: String,
    /// The provider's name for the value when it differs from `name` (Paragon's name for the
    /// parameter): a query parameter's name, or a body field, where dots nest
    /// (`properties.email` sends `{"properties": {"email": …}}`). Not for path or prefix
    /// parameters.
    #[serde(default)]
    pub field: Option<String>,
}

impl Parameter {
    /// Where the value goes: `field` when set, else `name`.
    pub fn sent_as(&self) -> &str {
        self.field.as_deref().unwrap_or(&self.name)
    }

    /// Whether `key` in a step's parameters object gives this parameter: its name, or the
    /// provider's name for it.
    pub fn is_given_by(&self, key: &str) -> bool {
        self.name == key || self.field.as_deref() == Some(key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Number,
    Boolean,
    Object,
    Array,
    Any,
}

impl ParamType {
    /// The TypeScript type for declarations.
    pub fn typescript(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Object => "Record<string, unknown>",
            ParamType::Array => "unknown[]",
            ParamType::Any => "unknown",
        }
    }
}

/// Where a parameter goes in the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    Path,
    Query,
    #[default]
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Method {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
    #[serde(rename = "DELETE")]
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

fn answers_to(called: &str, name: &str, aliases: &[String], intent: &str) -> bool {
    called == name
        || called == intent
        || aliases.iter().any(|a| a == called)
        || intent_in_camel_case(intent).eq(called.chars())
}

/// `GOOGLE_DRIVE_TRIGGER_FILE_CREATED` as `googleDriveTriggerFileCreated`: the name Paragon's
/// generated code gives an operation of an integration whose intents carry its prefix.
pub fn intent_in_camel_case(intent: &str) -> impl Iterator<Item = char> + '_ {
    intent.split('_').filter(|w| !w.is_empty()).enumerate().flat_map(|(i, word)| {
        word.chars().enumerate().map(move |(j, c)| {
            if i > 0 && j == 0 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }
        })
    })
}

impl Integration {
    /// The action code calls `name`: its name, one of its aliases, its intent
    /// (`integration.actions.SLACK_SEND_MESSAGE`) or its intent in camelCase
    /// (`slackSendMessage`), the forms Paragon's generated code uses.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| answers_to(name, &a.name, &a.aliases, &a.intent))
    }

    /// The trigger code calls `name`: its name, one of its aliases, its intent
    /// (`integration.triggers.SALESFORCE_TRIGGER_RECORD_CREATED` in `integration.withTrigger`)
    /// or its intent in camelCase (`googleDriveTriggerFileCreated`).
    pub fn trigger(&self, name: &str) -> Option<&Trigger> {
        self.triggers.iter().find(|t| answers_to(name, &t.name, &t.aliases, &t.intent))
    }

    /// Every User Setting type this integration accepts: the base ones, then its own.
    pub fn allowed_input_types(&self) -> impl Iterator<Item = &str> {
        BASE_INPUT_TYPES.iter().copied().chain(self.input_types.iter().map(|t| t.name.as_str()))
    }

    /// The icon as an SVG document.
    pub fn icon_svg(&self) -> String {
        if let Some(svg) = &self.icon.svg {
            return svg.clone();
        }
        let glyph = match &self.icon.glyph {
            Some(g) => g.clone(),
            None => self
                .name
                .split(|c: char| !c.is_alphanumeric())
                .filter_map(|w| w.chars().next())
                .take(2)
                .collect::<String>()
                .to_uppercase(),
        };
        let size = if glyph.chars().count() > 2 { 15 } else { 20 };
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 48 48\" role=\"img\" aria-label=\"{name}\">\
<rect width=\"48\" height=\"48\" rx=\"11\" fill=\"{color}\"/>\
<text x=\"24\" y=\"24\" dy=\"0.35em\" text-anchor=\"middle\" font-family=\"system-ui,sans-serif\" font-weight=\"700\" font-size=\"{size}\" fill=\"#fff\">{glyph}</text></svg>",
            name = escape(&self.name),
            color = self.accent_color,
            glyph = escape(&glyph),
        )
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn parsed() -> &'static [OnceLock<Integration>] {
    static PARSED: OnceLock<Vec<OnceLock<Integration>>> = OnceLock::new();
    PARSED.get_or_init(|| FILES.iter().map(|_| OnceLock::new()).collect())
}

/// Parses one embedded file. The catalog test guarantees every file parses, so a failure here
/// is a bug in a file that skipped the test suite.
fn entry(index: usize) -> &'static Integration {
    parsed()[index].get_or_init(|| {
        let (key, text) = FILES[index];
        parse(text).unwrap_or_else(|e| panic!("catalog file {key}.toml is invalid: {e}"))
    })
}

fn parse(text: &str) -> Result<Integration, toml::de::Error> {
    toml::from_str(text)
}

/// Every catalog key, sorted (case-sensitively), without parsing any file.
pub fn keys() -> impl ExactSizeIterator<Item = &'static str> + Clone {
    FILES.iter().map(|(key, _)| *key)
}

/// The catalog integration with this key (exact, case-sensitive: keys are folder names).
pub fn lookup(key: &str) -> Option<&'static Integration> {
    FILES.binary_search_by(|(k, _)| (*k).cmp(key)).ok().map(entry)
}

/// Every catalog integration, sorted by key (parses every file).
pub fn all() -> impl ExactSizeIterator<Item = &'static Integration> {
    (0..FILES.len()).map(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_file_is_valid() {
        let problems = validate_all();
        assert!(problems.is_empty(), "catalog problems:\n{}", problems.join("\n"));
    }

    #[test]
    fn lookup_is_exact_and_keys_are_sorted() {
        let keys: Vec<_> = keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(lookup("slack").unwrap().name, "Slack");
        assert!(lookup("Slack").is_none());
        assert!(lookup("salesforce").unwrap().action("createRecord").is_some());
    }

    #[test]
    fn operations_answer_to_paragons_names_aliases_and_intents() {
        let gmail = lookup("gmail").unwrap();
        let thread = gmail.trigger("threadCreated").unwrap();
        for called in ["GMAIL_TRIGGER_THREAD_CREATED", "gmailTriggerThreadCreated"] {
            assert!(std::ptr::eq(gmail.trigger(called).unwrap(), thread), "{called}");
        }
        let drive = lookup("googledrive").unwrap();
        assert!(drive.trigger("googleDriveTriggerFileCreated").is_some());
        let salesforce = lookup("salesforce").unwrap();
        assert_eq!(
            salesforce.trigger("SALESFORCE_TRIGGER_RECORD_CREATED").unwrap().name,
            "recordCreated"
        );
        let slack = lookup("slack").unwrap();
        assert_eq!(slack.action("sendMessage").unwrap().intent, "SLACK_SEND_MESSAGE");
        assert!(slack.trigger("channelMessagePosted").is_some());
        assert!(slack.trigger("messageReceived").is_some(), "para's earlier name, an alias");
        assert!(gmail.trigger("gmailtriggerthreadcreated").is_none());
        assert!(gmail.trigger("threadcreated").is_none());
        let camel: String = intent_in_camel_case("GREENHOUSE_GET_CANDIDIDATE_BY_ID").collect();
        assert_eq!(camel, "greenhouseGetCandididateById");
    }

    #[test]
    fn monogram_icons_are_escaped_svg() {
        let slack = lookup("slack").unwrap();
        let svg = slack.icon_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains(&slack.accent_color));
    }
}
