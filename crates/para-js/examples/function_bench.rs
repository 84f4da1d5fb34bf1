//! Per-invocation cost of `para_js::run_function`, the Rust side of `bench/function/run`.
//!
//! `function_bench <functions.json> [rounds] [calls per round]` reads the functions to measure
//! (`[{ "name", "code", "parameters" }]`, shared with the Node side, `bench/function/node.js`),
//! prints each one's result, warms up, then prints one line per round and function (a round is
//! `calls` calls, more if they take less than a quarter of a second):
//! `<name> <wall-clock µs per call> <on-CPU µs per call>` (on-CPU time from Linux's schedstat,
//! `-` elsewhere). Each call is a complete invocation as a workflow run makes it: finding the
//! compiled function (compiled on the thread's first call), parsing the parameters, the call,
//! awaiting, JSON result.

use std::{hint::black_box, time::Instant};

use para_js::{FunctionLimits, run_function};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: function_bench <functions.json> [rounds] [calls]");
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("rounds"));
    let calls: usize = args.next().map_or(2000, |a| a.parse().expect("calls"));
    let text = std::fs::read_to_string(&path).expect("reading the functions");
    let functions: serde_json::Value = serde_json::from_str(&text).expect("functions JSON");
    let functions: Vec<(String, String, String)> = functions
        .as_array()
        .expect("an array of functions")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().expect("name").to_string(),
                f["code"].as_str().expect("code").to_string(),
                f["parameters"].to_string(),
            )
        })
        .collect();
    let limits = FunctionLimits::default();
    let mut per_round = Vec::new();
    for (name, code, parameters) in &functions {
        let out = run_function(code, parameters, &limits)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", e.stack));
        eprintln!("{name}: {}", out.as_deref().unwrap_or("undefined"));
        let warm = (calls / 4).max(1);
        let started = Instant::now();
        for _ in 0..warm {
            black_box(run_function(code, parameters, &limits).unwrap());
        }
        // Rounds of at least MIN_ROUND: schedstat's on-CPU time advances in scheduler ticks
        // (a few milliseconds) while the thread runs, too coarse for a shorter round.
        let each = started.elapsed().as_secs_f64() / warm as f64;
        per_round.push(calls.max((MIN_ROUND / each.max(1e-9)).ceil() as usize));
    }
    for _ in 0..rounds {
        for ((name, code, parameters), &calls) in functions.iter().zip(&per_round) {
            let (started, cpu) = (Instant::now(), cpu_nanos());
            for _ in 0..calls {
                black_box(run_function(black_box(code), black_box(parameters), &limits).unwrap());
            }
            let wall = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
            match (cpu, cpu_nanos()) {
                (Some(a), Some(b)) => {
                    println!("{name} {wall:.2} {:.2}", (b - a) as f64 / 1e3 / calls as f64)
                }
                _ => println!("{name} {wall:.2} -"),
            }
        }
    }
}

/// The shortest round, in seconds.
const MIN_ROUND: f64 = 0.25;

/// Time this thread has spent on a CPU (Linux's schedstat), so that a busy machine, which
/// makes the thread wait for a CPU, does not count.
fn cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
