//! Memory of many function steps running at once, as `para serve` runs them: `calls` threads
//! (like tokio's blocking pool, which keeps a thread ten seconds after its last task) each run
//! one allocating call at the same time, then stay alive and idle. Prints the process's peak
//! resident memory (`VmHWM`) and what it still holds once the calls are over, with the threads
//! idle and after they exit. mimalloc is the global allocator, as in `para`.
//!
//! `function_memory [calls] [MiB per call] [time limit in s]` (default 40 calls of about
//! 56 MiB, under the default 64 MiB limit per call, with the default 5 s time limit); the sandbox's settings come from the environment
//! (`PARA_FUNCTION_MEMORY_BUDGET_MB`, … in docs/functions.md).

use std::sync::{Arc, Barrier, mpsc};

use para_js::{FunctionLimits, run_function, sandbox_memory};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
        >> 10
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().map_or(40, |a| a.parse().expect("calls"));
    let mib: usize = args.next().map_or(56, |a| a.parse().expect("MiB per call"));
    let seconds: u64 = args.next().map_or(5, |a| a.parse().expect("time limit (s)"));
    let limits = FunctionLimits {
        time: std::time::Duration::from_secs(seconds),
        ..FunctionLimits::default()
    };
    // Strings of 100,000 characters (one byte each): ten per MiB, roughly.
    let code = "(p) => { const a = []; for (let i = 0; i < p.n; i++) a.push('x'.repeat(1e5) + i); return a.length; }";
    let parameters = format!(r#"{{"n":{}}}"#, mib * 1048576 / 100_016);
    eprintln!("start: rss {} MiB", status("VmRSS:"));
    let start = Arc::new(Barrier::new(calls + 1));
    let done = Arc::new(Barrier::new(calls + 1));
    let (results, received) = mpsc::channel();
    let mut exits = Vec::new();
    let threads: Vec<_> = (0..calls)
        .map(|_| {
            let (start, done, results) = (start.clone(), done.clone(), results.clone());
            let (exit, wait) = mpsc::channel::<()>();
            exits.push(exit);
            let (code, parameters) = (code.to_string(), parameters.clone());
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || {
                    start.wait();
                    let out = run_function(&code, &parameters, &limits);
                    results.send(out.map_err(|e| e.message)).unwrap();
                    done.wait();
                    // Idle, as a blocking pool's thread between tasks.
                    let _ = wait.recv();
                })
                .unwrap()
        })
        .collect();
    start.wait();
    done.wait();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..calls {
        let outcome = match received.recv().unwrap() {
            Ok(v) => format!("ok {}", v.unwrap_or_default()),
            Err(message) => message,
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    for (outcome, n) in &outcomes {
        eprintln!("{n:>4} × {outcome}");
    }
    eprintln!(
        "calls over, threads idle: peak rss {} MiB, rss now {} MiB",
        status("VmHWM:"),
        status("VmRSS:")
    );
    let budget = sandbox_memory();
    eprintln!(
        "sandbox budget {} MiB: peak {} MiB, held now {} MiB, {} waits, {} refusals",
        budget.budget_bytes >> 20,
        budget.peak_bytes >> 20,
        budget.in_use_bytes >> 20,
        budget.waits,
        budget.refusals
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    eprintln!("2 s later, threads idle: rss {} MiB", status("VmRSS:"));
    drop(exits);
    for t in threads {
        t.join().unwrap();
    }
    eprintln!("threads exited: rss {} MiB", status("VmRSS:"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    eprintln!("2 s later: rss {} MiB", status("VmRSS:"));
}
