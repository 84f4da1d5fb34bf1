//! The Paragraph compiler: a loaded project in, a [`Build`] and located findings out.
//!
//! Stages: transpile every file (all syntax errors, every file) → check imports → evaluate the
//! files whose meaning depends on their place (persona, events, integration configs, inputs,
//! custom triggers, workflows, resources) in one sandboxed engine with the `@useparagon/*` modules → validate and
//! convert what they recorded → assemble a deterministic, hashed document. The compiler never
//! panics on input: every problem becomes a [`Diagnostic`].

mod config;
mod direct;
mod eval;
mod findings;
mod graph;
mod inputs;
mod layout;
mod lower;
mod modules;
mod triggers;
mod workflows;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use para_build::{
    Build, Event, FORMAT_VERSION, Integration, IntegrationKind, Persona, ProjectInfo, Resource,
};
use para_js::{Limits, Modules, Transpiled};
use para_project::{Diagnostic, Project, naming};
use serde_json::Value;

use crate::{
    eval::Session,
    findings::{Declared, ForeignOrder},
    layout::Layout,
};

pub use findings::Recorded;
pub use para_js::Limits as EvaluationLimits;

/// Namespace of the UUID v5 ids the compiler derives (events; step ids later), so ids are stable
/// across rebuilds and machines.
const ID_NAMESPACE: uuid::Uuid = uuid::uuid!("5a1e0c3b-7d7f-4b8e-9a52-0f6a2c1d9e41");

/// How to compile.
#[derive(Debug, Clone)]
pub struct Options {
    pub limits: Limits,
    /// Written into the build as `generator`.
    pub generator: String,
    /// Threads to transpile and evaluate on; 0 means one per core (up to 8). The result never
    /// depends on it.
    pub threads: usize,
    /// Free the JavaScript runtimes when done. A one-shot command about to exit can skip it (the
    /// operating system reclaims the memory at once; freeing object by object takes a while).
    pub teardown: bool,
    /// Record declarations from the syntax tree where the code allows it (see `direct.rs`),
    /// starting the JavaScript engine only for the rest. The result is the same either way.
    /// Defaults to on; `para build` turns it off with `PARA_DIRECT=off`.
    pub direct: bool,
    /// Print (on stderr) why each file the direct path gives up on goes to the engine
    /// (`PARA_TRACE_DIRECT`): for working on `direct.rs`.
    pub trace_direct: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            generator: format!("para {}", env!("CARGO_PKG_VERSION")),
            threads: 0,
            teardown: true,
            direct: true,
            trace_direct: false,
        }
    }
}

/// What compiling produced. `build` is `None` when any finding is an error.
#[derive(Debug)]
pub struct Output {
    pub build: Option<Build>,
    /// Sorted by file and position; duplicates removed.
    pub diagnostics: Vec<Diagnostic>,
    /// Wall time of each stage, in order (for `para build --timings`).
    pub timings: Vec<(&'static str, std::time::Duration)>,
    /// The bytes of `out/build.json` for `build` (rendered while it was sealed).
    pub document: Option<para_build::Rendered>,
    pub recorded: Recorded,
}

/// Compiles a loaded project.
pub fn compile(project: &Project, options: &Options) -> Output {
    let mut clock = Stopwatch::start();
    let mut diagnostics = Vec::new();
    let mut transpiled: BTreeMap<String, Transpiled> = BTreeMap::new();
    let mut broken = BTreeSet::new();
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(8),
        n => n,
    };
    for (file, result) in project.files.iter().zip(transpile_all(project, threads)) {
        match result {
            Ok(t) => {
                transpiled.insert(file.path.clone(), t);
            }
            Err(found) => {
                diagnostics.extend(found);
                broken.insert(file.path.clone());
            }
        }
    }
    for (path, file) in &transpiled {
        let found = modules::check_imports(path, file, &transpiled, &project.drafts);
        if !found.is_empty() {
            diagnostics.extend(found);
            broken.insert(path.clone());
        }
    }
    clock.lap("transpile");
    let modules: Modules = Arc::new(transpiled);
    if !options.teardown {
        // The process ends after this build: leave the transpiled files to the OS to reclaim.
        std::mem::forget(modules.clone());
    }
    let (layout, found) = Layout::of(project);
    diagnostics.extend(found);
    let outputs = evaluate_all(project, &modules, &broken, &layout, options, threads);
    clock.lap("evaluate");
    let mut recorded = Recorded::default();
    let mut persona = Persona::default();
    let mut events = BTreeMap::new();
    let mut resources = BTreeMap::new();
    let mut integrations = BTreeMap::new();
    let mut declared = Vec::new();
    let mut foreign_order = Vec::new();
    let mut secrets = BTreeSet::new();
    for output in outputs {
        if let Some(shared) = output.shared {
            (persona, events, resources) = (shared.persona, shared.events, shared.resources);
        }
        integrations.extend(output.integrations.into_iter().map(|i| (i.key.clone(), i)));
        diagnostics.extend(output.diagnostics);
        declared.extend(output.declared);
        foreign_order.extend(output.foreign_order);
        secrets.extend(output.secrets);
        recorded += output.recorded;
    }
    workflows::check_unique_ids(&modules, &mut declared, &mut diagnostics);
    workflows::report_foreign_order(&modules, &declared, &foreign_order, &mut diagnostics);
    let mut build = Build {
        format_version: FORMAT_VERSION,
        build_hash: String::new(),
        generator: options.generator.clone(),
        project: ProjectInfo {
            project_id: project.meta.project_id.clone(),
            project_name: project.meta.project_name.clone(),
        },
        persona,
        events,
        integrations,
        resources,
        secrets: secrets.into_iter().collect(),
    };
    let document = build.seal_and_render();
    clock.lap("assemble");
    let mut output = finish(Some(build), diagnostics, clock);
    output.recorded = recorded;
    if output.build.is_some() {
        output.document = Some(document);
    }
    output
}

/// The parts of a build that belong to no integration.
struct Shared {
    persona: Persona,
    events: BTreeMap<String, Event>,
    resources: BTreeMap<String, Resource>,
}

/// What one evaluation worker produced.
#[derive(Default)]
struct WorkerOutput {
    /// Evaluated by the first worker only.
    shared: Option<Shared>,
    integrations: Vec<Integration>,
    diagnostics: Vec<Diagnostic>,
    declared: Vec<Declared>,
    foreign_order: Vec<ForeignOrder>,
    secrets: BTreeSet<String>,
    recorded: Recorded,
}

/// Evaluates the project on up to one engine per core: workers take integrations one at a time
/// (each has its own QuickJS runtime over the shared transpiled files), and the first
/// worker also takes persona, events and resources. Nothing in the result depends on how the
/// work was split: findings are sorted and project-wide checks run after the merge.
fn evaluate_all(
    project: &Project,
    modules: &Modules,
    broken: &BTreeSet<String>,
    layout: &Layout,
    options: &Options,
    threads: usize,
) -> Vec<WorkerOutput> {
    let workers = threads.min(layout.integrations.len()).max(1);
    // Integrations are taken one at a time from a shared counter, so a worker slowed down (by a
    // large integration, or by the machine) takes fewer of them.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let folders = Queue { folders: &layout.integrations, next: &next };
                std::thread::Builder::new().stack_size(PARSER_STACK).spawn_scoped(
                    scope,
                    move || {
                        evaluate_part(
                            project,
                            modules,
                            broken,
                            layout,
                            folders,
                            worker == 0,
                            options,
                        )
                    },
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle.ok().and_then(|h| h.join().ok()) {
                Some(output) => output,
                None => WorkerOutput {
                    diagnostics: vec![Diagnostic::error(
                        "internal",
                        "an evaluation thread stopped unexpectedly",
                    )],
                    ..WorkerOutput::default()
                },
            })
            .collect()
    })
}

fn evaluate_part(
    project: &Project,
    modules: &Modules,
    broken: &BTreeSet<String>,
    layout: &Layout,
    folders: Queue<'_>,
    shared: bool,
    options: &Options,
) -> WorkerOutput {
    let mut output = WorkerOutput::default();
    let mut carry = eval::Carry::default();
    // One session per part: the direct recorder parses what the part needs into a fresh arena,
    // freed when the part is done (the next part's arena reuses the memory). Files shared by
    // several parts (events, helpers) are parsed again for each; they are small.
    let mut part = |carry: eval::Carry, run: &mut dyn FnMut(&mut Session<'_>)| {
        let arena = oxc::allocator::Allocator::default();
        let direct =
            options.direct.then(|| direct::Direct::new(&arena, modules, options.trace_direct));
        let mut session =
            Session::new(project, options.limits, direct, modules.clone(), broken, carry);
        run(&mut session);
        let (carry, findings) = session.finish();
        output.diagnostics.extend(findings.diagnostics);
        output.declared.extend(findings.declared);
        output.foreign_order.extend(findings.foreign_order);
        output.secrets.extend(findings.secrets);
        output.recorded += findings.recorded;
        carry
    };
    let mut shared_part = None;
    if shared {
        carry = part(carry, &mut |session| {
            let persona = persona(session, layout);
            let events = events(session, layout);
            let resources = resources(session, layout);
            shared_part = Some(Shared { persona, events, resources });
        });
    }
    let mut integrations = Vec::new();
    while let Some(folder) = folders.take() {
        carry = part(carry, &mut |session| integrations.extend(integration(session, folder)));
    }
    output.shared = shared_part;
    output.integrations = integrations;
    if !options.teardown {
        std::mem::forget(carry.into_engine());
    }
    output
}

/// The integrations left to evaluate, shared by the evaluation workers.
#[derive(Clone, Copy)]
struct Queue<'a> {
    folders: &'a [layout::IntegrationFolder],
    next: &'a std::sync::atomic::AtomicUsize,
}

impl<'a> Queue<'a> {
    fn take(&self) -> Option<&'a layout::IntegrationFolder> {
        self.folders.get(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Stack size of threads that parse or evaluate project code.
pub const PARSER_STACK: usize = 64 << 20;

/// Transpiles every file, spread over the machine's cores; results in file order.
fn transpile_all(project: &Project, threads: usize) -> Vec<Result<Transpiled, Vec<Diagnostic>>> {
    let chunk = project.files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = project
            .files
            .chunks(chunk)
            .map(|files| {
                // Deeply nested sources recurse deeply in the parser: give workers a large stack.
                let worker = std::thread::Builder::new().stack_size(PARSER_STACK).spawn_scoped(
                    scope,
                    move || {
                        files
                            .iter()
                            .map(|f| para_js::transpile(&f.path, &f.text))
                            .collect::<Vec<_>>()
                    },
                );
                (files, worker)
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|(files, worker)| match worker.ok().and_then(|w| w.join().ok()) {
                Some(results) => results,
                None => files
                    .iter()
                    .map(|f| {
                        Err(vec![
                            Diagnostic::error("internal", "para could not transpile this file")
                                .in_file(&f.path),
                        ])
                    })
                    .collect(),
            })
            .collect()
    })
}

fn finish(build: Option<Build>, mut diagnostics: Vec<Diagnostic>, clock: Stopwatch) -> Output {
    diagnostics.sort_by_key(Diagnostic::sort_key);
    diagnostics.dedup();
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Output {
        build: if failed { None } else { build },
        diagnostics,
        timings: clock.laps,
        document: None,
        recorded: Recorded::default(),
    }
}

/// Records the wall time of consecutive stages.
struct Stopwatch {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Stopwatch {
    fn start() -> Self {
        Stopwatch { last: std::time::Instant::now(), laps: Vec::new() }
    }

    fn lap(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((stage, now - self.last));
        self.last = now;
    }
}

/// A module's default export (reporting its absence) and its named exports.
fn module_exports(
    session: &mut Session<'_>,
    file: &str,
    what: &str,
    example: &str,
) -> Option<(Value, Value)> {
    let described = session.describe(file, "describeModule")?;
    if described.get("hasDefault") != Some(&Value::Bool(true)) {
        let at = session.locate(file, &[]);
        session.push(
            Diagnostic::error("missing-default-export", format!("{what} has no default export"))
                .at(at)
                .with_help(format!("end the file with `{example}`")),
        );
        return None;
    }
    Some((
        described.get("default").cloned().unwrap_or(Value::Null),
        described.get("exports").cloned().unwrap_or(Value::Null),
    ))
}

fn persona(session: &mut Session<'_>, layout: &Layout) -> Persona {
    let Some(file) = &layout.persona else { return Persona::default() };
    let Some((value, _)) = module_exports(
        session,
        file,
        "the persona metadata file",
        "export default { plan: 'pro' };",
    ) else {
        return Persona { meta: Value::Null, source: Some(file.clone()) };
    };
    let meta = match lower::plain(&value) {
        Ok(meta) => meta,
        Err(what) => {
            let at = session.locate(file, &[]);
            session.push(
                Diagnostic::error("invalid-persona", format!("persona metadata must be plain data, but it holds {what}"))
                    .at(at)
                    .with_help("write an example of the metadata your app attaches to users, as literal values"),
            );
            Value::Null
        }
    };
    Persona { meta, source: Some(file.clone()) }
}

fn events(session: &mut Session<'_>, layout: &Layout) -> BTreeMap<String, Event> {
    let mut events = BTreeMap::new();
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for file in &layout.events {
        let Some((value, _)) = module_exports(
            session,
            file,
            "this event file",
            "export default { name: 'Task Created', schema: { … } };",
        ) else {
            continue;
        };
        let name =
            value.get("name").and_then(Value::as_str).map(str::trim).filter(|n| !n.is_empty());
        let Some(name) = name else {
            let at = session.locate(file, &["name"]);
            session.push(
                Diagnostic::error("missing-field", "an App Event needs a `name`")
                    .at(at)
                    .with_help("add `name: 'Task Created'`: your app sends events by this name"),
            );
            continue;
        };
        let sample = match value.get("schema").map(lower::plain) {
            Some(Ok(sample)) => sample,
            None => Value::Null,
            Some(Err(what)) => {
                let at = session.locate(file, &["schema"]);
                session.push(
                    Diagnostic::error(
                        "invalid-field",
                        format!("the event's `schema` must be sample data, but it holds {what}"),
                    )
                    .at(at),
                );
                continue;
            }
        };
        if let Some(first) = by_name.get(name) {
            let at = session.locate(file, &["name"]);
            let first_at = session.locate(first, &["name"]);
            session.push(
                Diagnostic::error("duplicate-event", format!("two events are named `{name}`"))
                    .at(at)
                    .with_related(first_at, "first defined")
                    .with_help("apps trigger events by name, so each needs its own"),
            );
            continue;
        }
        by_name.insert(name.to_string(), file.clone());
        let id = uuid::Uuid::new_v5(&ID_NAMESPACE, format!("event:{name}").as_bytes()).to_string();
        events.insert(
            id.clone(),
            Event { id, name: name.to_string(), sample_data: sample, source: file.clone() },
        );
    }
    events
}

fn integration(
    session: &mut Session<'_>,
    folder: &layout::IntegrationFolder,
) -> Option<Integration> {
    let key = folder.key.clone();
    let (kind, catalog_name) = match key.strip_prefix(naming::CUSTOM_PREFIX) {
        Some(slug) => {
            if slug.is_empty()
                || !slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                session.push(
                    Diagnostic::error(
                        "invalid-integration-folder",
                        format!("`{key}` is not a valid custom integration folder"),
                    )
                    .in_file(&folder.path)
                    .with_help(format!(
                        "a custom integration's folder is `custom.<slug>`, the slug being its name lower-cased with everything but a-z and 0-9 removed (e.g. `custom.{}`)",
                        naming::custom_slug(slug)
                    )),
                );
            }
            (IntegrationKind::Custom, None)
        }
        None => match para_catalog::lookup(&key) {
            Some(entry) => (IntegrationKind::Catalog, Some(entry.name.to_string())),
            None => {
                let keys = para_catalog::keys();
                let suggestions = naming::closest(&key, keys, 3);
                let help = if suggestions.is_empty() {
                    "for an API para does not know, make a custom integration: a folder named `custom.<slug>`".to_string()
                } else {
                    format!(
                        "did you mean {}? For an API para does not know, make a custom integration: `custom.<slug>`",
                        suggestions
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                };
                session.push(
                    Diagnostic::warning(
                        "unknown-integration",
                        format!("`{key}` is not an integration in para's catalog"),
                    )
                    .in_file(&folder.path)
                    .with_help(help),
                );
                (IntegrationKind::Catalog, None)
            }
        },
    };
    let allowed_types = inputs::allowed_types(&key);
    // config.ts
    let config_file = format!("{}/config.ts", folder.path);
    let inputs_file = format!("{}/inputs.ts", folder.path);
    let mut config = None;
    if session.has_file(&config_file) {
        let example = if kind == IntegrationKind::Custom {
            "export default config;` where `const config: ICustomIntegrationConfig = { … }"
        } else {
            "export default config;` where `const config: IIntegrationConfig = { … }"
        };
        if let Some((value, exports)) = module_exports(session, &config_file, "config.ts", example)
        {
            config = Some(integration_config(
                session,
                &key,
                kind,
                &config_file,
                &value,
                &exports,
                &allowed_types,
            ));
        }
    } else {
        session.push(
            Diagnostic::error("missing-config", format!("integration `{key}` has no config.ts"))
                .in_file(&folder.path)
                .with_help(format!(
                    "create `{config_file}` exporting the integration's config: `export default {{ description: '…', workflowDisplayOrder: [] }};`"
                )),
        );
    }
    // inputs.ts
    let mut shared_inputs = Vec::new();
    if session.has_file(&inputs_file) {
        if let Some((value, _)) =
            module_exports(session, &inputs_file, "inputs.ts", "export default createInputs({});")
        {
            let scope = inputs::InputScope {
                file: &inputs_file,
                prefix: &[],
                what: "integration-level User Settings",
                allowed_types: &allowed_types,
            };
            shared_inputs = inputs::convert(session, &value, &scope);
        }
    } else {
        session.push(
            Diagnostic::warning(
                "missing-inputs",
                format!("integration `{key}` has no inputs.ts: it has no integration-level User Settings"),
            )
            .in_file(&folder.path)
            .with_help(format!(
                "if that is meant, create `{inputs_file}` as `import {{ createInputs }} from '@useparagon/core/inputs'; export default createInputs({{}});` to say so"
            )),
        );
    }
    // Custom triggers before the workflows that start from them. Both are compiled even when
    // the config failed, so their findings show in the same run.
    let triggers = triggers::compile_all(session, folder);
    let shared_ids: Vec<String> = shared_inputs.iter().map(|i| i.id.clone()).collect();
    let workflows = workflows::compile_all(
        session,
        folder,
        &allowed_types,
        &shared_ids,
        para_catalog::lookup(&key),
        &triggers,
    );
    let (mut config, display_order) = config?;
    config.workflow_display_order =
        workflows::apply_order(session, &config_file, &display_order, &workflows);
    let workflows = workflows::with_order(workflows, &config.workflow_display_order);
    let name = match (&config.custom, catalog_name) {
        (Some(custom), _) if !custom.name.is_empty() => custom.name.clone(),
        (_, Some(name)) => name,
        _ => key.clone(),
    };
    Some(Integration {
        key,
        kind,
        name,
        source: folder.path.clone(),
        config,
        inputs: shared_inputs,
        workflows,
        custom_triggers: triggers.compiled,
    })
}

/// Converts config.ts; returns it with the raw `workflowDisplayOrder` entries.
fn integration_config(
    session: &mut Session<'_>,
    key: &str,
    kind: IntegrationKind,
    file: &str,
    value: &Value,
    exports: &Value,
    allowed_types: &[&str],
) -> (para_build::IntegrationConfig, Vec<Value>) {
    let empty = serde_json::Map::new();
    let object = match value.as_object().filter(|_| lower::special(value).is_none()) {
        Some(object) => object,
        None => {
            let at = session.locate(file, &[]);
            session.push(
                Diagnostic::error("invalid-config", "the default export of config.ts must be an object")
                    .at(at)
                    .with_help("export an object literal: `export default { description: '…', workflowDisplayOrder: [] };`"),
            );
            &empty
        }
    };
    let mut config_inputs = Vec::new();
    if kind == IntegrationKind::Custom
        && let Some(raw_inputs) = exports.get("inputs")
    {
        let scope =
            inputs::InputScope { file, prefix: &["inputs"], what: "config inputs", allowed_types };
        config_inputs = inputs::convert(session, raw_inputs, &scope);
    }
    let raw = config::RawConfig { file, value: object, config_inputs };
    let converted = config::convert(session, key, &raw);
    let order =
        object.get("workflowDisplayOrder").and_then(Value::as_array).cloned().unwrap_or_default();
    (converted, order)
}

fn resources(session: &mut Session<'_>, layout: &Layout) -> BTreeMap<String, Resource> {
    let mut out: BTreeMap<String, Resource> = BTreeMap::new();
    for file in &layout.resources {
        let Some(described) = session.describe(file, "describeResource") else { continue };
        match described.get("shape").and_then(Value::as_str) {
            Some("resource") => {}
            Some("missing") => {
                session.push(
                    Diagnostic::error(
                        "missing-default-export",
                        "this resource has no default export",
                    )
                    .in_file(file)
                    .with_help("export default class extends UserLevelAPIResource { … }"),
                );
                continue;
            }
            _ => {
                let at = session.locate(file, &[]);
                session.push(
                    Diagnostic::error("not-a-resource", "the default export of a resource must be a class extending UserLevelAPIResource or AppLevelAPIResource")
                        .at(at),
                );
                continue;
            }
        }
        let text = |field: &str| described.get(field).and_then(Value::as_str).map(str::to_string);
        // The id identifies the resource; the name is display text, accepted as written.
        let Some(id) = text("id").filter(|id| !id.trim().is_empty()) else {
            let at = session.locate(file, &["id"]);
            session.push(
                Diagnostic::error("missing-field", "this resource has no `id`")
                    .at(at)
                    .with_help("add `id: string = '…'` to the class, with a new UUID"),
            );
            continue;
        };
        let name = text("name").unwrap_or_default();
        if name.trim().is_empty() {
            let at = session.locate(file, &["name"]);
            session.push(
                Diagnostic::warning("empty-field", "this resource has no name")
                    .at(at)
                    .with_help("set `name: string = '…'`: the dashboard shows it"),
            );
        }
        let mut configs = BTreeMap::new();
        for (method, value) in
            described.get("configs").and_then(Value::as_object).into_iter().flatten()
        {
            match lower::to_source(value, &lower::Scope::default()) {
                Ok(source) => {
                    configs.insert(method.clone(), source);
                }
                Err(e) => {
                    let at = session.locate(
                        file,
                        &[&format!("get{}{}", method[..1].to_uppercase(), &method[1..])],
                    );
                    session.push(Diagnostic::error("invalid-resource", e.0).at(at));
                }
            }
        }
        if let Some(existing) = out.get(&id) {
            let first = session.locate(&existing.source, &["id"]);
            let at = session.locate(file, &["id"]);
            session.push(
                Diagnostic::error(
                    "duplicate-resource-id",
                    format!("two resources have the id `{id}`"),
                )
                .at(at)
                .with_related(first, "first used")
                .with_help("give this resource a new UUID"),
            );
            continue;
        }
        let level = described.get("level").and_then(Value::as_str).unwrap_or("user").to_string();
        out.insert(id.clone(), Resource { id, name, level, source: file.clone(), configs });
    }
    out
}
