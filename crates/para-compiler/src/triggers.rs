//! Custom webhook triggers: `src/integrations/<key>/triggers/*.ts`, each a class extending
//! `ManualWebhookTrigger` or `ApiEndpointWebhookTrigger` (Paragon's own format), compiled into
//! the integration's `customTriggers` by the class's `id`. Their `filters(request)` and
//! `mapPayload.providerId(context)` are recorded over a reference standing for the request the
//! webhook receives, and may read nothing else: the engine evaluates them with only the request
//! at hand (`para_engine::custom_triggers`).

use std::collections::{BTreeMap, BTreeSet};

use para_build::{CustomTrigger, OPERATORS, Source, TriggerLevel, TriggerSetup};
use para_project::Diagnostic;
use serde_json::Value;

use crate::{eval::Session, graph, layout::IntegrationFolder, lower};

const SHAPE_HELP: &str = "write `export default class extends ManualWebhookTrigger<'USER', 'default', InputResultMap> { readonly id = '…'; name = '…'; … }`, importing ManualWebhookTrigger from '@useparagon/core/triggers/customTrigger'";

/// An integration's custom triggers: those compiled, by id, and the ids of the files that have
/// errors (reported with the file, so a workflow naming one is not reported again).
#[derive(Default)]
pub struct Triggers {
    pub compiled: BTreeMap<String, CustomTrigger>,
    pub failed: BTreeSet<String>,
}

/// Compiles every trigger file of an integration. A file with an error is left out, after its
/// findings.
pub fn compile_all(session: &mut Session<'_>, folder: &IntegrationFolder) -> Triggers {
    let mut triggers = Triggers::default();
    let out = &mut triggers.compiled;
    for file in &folder.triggers {
        let trigger = match compile_one(session, file) {
            Ok(trigger) => trigger,
            Err(Some(id)) => {
                triggers.failed.insert(id);
                continue;
            }
            Err(None) => continue,
        };
        if let Some(first) = out.get(&trigger.id) {
            let at = session.locate(file, &["id"]);
            let first_at = session.locate(&first.source, &["id"]);
            session.push(
                Diagnostic::error(
                    "duplicate-custom-trigger-id",
                    format!("two custom triggers of `{}` have the id `{}`", folder.key, trigger.id),
                )
                .at(at)
                .with_label("duplicate id")
                .with_related(first_at, "first used")
                .with_help(
                    "the id names the trigger in its webhook URLs and in workflows, so each trigger needs its own; give this one a new UUID",
                ),
            );
            continue;
        }
        out.insert(trigger.id.clone(), trigger);
    }
    triggers
}

/// The file's trigger, or (after reporting) the id it declares, if it declares one.
fn compile_one(session: &mut Session<'_>, file: &str) -> Result<CustomTrigger, Option<String>> {
    let described = session.describe(file, "describeCustomTrigger").ok_or(None)?;
    match described.get("shape").and_then(Value::as_str) {
        Some("trigger") => {}
        Some("missing") => {
            session.push(
                Diagnostic::error(
                    "missing-default-export",
                    "this custom trigger file has no default export",
                )
                .in_file(file)
                .with_help(SHAPE_HELP),
            );
            return Err(None);
        }
        _ => {
            let at = session.locate(file, &[]);
            session.push(
                Diagnostic::error(
                    "not-a-custom-trigger",
                    "the default export of a custom trigger file must be a class extending ManualWebhookTrigger or ApiEndpointWebhookTrigger",
                )
                .at(at)
                .with_label("not a custom trigger class")
                .with_help(SHAPE_HELP),
            );
            return Err(None);
        }
    }
    let mut ok = true;
    let mut text = |session: &mut Session<'_>, field: &str, required: &str| -> Option<String> {
        match described.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) if !required.is_empty() => {
                let at = session.locate(file, &[field]);
                session.push(
                    Diagnostic::error(
                        "missing-field",
                        format!("this custom trigger has no `{field}`"),
                    )
                    .at(at)
                    .with_label(format!("`{field}` missing"))
                    .with_help(required.to_string()),
                );
                ok = false;
                None
            }
            Some(Value::String(_)) | None | Some(Value::Null) => None,
            Some(_) => {
                let at = session.locate(file, &[field]);
                session.push(
                    Diagnostic::error(
                        "invalid-field",
                        format!("the custom trigger's `{field}` must be a string"),
                    )
                    .at(at),
                );
                ok = false;
                None
            }
        }
    };
    let id = text(
        session,
        "id",
        "add `readonly id = '…'` with a new UUID; it must never change once users have pasted the trigger's webhook URL",
    );
    let name = text(
        session,
        "name",
        "add `name = 'Order Shipped'`: the SDK's getTriggers and the dashboard show it",
    );
    let description = text(session, "description", "");
    let level = match described.get("triggerLevel") {
        None | Some(Value::Null) => TriggerLevel::User,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("user") => TriggerLevel::User,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("app") => TriggerLevel::App,
        Some(other) => {
            let at = session.locate(file, &["triggerLevel"]);
            session.push(
                Diagnostic::error(
                    "invalid-field",
                    format!("`triggerLevel` must be 'USER' or 'APP', not {other}"),
                )
                .at(at)
                .with_help("'USER': each connected user has their own webhook URL; 'APP': one webhook for the app, its requests matched to users by `mapPayload.providerId`"),
            );
            ok = false;
            TriggerLevel::User
        }
    };
    let setup = match described.get("setup").and_then(Value::as_str) {
        Some("api") => TriggerSetup::Api,
        _ => TriggerSetup::Manual,
    };
    let sample_payload = match lower::plain(described.get("samplePayload").unwrap_or(&Value::Null))
    {
        Ok(sample) => sample,
        Err(what) => {
            let at = session.locate(file, &["samplePayload"]);
            session.push(
                Diagnostic::error(
                    "invalid-field",
                    format!(
                        "the trigger's `samplePayload` must be sample data, but it holds {what}"
                    ),
                )
                .at(at)
                .with_help("write an example request body as literal values"),
            );
            ok = false;
            Value::Null
        }
    };
    let filters = filters(session, file, described.get("filters").unwrap_or(&Value::Null));
    let filters = match filters {
        Ok(filters) => filters,
        Err(()) => {
            ok = false;
            None
        }
    };
    let provider_id = match described.get("providerId") {
        None | Some(Value::Null) => None,
        Some(value) => match request_source(value) {
            Ok(source) => Some(source),
            Err(why) => {
                let at = session.locate(file, &["mapPayload", "providerId"]);
                session.push(
                    Diagnostic::error(
                        "invalid-provider-id",
                        format!("`mapPayload.providerId` cannot be evaluated when a webhook arrives: {why}"),
                    )
                    .at(at)
                    .with_help("return text read from the request, e.g. `providerId: (context) => `${context.webhookRequest.body.portalId}``"),
                );
                ok = false;
                None
            }
        },
    };
    if level == TriggerLevel::App && provider_id.is_none() && ok {
        let at = session.locate(file, &["mapPayload"]);
        session.push(
            Diagnostic::warning(
                "missing-provider-id",
                "this app-level trigger has no `mapPayload.providerId`: its requests cannot be matched to a user",
            )
            .at(at)
            .with_help("read the provider's account id from the request: `mapPayload = { providerId: (context) => `${context.webhookRequest.body.portalId}` }`"),
        );
    }
    if setup == TriggerSetup::Api && ok {
        let at = session.locate(file, &["create"]);
        session.push(
            Diagnostic::warning(
                "webhook-not-created",
                "para does not create this webhook through the provider's API yet: `create()` and `teardown()` are not compiled",
            )
            .at(at)
            .with_help("until it does, have users paste the trigger's webhook URL (getCustomWebhookUserManualUrl) into the provider, as for a ManualWebhookTrigger"),
        );
    }
    let (Some(id), Some(name), true) = (id.clone(), name, ok) else { return Err(id) };
    Ok(CustomTrigger {
        id,
        name,
        description,
        level,
        setup,
        filters,
        provider_id,
        sample_payload,
        source: file.to_string(),
    })
}

/// `filters(request)` as a condition whose operands read only the request and literals.
/// `Err` after reporting.
fn filters(
    session: &mut Session<'_>,
    file: &str,
    value: &Value,
) -> Result<Option<para_build::Condition>, ()> {
    if value.is_null() {
        return Ok(None);
    }
    let mut problem: Option<String> = None;
    let condition = match graph::dnf(value) {
        Ok(groups) => {
            if let Some((operator, _)) = groups
                .iter()
                .flatten()
                .find(|(operator, _)| !OPERATORS.contains(&operator.as_str()))
            {
                problem = Some(format!("`{operator}` is not an operator para evaluates"));
                None
            } else {
                graph::condition_of(groups, |operand| match request_source(operand) {
                    Ok(source) => Some(source),
                    Err(why) => {
                        problem.get_or_insert(why);
                        None
                    }
                })
            }
        }
        Err(what) => {
            problem = Some(format!("it is not a condition ({what})"));
            None
        }
    };
    match (condition, problem) {
        (Some(condition), None) => Ok(Some(condition)),
        (_, problem) => {
            let why = problem.unwrap_or_else(|| "it is not a condition".into());
            let at = session.locate(file, &["filters"]);
            session.push(
                Diagnostic::error(
                    "invalid-filters",
                    format!("the trigger's `filters` cannot be evaluated when a webhook arrives: {why}"),
                )
                .at(at)
                .with_help("return a condition over the request from `filters(request)`, built with the operators of @useparagon/core/operator, e.g. `Operators.StringExactlyMatches(request.headers['x-event'], 'order.shipped')`"),
            );
            Err(())
        }
    }
}

/// A recorded value as a source that reads only the request (and literals).
fn request_source(value: &Value) -> Result<Source, String> {
    let source = lower::to_source(value, &lower::Scope::default()).map_err(|e| e.0)?;
    let mut foreign = None;
    source.walk(&mut |s| {
        let what = match s {
            Source::Value { .. }
            | Source::Tokenized { .. }
            | Source::Object { .. }
            | Source::Array { .. }
            | Source::WebhookRequest { .. } => return,
            Source::Variable { .. } => "a step's output",
            Source::EnvironmentSecret { .. } => "an environment secret",
            Source::Credential { .. } | Source::ConfigInput { .. } => "a credential",
            Source::UserSetting { .. } => "a User Setting",
            Source::ConnectUser { .. } | Source::PersonaMetadata { .. } => "the connected user",
            Source::ResourceInput { .. } => "a resource input",
            Source::PageToken {} => "a page token",
        };
        foreign.get_or_insert(what);
    });
    match foreign {
        Some(what) => Err(format!(
            "it reads {what}, but only the request (`{{ method, headers, query, body }}`) and literal values are known then"
        )),
        None => Ok(source),
    }
}
