//! The files `para new …` writes, as text: integrations (catalog or custom), workflows, events,
//! and the edit that adds a workflow to its integration's `workflowDisplayOrder`.
//!
//! Everything here is pure (paths in, texts out) so it is tested without a terminal; the command
//! module does the asking and the writing.

use std::path::{Path, PathBuf};

use para_project::naming;

/// How a custom integration authenticates (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CustomAuth {
    /// OAuth 2 authorization code
    Oauth,
    /// Username and password (HTTP Basic)
    Basic,
    /// OAuth 2 client credentials
    OauthClientCredential,
}

impl CustomAuth {
    pub const ALL: [CustomAuth; 3] =
        [CustomAuth::Oauth, CustomAuth::Basic, CustomAuth::OauthClientCredential];

    pub fn label(self) -> &'static str {
        match self {
            CustomAuth::Oauth => "OAuth 2 (authorization code)",
            CustomAuth::Basic => "Basic (username and password)",
            CustomAuth::OauthClientCredential => "OAuth 2 client credentials",
        }
    }
}

/// The trigger a new workflow starts with (`--trigger`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerChoice {
    Event,
    Endpoint,
    Cron,
    IntegrationEnabled,
    /// A catalog trigger of the integration, by name.
    Catalog(String),
}

impl TriggerChoice {
    pub fn parse(text: &str) -> TriggerChoice {
        match text {
            "event" => TriggerChoice::Event,
            "endpoint" | "request" => TriggerChoice::Endpoint,
            "cron" | "schedule" => TriggerChoice::Cron,
            "integration-enabled" | "integrationEnabled" => TriggerChoice::IntegrationEnabled,
            other => TriggerChoice::Catalog(other.to_string()),
        }
    }
}

/// `Task Created` → `taskCreated`; `sync 2 contacts` → `sync2Contacts`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::new();
    for (i, word) in
        name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).enumerate()
    {
        let mut chars = word.chars();
        let first = chars.next().unwrap();
        if i == 0 {
            out.push(first.to_ascii_lowercase());
            out.extend(chars);
        } else {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `taskCreated` → `TaskCreated`.
pub fn pascal_case(name: &str) -> String {
    let camel = camel_case(name);
    let mut chars = camel.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => camel,
    }
}

/// The interface a catalog integration's workflows are typed with: `slack` → `ISlackIntegration`.
pub fn integration_interface(key: &str) -> String {
    if key.starts_with(naming::CUSTOM_PREFIX) {
        return "ICustomIntegration".into();
    }
    let mut chars = key.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or_default();
    format!("I{first}{}Integration", chars.as_str())
}

pub use para_types::ts_string;

/// One file to write, relative to the project root.
#[derive(Debug)]
pub struct NewFile {
    pub path: PathBuf,
    pub text: String,
}

/// The files of a catalog integration's folder.
pub fn catalog_integration(entry: &para_catalog::Integration) -> Vec<NewFile> {
    let dir = PathBuf::from("src/integrations").join(&entry.key);
    let config = format!(
        "import {{ IIntegrationConfig }} from '@useparagon/core/integration';

const config: IIntegrationConfig = {{
  description: {description},
  overviewText: {overview},
  showWatermark: true,
  workflowDisplayOrder: [],
}};

export default config;
",
        description = ts_string(&entry.description),
        overview = ts_string(&format!(
            "Connect your {} account. Describe here, in Markdown, what the integration does for your users.",
            entry.name
        )),
    );
    let inputs = format!(
        "import {{ createInputs }} from '@useparagon/integrations/{key}';

// User Settings shown in the Connect Portal when a user connects {name}.
// Types: text, number, boolean, password, field_mapping, custom_dropdown{extra}.
const integrationInputs = createInputs({{}});

export default integrationInputs;
",
        key = entry.key,
        name = entry.name,
        extra = entry.input_types.iter().map(|t| format!(", {}", t.name)).collect::<String>(),
    );
    vec![
        NewFile { path: dir.join("config.ts"), text: config },
        NewFile { path: dir.join("inputs.ts"), text: inputs },
        NewFile { path: dir.join("workflows/.gitkeep"), text: String::new() },
    ]
}

/// The files of a custom integration's folder, `custom.<slug>`.
pub fn custom_integration(display_name: &str, auth: CustomAuth) -> Vec<NewFile> {
    let slug = naming::custom_slug(display_name);
    let dir = PathBuf::from("src/integrations").join(format!("{}{slug}", naming::CUSTOM_PREFIX));
    let auth_fields = match auth {
        CustomAuth::Oauth => "  authenticationType: 'oauth',
  // The provider's OAuth endpoints and the scopes to ask for (space-separated).
  authorizationUrl: 'https://auth.example.com/oauth/authorize',
  accessTokenUrl: 'https://auth.example.com/oauth/token',
  scopes: '',
  includeClientIdAndSecrets: false,
  usePKCEInCodeExchange: false,
  authorization: {
    type: 'bearer',
    token: `${credentials.oauthAccessToken}`,
  },"
        .to_string(),
        CustomAuth::OauthClientCredential => "  authenticationType: 'oauth_client_credential',
  // The provider's token endpoint and the scopes to ask for (space-separated).
  accessTokenUrl: 'https://auth.example.com/oauth/token',
  scopes: '',
  authorization: {
    type: 'bearer',
    token: `${credentials.oauthAccessToken}`,
  },"
        .to_string(),
        CustomAuth::Basic => "  authenticationType: 'basic',
  authorization: {
    type: 'basic',
    userName: `${credentials.username}`,
    password: `${credentials.password}`,
  },"
        .to_string(),
    };
    let config = format!(
        "import {{
  ICustomIntegrationConfig,
  createConfigInputs,
  credentials,
}} from '@useparagon/core/integration';

// Values the user enters when connecting, usable in URLs below as `${{inputs.<key>}}`.
export const inputs = createConfigInputs({{}});

const config: ICustomIntegrationConfig = {{
  name: {name},
  description: {description},
  overviewText: {overview},
  showWatermark: true,
  accentColor: '#4F46E5',
{auth_fields}
  // Requests of IntegrationRequestSteps are relative to apiBaseUrl.
  apiBaseUrl: 'https://api.example.com',
  // Requested with the new credential after connecting, to check it works.
  testEndpointPath: '/me',
  workflowDisplayOrder: [],
}};

export default config;
",
        name = ts_string(display_name),
        description = ts_string(&format!("Connect {display_name}")),
        overview = ts_string(&format!(
            "Connect your {display_name} account. Describe here, in Markdown, what the integration does for your users."
        )),
    );
    let inputs = "import { createInputs } from '@useparagon/core/inputs';

// User Settings shown in the Connect Portal after connecting.
// Types: text, number, boolean, password, field_mapping, custom_dropdown.
const integrationInputs = createInputs({});

export default integrationInputs;
"
    .to_string();
    vec![
        NewFile { path: dir.join("config.ts"), text: config },
        NewFile { path: dir.join("inputs.ts"), text: inputs },
        NewFile { path: dir.join("workflows/.gitkeep"), text: String::new() },
    ]
}

/// What a new workflow file needs to know.
pub struct WorkflowSpec<'a> {
    pub integration_key: &'a str,
    pub name: &'a str,
    pub id: String,
    pub trigger: TriggerChoice,
    /// For `TriggerChoice::Event`: the event file's module name under `src/events/`.
    pub event_module: Option<&'a str>,
    /// For `TriggerChoice::Catalog`: the trigger's required parameters and their types.
    pub trigger_parameters: Vec<(String, para_catalog::ParamType)>,
    /// The project has `src/persona.meta.ts`.
    pub has_persona_meta: bool,
}

fn placeholder(ty: para_catalog::ParamType) -> &'static str {
    use para_catalog::ParamType::*;
    match ty {
        String | Any => "''",
        Number => "0",
        Boolean => "false",
        Object => "{}",
        Array => "[]",
    }
}

/// The text of a new workflow file.
pub fn workflow(spec: &WorkflowSpec<'_>) -> String {
    let custom = spec.integration_key.starts_with(naming::CUSTOM_PREFIX);
    let interface = integration_interface(spec.integration_key);
    let (mut core, trigger, trigger_import) = match &spec.trigger {
        TriggerChoice::Event => {
            let module = spec.event_module.unwrap_or("event");
            (
                vec!["EventStep"],
                format!("new EventStep({module})"),
                Some(format!("import {module} from '../../../events/{module}';\n")),
            )
        }
        TriggerChoice::Endpoint => (
            vec!["EndpointStep"],
            "new EndpointStep({
      allowArbitraryPayload: false,
      paramValidations: [] as const,
      headerValidations: [] as const,
      bodyValidations: [] as const,
    })"
            .to_string(),
            None,
        ),
        TriggerChoice::Cron => (
            vec!["CronStep"],
            "new CronStep({ cron: '0 0 9 * * *', timeZone: 'UTC' })".to_string(),
            None,
        ),
        TriggerChoice::IntegrationEnabled => {
            (vec!["IntegrationEnabledStep"], "new IntegrationEnabledStep()".to_string(), None)
        }
        TriggerChoice::Catalog(name) => {
            let params: Vec<String> = spec
                .trigger_parameters
                .iter()
                .map(|(key, ty)| format!("{key}: {}", placeholder(*ty)))
                .collect();
            let args = if params.is_empty() {
                "{}".to_string()
            } else {
                format!("{{ {} }}", params.join(", "))
            };
            (vec![], format!("integration.triggers.{name}({args})"), None)
        }
    };
    let step = if spec.trigger == TriggerChoice::Endpoint {
        core.push("ResponseStep");
        "new ResponseStep({
      description: 'Respond',
      statusCode: 200,
      responseType: 'JSON',
      body: { received: true, user: connectUser.userId },
    })"
        .to_string()
    } else {
        core.push("FunctionStep");
        "new FunctionStep({
      description: 'First step',
      code: function firstStep(parameters: { userId: string }) {
        return { message: `Hello ${parameters.userId}` };
      },
      parameters: { userId: connectUser.userId },
    })"
        .to_string()
    };
    core.push("Workflow");
    core.sort_unstable();
    let (persona, persona_import) = if spec.has_persona_meta {
        (
            "IPersona<typeof personaMeta>",
            "import personaMeta from '../../../persona.meta';\n".to_string(),
        )
    } else {
        ("any", String::new())
    };
    let persona_type_import = if spec.has_persona_meta {
        "import { IPersona } from '@useparagon/core/persona';\n"
    } else {
        ""
    };
    let (integration_import, input_map) = if custom {
        (
            "import { ICustomIntegration } from '@useparagon/core/integration';\n\
             import { DefaultInputToResultMap, createInputs } from '@useparagon/core/inputs';\n"
                .to_string(),
            "DefaultInputToResultMap",
        )
    } else {
        (
            format!(
                "import {{ {interface}, InputResultMap, createInputs }} from '@useparagon/integrations/{}';\n",
                spec.integration_key
            ),
            "InputResultMap",
        )
    };
    let mut local_imports = persona_import;
    if let Some(import) = trigger_import {
        local_imports.push_str(&import);
    }
    format!(
        "import {{ {core} }} from '@useparagon/core';
import {{ IContext }} from '@useparagon/core/execution';
{persona_type_import}import {{ IConnectUser }} from '@useparagon/core/user';
{integration_import}
{local_imports}
/**
 * {name}
 */
export default class extends Workflow<{interface}, {persona}, {input_map}> {{
  define(
    integration: {interface},
    context: IContext<{input_map}>,
    connectUser: IConnectUser<{persona}>,
  ) {{
    const trigger = {trigger};

    const {first} = {step};

    trigger.nextStep({first});

    return this.register({{ trigger, {first} }});
  }}

  name = {name_literal};
  description = 'Describe what this workflow does for your users';
  inputs = createInputs({{}});
  defaultEnabled = false;
  hidden = false;
  readonly id = '{id}';
}}
",
        core = core.join(", "),
        name = spec.name.replace("*/", "* /"),
        first = if spec.trigger == TriggerChoice::Endpoint { "respond" } else { "firstStep" },
        name_literal = ts_string(spec.name),
        id = spec.id,
    )
}

/// The text of a new event file.
pub fn event(display_name: &str) -> String {
    let type_name = pascal_case(display_name);
    format!(
        "import {{ IEventInit }} from '@useparagon/core/event';

// The payload your app sends with this event (`paragon.event({name}, payload)`).
export type {type_name} = {{
  id: string;
}};

const event: IEventInit<{type_name}> = {{
  name: {name},
  // An example payload: workflows triggered by this event are typed and tested with it.
  schema: {{
    id: 'example-id',
  }},
}};

export default event;
",
        name = ts_string(display_name),
    )
}

/// Adds `import <ident> from './workflows/<module>';` and `<ident>` to the
/// `workflowDisplayOrder: [...]` array of a config.ts text. `None` when the array is not found
/// (the user adds it by hand).
pub fn add_to_display_order(config: &str, ident: &str, module: &str) -> Option<String> {
    let field = config.find("workflowDisplayOrder")?;
    let open = field + config[field..].find('[')?;
    let close = open + config[open..].find(']')?;
    let inside = config[open + 1..close].trim();
    let list = if inside.is_empty() {
        format!("[{ident}]")
    } else {
        let trimmed = inside.trim_end_matches(',').trim_end();
        if trimmed.contains('\n') {
            let indent = config[..field].rsplit('\n').next().unwrap_or("").to_string();
            format!("[\n{indent}  {trimmed},\n{indent}  {ident},\n{indent}]")
        } else {
            format!("[{trimmed}, {ident}]")
        }
    };
    let mut out = String::with_capacity(config.len() + 64);
    let import = format!("import {ident} from './workflows/{module}';\n");
    // After the last top-level import, else at the top.
    let insert_at = last_import_end(config).unwrap_or(0);
    out.push_str(&config[..insert_at]);
    out.push_str(&import);
    if insert_at == 0 {
        out.push('\n');
    }
    out.push_str(&config[insert_at..open]);
    out.push_str(&list);
    out.push_str(&config[close + 1..]);
    Some(out)
}

/// The byte offset just after the last `import …;` statement's line.
fn last_import_end(text: &str) -> Option<usize> {
    let mut end = None;
    let mut offset = 0;
    let mut in_import = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("import ") || trimmed.starts_with("import{") {
            in_import = true;
        }
        if in_import && line.trim_end().ends_with(';') {
            in_import = false;
            end = Some(offset + line.len());
        }
        offset += line.len();
    }
    end
}

/// A file name in `dir` not taken yet: `stem.ts`, `stem2.ts`, …
pub fn free_module_name(dir: &Path, stem: &str) -> String {
    if !dir.join(format!("{stem}.ts")).exists() {
        return stem.to_string();
    }
    (2..).map(|n| format!("{stem}{n}")).find(|s| !dir.join(format!("{s}.ts")).exists()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cased_like_real_projects() {
        assert_eq!(camel_case("Task Created"), "taskCreated");
        assert_eq!(camel_case("sync 2 CRM contacts!"), "sync2CRMContacts");
        assert_eq!(camel_case("2fa reset"), "_2faReset");
        assert_eq!(pascal_case("task created"), "TaskCreated");
        assert_eq!(integration_interface("googleCalendar"), "IGoogleCalendarIntegration");
        assert_eq!(integration_interface("custom.acme"), "ICustomIntegration");
        assert_eq!(ts_string("it's"), "'it\\'s'");
    }

    #[test]
    fn display_order_gains_the_workflow_and_its_import() {
        let config = "import { IIntegrationConfig } from '@useparagon/core/integration';\n\nconst config: IIntegrationConfig = {\n  workflowDisplayOrder: [],\n};\n";
        let once = add_to_display_order(config, "syncContacts", "syncContacts").unwrap();
        assert!(once.contains("import syncContacts from './workflows/syncContacts';\n\nconst"));
        assert!(once.contains("workflowDisplayOrder: [syncContacts],"));
        let twice = add_to_display_order(&once, "digest", "digest").unwrap();
        assert!(twice.contains("workflowDisplayOrder: [syncContacts, digest],"));
        let multi = "const c = {\n  workflowDisplayOrder: [\n    a,\n    b,\n  ],\n};\n";
        let added = add_to_display_order(multi, "c", "c").unwrap();
        assert!(added.contains("workflowDisplayOrder: [\n    a,\n    b,\n    c,\n  ],"), "{added}");
        assert!(add_to_display_order("export default {};", "x", "x").is_none());
    }
}
