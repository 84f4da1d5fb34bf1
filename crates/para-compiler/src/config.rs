//! `config.ts`: `IIntegrationConfig` for every integration, `ICustomIntegrationConfig` for custom
//! ones (auth, API base, templates).

use para_build::{
    AuthenticationType, Authorization, CustomIntegrationConfig, Entry, Input, IntegrationConfig,
    Source,
};
use para_project::{
    Diagnostic,
    naming::{closest, custom_slug},
};
use serde_json::{Map, Value};

use crate::{
    eval::Session,
    lower::{self, Scope},
};

/// Fields every integration's config may have.
const COMMON: &[&str] =
    &["description", "overviewText", "showWatermark", "workflowDisplayOrder", "active"];

/// Fields only custom integrations use.
const CUSTOM_ONLY: &[&str] = &[
    "name",
    "accentColor",
    "authenticationType",
    "authorizationUrl",
    "accessTokenUrl",
    "scopes",
    "includeClientIdAndSecrets",
    "usePKCEInCodeExchange",
    "apiBaseUrl",
    "testEndpointPath",
    "authorization",
    "userProfileConfig",
    "requestOptions",
];

/// What the config's default export and named exports hold, plus where it lives.
pub struct RawConfig<'a> {
    pub file: &'a str,
    pub value: &'a Map<String, Value>,
    /// The custom integration's config inputs (already converted), empty otherwise.
    pub config_inputs: Vec<Input>,
}

struct Fields<'s, 'p, 'a> {
    session: &'s mut Session<'p>,
    raw: &'a RawConfig<'a>,
}

impl Fields<'_, '_, '_> {
    fn error(&mut self, code: &'static str, field: &str, message: String, help: Option<String>) {
        let at = self.session.locate(self.raw.file, &[field]);
        let mut d = Diagnostic::error(code, message).at(at);
        if let Some(help) = help {
            d = d.with_help(help);
        }
        self.session.push(d);
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.raw.value.get(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.error("invalid-field", field, format!("`{field}` must be a string"), None);
                None
            }
        }
    }

    fn boolean(&mut self, field: &str, default: bool) -> bool {
        match self.get(field) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.error(
                    "invalid-field",
                    field,
                    format!("`{field}` must be true or false"),
                    None,
                );
                default
            }
        }
    }

    /// A template-capable field as a [`Source`].
    fn template(&mut self, field: &str) -> Option<Source> {
        let value = self.get(field)?.clone();
        self.source_of(field, &value)
    }

    fn source_of(&mut self, field: &str, value: &Value) -> Option<Source> {
        let inputs: Vec<(String, String)> =
            self.raw.config_inputs.iter().map(|i| (i.key.clone(), i.id.clone())).collect();
        let scope = Scope { config_inputs: &inputs, mustache: true, ..Scope::default() };
        match lower::to_source(value, &scope) {
            Ok(source) => Some(source),
            Err(e) => {
                self.error("invalid-field", field, format!("`{field}`: {}", e.0), None);
                None
            }
        }
    }

    /// A URL field: must be an absolute http(s) URL once references are filled in. Written
    /// empty (`''`, what Paragon's generators write for a field not filled in yet), it is not
    /// set, with a warning saying what `unset` stops working; not written at all where the
    /// auth type needs it, it is an error (most likely a misspelt field).
    fn url(
        &mut self,
        field: &str,
        required_because: Option<&str>,
        example: &str,
        unset: &str,
    ) -> Option<Source> {
        let Some(source) = self.template(field) else {
            if let Some(reason) = required_because {
                self.missing(field, reason, &format!("{field}: '{example}'"));
            }
            return None;
        };
        if lower::sample_text(&source).is_some_and(|t| t.trim().is_empty()) {
            let at = self.session.locate(self.raw.file, &[field]);
            let d = match required_because {
                Some(reason) => Diagnostic::warning(
                    "empty-field",
                    format!("`{field}` is empty; it is needed {reason}: {unset} until it is set"),
                ),
                None => Diagnostic::warning(
                    "empty-field",
                    format!("`{field}` is empty: {unset} until it is set"),
                ),
            };
            self.session.push(d.at(at).with_help(format!("write `{field}: '{example}'`")));
            return None;
        }
        let starts_with_reference = match &source {
            Source::Tokenized { parts } => parts.first().is_some_and(Source::is_reference),
            other => other.is_reference(),
        };
        if !starts_with_reference
            && let Some(text) = lower::sample_text(&source)
            && let Err(problem) = check_url(&text)
        {
            self.error(
                "invalid-url",
                field,
                format!("`{field}` is not a valid URL: {problem}"),
                Some(format!("write an absolute http(s) URL such as `{example}`")),
            );
        }
        Some(source)
    }

    /// A field para does not know is most likely a typo: say so, with the closest known name.
    fn warn_unknown_fields(&mut self) {
        let known = || COMMON.iter().chain(CUSTOM_ONLY).copied();
        for field in self.raw.value.keys() {
            if known().any(|k| k == field) {
                continue;
            }
            let help = match closest(field, known(), 1).first() {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("known fields: {}", known().collect::<Vec<_>>().join(", ")),
            };
            let at = self.session.locate(self.raw.file, &[field]);
            self.session.push(
                Diagnostic::warning(
                    "unknown-field",
                    format!("config.ts sets `{field}`, which para does not use"),
                )
                .at(at)
                .with_help(help),
            );
        }
    }

    fn missing(&mut self, field: &str, reason: &str, example: &str) {
        let at = self.session.locate(self.raw.file, &[]);
        self.session.push(
            Diagnostic::error("missing-auth-field", format!("`{field}` is required {reason}"))
                .at(at)
                .with_label(format!("`{field}` missing"))
                .with_help(format!("add `{example}` to the config")),
        );
    }
}

/// Checks a URL (with references replaced by sample text).
fn check_url(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("it is empty".into());
    }
    match url::Url::parse(text) {
        Ok(url) if url.scheme() != "http" && url.scheme() != "https" => {
            Err(format!("the scheme is `{}`, expected http or https", url.scheme()))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Err("it has no host".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Converts `config.ts` of integration `key`. `workflow_order` is filled by the caller from
/// `workflowDisplayOrder`; here it is only read and checked for shape.
pub fn convert(session: &mut Session<'_>, key: &str, raw: &RawConfig<'_>) -> IntegrationConfig {
    let custom = key.strip_prefix(para_project::naming::CUSTOM_PREFIX);
    let mut f = Fields { session, raw };
    f.warn_unknown_fields();
    let description = f.string("description");
    let overview = f.string("overviewText");
    let show_watermark = f.boolean("showWatermark", true);
    let active = f.boolean("active", true);
    if let Some(order) = f.get("workflowDisplayOrder")
        && !order.is_array()
    {
        f.error(
            "invalid-field",
            "workflowDisplayOrder",
            "`workflowDisplayOrder` must be an array of workflow classes".into(),
            Some("import each workflow's default export and list them: `workflowDisplayOrder: [SyncContacts, PushTasks]`".into()),
        );
    }
    let custom = match custom {
        Some(slug) => custom_config(&mut f, slug),
        None => {
            for field in CUSTOM_ONLY {
                if f.get(field).is_some() {
                    let at = f.session.locate(raw.file, &[field]);
                    f.session.push(
                        Diagnostic::warning(
                            "ignored-field",
                            format!("`{field}` is ignored: `{key}` is a catalog integration, whose auth and API are built in"),
                        )
                        .at(at)
                        .with_help(format!(
                            "to define your own API, make a custom integration in a `custom.<slug>` folder (this one is `{key}`)"
                        )),
                    );
                }
            }
            None
        }
    };
    IntegrationConfig {
        description,
        overview,
        show_watermark,
        active,
        workflow_display_order: Vec::new(),
        custom,
    }
}

fn custom_config(f: &mut Fields<'_, '_, '_>, slug: &str) -> Option<CustomIntegrationConfig> {
    let name = f.string("name");
    match &name {
        None => {
            let at = f.session.locate(f.raw.file, &[]);
            f.session.push(
                Diagnostic::error("missing-field", "a custom integration's config needs a `name`")
                    .at(at)
                    .with_help(format!(
                        "add `name: '…'`; its slug must be `{slug}`, the folder's suffix"
                    )),
            );
        }
        Some(name) => {
            let expected = custom_slug(name);
            if expected != slug {
                let help = if expected.is_empty() {
                    "the name must contain at least one letter or digit".to_string()
                } else {
                    format!(
                        "rename the folder to `src/integrations/custom.{expected}`, or change `name` so that its slug is `{slug}`"
                    )
                };
                f.error(
                    "custom-slug-mismatch",
                    "name",
                    format!(
                        "the folder `custom.{slug}` does not match the integration's name `{name}`, whose slug is `{expected}`"
                    ),
                    Some(help),
                );
            }
        }
    }
    // `''` (not chosen yet) is no colour: the portal uses its default.
    let accent_color = f.string("accentColor").filter(|c| !c.trim().is_empty());
    if let Some(color) = &accent_color
        && !is_hex_color(color)
    {
        f.error(
            "invalid-field",
            "accentColor",
            format!("`accentColor` `{color}` is not a hex colour"),
            Some("write it as `#RRGGBB` (or `#RGB`), e.g. `#0F62FE`".into()),
        );
    }
    let auth_type = match f.get("authenticationType").cloned() {
        None => {
            f.missing(
                "authenticationType",
                "for a custom integration",
                "authenticationType: 'oauth'` (or 'basic', 'oauth_client_credential', 'ropc_app'",
            );
            None
        }
        Some(Value::String(t)) => match AuthenticationType::ALL.iter().find(|(n, _)| *n == t) {
            Some((_, auth)) => Some(*auth),
            None => {
                let allowed: Vec<_> =
                    AuthenticationType::ALL.iter().map(|(n, _)| format!("'{n}'")).collect();
                f.error(
                    "invalid-auth-type",
                    "authenticationType",
                    format!("unknown authenticationType `{t}`"),
                    Some(format!("use one of {}", allowed.join(", "))),
                );
                None
            }
        },
        Some(_) => {
            f.error(
                "invalid-field",
                "authenticationType",
                "`authenticationType` must be a string".into(),
                None,
            );
            None
        }
    };
    let needs = |auth: Option<AuthenticationType>, list: &[AuthenticationType]| {
        auth.filter(|a| list.contains(a)).map(|a| match a {
            AuthenticationType::Oauth => "for authenticationType 'oauth'",
            AuthenticationType::OauthClientCredential => {
                "for authenticationType 'oauth_client_credential'"
            }
            AuthenticationType::RopcApp => "for authenticationType 'ropc_app'",
            AuthenticationType::Basic => "for authenticationType 'basic'",
        })
    };
    use AuthenticationType::*;
    let cannot_connect = format!("users cannot connect {}", name.as_deref().unwrap_or(slug));
    let authorization_url = f.url(
        "authorizationUrl",
        needs(auth_type, &[Oauth]),
        "https://example.com/oauth/authorize",
        &cannot_connect,
    );
    let access_token_url = f.url(
        "accessTokenUrl",
        needs(auth_type, &[Oauth, OauthClientCredential, RopcApp]),
        "https://example.com/oauth/token",
        &cannot_connect,
    );
    let api_base_url = f.url(
        "apiBaseUrl",
        Some("for a custom integration"),
        "https://api.example.com/v1",
        "requests relative to it (IntegrationRequestStep, the proxy, the test endpoint) fail",
    );
    let scopes = f
        .string("scopes")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let include_client_id_and_secrets = f.boolean("includeClientIdAndSecrets", false);
    let use_pkce_in_code_exchange = f.boolean("usePKCEInCodeExchange", false);
    let test_endpoint_path = f.template("testEndpointPath");
    if let Some(path) = test_endpoint_path.as_ref().and_then(lower::sample_text)
        && (path.contains(char::is_whitespace)
            || (path.contains("://") && check_url(&path).is_err()))
    {
        f.error(
            "invalid-url",
            "testEndpointPath",
            format!("`testEndpointPath` `{path}` is not a path or URL"),
            Some("write a path relative to apiBaseUrl, such as `/me`".into()),
        );
    }
    let authorization = authorization(f, auth_type);
    let user_profile_config = f.template("userProfileConfig");
    let request_options = f.template("requestOptions");
    Some(CustomIntegrationConfig {
        name: name.unwrap_or_default(),
        slug: slug.to_string(),
        accent_color,
        authentication_type: auth_type?,
        authorization_url,
        access_token_url,
        scopes,
        include_client_id_and_secrets,
        use_pkce_in_code_exchange,
        api_base_url,
        test_endpoint_path,
        authorization: authorization?,
        user_profile_config,
        request_options,
        config_inputs: f.raw.config_inputs.clone(),
    })
}

fn is_hex_color(s: &str) -> bool {
    s.strip_prefix('#').is_some_and(|hex| {
        matches!(hex.len(), 3 | 4 | 6 | 8) && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

fn suggested_authorization(auth: Option<AuthenticationType>) -> &'static str {
    match auth {
        Some(AuthenticationType::Basic) => {
            "authorization: { type: 'basic', userName: `${credentials.username}`, password: `${credentials.password}` }"
        }
        _ => "authorization: { type: 'bearer', token: `${credentials.oauthAccessToken}` }",
    }
}

fn authorization(
    f: &mut Fields<'_, '_, '_>,
    auth: Option<AuthenticationType>,
) -> Option<Authorization> {
    let Some(value) = f.get("authorization").cloned() else {
        f.missing("authorization", "for a custom integration", suggested_authorization(auth));
        return None;
    };
    let Some(object) = value.as_object().filter(|_| lower::special(&value).is_none()) else {
        f.error(
            "invalid-field",
            "authorization",
            "`authorization` must be an object with a `type`".into(),
            Some(format!("write `{}`", suggested_authorization(auth))),
        );
        return None;
    };
    let kind = object.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let require = |f: &mut Fields<'_, '_, '_>, names: &[&str]| -> Option<Source> {
        let (name, value) =
            names.iter().find_map(|n| object.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))?;
        f.source_of(&format!("authorization.{name}"), value)
    };
    let missing = |f: &mut Fields<'_, '_, '_>, field: &str| {
        let at = f.session.locate(f.raw.file, &["authorization"]);
        f.session.push(
            Diagnostic::error(
                "missing-auth-field",
                format!("authorization of type '{kind}' needs `{field}`"),
            )
            .at(at)
            .with_help(format!("write `{}`", suggested_authorization(auth))),
        );
    };
    let entries =
        |f: &mut Fields<'_, '_, '_>, field: &str, v: Option<&Value>| -> Option<Vec<Entry>> {
            let map = v?.as_object()?;
            let mut out = Vec::new();
            for (k, v) in map {
                out.push(Entry {
                    key: k.clone(),
                    source: f.source_of(&format!("authorization.{field}.{k}"), v)?,
                });
            }
            Some(out)
        };
    match kind.as_str() {
        "bearer" => match require(f, &["token"]) {
            Some(token) => Some(Authorization::Bearer { token }),
            None => {
                missing(f, "token");
                None
            }
        },
        "basic" => {
            let username = require(f, &["userName", "username"]);
            let password = require(f, &["password"]);
            if username.is_none() {
                missing(f, "userName");
            }
            if password.is_none() {
                missing(f, "password");
            }
            Some(Authorization::Basic { username: username?, password: password? })
        }
        "auth_header" => match entries(f, "headers", object.get("headers")) {
            Some(headers) => Some(Authorization::AuthHeader { headers }),
            None => {
                missing(f, "headers");
                None
            }
        },
        "query_params" => {
            let v = object.get("params").or_else(|| object.get("queryParams"));
            match entries(f, "params", v) {
                Some(params) => Some(Authorization::QueryParams { params }),
                None => {
                    missing(f, "params");
                    None
                }
            }
        }
        "none" => Some(Authorization::None),
        other => {
            let at = f.session.locate(f.raw.file, &["authorization", "type"]);
            f.session.push(
                Diagnostic::error(
                    "invalid-auth-type",
                    format!("unknown authorization type `{other}`"),
                )
                .at(at)
                .with_help("use one of 'bearer', 'basic', 'auth_header', 'query_params', 'none'"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_after_filling_references() {
        assert!(check_url("https://x.api.acme.example/v2").is_ok());
        assert!(check_url("ftp://example.com").unwrap_err().contains("scheme"));
        assert!(check_url("not a url").is_err());
        assert!(check_url("").is_err());
    }

    #[test]
    fn hex_colours() {
        assert!(is_hex_color("#0F62FE"));
        assert!(is_hex_color("#fff"));
        assert!(!is_hex_color("blue"));
        assert!(!is_hex_color("#12345"));
    }
}
