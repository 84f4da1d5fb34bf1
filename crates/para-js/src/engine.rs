//! The embedded JavaScript engine (QuickJS through rquickjs), sandboxed.
//!
//! Project code gets no file system, network, clock or process access: the only globals are the
//! ECMAScript built-ins (minus clocks and randomness, see [`crate::sandbox`]) and the only
//! importable modules are the project's own files and the virtual modules the host supplies.
//! Every call runs under a deadline enforced by QuickJS's interrupt handler, and the runtime has
//! a memory limit. Capabilities are decided here, in Rust, never checked in JS.

use std::{
    cell::Cell,
    collections::BTreeMap,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Error, Function, Module, Object, Runtime, Value,
    loader::{ImportAttributes, Loader, Resolver},
};

use crate::{
    Transpiled,
    sandbox::{self, Clock, ConsoleSink},
};

/// Supplies the source of a virtual (host-provided) module by its specifier, e.g.
/// `@useparagon/core`. Returning `None` means "no such module".
pub type VirtualModules = Rc<dyn Fn(&str) -> Option<String>>;

/// Resource limits for one engine.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Heap limit of the whole runtime.
    pub memory_bytes: usize,
    /// Native stack QuickJS may use (guards runaway recursion).
    pub stack_bytes: usize,
    /// Wall-clock budget of one call into JavaScript.
    pub time_per_call: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            stack_bytes: 1 << 20,
            time_per_call: Duration::from_secs(3),
        }
    }
}

/// Why a call into JavaScript failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsErrorKind {
    /// The code threw (or a module failed to link).
    Exception,
    /// The call ran past its time budget.
    Timeout,
    /// The runtime ran out of its memory budget.
    OutOfMemory,
}

/// A failed call, with the position in the *TypeScript* source where it happened when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsError {
    pub kind: JsErrorKind,
    pub message: String,
    /// The JavaScript stack with every project frame remapped to TypeScript lines.
    pub stack: String,
    /// Innermost project frame: (file, 1-based line, 1-based column) in the TypeScript source.
    pub location: Option<(String, u32, u32)>,
}

/// The project's transpiled files, shared read-only by every engine of a build.
pub type Modules = Arc<BTreeMap<String, Transpiled>>;

/// Resolves `.` and `..` segments of a `/`-separated path.
pub fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// Resolves a relative specifier against the importing module's name, trying the extensions and
/// folder indexes TypeScript projects rely on. Returns `None` if no project file matches.
pub fn resolve_relative(
    modules: &BTreeMap<String, Transpiled>,
    base: &str,
    specifier: &str,
) -> Option<String> {
    let dir = base.rsplit_once('/').map_or("", |(dir, _)| dir);
    let joined = normalize_path(&format!("{dir}/{specifier}"));
    let mut candidates = vec![
        joined.clone(),
        format!("{joined}.ts"),
        format!("{joined}.tsx"),
        format!("{joined}/index.ts"),
        format!("{joined}/index.tsx"),
    ];
    if let Some(stem) = joined.strip_suffix(".js") {
        candidates.push(format!("{stem}.ts"));
    }
    candidates.into_iter().find(|c| modules.contains_key(c))
}

struct ProjectResolver {
    modules: Modules,
    virtuals: VirtualModules,
}

impl Resolver for ProjectResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        if name.starts_with('.') {
            return resolve_relative(&self.modules, base, name)
                .ok_or_else(|| Error::new_resolving(base, name));
        }
        if self.modules.contains_key(name) || (self.virtuals)(name).is_some() {
            return Ok(name.to_string());
        }
        Err(Error::new_resolving(base, name))
    }
}

struct ProjectLoader {
    modules: Modules,
    virtuals: VirtualModules,
}

impl Loader for ProjectLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, rquickjs::module::Declared>> {
        if let Some(module) = self.modules.get(name) {
            return Module::declare(ctx.clone(), name, module.js.as_str());
        }
        match (self.virtuals)(name) {
            Some(source) => Module::declare(ctx.clone(), name, source),
            None => Err(Error::new_loading(name)),
        }
    }
}

/// One sandboxed JavaScript runtime holding a project's modules. Not `Send`: create it on the
/// thread that uses it.
pub struct Engine {
    // Field order matters: the context must drop before the runtime.
    context: Context,
    /// Owned so the runtime lives as long as the context; never read.
    _runtime: Runtime,
    deadline: Rc<Cell<Option<Instant>>>,
    modules: Modules,
    limits: Limits,
}

impl Engine {
    pub fn new(
        modules: Modules,
        virtuals: VirtualModules,
        limits: Limits,
    ) -> Result<Engine, JsError> {
        let internal = |e: Error| JsError {
            kind: JsErrorKind::Exception,
            message: format!("could not start the JavaScript engine: {e}"),
            stack: String::new(),
            location: None,
        };
        // QuickJS's memory goes through Rust's global allocator (mimalloc in `para`: much faster
        // than the system one for the build's many small objects). QuickJS itself still counts
        // every allocation against the limit.
        let runtime =
            Runtime::new_with_alloc(rquickjs::allocator::RustAllocator).map_err(internal)?;
        runtime.set_memory_limit(limits.memory_bytes);
        // Builds allocate many short-lived objects; collecting every few hundred kilobytes (the
        // default) costs more than it saves. The memory limit still bounds the heap.
        runtime.set_gc_threshold((limits.memory_bytes / 8).max(1 << 20));
        runtime.set_max_stack_size(limits.stack_bytes);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::default();
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            watched.get().is_some_and(|limit| Instant::now() > limit)
        })));
        runtime.set_loader(
            ProjectResolver { modules: modules.clone(), virtuals: virtuals.clone() },
            ProjectLoader { modules: modules.clone(), virtuals },
        );
        let context = Context::full(&runtime).map_err(internal)?;
        // The one host capability: console output, to stderr, for debugging build code.
        let console: ConsoleSink = Rc::new(|line: &str| eprintln!("console: {line}"));
        context
            .with(|ctx| sandbox::install(&ctx, Some(console), Clock::Denied))
            .map_err(internal)?;
        Ok(Engine { context, _runtime: runtime, deadline, modules, limits })
    }

    /// Imports (and on first use evaluates) `module`, then calls `function` exported by the
    /// virtual module `host_module` with the module's namespace object and `argument`. The
    /// function must return a string (typically JSON), which is returned.
    pub fn call_with_module(
        &self,
        module: &str,
        host_module: &str,
        function: &str,
        argument: &str,
    ) -> Result<String, JsError> {
        self.deadline.set(Some(Instant::now() + self.limits.time_per_call));
        let result = self.context.with(|ctx| {
            let run = || -> rquickjs::Result<String> {
                let namespace: Object = Module::import(&ctx, module)?.finish()?;
                let host: Object = Module::import(&ctx, host_module)?.finish()?;
                let f: Function = host.get(function)?;
                let out: Value = f.call((namespace, argument))?;
                match out.as_string() {
                    Some(s) => s.to_string(),
                    None => Err(Error::new_from_js("value", "string")),
                }
            };
            run().catch(&ctx).map_err(|caught| self.describe(caught))
        });
        let timed_out = self.deadline.get().is_some_and(|limit| Instant::now() > limit);
        self.deadline.set(None);
        result.map_err(|mut e| {
            if timed_out && e.kind == JsErrorKind::Exception && e.message.contains("interrupted") {
                e.kind = JsErrorKind::Timeout;
            }
            e
        })
    }

    /// A project module as transpiled, by its path.
    pub fn module(&self, path: &str) -> Option<&Transpiled> {
        self.modules.get(path)
    }

    /// Resolves a relative import of `base` to a project module, as the loader will.
    pub fn resolve(&self, base: &str, specifier: &str) -> Option<String> {
        if specifier.starts_with('.') {
            resolve_relative(&self.modules, base, specifier)
        } else {
            None
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn describe(&self, caught: CaughtError<'_>) -> JsError {
        let (message, raw_stack) = message_and_stack(caught);
        let kind = if message.contains("out of memory") {
            JsErrorKind::OutOfMemory
        } else {
            JsErrorKind::Exception
        };
        let (stack, location) = self.remap_stack(&raw_stack);
        JsError { kind, message, stack, location }
    }

    /// Rewrites `file:line:col` positions of project frames from JavaScript to TypeScript, and
    /// returns the innermost project frame.
    fn remap_stack(&self, stack: &str) -> (String, Option<(String, u32, u32)>) {
        let mut first = None;
        let lines: Vec<String> = stack
            .lines()
            .map(|line| {
                let Some((prefix, file, l, c, suffix)) = split_frame(line) else {
                    return line.to_string();
                };
                let Some(module) = self.modules.get(file) else { return line.to_string() };
                match module.original_position(l, c) {
                    Some((tl, tc)) => {
                        if first.is_none() {
                            first = Some((file.to_string(), tl, tc));
                        }
                        format!("{prefix}{file}:{tl}:{tc}{suffix}")
                    }
                    None => line.to_string(),
                }
            })
            .collect();
        (lines.join("\n"), first)
    }
}

/// The message of a caught error (`TypeError: …`; the name is omitted for plain `Error`) and its
/// raw JavaScript stack (empty when a non-error value was thrown).
pub(crate) fn message_and_stack(caught: CaughtError<'_>) -> (String, String) {
    match caught {
        CaughtError::Exception(ex) => {
            let name: Option<String> = ex.get("name").ok();
            let message = ex.message().unwrap_or_default();
            let message = match name {
                Some(name) if !name.is_empty() && name != "Error" => format!("{name}: {message}"),
                _ => message,
            };
            (message, ex.stack().unwrap_or_default())
        }
        CaughtError::Value(value) => {
            let text = value
                .as_string()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| format!("{value:?}"));
            (format!("uncaught value thrown: {text}"), String::new())
        }
        CaughtError::Error(error) => (error.to_string(), String::new()),
    }
}

/// Splits a QuickJS stack line `    at f (file:12:3)` / `    at file:12:3` into its parts.
pub(crate) fn split_frame(line: &str) -> Option<(&str, &str, u32, u32, &str)> {
    let (prefix, location, suffix) = match (line.rfind('('), line.ends_with(')')) {
        (Some(open), true) => (&line[..=open], &line[open + 1..line.len() - 1], ")"),
        _ => {
            let at = line.find("at ")?;
            (&line[..at + 3], &line[at + 3..], "")
        }
    };
    let mut parts = location.rsplitn(3, ':');
    let col = parts.next()?.parse().ok()?;
    let line_no = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    Some((prefix, file, line_no, col, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transpile;

    fn engine(files: &[(&str, &str)], limits: Limits) -> Engine {
        let modules = Arc::new(
            files
                .iter()
                .map(|(name, src)| (name.to_string(), transpile(name, src).unwrap()))
                .collect(),
        );
        let virtuals: VirtualModules = Rc::new(|name: &str| {
            (name == "@host").then(|| {
                "export function json(ns) { return JSON.stringify(ns.default ?? null); }"
                    .to_string()
            })
        });
        Engine::new(modules, virtuals, limits).unwrap()
    }

    #[test]
    fn evaluates_relative_imports_with_spaces_and_index() {
        let e = engine(
            &[
                (
                    "src/a.ts",
                    "import b from './dir/b c';\nimport d from './d';\nexport default { b, d };",
                ),
                ("src/dir/b c.ts", "export default 1 as number;"),
                ("src/d/index.ts", "export default 'd';"),
            ],
            Limits::default(),
        );
        assert_eq!(
            e.call_with_module("src/a.ts", "@host", "json", "").unwrap(),
            r#"{"b":1,"d":"d"}"#
        );
    }

    #[test]
    fn infinite_loop_times_out_and_engine_stays_usable() {
        let limits = Limits { time_per_call: Duration::from_millis(200), ..Limits::default() };
        let e = engine(
            &[
                (
                    "src/loop.ts",
                    "while (true) { try { for (;;) {} } catch (e) {} }\nexport default 1;",
                ),
                ("src/ok.ts", "export default 2;"),
            ],
            limits,
        );
        let err = e.call_with_module("src/loop.ts", "@host", "json", "").unwrap_err();
        assert_eq!(err.kind, JsErrorKind::Timeout);
        assert_eq!(e.call_with_module("src/ok.ts", "@host", "json", "").unwrap(), "2");
    }

    #[test]
    fn runaway_allocation_hits_the_memory_limit() {
        let limits = Limits { memory_bytes: 16 << 20, ..Limits::default() };
        let e = engine(
            &[(
                "src/oom.ts",
                "const a: string[] = [];\nwhile (true) a.push('x'.repeat(100000) + a.length);\nexport default 1;",
            )],
            limits,
        );
        let err = e.call_with_module("src/oom.ts", "@host", "json", "").unwrap_err();
        assert_eq!(err.kind, JsErrorKind::OutOfMemory, "{err:?}");
    }

    #[test]
    fn exceptions_point_at_the_typescript_line() {
        let e = engine(
            &[(
                "src/throws.ts",
                "interface P { n: number }\n\ntype Q = P;\nconst p: Q | undefined = undefined;\nexport default p!.n;\n",
            )],
            Limits::default(),
        );
        let err = e.call_with_module("src/throws.ts", "@host", "json", "").unwrap_err();
        assert_eq!(err.kind, JsErrorKind::Exception);
        assert!(err.message.starts_with("TypeError"), "{}", err.message);
        assert_eq!(
            err.location.as_ref().map(|(f, l, _)| (f.as_str(), *l)),
            Some(("src/throws.ts", 5))
        );
    }

    #[test]
    fn no_clock_and_no_host_globals() {
        let e = engine(
            &[
                ("src/clock.ts", "export default Date.now();"),
                (
                    "src/globals.ts",
                    "export default [typeof std, typeof os, typeof fetch, typeof require];",
                ),
                ("src/date.ts", "export default new Date(0).toISOString();"),
            ],
            Limits::default(),
        );
        let err = e.call_with_module("src/clock.ts", "@host", "json", "").unwrap_err();
        assert!(err.message.contains("clock"), "{}", err.message);
        assert_eq!(
            e.call_with_module("src/globals.ts", "@host", "json", "").unwrap(),
            r#"["undefined","undefined","undefined","undefined"]"#
        );
        assert_eq!(
            e.call_with_module("src/date.ts", "@host", "json", "").unwrap(),
            r#""1970-01-01T00:00:00.000Z""#
        );
    }
}
