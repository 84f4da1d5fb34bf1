//! Workflow metadata: id, name, description, inputs, flags, and display order. (The step graph
//! that `define()` records is compiled separately.)

use std::collections::BTreeMap;

use para_build::Workflow;
use para_project::Diagnostic;
use serde_json::Value;

use para_js::Modules;

use crate::{
    eval::{Session, locate},
    findings::{Declared, ForeignOrder},
    graph, inputs,
    layout::IntegrationFolder,
    lower,
    triggers::Triggers,
};

/// Reports every workflow id declared more than once in the project; the first declaration (by
/// file path) is the one kept in the message.
pub fn check_unique_ids(modules: &Modules, declared: &mut [Declared], out: &mut Vec<Diagnostic>) {
    declared.sort_by(|a, b| a.file.cmp(&b.file));
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for d in declared.iter() {
        match first.get(d.id.as_str()) {
            None => {
                first.insert(&d.id, &d.file);
            }
            Some(first_file) => out.push(
                Diagnostic::error("duplicate-workflow-id", format!("two workflows have the id `{}`", d.id))
                    .at(locate(modules, &d.file, &["id"]))
                    .with_label("duplicate id")
                    .with_related(locate(modules, first_file, &["id"]), "first used")
                    .with_help(
                        "workflow ids key users' settings and run history, so each must be unique in the project; give this workflow a new UUID",
                    ),
            ),
        }
    }
}

/// Reports `workflowDisplayOrder` entries that name a workflow of another integration.
pub fn report_foreign_order(
    modules: &Modules,
    declared: &[Declared],
    entries: &[ForeignOrder],
    out: &mut Vec<Diagnostic>,
) {
    for entry in entries {
        let which = match declared.iter().find(|d| d.id == entry.id) {
            Some(d) => format!("`{}`", d.file),
            None => format!("`{}`", entry.id),
        };
        let position = entry.index.to_string();
        out.push(
            Diagnostic::error(
                "invalid-display-order",
                format!("`workflowDisplayOrder` lists workflow {which}, which is not a workflow of this integration"),
            )
            .at(locate(modules, &entry.config_file, &["workflowDisplayOrder", &position]))
            .with_help("list only workflows from this integration's workflows/ folder"),
        );
    }
}

/// Compiles every workflow file of an integration, in path order.
pub fn compile_all(
    session: &mut Session<'_>,
    folder: &IntegrationFolder,
    allowed_types: &[&str],
    shared_input_ids: &[String],
    catalog: Option<&'static para_catalog::Integration>,
    custom_triggers: &Triggers,
) -> Vec<Workflow> {
    let integration = Integration { key: &folder.key, catalog, custom_triggers };
    folder
        .workflows
        .iter()
        .filter_map(|file| {
            compile_one(session, file, allowed_types, shared_input_ids, &integration)
        })
        .collect()
}

/// What a workflow's graph may name of its integration.
struct Integration<'a> {
    key: &'a str,
    catalog: Option<&'static para_catalog::Integration>,
    custom_triggers: &'a Triggers,
}

fn compile_one(
    session: &mut Session<'_>,
    file: &str,
    allowed_types: &[&str],
    shared_input_ids: &[String],
    integration: &Integration<'_>,
) -> Option<Workflow> {
    let mut described = session.describe(file, "describeWorkflow")?;
    match described.get("shape").and_then(Value::as_str) {
        Some("workflow") => {}
        Some("missing") => {
            session.push(
                Diagnostic::error(
                    "missing-default-export",
                    "this workflow file has no default export",
                )
                .in_file(file)
                .with_help("export the workflow: `export default class extends Workflow<…> { … }`"),
            );
            return None;
        }
        _ => {
            let at = session.locate(file, &[]);
            session.push(
                Diagnostic::error(
                    "not-a-workflow",
                    "the default export of a workflow file must be a class extending Workflow",
                )
                .at(at)
                .with_label("not a Workflow class")
                .with_help("write `export default class extends Workflow<…> { define(…) { … } }`"),
            );
            return None;
        }
    }
    let mut ok = true;
    // `id` identifies the workflow (an error when missing or empty); `name` and `description`
    // are display text, accepted as written: Paragon's generators write `''` for what the
    // user has not filled in yet.
    let mut text = |session: &mut Session<'_>, field: &str| -> Option<String> {
        match described.get(field) {
            Some(Value::String(s)) if field != "id" || !s.trim().is_empty() => Some(s.clone()),
            None | Some(Value::Null) if field == "description" => None,
            None | Some(Value::Null) if field == "name" => None,
            None | Some(Value::Null) | Some(Value::String(_)) => {
                let at = session.locate(file, &[]);
                session.push(
                    Diagnostic::error("missing-field", "this workflow has no `id`")
                        .at(at)
                        .with_label("`id` missing")
                        .with_help("add `readonly id: string = '…'` with a new UUID; it must never change once users have enabled the workflow"),
                );
                ok = false;
                None
            }
            Some(_) => {
                let at = session.locate(file, &[field]);
                session.push(
                    Diagnostic::error(
                        "invalid-field",
                        format!("the workflow's `{field}` must be a string"),
                    )
                    .at(at),
                );
                ok = false;
                None
            }
        }
    };
    let id = text(session, "id");
    let name = text(session, "name");
    let description = text(session, "description");
    if name.as_deref().is_none_or(|n| n.trim().is_empty()) && ok {
        let at = session.locate(file, if name.is_some() { &["name"] } else { &[] });
        session.push(
            Diagnostic::warning("empty-field", "this workflow has no name").at(at).with_help(
                "set `name: string = '…'`: the Connect Portal and the dashboard show it",
            ),
        );
    }
    let mut flag = |session: &mut Session<'_>, field: &str| -> bool {
        match described.get(field) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                let at = session.locate(file, &[field]);
                session.push(
                    Diagnostic::error(
                        "invalid-field",
                        format!("the workflow's `{field}` must be true or false"),
                    )
                    .at(at),
                );
                ok = false;
                false
            }
        }
    };
    let default_enabled = flag(session, "defaultEnabled");
    let hidden = flag(session, "hidden");
    let scope = inputs::InputScope {
        file,
        prefix: &["inputs"],
        what: "workflow's settings",
        allowed_types,
    };
    let raw_inputs = described.get("inputs").cloned().unwrap_or(Value::Null);
    let workflow_inputs = inputs::convert(session, &raw_inputs, &scope);
    let id = id?;
    session.declared.push(Declared { id: id.clone(), file: file.to_string() });
    let cx = graph::Context {
        file,
        workflow_id: &id,
        shared_input_ids,
        catalog: integration.catalog,
        integration_key: integration.key,
        custom_triggers: &integration.custom_triggers.compiled,
        failed_custom_triggers: &integration.custom_triggers.failed,
    };
    let mut recorded = described.get_mut("graph").map(Value::take).unwrap_or(Value::Null);
    if graph::needs_sites(&recorded) {
        // A step that is not registered can only be shown where it is created: record again,
        // with creation sites this time (define() is deterministic).
        let again = session.describe_with(file, "describeWorkflow", &format!("sites:{file}"));
        if let Some(graph) = again.and_then(|mut d| d.get_mut("graph").map(Value::take)) {
            recorded = graph;
        }
    }
    let graph = graph::compile(session, &cx, recorded);
    let permissions =
        graph::permissions(session, file, described.get("permissions").unwrap_or(&Value::Null));
    if !ok {
        return None;
    }
    Some(Workflow {
        id,
        name: name.unwrap_or_default(),
        description,
        order: 0,
        default_enabled,
        hidden,
        inputs: workflow_inputs,
        source: file.to_string(),
        trigger: graph.as_ref().and_then(|g| g.trigger.clone()),
        steps: graph.map(|g| g.steps).unwrap_or_default(),
        permissions,
    })
}

/// Resolves `workflowDisplayOrder` to workflow ids, reporting entries that are not workflows of
/// this integration.
pub fn apply_order(
    session: &mut Session<'_>,
    config_file: &str,
    display_order: &[Value],
    workflows: &[Workflow],
) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (index, entry) in display_order.iter().enumerate() {
        let position = index.to_string();
        let at = session.locate(config_file, &["workflowDisplayOrder", &position]);
        let id = match lower::special(entry) {
            Some((lower::WORKFLOW, Value::String(id))) => id.clone(),
            _ => {
                session.push(
                    Diagnostic::error(
                        "invalid-display-order",
                        format!("item {index} of `workflowDisplayOrder` is not a workflow class"),
                    )
                    .at(at)
                    .with_help("list the workflow classes themselves: `import PushTasks from './workflows/pushTasks'` then `workflowDisplayOrder: [PushTasks]`"),
                );
                continue;
            }
        };
        if !workflows.iter().any(|w| w.id == id) {
            // A workflow of this folder that failed to compile was reported already; anything
            // else is reported once every integration is compiled (see `report_foreign_order`).
            let folder = config_file.trim_end_matches("config.ts");
            let declared_here =
                session.declared.iter().any(|d| d.id == id && d.file.starts_with(folder));
            if !declared_here {
                session.foreign_order.push(ForeignOrder {
                    config_file: config_file.to_string(),
                    index,
                    id,
                });
            }
            continue;
        }
        if ids.contains(&id) {
            session.push(
                Diagnostic::warning(
                    "invalid-display-order",
                    format!(
                        "`workflowDisplayOrder` lists `{}` twice",
                        workflows
                            .iter()
                            .find(|w| w.id == id)
                            .map_or(id.as_str(), |w| w.source.as_str())
                    ),
                )
                .at(at)
                .with_help("the first position counts; remove the second"),
            );
            continue;
        }
        ids.push(id);
    }
    ids
}

/// Keys workflows by id and numbers them: listed ones first in list order, then the rest by
/// file path.
pub fn with_order(
    workflows: Vec<Workflow>,
    display_order: &[String],
) -> BTreeMap<String, Workflow> {
    let mut unlisted = 0u32;
    let listed = display_order.len() as u32;
    workflows
        .into_iter()
        .map(|mut w| {
            w.order = match display_order.iter().position(|id| *id == w.id) {
                Some(position) => position as u32,
                None => {
                    unlisted += 1;
                    listed + unlisted - 1
                }
            };
            (w.id.clone(), w)
        })
        .collect()
}
