//! Custom webhook triggers (`src/integrations/<key>/triggers/*.ts`): the `custom-triggers`
//! fixture as built, and each finding a broken variant of it gets, with its file and line.
//! Every variant is compiled both directly and by the engine (trigger files always go to the
//! engine; the workflows that import them too), and both must agree.

mod common;

use std::path::{Path, PathBuf};

use para_build::{Build, Source, StepKind, TriggerLevel, TriggerSetup};
use para_compiler::{Output, compile};
use para_project::{Diagnostic, Project, render};

const DEAL: &str = "src/integrations/hubspot/triggers/dealStageChanged.ts";
const CONTACT: &str = "src/integrations/hubspot/triggers/contactCreated.ts";
const WORKFLOW: &str = "src/integrations/hubspot/workflows/dealWon.ts";
const DEAL_ID: &str = "6f1c9a52-3d8e-4b7a-9c21-5e0f4d3b2a10";
const CONTACT_ID: &str = "0b7e2d4c-8a15-4f63-b9d0-2c6a1e5f7d38";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ok/custom-triggers")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture with `edits` applied (path → new text; `None` removes the file).
struct Variant {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Variant {
    fn new(edits: &[(String, Option<String>)]) -> Variant {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        copy_dir(&fixture(), &root);
        for (path, text) in edits {
            let file = root.join(path);
            match text {
                Some(text) => {
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(file, text).unwrap();
                }
                None => std::fs::remove_file(file).unwrap(),
            }
        }
        Variant { _dir: dir, root }
    }

    /// Compiles both ways, requires the same findings, and returns the direct one.
    fn compile(&self) -> (Project, Output) {
        let project = common::load(&self.root);
        let direct = compile(&project, &common::options(true));
        let engine = compile(&project, &common::options(false));
        let text = |o: &Output| {
            o.diagnostics.iter().map(|d| render(d, &project)).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(text(&direct), text(&engine), "direct and engine recording disagree");
        assert_eq!(
            direct.build.as_ref().map(Build::to_json_pretty),
            engine.build.as_ref().map(Build::to_json_pretty)
        );
        (project, direct)
    }
}

fn original(path: &str) -> String {
    std::fs::read_to_string(fixture().join(path)).unwrap()
}

/// `path` of the fixture with `from` replaced by `to` (which must be there).
fn edited(path: &str, from: &str, to: &str) -> (String, Option<String>) {
    edited_all(path, &[(from, to)])
}

/// `path` of the fixture with each `(from, to)` replaced in turn.
fn edited_all(path: &str, replacements: &[(&str, &str)]) -> (String, Option<String>) {
    let mut text = original(path);
    for (from, to) in replacements {
        assert!(text.contains(from), "{path} has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    (path.to_string(), Some(text))
}

/// The 1-based line a finding points at.
fn line_of(project: &Project, d: &Diagnostic) -> usize {
    let location = d.location.as_ref().expect("a located finding");
    let text = &project.file(&location.file).expect("a project file").text;
    let span = location.span.expect("a span");
    text[..span.start as usize].matches('\n').count() + 1
}

/// The line of `path` (in the variant's text) holding `needle`.
fn line_with(project: &Project, path: &str, needle: &str) -> usize {
    let text = &project.file(path).unwrap().text;
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no `{needle}`")) + 1
}

/// The one finding of `code`, requiring it in `file` on the line holding `needle`.
fn finding<'a>(
    project: &Project,
    output: &'a Output,
    code: &str,
    file: &str,
    needle: &str,
) -> &'a Diagnostic {
    let all = || output.diagnostics.iter().map(|d| render(d, project)).collect::<Vec<_>>();
    let found: Vec<_> = output.diagnostics.iter().filter(|d| d.code == code).collect();
    assert_eq!(found.len(), 1, "expected one `{code}`, got:\n{}", all().join("\n"));
    let d = found[0];
    assert_eq!(d.location.as_ref().map(|l| l.file.as_str()), Some(file), "{}", render(d, project));
    assert_eq!(line_of(project, d), line_with(project, file, needle), "{}", render(d, project));
    d
}

/// The workflow starting from a trigger whose file has errors is not reported again.
fn no_cascade(output: &Output) {
    assert!(
        !output.diagnostics.iter().any(|d| d.code == "invalid-custom-trigger"),
        "a broken trigger file's workflow is reported too"
    );
}

#[test]
fn two_trigger_files_and_a_workflow_build() {
    let (project, output) = Variant::new(&[]).compile();
    let build = output.build.as_ref().unwrap_or_else(|| {
        panic!("{:?}", output.diagnostics.iter().map(|d| render(d, &project)).collect::<Vec<_>>())
    });
    assert!(output.diagnostics.is_empty());
    let hubspot = &build.integrations["hubspot"];
    let ids: Vec<&str> = hubspot.custom_triggers.keys().map(String::as_str).collect();
    assert_eq!(ids, [CONTACT_ID, DEAL_ID]);

    let deal = &hubspot.custom_triggers[DEAL_ID];
    assert_eq!(deal.name, "Deal Stage Changed");
    assert_eq!(deal.description.as_deref(), Some("Triggers when a deal moves to a closed stage"));
    assert_eq!((deal.level, deal.setup), (TriggerLevel::User, TriggerSetup::Manual));
    assert_eq!(deal.source, DEAL);
    assert_eq!(deal.sample_payload["propertyValue"], "closedwon");
    assert!(deal.provider_id.is_none());
    // And(event, Or(startsWith, isIn)) as an OR of two AND groups over the request.
    let filters = deal.filters.as_ref().expect("filters");
    let shape: Vec<Vec<&str>> = filters
        .or
        .iter()
        .map(|group| group.iter().map(|op| op.operator.as_str()).collect())
        .collect();
    assert_eq!(
        shape,
        [["$stringExactlyMatches", "$stringStartsWith"], ["$stringExactlyMatches", "$arrayIsIn"]]
    );
    assert_eq!(
        filters.or[0][0].operands[0],
        Source::WebhookRequest { path: vec!["headers".into(), "x-hubspot-event".into()] }
    );

    let contact = &hubspot.custom_triggers[CONTACT_ID];
    assert_eq!(contact.level, TriggerLevel::App);
    assert!(contact.filters.is_none());
    assert_eq!(
        contact.provider_id,
        Some(Source::Tokenized {
            parts: vec![Source::WebhookRequest { path: vec!["body".into(), "portalId".into()] }]
        })
    );

    // The workflow's trigger step names the trigger by id.
    let workflow = hubspot.workflows.values().next().unwrap();
    assert_eq!(workflow.source, WORKFLOW);
    assert_eq!(workflow.steps[0].kind, StepKind::CustomTrigger { trigger_id: DEAL_ID.into() });

    // What out/build.json says, field by field.
    let json: serde_json::Value = serde_json::from_str(&build.to_json_pretty()).unwrap();
    let written = &json["integrations"]["hubspot"]["customTriggers"][DEAL_ID];
    assert_eq!(written["id"], DEAL_ID);
    assert_eq!(written["level"], "user");
    assert_eq!(written["setup"], "manual");
    assert_eq!(written["filters"]["or"][0][0]["operands"][0]["type"], "WEBHOOK_REQUEST");
    assert_eq!(
        json["integrations"]["hubspot"]["workflows"][&workflow.id]["steps"][0]["parameters"],
        serde_json::json!({ "triggerId": DEAL_ID })
    );
    assert_eq!(json["integrations"]["hubspot"]["customTriggers"][CONTACT_ID]["level"], "app");
}

#[test]
fn a_trigger_without_a_name_or_an_id_is_an_error() {
    let (project, output) =
        Variant::new(&[edited(DEAL, "  name = 'Deal Stage Changed';\n", "")]).compile();
    assert!(output.build.is_none());
    let d = finding(&project, &output, "missing-field", DEAL, "export default class");
    assert!(d.message.contains("`name`"), "{}", d.message);
    no_cascade(&output);

    let (project, output) = Variant::new(&[edited(
        CONTACT,
        "readonly id = '0b7e2d4c-8a15-4f63-b9d0-2c6a1e5f7d38';",
        "readonly id = '';",
    )])
    .compile();
    assert!(output.build.is_none());
    let d = finding(&project, &output, "missing-field", CONTACT, "readonly id");
    assert!(d.message.contains("`id`"), "{}", d.message);
}

#[test]
fn filters_the_engine_cannot_evaluate_are_errors() {
    // Not a condition at all.
    let (project, output) = Variant::new(&[edited(
        DEAL,
        "return Operators.And(",
        "return request.body.propertyValue === 'closedwon' && Operators.And(",
    )])
    .compile();
    assert!(output.build.is_none());
    let d = finding(&project, &output, "invalid-filters", DEAL, "filters(request");
    assert!(d.message.contains("not a condition"), "{}", d.message);

    // An operator the engine does not know.
    let (project, output) = Variant::new(&[edited(
        DEAL,
        "Operators.ArrayIsIn(request.body.tags, 'vip')",
        "{ operator: '$soundsLike', operands: [request.body.tags, 'vip'] } as any",
    )])
    .compile();
    let d = finding(&project, &output, "invalid-filters", DEAL, "filters(request");
    assert!(d.message.contains("`$soundsLike`"), "{}", d.message);

    // A value that is not known when the webhook arrives: the connected account's credential.
    let (project, output) = Variant::new(&[edited_all(
        DEAL,
        &[
            (
                "import * as Operators from '@useparagon/core/operator';",
                "import * as Operators from '@useparagon/core/operator';\nimport { credentials } from '@useparagon/core/integration';",
            ),
            (
                "Operators.ArrayIsIn(request.body.tags, 'vip')",
                "Operators.StringExactlyMatches(request.headers['x-token'], credentials.apiKey)",
            ),
        ],
    )])
    .compile();
    let d = finding(&project, &output, "invalid-filters", DEAL, "filters(request");
    assert!(d.message.contains("a credential"), "{}", d.message);
    no_cascade(&output);
}

#[test]
fn a_workflow_cannot_start_from_another_integrations_trigger() {
    let slack_workflow = "src/integrations/slack/workflows/relay.ts";
    let (project, output) = Variant::new(&[
        (
            "src/integrations/slack/config.ts".into(),
            Some("export default { description: 'Relays deals' };\n".into()),
        ),
        (
            "src/integrations/slack/inputs.ts".into(),
            Some("import { createInputs } from '@useparagon/integrations/slack';\n\nexport default createInputs({});\n".into()),
        ),
        (
            slack_workflow.into(),
            Some(
                "import { CustomTriggerStep, FunctionStep, Workflow } from '@useparagon/core';\n\
                 import DealStageChanged from '../../hubspot/triggers/dealStageChanged';\n\
                 \n\
                 export default class extends Workflow<any, any, any> {\n\
                 \x20 define() {\n\
                 \x20   const trigger = new CustomTriggerStep(DealStageChanged);\n\
                 \x20   const note = new FunctionStep({ code: () => 1, parameters: {} });\n\
                 \x20   trigger.nextStep(note);\n\
                 \x20   return this.register({ trigger, note });\n\
                 \x20 }\n\
                 \x20 name = 'Relay';\n\
                 \x20 readonly id = '3e1d2c4b-0001-4000-8000-0000000000c2';\n\
                 }\n"
                .into(),
            ),
        ),
    ])
    .compile();
    assert!(output.build.is_none());
    let d = finding(
        &project,
        &output,
        "invalid-custom-trigger",
        slack_workflow,
        "new CustomTriggerStep",
    );
    assert!(d.message.contains(DEAL), "{}", d.message);
}

#[test]
fn custom_trigger_step_takes_a_trigger_class() {
    let (project, output) = Variant::new(&[edited(
        WORKFLOW,
        "new CustomTriggerStep(DealStageChanged)",
        "new CustomTriggerStep({ name: 'Deal Stage Changed' } as any)",
    )])
    .compile();
    assert!(output.build.is_none());
    finding(&project, &output, "invalid-custom-trigger", WORKFLOW, "new CustomTriggerStep");
}

#[test]
fn two_trigger_files_with_one_id_are_an_error() {
    let copy = "src/integrations/hubspot/triggers/dealStageChanged2.ts";
    let (project, output) = Variant::new(&[(
        copy.into(),
        Some(original(DEAL).replace("'Deal Stage Changed'", "'Deal Stage Changed Again'")),
    )])
    .compile();
    assert!(output.build.is_none());
    let d = finding(&project, &output, "duplicate-custom-trigger-id", copy, "readonly id");
    assert_eq!(d.related.first().map(|(l, _)| l.file.as_str()), Some(DEAL));
}

#[test]
fn a_default_export_that_is_not_a_trigger_class_is_an_error() {
    let (project, output) = Variant::new(&[(
        CONTACT.into(),
        Some("export default {\n  name: 'Contact Created',\n};\n".into()),
    )])
    .compile();
    assert!(output.build.is_none());
    finding(&project, &output, "not-a-custom-trigger", CONTACT, "export default");
}

#[test]
fn an_app_level_trigger_without_provider_id_and_an_api_created_one_warn() {
    let (project, output) = Variant::new(&[
        edited(
            CONTACT,
            "  mapPayload = {\n    providerId: (context: IProviderIdContext) => `${context.webhookRequest.body.portalId}`,\n  };\n",
            "",
        ),
        edited_all(
            DEAL,
            &[
                ("  ManualWebhookTrigger,\n", "  ApiEndpointWebhookTrigger,\n"),
                (
                    "extends ManualWebhookTrigger<'USER'> {",
                    "extends ApiEndpointWebhookTrigger<'USER'> {\n  create() {\n    return { method: 'POST', url: 'https://api.hubapi.com/webhooks' };\n  }\n",
                ),
            ],
        ),
    ])
    .compile();
    let build = output.build.as_ref().expect("warnings only");
    finding(&project, &output, "missing-provider-id", CONTACT, "export default class");
    finding(&project, &output, "webhook-not-created", DEAL, "create()");
    assert_eq!(build.integrations["hubspot"].custom_triggers[DEAL_ID].setup, TriggerSetup::Api);
}
