//! Hostile and odd inputs: the compiler must answer with findings, never a panic or a hang.

use std::path::Path;
use std::time::Duration;

use para_compiler::{EvaluationLimits, Options, compile};

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let base: &[(&str, &str)] = &[
        (".para/project.json", r#"{"projectId":"p","projectName":"odd"}"#),
        ("src/integrations/slack/config.ts", "export default { workflowDisplayOrder: [] };\n"),
        (
            "src/integrations/slack/inputs.ts",
            "import { createInputs } from '@useparagon/core/inputs';\nexport default createInputs({});\n",
        ),
    ];
    for (rel, text) in base.iter().chain(files) {
        let path = tmp.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    tmp
}

fn codes(dir: &Path) -> Vec<&'static str> {
    let (root, marker) = para_project::root_at(dir).unwrap();
    let project = para_project::load(&root, marker).unwrap();
    let options = Options {
        limits: EvaluationLimits {
            time_per_call: Duration::from_millis(500),
            memory_bytes: 64 << 20,
            ..EvaluationLimits::default()
        },
        generator: "test".into(),
        threads: 0,
        teardown: true,
        direct: true,
        trace_direct: false,
    };
    compile(&project, &options).diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn odd_values_become_findings() {
    let deep = format!("export default {}1{};\n", "[".repeat(3000), "]".repeat(3000));
    let dir = project(&[
        (
            "src/integrations/slack/workflows/throwsString.ts",
            "throw 'just a string';\nexport default 1;\n",
        ),
        ("src/integrations/slack/workflows/undefinedDefault.ts", "export default undefined;\n"),
        ("src/integrations/slack/workflows/numberDefault.ts", "export default 42;\n"),
        (
            "src/integrations/slack/workflows/getterThrows.ts",
            "import { Workflow } from '@useparagon/core';\nexport default class extends Workflow<any, any, any> {\n  get id(): string { throw new Error('no id for you'); }\n}\n",
        ),
        (
            "src/integrations/slack/workflows/circular.ts",
            "import { Workflow } from '@useparagon/core';\nconst a: any = {}; a.self = a;\nexport default class extends Workflow<any, any, any> {\n  name = 'Circular';\n  inputs = a;\n  readonly id = 'c1';\n}\n",
        ),
        (
            "src/integrations/slack/workflows/memory.ts",
            "const parts: string[] = [];\nwhile (true) parts.push('x'.repeat(1 << 16) + parts.length);\nexport default parts;\n",
        ),
        (
            "src/integrations/slack/workflows/recursion.ts",
            "const f = (n: number): number => f(n + 1) + 1;\nexport default f(0);\n",
        ),
        (
            "src/integrations/slack/workflows/never.ts",
            "await new Promise(() => {});\nexport default 1;\n",
        ),
        ("src/events/deep.ts", &deep),
        (
            "src/events/unicode.ts",
            "export default { name: 'Événement ✓ 日本', schema: { 'ключ': '\u{1F600}' } };\n",
        ),
        ("src/events/empty.ts", ""),
    ]);
    let found = codes(dir.path());
    for expected in
        ["evaluation-error", "evaluation-out-of-memory", "not-a-workflow", "missing-default-export"]
    {
        assert!(found.contains(&expected), "expected {expected} among {found:?}");
    }
}

#[test]
fn runaway_declarations_meet_the_engine_limits() {
    // Without loops, plain recursion can still build exponentially large values. The direct
    // recorder gives such files up to the engine, whose limits (memory, time, string length)
    // report them.
    for (file, text) in [
        (
            "src/events/doubling.ts",
            "const d = (s: string, n: number): string => (n === 0 ? s : d(s + s, n - 1));\nexport default { name: 'D', schema: { s: d('x', 40) } };\n",
        ),
        (
            "src/events/wide.ts",
            "const wide = (o: any, n: number): any => (n === 0 ? o : wide({ a: o, b: o }, n - 1));\nexport default { name: 'W', schema: wide({ v: 1 }, 40) };\n",
        ),
    ] {
        let dir = project(&[(file, text)]);
        let found = codes(dir.path());
        assert!(found.iter().any(|c| c.starts_with("evaluation-")), "{file}: {found:?}");
    }
}

#[test]
fn console_and_type_only_imports_are_fine() {
    let dir = project(&[
        ("src/lib/log.ts", "console.log('building', { n: 1 });\nexport const ok = true;\n"),
        (
            "src/integrations/slack/workflows/w.ts",
            "import { IntegrationEnabledStep, Workflow } from '@useparagon/core';\nimport { ISomething } from '@useparagon/core/not-a-real-subpath';\nimport { ok } from '../../../lib/log';\nexport default class extends Workflow<any, any, any> {\n  define() {\n    const trigger = new IntegrationEnabledStep();\n    return this.register({ trigger });\n  }\n  name = ok ? 'W' : 'X';\n  thing?: ISomething;\n  readonly id = 'w1';\n}\n",
        ),
    ]);
    assert_eq!(codes(dir.path()), Vec::<&str>::new());
}

#[test]
fn reads_across_joins_and_out_of_fan_outs_are_accepted() {
    // A branch's step may be read after the join (it may not have run: the value is then
    // absent), and a step inside a fan-out's branch may be read after the fan-out.
    let dir = project(&[
        ("src/events/e.ts", "export default { name: 'E', schema: { id: 'x', items: ['a'] } };\n"),
        (
            "src/integrations/slack/workflows/w.ts",
            "import { ConditionalStep, EventStep, FanOutStep, FunctionStep, Workflow } from '@useparagon/core';
import * as Operators from '@useparagon/core/operator';
import e from '../../../events/e';
export default class extends Workflow<any, any, any> {
  define() {
    const trigger = new EventStep(e);
    const check = new ConditionalStep({ if: Operators.Exists(trigger.output.id) });
    const onYes = new FunctionStep({ code: () => 'yes', parameters: {} });
    const after = new FunctionStep({ code: (p: any) => p, parameters: { maybe: onYes.output.result } });
    const each = new FanOutStep({ iterator: trigger.output.items });
    const inner = new FunctionStep({ code: (p: any) => p, parameters: { v: each.output.instance, a: after.output.result } });
    const summary = new FunctionStep({ code: (p: any) => p, parameters: { x: inner.output.result } });
    trigger.nextStep(check.whenTrue(onYes)).nextStep(after).nextStep(each.branch(inner)).nextStep(summary);
    return this.register({ trigger, check, onYes, after, each, inner, summary });
  }
  name = 'Joins';
  readonly id = 'j1';
}
",
        ),
    ]);
    assert_eq!(codes(dir.path()), Vec::<&str>::new());
}
