//! Function steps in the sandbox: `para_js::run_function`.

use std::time::{Duration, Instant};

use para_js::{FunctionError, FunctionLimits, JsErrorKind, run_function};

fn run(code: &str, parameters: &str) -> Result<Option<String>, FunctionError> {
    run_function(code, parameters, &FunctionLimits::default())
}

fn ok(code: &str, parameters: &str) -> String {
    match run(code, parameters) {
        Ok(Some(json)) => json,
        other => panic!("{code}: {other:?}"),
    }
}

fn err(code: &str, parameters: &str) -> FunctionError {
    match run(code, parameters) {
        Err(e) => e,
        other => panic!("{code}: expected an error, got {other:?}"),
    }
}

#[test]
fn arrow_named_async_and_method_functions_get_their_parameters() {
    assert_eq!(ok("(p) => p.a + 1", r#"{"a":41}"#), "42");
    assert_eq!(
        ok(
            "function format(parameters) {\n  return `${parameters.first} ${parameters.last}`;\n}",
            r#"{"first":"Ada","last":"Lovelace"}"#
        ),
        r#""Ada Lovelace""#
    );
    assert_eq!(
        ok(
            "async function normalize(parameters) {\n  const n = await Promise.resolve(parameters.n);\n  return { n: n * 2, list: [1, 'two', null] };\n}",
            r#"{"n":21}"#
        ),
        r#"{"n":42,"list":[1,"two",null]}"#
    );
    assert_eq!(
        ok("async (p) => { await null; await null; return p.s.toUpperCase(); }", r#"{"s":"x"}"#),
        r#""X""#
    );
    assert_eq!(ok("code(parameters) { return parameters.k; }", r#"{"k":[1]}"#), "[1]");
    assert_eq!(ok("async code(parameters) { return parameters.k; }", r#"{"k":true}"#), "true");
    // `libraries`, the second argument, is an empty object for now.
    assert_eq!(ok("(parameters, libraries) => libraries", "{}"), "{}");
    // A thenable is adopted, as `await` would.
    assert_eq!(ok("() => ({ then(resolve) { resolve(7); } })", "{}"), "7");
    // A trailing line comment does not swallow the wrapper.
    assert_eq!(ok("(p) => p.a // the answer", r#"{"a":1}"#), "1");
}

#[test]
fn results_are_what_json_stringify_gives() {
    assert_eq!(run("() => undefined", "{}").unwrap(), None);
    assert_eq!(run("function f() {}", "{}").unwrap(), None);
    assert_eq!(run("async () => {}", "{}").unwrap(), None);
    assert_eq!(run("() => () => 1", "{}").unwrap(), None);
    assert_eq!(ok("() => null", "{}"), "null");
    assert_eq!(ok("() => 'é\"'", "{}"), r#""é\"""#);
    assert_eq!(
        ok("() => ({ a: undefined, b: NaN, d: new Date(0), m: new Map() })", "{}"),
        r#"{"b":null,"d":"1970-01-01T00:00:00.000Z","m":{}}"#
    );
    let e = err("() => 1n", "{}");
    assert_eq!(e.kind, JsErrorKind::Exception);
    assert!(e.message.contains("JSON"), "{e:?}");
    let e = err("() => { const a = {}; a.a = a; return a; }", "{}");
    assert!(e.message.contains("JSON"), "{e:?}");
}

#[test]
fn thrown_errors_point_into_the_functions_source() {
    let e = err(
        "function format(parameters) {\n  const x = parameters.missing;\n  return x.name;\n}",
        "{}",
    );
    assert_eq!(e.kind, JsErrorKind::Exception);
    assert!(e.message.starts_with("TypeError"), "{e:?}");
    assert_eq!((e.line, e.column), (Some(3), Some(10)), "{e:?}");
    assert!(e.stack.contains("function:3:10"), "{}", e.stack);

    let e = err("(p) => { throw new Error('bad ' + p.n) }", r#"{"n":1}"#);
    assert_eq!(e.message, "bad 1");
    // QuickJS's columns are approximate (here: the last argument of `new Error`); lines exact.
    assert_eq!(e.line, Some(1), "{e:?}");
    assert!(e.column.is_some_and(|c| (10..=38).contains(&c)), "{e:?}");

    // The innermost frame of the function's code, through a nested function.
    let e = err("(p) => {\n  const inner = () => {\n    null.x;\n  };\n  return inner();\n}", "{}");
    assert_eq!(e.line, Some(3), "{e:?}");

    let e = err("(p) => { throw 'plain' }", "{}");
    assert!(e.message.contains("plain"), "{e:?}");
}

#[test]
fn syntax_errors_and_non_functions_are_exceptions() {
    let e = err("function f(p) {\n  return p.;\n}", "{}");
    assert_eq!(e.kind, JsErrorKind::Exception);
    assert!(e.message.starts_with("SyntaxError"), "{e:?}");
    assert_eq!(e.line, Some(2), "{e:?}");

    let e = err("42", "{}");
    assert!(e.message.contains("not a function"), "{e:?}");

    let e = err("(p) => p", "{not json");
    assert!(e.message.contains("not valid JSON"), "{e:?}");
}

#[test]
fn infinite_loop_times_out_and_the_thread_can_run_again() {
    let limits = FunctionLimits { time: Duration::from_millis(200), ..FunctionLimits::default() };
    let started = Instant::now();
    let e = run_function("() => { while (true) { try { for (;;) {} } catch {} } }", "{}", &limits)
        .unwrap_err();
    assert_eq!(e.kind, JsErrorKind::Timeout, "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // An async loop of promise jobs is bounded too.
    let e = run_function("async () => { for (;;) await null; }", "{}", &limits).unwrap_err();
    assert_eq!(e.kind, JsErrorKind::Timeout, "{e:?}");
    assert_eq!(ok("(p) => p.a + 1", r#"{"a":1}"#), "2");
}

#[test]
fn memory_bomb_runs_out_of_memory_and_the_thread_can_run_again() {
    let limits = FunctionLimits { memory_bytes: 32 << 20, ..FunctionLimits::default() };
    let e = run_function(
        "() => { let a = []; while (true) a.push(new Array(1e6).fill(1)); }",
        "{}",
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.kind, JsErrorKind::OutOfMemory, "{e:?}");
    // Arrays of strings: QuickJS runs out again while making the error and throws `null`.
    let e = run_function(
        "function f(p) { const a = []; while (true) a.push(new Array(100000).fill(p.title)); }",
        r#"{"title": "hello"}"#,
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.kind, JsErrorKind::OutOfMemory, "{e:?}");
    assert_eq!(e.message, "the function ran out of memory (limit 32 MiB)");
    let e = run_function(
        "() => { const a = []; while (true) a.push('x'.repeat(1e5) + a.length); }",
        "{}",
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.kind, JsErrorKind::OutOfMemory, "{e:?}");
    assert_eq!(ok("(p) => p.a + 1", r#"{"a":1}"#), "2");
    // Garbage of earlier calls (cyclic, so only the collector frees it) does not count
    // against the next one: each call builds about 16 MiB.
    for _ in 0..5 {
        assert_eq!(
            run_function(
                "() => { const a = []; a.push(a); for (let i = 0; i < 100; i++) a.push(new Array(1e4).fill(i)); return a.length; }",
                "{}",
                &limits
            )
            .unwrap()
            .as_deref(),
            Some("101")
        );
    }
}

#[test]
fn deep_recursion_is_a_stack_overflow_error() {
    let e = err("function f() { return f() + 1; }", "{}");
    assert_eq!(e.kind, JsErrorKind::Exception, "{e:?}");
    assert!(e.message.contains("Maximum call stack size exceeded"), "{e:?}");
    assert!(e.message.contains("recursed too deeply"), "{e:?}");
    assert_eq!(e.line, Some(1), "{e:?}");
    // Moderate recursion is fine.
    assert_eq!(
        ok(
            "(p) => { const f = (n) => n === 0 ? 0 : 1 + f(n - 1); return f(p.n); }",
            r#"{"n":1000}"#
        ),
        "1000"
    );
    assert_eq!(ok("(p) => p.a + 1", r#"{"a":1}"#), "2");
}

#[test]
fn invocations_are_isolated() {
    // The global object and the built-ins are frozen: writing them throws (strict mode), with
    // the position of the write.
    let e = err("(p) => {\n  globalThis.leak = 1;\n}", "{}");
    assert!(e.message.starts_with("TypeError: object is not extensible"), "{e:?}");
    assert!(e.message.contains("frozen"), "{e:?}");
    assert_eq!(e.line, Some(2), "{e:?}");
    let e = err("(p) => { leak = 1; }", "{}");
    assert!(e.message.starts_with("ReferenceError"), "{e:?}");
    for code in [
        "() => { Array.prototype.sneaky = 2; }",
        "() => { Object.prototype.polluted = 1; }",
        "() => { Object.defineProperty(Object.prototype, 'polluted', { value: 1 }); }",
        "() => { Object.setPrototypeOf(Array.prototype, null); }",
        "() => { Array.prototype.map = null; }",
        "() => { Object.prototype.toString = () => 'mine'; }",
        "() => { JSON.parse = null; }",
        "() => { delete Math.max; }",
        "() => { Error.stackTraceLimit = 0; }",
        "() => { Error.prepareStackTrace = () => 'mine'; }",
        "() => { Object.getPrototypeOf(async function () {}).x = 1; }",
        "() => { Object.getPrototypeOf([][Symbol.iterator]()).next = null; }",
        "() => { Object.getPrototypeOf(function* () {}).prototype.next = null; }",
        "() => { Object.getPrototypeOf(Uint8Array).prototype.x = 1; }",
        "() => { [].values().map((x) => x).__proto__.next = null; }",
        "() => { Object.getOwnPropertyDescriptor(Function.prototype, 'caller').get.x = 1; }",
        "() => { (0, eval)('var v = 1'); }",
        "() => { (0, eval)('function g() {}'); }",
    ] {
        let e = err(code, "{}");
        assert!(e.message.starts_with("TypeError"), "{code}: {e:?}");
    }
    // The error names the property when QuickJS knows it.
    assert!(err("() => { Array.prototype.map = null; }", "{}").message.contains("'map'"));
    assert!(err("() => { Object.prototype.toString = null; }", "{}").message.contains("toString"));
    assert_eq!(
        ok(
            "() => [typeof globalThis.leak, typeof leak, typeof [].sneaky, typeof ({}).polluted, typeof [].map, String({}), Error.stackTraceLimit, typeof Error.prepareStackTrace, typeof v, typeof g]",
            "{}"
        ),
        r#"["undefined","undefined","undefined","undefined","function","[object Object]",10,"undefined","undefined","undefined"]"#
    );
    // `let`/`const` in an indirect eval stay in that eval.
    assert_eq!(ok("() => (0, eval)('let w = 1; const z = 2; w + z')", "{}"), "3");
    assert_eq!(ok("() => (0, eval)('[typeof w, typeof z]')", "{}"), r#"["undefined","undefined"]"#);
    // The intrinsics no global leads to are frozen too.
    assert_eq!(
        ok(
            "() => [
               Object.getPrototypeOf(async function () {}), Object.getPrototypeOf(async () => {}),
               Object.getPrototypeOf(function* () {}), Object.getPrototypeOf(function* () {}).prototype,
               Object.getPrototypeOf(async function* () {}).prototype,
               Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype),
               Object.getPrototypeOf([][Symbol.iterator]()), Object.getPrototypeOf(new Map().entries()),
               Object.getPrototypeOf(new Set().values()), Object.getPrototypeOf(''[Symbol.iterator]()),
               Object.getPrototypeOf('a'.matchAll(/a/g)), Object.getPrototypeOf([].values().filter(Boolean)),
               Object.getPrototypeOf(Iterator.from({ next() { return { done: true }; } })),
               Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())),
               Object.getPrototypeOf(Int8Array), Object.getPrototypeOf(Int8Array.prototype),
               Object.getOwnPropertyDescriptor(Function.prototype, 'caller').get,
               Object.getOwnPropertyDescriptor(Object.prototype, '__proto__').set,
               globalThis, Array.prototype[Symbol.unscopables], Math, JSON, Reflect, Atomics,
             ].map(Object.isFrozen).join(' ')",
            "{}"
        ),
        format!("\"{}\"", ["true"; 24].join(" "))
    );
    // No callbacks that could run during a later call.
    assert_eq!(ok("() => typeof FinalizationRegistry", "{}"), r#""undefined""#);
}

#[test]
fn everything_reachable_is_frozen_and_no_setter_reaches_the_realm() {
    // A walk over everything reachable from `globalThis` and the hidden intrinsics (property
    // values, accessors, prototypes): every object is frozen, and the only setters left are
    // those that act on the object written to (override taming's, `__proto__`, `Error`'s
    // `stack`, `Iterator.prototype`'s) or always throw (`%ThrowTypeError%`), none on state of
    // the realm (QuickJS's `Error.stackTraceLimit`/`prepareStackTrace` were such).
    let out = ok(
        r#"() => {
          const seen = new Set(), unfrozen = [], setters = new Set();
          const queue = [globalThis, ...[async function () {}, function* () {}, async function* () {},
            [].values().map((x) => x), Iterator.from({ next() { return { done: true }; } }),
            'a'.matchAll(/a/g), new Map().keys(), new Set().keys(), ''[Symbol.iterator](), [].values(),
          ].map(Object.getPrototypeOf)];
          while (queue.length > 0) {
            const value = queue.pop();
            if ((typeof value !== 'object' || value === null) && typeof value !== 'function') continue;
            if (seen.has(value)) continue;
            seen.add(value);
            if (!Object.isFrozen(value)) unfrozen.push(value);
            queue.push(Object.getPrototypeOf(value));
            for (const key of Reflect.ownKeys(value)) {
              const property = Object.getOwnPropertyDescriptor(value, key);
              if ('value' in property) { queue.push(property.value); continue; }
              queue.push(property.get, property.set);
              if (!property.set) continue;
              const native = String(property.set).includes('[native code]');
              setters.add(`${String(key)}:${native ? 'native' : property.set.name}`);
            }
          }
          return [seen.size > 500, unfrozen.length, [...setters].sort()];
        }"#,
        "{}",
    );
    let known = [
        "Symbol(Symbol.toStringTag):native",
        "__defineGetter__:set",
        "__defineSetter__:set",
        "__lookupGetter__:set",
        "__lookupSetter__:set",
        "__proto__:native",
        "arguments:native",
        "caller:native",
        "constructor:native",
        "constructor:set",
        "hasOwnProperty:set",
        "isPrototypeOf:set",
        "message:set",
        "name:set",
        "propertyIsEnumerable:set",
        "stack:native",
        "toLocaleString:set",
        "toString:set",
        "valueOf:set",
    ];
    let expected = format!(
        "[true,0,[{}]]",
        known.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(",")
    );
    assert_eq!(out, expected);
}

#[test]
fn a_function_keeps_no_state_between_calls() {
    // A named function expression refers to itself: it is frozen, with its prototype.
    let code = "function f(p) {\n  const before = [f.seen ?? null, f.prototype.seen ?? null];\n  try { f.seen = p.n; } catch {}\n  try { f.prototype.seen = p.n; } catch {}\n  return before;\n}";
    assert_eq!(ok(code, r#"{"n":1}"#), "[null,null]");
    assert_eq!(ok(code, r#"{"n":2}"#), "[null,null]");
    let e = err("function f(p) {\n  f.seen = (f.seen || 0) + 1;\n  return f.seen;\n}", "{}");
    assert!(e.message.starts_with("TypeError"), "{e:?}");
    assert_eq!(e.line, Some(2), "{e:?}");
    // The same with a method's home object.
    let code = "code(p) { const o = super.constructor; try { o.seen = 1; } catch {} return typeof o.seen; }";
    assert_eq!(ok(code, "{}"), r#""undefined""#);
    assert_eq!(ok(code, "{}"), r#""undefined""#);
    // Code that is not a plain function expression may evaluate to a function with state of its
    // own: it is evaluated afresh on every call.
    let counter = "(() => { let n = 0; return () => ++n; })()";
    assert_eq!(ok(counter, "{}"), "1");
    assert_eq!(ok(counter, "{}"), "1");
    // The parameters are fresh objects every time (and the function may change them).
    let code = "(p) => { const seen = p.list.length; p.list.push(seen); return p.list; }";
    assert_eq!(ok(code, r#"{"list":[]}"#), "[0]");
    assert_eq!(ok(code, r#"{"list":[]}"#), "[0]");
}

#[test]
fn state_cannot_leak_through_libraries() {
    let e = err("(p, libraries) => { libraries.stash = p; }", r#"{"secret":1}"#);
    assert!(e.message.starts_with("TypeError"), "{e:?}");
    for code in [
        "(p, l) => { Object.setPrototypeOf(l, { stash: 1 }); }",
        "(p, l) => { l.__proto__ = { stash: 1 }; }",
        "(p, l) => { Object.defineProperty(l, 'stash', { value: 1 }); }",
        "(p, l) => { Object.getPrototypeOf(l).stash = 1; }",
    ] {
        let e = err(code, "{}");
        assert!(e.message.starts_with("TypeError"), "{code}: {e:?}");
    }
    assert_eq!(
        ok(
            "(p, l) => [Object.isFrozen(l), Reflect.ownKeys(l).length, typeof l.stash, Object.getPrototypeOf(l) === Object.prototype]",
            "{}"
        ),
        "[true,0,\"undefined\",true]"
    );
}

#[test]
fn frozen_prototypes_still_let_code_assign_its_own_properties() {
    // Properties inherited from a frozen prototype can still be set on one's own objects
    // (SES's override taming), as code commonly does.
    assert_eq!(
        ok(
            "() => {
               class NotFound extends Error { constructor(m) { super(m); this.name = 'NotFound'; } }
               const e = new NotFound('gone');
               e.message = e.message + '!';
               const o = { a: 1 };
               o.toString = () => 'o';
               o.hasOwnProperty = null;
               function C() {}
               C.prototype = Object.create(Object.prototype);
               C.prototype.constructor = C;
               const list = [1, 2];
               list.constructor = 'mine';
               return [String(e), e instanceof Error, String(o), new C().constructor === C, list.constructor, ({}).constructor === Object];
             }",
            "{}"
        ),
        r#"["NotFound: gone!",true,"o",true,"mine",true]"#
    );
}

#[test]
fn different_functions_are_cached_side_by_side() {
    let (a, b) = ("(p) => p.x * 2", "function b(p) { return p.x + 'b'; }");
    for i in 0..20 {
        let parameters = format!(r#"{{"x":{i}}}"#);
        assert_eq!(ok(a, &parameters), (i * 2).to_string());
        assert_eq!(ok(b, &parameters), format!(r#""{i}b""#));
    }
    // A failing function does not disturb the others.
    let _ = err("(p) => p.x.y.z", "{}");
    assert_eq!(ok(a, r#"{"x":4}"#), "8");
}

#[test]
fn promises_that_reject_or_never_settle() {
    let e =
        err("async (p) => {\n  await null;\n  throw new Error('nope ' + p.id);\n}", r#"{"id":3}"#);
    assert_eq!(e.kind, JsErrorKind::Exception);
    assert_eq!(e.message, "nope 3");
    assert_eq!(e.line, Some(3), "{e:?}");
    let e = err("() => Promise.reject(new TypeError('rejected'))", "{}");
    assert_eq!(e.message, "TypeError: rejected");

    let started = Instant::now();
    let e = err("() => new Promise(() => {})", "{}");
    assert_eq!(e.kind, JsErrorKind::Exception);
    assert!(e.message.contains("never settles"), "{e:?}");
    let e = err("async () => { await new Promise(() => {}); return 1; }", "{}");
    assert!(e.message.contains("never settles"), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(1));

    let e = err("() => ({ get then() { throw new Error('no then') } })", "{}");
    assert_eq!(e.message, "no then");

    // A throwing microtask fails the step, like an uncaught exception.
    let e = err("() => { queueMicrotask(() => { throw new Error('late') }); return 1; }", "{}");
    assert_eq!(e.message, "late");
}

#[test]
fn clock_and_randomness_but_no_host_access() {
    // Run time may be nondeterministic: the clock and random numbers are not I/O.
    assert_eq!(
        ok(
            "() => { const now = Date.now(), r = Math.random(); return [now > 1.7e12, new Date().getTime() >= now, typeof Date(), r >= 0 && r < 1, Math.random() !== r]; }",
            "{}"
        ),
        "[true,true,\"string\",true,true]"
    );
    assert_eq!(
        ok(
            "() => [typeof require, typeof process, typeof fetch, typeof std, typeof os, typeof performance, typeof setTimeout, typeof setInterval]",
            "{}"
        ),
        r#"["undefined","undefined","undefined","undefined","undefined","undefined","undefined","undefined"]"#
    );
    // Dates from explicit values work as usual, subclasses and `instanceof` too.
    assert_eq!(
        ok(
            "() => { class D extends Date { year() { return this.getUTCFullYear(); } } const d = new D(Date.UTC(2024, 1, 29)); return [new Date('2024-03-01T00:00:00Z').toISOString(), d.year(), d instanceof Date, d instanceof D, new Date(0) instanceof Date, Date.parse('1970-01-02T00:00:00Z'), Date.name, typeof Date.prototype.getTime]; }",
            "{}"
        ),
        r#"["2024-03-01T00:00:00.000Z",2024,true,true,true,86400000,"Date","function"]"#
    );
    // QuickJS's atob/btoa are there (pure functions), as in the build.
    assert_eq!(
        ok("() => [btoa('user:pw'), atob('dXNlcjpwdw==')]", "{}"),
        r#"["dXNlcjpwdw==","user:pw"]"#
    );
    // console exists and discards.
    assert_eq!(
        ok("(p) => { console.log('hi', p); console.error(p); return 1; }", r#"{"a":1}"#),
        "1"
    );
}

#[test]
fn runs_on_many_threads() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for j in 0..50 {
                    let out = run_function(
                        "(p) => p.i * 100 + p.j",
                        &format!(r#"{{"i":{i},"j":{j}}}"#),
                        &FunctionLimits::default(),
                    );
                    assert_eq!(out.unwrap(), Some((i * 100 + j).to_string()));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_reaction_that_throws_fails_the_step_with_its_message_and_position() {
    // The reaction's promise is not the function's result: nothing awaits it.
    let e = err(
        "(p) => {\n  Promise.resolve().then(() => {\n    throw new Error('in reaction ' + p.n);\n  });\n  return 1;\n}",
        r#"{"n":7}"#,
    );
    assert_eq!(e.kind, JsErrorKind::Exception, "{e:?}");
    assert!(e.message.contains("in reaction 7"), "{e:?}");
    assert!(e.message.contains("unhandled promise rejection"), "{e:?}");
    assert_eq!(e.line, Some(3), "{e:?}");
    assert!(e.column.is_some(), "{e:?}");
    assert!(e.stack.contains("function:3:"), "{}", e.stack);
    // The issue's one-liner, as a statement of a function that returns nothing.
    let e = err("() => { Promise.resolve().then(() => { throw new Error('x') }) }", "{}");
    assert!(e.message.contains("Error: x") || e.message.ends_with(": x"), "{e:?}");
    assert_eq!(e.line, Some(1), "{e:?}");
    // After an await, in an async function that itself succeeds.
    let e = err(
        "async () => {\n  await null;\n  Promise.resolve(1).then((v) => v.missing.field);\n  return 'done';\n}",
        "{}",
    );
    assert!(e.message.starts_with("unhandled promise rejection: TypeError"), "{e:?}");
    assert_eq!(e.line, Some(3), "{e:?}");
    // Returned, the reaction's promise is the result: reported as before, without the prefix.
    let e = err("() => Promise.resolve().then(() => { throw new Error('x') })", "{}");
    assert_eq!(e.message, "x");
}

#[test]
fn an_unhandled_rejection_fails_the_step() {
    let e =
        err("() => {\n  Promise.reject(new RangeError('nobody listens'));\n  return 1;\n}", "{}");
    assert_eq!(e.kind, JsErrorKind::Exception, "{e:?}");
    assert_eq!(e.message, "unhandled promise rejection: RangeError: nobody listens");
    assert_eq!(e.line, Some(2), "{e:?}");
    // Rejected inside a reaction.
    let e = err(
        "() => {\n  Promise.resolve().then(() => {\n    Promise.reject(new Error('inner'));\n  });\n  return 1;\n}",
        "{}",
    );
    assert_eq!(e.message, "unhandled promise rejection: inner", "{e:?}");
    assert_eq!(e.line, Some(3), "{e:?}");
    // A value that is not an error.
    let e = err("() => { Promise.reject(42); return 1; }", "{}");
    assert!(e.message.starts_with("unhandled promise rejection"), "{e:?}");
    assert!(e.message.contains("42"), "{e:?}");
    // A rejection handled before the call ends is not an error, even when the handler is
    // attached later (as Node waits for the microtask queue to empty).
    assert_eq!(
        ok("() => { Promise.reject(new Error('c')).catch(() => {}); return 1; }", "{}"),
        "1"
    );
    assert_eq!(
        ok(
            "async () => { const p = Promise.reject(new Error('h')); await null; await null; try { await p; } catch (e) { return e.message; } }",
            "{}"
        ),
        r#""h""#
    );
    assert_eq!(
        ok(
            "async () => { try { await Promise.all([1, Promise.reject(new Error('a'))]); } catch (e) { return e.message; } }",
            "{}"
        ),
        r#""a""#
    );
    // Among many, the one left without a handler; of several, the first rejected.
    let e = err(
        "() => { const ps = []; for (let i = 0; i < 2000; i++) ps.push(Promise.reject(new Error('r' + i))); ps.forEach((p, i) => { if (i !== 1500) p.catch(() => {}); }); return 1; }",
        "{}",
    );
    assert_eq!(e.message, "unhandled promise rejection: r1500", "{e:?}");
    let e = err(
        "async () => { await null; Promise.reject(new Error('first')); Promise.reject(new Error('second')); }",
        "{}",
    );
    assert_eq!(e.message, "unhandled promise rejection: first", "{e:?}");
    // The function's own rejected promise is reported once, as its rejection.
    let e = err("async () => { throw new Error('own'); }", "{}");
    assert_eq!(e.message, "own");
    // The thread's runtime goes on serving calls.
    assert_eq!(ok("(p) => p.a + 1", r#"{"a":1}"#), "2");
}

#[test]
fn out_of_memory_in_a_reaction_is_reported() {
    let limits = FunctionLimits { memory_bytes: 32 << 20, ..FunctionLimits::default() };
    for code in [
        "() => {\n  Promise.resolve().then(() => {\n    const a = [];\n    while (true) a.push(new Array(1e5).fill(1));\n  });\n  return 1;\n}",
        "async () => { await null; Promise.resolve().then(() => { const a = []; while (true) a.push('x'.repeat(1e5) + a.length); }); return 1; }",
        // Awaited: the result's rejection.
        "async () => { await Promise.resolve().then(() => { const a = []; while (true) a.push(new Array(1e5).fill(1)); }); return 1; }",
    ] {
        let e = run_function(code, "{}", &limits).unwrap_err();
        assert_eq!(e.kind, JsErrorKind::OutOfMemory, "{code}: {e:?}");
        assert_eq!(e.message, "the function ran out of memory (limit 32 MiB)", "{code}");
        assert_eq!(ok("(p) => p.a + 1", r#"{"a":1}"#), "2");
    }
}
