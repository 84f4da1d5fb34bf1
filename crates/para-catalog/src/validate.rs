//! Checks every catalog file beyond what its types enforce: keys, URLs, templates, names.

use std::collections::BTreeSet;

use crate::{Api, Auth, FILES, Integration, Location, Parameter, TriggerKind};

/// The categories an integration may belong to (the portal and `para new integration` group by
/// them).
pub const CATEGORIES: &[&str] = &[
    "Accounting",
    "Analytics",
    "Calendar",
    "Communication",
    "CRM",
    "Developer Tools",
    "Documents",
    "E-commerce",
    "Email",
    "File Storage",
    "Forms",
    "HR",
    "Marketing",
    "Payments",
    "Productivity",
    "Project Management",
    "Support",
    "Video",
];

/// Every problem in every catalog file, each line starting with the file name.
pub fn validate_all() -> Vec<String> {
    FILES.iter().flat_map(|(key, text)| validate_file(key, text)).collect()
}

/// Every problem in one catalog file's text, `key` being its file name without `.toml`.
pub fn validate_file(key: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match crate::parse(text) {
        Ok(integration) => {
            let mut check = Check { file: key, problems: &mut problems };
            check.integration(key, &integration);
        }
        Err(e) => problems.push(format!("{key}.toml: {e}")),
    }
    problems
}

/// The placeholders a template may use.
#[derive(Clone, Default)]
struct Known {
    names: BTreeSet<String>,
    /// `{token.<field>}`: any field of the OAuth token response.
    tokens: bool,
}

impl Known {
    fn allows(&self, name: &str) -> bool {
        self.names.contains(name)
            || (self.tokens && name.strip_prefix("token.").is_some_and(|f| !f.is_empty()))
    }

    fn list(&self) -> String {
        let mut all: Vec<String> = self.names.iter().map(|k| format!("{{{k}}}")).collect();
        if self.tokens {
            all.push("{token.<field>}".into());
        }
        if all.is_empty() { "none here".into() } else { all.join(", ") }
    }
}

struct Check<'a> {
    file: &'a str,
    problems: &'a mut Vec<String>,
}

fn is_camel(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn is_snake(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_screaming(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The `{names}` in a template, or an error for an unbalanced brace.
pub(crate) fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("`}}` without `{{` in `{template}`"));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("`{{` without `}}` in `{template}`"))?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err(format!("empty or nested placeholder in `{template}`"));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Every string in a TOML value (a `[subscription]` body template), depth first.
fn toml_strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| toml_strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| toml_strings(v, out)),
        _ => {}
    }
}

/// Replaces every placeholder with a plausible value so the result can be parsed as a URL.
fn filled(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                // A placeholder that starts a URL stands for a whole origin (`{token.instance_url}`).
                out.push_str(if out.is_empty() { "https://x.example.com" } else { "x" });
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Check<'_> {
    fn problem(&mut self, what: impl std::fmt::Display) {
        self.problems.push(format!("{}.toml: {what}", self.file));
    }

    fn nonempty(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.problem(format_args!("`{field}` is empty"));
        }
    }

    /// An absolute https URL once placeholders are filled, each placeholder one of `known`.
    fn url(&mut self, field: &str, template: &str, known: &Known) {
        self.template(field, template, known);
        match url::Url::parse(&filled(template)) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            Ok(u) => self.problem(format_args!(
                "`{field}` = `{template}` must be an https URL (scheme is `{}`)",
                u.scheme()
            )),
            Err(e) => self.problem(format_args!("`{field}` = `{template}` is not a URL: {e}")),
        }
    }

    fn template(&mut self, field: &str, template: &str, known: &Known) {
        match placeholders(template) {
            Ok(names) => {
                for name in names {
                    if !known.allows(name) {
                        self.problem(format_args!(
                            "`{field}` uses `{{{name}}}`, which is not one of: {}",
                            known.list()
                        ));
                    }
                }
            }
            Err(e) => self.problem(format_args!("`{field}`: {e}")),
        }
    }

    /// A path below the API base: starts with `/`, parses once appended.
    fn path(&mut self, field: &str, path: &str) {
        if !path.starts_with('/') {
            self.problem(format_args!("`{field}` = `{path}` must start with `/`"));
            return;
        }
        if path.contains("..") || path.contains("//") || path.contains(char::is_whitespace) {
            self.problem(format_args!("`{field}` = `{path}` has `..`, `//` or whitespace"));
        }
        if let Err(e) = placeholders(path) {
            self.problem(format_args!("`{field}`: {e}"));
        } else if let Err(e) = url::Url::parse(&format!("https://api.example.com{}", filled(path)))
        {
            self.problem(format_args!("`{field}` = `{path}` does not form a URL: {e}"));
        }
    }

    fn integration(&mut self, file_key: &str, i: &Integration) {
        if i.key != file_key {
            self.problem(format_args!(
                "`key` is `{}` but the file is named `{file_key}.toml`",
                i.key
            ));
        }
        if !is_camel(&i.key) {
            self.problem(format_args!(
                "`key` `{}` must be camelCase ASCII letters and digits",
                i.key
            ));
        }
        self.nonempty("name", &i.name);
        self.nonempty("description", &i.description);
        if !CATEGORIES.contains(&i.category.as_str()) {
            self.problem(format_args!(
                "`category` `{}` is not one of: {}",
                i.category,
                CATEGORIES.join(", ")
            ));
        }
        let hex = i.accent_color.strip_prefix('#').unwrap_or("");
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            self.problem(format_args!("`accent_color` `{}` must be `#RRGGBB`", i.accent_color));
        }
        self.url("docs_url", &i.docs_url, &Known::default());
        if let Some(glyph) = &i.icon.glyph
            && !(1..=3).contains(&glyph.chars().count())
        {
            self.problem("`icon.glyph` must be 1 to 3 characters");
        }
        if let Some(svg) = &i.icon.svg {
            let lower = svg.to_ascii_lowercase();
            if !lower.trim_start().starts_with("<svg") || !lower.trim_end().ends_with("</svg>") {
                self.problem("`icon.svg` must be one `<svg>…</svg>` element");
            }
            if lower.contains("<script") || lower.contains(" on") || lower.contains("javascript:") {
                self.problem("`icon.svg` must not contain scripts or event handlers");
            }
        }
        let known = self.auth(&i.auth, &i.api);
        self.api(&i.api, &i.auth, &known);
        self.inputs(i);
        self.operations(i);
        self.webhooks(i);
        self.subscription(i);
    }

    /// Checks `auth` and returns the placeholders API templates may use.
    fn auth(&mut self, auth: &Auth, api: &Api) -> Known {
        let mut fields = Known::default();
        for field in auth.fields() {
            if !is_camel(&field.key) {
                self.problem(format_args!("auth field key `{}` must be camelCase", field.key));
            }
            if !fields.names.insert(field.key.clone()) {
                self.problem(format_args!("auth field `{}` appears twice", field.key));
            }
            self.nonempty("auth.fields.label", &field.label);
        }
        let mut known = fields.clone();
        if let Some(account) = &api.account {
            for name in account.fields.keys() {
                known.names.insert(format!("account.{name}"));
            }
        }
        let scopes_check = |this: &mut Self, scopes: &[String], separator: &str| {
            if !matches!(separator, " " | "," | "+") {
                this.problem(format_args!(
                    "`scope_separator` `{separator}` must be \" \", \",\" or \"+\""
                ));
            }
            for scope in scopes {
                if scope.is_empty()
                    || scope.contains(char::is_whitespace)
                    || scope.contains(separator)
                {
                    this.problem(format_args!(
                        "scope `{scope}` is empty or contains the separator"
                    ));
                }
            }
        };
        match auth {
            Auth::Oauth2 {
                authorize_url,
                token_url,
                scopes,
                scope_separator,
                authorize_params,
                ..
            } => {
                self.url("auth.authorize_url", authorize_url, &fields);
                self.url("auth.token_url", token_url, &fields);
                scopes_check(self, scopes, scope_separator);
                for reserved in [
                    "client_id",
                    "redirect_uri",
                    "response_type",
                    "state",
                    "scope",
                    "code_challenge",
                ] {
                    if authorize_params.contains_key(reserved) {
                        self.problem(format_args!(
                            "`auth.authorize_params` must not set `{reserved}` (para sets it)"
                        ));
                    }
                }
                known.names.insert("accessToken".into());
                known.tokens = true;
            }
            Auth::Oauth2ClientCredentials { token_url, scopes, scope_separator, .. } => {
                self.url("auth.token_url", token_url, &fields);
                scopes_check(self, scopes, scope_separator);
                known.names.insert("accessToken".into());
                known.tokens = true;
            }
            Auth::ApiKey { fields: list } | Auth::Basic { fields: list } => {
                if list.is_empty() {
                    self.problem(format_args!("`{}` auth needs at least one field", auth.kind()));
                }
                if matches!(auth, Auth::Basic { .. })
                    && !(fields.names.contains("username") && fields.names.contains("password"))
                {
                    self.problem("`basic` auth needs fields with keys `username` and `password`");
                }
            }
        }
        known
    }

    fn api(&mut self, api: &Api, auth: &Auth, known: &Known) {
        self.url("api.base_url", &api.base_url, known);
        if api.base_url.ends_with('/') {
            self.problem("`api.base_url` must not end with `/`");
        }
        if let Some(test) = &api.test_endpoint {
            if test.starts_with('/') {
                self.path("api.test_endpoint", test);
                self.template("api.test_endpoint", test, known);
            } else {
                self.url("api.test_endpoint", test, known);
            }
        }
        if let Some(account) = &api.account {
            let mut before = known.clone();
            before.names.retain(|k| !k.starts_with("account."));
            // A path is below `base_url` (the lookup goes where the API's requests go).
            if account.url.starts_with('/') {
                self.path("api.account.url", &account.url);
            } else {
                self.url("api.account.url", &account.url, &before);
            }
            if account.fields.is_empty() {
                self.problem("`api.account.fields` is empty");
            }
        }
        for (name, value) in &api.headers {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                self.problem(format_args!("header name `{name}` is not a valid HTTP header name"));
            }
            self.template(&format!("api.headers.{name}"), value, known);
        }
        for (name, value) in &api.query {
            self.template(&format!("api.query.{name}"), value, known);
        }
        // A key the user pastes must go somewhere.
        if let Auth::ApiKey { fields } = auth {
            let mut used = api.base_url.clone();
            for v in api.headers.values().chain(api.query.values()) {
                used.push_str(v);
            }
            if let Some(basic) = &api.basic_auth {
                used.push_str(&basic.username);
                used.push_str(&basic.password);
            }
            for field in fields {
                if !used.contains(&format!("{{{}}}", field.key)) {
                    self.problem(format_args!(
                        "api key field `{}` is not used in `api.base_url`, `api.headers`, `api.query` or `api.basic_auth`",
                        field.key
                    ));
                }
            }
        }
        if let Some(basic) = &api.basic_auth {
            self.template("api.basic_auth.username", &basic.username, known);
            self.template("api.basic_auth.password", &basic.password, known);
        }
    }

    fn inputs(&mut self, i: &Integration) {
        let mut names = BTreeSet::new();
        for t in &i.input_types {
            if !is_snake(&t.name) {
                self.problem(format_args!("input type `{}` must be snake_case", t.name));
            }
            if crate::BASE_INPUT_TYPES.contains(&t.name.as_str()) {
                self.problem(format_args!("input type `{}` is a base type; remove it", t.name));
            }
            if !names.insert(t.name.as_str()) {
                self.problem(format_args!("input type `{}` appears twice", t.name));
            }
            self.nonempty("input_types.label", &t.label);
            self.nonempty("input_types.description", &t.description);
            if let Some(options) = &t.options {
                self.path(&format!("input_types.{}.options.path", t.name), &options.path);
                self.nonempty("input_types.options.value", &options.value);
                self.nonempty("input_types.options.label", &options.label);
            }
        }
        let mut seen = BTreeSet::new();
        for r in &i.record_types {
            self.nonempty("record_types", r);
            if !seen.insert(r.as_str()) {
                self.problem(format_args!("record type `{r}` appears twice"));
            }
        }
    }

    fn operations(&mut self, i: &Integration) {
        let mut names = BTreeSet::new();
        let mut intents = BTreeSet::new();
        for action in &i.actions {
            let what = format!("action `{}`", action.name);
            self.name_and_intent(&what, &action.name, &action.intent, &mut names, &mut intents);
            self.aliases(&what, &action.aliases, &action.intent, &mut names);
            self.nonempty(&format!("{what} title"), &action.title);
            self.path(&format!("{what} path"), &action.path);
            self.parameters(&what, &action.parameters, Some(&action.path));
        }
        for trigger in &i.triggers {
            let what = format!("trigger `{}`", trigger.name);
            self.name_and_intent(&what, &trigger.name, &trigger.intent, &mut names, &mut intents);
            self.aliases(&what, &trigger.aliases, &trigger.intent, &mut names);
            self.nonempty(&format!("{what} title"), &trigger.title);
            match (trigger.kind, &trigger.webhook, &trigger.polling) {
                (TriggerKind::Webhook, Some(webhook), None) => {
                    self.nonempty(&format!("{what} webhook.event"), &webhook.event);
                    for (name, locator) in &webhook.filter {
                        if !trigger.parameters.iter().any(|p| &p.name == name) {
                            self.problem(format_args!(
                                "{what}: `webhook.filter` names `{name}`, which is not a parameter"
                            ));
                        }
                        self.locator(&format!("{what} webhook.filter.{name}"), locator);
                    }
                    for (locator, value) in &webhook.when {
                        self.locator(&format!("{what} webhook.when"), locator);
                        match placeholders(value) {
                            Ok(names) => {
                                for name in names {
                                    if !trigger.parameters.iter().any(|p| p.name == name) {
                                        self.problem(format_args!(
                                            "{what}: `webhook.when` value `{value}` names `{{{name}}}`, which is not a parameter"
                                        ));
                                    }
                                }
                            }
                            Err(e) => self.problem(format_args!(
                                "{what}: `webhook.when` value `{value}`: {e}"
                            )),
                        }
                    }
                    if let Some(path) = &webhook.subscribe {
                        self.path(&format!("{what} webhook.subscribe"), path);
                    }
                }
                (TriggerKind::Polling, None, Some(polling)) => {
                    self.path(&format!("{what} polling.path"), &polling.path);
                    self.nonempty(&format!("{what} polling.id"), &polling.id);
                    if polling.interval_seconds < 10 {
                        self.problem(format_args!(
                            "{what}: `polling.interval_seconds` is below 10"
                        ));
                    }
                }
                (kind, _, _) => self.problem(format_args!(
                    "{what}: `kind = \"{}\"` needs a `{0}` table and no other",
                    if kind == TriggerKind::Webhook { "webhook" } else { "polling" }
                )),
            }
            let path = trigger.polling.as_ref().map(|p| p.path.as_str());
            self.parameters(&what, &trigger.parameters, path);
        }
    }

    /// `[webhooks]`: required by webhook triggers, and consistent in itself.
    fn webhooks(&mut self, i: &Integration) {
        use crate::{SecretSource, SignatureScheme, WebhookLevel};
        let has_webhook_triggers = i.triggers.iter().any(|t| t.kind == TriggerKind::Webhook);
        let Some(w) = &i.webhooks else {
            if has_webhook_triggers {
                self.problem(
                    "webhook triggers need a `[webhooks]` table (how the provider delivers them)",
                );
            }
            return;
        };
        let s = &w.signature;
        match s.scheme {
            SignatureScheme::HmacSha256 | SignatureScheme::HmacSha1 | SignatureScheme::Token => {
                self.locator("webhooks.signature.from", &s.from)
            }
            SignatureScheme::UrlSecret => {
                if w.level == WebhookLevel::App {
                    self.problem("webhooks: `scheme = \"url_secret\"` needs `level = \"user\"` (an app-level URL has no secret)");
                }
            }
        }
        if s.secret == SecretSource::Hook && w.level == WebhookLevel::App {
            self.problem("webhooks: `secret = \"hook\"` needs `level = \"user\"`");
        }
        if s.timestamp_key.is_some() && s.signature_key.is_none() {
            self.problem("webhooks: `timestamp_key` needs `signature_key`");
        }
        let mut rest = s.signed.clone();
        for part in ["{body}", "{timestamp}", "{method}", "{url}", "{form}"] {
            rest = rest.replace(part, "");
        }
        if rest.contains('{') || rest.contains('}') {
            self.problem(format_args!(
                "webhooks.signature.signed `{}`: only {{body}}, {{timestamp}}, {{method}}, {{url}} and {{form}} can be used",
                s.signed
            ));
        }
        let timed = s.signed.contains("{timestamp}");
        if timed && s.timestamp.is_none() && s.timestamp_key.is_none() {
            self.problem(
                "webhooks.signature.signed uses {timestamp}: set `timestamp` or `timestamp_key`",
            );
        }
        if let Some(t) = &s.timestamp {
            self.locator("webhooks.signature.timestamp", t);
        }
        for (field, value) in [
            ("webhooks.event_id", &w.event_id),
            ("webhooks.event_type", &w.event_type),
            ("webhooks.batch", &w.batch),
        ] {
            if let Some(v) = value {
                self.locator(field, v);
            }
        }
        if let Some(a) = &w.account {
            self.locator("webhooks.account.from", &a.from);
            let field = a.credential.split('.').next().unwrap_or_default();
            let connect_field = i.auth.fields().iter().any(|f| f.key == field && !f.secret);
            if !(a.credential.starts_with("account.")
                || a.credential.starts_with("token.")
                || connect_field)
            {
                self.problem(format_args!(
                    "webhooks.account.credential `{}`: name `account.<field>` (the account lookup), `token.<field>` (the OAuth token response) or a non-secret connect field",
                    a.credential
                ));
            }
        }
        if w.level == WebhookLevel::App && w.account.is_none() {
            self.problem(
                "webhooks: `level = \"app\"` needs `account` (which user an event belongs to)",
            );
        }
        if w.level == WebhookLevel::App && w.setup.trim().is_empty() {
            self.problem("webhooks: `level = \"app\"` needs `setup` (what to configure in the provider's console)");
        }
        let typed = i.triggers.iter().filter_map(|t| t.webhook.as_ref()).any(|h| h.event != "*");
        if typed && w.event_type.is_none() {
            self.problem("webhooks: `event_type` is needed to tell triggers apart");
        }
    }

    /// `[subscription]`: calls that can be made, templates that name only what they can be
    /// filled with, and an expiry that is renewed.
    fn subscription(&mut self, i: &Integration) {
        use crate::{SecretSource, WebhookLevel};
        let Some(s) = &i.subscription else { return };
        let subscribing: Vec<&crate::Trigger> = i
            .triggers
            .iter()
            .filter(|t| t.webhook.as_ref().is_some_and(|w| w.subscribe.is_some()))
            .collect();
        if subscribing.is_empty() {
            self.problem("`[subscription]` is set but no trigger has `webhook.subscribe`");
        }
        let hook_secret = match &i.webhooks {
            Some(w) if w.level == WebhookLevel::App => {
                self.problem("`[subscription]` needs `[webhooks] level = \"user\"` (an app-level webhook is configured in the provider's console)");
                false
            }
            Some(w) => w.signature.secret == SecretSource::Hook,
            None => true,
        };
        for (field, method) in [
            ("subscription.method", Some(&s.method)),
            ("subscription.renew.method", s.renew.as_ref().map(|r| &r.method)),
            ("subscription.remove.method", Some(&s.remove.method)),
        ] {
            if let Some(m) = method
                && !matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE")
            {
                self.problem(format_args!(
                    "`{field}` = `{m}`: use GET, POST, PUT, PATCH or DELETE"
                ));
            }
        }
        for (field, locator) in [
            ("subscription.id", Some(&s.id)),
            ("subscription.secret", s.secret.as_ref()),
            ("subscription.expires", s.expires.as_ref()),
        ] {
            let Some(locator) = locator else { continue };
            let answer = locator.split('|').all(|one| match one.split_once(':') {
                Some(("body", _)) => true,
                Some(("header", name)) => !name.is_empty(),
                _ => false,
            });
            if !answer {
                self.problem(format_args!(
                    "`{field}` = `{locator}`: an answer is read with `body:<dotted.path>` or `header:<Name>`"
                ));
            }
        }
        let expiring = s.expires.is_some() || s.lifetime_seconds.is_some();
        if expiring && s.renew.is_none() {
            self.problem(
                "`[subscription]` expires (`expires` or `lifetime_seconds`) but has no `renew`",
            );
        }
        if s.renew.is_some() && !expiring {
            self.problem(
                "`subscription.renew` needs `expires` or `lifetime_seconds` (when to renew)",
            );
        }
        if s.secret.is_some() && !hook_secret {
            self.problem("`subscription.secret` needs `[webhooks] signature.secret = \"hook\"`");
        }
        // Every template, with the placeholders it may not use.
        let mut templates: Vec<(String, String, &[&str])> = Vec::new();
        let strings = |field: &str, body: &Option<toml::Value>, banned: &'static [&'static str]| {
            let mut found = Vec::new();
            if let Some(b) = body {
                toml_strings(b, &mut found);
            }
            found.into_iter().map(|t| (field.to_string(), t, banned)).collect::<Vec<_>>()
        };
        templates.extend(strings("subscription.body", &s.body, &["id"]));
        templates.extend(strings("subscription.remove.body", &s.remove.body, &[]));
        templates.push(("subscription.remove.path".into(), s.remove.path.clone(), &[]));
        if let Some(r) = &s.renew {
            templates.extend(strings("subscription.renew.body", &r.body, &[]));
            templates.push(("subscription.renew.path".into(), r.path.clone(), &[]));
            self.path("subscription.renew.path", &r.path);
        }
        self.path("subscription.remove.path", &s.remove.path);
        let mut removes_by_id = false;
        for (field, template, banned) in &templates {
            let Ok(names) = placeholders(template) else {
                self.problem(format_args!("`{field}`: unbalanced braces in `{template}`"));
                continue;
            };
            for name in names {
                let name = name.strip_prefix('#').unwrap_or(name);
                if field.starts_with("subscription.remove") && name == "id" {
                    removes_by_id = true;
                }
                if banned.contains(&name) {
                    self.problem(format_args!(
                        "`{field}` uses `{{{name}}}`, which is not known yet"
                    ));
                    continue;
                }
                if name == "secret" && (!hook_secret || s.secret.is_some()) {
                    self.problem(format_args!(
                        "`{field}` uses `{{secret}}`, but para chooses no secret (`[webhooks] signature.secret` is not \"hook\", or `subscription.secret` reads the provider's)"
                    ));
                }
                if ["url", "secret", "event", "id", "expires"].contains(&name) {
                    continue;
                }
                for t in &subscribing {
                    if !t.parameters.iter().any(|p| p.name == name) {
                        self.problem(format_args!(
                            "`{field}` uses `{{{name}}}`, which is not a parameter of trigger `{}`",
                            t.name
                        ));
                    }
                }
            }
        }
        if !removes_by_id {
            self.problem(
                "`subscription.remove` must name the registration with `{id}` (path or body)",
            );
        }
    }

    /// `header:<Name>`, `query:<name>` or `body:<dotted.path>`, or several separated by `|`.
    fn locator(&mut self, field: &str, value: &str) {
        let ok = value.split('|').all(|one| match one.split_once(':') {
            Some(("header" | "query", name)) => !name.is_empty(),
            Some(("body", _)) => true,
            _ => false,
        });
        if !ok {
            self.problem(format_args!(
                "{field}: `{value}` is not a locator (`header:<Name>`, `query:<name>` or `body:<dotted.path>`)"
            ));
        }
    }

    fn name_and_intent<'n>(
        &mut self,
        what: &str,
        name: &'n str,
        intent: &'n str,
        names: &mut BTreeSet<&'n str>,
        intents: &mut BTreeSet<&'n str>,
    ) {
        if !is_camel(name) {
            self.problem(format_args!("{what}: the name must be camelCase"));
        }
        if !names.insert(name) {
            self.problem(format_args!("{what}: the name appears twice among actions and triggers"));
        }
        if !is_screaming(intent) {
            self.problem(format_args!("{what}: intent `{intent}` must be SCREAMING_SNAKE_CASE"));
        }
        if !intents.insert(intent) {
            self.problem(format_args!("{what}: intent `{intent}` appears twice"));
        }
    }

    /// Aliases are camelCase and share the names' space: one name calls one operation. The
    /// intent in camelCase is accepted without being listed.
    fn aliases<'n>(
        &mut self,
        what: &str,
        aliases: &'n [String],
        intent: &str,
        names: &mut BTreeSet<&'n str>,
    ) {
        for alias in aliases {
            if !is_camel(alias) {
                self.problem(format_args!("{what}: alias `{alias}` must be camelCase"));
            }
            if crate::intent_in_camel_case(intent).eq(alias.chars()) {
                self.problem(format_args!(
                    "{what}: alias `{alias}` is the intent in camelCase, which is accepted without it"
                ));
            }
            if !names.insert(alias) {
                self.problem(format_args!(
                    "{what}: alias `{alias}` appears twice among actions' and triggers' names"
                ));
            }
        }
    }

    fn parameters(&mut self, what: &str, parameters: &[Parameter], path: Option<&str>) {
        let mut names = BTreeSet::new();
        for p in parameters {
            if !names.insert(p.name.as_str()) {
                self.problem(format_args!("{what}: parameter `{}` appears twice", p.name));
            }
            let base = p.name.strip_suffix('*').unwrap_or(&p.name);
            if base.is_empty()
                || base.contains('*')
                || !base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.problem(format_args!(
                    "{what}: parameter `{}` must be letters, digits, `_` or `-` (a trailing `*` makes it a prefix)",
                    p.name
                ));
            }
            if p.name.ends_with('*') && (p.location != Location::Body || p.required) {
                self.problem(format_args!(
                    "{what}: prefix parameter `{}` must be an optional body parameter",
                    p.name
                ));
            }
            if let Some(field) = &p.field {
                let segments_ok = field.split('.').all(|s| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
                });
                if !segments_ok {
                    self.problem(format_args!(
                        "{what}: parameter `{}` has `field = \"{field}\"`: letters, digits, `_`, `-` or `$` in dot-separated parts",
                        p.name
                    ));
                }
                if p.location == Location::Path || p.name.ends_with('*') {
                    self.problem(format_args!(
                        "{what}: parameter `{}`: `field` is for query and body parameters only",
                        p.name
                    ));
                }
                if p.location == Location::Query && field.contains('.') {
                    self.problem(format_args!(
                        "{what}: query parameter `{}`: `field` cannot nest (no dots)",
                        p.name
                    ));
                }
            }
            if p.location == Location::Path && !p.required {
                self.problem(format_args!("{what}: path parameter `{}` must be required", p.name));
            }
        }
        let in_path: BTreeSet<&str> =
            path.and_then(|p| placeholders(p).ok()).unwrap_or_default().into_iter().collect();
        for p in parameters.iter().filter(|p| p.location == Location::Path) {
            if !in_path.contains(p.name.as_str()) {
                self.problem(format_args!(
                    "{what}: path parameter `{}` is not in the path",
                    p.name
                ));
            }
        }
        for name in in_path {
            if !parameters.iter().any(|p| p.name == name && p.location == Location::Path) {
                self.problem(format_args!(
                    "{what}: the path uses `{{{name}}}` but no parameter `{name}` has `in = \"path\"`"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_braces_checked() {
        assert_eq!(placeholders("/a/{b}/c/{d}").unwrap(), vec!["b", "d"]);
        assert!(placeholders("/a/{b").is_err());
        assert!(placeholders("/a/b}").is_err());
        assert!(placeholders("/a/{}").is_err());
        assert_eq!(filled("https://{sub}.example.com/{x}"), "https://x.example.com/x");
        assert_eq!(filled("{token.instance_url}/v1"), "https://x.example.com/v1");
    }

    #[test]
    fn bad_files_are_reported_with_what_is_wrong() {
        let text = r##"
key = "acme"
name = "Acme"
category = "Gadgets"
accent_color = "blue"
description = "x"
docs_url = "http://acme.example.com"
[auth]
type = "api_key"
fields = [{ key = "apiKey", label = "Key", secret = true }]
[api]
base_url = "https://api.acme.example.com/"
headers = { "X-Key" = "{apiKye}" }
[[actions]]
name = "CreateThing"
intent = "create_thing"
title = "Create"
method = "POST"
path = "things/{id}"
aliases = ["createThing", "Old_name", "createThing"]
parameters = [
  { name = "other", type = "string", in = "path", required = true },
  { name = "q", type = "string", in = "query", field = "a.b" },
  { name = "b", type = "string", field = "x..y" },
]
"##;
        let problems = validate_file("acme2", text).join("\n");
        for expected in [
            "`key` is `acme` but the file is named `acme2.toml`",
            "`category` `Gadgets` is not one of",
            "`accent_color` `blue` must be `#RRGGBB`",
            "`docs_url` = `http://acme.example.com` must be an https URL",
            "`api.base_url` must not end with `/`",
            "`api.headers.X-Key` uses `{apiKye}`, which is not one of: {apiKey}",
            "api key field `apiKey` is not used",
            "action `CreateThing`: the name must be camelCase",
            "intent `create_thing` must be SCREAMING_SNAKE_CASE",
            "`action `CreateThing` path` = `things/{id}` must start with `/`",
            "path parameter `other` is not in the path",
            "the path uses `{id}` but no parameter `id`",
            "alias `Old_name` must be camelCase",
            "alias `createThing` appears twice",
            "alias `createThing` is the intent in camelCase",
            "query parameter `q`: `field` cannot nest",
            "parameter `b` has `field = \"x..y\"`",
        ] {
            assert!(problems.contains(expected), "missing {expected:?} in:\n{problems}");
        }
        let unknown = validate_file("acme", "key = \"acme\"\nnmae = \"x\"\n").join("\n");
        assert!(unknown.contains("unknown field `nmae`"), "{unknown}");
    }
    /// A webhook integration as the tests below vary it: one trigger with a `repo` parameter.
    fn hooked(trigger: &str, webhooks: &str) -> String {
        format!(
            r##"
key = "acme"
name = "Acme"
category = "CRM"
accent_color = "#112233"
description = "x"
docs_url = "https://acme.example.com"
[auth]
type = "api_key"
fields = [{{ key = "apiKey", label = "Key", secret = true }}, {{ key = "region", label = "Region" }}]
[api]
base_url = "https://api.acme.example.com"
headers = {{ "X-Key" = "{{apiKey}}", "X-Region" = "{{region}}" }}
[[triggers]]
name = "pushed"
intent = "PUSHED"
title = "Pushed"
kind = "webhook"
webhook = {trigger}
parameters = [{{ name = "repo", type = "string" }}]
{webhooks}
"##
        )
    }

    #[test]
    fn webhook_triggers_need_a_consistent_webhooks_table() {
        let ok = "[webhooks]\nlevel = \"user\"\nsignature = { scheme = \"url_secret\" }\nevent_type = \"body:type\"";
        let good = hooked(r#"{ event = "push", when = { "body:full_name" = "acme/{repo}" } }"#, ok);
        assert_eq!(validate_file("acme", &good), Vec::<String>::new());

        let missing = validate_file("acme", &hooked(r#"{ event = "push" }"#, "")).join("\n");
        assert!(missing.contains("webhook triggers need a `[webhooks]` table"), "{missing}");

        let bad_when =
            hooked(r#"{ event = "push", when = { "body:full_name" = "{owner}/{repo}" } }"#, ok);
        let problems = validate_file("acme", &bad_when).join("\n");
        assert!(problems.contains("names `{owner}`, which is not a parameter"), "{problems}");

        // Dropbox-like: no event type, every trigger listens to `*`; accounts from the token.
        let untyped = "[webhooks]\nlevel = \"app\"\nsignature = { scheme = \"hmac_sha256\", from = \"header:X-Sig\", secret = \"client_secret\", secret_encoding = \"hex\" }\naccount = { from = \"body:\", credential = \"token.account_id\" }\nsetup = \"Set the URL.\"";
        let any = validate_file("acme", &hooked(r#"{ event = "*" }"#, untyped));
        assert_eq!(any, Vec::<String>::new());
        let typed = validate_file("acme", &hooked(r#"{ event = "push" }"#, untyped)).join("\n");
        assert!(typed.contains("`event_type` is needed"), "{typed}");

        for (credential, fine) in [
            ("account.id", true),
            ("token.account_id", true),
            ("region", true),
            ("apiKey", false),
            ("teamId", false),
        ] {
            let table = untyped.replace("token.account_id", credential);
            let problems = validate_file("acme", &hooked(r#"{ event = "*" }"#, &table)).join("\n");
            assert_eq!(problems.is_empty(), fine, "{credential}: {problems}");
        }
    }

    #[test]
    fn subscriptions_are_checked() {
        let base = |subscription: &str| {
            format!(
                r##"
key = "acme"
name = "Acme"
category = "Developer Tools"
accent_color = "#123456"
description = "x"
docs_url = "https://acme.example.com"
[auth]
type = "api_key"
fields = [{{ key = "apiKey", label = "Key", secret = true }}]
[api]
base_url = "https://api.acme.example.com"
headers = {{ "X-Key" = "{{apiKey}}" }}
[[triggers]]
name = "thingMade"
intent = "THING_MADE"
title = "Thing made"
kind = "webhook"
webhook = {{ event = "thing.made", subscribe = "/boards/{{board}}/hooks" }}
parameters = [{{ name = "board", type = "string", required = true }}]
[webhooks]
level = "user"
signature = {{ scheme = "hmac_sha256", from = "header:X-Sig", secret = "hook" }}
event_type = "body:type"
{subscription}"##
            )
        };
        let good = base(
            r#"[subscription]
body = { url = "{url}", secret = "{secret}", events = ["{event}"] }
id = "body:id"
remove = { method = "DELETE", path = "/boards/{board}/hooks/{id}" }"#,
        );
        assert_eq!(validate_file("acme", &good), Vec::<String>::new());
        let bad = base(
            r#"[subscription]
method = "SEND"
body = { url = "{url}", id = "{id}", other = "{colour}" }
id = "query:id"
lifetime_seconds = 60
remove = { method = "DELETE", path = "/boards/{board}/hooks" }"#,
        );
        let problems = validate_file("acme", &bad).join("\n");
        for expected in [
            "`subscription.method` = `SEND`",
            "`subscription.body` uses `{id}`, which is not known yet",
            "`subscription.body` uses `{colour}`, which is not a parameter of trigger `thingMade`",
            "`subscription.id` = `query:id`: an answer is read with",
            "expires (`expires` or `lifetime_seconds`) but has no `renew`",
            "`subscription.remove` must name the registration with `{id}`",
        ] {
            assert!(problems.contains(expected), "missing {expected:?} in:\n{problems}");
        }
    }
}
