//! The step graph a workflow's `define()` records: validation (registration, one trigger,
//! reachability, cycles, references that read steps which cannot have run, fan-out instances,
//! step-specific rules) and conversion into [`para_build::Step`]s.

use std::collections::{BTreeMap, BTreeSet};

use para_build::{
    Condition, DelayUnit, Entry, Operation, Pagination, Request, Source, Step, StepKind, Validation,
};
use para_project::{Diagnostic, Location, Span, offset_of};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    ID_NAMESPACE,
    eval::Session,
    lower::{self, FUNCTION, Scope},
};

/// Where the recording saw a step created (JavaScript position in a project file).
#[derive(Debug, Clone)]
pub struct Site {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

/// A creation site as recorded: `[line, column]` in the workflow file, or `[file, line, column]`.
fn site_of(value: &Value, workflow_file: &str) -> Option<Site> {
    let items = value.as_array()?;
    let number = |v: &Value| v.as_u64().map(|n| n as u32);
    match items.as_slice() {
        [line, column] => Some(Site {
            file: workflow_file.to_string(),
            line: number(line)?,
            column: number(column)?,
        }),
        [file, line, column] => Some(Site {
            file: file.as_str()?.to_string(),
            line: number(line)?,
            column: number(column)?,
        }),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStep {
    serial: u64,
    #[serde(rename = "type")]
    step_type: String,
    #[serde(default)]
    site: Value,
    options: Value,
    next: Option<u64>,
    when_true: Option<u64>,
    when_false: Option<u64>,
    branch: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RawProblem {
    kind: String,
    step: Option<u64>,
    detail: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawGraph {
    registered: BTreeMap<String, u64>,
    steps: Vec<RawStep>,
    problems: Vec<RawProblem>,
}

/// The compiled graph of one workflow.
pub struct Graph {
    pub trigger: Option<String>,
    pub steps: Vec<Step>,
}

/// Body validation data types an endpoint trigger checks.
const DATA_TYPES: &[&str] = &["STRING", "NUMBER", "BOOLEAN", "OBJECT", "ARRAY"];

/// Which of a catalog integration's lists a name is looked up in.
#[derive(Clone, Copy)]
enum CatalogOp {
    Action,
    Trigger,
}

/// What the graph compiler needs to know about the workflow.
pub struct Context<'a> {
    pub file: &'a str,
    pub workflow_id: &'a str,
    pub shared_input_ids: &'a [String],
    /// The integration's catalog entry (none for custom integrations).
    pub catalog: Option<&'static para_catalog::Integration>,
    /// The integration's key and its custom webhook triggers by id (`triggers/*.ts`), which
    /// `CustomTriggerStep` may name, and the ids of its trigger files that have errors (reported
    /// with the file).
    pub integration_key: &'a str,
    pub custom_triggers: &'a BTreeMap<String, para_build::CustomTrigger>,
    pub failed_custom_triggers: &'a BTreeSet<String>,
}

struct Compiler<'s, 'p, 'c> {
    session: &'s mut Session<'p>,
    cx: &'c Context<'c>,
    steps: BTreeMap<u64, RawStep>,
    /// serial → register key
    keys: BTreeMap<u64, String>,
    /// serial → step id (registered steps only)
    ids: BTreeMap<u64, String>,
    ok: bool,
}

/// Does a recorded graph have steps that were not registered (whose findings need the place
/// where they are created)?
pub fn needs_sites(recorded: &Value) -> bool {
    let registered: BTreeSet<u64> = recorded
        .get("registered")
        .and_then(Value::as_object)
        .map(|r| r.values().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    recorded.get("steps").and_then(Value::as_array).is_some_and(|steps| {
        steps.iter().any(|s| {
            s.get("serial").and_then(Value::as_u64).is_some_and(|n| !registered.contains(&n))
        })
    })
}

/// The id of step `key` of workflow `workflow_id`: stable across rebuilds.
pub fn step_id(workflow_id: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("step:{workflow_id}:{key}").as_bytes()).to_string()
}

/// Validates and converts a recorded graph. Returns `None` after reporting findings.
pub fn compile(session: &mut Session<'_>, cx: &Context<'_>, recorded: Value) -> Option<Graph> {
    let raw: RawGraph = match serde_json::from_value(recorded) {
        Ok(raw) => raw,
        Err(e) => {
            session.push(
                Diagnostic::error(
                    "internal",
                    format!("para could not read the recorded steps: {e}"),
                )
                .in_file(cx.file),
            );
            return None;
        }
    };
    let mut keys = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for (key, serial) in &raw.registered {
        keys.entry(*serial).or_insert_with(|| key.clone());
        ids.entry(*serial).or_insert_with(|| step_id(cx.workflow_id, key));
    }
    let steps = raw.steps.into_iter().map(|s| (s.serial, s)).collect();
    let mut c = Compiler { session, cx, steps, keys, ids, ok: true };
    c.problems(&raw.problems, &raw.registered);
    if raw.problems.iter().any(|p| p.kind == "noRegister") {
        return None; // every step would be "not registered": the one finding says it all
    }
    c.registration();
    let trigger = c.trigger()?;
    c.responses(trigger);
    let order = c.structure(trigger)?;
    c.references(&order);
    let steps: Vec<Step> = order.iter().filter_map(|serial| c.convert(*serial)).collect();
    if !c.ok {
        return None;
    }
    Some(Graph { trigger: c.ids.get(&trigger).cloned(), steps })
}

fn type_name(step_type: &str) -> &str {
    match step_type {
        "TRIGGER/ENDPOINT" => "EndpointStep",
        "TRIGGER/EVENT" => "EventStep",
        "TRIGGER/CRON" => "CronStep",
        "TRIGGER/INTEGRATION_ENABLED" => "IntegrationEnabledStep",
        "TRIGGER/ACTION" => "integration trigger",
        "TRIGGER/CUSTOM" => "CustomTriggerStep",
        "TRIGGER/UNSELECTED" => "UnselectedStep",
        "ACTION/REQUEST" => "RequestStep",
        "ACTION/INTEGRATION_REQUEST" => "IntegrationRequestStep",
        "ACTION/FUNCTION" => "FunctionStep",
        "ACTION/INTEGRATION_ACTION" => "integration action",
        "ACTION/DELAY" => "DelayStep",
        "ACTION/RESPONSE" => "ResponseStep",
        "TRANSITION/IFELSE" => "ConditionalStep",
        "TRANSITION/MAP" => "FanOutStep",
        other => other,
    }
}

impl Compiler<'_, '_, '_> {
    fn step(&self, serial: u64) -> Option<&RawStep> {
        self.steps.get(&serial)
    }

    /// `step `key`` or `an unregistered RequestStep`, for messages.
    fn name(&self, serial: u64) -> String {
        match (self.keys.get(&serial), self.step(serial)) {
            (Some(key), _) => format!("step `{key}`"),
            (None, Some(step)) => format!("an unregistered {}", type_name(&step.step_type)),
            (None, None) => "a step".to_string(),
        }
    }

    /// Where a step is named in the workflow file (`const key = …`), else where it is created,
    /// else where it is registered.
    fn location(&self, serial: u64) -> Location {
        let key = self.keys.get(&serial);
        if let Some(key) = key
            && let Some(span) = self.session.module(self.cx.file).and_then(|m| m.find_binding(key))
        {
            return Location { file: self.cx.file.to_string(), span: Some(span) };
        }
        if let Some(site) = self.step(serial).and_then(|s| site_of(&s.site, self.cx.file))
            && let Some(location) = self.site_location(&site)
        {
            return location;
        }
        match key {
            Some(key) => self.session.locate(self.cx.file, &[key]),
            None => self.session.locate(self.cx.file, &[]),
        }
    }

    /// The TypeScript position of a creation site, moved back to the `new` of `new Step(…)` when
    /// the engine reported a position inside the call.
    fn site_location(&self, site: &Site) -> Option<Location> {
        let module = self.session.module(&site.file)?;
        let (line, column) = module.original_position(site.line, site.column)?;
        let text = &self.session.project.file(&site.file)?.text;
        let mut start = offset_of(text, line as usize, column as usize) as usize;
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        if let Some(new) = text[line_start..start].rfind("new ") {
            start = line_start + new;
        }
        let len = text[start..].find(['(', '\n']).filter(|&n| n > 0 && n <= 80).unwrap_or(1);
        let start = start as u32;
        Some(Location { file: site.file.clone(), span: Some(Span::new(start, start + len as u32)) })
    }

    /// Checks `integration.actions.<name>` / `triggers.<name>` against the catalog: an unknown
    /// name or a missing required parameter is a warning. Returns the catalog's intent.
    fn catalog_operation(
        &mut self,
        serial: u64,
        operation: CatalogOp,
        name: &str,
        parameters: &[Entry],
    ) -> Option<String> {
        let catalog = self.cx.catalog?;
        let (what, found, known) = match operation {
            CatalogOp::Action => (
                "actions",
                catalog.action(name).map(|a| (&a.parameters, a.intent.as_str())),
                catalog
                    .actions
                    .iter()
                    .map(|a| (a.name.as_str(), &a.aliases[..]))
                    .collect::<Vec<_>>(),
            ),
            CatalogOp::Trigger => (
                "triggers",
                catalog.trigger(name).map(|t| (&t.parameters, t.intent.as_str())),
                catalog.triggers.iter().map(|t| (t.name.as_str(), &t.aliases[..])).collect(),
            ),
        };
        let Some((declared, intent)) = found else {
            // Suggestions come from names and aliases (a misspelt earlier name); the full
            // list shows names only.
            let names = known.iter().map(|(n, _)| *n);
            let spellings = known
                .iter()
                .flat_map(|(n, a)| std::iter::once(*n).chain(a.iter().map(String::as_str)));
            let closest = para_project::naming::closest(name, spellings, 3);
            let help = if closest.is_empty() {
                let all: Vec<_> = names.map(|n| format!("`{n}`")).collect();
                if all.is_empty() {
                    format!("{} has no catalog {what}; use an IntegrationRequestStep", catalog.name)
                } else {
                    format!(
                        "{}'s {what} are {}; or use an IntegrationRequestStep",
                        catalog.name,
                        all.join(", ")
                    )
                }
            } else {
                format!(
                    "did you mean {}? Or use an IntegrationRequestStep for an endpoint the catalog does not cover",
                    closest.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" or ")
                )
            };
            let at = self.location(serial);
            self.session.push(
                Diagnostic::warning(
                    "unknown-operation",
                    format!(
                        "`integration.{what}.{name}` is not in para's catalog for {}",
                        catalog.name
                    ),
                )
                .at(at)
                .with_help(help),
            );
            return None;
        };
        let missing: Vec<&str> = declared
            .iter()
            .filter(|p| p.required && !parameters.iter().any(|e| p.is_given_by(&e.key)))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            let at = self.location(serial);
            let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
            self.session.push(
                Diagnostic::warning(
                    "missing-parameter",
                    format!(
                        "{} calls `{name}` without its required parameter(s) {list}",
                        self.name(serial)
                    ),
                )
                .at(at)
                .with_help(format!("pass {} in the parameters object", list)),
            );
        }
        Some(intent.to_string())
    }

    fn error(&mut self, code: &'static str, serial: Option<u64>, message: String, help: &str) {
        let at = match serial {
            Some(serial) => self.location(serial),
            None => self.session.locate(self.cx.file, &["define"]),
        };
        self.session.push(Diagnostic::error(code, message).at(at).with_help(help.to_string()));
        self.ok = false;
    }

    fn problems(&mut self, problems: &[RawProblem], registered: &BTreeMap<String, u64>) {
        for p in problems {
            let detail = p.detail.as_ref().and_then(Value::as_str).unwrap_or_default().to_string();
            match p.kind.as_str() {
                "noRegister" => self.error(
                    "missing-register",
                    None,
                    "define() does not call this.register(…)".into(),
                    "end define() with `return this.register({ trigger, step1, … })`: the keys name the steps and must stay stable",
                ),
                "registeredNotAStep" => self.error(
                    "invalid-register",
                    None,
                    format!("`{detail}` passed to this.register() is not a step"),
                    "register only steps: `this.register({ trigger, fetch })`",
                ),
                "notAStep" => self.error(
                    "invalid-chain",
                    p.step,
                    format!("{}.{detail}() was given something that is not a step", self.name(p.step.unwrap_or(u64::MAX))),
                    "pass a step (or a chain of steps) created in define()",
                ),
                "relinked" => {
                    let other = p.detail.as_ref().and_then(Value::as_u64).unwrap_or(u64::MAX);
                    let (from, to) = (self.name(p.step.unwrap_or(u64::MAX)), self.name(other));
                    self.error(
                        "invalid-chain",
                        p.step,
                        format!("{from} is linked to a second next step ({to})"),
                        "a step has one next step; to run several things, chain them one after another, or branch with a ConditionalStep",
                    );
                }
                "notAnInput" => self.error(
                    "invalid-input-reference",
                    None,
                    match detail.is_empty() {
                        true => "context.getInput() was given something that is not an input".into(),
                        false => format!("context.getInput('{detail}') takes an input, not its name"),
                    },
                    "pass the input itself: `context.getInput(sharedInputs.channel)` or `context.getInput(this.inputs.limit)`",
                ),
                _ => {}
            }
        }
        let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
        for (key, serial) in registered {
            if let Some(first) = seen.insert(*serial, key) {
                let (first, key) = (first.to_string(), key.clone());
                self.session.push(
                    Diagnostic::warning(
                        "duplicate-register",
                        format!("one step is registered as both `{first}` and `{key}`"),
                    )
                    .at(self.session.locate(self.cx.file, &[&key]))
                    .with_help(format!(
                        "the step is named `{}`; remove the other key",
                        first.min(key.clone())
                    )),
                );
            }
        }
    }

    /// Every step in the graph must be registered: the key is its stable name.
    fn registration(&mut self) {
        let linked: BTreeSet<u64> = self.steps.keys().flat_map(|s| self.children(*s)).collect();
        let unregistered: Vec<u64> =
            self.steps.keys().filter(|s| !self.keys.contains_key(s)).copied().collect();
        for serial in unregistered {
            let what = type_name(&self.steps[&serial].step_type).to_string();
            let step = &self.steps[&serial];
            let unused = !linked.contains(&serial)
                && [step.next, step.when_true, step.when_false, step.branch]
                    .iter()
                    .all(Option::is_none);
            if unused {
                // Created and dropped: nothing runs it, so it cannot break the workflow.
                let at = self.location(serial);
                self.session.push(
                    Diagnostic::warning(
                        "unused-step",
                        format!("this {what} is created in define() but never used"),
                    )
                    .at(at)
                    .with_help("link it into the workflow and register it, or remove it"),
                );
                self.steps.remove(&serial);
                continue;
            }
            self.error(
                "step-not-registered",
                Some(serial),
                format!("this {what} is used in the workflow but not passed to this.register()"),
                "add it to `this.register({ …, name: step })`: the key names the step, and its id (which run history and settings refer to) derives from it",
            );
        }
    }

    fn trigger(&mut self) -> Option<u64> {
        let triggers: Vec<u64> = self
            .steps
            .values()
            .filter(|s| s.step_type.starts_with("TRIGGER/"))
            .map(|s| s.serial)
            .collect();
        match triggers.as_slice() {
            [one] => Some(*one),
            [] => {
                self.error(
                    "trigger-count",
                    None,
                    "this workflow has no trigger".into(),
                    "start define() with a trigger: EndpointStep, EventStep, CronStep, IntegrationEnabledStep or integration.triggers.<name>(…), and chain the steps after it",
                );
                None
            }
            [_, rest @ ..] => {
                let names: Vec<String> = triggers.iter().map(|t| self.name(*t)).collect();
                let extra = rest[0];
                self.error(
                    "trigger-count",
                    Some(extra),
                    format!(
                        "this workflow has {} triggers ({}); it needs exactly one",
                        triggers.len(),
                        names.join(", ")
                    ),
                    "split it into one workflow per trigger",
                );
                None
            }
        }
    }

    /// A ResponseStep answers a request, so only a request-triggered workflow may have one.
    fn responses(&mut self, trigger: u64) {
        if self.step(trigger).is_some_and(|t| t.step_type == "TRIGGER/ENDPOINT") {
            return;
        }
        let trigger_name = type_name(&self.steps[&trigger].step_type).to_string();
        let responses: Vec<u64> = self
            .steps
            .values()
            .filter(|s| s.step_type == "ACTION/RESPONSE")
            .map(|s| s.serial)
            .collect();
        for serial in responses {
            let name = self.name(serial);
            self.error(
                "response-without-endpoint",
                Some(serial),
                format!("{name} is a ResponseStep, but this workflow is triggered by an {trigger_name}"),
                "only a workflow started by an EndpointStep (a request) has a caller to answer; remove the ResponseStep or trigger the workflow with an EndpointStep",
            );
        }
    }

    /// Successors of a step in the written structure: its branches, then what follows it.
    fn children(&self, serial: u64) -> Vec<u64> {
        let Some(s) = self.step(serial) else { return Vec::new() };
        [s.when_true, s.when_false, s.branch, s.next].into_iter().flatten().collect()
    }

    /// Checks cycles and reachability; returns the steps in graph order from the trigger.
    fn structure(&mut self, trigger: u64) -> Option<Vec<u64>> {
        // Iterative DFS with an explicit stack of (node, child index) to find back edges.
        let mut order = Vec::new();
        let mut state: BTreeMap<u64, u8> = BTreeMap::new(); // 1 = on stack, 2 = done
        let mut stack: Vec<(u64, usize)> = vec![(trigger, 0)];
        state.insert(trigger, 1);
        order.push(trigger);
        let mut cycle = None;
        while let Some((node, index)) = stack.pop() {
            let children = self.children(node);
            if let Some(&child) = children.get(index) {
                stack.push((node, index + 1));
                match state.get(&child) {
                    Some(1) => {
                        cycle.get_or_insert((node, child));
                    }
                    Some(_) => {}
                    None => {
                        state.insert(child, 1);
                        order.push(child);
                        stack.push((child, 0));
                    }
                }
            } else {
                state.insert(node, 2);
            }
        }
        if let Some((from, to)) = cycle {
            let message = if to == trigger {
                format!("{} leads back to the trigger, {}", self.name(from), self.name(to))
            } else {
                format!(
                    "{} leads back to {}, which runs before it: a workflow cannot loop",
                    self.name(from),
                    self.name(to)
                )
            };
            self.error(
                "cycle",
                Some(from),
                message,
                "to repeat steps for each item of a list, use a FanOutStep and put the steps in its branch",
            );
            return None;
        }
        let reached: BTreeSet<u64> = order.iter().copied().collect();
        let unreachable: Vec<u64> =
            self.keys.keys().filter(|s| !reached.contains(s)).copied().collect();
        for serial in unreachable {
            if self.step(serial).is_some_and(|s| s.step_type.starts_with("TRIGGER/")) {
                continue;
            }
            let name = self.name(serial);
            self.error(
                "unreachable-step",
                Some(serial),
                format!(
                    "{name} is registered but never runs: nothing leads to it from the trigger"
                ),
                "link it with .nextStep(), .whenTrue()/.whenFalse() or .branch(), or remove it",
            );
        }
        Some(order)
    }

    /// The last step of the chain starting at `start` (following `next`).
    fn chain_end(&self, start: u64) -> u64 {
        let mut at = start;
        let mut guard = 0;
        while let Some(next) = self.step(at).and_then(|s| s.next) {
            at = next;
            guard += 1;
            if guard > self.steps.len() {
                break;
            }
        }
        at
    }

    /// Edges of "may run right before": a step to what follows it, a conditional or fan-out to
    /// its branches, and the end of each branch to what runs after the conditional or fan-out,
    /// which, for a structure that ends a branch itself, is what runs after the enclosing one
    /// (at any depth). A structure also leads straight there (a branch not taken, no items).
    fn run_edges(&self) -> BTreeMap<u64, Vec<u64>> {
        // The structure each branch starts in, and the first step of each step's chain.
        let mut owner: BTreeMap<u64, u64> = BTreeMap::new();
        for s in self.steps.values() {
            for branch in [s.when_true, s.when_false, s.branch].into_iter().flatten() {
                owner.entry(branch).or_insert(s.serial);
            }
        }
        let mut chain_start: BTreeMap<u64, u64> = BTreeMap::new();
        let linked: BTreeSet<u64> = self.steps.values().filter_map(|s| s.next).collect();
        for &start in self.steps.keys().filter(|k| !linked.contains(k)) {
            let mut at = Some(start);
            while let Some(step) = at {
                if chain_start.insert(step, start).is_some() {
                    break;
                }
                at = self.step(step).and_then(|s| s.next);
            }
        }
        // What runs once `step`, and the chain it ends (if it does), are done.
        let after = |step: u64| -> Option<u64> {
            let mut at = step;
            for _ in 0..=self.steps.len() {
                if let Some(next) = self.step(at).and_then(|s| s.next) {
                    return Some(next);
                }
                at = *owner.get(chain_start.get(&at)?)?;
            }
            None
        };
        let mut edges: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for s in self.steps.values() {
            let out = edges.entry(s.serial).or_default();
            out.extend(s.next);
            let branches: Vec<u64> =
                [s.when_true, s.when_false, s.branch].into_iter().flatten().collect();
            out.extend(&branches);
            let structure = matches!(s.step_type.as_str(), "TRANSITION/IFELSE" | "TRANSITION/MAP");
            if !structure {
                continue;
            }
            let Some(then) = after(s.serial) else { continue };
            if s.next.is_none() {
                out.push(then);
            }
            for branch in branches {
                edges.entry(self.chain_end(branch)).or_default().push(then);
            }
        }
        edges
    }

    fn reachable_from(edges: &BTreeMap<u64, Vec<u64>>, start: u64) -> BTreeSet<u64> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(n) = todo.pop() {
            for &m in edges.get(&n).into_iter().flatten() {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen
    }

    /// Steps inside a fan-out's branch (nested structure included).
    fn inside(&self, fan_out: u64) -> BTreeSet<u64> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<u64> = self.step(fan_out).and_then(|s| s.branch).into_iter().collect();
        while let Some(n) = todo.pop() {
            if seen.insert(n) {
                todo.extend(self.children(n));
            }
        }
        seen
    }

    /// Every read of a step's output must be of a step that can have run before the reader; a
    /// fan-out's `instance` only inside its branch.
    fn references(&mut self, order: &[u64]) {
        let edges = self.run_edges();
        let mut runs_after: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for &reader in order {
            let mut reads = Vec::new();
            if let Some(step) = self.step(reader) {
                collect_step_reads(&step.options, &mut reads, true);
            }
            for (serial, path) in reads {
                if serial == reader {
                    self.error(
                        "invalid-reference",
                        Some(reader),
                        format!("{} reads its own output", self.name(reader)),
                        "a step's output exists only after it has run; read it in a later step",
                    );
                    continue;
                }
                if !self.steps.contains_key(&serial) {
                    continue;
                }
                let runs_before = runs_after
                    .entry(serial)
                    .or_insert_with(|| Self::reachable_from(&edges, serial))
                    .contains(&reader);
                let fan_out = self.step(serial).is_some_and(|s| s.step_type == "TRANSITION/MAP");
                if fan_out && path.first().map(String::as_str) == Some("instance") {
                    if !self.inside(serial).contains(&reader) {
                        self.error(
                            "instance-outside-fan-out",
                            Some(reader),
                            format!(
                                "{} reads `{}.output.instance` outside that fan-out's branch",
                                self.name(reader),
                                self.keys.get(&serial).map_or("the fan-out", String::as_str)
                            ),
                            "the current item exists only for the steps inside `.branch(…)`; read it there",
                        );
                    }
                    continue;
                }
                if !runs_before {
                    self.error(
                        "reference-before-run",
                        Some(reader),
                        format!(
                            "{} reads the output of {}, which does not run before it",
                            self.name(reader),
                            self.name(serial)
                        ),
                        "a step can read only steps on the way from the trigger to it; move the reader after the step it reads, or chain them",
                    );
                }
            }
        }
    }

    fn source(&mut self, serial: u64, field: &str, value: &Value) -> Option<Source> {
        let result = {
            let scope = Scope {
                steps: Some(&self.ids),
                shared_input_ids: self.cx.shared_input_ids,
                ..Scope::default()
            };
            lower::to_source(value, &scope)
        };
        match result {
            Ok(source) => {
                source.walk(&mut |s| {
                    if let Source::EnvironmentSecret { name } = s {
                        self.session.secrets.insert(name.clone());
                    }
                });
                Some(source)
            }
            Err(e) => {
                let name = self.name(serial);
                self.error("invalid-step", Some(serial), format!("`{field}` of {name}: {}", e.0), "use literal values or references to earlier steps, inputs, secrets and the user");
                None
            }
        }
    }

    fn entries(&mut self, serial: u64, field: &str, value: Option<&Value>) -> Vec<Entry> {
        let Some(value) = value.filter(|v| !v.is_null()) else { return Vec::new() };
        match value.as_object().filter(|_| lower::special(value).is_none()) {
            Some(map) => map
                .iter()
                .filter_map(|(k, v)| {
                    Some(Entry {
                        key: k.clone(),
                        source: self.source(serial, &format!("{field}.{k}"), v)?,
                    })
                })
                .collect(),
            None => {
                let name = self.name(serial);
                self.error(
                    "invalid-step",
                    Some(serial),
                    format!("`{field}` of {name} must be an object"),
                    "write `{ key: value, … }`",
                );
                Vec::new()
            }
        }
    }

    /// The id of the custom trigger class `CustomTriggerStep` was given, if it is one of this
    /// integration's `triggers/` files.
    fn custom_trigger(&mut self, serial: u64, trigger: Option<&Value>) -> Option<String> {
        let key = self.cx.integration_key;
        let id = match trigger.and_then(lower::special) {
            Some((lower::CUSTOM_TRIGGER, Value::String(id))) => id.clone(),
            // A trigger file without an id was reported with the file.
            Some((lower::CUSTOM_TRIGGER, _)) => return None,
            _ => {
                self.error(
                    "invalid-custom-trigger",
                    Some(serial),
                    "`CustomTriggerStep` takes a custom trigger class".into(),
                    &format!("import the class a file of src/integrations/{key}/triggers/ exports, and pass it: `new CustomTriggerStep(OrderShipped)`"),
                );
                return None;
            }
        };
        if self.cx.custom_triggers.contains_key(&id) {
            return Some(id);
        }
        if self.cx.failed_custom_triggers.contains(&id) {
            self.ok = false; // the trigger's file was reported
            return None;
        }
        // Not this integration's: name the other integration's file when this workflow imports it.
        let own = format!("src/integrations/{key}/triggers/");
        let foreign = self.session.relative_imports(self.cx.file).into_iter().find(|path| {
            !path.starts_with(&own)
                && matches!(
                    path.split('/').collect::<Vec<_>>().as_slice(),
                    ["src", "integrations", _, "triggers", _]
                )
        });
        let message = match &foreign {
            Some(file) => format!(
                "`CustomTriggerStep` is given a trigger of another integration (`{file}`, id `{id}`)"
            ),
            None => format!(
                "`CustomTriggerStep` is given custom trigger `{id}`, which no file of src/integrations/{key}/triggers/ declares"
            ),
        };
        self.error(
            "invalid-custom-trigger",
            Some(serial),
            message,
            &format!("a workflow starts only from its own integration's custom triggers: define the trigger in src/integrations/{key}/triggers/ and import it from there"),
        );
        None
    }

    fn condition(&mut self, serial: u64, field: &str, value: &Value) -> Option<Condition> {
        match dnf(value) {
            Ok(groups) => condition_of(groups, |operand| self.source(serial, field, operand)),
            Err(what) => {
                let name = self.name(serial);
                self.error(
                    "invalid-condition",
                    Some(serial),
                    format!("`{field}` of {name} is not a condition: {what}"),
                    "build conditions with the operators of @useparagon/core/operator, e.g. `Operators.StringContains(step.output.name, 'x')`, combined with `Operators.And`/`Operators.Or`",
                );
                None
            }
        }
    }

    fn convert(&mut self, serial: u64) -> Option<Step> {
        let raw = self.steps.get_mut(&serial)?;
        // Conversion is the options' last use: take them rather than copy.
        let options = match std::mem::take(&mut raw.options) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let raw = &*raw;
        let step_type = raw.step_type.clone();
        let (next, when_true, when_false, branch) =
            (raw.next, raw.when_true, raw.when_false, raw.branch);
        let key = self.keys.get(&serial)?.clone();
        let text = |o: &Map<String, Value>, field: &str| {
            o.get(field).and_then(Value::as_str).map(str::to_string)
        };
        let flag = |o: &Map<String, Value>, field: &str| {
            o.get(field).and_then(Value::as_bool).unwrap_or(false)
        };
        let id_of = |s: Option<u64>| s.and_then(|s| self.ids.get(&s).cloned());
        let (next, when_true, when_false, branch) =
            (id_of(next), id_of(when_true), id_of(when_false), id_of(branch));
        let kind = match step_type.as_str() {
            "TRIGGER/ENDPOINT" => StepKind::Endpoint {
                allow_arbitrary_payload: flag(&options, "allowArbitraryPayload"),
                param_validations: self.validations(
                    serial,
                    "paramValidations",
                    options.get("paramValidations"),
                    false,
                ),
                header_validations: self.validations(
                    serial,
                    "headerValidations",
                    options.get("headerValidations"),
                    false,
                ),
                body_validations: self.validations(
                    serial,
                    "bodyValidations",
                    options.get("bodyValidations"),
                    true,
                ),
            },
            "TRIGGER/EVENT" => {
                let name = options.get("event").and_then(|e| e.get("name")).and_then(Value::as_str);
                match name {
                    Some(name) => StepKind::Event {
                        event_id: uuid::Uuid::new_v5(
                            &ID_NAMESPACE,
                            format!("event:{name}").as_bytes(),
                        )
                        .to_string(),
                        event_name: name.to_string(),
                    },
                    None => {
                        self.error("invalid-step", Some(serial), format!("{} needs an App Event", self.name(serial)), "import the event's file and pass its default export: `new EventStep(taskCreated)`");
                        return None;
                    }
                }
            }
            "TRIGGER/CRON" => {
                let cron = text(&options, "cron").unwrap_or_default();
                let time_zone = text(&options, "timeZone").unwrap_or_else(|| "UTC".into());
                self.check_cron(serial, &cron, &time_zone);
                StepKind::Cron { cron, time_zone }
            }
            "TRIGGER/INTEGRATION_ENABLED" => StepKind::IntegrationEnabled {},
            "TRIGGER/UNSELECTED" => StepKind::Unselected {},
            "TRIGGER/ACTION" => {
                let trigger = text(&options, "trigger").unwrap_or_default();
                let parameters = self.entries(serial, "parameters", options.get("parameters"));
                let intent =
                    self.catalog_operation(serial, CatalogOp::Trigger, &trigger, &parameters);
                StepKind::IntegrationTrigger { trigger, intent, parameters }
            }
            "TRIGGER/CUSTOM" => StepKind::CustomTrigger {
                trigger_id: self.custom_trigger(serial, options.get("trigger"))?,
            },
            "ACTION/REQUEST" => StepKind::Request(self.request(serial, &options)?),
            "ACTION/INTEGRATION_REQUEST" => {
                StepKind::IntegrationRequest(self.request(serial, &options)?)
            }
            "ACTION/FUNCTION" => {
                let code = options.get("code").and_then(|c| match lower::special(c) {
                    Some((FUNCTION, f)) => {
                        f.get("source").and_then(Value::as_str).map(str::to_string)
                    }
                    _ => None,
                });
                let Some(code) = code else {
                    self.error("invalid-step", Some(serial), format!("`code` of {} must be a function", self.name(serial)), "write `code: function (parameters) { … }` (arrow and async functions work too)");
                    return None;
                };
                StepKind::Function {
                    code: dedent(&code),
                    parameters: self.entries(serial, "parameters", options.get("parameters")),
                }
            }
            "ACTION/INTEGRATION_ACTION" => {
                let action = text(&options, "action").unwrap_or_default();
                let parameters = self.entries(serial, "parameters", options.get("parameters"));
                let intent =
                    self.catalog_operation(serial, CatalogOp::Action, &action, &parameters);
                StepKind::IntegrationAction { action, intent, parameters }
            }
            "ACTION/DELAY" => {
                let unit_text = text(&options, "unit").unwrap_or_default();
                let unit = match unit_text.as_str() {
                    "SECONDS" => Some(DelayUnit::Seconds),
                    "MINUTES" => Some(DelayUnit::Minutes),
                    "HOURS" => Some(DelayUnit::Hours),
                    "DAYS" => Some(DelayUnit::Days),
                    _ => None,
                };
                let value =
                    self.source(serial, "value", options.get("value").unwrap_or(&Value::Null))?;
                let Some(unit) = unit else {
                    self.error(
                        "invalid-delay-unit",
                        Some(serial),
                        format!("{} has unit `{unit_text}`", self.name(serial)),
                        "use one of 'SECONDS', 'MINUTES', 'HOURS', 'DAYS'",
                    );
                    return None;
                };
                StepKind::Delay { value, unit }
            }
            "ACTION/RESPONSE" => StepKind::Response {
                status_code: self.source(
                    serial,
                    "statusCode",
                    options.get("statusCode").unwrap_or(&Value::from(200)),
                )?,
                response_type: text(&options, "responseType").unwrap_or_else(|| "JSON".into()),
                body: self.source(serial, "body", options.get("body").unwrap_or(&Value::Null))?,
            },
            "TRANSITION/IFELSE" => StepKind::Conditional {
                condition: self.condition(
                    serial,
                    "if",
                    options.get("if").unwrap_or(&Value::Null),
                )?,
                when_true,
                when_false,
            },
            "TRANSITION/MAP" => StepKind::FanOut {
                iterator: self.source(
                    serial,
                    "iterator",
                    options.get("iterator").unwrap_or(&Value::Null),
                )?,
                branch,
            },
            other => {
                self.error(
                    "invalid-step",
                    Some(serial),
                    format!("unknown step type `{other}`"),
                    "",
                );
                return None;
            }
        };
        let location = self.location(serial);
        let source = location.span.and_then(|span| {
            let (line, col) = self.session.line_col(&location.file, span.start)?;
            Some(format!("{}:{line}:{col}", location.file))
        });
        Some(Step {
            id: self.ids.get(&serial)?.clone(),
            key,
            kind,
            description: text(&options, "description"),
            auto_retry: flag(&options, "autoRetry"),
            continue_workflow_on_error: flag(&options, "continueWorkflowOnError"),
            next,
            source,
        })
    }

    fn request(&mut self, serial: u64, o: &Map<String, Value>) -> Option<Request> {
        let url = match o.get("url").filter(|v| !v.is_null()) {
            Some(url) => self.source(serial, "url", url)?,
            None => {
                self.error("invalid-step", Some(serial), format!("{} has no `url`", self.name(serial)), "add `url: 'https://…'` (for an IntegrationRequestStep, a path relative to the integration's API)");
                return None;
            }
        };
        let pagination = match o.get("pagination").filter(|v| !v.is_null()) {
            None => None,
            Some(p) => Some(Pagination {
                page_token: self.source(
                    serial,
                    "pagination.pageToken",
                    p.get("pageToken").unwrap_or(&Value::Null),
                )?,
                output_path: match p.get("outputPath") {
                    Some(v) if !v.is_null() => {
                        Some(self.source(serial, "pagination.outputPath", v)?)
                    }
                    _ => None,
                },
                stop_condition: match p.get("stopCondition") {
                    Some(v) if !v.is_null() => {
                        Some(self.condition(serial, "pagination.stopCondition", v)?)
                    }
                    _ => None,
                },
            }),
        };
        let optional = |c: &mut Self, field: &str| -> Option<Option<Source>> {
            match o.get(field) {
                Some(v) if !v.is_null() => c.source(serial, field, v).map(Some),
                _ => Some(None),
            }
        };
        Some(Request {
            http_method: o.get("method").and_then(Value::as_str).unwrap_or("GET").to_uppercase(),
            url,
            params: self.entries(serial, "params", o.get("params")),
            headers: self.entries(serial, "headers", o.get("headers")),
            body: optional(self, "body")?,
            body_type: o.get("bodyType").and_then(Value::as_str).map(str::to_string),
            authorization: optional(self, "authorization")?,
            pagination,
        })
    }

    fn validations(
        &mut self,
        serial: u64,
        field: &str,
        value: Option<&Value>,
        typed: bool,
    ) -> Vec<Validation> {
        let mut out = Vec::new();
        for (i, item) in value.and_then(Value::as_array).into_iter().flatten().enumerate() {
            let Some(key) = item.get("key").and_then(Value::as_str) else {
                self.error(
                    "invalid-validation",
                    Some(serial),
                    format!("item {i} of `{field}` of {} has no `key`", self.name(serial)),
                    "write `{ key: 'name', required: true }`",
                );
                continue;
            };
            let data_type = item.get("dataType").and_then(Value::as_str).map(str::to_string);
            if typed
                && let Some(t) = &data_type
                && !DATA_TYPES.contains(&t.as_str())
            {
                self.error(
                    "invalid-validation",
                    Some(serial),
                    format!("`{key}` in `{field}` of {} has data type `{t}`", self.name(serial)),
                    &format!(
                        "use one of {}",
                        DATA_TYPES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            out.push(Validation {
                key: key.to_string(),
                required: item.get("required").and_then(Value::as_bool).unwrap_or(false),
                data_type,
            });
        }
        out
    }

    fn check_cron(&mut self, serial: u64, cron: &str, time_zone: &str) {
        let fields = cron.split_whitespace().count();
        let problem = if fields != 6 {
            Some(format!("it has {fields} fields"))
        } else {
            cron.parse::<cron::Schedule>().err().map(|e| e.to_string())
        };
        if let Some(problem) = problem {
            self.error(
                "invalid-cron",
                Some(serial),
                format!("`{cron}` of {} is not a valid cron expression: {problem}", self.name(serial)),
                "write six fields, seconds first: `sec min hour day-of-month month day-of-week`, e.g. '0 0 8 * * 1-5' for 8:00 on weekdays",
            );
        }
        if time_zone.parse::<chrono_tz::Tz>().is_err() {
            self.error(
                "invalid-time-zone",
                Some(serial),
                format!("`{time_zone}` of {} is not an IANA time zone", self.name(serial)),
                "use a name from the IANA database, such as 'Europe/Berlin', 'America/New_York' or 'UTC'",
            );
        }
    }
}

/// Every step output a value reads: (step serial, path). With `skip_pagination`, a request's
/// pagination (which reads the step's own output, legitimately) is left out.
fn collect_step_reads(value: &Value, out: &mut Vec<(u64, Vec<String>)>, skip_pagination: bool) {
    match value {
        Value::Object(map) => {
            if let Some((lower::REF, d)) = lower::special(value) {
                if d.get("kind").and_then(Value::as_str) == Some("step") {
                    let serial = d.get("step").and_then(Value::as_u64).unwrap_or(u64::MAX);
                    let path = d
                        .get("path")
                        .and_then(Value::as_array)
                        .map(|p| p.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    out.push((serial, path));
                }
                return;
            }
            for (k, v) in map {
                if skip_pagination && k == "pagination" {
                    continue;
                }
                collect_step_reads(v, out, false);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_step_reads(v, out, false)),
        _ => {}
    }
}

/// Removes the indentation a function's body has from its place in the file: lines after the
/// first lose the closing line's indentation.
fn dedent(code: &str) -> String {
    let Some(last) = code.lines().last() else { return String::new() };
    let indent = &last[..last.len() - last.trim_start().len()];
    if indent.is_empty() {
        return code.to_string();
    }
    let mut lines = code.lines();
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        out.push_str(line.strip_prefix(indent).unwrap_or(line));
    }
    out
}

pub type Group = Vec<(String, Vec<Value>)>;

/// A recorded condition tree as an OR of AND groups.
pub fn dnf(value: &Value) -> Result<Vec<Group>, String> {
    let operator = value.get("operator").and_then(Value::as_str).ok_or_else(|| match value {
        Value::Null => "it is missing".to_string(),
        other => format!("got {}", short(other)),
    })?;
    let operands: Vec<Value> =
        value.get("operands").and_then(Value::as_array).cloned().unwrap_or_default();
    match operator {
        "$or" => {
            let mut out = Vec::new();
            for o in &operands {
                out.extend(dnf(o)?);
            }
            Ok(out)
        }
        "$and" => {
            let mut out: Vec<Group> = vec![Vec::new()];
            for o in &operands {
                let alternatives = dnf(o)?;
                let mut product = Vec::new();
                for prefix in &out {
                    for alt in &alternatives {
                        let mut group = prefix.clone();
                        group.extend(alt.iter().cloned());
                        product.push(group);
                    }
                }
                out = product;
            }
            Ok(out)
        }
        leaf => Ok(vec![vec![(leaf.to_string(), operands)]]),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// `definePermissions()`'s result as a condition (over persona metadata and user fields).
pub fn permissions(session: &mut Session<'_>, file: &str, value: &Value) -> Option<Condition> {
    if value.is_null() {
        return None;
    }
    let invalid = |session: &mut Session<'_>, what: String| {
        session.push(
            Diagnostic::error("invalid-permissions", format!("definePermissions() must return a condition or undefined: {what}"))
                .at(session.locate(file, &["definePermissions"]))
                .with_help("return a condition over the user's metadata, e.g. `Operators.StringExactlyMatches(connectUser.meta.plan, 'pro')`"),
        );
    };
    let groups = match dnf(value) {
        Ok(groups) => groups,
        Err(what) => {
            invalid(session, what);
            return None;
        }
    };
    condition_of(groups, |operand| match lower::to_source(operand, &Scope::default()) {
        Ok(source) => Some(source),
        Err(e) => {
            invalid(session, e.0);
            None
        }
    })
}

/// Turns OR-of-AND groups of recorded operations into a [`Condition`], converting each operand
/// with `operand` (which reports its own failures).
pub fn condition_of(
    groups: Vec<Group>,
    mut operand: impl FnMut(&Value) -> Option<Source>,
) -> Option<Condition> {
    let mut or = Vec::with_capacity(groups.len());
    for group in groups {
        let mut and = Vec::with_capacity(group.len());
        for (operator, operands) in group {
            let operands = operands.iter().map(&mut operand).collect::<Option<Vec<_>>>()?;
            and.push(Operation { operator, operands });
        }
        or.push(and);
    }
    Some(Condition { or })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaf(op: &str) -> Value {
        json!({ "operator": op, "operands": [] })
    }

    #[test]
    fn conditions_normalise_to_or_of_ands() {
        // (a OR b) AND c  ==  (a AND c) OR (b AND c)
        let tree = json!({ "operator": "$and", "operands": [
            { "operator": "$or", "operands": [leaf("a"), leaf("b")] }, leaf("c") ] });
        let groups: Vec<Vec<String>> = dnf(&tree)
            .unwrap()
            .into_iter()
            .map(|g| g.into_iter().map(|(op, _)| op).collect())
            .collect();
        assert_eq!(groups, [["a", "c"], ["b", "c"]]);
        assert!(dnf(&json!(true)).is_err());
    }

    #[test]
    fn step_ids_are_stable_and_distinct() {
        assert_eq!(step_id("w", "a"), step_id("w", "a"));
        assert_ne!(step_id("w", "a"), step_id("w", "b"));
        assert_ne!(step_id("w", "a"), step_id("v", "a"));
    }
}
