//! Workflow metadata: id, name, description, inputs, flags, and display order. (The step graph
//! that `define()` records is compiled separately.)

use std::collections::BTreeMap;

use para_build::Workflow;
use para_project::Diagnostic;
use serde_json::Value;

use crate::{eval::Session, inputs, layout::IntegrationFolder, lower};

/// Compiles every workflow file of an integration, in path order. Workflows whose id is already
/// taken anywhere in the project are reported and left out.
pub fn compile_all(
    session: &mut Session<'_>,
    folder: &IntegrationFolder,
    allowed_types: &[&str],
) -> Vec<Workflow> {
    folder.workflows.iter().filter_map(|file| compile_one(session, file, allowed_types)).collect()
}

fn compile_one(session: &mut Session<'_>, file: &str, allowed_types: &[&str]) -> Option<Workflow> {
    let described = session.describe(file, "describeWorkflow")?;
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
    let mut text = |session: &mut Session<'_>, field: &str, required: bool| -> Option<String> {
        match described.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                let at = session.locate(file, &[]);
                let help = match field {
                    "id" => {
                        "add `readonly id: string = '…'` with a new UUID; it must never change once users have enabled the workflow"
                    }
                    _ => {
                        "add `name: string = '…'`: it is shown in the Connect Portal and dashboard"
                    }
                };
                session.push(
                    Diagnostic::error("missing-field", format!("this workflow has no `{field}`"))
                        .at(at)
                        .with_label(format!("`{field}` missing"))
                        .with_help(help),
                );
                ok = false;
                None
            }
            Some(_) => {
                let at = session.locate(file, &[field]);
                session.push(
                    Diagnostic::error(
                        "invalid-field",
                        format!("the workflow's `{field}` must be a non-empty string"),
                    )
                    .at(at),
                );
                ok = false;
                None
            }
        }
    };
    let id = text(session, "id", true);
    let name = text(session, "name", true);
    let description = text(session, "description", false);
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
    if let Some(first) = session.workflow_ids.get(&id).cloned() {
        let at = session.locate(file, &["id"]);
        let first_at = session.locate(&first, &["id"]);
        session.push(
            Diagnostic::error("duplicate-workflow-id", format!("two workflows have the id `{id}`"))
                .at(at)
                .with_label("duplicate id")
                .with_related(first_at, "first used")
                .with_help(
                    "workflow ids key users' settings and run history, so each must be unique in the project; give this workflow a new UUID",
                ),
        );
        return None;
    }
    session.workflow_ids.insert(id.clone(), file.to_string());
    if !ok {
        return None;
    }
    Some(Workflow {
        id,
        name: name?,
        description,
        order: 0,
        default_enabled,
        hidden,
        inputs: workflow_inputs,
        source: file.to_string(),
        trigger: None,
        steps: Vec::new(),
        permissions: None,
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
            // else is a workflow of another integration.
            let folder = config_file.trim_end_matches("config.ts");
            let declared_here =
                session.workflow_ids.get(&id).is_some_and(|file| file.starts_with(folder));
            if !declared_here {
                let which = match session.workflow_ids.get(&id) {
                    Some(file) => format!("`{file}`"),
                    None => format!("`{id}`"),
                };
                session.push(
                    Diagnostic::error(
                        "invalid-display-order",
                        format!("`workflowDisplayOrder` lists workflow {which}, which is not a workflow of this integration"),
                    )
                    .at(at)
                    .with_help("list only workflows from this integration's workflows/ folder"),
                );
            }
            continue;
        }
        if ids.contains(&id) {
            session.push(
                Diagnostic::warning(
                    "invalid-display-order",
                    format!(
                        "`workflowDisplayOrder` lists `{}` twice",
                        session.workflow_ids.get(&id).map_or(id.as_str(), String::as_str)
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
