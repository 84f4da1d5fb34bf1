//! The compiler's working state: the engine holding every transpiled module, the findings so
//! far, and the helpers that turn JavaScript failures and value problems into located findings.

use std::collections::{BTreeMap, BTreeSet};

use para_js::{Engine, JsError, JsErrorKind, Limits, Modules, Transpiled, VirtualModules};
use para_project::{Diagnostic, Location, Project, Span, offset_of};
use serde_json::Value;

use crate::{
    findings::{Declared, Findings, ForeignOrder, Recorded},
    modules::HOST_MODULE,
};

/// Reference tokens a workflow's description introduces (see `describeWorkflow` in core.js).
#[derive(serde::Deserialize)]
struct Minted {
    bases: Vec<Value>,
    tokens: Vec<Vec<Value>>,
}

/// What one of a worker's sessions hands on to the next: the engine (modules stay evaluated in
/// it), its reference tables, and memos.
#[derive(Default)]
pub struct Carry {
    engine: Option<Engine>,
    /// Reference descriptors minted by the engine's runtime, indexed by token number, and the
    /// reference roots they are built from.
    tokens: Vec<Value>,
    bases: Vec<Value>,
    /// Memo of "does this file (transitively) import a broken one".
    tainted: BTreeMap<String, bool>,
    /// Byte offsets of line starts, per file, computed on first use.
    line_starts: BTreeMap<String, Vec<u32>>,
}

impl Carry {
    /// The engine, if one was started.
    pub fn into_engine(self) -> Option<Engine> {
        self.engine
    }
}

/// A worker's state while it compiles one part of the project (the shared files, or one
/// integration). Sessions are short so that the direct recorder's syntax trees (which live in
/// an arena the session borrows) are freed part by part; what must last goes on in [`Carry`].
pub struct Session<'p> {
    pub project: &'p Project,
    /// The engine (started on first need: most projects are recorded directly, see `direct.rs`),
    /// its reference tables and memos, handed on to the worker's next session.
    carry: Carry,
    limits: Limits,
    /// `None` when every file goes to the engine.
    direct: Option<crate::direct::Direct<'p>>,
    /// How many descriptions were recorded directly and how many by the engine.
    pub recorded: Recorded,
    /// The transpiled files (shared with other workers), for locating findings.
    modules: Modules,
    pub diagnostics: Vec<Diagnostic>,
    /// Files that failed to transpile or have unresolvable imports: never evaluated.
    broken: &'p BTreeSet<String>,
    /// Every workflow id this session compiled, with its file: checked project-wide after merging.
    pub declared: Vec<Declared>,
    /// `workflowDisplayOrder` entries naming workflows outside their integration, reported after
    /// merging (when every workflow's file is known).
    pub foreign_order: Vec<ForeignOrder>,
    /// Environment secrets the workflows read.
    pub secrets: BTreeSet<String>,
}

impl<'p> Session<'p> {
    pub fn new(
        project: &'p Project,
        limits: Limits,
        direct: Option<crate::direct::Direct<'p>>,
        modules: Modules,
        broken: &'p BTreeSet<String>,
        carry: Carry,
    ) -> Self {
        Session {
            project,
            carry,
            limits,
            direct,
            recorded: Recorded::default(),
            modules,
            diagnostics: Vec::new(),
            broken,
            declared: Vec::new(),
            foreign_order: Vec::new(),
            secrets: BTreeSet::new(),
        }
    }

    /// Ends the session: what the next one carries on with, and what this one found.
    pub fn finish(self) -> (Carry, Findings) {
        let findings = Findings {
            diagnostics: self.diagnostics,
            declared: self.declared,
            foreign_order: self.foreign_order,
            secrets: self.secrets,
            recorded: self.recorded,
        };
        (self.carry, findings)
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Does `file` exist as a buildable source?
    pub fn has_file(&self, file: &str) -> bool {
        self.project.file(file).is_some()
    }

    fn is_tainted(&mut self, file: &str, visiting: &mut BTreeSet<String>) -> bool {
        if self.broken.contains(file) {
            return true;
        }
        if let Some(&known) = self.carry.tainted.get(file) {
            return known;
        }
        if !visiting.insert(file.to_string()) {
            return false; // an import cycle: decided by the first visit
        }
        let deps: Vec<String> = self
            .modules
            .get(file)
            .map(|module| {
                module
                    .imports
                    .iter()
                    .filter(|i| !i.erased && i.specifier.starts_with('.'))
                    .filter_map(|i| para_js::resolve_relative(&self.modules, file, &i.specifier))
                    .collect()
            })
            .unwrap_or_default();
        let result = deps.iter().any(|dep| self.is_tainted(dep, visiting));
        self.carry.tainted.insert(file.to_string(), result);
        result
    }

    /// Evaluates `file` (once; modules are cached) and runs the host function `describe` on its
    /// namespace. Returns `None` after reporting a finding, or silently when the file or one of
    /// its imports is already known to be broken.
    pub fn describe(&mut self, file: &str, describe: &str) -> Option<Value> {
        self.describe_with(file, describe, file)
    }

    /// [`Session::describe`] with an explicit argument for the host function.
    pub fn describe_with(&mut self, file: &str, describe: &str, argument: &str) -> Option<Value> {
        if self.is_tainted(file, &mut BTreeSet::new()) {
            return None;
        }
        if let Some(direct) = &mut self.direct
            && let Some(value) = direct.describe(file, describe, argument)
        {
            self.recorded.directly += 1;
            return Some(value);
        }
        self.recorded.by_engine += 1;
        let engine = self.engine(file)?;
        let called = engine.call_with_module(file, HOST_MODULE, describe, argument);
        match called {
            Ok(json) => match self.parse_described(&json) {
                Ok(value) => Some(value),
                Err(e) => {
                    self.push(
                        Diagnostic::error(
                            "internal",
                            format!("para could not read what `{file}` recorded: {e}"),
                        )
                        .in_file(file),
                    );
                    None
                }
            },
            Err(error) => {
                let diagnostic = self.js_failure(file, &error);
                self.push(diagnostic);
                None
            }
        }
    }

    /// The engine, started on first use (a failure to start it is reported against `file`).
    fn engine(&mut self, file: &str) -> Option<&Engine> {
        if self.carry.engine.is_none() {
            let virtuals: VirtualModules = std::rc::Rc::new(|name: &str| {
                crate::modules::virtual_module(name).map(str::to_string)
            });
            match Engine::new(self.modules.clone(), virtuals, self.limits) {
                Ok(engine) => self.carry.engine = Some(engine),
                Err(e) => {
                    self.push(Diagnostic::error("internal", e.message).in_file(file));
                    return None;
                }
            }
        }
        self.carry.engine.as_ref()
    }

    /// 1-based line and column (in characters) of a byte offset in a project file.
    pub fn line_col(&mut self, file: &str, offset: u32) -> Option<(usize, usize)> {
        let text = &self.project.file(file)?.text;
        if !self.carry.line_starts.contains_key(file) {
            let starts =
                std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i as u32 + 1));
            self.carry.line_starts.insert(file.to_string(), starts.collect());
        }
        let starts = &self.carry.line_starts[file];
        let line = starts.partition_point(|&start| start <= offset);
        let start = starts[line - 1] as usize;
        let end = (offset as usize).min(text.len());
        Some((line, text.get(start..end)?.chars().count() + 1))
    }

    /// Reads what a host function returned. A workflow's description is preceded by a line with
    /// the reference descriptors minted since the previous one, which its graph's tokens index.
    fn parse_described(&mut self, text: &str) -> Result<Value, serde_json::Error> {
        let Some((minted, rest)) = text.split_once('\n') else { return serde_json::from_str(text) };
        let minted: Minted = serde_json::from_str(minted)?;
        self.carry.bases.extend(minted.bases);
        for entry in minted.tokens {
            // `[base index, ...path]`: the base descriptor with the path appended.
            let mut items = entry.into_iter();
            let base = items
                .next()
                .and_then(|i| i.as_u64())
                .and_then(|i| self.carry.bases.get(i as usize));
            let mut descriptor = base.cloned().unwrap_or(Value::Null);
            if let Some(Value::Array(path)) = descriptor.get_mut("path") {
                path.extend(items);
            }
            self.carry.tokens.push(descriptor);
        }
        let mut value: Value = serde_json::from_str(rest)?;
        if let Some(graph) = value.get_mut("graph") {
            crate::lower::expand_tokens(graph, &self.carry.tokens);
        }
        Ok(value)
    }

    fn js_failure(&self, file: &str, error: &JsError) -> Diagnostic {
        let location = match &error.location {
            Some((at, line, col)) => {
                let span = self.project.file(at).map(|f| {
                    let start = offset_of(&f.text, *line as usize, *col as usize);
                    Span::new(start, start + 1)
                });
                Location { file: at.clone(), span }
            }
            None => Location { file: file.to_string(), span: None },
        };
        let seconds = self.limits.time_per_call.as_secs_f64();
        match error.kind {
            JsErrorKind::Timeout => Diagnostic::error(
                "evaluation-timeout",
                format!("evaluating `{file}` did not finish within {seconds}s"),
            )
            .at(location)
            .with_label("still running here")
            .with_help(
                "project code runs once at build time to record the project; look for a loop that never ends",
            ),
            JsErrorKind::OutOfMemory => Diagnostic::error(
                "evaluation-out-of-memory",
                format!(
                    "evaluating `{file}` ran out of memory (limit {} MiB)",
                    self.limits.memory_bytes >> 20
                ),
            )
            .at(location)
            .with_help("look for code that builds an ever-growing value at module level"),
            JsErrorKind::Exception => {
                let help = if error.message.contains("Could not find export") {
                    "para provides the runtime values of @useparagon/* (steps, Workflow, createInputs, operators…); types are erased, so import types with `import type` or only use them in type positions"
                } else {
                    "this code runs once at build time to record the project; fix the error, or move the code into a FunctionStep so it runs when the workflow runs"
                };
                let message = if error.message.contains("dead lock") {
                    format!("evaluating `{file}` waits for a promise that never settles")
                } else {
                    error.message.clone()
                };
                Diagnostic::error("evaluation-error", message)
                    .at(location)
                    .with_label("thrown here")
                    .with_help(help)
            }
        }
    }

    /// The project files `file` imports itself (relative imports, resolved), in written order.
    pub fn relative_imports(&self, file: &str) -> Vec<String> {
        self.modules
            .get(file)
            .map(|module| {
                module
                    .imports
                    .iter()
                    .filter(|i| i.specifier.starts_with('.'))
                    .filter_map(|i| para_js::resolve_relative(&self.modules, file, &i.specifier))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A project module as transpiled, by its path.
    pub fn module(&self, file: &str) -> Option<&Transpiled> {
        self.modules.get(file)
    }

    /// Where a property of `file` is written; see [`locate`].
    pub fn locate(&self, file: &str, path: &[&str]) -> Location {
        locate(&self.modules, file, path)
    }
}

/// Where a property of `file` is written: the exact chain `path` if the source has it, else the
/// nearest enclosing property, else the default export, else just the file.
pub fn locate(modules: &Modules, file: &str, path: &[&str]) -> Location {
    let Some(module) = modules.get(file) else {
        return Location { file: file.to_string(), span: None };
    };
    for len in (1..=path.len()).rev() {
        if let Some(site) = module.find_property(&path[..len]) {
            return Location { file: file.to_string(), span: Some(site.key) };
        }
    }
    Location { file: file.to_string(), span: module.default_export }
}
