//! The process-wide memory budget of function steps (`para_js::SandboxMemoryConfig`). Its own
//! test binary: the budget is the process's, and these tests run one at a time.

use std::{
    sync::{Arc, Barrier, Mutex, MutexGuard},
    time::Duration,
};

use para_js::{
    FunctionError, FunctionLimits, JsErrorKind, SandboxMemoryConfig, reset_sandbox_memory_peak,
    run_function, sandbox_memory, set_sandbox_memory_config,
};

/// One test at a time, each on threads of its own (a thread's runtime goes when it exits).
fn serial(config: SandboxMemoryConfig) -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    set_sandbox_memory_config(config);
    assert_eq!(sandbox_memory().in_use_bytes, 0, "no runtime left from another test");
    reset_sandbox_memory_peak();
    guard
}

/// A time limit no busy machine reaches: these tests assert on memory, never on time.
fn limits() -> FunctionLimits {
    FunctionLimits { time: Duration::from_secs(120), ..FunctionLimits::default() }
}

/// Allocates `p.mib` MiB and keeps them until it returns.
const ALLOCATE: &str = "(p) => { const a = []; for (let i = 0; i < p.mib; i++) a.push(new Uint8Array(1 << 20)); return a.length; }";

fn is_over_budget(e: &FunctionError) -> bool {
    e.kind == JsErrorKind::OutOfMemory
        && e.message.contains("process-wide budget")
        && e.message.contains("PARA_FUNCTION_MEMORY_BUDGET_MB")
}

/// Runs `code` on `calls` threads at once.
fn at_once(
    calls: usize,
    code: &'static str,
    parameters: &'static str,
) -> Vec<Result<Option<String>, FunctionError>> {
    let start = Arc::new(Barrier::new(calls));
    let threads: Vec<_> = (0..calls)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                run_function(code, parameters, &limits())
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn concurrent_allocating_calls_stay_under_the_budget() {
    let budget = 48 << 20;
    let _serial = serial(SandboxMemoryConfig {
        budget_bytes: budget,
        // Long waits: a call is refused only when every running call waits for memory.
        wait: Duration::from_secs(120),
        ..SandboxMemoryConfig::default()
    });
    let refusals = sandbox_memory().refusals;
    // Eight calls allocating without end, each allowed 64 MiB of its own: without the budget
    // one alone would reach 64 MiB, all of them 512 MiB.
    let results =
        at_once(8, "() => { const a = []; while (true) a.push(new Uint8Array(1 << 20)); }", "{}");
    let figures = sandbox_memory();
    assert!(figures.peak_bytes <= budget, "{figures:?}");
    assert!(figures.peak_bytes > budget - (2 << 20), "the budget was reached: {figures:?}");
    assert!(results.iter().all(|r| r.as_ref().is_err_and(is_over_budget)), "{results:?}");
    assert!(figures.refusals >= refusals + 8, "{figures:?}");
    // Every thread has exited: its runtime, and its memory, are gone.
    assert_eq!(figures.in_use_bytes, 0, "{figures:?}");
}

#[test]
fn calls_that_fit_in_the_budget_together_succeed() {
    let budget = 48 << 20;
    let _serial = serial(SandboxMemoryConfig {
        budget_bytes: budget,
        wait: Duration::from_secs(120),
        ..SandboxMemoryConfig::default()
    });
    // Eight calls of 20 MiB: two fit at once. Those that run together past the budget wait for
    // the others, or are refused when all of them wait; never more than the budget is held.
    let results = at_once(8, ALLOCATE, r#"{"mib":20}"#);
    let figures = sandbox_memory();
    assert!(figures.peak_bytes <= budget, "{figures:?}");
    let done = results.iter().filter(|r| r.as_ref().is_ok_and(|v| v.as_deref() == Some("20")));
    let refused = results.iter().filter(|r| r.as_ref().is_err_and(is_over_budget));
    let (done, refused) = (done.count(), refused.count());
    assert_eq!(done + refused, results.len(), "{results:?}");
    assert!(done >= 1, "{figures:?} {results:?}");
    assert_eq!(figures.in_use_bytes, 0, "{figures:?}");
}

#[test]
fn a_call_past_the_budget_fails_clearly_and_the_thread_goes_on() {
    let _serial = serial(SandboxMemoryConfig {
        budget_bytes: 8 << 20,
        wait: Duration::from_secs(120),
        ..SandboxMemoryConfig::default()
    });
    let refusals = sandbox_memory().refusals;
    std::thread::spawn(|| {
        // Alone, a call waits for nobody: nothing else would free memory.
        let e = run_function(ALLOCATE, r#"{"mib":16}"#, &limits()).unwrap_err();
        assert!(is_over_budget(&e), "{e:?}");
        assert_eq!(
            e.message,
            "the function ran out of memory: the function steps running in this process at the same time hold the whole process-wide budget for their memory (8 MiB; PARA_FUNCTION_MEMORY_BUDGET_MB raises it)"
        );
        assert!(e.line.is_some(), "{e:?}");
        // The code may catch the error: the call still fails, as out of memory.
        let e = run_function(
            "(p) => { try { const a = []; for (let i = 0; i < 16; i++) a.push(new Uint8Array(1 << 20)); } catch (e) { throw new Error('gave up: ' + e); } }",
            "{}",
            &limits(),
        )
        .unwrap_err();
        assert!(is_over_budget(&e), "{e:?}");
        // Within the budget the thread's next call works, in a new runtime.
        assert_eq!(run_function(ALLOCATE, r#"{"mib":2}"#, &limits()).unwrap().as_deref(), Some("2"));
    })
    .join()
    .unwrap();
    let figures = sandbox_memory();
    assert!(figures.peak_bytes <= 8 << 20, "{figures:?}");
    assert!(figures.refusals >= refusals + 2, "{figures:?}");
    assert_eq!(figures.in_use_bytes, 0, "{figures:?}");
}

#[test]
fn memory_is_given_back_after_a_spike() {
    let _serial =
        serial(SandboxMemoryConfig { retain_bytes: 4 << 20, ..SandboxMemoryConfig::default() });
    std::thread::spawn(|| {
        assert_eq!(run_function("(p) => p.a", r#"{"a":1}"#, &limits()).unwrap().as_deref(), Some("1"));
        let idle = sandbox_memory().in_use_bytes;
        assert!(idle > 0 && idle < 2 << 20, "the thread's realm: {idle}");
        // 20 MiB in a cycle: garbage once the call returns, which only the collector frees.
        let cycle = "() => { const a = []; a.push(a); for (let i = 0; i < 20; i++) a.push(new Uint8Array(1 << 20)); return a.length; }";
        assert_eq!(run_function(cycle, "{}", &limits()).unwrap().as_deref(), Some("21"));
        let after = sandbox_memory().in_use_bytes;
        assert!(after < idle + (1 << 20), "left after the spike: {after} (idle {idle})");
        // A runtime that keeps more than it should (a 6 MiB constant in a cached function)
        // is dropped after the call.
        let big = format!("() => '{}'.length", "x".repeat(6 << 20));
        assert_eq!(run_function(&big, "{}", &limits()).unwrap(), Some((6 << 20).to_string()));
        assert_eq!(sandbox_memory().in_use_bytes, 0, "the runtime was dropped");
        // The next call builds a new one.
        assert_eq!(run_function("(p) => p.a", r#"{"a":2}"#, &limits()).unwrap().as_deref(), Some("2"));
        assert!(sandbox_memory().in_use_bytes > 0);
    })
    .join()
    .unwrap();
    assert!(sandbox_memory().peak_bytes > 20 << 20);
}

#[test]
fn idle_runtimes_keep_less_while_the_budget_is_under_pressure() {
    let _serial = serial(SandboxMemoryConfig {
        budget_bytes: 12 << 20,
        retain_bytes: 8 << 20,
        ..SandboxMemoryConfig::default()
    });
    // A function with a constant of `mib` MiB: its runtime keeps about twice that once the
    // function is cached (the source text and the string).
    let holding = |mib: usize| format!("() => '{}'.length", "x".repeat(mib << 20));
    let (idle, release) = std::sync::mpsc::channel::<()>();
    let (kept, done) = std::sync::mpsc::channel();
    let first = {
        let code = holding(2);
        std::thread::spawn(move || {
            run_function(&code, "{}", &limits()).unwrap();
            kept.send(sandbox_memory().in_use_bytes).unwrap();
            // Idle, its runtime kept: under the retained amount, and the budget not pressed.
            let _ = release.recv();
        })
    };
    let first_holds = done.recv().unwrap();
    assert!(first_holds > 4 << 20 && first_holds < 6 << 20, "{first_holds}");
    // Another thread's runtime would take the process past half the budget: it is dropped.
    let code = holding(1);
    std::thread::spawn(move || {
        assert_eq!(run_function(&code, "{}", &limits()).unwrap(), Some((1 << 20).to_string()));
        assert_eq!(sandbox_memory().in_use_bytes, first_holds, "the second runtime was dropped");
    })
    .join()
    .unwrap();
    drop(idle);
    first.join().unwrap();
    assert_eq!(sandbox_memory().in_use_bytes, 0);
}
