//! Function steps: the JavaScript function a workflow step carries, run in the sandbox.
//!
//! [`run_function`] evaluates the function's source text (`function f(parameters) { … }`,
//! `async function …`, an arrow, or a method shorthand `code(parameters) { … }`), calls it with
//! the step's parameters and an empty `libraries` object, awaits the result if it is a promise,
//! and returns the result as JSON text.
//!
//! Each thread keeps one QuickJS runtime with one *realm* (context), prepared once and locked
//! down ([`sandbox::lockdown`], the model of SES's `lockdown()`): the sandbox policy applied,
//! then every built-in, every prototype and `globalThis` frozen, so no call can leave state
//! behind for the next one (writing a global or a prototype throws a `TypeError`). Each distinct
//! source text is compiled once per thread, hardened (the function and everything reachable
//! from it frozen) and kept in a small LRU cache; a call parses the parameters into fresh
//! objects, calls the cached function and turns the result into JSON. Code that is not a plain
//! function expression (`(() => { let n = 0; return () => ++n; })()` evaluates to a function
//! with state of its own) is evaluated afresh on every call instead of cached. The runtime is
//! dropped, and the thread's next call builds a new one, when a call leaves it in doubt (an
//! allocation was refused, or jobs were left queued after a timeout), and after a call that
//! made it grow past `PARA_FUNCTION_MEMORY_RETAIN_MB` if a collection does not bring it back
//! under that ([`crate::memory`]: every runtime allocates through a meter charging its own limit
//! and the process-wide budget).
//!
//! A promise rejected with no handler once the call's promise jobs have all run (an error
//! thrown in a `.then` reaction whose promise nobody awaits, `Promise.reject(…)` left alone)
//! fails the call, as Node fails on an unhandled rejection.
//!
//! The sandbox is the build's ([`crate::sandbox`]) with the clock allowed: the ECMAScript
//! built-ins (and QuickJS's `atob`/`btoa`), `Date.now()`, `new Date()`, `Math.random()`; no host
//! objects, no module loader, no timers, no `FinalizationRegistry`. `console.log` & co. exist and
//! discard what they are given. The code is evaluated in strict mode, as it was written (in an
//! ES module).

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    fmt,
    hash::{Hash, Hasher},
    rc::Rc,
    time::{Duration, Instant},
};

use oxc::{
    allocator::Allocator,
    ast::ast::{Expression, ObjectPropertyKind},
    parser::Parser,
    span::SourceType,
};
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Promise, Runtime,
    Value, context::EvalOptions, promise::PromiseState,
};

use crate::{
    JsErrorKind,
    engine::{message_and_stack, split_frame},
    memory::{self, BUDGET, Meter, Metered},
    sandbox::{self, Clock},
};

/// Resource limits of one [`run_function`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionLimits {
    /// Wall-clock budget of the whole call: compiling, running, and running the promise jobs it
    /// queues. Default 5 s.
    pub time: Duration,
    /// Heap limit of the thread's runtime while the call runs (the realm's built-ins, about
    /// 0.4 MiB, and the cached functions count against it). Default 64 MiB. All runtimes of
    /// the process together are also bounded by the budget of [`crate::SandboxMemoryConfig`].
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
/// runtime, its locked-down realm and the functions compiled in it for the next calls. Never
/// panics on bad code; every failure is a [`FunctionError`].
pub fn run_function(
    code: &str,
    parameters_json: &str,
    limits: &FunctionLimits,
) -> Result<Option<String>, FunctionError> {
    let anchor = stack_address();
    // While this call runs, a call waiting for room in the budget may wait for it to free some.
    let _running = BUDGET.enter();
    SANDBOX.with(|slot| {
        // A nested call (impossible today: no host function calls back) would find the slot
        // borrowed; it gets a runtime of its own rather than a panic.
        let Ok(mut slot) = slot.try_borrow_mut() else {
            return run_in(&mut None, anchor, code, parameters_json, limits);
        };
        // QuickJS measures its stack limit from where the runtime was created; a runtime made
        // at a very different depth would allow too much or too little.
        if slot.as_ref().is_some_and(|s| s.stack_anchor.abs_diff(anchor) > STACK_DRIFT) {
            *slot = None;
        }
        run_in(&mut slot, anchor, code, parameters_json, limits)
    })
}

/// One call in the sandbox of `slot` (made if there is none), which is emptied when the runtime
/// cannot serve another call or holds too much after a spike.
fn run_in(
    slot: &mut Option<Sandbox>,
    anchor: usize,
    code: &str,
    parameters_json: &str,
    limits: &FunctionLimits,
) -> Result<Option<String>, FunctionError> {
    let sandbox = match slot.as_mut() {
        Some(sandbox) => sandbox,
        None => slot.insert(Sandbox::new(anchor, limits)?),
    };
    let (result, mut reusable) = sandbox.run(code, parameters_json, limits);
    // Give memory back after a spike: what the call left for the collector is collected, and a
    // runtime still holding more than it should keep is dropped with everything in it. While
    // the runtimes of the process hold more than half the budget, an idle thread keeps less
    // (an idle runtime's memory cannot be waited for: only its own thread can free it).
    let config = BUDGET.config();
    let keep = if BUDGET.used() > config.budget_bytes / 2 {
        config.retain_bytes / 4
    } else {
        config.retain_bytes
    };
    let spike = sandbox.meter.peak() > config.retain_bytes;
    if reusable && (spike || sandbox.meter.held() > keep) {
        sandbox.runtime.run_gc();
        reusable = sandbox.meter.held() <= keep;
    }
    if !reusable {
        *slot = None;
    }
    if spike || !reusable {
        // The thread's allocator would keep what was freed until the thread allocates again.
        memory::give_back();
    }
    result
}

thread_local! {
    static SANDBOX: RefCell<Option<Sandbox>> = const { RefCell::new(None) };
}

/// How far (bytes) a call may be from the depth its thread's runtime was created at.
const STACK_DRIFT: usize = 64 << 10;

/// How many compiled functions a thread keeps (the least recently used is dropped).
const CACHE_CAPACITY: usize = 256;

/// The address of a local: where the stack is now.
#[inline(never)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// A thread's runtime and its locked-down realm. Fields drop in order: the JavaScript values
/// held from Rust before the context, the context before the runtime (and [`Drop`] first lets
/// go of the rejected promises the runtime's tracker holds).
struct Sandbox {
    cache: RefCell<Cache>,
    /// The realm's `harden` ([`sandbox::lockdown`]).
    harden: Persistent<Function<'static>>,
    /// The `libraries` argument: a frozen empty object, the same for every call.
    libraries: Persistent<Object<'static>>,
    /// Promises rejected with no handler yet during the current call (QuickJS's host promise
    /// rejection tracker adds them, and removes one when a handler is attached).
    rejections: Rejections,
    context: Context,
    runtime: Runtime,
    /// What the runtime holds, its limit, the call's deadline (also the interrupt handler's).
    meter: Rc<Meter>,
    stack_anchor: usize,
    /// Set when hardening a function failed half-way (a timeout, out of memory): the realm is
    /// not trusted for another call.
    poisoned: Cell<bool>,
}

/// Promises rejected with no handler, by identity (a bucket per hash of the object's address,
/// so that attaching a handler to one of many costs no scan), in the order they were rejected.
#[derive(Default)]
struct Unhandled {
    promises: HashMap<u64, Vec<(u64, Persistent<Value<'static>>)>>,
    next: u64,
}

type Rejections = Rc<RefCell<Unhandled>>;

impl Unhandled {
    fn key(promise: &Value<'_>) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        promise.hash(&mut hasher);
        hasher.finish()
    }

    fn rejected<'js>(&mut self, ctx: &Ctx<'js>, promise: Value<'js>) {
        let entry = (self.next, Persistent::save(ctx, promise.clone()));
        self.next += 1;
        self.promises.entry(Self::key(&promise)).or_default().push(entry);
    }

    fn handled<'js>(&mut self, ctx: &Ctx<'js>, promise: &Value<'js>) {
        let key = Self::key(promise);
        let Some(bucket) = self.promises.get_mut(&key) else { return };
        bucket.retain(|(_, p)| p.clone().restore(ctx).map_or(true, |p| p != *promise));
        if bucket.is_empty() {
            self.promises.remove(&key);
        }
    }

    /// The promises still without a handler, first rejected first.
    fn in_order(&self) -> Vec<Persistent<Value<'static>>> {
        let mut all: Vec<_> = self.promises.values().flatten().collect();
        all.sort_by_key(|(order, _)| *order);
        all.into_iter().map(|(_, p)| p.clone()).collect()
    }

    fn clear(&mut self) {
        self.promises.clear();
        self.next = 0;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The tracker (owned by the runtime) shares the list: its values must go before the
        // runtime does.
        self.rejections.borrow_mut().clear();
    }
}

/// The compiled functions of a thread, by source text; the least recently used goes first.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, Cached>,
    clock: u64,
}

struct Cached {
    function: Persistent<Function<'static>>,
    /// Characters the wrapper put before the code on its first line.
    shift: usize,
    used: u64,
}

impl Cache {
    fn get(&mut self, code: &str) -> Option<(Persistent<Function<'static>>, usize)> {
        self.clock += 1;
        let entry = self.entries.get_mut(code)?;
        entry.used = self.clock;
        Some((entry.function.clone(), entry.shift))
    }

    fn insert(&mut self, code: &str, function: Persistent<Function<'static>>, shift: usize) {
        if self.entries.len() >= CACHE_CAPACITY
            && let Some(oldest) =
                self.entries.iter().min_by_key(|(_, entry)| entry.used).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.clock += 1;
        self.entries.insert(code.to_string(), Cached { function, shift, used: self.clock });
    }
}

/// What the first pass over a call leaves: a final answer, or a promise to wait for.
enum Called {
    Done(Result<Option<String>, FunctionError>),
    Promise(Persistent<Promise<'static>>),
}

impl Sandbox {
    /// A runtime and its realm: the sandbox policy (clock allowed), then the lockdown.
    fn new(stack_anchor: usize, limits: &FunctionLimits) -> Result<Sandbox, FunctionError> {
        let meter = Meter::new(&BUDGET, limits.memory_bytes);
        let failed = |message: String| {
            if meter.over_budget() {
                return over_budget();
            }
            let kind = if message.contains("out of memory") || meter.refused() {
                JsErrorKind::OutOfMemory
            } else {
                JsErrorKind::Exception
            };
            FunctionError::new(kind, format!("could not prepare the sandbox: {message}"))
        };
        // The runtime's limit is the meter's: QuickJS's own stays unset, so that every refused
        // allocation is seen (a runtime that ran out of memory is never used again, even if the
        // code caught the error).
        let runtime = Runtime::new_with_alloc(Metered(meter.clone()))
            .map_err(|e| failed(format!("could not start the JavaScript engine: {e}")))?;
        runtime.set_max_stack_size(limits.stack_bytes);
        let watched = meter.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            watched.deadline.get().is_some_and(|limit| Instant::now() > limit)
        })));
        let rejections: Rejections = Rc::default();
        let tracked = rejections.clone();
        runtime.set_host_promise_rejection_tracker(Some(Box::new(
            move |ctx: Ctx<'_>, promise: Value<'_>, _reason: Value<'_>, handled: bool| {
                let Ok(mut unhandled) = tracked.try_borrow_mut() else { return };
                if handled {
                    unhandled.handled(&ctx, &promise);
                } else {
                    unhandled.rejected(&ctx, promise);
                }
            },
        )));
        let context = Context::full(&runtime).map_err(|e| failed(e.to_string()))?;
        let (harden, libraries) = context.with(|ctx| {
            let realm = || -> rquickjs::Result<_> {
                sandbox::install(&ctx, None, Clock::Allowed)?;
                let harden = sandbox::lockdown(&ctx)?;
                let libraries: Object = harden.call((Object::new(ctx.clone())?,))?;
                Ok((Persistent::save(&ctx, harden), Persistent::save(&ctx, libraries)))
            };
            realm().catch(&ctx).map_err(|e| failed(message_and_stack(e).0))
        })?;
        rejections.borrow_mut().clear();
        Ok(Sandbox {
            cache: RefCell::default(),
            harden,
            libraries,
            rejections,
            context,
            runtime,
            meter,
            stack_anchor,
            poisoned: Cell::new(false),
        })
    }

    /// One call; the flag says whether the runtime can serve the next call.
    fn run(
        &self,
        code: &str,
        parameters_json: &str,
        limits: &FunctionLimits,
    ) -> (Result<Option<String>, FunctionError>, bool) {
        self.meter.start_call(limits.memory_bytes);
        self.runtime.set_max_stack_size(limits.stack_bytes);
        // A call's garbage that only the collector can free (cycles) must not eat into the next
        // call's memory limit: the threshold is reset here (the collector raises it after a big
        // call) so that what earlier calls left is collected long before the limit.
        self.runtime.set_gc_threshold((limits.memory_bytes / 8).clamp(256 << 10, 4 << 20));
        let deadline = Instant::now() + limits.time;
        self.meter.deadline.set(Some(deadline));
        let result = self.call(code, parameters_json, limits, deadline);
        self.meter.deadline.set(None);
        self.rejections.borrow_mut().clear();
        let result = result.map_err(|mut e| {
            if e.kind == JsErrorKind::Exception
                && e.message.contains("interrupted")
                && Instant::now() > deadline
            {
                e.kind = JsErrorKind::Timeout;
                e.message = format!("the function did not finish within {:?}", limits.time);
            } else if self.meter.over_budget() {
                // Whatever the code made of the refusal, running out of memory is the cause.
                e = FunctionError {
                    line: e.line,
                    column: e.column,
                    stack: e.stack,
                    ..over_budget()
                };
            } else if self.meter.refused() {
                e.kind = JsErrorKind::OutOfMemory;
                e.message = out_of_memory(limits);
            }
            e
        });
        // After running out of memory QuickJS may have half-built objects (even when the code
        // caught the error); after a timeout in the middle of promise jobs, the rest are still
        // queued. Start afresh in both cases.
        let reusable = !matches!(&result, Err(e) if e.kind == JsErrorKind::OutOfMemory)
            && !self.meter.refused()
            && !self.runtime.is_job_pending()
            && !self.poisoned.get();
        (result, reusable)
    }

    fn call(
        &self,
        code: &str,
        parameters_json: &str,
        limits: &FunctionLimits,
        deadline: Instant,
    ) -> Result<Option<String>, FunctionError> {
        let (called, shift) =
            self.context.with(|ctx| -> Result<(Called, usize), FunctionError> {
                let (function, shift) = self.function(&ctx, code, limits)?;
                let parameters: Value =
                    ctx.json_parse(parameters_json).catch(&ctx).map_err(|e| {
                        let (message, _) = message_and_stack(e);
                        FunctionError::new(
                            JsErrorKind::Exception,
                            format!("the parameters are not valid JSON: {message}"),
                        )
                    })?;
                let libraries = restore(&ctx, &self.libraries)?;
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
        self.context.with(|ctx| {
            let (result, own) = match called {
                Called::Done(result) => (result, None),
                Called::Promise(promise) => {
                    let promise = promise
                        .restore(&ctx)
                        .catch(&ctx)
                        .map_err(|e| describe(e, shift, limits))?;
                    let result = match promise.state() {
                        PromiseState::Pending => Err(FunctionError::new(
                            JsErrorKind::Exception,
                            "the function's promise never settles: it waits for something that cannot happen in a function step (nothing is left to run)",
                        )),
                        PromiseState::Resolved | PromiseState::Rejected => promise
                            .result::<Value>()
                            .expect("the promise is settled")
                            .catch(&ctx)
                            .map_err(|e| describe(e, shift, limits))
                            .and_then(|value| stringify(&ctx, value, limits)),
                    };
                    (result, Some(promise.into_value()))
                }
            };
            // The function's own failure first; else a promise rejected that nothing handled
            // (the function's own promise is handled here).
            let value = result?;
            match self.unhandled(&ctx, own.as_ref()) {
                Some(caught) => {
                    let mut error = describe(caught, shift, limits);
                    if error.kind == JsErrorKind::Exception {
                        error.message = format!("unhandled promise rejection: {}", error.message);
                    }
                    Err(error)
                }
                None => Ok(value),
            }
        })
    }

    /// The reason of the first promise rejected during the call that still has no handler,
    /// other than `own` (the function's result).
    fn unhandled<'js>(&self, ctx: &Ctx<'js>, own: Option<&Value<'js>>) -> Option<CaughtError<'js>> {
        let rejected = self.rejections.borrow().in_order();
        for promise in rejected {
            let Ok(promise) = promise.restore(ctx) else { continue };
            if own == Some(&promise) {
                continue;
            }
            if let Some(Err(error)) = promise.as_promise().and_then(|p| p.result::<Value>()) {
                return Some(CaughtError::from_error(ctx, error));
            }
        }
        None
    }

    /// The function `code` evaluates to, and how many characters the wrapper put before the
    /// code on its first line: from the cache, or compiled, hardened and cached. Code that is
    /// not a plain function expression is compiled afresh every time (what it evaluates to may
    /// hold state of its own).
    fn function<'js>(
        &self,
        ctx: &Ctx<'js>,
        code: &str,
        limits: &FunctionLimits,
    ) -> Result<(Function<'js>, usize), FunctionError> {
        let hit = self.cache.borrow_mut().get(code);
        if let Some((function, shift)) = hit {
            return Ok((restore(ctx, &function)?, shift));
        }
        let (evaluated, function, shift) = compile(ctx, code, limits)?;
        if !is_plain_function(code, shift == 2) {
            return Ok((function, shift));
        }
        let harden = restore(ctx, &self.harden)?;
        if let Err(e) = harden.call::<_, Value>((evaluated,)).catch(ctx) {
            self.poisoned.set(true);
            return Err(describe(e, 0, limits));
        }
        self.cache.borrow_mut().insert(code, Persistent::save(ctx, function.clone()), shift);
        Ok((function, shift))
    }
}

/// A value held from Rust, in `ctx` (always the realm it was saved from).
fn restore<'js, T>(ctx: &Ctx<'js>, value: &Persistent<T>) -> Result<T::Changed<'js>, FunctionError>
where
    T: rquickjs::JsLifetime<'static> + Clone,
{
    value.clone().restore(ctx).map_err(|e| {
        FunctionError::new(JsErrorKind::Exception, format!("the sandbox's realm is broken: {e}"))
    })
}

/// Evaluates the function's source. Returns what the evaluation gave (the function, or for a
/// method the object holding it), the function, and how many characters the wrapper put before
/// the code on its first line.
fn compile<'js>(
    ctx: &Ctx<'js>,
    code: &str,
    limits: &FunctionLimits,
) -> Result<(Value<'js>, Function<'js>, usize), FunctionError> {
    let evaluate = |prefix: &str, suffix: &str| -> Result<Value<'js>, CaughtError<'js>> {
        ctx.eval_with_options::<Value, _>(format!("{prefix}{code}\n{suffix}"), options(FILE))
            .catch(ctx)
    };
    let (evaluated, value, shift) = match evaluate("(", ")") {
        Ok(value) => (value.clone(), value, 1),
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
                    let method = object.as_object()?.values::<Value>().next()?.ok()?;
                    Some((object, method))
                })
            } else {
                None
            };
            match method {
                Some((object, method)) => (object, method, 2),
                None => return Err(describe(error, 1, limits)),
            }
        }
    };
    match value.into_function() {
        Some(function) => Ok((evaluated, function, shift)),
        None => Err(FunctionError::new(
            JsErrorKind::Exception,
            "the step's code is not a function: write `function (parameters) { … }` or `(parameters) => …`",
        )),
    }
}

/// Whether `code` is exactly one function expression (an arrow, `function …`, or with `method`
/// the text of one method), which evaluates to a new function and nothing else: such a function
/// holds no state of its own once hardened, and can be cached.
fn is_plain_function(code: &str, method: bool) -> bool {
    let allocator = Allocator::default();
    let text = if method { format!("({{{code}\n}})") } else { format!("({code}\n)") };
    let Ok(expression) = Parser::new(&allocator, &text, SourceType::script()).parse_expression()
    else {
        return false;
    };
    match expression.without_parentheses() {
        Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_) => !method,
        Expression::ObjectExpression(object) => {
            method
                && object.properties.len() == 1
                && matches!(&object.properties[0], ObjectPropertyKind::ObjectProperty(p)
                    if p.method && !p.computed)
        }
        _ => false,
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

/// The message of a call that ran out of memory under its own limit.
fn out_of_memory(limits: &FunctionLimits) -> String {
    format!("the function ran out of memory (limit {} MiB)", limits.memory_bytes >> 20)
}

/// A call refused memory because all function steps together hold the process-wide budget.
fn over_budget() -> FunctionError {
    FunctionError::new(
        JsErrorKind::OutOfMemory,
        format!(
            "the function ran out of memory: the function steps running in this process at the same time hold the whole process-wide budget for their memory ({} MiB; PARA_FUNCTION_MEMORY_BUDGET_MB raises it)",
            BUDGET.config().budget_bytes >> 20
        ),
    )
}

/// A caught error as a [`FunctionError`], with the positions of the function's own frames
/// mapped back to its source text (`shift` characters were put before it on line 1).
fn describe(caught: CaughtError<'_>, shift: usize, limits: &FunctionLimits) -> FunctionError {
    // QuickJS throws `null` when it runs out of memory again while making the error (a
    // function's own `throw null` reads the same; it is reported as running out of memory).
    let thrown_null = matches!(&caught, CaughtError::Value(v) if v.is_null());
    let (message, raw_stack) = message_and_stack(caught);
    let (kind, message) = if thrown_null || message.contains("out of memory") {
        (JsErrorKind::OutOfMemory, out_of_memory(limits))
    } else if message.contains("Maximum call stack size exceeded") {
        (
            JsErrorKind::Exception,
            format!(
                "{message}: the function recursed too deeply (stack limit {} KiB)",
                limits.stack_bytes >> 10
            ),
        )
    } else if message.starts_with("TypeError")
        && (message.contains("not extensible") || message.contains("read-only"))
    {
        (
            JsErrorKind::Exception,
            format!(
                "{message} (in a function step the global object and the built-ins are frozen: a call cannot leave anything behind for the next)"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cached() -> Vec<String> {
        SANDBOX.with(|slot| {
            let slot = slot.borrow();
            let sandbox = slot.as_ref().expect("a sandbox on this thread");
            sandbox.cache.borrow().entries.keys().cloned().collect()
        })
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_functions() {
        let limits = FunctionLimits::default();
        let code = |i: usize| format!("(p) => p.a + {i}");
        for i in 0..CACHE_CAPACITY + 44 {
            assert_eq!(
                run_function(&code(i), r#"{"a":1}"#, &limits).unwrap(),
                Some((i + 1).to_string())
            );
            // The first function stays the most recently used.
            assert_eq!(
                run_function(&code(0), r#"{"a":1}"#, &limits).unwrap().as_deref(),
                Some("1")
            );
        }
        let keys = cached();
        assert_eq!(keys.len(), CACHE_CAPACITY);
        assert!(keys.contains(&code(0)));
        assert!(keys.contains(&code(CACHE_CAPACITY + 43)));
        for i in 1..=44 {
            assert!(!keys.contains(&code(i)), "{i} should have been evicted");
        }
        // An evicted function is compiled again.
        assert_eq!(run_function(&code(1), r#"{"a":1}"#, &limits).unwrap().as_deref(), Some("2"));
        assert!(cached().contains(&code(1)));
        // Code that is not a plain function expression, or that fails to compile, is not kept.
        let _ = run_function("(() => () => 1)()", "{}", &limits).unwrap();
        let _ = run_function("(p) => p.", "{}", &limits).unwrap_err();
        assert!(!cached().iter().any(|c| c.contains("=> 1)()") || c.ends_with("p.")));
    }

    #[test]
    fn a_runtime_that_ran_out_of_memory_is_never_reused() {
        let limits = FunctionLimits { memory_bytes: 16 << 20, ..FunctionLimits::default() };
        let small = "(p) => p.a + 1";
        let bomb = "new Array(1e5).fill(1)";
        for code in [
            // In a reaction nobody awaits.
            format!(
                "() => {{ Promise.resolve().then(() => {{ const a = []; while (true) a.push({bomb}); }}); return 1; }}"
            ),
            // In a reaction, caught there: the call succeeds, the runtime still goes.
            format!(
                "async () => {{ await Promise.resolve().then(() => {{ try {{ const a = []; while (true) a.push({bomb}); }} catch {{}} }}); return 1; }}"
            ),
            // Caught by the function itself.
            format!(
                "() => {{ try {{ const a = []; while (true) a.push({bomb}); }} catch {{ return 1; }} }}"
            ),
        ] {
            assert_eq!(run_function(small, r#"{"a":1}"#, &limits).unwrap().as_deref(), Some("2"));
            assert_eq!(cached(), [small]);
            let _ = run_function(&code, "{}", &limits);
            SANDBOX.with(|slot| assert!(slot.borrow().is_none(), "{code}: the runtime was kept"));
            // The thread's next call works, in a fresh realm (nothing cached from before).
            assert_eq!(
                run_function("(p) => p.b", r#"{"b":3}"#, &limits).unwrap().as_deref(),
                Some("3")
            );
            assert_eq!(cached(), ["(p) => p.b"]);
            SANDBOX.with(|slot| *slot.borrow_mut() = None);
        }
    }

    #[test]
    fn plain_function_expressions() {
        for code in [
            "(p) => p.a",
            "async (p) => p",
            "p => p",
            "function (p) { return p; }",
            "async function* g() {}",
            "((p) => p)",
            "(p) => p // comment",
            "/* a */ function f() {} /* b */",
        ] {
            assert!(is_plain_function(code, false), "{code}");
        }
        for code in [
            "(() => { let n = 0; return () => ++n; })()",
            "(p) => p, 1",
            "class {}",
            "[].map",
            "x => x)(",
            "42",
        ] {
            assert!(!is_plain_function(code, false), "{code}");
        }
        assert!(is_plain_function("code(p) { return p; }", true));
        assert!(is_plain_function("async *code(p) {}", true));
        assert!(!is_plain_function("code(p) {}, other() {}", true));
        assert!(!is_plain_function("code: 1", true));
    }
}
