//! Writes a synthetic but realistic project: catalog and custom integrations, inputs, events,
//! shared helpers, and workflows with ~10 steps of mixed kinds.

use std::{fmt::Write as _, path::Path};

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

/// A deterministic UUID-shaped id.
fn id(kind: u32, a: usize, b: usize) -> String {
    format!("{kind:08x}-{a:04x}-4{b:03x}-8000-{:012x}", a * 1000 + b)
}

fn workflow(i: usize, w: usize, shared: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "import {{ ConditionalStep, EventStep, FanOutStep, FunctionStep, IntegrationRequestStep, RequestStep, Workflow }} from '@useparagon/core';
import {{ IContext }} from '@useparagon/core/execution';
import * as Operators from '@useparagon/core/operator';
import {{ IConnectUser }} from '@useparagon/core/user';
import {{ createInputs }} from '@useparagon/core/inputs';

import event from '../../../events/event{e}';
import {{ appHeaders }} from '../../../lib/headers';
import sharedInputs from '../inputs';

export default class extends Workflow<any, any, any> {{
  define(integration: any, context: IContext<any>, connectUser: IConnectUser<any>) {{
    const trigger = new EventStep(event);
    const check = new ConditionalStep({{
      if: Operators.And(Operators.NumberGreaterThan(trigger.output.amount, 10), Operators.StringContains(trigger.output.title, 'x')),
    }});
    const fetch = new RequestStep({{
      url: `https://api.example.com/v1/items/${{trigger.output.id}}`,
      method: 'GET',
      headers: appHeaders(`${{context.getEnvironmentSecret('API_KEY')}}`),
    }});
    const each = new FanOutStep({{ iterator: fetch.output.response.body.items }});
    const map = new FunctionStep({{
      code: function map(parameters: {{ item: {{ name: string }} }}) {{
        return {{ name: parameters.item.name.toUpperCase() }};
      }},
      parameters: {{ item: each.output.instance }},
    }});
    const push = new IntegrationRequestStep({{
      method: 'POST',
      url: `/records/${{context.getInput(sharedInputs.{shared})}}`,
      body: {{ name: map.output.result.name, user: connectUser.userId }},
      bodyType: 'json',
    }});
    const summarize = new FunctionStep({{ code: (p: {{ n: number }}) => p.n, parameters: {{ n: 1 }} }});
    const log = new RequestStep({{ url: 'https://logs.example.com/ingest', method: 'POST', body: {{ ok: true }} }});
    const finish = new FunctionStep({{ code: () => 'done', parameters: {{}} }});
    const notify = new RequestStep({{ url: 'https://hooks.example.com/{i}/{w}', method: 'POST', body: {{ id: trigger.output.id }} }});
    trigger.nextStep(check.whenTrue(fetch.nextStep(each.branch(map.nextStep(push))))).nextStep(summarize).nextStep(log).nextStep(finish).nextStep(notify);
    return this.register({{ trigger, check, fetch, each, map, push, summarize, log, finish, notify }});
  }}

  name = 'Workflow {i}.{w}';
  description = 'Generated workflow {w} of integration {i}';
  inputs = createInputs({{
    threshold: {{ id: '{input_id}', title: 'Threshold', type: 'number', required: false }},
  }});
  defaultEnabled = {enabled};
  hidden = false;
  readonly id = '{wf_id}';
}}
",
        e = (i + w) % 10,
        input_id = id(3, i, w),
        enabled = w.is_multiple_of(2),
        wf_id = id(1, i, w),
    );
    s
}

/// Generates the project; returns the number of `.ts` files written.
pub fn project(root: &Path, integrations: usize, workflows: usize) -> std::io::Result<usize> {
    let mut files = 0;
    let mut put = |rel: &str, text: &str| -> std::io::Result<()> {
        files += 1;
        write(&root.join(rel), text)
    };
    write(
        &root.join(".para/project.json"),
        r#"{"projectId":"00000000-0000-4000-8000-000000000000","projectName":"generated","profile":"default"}"#,
    )?;
    write(
        &root.join("tsconfig.json"),
        r#"{"compilerOptions":{"module":"commonjs","target":"es2020","rootDir":"src","strict":false,"skipLibCheck":true,"noEmitOnError":false},"include":["src"]}"#,
    )?;
    put("src/persona.meta.ts", "export default { plan: 'pro', teamId: 't1' };\n")?;
    put(
        "src/lib/headers.ts",
        "export function appHeaders(secret: string): Record<string, string> {\n  return { 'X-Key': secret, Accept: 'application/json' };\n}\n",
    )?;
    for e in 0..10 {
        put(
            &format!("src/events/event{e}.ts"),
            &format!(
                "export default {{ name: 'Event {e}', schema: {{ id: 'x{e}', amount: {e}, title: 't' }} }};\n"
            ),
        )?;
    }
    let catalog: Vec<&str> = para_catalog::keys().collect();
    for i in 0..integrations {
        let (key, custom) = match catalog.get(i) {
            Some(key) => (key.to_string(), false),
            None => (format!("custom.service{i}"), true),
        };
        let dir = format!("src/integrations/{key}");
        let classes: Vec<String> = (0..workflows).map(|w| format!("W{w}")).collect();
        let imports: String = (0..workflows)
            .map(|w| format!("import W{w} from './workflows/workflow{w}';\n"))
            .collect();
        let config = if custom {
            format!(
                "import {{ createConfigInputs, credentials }} from '@useparagon/core/integration';
{imports}
export const inputs = createConfigInputs({{ region: {{ id: '{cid}', title: 'Region', type: 'text' }} }});

export default {{
  name: 'Service {i}',
  description: 'Generated custom integration {i}',
  authenticationType: 'oauth',
  authorizationUrl: 'https://auth.service{i}.example/authorize',
  accessTokenUrl: 'https://auth.service{i}.example/token',
  scopes: 'read write',
  apiBaseUrl: `https://${{inputs.region}}.service{i}.example/api`,
  testEndpointPath: '/me',
  authorization: {{ type: 'bearer', token: `${{credentials.oauthAccessToken}}` }},
  workflowDisplayOrder: [{order}],
}};
",
                cid = id(2, i, 0),
                order = classes.join(", ")
            )
        } else {
            format!(
                "{imports}\nexport default {{ description: 'Generated {key}', overviewText: '**{key}**', workflowDisplayOrder: [{}] }};\n",
                classes.join(", ")
            )
        };
        put(&format!("{dir}/config.ts"), &config)?;
        put(
            &format!("{dir}/inputs.ts"),
            &format!(
                "import {{ createInputs }} from '@useparagon/core/inputs';
export default createInputs({{
  target: {{ id: '{a}', title: 'Target', type: 'text', required: true }},
  limit: {{ id: '{b}', title: 'Limit', type: 'number' }},
  enabled: {{ id: '{c}', title: 'Enabled', type: 'boolean' }},
}});
",
                a = id(4, i, 0),
                b = id(4, i, 1),
                c = id(4, i, 2)
            ),
        )?;
        for w in 0..workflows {
            put(&format!("{dir}/workflows/workflow{w}.ts"), &workflow(i, w, "target"))?;
        }
    }
    Ok(files)
}

pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::write(&target, std::fs::read(entry.path())?)?;
        }
    }
    Ok(())
}

pub fn count_files(dir: &Path, extension: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p, extension)
            } else {
                usize::from(p.extension().is_some_and(|x| x == extension))
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use para_compiler::{Options, compile};

    /// The benchmark's project is recorded without the JavaScript engine, and that changes
    /// nothing in what the build says (the compiler's own tests compare every fixture).
    #[test]
    fn the_generated_project_is_recorded_directly_and_builds_the_same() {
        let dir = tempfile::tempdir().unwrap();
        super::project(dir.path(), 12, 5).unwrap();
        let (root, marker) = para_project::root_at(dir.path()).unwrap();
        let project = para_project::load(&root, marker).unwrap();
        let bytes = |direct: bool| {
            let output = compile(&project, &Options { direct, ..Options::default() });
            assert!(output.diagnostics.is_empty(), "{:?}", output.diagnostics);
            let mut bytes = Vec::new();
            output.document.as_ref().unwrap().write_to(&mut bytes).unwrap();
            (bytes, output.recorded)
        };
        let (direct, recorded) = bytes(true);
        let (engine, _) = bytes(false);
        assert!(direct == engine, "build.json differs with direct recording");
        assert_eq!(recorded.by_engine, 0, "{recorded:?}");
        assert_eq!(
            recorded.directly,
            1 + 10 + 12 * 7,
            "persona, events, and per integration config, inputs and 5 workflows"
        );
    }
}
