//! `para-bench`: benchmarks of `para` next to baselines measured in the same run.
//!
//! - `para-bench build` times `para build` on the shared taskflow example and on a generated
//!   project (N integrations × M workflow files), next to `tsc` emitting the very same project,
//!   and prints the ratio. Run it through `bench/run`, which builds release binaries and installs
//!   the pinned TypeScript first.
//! - `para-bench proxy` measures the throughput and added latency of `para serve`'s proxy next to
//!   calling the upstream directly and next to an nginx reverse proxy (`proxy.rs`). Run it through
//!   `bench/proxy`, which installs `wrk` and `nginx` and builds release binaries first.
//! - `para-bench engine` measures workflow runs per second of `para serve`: request-triggered
//!   runs (endpoint → function → response) under `wrk`, on SQLite and PostgreSQL, and 10,000 App
//!   Events to completion (`engine.rs`). Run it through `bench/engine/run`.

mod engine;
mod generate;
mod http;
mod proxy;
mod webhooks;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of para next to baselines measured in the same run")]
enum Cli {
    /// Time `para build` next to `tsc` (bench/run)
    Build(BuildArgs),
    /// Proxy throughput and added latency: para serve vs. direct vs. nginx (bench/proxy)
    Proxy(proxy::ProxyArgs),
    /// Workflow runs/s and latency of para serve's engine (bench/engine/run)
    Engine(engine::EngineArgs),
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The `para` binary to measure (a release build)
    #[arg(long)]
    para: PathBuf,
    /// The `tsc` binary used as the baseline
    #[arg(long)]
    tsc: Option<PathBuf>,
    /// The taskflow example
    #[arg(long)]
    taskflow: PathBuf,
    #[arg(long, default_value_t = 200)]
    integrations: usize,
    #[arg(long, default_value_t = 5)]
    workflows: usize,
    /// Timed repetitions of each command (the median is reported)
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only write the generated project into DIR (for profiling), then stop
    #[arg(long, value_name = "DIR")]
    generate_only: Option<PathBuf>,
}

/// One timed run of `command`.
fn sample(label: &str, mut command: Command, must_succeed: bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = command.output().with_context(|| format!("running {label}"))?;
    let elapsed = started.elapsed();
    if must_succeed && !out.status.success() {
        bail!("{label} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(elapsed)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of `runs` timed runs, after one untimed run that warms the caches.
fn time(
    label: &str,
    runs: usize,
    mut command: impl FnMut() -> Command,
    must_succeed: bool,
) -> anyhow::Result<Duration> {
    sample(label, command(), must_succeed)?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        samples.push(sample(label, command(), must_succeed)?);
    }
    Ok(median(samples))
}

fn para_build(para: &Path, project: &Path) -> impl FnMut() -> Command {
    let (para, project) = (para.to_path_buf(), project.to_path_buf());
    move || {
        let mut c = Command::new(&para);
        c.arg("build")
            .arg("--quiet")
            .arg("--project")
            .arg(&project)
            .arg("--out")
            .arg("out/build.json");
        c
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Build(args) => build(args),
        Cli::Proxy(args) => proxy::run(args),
        Cli::Engine(args) => engine::run(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.generate_only {
        let files = generate::project(dir, args.integrations, args.workflows)?;
        println!("wrote {files} .ts files to {}", dir.display());
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let generated = tmp.path().join("generated");
    let files = generate::project(&generated, args.integrations, args.workflows)?;
    println!(
        "generated project: {} integrations × {} workflows = {} .ts files",
        args.integrations, args.workflows, files
    );

    let taskflow = tmp.path().join("taskflow");
    generate::copy_dir(&args.taskflow, &taskflow)?;
    let t_taskflow =
        time("para build taskflow", args.runs, para_build(&args.para, &taskflow), true)?;
    // The generated project and the baseline are timed in alternation, so a slow spell of the
    // machine falls on both rather than on one of them.
    let mut para_generated = para_build(&args.para, &generated);
    let mut tsc_command = args.tsc.clone().map(|tsc| {
        let project = generated.clone();
        move || {
            let mut c = Command::new(&tsc);
            c.arg("-p")
                .arg(project.join("tsconfig.json"))
                .arg("--outDir")
                .arg(project.join("dist"));
            c
        }
    });
    let tsc_runs = args.runs.clamp(1, 3);
    sample("para build generated", para_generated(), true)?;
    if let Some(tsc) = &mut tsc_command {
        // tsc reports the @useparagon/* imports it cannot type (para provides them at build
        // time, tsc does not know them); it still emits every file, which is what is timed.
        sample("tsc", tsc(), false)?;
    }
    let (mut para_samples, mut tsc_samples) = (Vec::new(), Vec::new());
    for round in 0..args.runs.max(1) {
        para_samples.push(sample("para build generated", para_generated(), true)?);
        if let Some(tsc) = &mut tsc_command
            && round < tsc_runs
        {
            tsc_samples.push(sample("tsc", tsc(), false)?);
        }
    }
    let t_generated = median(para_samples);
    let built: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(generated.join("out/build.json"))?)?;
    let workflows: Vec<&serde_json::Value> = built["integrations"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|i| i["workflows"].as_object().into_iter().flat_map(|w| w.values()))
        .collect();
    let steps: usize = workflows.iter().map(|w| w["steps"].as_array().map_or(0, Vec::len)).sum();
    println!("built: {} workflows with {steps} steps in their graphs", workflows.len());
    // How the files were recorded (directly from the syntax tree or by the JavaScript engine).
    let timed = Command::new(&args.para)
        .args(["build", "--timings", "--project"])
        .arg(&generated)
        .args(["--out", "out/build.json"])
        .output()?;
    if let Some(line) = String::from_utf8_lossy(&timed.stderr)
        .lines()
        .find(|l| l.trim_start().starts_with("recorded"))
    {
        println!("{}", line.trim());
    }
    println!("para build taskflow:            {:>10} (median of {})", ms(t_taskflow), args.runs);
    println!("para build generated:           {:>10} (median of {})", ms(t_generated), args.runs);

    if tsc_samples.is_empty() {
        println!("tsc not given: no baseline (bench/run installs one)");
    } else {
        let t_tsc = median(tsc_samples);
        let emitted = generate::count_files(&generated.join("dist"), "js");
        println!(
            "tsc emit generated (baseline):  {:>10} (median of {tsc_runs}, {emitted} .js files)",
            ms(t_tsc)
        );
        println!(
            "ratio: para build is {:.1}× faster than tsc on the same project",
            t_tsc.as_secs_f64() / t_generated.as_secs_f64()
        );
    }
    Ok(())
}
