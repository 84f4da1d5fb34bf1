//! What JavaScript may see: the one sandbox policy, applied to every context before any project
//! or function-step code runs (the build's [`crate::Engine`] and [`crate::run_function`]), and
//! the lockdown that makes a function step's realm reusable ([`lockdown`]).
//!
//! No host objects: QuickJS's `performance` is removed (and `std`, `os`, `print`, `scriptArgs`,
//! which rquickjs never adds, stay absent). `console.log` & co. hand their line to the host's
//! sink, or do nothing. The clock depends on the use ([`Clock`]): the build's results must be
//! reproducible, so there `Date.now()`, `Date()` and `new Date()` without arguments, and
//! `Math.random()` throw (a `Date` built from explicit values works as usual); a function step
//! runs at run time, where reading the clock or drawing a random number is not I/O, and keeps
//! them.
//!
//! Installed from Rust rather than by evaluating a JavaScript prelude: the build creates a
//! context per engine and parsing a prelude costs about as much as creating the context itself.
//! Nothing here keeps a JavaScript value inside a Rust closure (the collector could not see
//! it): the real `Date` reaches the replacement through `Function.prototype.bind`.

use std::rc::Rc;

use rquickjs::{
    Coerced, Constructor, Ctx, Exception, Function, IntoJs, Object, Result, Value,
    function::{Args, IntoJsFunc, ParamRequirement, Params, This},
};

/// Where `console.log` & co. send their line (arguments joined by spaces, non-strings as JSON).
pub(crate) type ConsoleSink = Rc<dyn Fn(&str)>;

const NO_CLOCK: &str = "which the sandbox does not provide (results must be reproducible)";

/// Whether the sandbox's code may read the clock and draw random numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The build: `Date.now()`, `new Date()`, `Math.random()` throw.
    Denied,
    /// Function steps, at run time: `Date.now()`, `new Date()`, `Math.random()` work.
    Allowed,
}

/// Applies the sandbox to a fresh context (see the module documentation).
pub(crate) fn install(ctx: &Ctx<'_>, console: Option<ConsoleSink>, clock: Clock) -> Result<()> {
    let globals = ctx.globals();
    for name in ["performance", "os", "std", "scriptArgs", "print"] {
        globals.remove(name)?;
    }
    install_console(ctx, console)?;
    if clock == Clock::Allowed {
        return Ok(());
    }

    let math: Object = globals.get("Math")?;
    math.set(
        "random",
        thrower(
            ctx,
            "Math.random() is not available in the sandbox: results must be reproducible",
        )?,
    )?;

    let real: Constructor = globals.get("Date")?;
    let prototype: Object = real.get("prototype")?;
    let construct = Function::new(ctx.clone(), ConstructDate)?.with_constructor(true);
    construct.set("prototype", prototype.clone())?;
    let bind: Function = construct.get("bind")?;
    let date: Function =
        bind.call((This(construct), Value::new_undefined(ctx.clone()), real.clone()))?;
    date.set_name("Date")?;
    date.set_length(7)?;
    date.set("prototype", prototype.clone())?;
    date.set("UTC", real.get::<_, Value>("UTC")?)?;
    date.set("parse", real.get::<_, Value>("parse")?)?;
    date.set("now", thrower(ctx, &format!("Date.now() reads the clock, {NO_CLOCK}"))?)?;
    // `new Date(0).constructor` must not lead back to the real one.
    prototype.set("constructor", date.clone())?;
    globals.set("Date", date)
}

fn install_console(ctx: &Ctx<'_>, console: Option<ConsoleSink>) -> Result<()> {
    let log = match console {
        Some(sink) => Function::new(ctx.clone(), ConsoleLog(sink))?,
        None => Function::new(ctx.clone(), || {})?,
    }
    .with_name("log")?;
    let object = Object::new(ctx.clone())?;
    for method in ["log", "info", "warn", "error", "debug", "trace"] {
        object.set(method, log.clone())?;
    }
    ctx.globals().set("console", object)
}

/// Freezes the realm, SES `lockdown()`-style, and returns its `harden`: after it, nothing code
/// can reach from `globalThis` (the built-ins, their prototypes, the hidden intrinsics such as
/// `%AsyncFunction%` or the iterator prototypes, `globalThis` itself) can be changed, so code
/// run in the realm can leave nothing behind for the next code. `harden(value)` freezes `value`
/// and everything reachable from it the same way (for a function step's compiled function).
///
/// Before freezing: `Error.stackTraceLimit` and `Error.prepareStackTrace` (QuickJS keeps them in
/// the context, behind accessors a freeze cannot stop) become fixed data properties;
/// `FinalizationRegistry` is removed (its callbacks would run during a later call); and the
/// properties code commonly assigns on its own objects (`this.name` in an `Error` subclass,
/// `Child.prototype.constructor`, `obj.toString`) become accessors that define the property on
/// the object written to rather than throwing because the inherited one is frozen (SES's
/// "override taming"). Writing to a frozen object throws a `TypeError` in strict code.
pub(crate) fn lockdown<'js>(ctx: &Ctx<'js>) -> Result<Function<'js>> {
    ctx.eval(LOCKDOWN)
}

const LOCKDOWN: &str = r#"(() => {
  'use strict';
  const { defineProperty, freeze, getOwnPropertyDescriptor, getPrototypeOf, hasOwn } = Object;
  const { ownKeys } = Reflect;

  const hardened = new WeakSet();
  const harden = (root) => {
    const queue = [root];
    while (queue.length > 0) {
      const value = queue.pop();
      if ((typeof value !== 'object' || value === null) && typeof value !== 'function') continue;
      if (hardened.has(value)) continue;
      freeze(value);
      hardened.add(value);
      queue.push(getPrototypeOf(value));
      for (const key of ownKeys(value)) {
        const property = getOwnPropertyDescriptor(value, key);
        if (hasOwn(property, 'value')) queue.push(property.value);
        else queue.push(property.get, property.set);
      }
    }
    return root;
  };

  // Context state behind accessors: fixed.
  defineProperty(Error, 'stackTraceLimit', { value: Error.stackTraceLimit });
  delete Error.prepareStackTrace;
  delete globalThis.FinalizationRegistry;

  // The override mistake: assigning `o.name` fails when `name` is inherited from a frozen
  // prototype. These become accessors whose setter defines an own property on `this`.
  const tame = (object, key) => {
    const property = getOwnPropertyDescriptor(object, key);
    if (!property || !hasOwn(property, 'value') || !property.configurable) return;
    const { value } = property;
    const name = typeof key === 'symbol' ? `[${key.description}]` : key;
    defineProperty(object, key, {
      get() { return value; },
      set(assigned) {
        if (this === object) {
          throw new TypeError(`cannot assign to '${name}' of a frozen built-in prototype`);
        }
        defineProperty(this, key, { value: assigned, writable: true, enumerable: true, configurable: true });
      },
      enumerable: property.enumerable,
      configurable: false,
    });
  };
  for (const key of ownKeys(Object.prototype)) tame(Object.prototype, key);
  for (const error of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError,
                       URIError, AggregateError, globalThis.InternalError, globalThis.SuppressedError]) {
    if (error) for (const key of ['constructor', 'name', 'message', 'toString']) tame(error.prototype, key);
  }
  for (const key of ['constructor', 'toString']) {
    tame(Function.prototype, key);
    tame(Array.prototype, key);
  }
  tame(Promise.prototype, 'constructor');

  // Intrinsics no property of `globalThis` leads to.
  const AsyncFunction = async function () {};
  const GeneratorFunction = function* () {};
  const AsyncGeneratorFunction = async function* () {};
  harden([
    AsyncFunction, GeneratorFunction, GeneratorFunction(), AsyncGeneratorFunction,
    AsyncGeneratorFunction(), async () => {},
    [][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator](),
    ''[Symbol.iterator](), 'a'.matchAll(/a/g), [].values().map((x) => x),
    Iterator.from({ next() { return { done: true }; } }),
    typeof Iterator.concat === 'function' ? Iterator.concat() : undefined,
    (function () { return arguments; })(),
  ]);
  harden(globalThis);
  return harden;
})()"#;

/// A function that throws `Error(message)`.
fn thrower<'js>(ctx: &Ctx<'js>, message: &str) -> Result<Function<'js>> {
    let message = message.to_string();
    Function::new(ctx.clone(), move |ctx: Ctx<'js>| -> Result<()> {
        Err(Exception::throw_message(&ctx, &message))
    })
}

/// The target of the sandbox's `Date`, bound to the real constructor as its first argument.
struct ConstructDate;

impl<'js> IntoJsFunc<'js, ()> for ConstructDate {
    fn param_requirements() -> ParamRequirement {
        ParamRequirement::any()
    }

    fn call<'a>(&self, params: Params<'a, 'js>) -> Result<Value<'js>> {
        let ctx = params.ctx().clone();
        if !params.is_constructor() {
            let message = format!("Date() reads the clock, {NO_CLOCK}; use new Date(value)");
            return Err(Exception::throw_message(&ctx, &message));
        }
        if params.len() <= 1 {
            let message = format!(
                "new Date() without arguments reads the clock, {NO_CLOCK}; pass an explicit date"
            );
            return Err(Exception::throw_message(&ctx, &message));
        }
        let real: Constructor = params.arg(0).expect("bound").get()?;
        // Called as a constructor, `this` is `new.target` (a subclass, or the bound function's
        // target, whose `prototype` is `Date.prototype`).
        let mut args = Args::new(ctx.clone(), params.len() - 1);
        args.this(params.this())?;
        args.push_args((1..params.len()).filter_map(|i| params.arg(i)))?;
        args.construct(&real)
    }
}

/// `console.log`: the arguments joined by spaces, strings as they are, anything else as JSON
/// (or `String(value)` when JSON cannot hold it).
struct ConsoleLog(ConsoleSink);

impl<'js> IntoJsFunc<'js, ()> for ConsoleLog {
    fn param_requirements() -> ParamRequirement {
        ParamRequirement::any()
    }

    fn call<'a>(&self, params: Params<'a, 'js>) -> Result<Value<'js>> {
        let ctx = params.ctx().clone();
        let parts: Vec<String> = (0..params.len())
            .filter_map(|i| params.arg(i))
            .map(|value| show(&ctx, value))
            .collect();
        (self.0)(&parts.join(" "));
        ().into_js(&ctx)
    }
}

fn show<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    if let Some(s) = value.as_string() {
        return s.to_string().unwrap_or_default();
    }
    if let Ok(Some(json)) = ctx.json_stringify(value.clone())
        && let Ok(json) = json.to_string()
    {
        return json;
    }
    // A failed `JSON.stringify` left its exception pending.
    let _ = ctx.catch();
    match value.get::<Coerced<String>>() {
        Ok(Coerced(s)) => s,
        Err(_) => {
            let _ = ctx.catch();
            format!("[{}]", value.type_name())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use rquickjs::{Context, Runtime};

    use super::*;

    #[test]
    fn no_way_to_the_clock_or_randomness() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            install(&ctx, None, Clock::Denied).unwrap();
            let blocked: String = ctx
                .eval(
                    "const attempts = {
                       now: () => Date.now(),
                       call: () => Date(0),
                       construct: () => new Date(),
                       reflect: () => Reflect.construct(Date, []),
                       viaPrototype: () => new Date(0).constructor(),
                       viaPrototypeNow: () => Date.prototype.constructor.now(),
                       subclass: () => { class D extends Date {} return new D(); },
                       random: () => Math.random(),
                       performance: () => performance.now(),
                     };
                     Object.entries(attempts)
                       .filter(([, f]) => { try { f(); return false; } catch { return true; } })
                       .map(([name]) => name).join(' ')",
                )
                .unwrap();
            assert_eq!(
                blocked,
                "now call construct reflect viaPrototype viaPrototypeNow subclass random performance"
            );
            let fine: String = ctx
                .eval(
                    "class D extends Date {}
                     [new Date(86400000).toISOString(), new D(0) instanceof Date, Date.UTC(1970, 0, 2),
                      Date.parse('1970-01-02T00:00:00Z'), new Date(0) instanceof Date].join(' ')",
                )
                .unwrap();
            assert_eq!(fine, "1970-01-02T00:00:00.000Z true 86400000 86400000 true");
        });
    }

    #[test]
    fn console_lines_reach_the_sink_and_nothing_leaks() {
        let lines: Rc<RefCell<Vec<String>>> = Rc::default();
        let sink = lines.clone();
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            install(
                &ctx,
                Some(Rc::new(move |line: &str| sink.borrow_mut().push(line.into()))),
                Clock::Denied,
            )
            .unwrap();
            ctx.eval::<(), _>(
                "const c = { n: 1 }; c.self = c;
                 console.log('text', { a: [1, 'b'] }, undefined, null, 2n, Symbol('s'), c);
                 console.error();
                 globalThis.d = new Date(0);",
            )
            .unwrap();
        });
        assert_eq!(
            *lines.borrow(),
            vec![
                r#"text {"a":[1,"b"]} undefined null 2 [symbol] [object Object]"#.to_string(),
                String::new()
            ]
        );
        // Dropping the context and the runtime here would abort if a Rust closure held on to a
        // JavaScript value (the real `Date`), which QuickJS's collector cannot see.
        drop(context);
        drop(runtime);
    }
}
