//! `para new integration|workflow|event`: asks for what the flags leave out (only on a terminal),
//! then writes the files `scaffold` renders. Never overwrites a file.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use para_project::naming;

use crate::cli::{NewEventArgs, NewIntegrationArgs, NewWorkflowArgs, ProjectArg};
use crate::scaffold::{self, CustomAuth, NewFile, TriggerChoice};
use crate::{commands, output};

/// A command failure: message, hint, exit code.
struct Failure {
    message: String,
    hint: Option<String>,
    code: i32,
}

impl Failure {
    fn usage(message: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure { message: message.into(), hint: Some(hint.into()), code: commands::USAGE }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure { message: e.to_string(), hint: None, code: commands::FINDINGS }
    }
}

impl From<inquire::InquireError> for Failure {
    fn from(e: inquire::InquireError) -> Failure {
        use inquire::InquireError::*;
        match e {
            OperationCanceled | OperationInterrupted => Failure {
                message: "cancelled; nothing was written".into(),
                hint: None,
                code: commands::USAGE,
            },
            other => Failure { message: other.to_string(), hint: None, code: commands::USAGE },
        }
    }
}

fn finish(result: Result<(), Failure>) -> i32 {
    match result {
        Ok(()) => commands::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                output::error(f.message, f.hint.as_deref());
            }
            f.code
        }
    }
}

/// Prompts only when a person is there to answer.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn render_config() -> inquire::ui::RenderConfig<'static> {
    if output::color() {
        inquire::ui::RenderConfig::default_colored()
    } else {
        inquire::ui::RenderConfig::empty()
    }
}

fn root(project: &ProjectArg) -> Result<PathBuf, Failure> {
    // The error and its hint are printed already; nothing more to say.
    commands::project_root(project.project.as_deref()).map_err(|code| Failure {
        message: String::new(),
        hint: None,
        code,
    })
}

/// Writes files that must not exist yet; refuses before writing anything if one does.
fn write_new(root: &Path, files: &[NewFile]) -> Result<(), Failure> {
    if let Some(taken) = files.iter().find(|f| root.join(&f.path).exists()) {
        return Err(Failure::usage(
            format!("{} already exists", taken.path.display()),
            "choose another name; para never overwrites your files",
        ));
    }
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.text)?;
        output::say(format!("  created {}", file.path.display()));
    }
    Ok(())
}

// ---------------------------------------------------------------- integration

pub fn integration(args: NewIntegrationArgs) -> i32 {
    finish(new_integration(args))
}

enum Pick {
    Catalog(&'static para_catalog::Integration),
    Custom(String, CustomAuth),
}

fn new_integration(args: NewIntegrationArgs) -> Result<(), Failure> {
    let root = root(&args.project)?;
    let pick = match (&args.key, &args.custom) {
        (Some(key), _) => Pick::Catalog(catalog_entry(key)?),
        (None, Some(name)) => Pick::Custom(name.clone(), args.auth.unwrap_or(CustomAuth::Oauth)),
        (None, None) if interactive() => choose_integration()?,
        (None, None) => {
            return Err(Failure::usage(
                "which integration? Pass a catalog key or --custom \"<Display Name>\"",
                "para new integration salesforce, or para new integration --custom \"Acme CRM\" --auth oauth (run it in a terminal to pick from the catalog)",
            ));
        }
    };
    let (folder, files, display) = match &pick {
        Pick::Catalog(entry) => {
            (entry.key.clone(), scaffold::catalog_integration(entry), entry.name.clone())
        }
        Pick::Custom(name, auth) => {
            let slug = naming::custom_slug(name);
            if slug.is_empty() {
                return Err(Failure::usage(
                    format!("`{name}` has no letters or digits to make a folder name from"),
                    "give the integration a display name such as \"Acme CRM\"",
                ));
            }
            (
                format!("{}{slug}", naming::CUSTOM_PREFIX),
                scaffold::custom_integration(name, *auth),
                name.clone(),
            )
        }
    };
    if root.join("src/integrations").join(&folder).exists() {
        return Err(Failure::usage(
            format!(
                "the project already has the integration `{folder}` (src/integrations/{folder})"
            ),
            format!("add a workflow to it instead: para new workflow --integration {folder}"),
        ));
    }
    write_new(&root, &files)?;
    let mut next = format!(
        "added {display} as src/integrations/{folder}\nnext:\n  para new workflow --integration {folder}\n  para install    (editor types for @useparagon/*)\n  para build"
    );
    if let Pick::Custom(_, auth) = pick {
        let what = if auth == CustomAuth::Basic {
            "apiBaseUrl and testEndpointPath are"
        } else {
            "the OAuth URLs, scopes, apiBaseUrl and testEndpointPath are"
        };
        next.push_str(&format!(
            "\n  edit src/integrations/{folder}/config.ts: {what} placeholders"
        ));
    }
    output::say(next);
    Ok(())
}

fn catalog_entry(key: &str) -> Result<&'static para_catalog::Integration, Failure> {
    if let Some(entry) = para_catalog::lookup(key) {
        return Ok(entry);
    }
    // Case slips (`Salesforce`, `googlecalendar`) are common: accept a unique case-insensitive match.
    let folded: Vec<&str> = para_catalog::keys().filter(|k| k.eq_ignore_ascii_case(key)).collect();
    if let [only] = folded.as_slice() {
        return Ok(para_catalog::lookup(only).expect("listed keys resolve"));
    }
    let mut suggestions = naming::closest(key, para_catalog::keys(), 3);
    let lower = key.to_lowercase();
    for entry in para_catalog::all() {
        let matches =
            entry.key.to_lowercase().contains(&lower) || entry.name.to_lowercase().contains(&lower);
        if matches && suggestions.len() < 5 && !suggestions.contains(&entry.key.as_str()) {
            suggestions.push(&entry.key);
        }
    }
    let hint = if suggestions.is_empty() {
        format!(
            "run `para new integration` in a terminal to search the catalog, or make a custom one: para new integration --custom \"{key}\""
        )
    } else {
        format!(
            "did you mean {}? For an API not in the catalog: para new integration --custom \"{key}\"",
            suggestions.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
        )
    };
    Err(Failure::usage(format!("`{key}` is not in para's catalog"), hint))
}

/// One line of the integration picker.
#[derive(Clone)]
enum Choice {
    Catalog(&'static para_catalog::Integration),
    Custom,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Choice::Catalog(i) => write!(f, "{} ({}) · {}", i.name, i.key, i.category),
            Choice::Custom => write!(f, "Custom integration…"),
        }
    }
}

/// Ranks a choice for the typed filter: name prefix, then word prefix, then anywhere in the
/// name, key or category. "Custom integration…" always stays reachable.
fn score(input: &str, choice: &Choice) -> Option<i64> {
    let needle = input.trim().to_lowercase();
    if needle.is_empty() {
        return Some(0);
    }
    match choice {
        Choice::Custom => Some(-1000),
        Choice::Catalog(i) => {
            let name = i.name.to_lowercase();
            let key = i.key.to_lowercase();
            if name.starts_with(&needle) || key.starts_with(&needle) {
                Some(300)
            } else if name.split(|c: char| !c.is_alphanumeric()).any(|w| w.starts_with(&needle)) {
                Some(200)
            } else if name.contains(&needle) || key.contains(&needle) {
                Some(100)
            } else if i.category.to_lowercase().contains(&needle) {
                Some(50)
            } else {
                None
            }
        }
    }
}

fn choose_integration() -> Result<Pick, Failure> {
    let mut choices: Vec<Choice> = para_catalog::all().map(Choice::Catalog).collect();
    choices.sort_by_cached_key(|c| c.to_string().to_lowercase());
    choices.push(Choice::Custom);
    let picked =
        inquire::Select::new("Integration (type to filter by name, key or category):", choices)
            .with_render_config(render_config())
            .with_page_size(12)
            .with_scorer(&|input, choice, _, _| score(input, choice))
            .prompt()?;
    match picked {
        Choice::Catalog(entry) => Ok(Pick::Catalog(entry)),
        Choice::Custom => {
            let name = inquire::Text::new("Display name of the integration:")
                .with_render_config(render_config())
                .with_validator(|text: &str| {
                    Ok(if naming::custom_slug(text).is_empty() {
                        inquire::validator::Validation::Invalid(
                            "use at least one letter or digit".into(),
                        )
                    } else {
                        inquire::validator::Validation::Valid
                    })
                })
                .prompt()?;
            let labels: Vec<&str> = CustomAuth::ALL.iter().map(|a| a.label()).collect();
            let label = inquire::Select::new("How does it authenticate?", labels)
                .with_render_config(render_config())
                .prompt()?;
            let auth = CustomAuth::ALL
                .into_iter()
                .find(|a| a.label() == label)
                .unwrap_or(CustomAuth::Oauth);
            Ok(Pick::Custom(name, auth))
        }
    }
}

// ---------------------------------------------------------------- workflow

pub fn workflow(args: NewWorkflowArgs) -> i32 {
    finish(new_workflow(args))
}

fn new_workflow(args: NewWorkflowArgs) -> Result<(), Failure> {
    let root = root(&args.project)?;
    let integrations = commands::install::integration_folders(&root);
    if integrations.is_empty() {
        return Err(Failure::usage(
            "the project has no integrations yet",
            "add one first: para new integration salesforce",
        ));
    }
    let key = match args.integration {
        Some(key) => key,
        None if integrations.len() == 1 => integrations[0].clone(),
        None if interactive() => inquire::Select::new("Integration:", integrations.clone())
            .with_render_config(render_config())
            .prompt()?,
        None => {
            return Err(Failure::usage(
                "which integration? Pass --integration",
                format!("the project has: {}", integrations.join(", ")),
            ));
        }
    };
    if !integrations.contains(&key) {
        let close = naming::closest(&key, integrations.iter().map(String::as_str), 3);
        let hint = if close.is_empty() {
            format!("the project has: {}", integrations.join(", "))
        } else {
            format!(
                "did you mean {}?",
                close.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" or ")
            )
        };
        return Err(Failure::usage(format!("the project has no integration `{key}`"), hint));
    }
    let catalog = para_catalog::lookup(&key);
    let name = match args.name {
        Some(name) => name,
        None if interactive() => inquire::Text::new("Workflow name:")
            .with_render_config(render_config())
            .with_default("New workflow")
            .prompt()?,
        None => "New workflow".to_string(),
    };
    if scaffold::camel_case(&name).is_empty() {
        return Err(Failure::usage(
            format!("`{name}` has no letters or digits to name a file after"),
            "pass a name such as --name \"Sync contacts\"",
        ));
    }
    let trigger = match args.trigger {
        Some(t) => TriggerChoice::parse(&t),
        None if interactive() => choose_trigger(catalog)?,
        None => {
            return Err(Failure::usage("which trigger? Pass --trigger", trigger_list(catalog)));
        }
    };
    let mut trigger_parameters = Vec::new();
    if let TriggerChoice::Catalog(t) = &trigger {
        let found = catalog.and_then(|c| c.trigger(t));
        let Some(found) = found else {
            let hint = trigger_list(catalog);
            return Err(Failure::usage(format!("`{t}` is not a trigger of `{key}`"), hint));
        };
        trigger_parameters = found
            .parameters
            .iter()
            .filter(|p| p.required)
            .map(|p| (p.name.clone(), p.ty))
            .collect();
    }
    let events = project_events(&root);
    let event_module = if trigger == TriggerChoice::Event {
        Some(match args.event {
            Some(e) => {
                let e = e.trim_end_matches(".ts").to_string();
                if !events.contains(&e) {
                    return Err(Failure::usage(
                        format!("there is no event src/events/{e}.ts"),
                        if events.is_empty() {
                            "create it: para new event \"Task Created\"".to_string()
                        } else {
                            format!("the project's events: {}", events.join(", "))
                        },
                    ));
                }
                e
            }
            None => match events.as_slice() {
                [] => {
                    return Err(Failure::usage(
                        "an event trigger needs an App Event, and the project has none",
                        "create one first: para new event \"Task Created\"",
                    ));
                }
                [only] => only.clone(),
                _ if interactive() => inquire::Select::new("Event:", events.clone())
                    .with_render_config(render_config())
                    .prompt()?,
                _ => {
                    return Err(Failure::usage(
                        "which event? Pass --event",
                        format!("the project's events: {}", events.join(", ")),
                    ));
                }
            },
        })
    } else {
        None
    };
    let dir = root.join("src/integrations").join(&key).join("workflows");
    let module = scaffold::free_module_name(&dir, &scaffold::camel_case(&name));
    let spec = scaffold::WorkflowSpec {
        integration_key: &key,
        name: &name,
        id: uuid::Uuid::new_v4().to_string(),
        trigger,
        event_module: event_module.as_deref(),
        trigger_parameters,
        has_persona_meta: root.join("src/persona.meta.ts").is_file(),
    };
    let rel =
        PathBuf::from("src/integrations").join(&key).join("workflows").join(format!("{module}.ts"));
    write_new(&root, &[NewFile { path: rel.clone(), text: scaffold::workflow(&spec) }])?;
    let config_rel = PathBuf::from("src/integrations").join(&key).join("config.ts");
    let config_path = root.join(&config_rel);
    let edited = std::fs::read_to_string(&config_path)
        .ok()
        .and_then(|text| scaffold::add_to_display_order(&text, &module, &module));
    match edited {
        Some(text) => {
            std::fs::write(&config_path, text)?;
            output::say(format!("  updated {} (workflowDisplayOrder)", config_rel.display()));
        }
        None => output::say(format!(
            "warning: could not find `workflowDisplayOrder: [...]` in {}\nhint: import the workflow there and add it to workflowDisplayOrder so the portal lists it",
            config_rel.display()
        )),
    }
    output::say(format!(
        "added workflow `{name}` ({})\nnext: edit {}, then para build",
        spec.id,
        rel.display()
    ));
    Ok(())
}

fn project_events(root: &Path) -> Vec<String> {
    let mut events: Vec<String> = std::fs::read_dir(root.join("src/events"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".ts").filter(|n| !n.starts_with('~')).map(str::to_string)
        })
        .collect();
    events.sort();
    events
}

fn trigger_list(catalog: Option<&para_catalog::Integration>) -> String {
    let mut kinds = vec!["event", "endpoint", "cron", "integration-enabled"];
    if let Some(c) = catalog {
        kinds.extend(c.triggers.iter().map(|t| t.name.as_str()));
    }
    format!("triggers: {}", kinds.join(", "))
}

fn choose_trigger(catalog: Option<&para_catalog::Integration>) -> Result<TriggerChoice, Failure> {
    let mut options: Vec<(String, TriggerChoice)> = vec![
        ("App Event (your app sends an event)".into(), TriggerChoice::Event),
        ("Request (an HTTP endpoint)".into(), TriggerChoice::Endpoint),
        ("Schedule (cron)".into(), TriggerChoice::Cron),
        ("Integration enabled (a user connects)".into(), TriggerChoice::IntegrationEnabled),
    ];
    if let Some(c) = catalog {
        for t in &c.triggers {
            options.push((
                format!("{}: {} ({})", c.name, t.title, t.name),
                TriggerChoice::Catalog(t.name.clone()),
            ));
        }
    }
    let labels: Vec<String> = options.iter().map(|(l, _)| l.clone()).collect();
    let label =
        inquire::Select::new("Trigger:", labels).with_render_config(render_config()).prompt()?;
    Ok(options
        .into_iter()
        .find(|(l, _)| *l == label)
        .map(|(_, t)| t)
        .unwrap_or(TriggerChoice::Cron))
}

// ---------------------------------------------------------------- event

pub fn event(args: NewEventArgs) -> i32 {
    finish(new_event(args))
}

fn new_event(args: NewEventArgs) -> Result<(), Failure> {
    let root = root(&args.project)?;
    let name = match args.name {
        Some(name) => name,
        None if interactive() => inquire::Text::new("Event name (as your app sends it):")
            .with_render_config(render_config())
            .prompt()?,
        None => {
            return Err(Failure::usage(
                "which event? Pass its name",
                "para new event \"Task Created\"",
            ));
        }
    };
    let module = scaffold::camel_case(&name);
    if module.is_empty() {
        return Err(Failure::usage(
            format!("`{name}` has no letters or digits to name a file after"),
            "para new event \"Task Created\"",
        ));
    }
    let rel = PathBuf::from("src/events").join(format!("{module}.ts"));
    write_new(&root, &[NewFile { path: rel.clone(), text: scaffold::event(&name) }])?;
    output::say(format!(
        "added event `{name}`\nnext: describe its payload in {}, then trigger workflows with it: para new workflow --trigger event --event {module}",
        rel.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_sales_ranks_salesforce_first() {
        let mut choices: Vec<Choice> = para_catalog::all().map(Choice::Catalog).collect();
        choices.push(Choice::Custom);
        let mut ranked: Vec<(i64, String)> =
            choices.iter().filter_map(|c| score("sales", c).map(|s| (-s, c.to_string()))).collect();
        ranked.sort();
        assert!(ranked[0].1.starts_with("Salesforce"), "{ranked:?}");
        assert!(ranked.iter().any(|(_, c)| c.starts_with("Custom")));
        assert!(score("zzzz", &Choice::Catalog(para_catalog::lookup("slack").unwrap())).is_none());
    }
}
