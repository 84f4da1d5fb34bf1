//! Direct recording must not change what a build says: every fixture, broken or not, and the
//! examples compile to the same bytes and the same findings with it as with every file
//! sent to the JavaScript engine. The counts show the direct path was actually taken.

mod common;
use common::{load, options};

use std::path::{Path, PathBuf};

use para_compiler::{Output, Recorded, compile};
use para_project::render;

fn document(output: &Output) -> Option<Vec<u8>> {
    output.document.as_ref().map(|d| {
        let mut bytes = Vec::new();
        d.write_to(&mut bytes).unwrap();
        bytes
    })
}

/// Compiles `dir` both ways, asserts the results are identical, and returns the direct counts
/// and whether it built.
fn same_both_ways(dir: &Path) -> (Recorded, bool) {
    let project = load(dir);
    let direct = compile(&project, &options(true));
    let engine = compile(&project, &options(false));
    let findings = |o: &Output| {
        o.diagnostics.iter().map(|d| render(d, &project)).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(findings(&direct), findings(&engine), "{}: findings differ", dir.display());
    let (a, b) = (document(&direct), document(&engine));
    if a != b {
        let text = |d: Option<Vec<u8>>| String::from_utf8(d.unwrap_or_default()).unwrap();
        let (a, b) = (text(a), text(b));
        let first = a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or(0);
        let around = |t: &str| {
            t.lines().skip(first.saturating_sub(5)).take(12).collect::<Vec<_>>().join("\n")
        };
        panic!(
            "{}: build.json differs from line {}\n--- direct\n{}\n--- engine\n{}",
            dir.display(),
            first + 1,
            around(&a),
            around(&b)
        );
    }
    assert_eq!(engine.recorded.directly, 0, "with `direct: false` nothing is recorded directly");
    (direct.recorded, direct.document.is_some())
}

fn fixtures() -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs = Vec::new();
    for group in ["ok", "broken"] {
        for entry in std::fs::read_dir(base.join(group)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            }
        }
    }
    dirs.sort();
    dirs
}

#[test]
fn every_fixture_builds_the_same_with_and_without_direct_recording() {
    let mut total = Recorded::default();
    for dir in fixtures() {
        let (counts, _) = same_both_ways(&dir);
        total.directly += counts.directly;
        total.by_engine += counts.by_engine;
    }
    eprintln!(
        "fixtures: {} descriptions recorded directly, {} by the engine",
        total.directly, total.by_engine
    );
    assert!(
        total.directly > total.by_engine,
        "most fixture files are plain declarations: {total:?}"
    );
}

#[test]
fn the_examples_are_recorded_without_the_engine_and_build_the_same() {
    for example in ["taskflow", "leadsync"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example);
        let (counts, built) = same_both_ways(&dir);
        assert!(built, "{example}");
        assert_eq!(
            counts.by_engine, 0,
            "{example} uses only what direct recording models: {counts:?}"
        );
        assert!(counts.directly >= 3, "{example}: {counts:?}");
    }
}

fn write_project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let base: &[(&str, &str)] =
        &[(".para/project.json", r#"{"projectId":"p","projectName":"direct"}"#)];
    for (rel, text) in base.iter().chain(files) {
        let path = tmp.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    tmp
}

/// The corners of JavaScript that direct recording models, each one compared with the engine:
/// key order, function names and sources, numbers in text, optional chains, helpers with
/// defaults and branches, request functions, actions and triggers, permissions, re-exports.
#[test]
fn modelled_corners_of_the_language_match_the_engine() {
    let dir = write_project(&[
        (
            "src/persona.meta.ts",
            "export default { plan: 'pro', seats: 3, flags: { beta: true } };\n",
        ),
        (
            "src/events/placed.ts",
            "export default { name: 'Order ' + 'Placed', schema: { b: 1, 2: 'x', a: 2, 1: 'y', n: -0, big: 9007199254740991, neg: -42, small: 0.000001, frac: 0.1 + 0.2 } };\n",
        ),
        (
            "src/lib/helpers.ts",
            "export function headers(secret: string, extra = { Accept: 'application/json' }) {\n  if (secret === '') {\n    return extra;\n  } else {\n    const out = { ...extra, 'X-Key': secret };\n    return out;\n  }\n}\nconst label = (n: number) => `n=${n} half=${n / 2} neg=${-n}`;\nexport { label as describeNumber };\nexport default function pageSize() { return 50; }\n",
        ),
        (
            "src/lib/index.ts",
            "export { };\nexport const region = 'eu';\nexport const pick = (a: any, b: any) => a ?? b;\n",
        ),
        (
            "src/integrations/custom.acme/config.ts",
            "import { createConfigInputs, credentials } from '@useparagon/core/integration';\nimport W from './workflows/main';\nexport const inputs = createConfigInputs({ host: { id: 'h1', title: 'Host', type: 'text' } });\nconst base = `https://${inputs.host}/v${2}`;\nexport default {\n  name: 'Acme',\n  authenticationType: 'oauth',\n  authorizationUrl: 'https://acme.example/authorize',\n  accessTokenUrl: 'https://acme.example/token',\n  apiBaseUrl: base,\n  testEndpointPath: '/me',\n  authorization: { type: 'bearer', token: `${credentials.oauthAccessToken}` },\n  workflowDisplayOrder: [W],\n};\n",
        ),
        (
            "src/integrations/custom.acme/inputs.ts",
            "import { createInputs } from '@useparagon/core/inputs';\nexport default createInputs({\n  target: { id: 't1', title: 'Target', type: 'text', required: true },\n  limit: { id: 't2', title: 'Limit', type: 'number' },\n});\n",
        ),
        (
            "src/integrations/custom.acme/workflows/main.ts",
            r#"import { ConditionalStep, EventStep, FanOutStep, FunctionStep, IntegrationRequestStep, RequestStep, DelayStep, Workflow } from '@useparagon/core';
import * as Operators from '@useparagon/core/operator';
import { createInputs } from '@useparagon/core/inputs';
import placed from '../../../events/placed';
import pageSize, { headers, describeNumber } from '../../../lib/helpers';
import * as lib from '../../../lib/index';
import shared from '../inputs';

function tidy(parameters: { x: number }) {
  return parameters.x;
}

export default class extends Workflow<any, any, any> {
  define(integration: any, context: any, connectUser: any) {
    const trigger = new EventStep(placed, { description: `for ${connectUser.userId}` });
    const gate = new ConditionalStep({
      description: describeNumber(3),
      if: Operators.Or(
        Operators.And(Operators.NumberGreaterThan(trigger.output?.amount, 10), Operators.StringContains(trigger.output['title'], 'x')),
        Operators.IsNull(trigger.output?.meta?.['a-b'][0]),
        Operators.None(),
      ),
    });
    const fetch = new IntegrationRequestStep({
      method: 'GET',
      url: (pageToken: any) => `/items?page=${pageToken}&size=${pageSize()}`,
      params: { region: lib.region, pick: lib.pick(undefined, 'fallback'), missing: this.inputs.nothing?.id ?? null },
      headers: headers(`${context.getEnvironmentSecret('KEY')}`),
      pagination: (step: any) => ({ pageToken: step.output.body.next, done: false }),
      body: { 2: 'two', target: context.getInput(shared.target), limit: `${shared.limit}`, who: 'user ' + connectUser.meta.plan },
    });
    const each = new FanOutStep({ iterator: fetch.output.body.items, description: 'each' });
    const inner = new FanOutStep({ iterator: each.output.instance.children });
    const arrow = new FunctionStep({ code: (p: any) => p.item, parameters: { item: inner.output.instance } });
    const named = new FunctionStep({ code: tidy, parameters: { x: 1 } });
    const anon = new FunctionStep({ code: async function () { return 1; }, parameters: {} });
    const act = integration.actions.createRecord({ a: `${fetch.output.body.id}` }, { autoRetry: true });
    const wait = new DelayStep({ value: 5, unit: 'MINUTES' });
    const other = new RequestStep({ url: 'https://example.com', method: 'POST', body: [1, 'two', null, undefined, () => 1] });
    trigger.nextStep(gate.whenFalse(fetch.nextStep(each.branch(inner.branch(arrow.next(named))))).whenTrue(anon)).nextStep(act).nextStep(wait).nextStep(other);
    return this.register({ trigger, gate, fetch, each, inner, arrow, named, anon, act, wait, other });
  }

  definePermissions(connectUser: any) {
    return Operators.StringIsIn(connectUser.meta.plan, ['pro', 'enterprise']);
  }

  name = `Main ${1 + 1}`;
  description = lib.region === 'eu' ? 'European' : 'Other';
  inputs = createInputs({ threshold: { id: 'w1', title: 'Threshold', type: 'number', required: false } });
  defaultEnabled = !false;
  hidden = false || false;
  readonly id = 'wf-main';
}
"#,
        ),
        (
            "src/integrations/slack/config.ts",
            "import Poll from './workflows/poll';\nexport default { description: 'Slack', workflowDisplayOrder: [Poll] };\n",
        ),
        (
            "src/integrations/slack/inputs.ts",
            "import { createInputs } from '@useparagon/integrations/slack';\nexport default createInputs({});\n",
        ),
        (
            "src/integrations/slack/workflows/poll.ts",
            "import { CronStep, FunctionStep, Workflow } from '@useparagon/core';\nexport default class Poll extends Workflow<any, any, any> {\n  define(integration: any) {\n    const tick = integration.triggers.messageReceived({ channel: '#general' });\n    const log = new FunctionStep({ code: (p: any) => p, parameters: { message: tick.output.text } });\n    tick.nextStep(log);\n    return this.register({ tick, log });\n  }\n  name = 'Poll';\n  readonly id = 'wf-poll';\n}\n",
        ),
    ]);
    let (counts, built) = same_both_ways(dir.path());
    if !built {
        let project = load(dir.path());
        let output = compile(&project, &options(true));
        let found: Vec<String> = output.diagnostics.iter().map(|d| render(d, &project)).collect();
        panic!("the project does not build:\n{}", found.join("\n"));
    }
    assert_eq!(counts.by_engine, 0, "every file here is modelled: {counts:?}");
}
