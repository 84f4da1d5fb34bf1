//! Function steps: the JavaScript function a workflow step carries, run in the sandbox.
//!
//! [`run_function`] evaluates the function's source text (`function f(parameters) { … }`,
//! `async function …`, an arrow, or a method shorthand `code(parameters) { … }`), calls it with
//! the step's parameters and an empty `libraries` object, awaits the result if it is a promise,
//! and returns the result as JSON text.
//!
//! Every call gets a fresh QuickJS *context* (its own global object and built-ins), so nothing a
//! function writes is visible to the next one. Contexts are cheap; runtimes are not, so each
//! thread keeps one [`Runtime`] and reuses it until a call leaves it in doubt (out of memory, or
//! jobs left queued after a timeout), when it is dropped and the next call makes a new one.
//!
//! The sandbox is the build's ([`crate::sandbox`]): the ECMAScript built-ins (and QuickJS's
//! `atob`/`btoa`), no clock (`Date.now()`, `new Date()`) and no `Math.random()`, no host objects,
//! no module loader. `console.log` & co. exist and discard what they are given. The code is
//! evaluated in strict mode, as it was written (in an ES module).

use std::{
    cell::{Cell, RefCell},
    fmt,
    rc::Rc,
    time::{Duration, Instant},
};

use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Promise, Runtime,
    Value, context::EvalOptions, promise::PromiseState,
};

use crate::{
    JsErrorKind,
    engine::{message_and_stack, split_frame},
    sandbox,
};

/// Resource limits of one [`run_function`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionLimits {
    /// Wall-clock budget of the whole call: compiling, running, and running the promise jobs it
    /// queues. Default 5 s.
    pub time: Duration,
    /// Heap limit of the thread's runtime while the call runs (the fresh context's built-ins,
    /// about 0.1 MiB, count against it). Default 64 MiB.
    pub memory_bytes: usize,
    /// Native stack the JavaScript may use; deep recursion fails with a `RangeError` beyond it.
    /// Default 1 MiB, about 1,600 JavaScript frames (a frame takes 0.5–0.7 KiB). The calling
    /// thread needs that much stack to spare: tokio's blocking threads and Rust's spawned
    /// threads have 2 MiB.
    pub stack_bytes: usize,
}

impl Default for FunctionLimits {
    fn default() -> Self {
        FunctionLimits {
            time: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            stack_bytes: 1 << 20,
        }
    }
}

/// Why a function step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `Exception` for anything the code threw (including stack overflow, a rejected promise, a
    /// promise that never settles, parameters that are not JSON); `Timeout`; `OutOfMemory`.
    pub kind: JsErrorKind,
    /// `TypeError: x is undefined`; the name is omitted for plain `Error`s.
    pub message: String,
    /// Innermost frame of the function's own code, 1-based, within the source text as given.
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The JavaScript stack; frames of the function's code read `function:<line>:<column>`
    /// (positions within the source text as given).
    pub stack: String,
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

impl std::error::Error for FunctionError {}

impl FunctionError {
    fn new(kind: JsErrorKind, message: impl Into<String>) -> Self {
        FunctionError {
            kind,
            message: message.into(),
            line: None,
            column: None,
            stack: String::new(),
        }
    }
}

/// The file name the code is evaluated under: stack frames in this file are the function's own.
const FILE: &str = "function";

/// Runs `code` (the source of a function expression) with the parameters `parameters_json` (JSON
/// text, normally an object) and returns the JSON text of its result, awaited if it is a
/// promise: what `JSON.stringify` gives, `None` when that is `undefined` (the function returned
/// nothing, or a function or symbol).
///
/// Synchronous: runs on the calling thread (a blocking pool's thread), which keeps a QuickJS
/// runtime for the next calls. Never panics on bad code; every failure is a [`FunctionError`].
pub fn run_function(
    code: &str,
    parameters_json: &str,
    limits: &FunctionLimits,
) -> Result<Option<String>, FunctionError> {
    thread_local! {
        static SANDBOX: RefCell<Option<Sandbox>> = const { RefCell::new(None) };
    }
    let anchor = stack_address();
    SANDBOX.with(|slot| {
        // A nested call (impossible today: no host function calls back) would find the slot
        // borrowed; it gets a runtime of its own rather than a panic.
        let Ok(mut slot) = slot.try_borrow_mut() else {
            let sandbox = Sandbox::new(anchor)?;
            return sandbox.run(code, parameters_json, limits).0;
        };
        // QuickJS measures its stack limit from where the runtime was created; a runtime made
        // at a very different depth would allow too much or too little.
        if slot.as_ref().is_some_and(|s| s.stack_anchor.abs_diff(anchor) > STACK_DRIFT) {
            *slot = None;
        }
        let sandbox = match slot.as_mut() {
            Some(sandbox) => sandbox,
            None => slot.insert(Sandbox::new(anchor)?),
        };
        let (result, reusable) = sandbox.run(code, parameters_json, limits);
        if !reusable {
            *slot = None;
        }
        result
    })
}

/// How far (bytes) a call may be from the depth its thread's runtime was created at.
const STACK_DRIFT: usize = 64 << 10;

/// The address of a local: where the stack is now.
#[inline(never)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

struct Sandbox {
    runtime: Runtime,
    deadline: Rc<Cell<Option<Instant>>>,
    stack_anchor: usize,
}

/// What the first pass over a call leaves: a final answer, or a promise to wait for.
enum Called {
    Done(Result<Option<String>, FunctionError>),
    Promise(Persistent<Promise<'static>>),
}

impl Sandbox {
    fn new(stack_anchor: usize) -> Result<Sandbox, FunctionError> {
        let runtime = Runtime::new_with_alloc(rquickjs::allocator::RustAllocator).map_err(|e| {
            FunctionError::new(
                JsErrorKind::Exception,
                format!("could not start the JavaScript engine: {e}"),
            )
        })?;
        let deadline: Rc<Cell<Option<Instant>>> = Rc::default();
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            watched.get().is_some_and(|limit| Instant::now() > limit)
        })));
        Ok(Sandbox { runtime, deadline, stack_anchor })
    }

    /// One call; the flag says whether the runtime can serve the next call.
    fn run(
        &self,
        code: &str,
        parameters_json: &str,
        limits: &FunctionLimits,
    ) -> (Result<Option<String>, FunctionError>, bool) {
        self.runtime.set_memory_limit(limits.memory_bytes);
        self.runtime.set_max_stack_size(limits.stack_bytes);
        // Each call leaves its context behind as garbage (its built-ins reference each other, so
        // only the collector frees them). Collecting every few calls rather than every call (the
        // default) saves ~7% of a call; resetting the threshold here (the collector raises it
        // after a big call) keeps what earlier calls left below it, out of this call's way.
        self.runtime.set_gc_threshold((limits.memory_bytes / 8).clamp(256 << 10, 4 << 20));
        let deadline = Instant::now() + limits.time;
        self.deadline.set(Some(deadline));
        let result = self.call(code, parameters_json, limits, deadline);
        self.deadline.set(None);
        let result = result.map_err(|mut e| {
            if e.kind == JsErrorKind::Exception
                && e.message.contains("interrupted")
                && Instant::now() > deadline
            {
                e.kind = JsErrorKind::Timeout;
                e.message = format!("the function did not finish within {:?}", limits.time);
            }
            e
        });
        // After running out of memory QuickJS may have half-built objects; after a timeout in
        // the middle of promise jobs, the rest are still queued. Start afresh in both cases.
        let reusable = !matches!(&result, Err(e) if e.kind == JsErrorKind::OutOfMemory)
            && !self.runtime.is_job_pending();
        (result, reusable)
    }

    fn call(
        &self,
        code: &str,
        parameters_json: &str,
        limits: &FunctionLimits,
        deadline: Instant,
    ) -> Result<Option<String>, FunctionError> {
        let context = Context::full(&self.runtime).map_err(|e| {
            FunctionError::new(
                JsErrorKind::OutOfMemory,
                format!("could not create the function's context: {e}"),
            )
        })?;
        let (called, shift) = context.with(|ctx| -> Result<(Called, usize), FunctionError> {
            let (function, shift) = prepare(&ctx, code, limits)?;
            let parameters: Value = ctx.json_parse(parameters_json).catch(&ctx).map_err(|e| {
                let (message, _) = message_and_stack(e);
                FunctionError::new(
                    JsErrorKind::Exception,
                    format!("the parameters are not valid JSON: {message}"),
                )
            })?;
            let libraries =
                Object::new(ctx.clone()).catch(&ctx).map_err(|e| describe(e, 0, limits))?;
            let out: Value = function
                .call((parameters, libraries))
                .catch(&ctx)
                .map_err(|e| describe(e, shift, limits))?;
            let called = match as_promise(&ctx, out).map_err(|e| describe(e, shift, limits))? {
                Ok(promise) => Called::Promise(Persistent::save(&ctx, promise)),
                Err(value) => Called::Done(stringify(&ctx, value, limits)),
            };
            Ok((called, shift))
        })?;
        // Run the promise jobs the call queued, all of them (as Node empties its microtask queue
        // before going on), within the deadline.
        while self.runtime.is_job_pending() {
            if Instant::now() > deadline {
                return Err(FunctionError::new(JsErrorKind::Exception, "interrupted"));
            }
            if let Err(job) = self.runtime.execute_pending_job() {
                return Err(job.0.with(|ctx| {
                    describe(
                        CaughtError::from_error(&ctx, rquickjs::Error::Exception),
                        shift,
                        limits,
                    )
                }));
            }
        }
        match called {
            Called::Done(result) => result,
            Called::Promise(promise) => context.with(|ctx| {
                let promise = promise
                    .restore(&ctx)
                    .catch(&ctx)
                    .map_err(|e| describe(e, shift, limits))?;
                match promise.state() {
                    PromiseState::Pending => Err(FunctionError::new(
                        JsErrorKind::Exception,
                        "the function's promise never settles: it waits for something that cannot happen in a function step (nothing is left to run)",
                    )),
                    PromiseState::Resolved | PromiseState::Rejected => {
                        let value: Value = promise
                            .result()
                            .expect("the promise is settled")
                            .catch(&ctx)
                            .map_err(|e| describe(e, shift, limits))?;
                        stringify(&ctx, value, limits)
                    }
                }
            }),
        }
    }
}

/// Installs the sandbox into a fresh context and evaluates the function's source. Returns the
/// function and how many characters the wrapper put before the code on its first line.
fn prepare<'js>(
    ctx: &Ctx<'js>,
    code: &str,
    limits: &FunctionLimits,
) -> Result<(Function<'js>, usize), FunctionError> {
    let internal = |e: CaughtError<'_>| {
        let (message, _) = message_and_stack(e);
        let kind = if message.contains("out of memory") {
            JsErrorKind::OutOfMemory
        } else {
            JsErrorKind::Exception
        };
        FunctionError::new(kind, format!("could not prepare the sandbox: {message}"))
    };
    // `console.log` & co. exist and discard.
    sandbox::install(ctx, None).catch(ctx).map_err(internal)?;

    let evaluate = |prefix: &str, suffix: &str| -> Result<Value<'js>, CaughtError<'js>> {
        ctx.eval_with_options::<Value, _>(format!("{prefix}{code}\n{suffix}"), options(FILE))
            .catch(ctx)
    };
    let value = match evaluate("(", ")") {
        Ok(value) => (value, 1),
        Err(error) => {
            let syntax = match &error {
                CaughtError::Exception(e) => {
                    e.get::<_, String>("name").is_ok_and(|n| n == "SyntaxError")
                }
                _ => false,
            };
            // `code(parameters) { … }`: the source text of a method, as `String(f)` gives it
            // for `{ code(parameters) { … } }`.
            let method = if syntax && is_method_shorthand(code) {
                evaluate("({", "})").ok().and_then(|object| {
                    let object = object.into_object()?;
                    object.values::<Value>().next()?.ok()
                })
            } else {
                None
            };
            match method {
                Some(value) => (value, 2),
                None => return Err(describe(error, 1, limits)),
            }
        }
    };
    let (value, shift) = value;
    match value.into_function() {
        Some(function) => Ok((function, shift)),
        None => Err(FunctionError::new(
            JsErrorKind::Exception,
            "the step's code is not a function: write `function (parameters) { … }` or `(parameters) => …`",
        )),
    }
}

fn options(file: &str) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.strict = true;
    options.filename = Some(file.to_string());
    options
}

/// `name(`, `async name(`, `*name(`, `async *name(`, but not `function …`/`async function …`.
fn is_method_shorthand(code: &str) -> bool {
    let rest = code.trim_start();
    let rest = match rest.strip_prefix("async") {
        Some(after) if after.starts_with(|c: char| c.is_whitespace()) => after.trim_start(),
        _ => rest,
    };
    let rest = rest.strip_prefix('*').unwrap_or(rest).trim_start();
    let name_len =
        rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_len);
    !name.is_empty()
        && name != "function"
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && after.trim_start().starts_with('(')
}

/// The call's result as a promise to wait for (a promise, or a thenable adopted through
/// `Promise.resolve` as `await` would), or as the value itself.
fn as_promise<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
) -> Result<Result<Promise<'js>, Value<'js>>, CaughtError<'js>> {
    if let Some(promise) = value.as_promise() {
        return Ok(Ok(promise.clone()));
    }
    let Some(object) = value.as_object() else { return Ok(Err(value)) };
    let then: Value = object.get("then").catch(ctx)?;
    if !then.is_function() {
        return Ok(Err(value));
    }
    let adopt = || -> rquickjs::Result<Promise<'js>> {
        let promise: Object = ctx.globals().get("Promise")?;
        let resolve: Function = promise.get("resolve")?;
        resolve.call((rquickjs::function::This(promise), value))
    };
    adopt().catch(ctx).map(Ok)
}

fn stringify<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
    limits: &FunctionLimits,
) -> Result<Option<String>, FunctionError> {
    let text = ctx.json_stringify(value).catch(ctx).map_err(|e| {
        let mut error = describe(e, 1, limits);
        if error.kind == JsErrorKind::Exception {
            error.message =
                format!("the function's result cannot be turned into JSON: {}", error.message);
        }
        error
    })?;
    text.map(|s| s.to_string()).transpose().catch(ctx).map_err(|e| describe(e, 1, limits))
}

/// A caught error as a [`FunctionError`], with the positions of the function's own frames
/// mapped back to its source text (`shift` characters were put before it on line 1).
fn describe(caught: CaughtError<'_>, shift: usize, limits: &FunctionLimits) -> FunctionError {
    let (message, raw_stack) = message_and_stack(caught);
    let (kind, message) = if message.contains("out of memory") {
        (
            JsErrorKind::OutOfMemory,
            format!("the function ran out of memory (limit {} MiB)", limits.memory_bytes >> 20),
        )
    } else if message.contains("Maximum call stack size exceeded") {
        (
            JsErrorKind::Exception,
            format!(
                "{message}: the function recursed too deeply (stack limit {} KiB)",
                limits.stack_bytes >> 10
            ),
        )
    } else {
        (JsErrorKind::Exception, message)
    };
    let mut position = None;
    let stack: Vec<String> = raw_stack
        .lines()
        .map(|line| {
            let Some((prefix, file, l, c, suffix)) = split_frame(line) else {
                return line.to_string();
            };
            if file != FILE {
                return line.to_string();
            }
            let c = if l == 1 { c.saturating_sub(shift as u32).max(1) } else { c };
            position.get_or_insert((l, c));
            format!("{prefix}{file}:{l}:{c}{suffix}")
        })
        .collect();
    FunctionError {
        kind,
        message,
        line: position.map(|(l, _)| l),
        column: position.map(|(_, c)| c),
        stack: stack.join("\n"),
    }
}
