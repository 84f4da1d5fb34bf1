//! What JavaScript may see: the one sandbox policy, applied to every context before any project
//! or function-step code runs (the build's [`crate::Engine`] and [`crate::run_function`]).
//!
//! Results must be reproducible, so there is no clock and no randomness: `Date.now()`,
//! `Date()` and `new Date()` without arguments, and `Math.random()` throw (a `Date` built from
//! explicit values works as usual). No host objects: QuickJS's `performance` is removed (and
//! `std`, `os`, `print`, `scriptArgs`, which rquickjs never adds, stay absent). `console.log`
//! & co. hand their line to the host's sink, or do nothing.
//!
//! Installed from Rust rather than by evaluating a JavaScript prelude: parsing a prelude costs
//! about as much as creating the context itself, and function steps create one per call.
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

/// Applies the sandbox to a fresh context (see the module documentation).
pub(crate) fn install(ctx: &Ctx<'_>, console: Option<ConsoleSink>) -> Result<()> {
    let globals = ctx.globals();
    for name in ["performance", "os", "std", "scriptArgs", "print"] {
        globals.remove(name)?;
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
    globals.set("Date", date)?;

    let log = match console {
        Some(sink) => Function::new(ctx.clone(), ConsoleLog(sink))?,
        None => Function::new(ctx.clone(), || {})?,
    }
    .with_name("log")?;
    let object = Object::new(ctx.clone())?;
    for method in ["log", "info", "warn", "error", "debug", "trace"] {
        object.set(method, log.clone())?;
    }
    globals.set("console", object)?;
    Ok(())
}

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
            install(&ctx, None).unwrap();
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
            install(&ctx, Some(Rc::new(move |line: &str| sink.borrow_mut().push(line.into()))))
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
