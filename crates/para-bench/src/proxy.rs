//! `para-bench proxy`: throughput and added latency of `para serve`'s proxy
//! (`/projects/{id}/sdk/proxy/{integration}/{path}`), next to calling the upstream directly and
//! next to an nginx reverse proxy doing the same job, all measured in one run.
//!
//! - The upstream is nginx answering a fixed JSON body with `return 200`, and 401 unless the
//!   request carries the integration's credentials (`Authorization: Basic u:p`), so a proxy that
//!   forgot to apply them fails the probe instead of looking fast. The same upstream serves all
//!   three paths, and it is faster than anything measured through it.
//! - The nginx proxy gets byte-identical requests to para's (same path, same `Authorization:
//!   Bearer <user token>` header) and does the equivalent rewrite: strips the
//!   `/projects/{id}/sdk/proxy/custom.benchapi` prefix and replaces `Authorization` with the
//!   credential, keeping upstream connections alive (`upstream { keepalive 64; }`,
//!   `proxy_http_version 1.1`, `proxy_set_header Connection ""`). Neither writes access logs
//!   (`para serve` writes none).
//! - para serves a generated project with one custom integration (`custom.benchapi`, basic auth)
//!   whose `apiBaseUrl` is the upstream; a user `bench` connects a credential through the
//!   Connect API before the runs.
//! - The load comes from `wrk` (HTTP/1.1 keep-alive): latency with one connection sending
//!   requests back to back, throughput with `--connections` connections. Targets are measured
//!   in interleaved rounds and the medians reported, so drift on a shared machine hits all alike.
//! - With two or more CPUs, processes are pinned with `taskset` and moved between phases:
//!   latency runs put everything on one CPU (one request in flight; a cross-CPU wake-up costs
//!   tens of microseconds on a VM and would blur the proxy's own cost), throughput runs put wrk
//!   and the upstream on one half of the CPUs and the proxy under test on the other (nginx with
//!   as many workers as it has CPUs; para's runtime sizes itself to its CPU mask). `--pin none`
//!   lets everything float. All processes run at `--nice` (-10) when that is allowed.
//! - `--instructions` adds exact counts of the user-space instructions each proxy executes per
//!   request (valgrind's callgrind; see [`Counting`]), which other work on the machine does not
//!   move, next to the timings, which it does.

use std::{
    fmt::Write as _,
    fs,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http;

/// What the upstream answers, and so what the raw proxy answers.
const BODY: &str =
    r#"{"id":"bench","ok":true,"items":[{"id":1,"name":"one"},{"id":2,"name":"two"}]}"#;
/// The credential the bench user connects (`u:p`), as the upstream expects it.
const BASIC: &str = "Basic dTpw";
/// The path requested below the API base URL.
const UPSTREAM_PATH: &str = "/items?limit=2";
const INTEGRATION: &str = "custom.benchapi";
const RAW_HEADER: &str = "X-Paragon-Use-Raw-Response";

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// The `para` binary to measure (a release build)
    #[arg(long)]
    para: PathBuf,
    /// The `wrk` load generator
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    /// The `nginx` binary (upstream and baseline proxy)
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
    /// Seconds of each timed run (whole seconds: 5 or 5s)
    #[arg(long, default_value = "4s", value_parser = parse_seconds)]
    duration: u64,
    /// Interleaved rounds over all targets; the median of each figure is reported
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent connections of the throughput runs
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// CPU placement: `split` (load generator and upstream on one half of the CPUs, the proxy
    /// under test on the other) or `none` (everything floats over all CPUs)
    #[arg(long, value_enum, default_value_t = Pin::Split)]
    pin: Pin,
    /// Measure only the direct and nginx paths
    #[arg(long)]
    skip_para: bool,
    /// Niceness of every process of the benchmark (wrk, upstream, proxies), so that other work
    /// on the machine disturbs the runs less; needs the right to raise priority (root), else
    /// the processes run at the normal priority. 0: unchanged
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    nice: i32,
    /// Exit with 1 when para misses a target (added latency ≤ 1.2× nginx's, ≥ 10,000 req/s)
    #[arg(long)]
    check: bool,
    /// Keep the temporary folder (configs, logs, the generated project) and print its path
    #[arg(long)]
    keep: bool,
    /// Also count the user-space instructions each proxy executes per request, exactly, with
    /// valgrind's callgrind: a figure that, unlike the timings, does not move with other work
    /// on the machine (needs `valgrind`; bench/proxy installs it with apt)
    #[arg(long)]
    instructions: bool,
    /// The `valgrind` binary (for --instructions)
    #[arg(long, default_value = "valgrind")]
    valgrind: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Pin {
    Split,
    None,
}

pub(crate) fn parse_seconds(text: &str) -> Result<u64, String> {
    let n = text.strip_suffix('s').unwrap_or(text);
    match n.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected whole seconds such as 5 or 5s, got {text:?}")),
    }
}

/// Where each process runs. Latency runs (one connection, so one process busy at a time) put
/// every process on one CPU: a cross-CPU wake-up costs tens of microseconds on a VM and would
/// blur the proxy's own cost. Throughput runs give the proxy its own CPUs.
struct Layout {
    /// `taskset -c` lists; `None`: not pinned.
    load: Option<String>,
    proxy: Option<String>,
    latency: Option<String>,
    /// wrk threads and upstream nginx workers.
    load_threads: usize,
    /// nginx proxy workers (para's runtime picks the same number from its CPU mask).
    proxy_workers: usize,
    description: String,
}

fn allowed_cpus() -> Vec<usize> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
        .unwrap_or("");
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    cpus
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

fn cpus_named(cpus: &[usize]) -> String {
    format!("{} {}", if cpus.len() == 1 { "CPU" } else { "CPUs" }, cpu_list(cpus))
}

fn layout(pin: Pin) -> Layout {
    let cpus = allowed_cpus();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let have_taskset = Command::new("taskset").arg("-V").output().is_ok();
    if pin == Pin::Split && cpus.len() >= 2 && have_taskset {
        let (load, proxy) = cpus.split_at(cpus.len() / 2);
        let latency = &proxy[..1];
        return Layout {
            load: Some(cpu_list(load)),
            proxy: Some(cpu_list(proxy)),
            latency: Some(cpu_list(latency)),
            load_threads: load.len(),
            proxy_workers: proxy.len(),
            description: format!(
                "pinned with taskset. Latency runs: wrk, the upstream and the proxy all on {} \
                 (one request in flight, so no cross-CPU wake-ups blur the proxy's own cost). \
                 Throughput runs: wrk ({} thread{}) and the upstream on {}, the proxy under test \
                 on {} (nginx: worker_processes {}; para: {} runtime thread{}, sized from its CPU \
                 mask)",
                cpus_named(latency),
                load.len(),
                if load.len() == 1 { "" } else { "s" },
                cpus_named(load),
                cpus_named(proxy),
                proxy.len(),
                proxy.len(),
                if proxy.len() == 1 { "" } else { "s" },
            ),
        };
    }
    let why = match (pin, cpus.len() >= 2, have_taskset) {
        (Pin::None, _, _) => "--pin none",
        (_, false, _) => "fewer than 2 CPUs",
        _ => "taskset not found",
    };
    Layout {
        load: None,
        proxy: None,
        latency: None,
        load_threads: n,
        proxy_workers: n,
        description: format!(
            "not pinned ({why}): all processes share {n} CPUs (nginx: worker_processes {n}; \
             para: {n} runtime threads; wrk: {n} threads)"
        ),
    }
}

/// Pins the running `pid` and all its threads (and, for nginx, its workers) to `cpus`.
fn repin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let mut pids = vec![pid];
    // Children (nginx workers): /proc/<pid>/stat's 4th field, after the parenthesised name.
    for entry in fs::read_dir("/proc")?.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(pid.to_string().as_str()) {
            pids.push(child);
        }
    }
    for p in pids {
        let out = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &p.to_string()])
            .output()
            .context("running taskset")?;
        if !out.status.success() {
            bail!("taskset -a -p -c {cpus} {p}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// The niceness every process of the benchmark runs at (`--nice`), set once at the start.
static NICE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// `program` on `cpus` (all CPUs when `None`) at the benchmark's niceness. `nice` and `taskset`
/// exec the program, so the child's pid is the program's.
fn pinned(cpus: Option<&str>, program: &Path) -> Command {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    let nice = NICE.get().copied().unwrap_or(0);
    if nice != 0 {
        // Without the right to raise priority, nice warns and runs the program unchanged.
        argv.extend(["nice".into(), "-n".into(), nice.to_string().into()]);
    }
    if let Some(cpus) = cpus {
        argv.extend(["taskset".into(), "-c".into(), cpus.into()]);
    }
    argv.push(program.into());
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// The niceness `pid` runs at (`/proc/<pid>/stat`, field 19).
fn niceness_of(pid: u32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A server process of the benchmark, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Service {
    name: String,
    pub(crate) child: Child,
    log: PathBuf,
}

impl Service {
    pub(crate) fn spawn(name: &str, mut command: Command, log: PathBuf) -> anyhow::Result<Service> {
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Service { name: name.to_string(), child, log })
    }

    /// Waits until `addr` accepts connections; fails early if the process exits.
    pub(crate) fn wait_listening(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before listening on {addr}; its output ({}):\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} is not listening on {addr} after {}s; its output ({}):\n{}",
                    self.name,
                    timeout.as_secs(),
                    self.log.display(),
                    tail(&self.log)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM lets nginx's master stop its workers and para shut down gracefully.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's `user` line: workers run as the current user (root's workers would otherwise
/// become `nobody`).
fn nginx_user_line() -> &'static str {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if euid == "0" { "user root;\n" } else { "" }
}

fn nginx_config(dir: &Path, name: &str, workers: usize, http_block: &str) -> String {
    let d = dir.display();
    let temp = |kind: &str| format!("  {kind}_temp_path {d}/{name}-temp/{kind};\n");
    format!(
        "# generated by para-bench proxy\n{user}worker_processes {workers};\ndaemon off;\n\
         pid {d}/{name}.pid;\nerror_log {d}/{name}-error.log warn;\n\
         events {{\n  worker_connections 4096;\n}}\n\
         http {{\n  access_log off;\n  default_type application/json;\n  server_tokens off;\n\
         \x20 keepalive_timeout 300s;\n  keepalive_requests 1000000;\n{temps}{http_block}}}\n",
        user = nginx_user_line(),
        temps = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|k| temp(k))
            .collect::<String>(),
    )
}

/// A valgrind that runs a program under callgrind, writing its dumps to `<out>.<n>`.
#[derive(Clone, Copy)]
struct Callgrind<'a> {
    valgrind: &'a Path,
    out: &'a Path,
}

impl Callgrind<'_> {
    fn command(&self, cpus: Option<&str>, program: &Path) -> Command {
        let mut c = pinned(cpus, self.valgrind);
        c.arg("--tool=callgrind").arg(format!("--callgrind-out-file={}", self.out.display()));
        c.arg(program);
        c
    }
}

/// nginx with `config` (written to `<name>.conf` in `dir`), listening on `addr`; under
/// callgrind as a single process when `callgrind` is given.
fn start_nginx(
    nginx: &Path,
    dir: &Path,
    name: &str,
    config: &str,
    cpus: Option<&str>,
    addr: SocketAddr,
    callgrind: Option<Callgrind>,
) -> anyhow::Result<Service> {
    let conf = dir.join(format!("{name}.conf"));
    fs::write(&conf, config)?;
    fs::create_dir_all(dir.join(format!("{name}-temp")))?;
    let error_log = dir.join(format!("{name}-error.log"));
    let args = |c: &mut Command| {
        c.arg("-p").arg(dir).arg("-c").arg(&conf).arg("-e").arg(&error_log);
    };
    let mut test = Command::new(nginx);
    args(&mut test);
    let out = test.arg("-t").arg("-q").output().with_context(|| {
        format!("running {} (install it: apt-get install nginx)", nginx.display())
    })?;
    if !out.status.success() {
        bail!(
            "nginx rejects the generated {}:\n{}{}",
            conf.display(),
            String::from_utf8_lossy(&out.stderr),
            tail(&error_log)
        );
    }
    let (mut command, wait) = match callgrind {
        Some(cg) => {
            let mut c = cg.command(cpus, nginx);
            c.arg("-g").arg("master_process off;");
            (c, Duration::from_secs(120))
        }
        None => (pinned(cpus, nginx), Duration::from_secs(10)),
    };
    args(&mut command);
    let mut service = Service::spawn(name, command, dir.join(format!("{name}.out")))?;
    service.wait_listening(addr, wait).with_context(|| tail(&error_log))?;
    Ok(service)
}

/// The nginx proxy's `http` block: the same job as para's proxy (see the module's comment).
fn proxy_block(listen: SocketAddr, upstream: SocketAddr, project_id: &str) -> String {
    format!(
        "  upstream bench_api {{\n    server {upstream};\n    keepalive 64;\n\
         \x20   keepalive_requests 1000000;\n    keepalive_timeout 300s;\n  }}\n\
         \x20 server {{\n    listen {listen};\n\
         \x20   location /projects/{project_id}/sdk/proxy/{INTEGRATION}/ {{\n\
         \x20     proxy_pass http://bench_api/;\n      proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_set_header Authorization \"{BASIC}\";\n    }}\n  }}\n"
    )
}

/// `--instructions`: the user-space instructions each proxy executes per request, counted by
/// callgrind in a second nginx proxy and a second `para serve` started under valgrind for this
/// (the timed ones keep running undisturbed). Each target gets a warm-up, then its counters are
/// zeroed, wrk sends requests on one connection for `seconds`, and callgrind's totals are
/// divided by the requests wrk counted. The kernel's work (system calls, loopback TCP) is not
/// in these figures.
struct Counting<'a> {
    dir: &'a Path,
    valgrind: &'a Path,
    wrk: &'a Wrk<'a>,
    cpus: Option<&'a str>,
    seconds: u64,
}

impl Counting<'_> {
    fn out(&self, name: &str) -> PathBuf {
        self.dir.join(format!("callgrind-{name}"))
    }

    fn callgrind<'b>(&'b self, out: &'b Path) -> Callgrind<'b> {
        Callgrind { valgrind: self.valgrind, out }
    }

    /// Instructions per request of `targets`, served in turn by the process of `service`.
    fn per_request(
        &self,
        service: &Service,
        out: &Path,
        targets: &[Target],
    ) -> anyhow::Result<Vec<Count>> {
        let pid = service.child.id().to_string();
        let control = self.valgrind.with_file_name("callgrind_control");
        let control = if control.exists() { control } else { PathBuf::from("callgrind_control") };
        let run_control = |what: &str| -> anyhow::Result<()> {
            let o = Command::new(&control).arg(what).arg(&pid).output().with_context(|| {
                format!("running {} (it comes with valgrind)", control.display())
            })?;
            if !o.status.success() {
                bail!(
                    "{} {what} {pid} failed: {}",
                    control.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            Ok(())
        };
        let mut counts = Vec::new();
        let mut dumps = 0;
        for target in targets {
            self.wrk.run(target, self.cpus, 1, 2)?;
            let mut windows = Vec::new();
            for _ in 0..WINDOWS {
                run_control("--zero")?;
                let run = self.wrk.run(target, self.cpus, 1, self.seconds)?;
                if run.errors > 0 || run.requests < 1.0 {
                    bail!(
                        "counting {}: {} errors, {} requests",
                        target.label,
                        run.errors,
                        run.requests
                    );
                }
                run_control("--dump")?;
                dumps += 1;
                let file = PathBuf::from(format!("{}.{dumps}", out.display()));
                windows.push(callgrind_total(&file)? / run.requests);
            }
            counts.push(Count {
                median: median(windows.iter().copied()),
                low: windows.iter().copied().fold(f64::INFINITY, f64::min),
                high: windows.iter().copied().fold(0.0, f64::max),
            });
        }
        Ok(counts)
    }
}

/// Runs the `--instructions` counts: a second nginx proxy and, when para could be set up, a
/// second `para serve` of the same project, each under callgrind. Returns (label, count).
#[allow(clippy::too_many_arguments)]
fn count_instructions(
    args: &ProxyArgs,
    dir: &Path,
    layout: &Layout,
    wrk: &Wrk,
    upstream: SocketAddr,
    para: Option<&Para>,
    project_id: &str,
    proxied_path: &str,
    bearer: &str,
) -> anyhow::Result<Vec<(&'static str, Count)>> {
    // The proxies run on the CPUs (so with the runtime) of the timed ones.
    let cpus = layout.proxy.as_deref();
    let counting =
        Counting { dir, valgrind: &args.valgrind, wrk, cpus: None, seconds: args.duration.min(5) };
    let headers = |raw: bool| {
        let mut h = vec![format!("Authorization: {bearer}")];
        if raw {
            h.push(format!("{RAW_HEADER}: 1"));
        }
        h
    };
    let mut rows = Vec::new();

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let out = counting.out("nginx");
    let config = nginx_config(dir, "proxy-callgrind", 1, &proxy_block(addr, upstream, project_id));
    let nginx = start_nginx(
        &args.nginx,
        dir,
        "proxy-callgrind",
        &config,
        cpus,
        addr,
        Some(counting.callgrind(&out)),
    )
    .context("starting nginx under valgrind")?;
    let target = Target::new("nginx", format!("http://{addr}{proxied_path}"), headers(true));
    rows.push(("nginx", counting.per_request(&nginx, &out, &[target])?[0]));
    drop(nginx);

    if let Some(p) = para {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let out = counting.out("para");
        let mut command = counting.callgrind(&out).command(cpus, &args.para);
        serve_bench(&mut command, &p.project, port, upstream);
        let mut service =
            Service::spawn("para serve under valgrind", command, dir.join("para-callgrind.log"))?;
        service.wait_listening(addr, Duration::from_secs(180))?;
        let url = format!("http://{addr}{proxied_path}");
        let targets = [
            Target::new("para (raw)", url.clone(), headers(true)),
            Target::new("para (wrapped)", url, headers(false)),
        ];
        let counts = counting.per_request(&service, &out, &targets)?;
        rows.push(("para (raw)", counts[0]));
        rows.push(("para (wrapped)", counts[1]));
    }
    Ok(rows)
}

/// Counting windows per target: the median is reported, so that a rare event in one window (a
/// cache entry renewed, the allocator returning memory) does not stand for every request.
const WINDOWS: usize = 3;

/// Instructions per request of one target over its windows.
#[derive(Debug, Clone, Copy)]
struct Count {
    median: f64,
    low: f64,
    high: f64,
}

/// The instruction total callgrind wrote at the end of the dump `file` (waiting for it).
fn callgrind_total(file: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        let text = fs::read_to_string(file).unwrap_or_default();
        if let Some(total) = text.lines().find_map(|l| l.strip_prefix("totals:")) {
            return total
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("{}: unreadable totals line {total:?}", file.display()));
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("callgrind wrote no totals to {} within 60 s", file.display());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// One `wrk` run's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    requests: f64,
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

const WRK_SCRIPT: &str = r#"-- written by para-bench proxy: report wrk's figures as one JSON line
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\nPARA-BENCH {\"requests\":%.0f,\"duration_us\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"connect\":%.0f,\"read\":%.0f,\"write\":%.0f,\"status\":%.0f,\"timeout\":%.0f}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#;

struct Wrk<'a> {
    wrk: &'a Path,
    script: PathBuf,
    threads: usize,
}

impl Wrk<'_> {
    fn run(
        &self,
        target: &Target,
        cpus: Option<&str>,
        connections: usize,
        seconds: u64,
    ) -> anyhow::Result<Run> {
        let mut c = pinned(cpus, self.wrk);
        c.arg("-t")
            .arg(self.threads.min(connections).to_string())
            .arg("-c")
            .arg(connections.to_string())
            .arg("-d")
            .arg(format!("{seconds}s"))
            .arg("--timeout")
            .arg("5s")
            .arg("-s")
            .arg(&self.script);
        for h in &target.headers {
            c.arg("-H").arg(h);
        }
        c.arg(&target.url);
        let out = c.output().with_context(|| {
            format!("running {} (install it: apt-get install wrk)", self.wrk.display())
        })?;
        let (v, errors) = wrk_figures(&out, &format!("wrk against {}", target.url))?;
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        Ok(Run {
            requests: f("requests"),
            rps: f("requests") / (f("duration_us").max(1.0) / 1e6),
            p50: f("p50_us"),
            p99: f("p99_us"),
            errors: errors as u64,
        })
    }
}

struct Target {
    label: &'static str,
    url: String,
    headers: Vec<String>,
    latency: Vec<Run>,
    throughput: Vec<Run>,
}

impl Target {
    fn new(label: &'static str, url: String, headers: Vec<String>) -> Target {
        Target { label, url, headers, latency: Vec::new(), throughput: Vec::new() }
    }
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

/// Medians over the rounds.
struct Summary {
    lat_p50: f64,
    lat_p99: f64,
    lat_rps: f64,
    rps: f64,
    tp_p50: f64,
    tp_p99: f64,
    errors: u64,
}

fn summarize(t: &Target) -> Summary {
    Summary {
        lat_p50: median(t.latency.iter().map(|r| r.p50)),
        lat_p99: median(t.latency.iter().map(|r| r.p99)),
        lat_rps: median(t.latency.iter().map(|r| r.rps)),
        rps: median(t.throughput.iter().map(|r| r.rps)),
        tp_p50: median(t.throughput.iter().map(|r| r.p50)),
        tp_p99: median(t.throughput.iter().map(|r| r.p99)),
        errors: t.latency.iter().chain(&t.throughput).map(|r| r.errors).sum(),
    }
}

/// Checks that `url` answers 200 with `expected` (compared as JSON).
fn probe(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    expected: &Value,
    what: &str,
) -> anyhow::Result<()> {
    let r = http::request(addr, "GET", path, headers, None)
        .with_context(|| format!("probing {what}"))?;
    if r.status != 200 {
        let hint = if r.status == 404 && what.starts_with("para") {
            " (has this para the proxy route /projects/{id}/sdk/proxy/{integration}/{path}?)"
        } else {
            ""
        };
        bail!("{what}: GET {path} answered HTTP {}{hint}: {}", r.status, http::excerpt(&r.text()));
    }
    let got = r.json().with_context(|| format!("{what}: GET {path}"))?;
    if &got != expected {
        bail!(
            "{what}: GET {path} answered {} instead of {}",
            http::excerpt(&got.to_string()),
            expected
        );
    }
    Ok(())
}

/// para serving the bench project, with a connected credential.
struct Para {
    service: Service,
    project: PathBuf,
    addr: SocketAddr,
    project_id: String,
    token: String,
}

pub(crate) fn para_command(para: &Path, cwd: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(para)
        .args(args)
        .current_dir(cwd)
        .env_remove("PARA_PROJECT")
        .output()
        .with_context(|| format!("running {}", para.display()))?;
    if !out.status.success() {
        bail!(
            "`para {}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `para serve` of `project` on `port` with `database`, without a token audience or public URL
/// from the environment.
pub(crate) fn serve_arguments(command: &mut Command, project: &Path, port: u16, database: &str) {
    command
        .arg("serve")
        .arg("--project")
        .arg(project)
        .arg("--port")
        .arg(port.to_string())
        .arg("--database")
        .arg(database)
        .env_remove("PARA_TOKEN_AUDIENCE")
        .env_remove("PARA_PUBLIC_URL");
}

/// `para serve` of the bench project on `port`, its integration pointed at `upstream`.
fn serve_bench(command: &mut Command, project: &Path, port: u16, upstream: SocketAddr) {
    let database = format!("sqlite://{}", project.join(".para/bench.db").display());
    serve_arguments(command, project, port, &database);
    command.env("PARA_OAUTH_CUSTOM_BENCHAPI_API_BASE_URL", format!("http://{upstream}"));
}

/// Sets the scaffolded custom integration's `apiBaseUrl` and `testEndpointPath`.
pub(crate) fn point_config_at(config: &Path, upstream: &str) -> anyhow::Result<()> {
    let text =
        fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut found = (false, false);
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("apiBaseUrl:") {
            found.0 = true;
            let _ = writeln!(out, "  apiBaseUrl: '{upstream}',");
        } else if trimmed.starts_with("testEndpointPath:") {
            found.1 = true;
            out.push_str("  testEndpointPath: '/ping',\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if found != (true, true) {
        bail!(
            "{} has no `apiBaseUrl:`/`testEndpointPath:` line to point at the upstream (did \
             `para new integration --custom` change?)",
            config.display()
        );
    }
    fs::write(config, out)?;
    Ok(())
}

fn setup_para(
    para: &Path,
    dir: &Path,
    upstream: SocketAddr,
    cpus: Option<&str>,
) -> anyhow::Result<Para> {
    let project = dir.join("project");
    let p = project.to_string_lossy().into_owned();
    para_command(para, dir, &["init", &p, "--name", "bench"])?;
    para_command(
        para,
        &project,
        &["new", "integration", "--custom", "Bench API", "--auth", "basic"],
    )?;
    let base = format!("http://{upstream}");
    point_config_at(&project.join(format!("src/integrations/{INTEGRATION}/config.ts")), &base)?;
    para_command(para, &project, &["build", "--quiet"])?;
    let token = para_command(para, &project, &["token", "--user", "bench", "--ttl", "1h"])?
        .trim()
        .to_string();
    let meta: Value =
        serde_json::from_str(&fs::read_to_string(project.join(".para/project.json"))?)?;
    let project_id =
        meta["projectId"].as_str().context("no projectId in .para/project.json")?.to_string();

    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = pinned(cpus, para);
    serve_bench(&mut command, &project, port, upstream);
    let mut service = Service::spawn("para serve", command, dir.join("para-serve.log"))?;
    service.wait_listening(addr, Duration::from_secs(60))?;

    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let path = format!("/projects/{project_id}/sdk/integrations");
    let r = http::request(addr, "GET", &path, &auth, None)?;
    if r.status != 200 {
        bail!("GET {path} answered HTTP {}: {}", r.status, http::excerpt(&r.text()));
    }
    let list = r.json()?;
    let entries = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let entry = entries
        .iter()
        .find(|i| i["type"] == INTEGRATION || i["name"] == "Bench API")
        .or(if entries.len() == 1 { entries.first() } else { None })
        .with_context(|| {
            format!(
                "GET {path} lists no Bench API integration: {}",
                http::excerpt(&list.to_string())
            )
        })?;
    let integration_id = entry["id"].as_str().context("the integration has no id")?;

    let path = format!("/projects/{project_id}/sdk/credentials");
    let body =
        json!({ "integrationId": integration_id, "payload": { "username": "u", "password": "p" } })
            .to_string();
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let r = http::request(addr, "POST", &path, &headers, Some(body.as_bytes()))?;
    if !(200..300).contains(&r.status) {
        bail!(
            "connecting the bench credential: POST {path} answered HTTP {}: {}",
            r.status,
            http::excerpt(&r.text())
        );
    }
    Ok(Para { service, project, addr, project_id, token })
}

pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("para-bench-proxy-").tempdir()?;
    let dir = tmp.path().to_path_buf();
    let _keep = if args.keep {
        eprintln!("keeping {}", dir.display());
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    if args.instructions {
        Command::new(&args.valgrind).arg("--version").output().with_context(|| {
            format!(
                "--instructions needs {} (install it: apt-get install valgrind)",
                args.valgrind.display()
            )
        })?;
    }
    let layout = layout(args.pin);
    let _ = NICE.set(args.nice);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = load_average();
    let body: Value = serde_json::from_str(BODY)?;

    // The upstream.
    let upstream = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let config = nginx_config(
        &dir,
        "upstream",
        layout.load_threads,
        &format!(
            "  server {{\n    listen {upstream} backlog=4096;\n    location / {{\n\
             \x20     if ($http_authorization != \"{BASIC}\") {{\n\
             \x20       return 401 '{{\"error\":\"missing or wrong Authorization\"}}';\n      }}\n\
             \x20     return 200 '{BODY}';\n    }}\n  }}\n"
        ),
    );
    let upstream_service =
        start_nginx(&args.nginx, &dir, "upstream", &config, layout.load.as_deref(), upstream, None)
            .context("starting the upstream (nginx)")?;
    probe(upstream, UPSTREAM_PATH, &[("Authorization", BASIC)], &body, "the upstream")?;
    let nice = niceness_of(upstream_service.child.id()).unwrap_or(0);
    let r = http::request(upstream, "GET", UPSTREAM_PATH, &[], None)?;
    if r.status != 401 {
        bail!("the upstream should refuse a request without credentials, answered {}", r.status);
    }

    // para (may be missing its proxy: then direct and nginx are still measured).
    let para = if args.skip_para {
        Err(anyhow::anyhow!("skipped (--skip-para)"))
    } else {
        eprintln!("setting up para serve (project, credential)…");
        setup_para(&args.para, &dir, upstream, layout.proxy.as_deref())
    };
    if let Err(e) = &para
        && !args.skip_para
    {
        eprintln!("para cannot be measured, measuring direct and nginx only: {e:#}");
    }
    let (project_id, bearer) = match &para {
        Ok(p) => (p.project_id.clone(), format!("Bearer {}", p.token)),
        // nginx gets a request of the same shape either way.
        Err(_) => (
            "00000000-0000-4000-8000-000000000000".to_string(),
            format!("Bearer {}", "x".repeat(600)),
        ),
    };
    let proxied_path = format!("/projects/{project_id}/sdk/proxy/{INTEGRATION}{UPSTREAM_PATH}");

    // The nginx proxy.
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let config = nginx_config(
        &dir,
        "proxy",
        layout.proxy_workers,
        &proxy_block(nginx_addr, upstream, &project_id),
    );
    let nginx_service =
        start_nginx(&args.nginx, &dir, "proxy", &config, layout.proxy.as_deref(), nginx_addr, None)
            .context("starting the nginx proxy")?;
    probe(
        nginx_addr,
        &proxied_path,
        &[("Authorization", &bearer), (RAW_HEADER, "1")],
        &body,
        "nginx",
    )?;

    let para = para.and_then(|p| {
        probe(
            p.addr,
            &proxied_path,
            &[("Authorization", &bearer), (RAW_HEADER, "1")],
            &body,
            "para's proxy (raw)",
        )
        .and_then(|()| {
            probe(
                p.addr,
                &proxied_path,
                &[("Authorization", &bearer)],
                &json!({ "output": body }),
                "para's proxy (wrapped)",
            )
        })
        .map(|()| p)
    });

    let mut targets = vec![
        Target::new(
            "direct",
            format!("http://{upstream}{UPSTREAM_PATH}"),
            vec![format!("Authorization: {BASIC}")],
        ),
        Target::new(
            "nginx",
            format!("http://{nginx_addr}{proxied_path}"),
            vec![format!("Authorization: {bearer}"), format!("{RAW_HEADER}: 1")],
        ),
    ];
    if let Ok(p) = &para {
        targets.push(Target::new(
            "para (raw)",
            format!("http://{}{proxied_path}", p.addr),
            vec![format!("Authorization: {bearer}"), format!("{RAW_HEADER}: 1")],
        ));
        targets.push(Target::new(
            "para (wrapped)",
            format!("http://{}{proxied_path}", p.addr),
            vec![format!("Authorization: {bearer}")],
        ));
    }

    let script = dir.join("report.lua");
    fs::write(&script, WRK_SCRIPT)?;
    let wrk = Wrk { wrk: &args.wrk, script, threads: layout.load_threads };
    let mut proxies = vec![nginx_service.child.id()];
    if let Ok(p) = &para {
        proxies.push(p.service.child.id());
    }
    // Moves the servers for a latency phase (all on one CPU) or a throughput phase.
    let place = |latency: bool| -> anyhow::Result<Option<String>> {
        let (Some(one), Some(load), Some(proxy)) = (&layout.latency, &layout.load, &layout.proxy)
        else {
            return Ok(None);
        };
        repin(upstream_service.child.id(), if latency { one } else { load })?;
        for pid in &proxies {
            repin(*pid, if latency { one } else { proxy })?;
        }
        Ok(Some(if latency { one.clone() } else { load.clone() }))
    };
    let rounds = args.rounds.max(1);
    for round in 1..=rounds {
        eprint!("round {round}/{rounds}:");
        let wrk_cpus = place(false)?;
        if round == 1 {
            eprint!(" warm-up…");
            for t in &targets {
                wrk.run(t, wrk_cpus.as_deref(), args.connections, 1)?; // connection pools, caches
            }
        }
        let wrk_cpus = place(true)?;
        eprint!(" latency:");
        for t in &mut targets {
            eprint!(" {}…", t.label);
            let run = wrk.run(t, wrk_cpus.as_deref(), 1, args.duration)?;
            t.latency.push(run);
        }
        let wrk_cpus = place(false)?;
        eprint!(" throughput:");
        for t in &mut targets {
            eprint!(" {}…", t.label);
            let run = wrk.run(t, wrk_cpus.as_deref(), args.connections, args.duration)?;
            t.throughput.push(run);
        }
        eprintln!();
    }

    let counted = if args.instructions {
        eprintln!("counting instructions per request under valgrind (callgrind)…");
        let para = para.as_ref().ok();
        Some(count_instructions(
            &args,
            &dir,
            &layout,
            &wrk,
            upstream,
            para,
            &project_id,
            &proxied_path,
            &bearer,
        )?)
    } else {
        None
    };

    // Report.
    let load_after = load_average();
    println!(
        "proxy benchmark: GET {UPSTREAM_PATH} ({}-byte JSON) to a loopback upstream (nginx `return 200`)",
        BODY.len()
    );
    let version = Command::new(&args.para).arg("--version").output().ok();
    let version = version.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    println!("para: {} ({})", args.para.display(), version.as_deref().unwrap_or("?"));
    println!("{cpus} CPUs, {}", layout.description);
    match (args.nice, nice) {
        (0, _) => println!("all processes at normal priority"),
        (asked, got) if asked == got => {
            println!("all processes (wrk, upstream, proxies) at niceness {got}")
        }
        (asked, got) => println!(
            "all processes at niceness {got} (--nice {asked} not permitted: other work on the \
             machine disturbs the runs more)"
        ),
    }
    println!(
        "{rounds} interleaved round(s), {}s per run, medians; load average before {load_before}, after {load_after}",
        args.duration
    );
    if load_before.split(' ').next().and_then(|l| l.parse::<f64>().ok()).unwrap_or(0.0)
        > 0.5 * cpus as f64
    {
        println!("warning: the machine was busy before the run: expect noisy figures");
    }
    println!();
    println!(
        "{:<16}{:>30}   {:>36}",
        "",
        "1 connection, back to back",
        format!("{} connections", args.connections)
    );
    println!(
        "{:<16}{:>8}{:>8}{:>8}{:>8}{:>10}{:>10}{:>10}{:>8}",
        "target", "p50", "p99", "+p50", "+p99", "req/s", "req/s", "p50", "p99"
    );
    let summaries: Vec<Summary> = targets.iter().map(summarize).collect();
    let direct = &summaries[0];
    let us = |v: f64| if v.is_nan() { "—".to_string() } else { format!("{v:.0}µs") };
    let rate = |v: f64| {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    };
    let mut any_errors = false;
    for (t, s) in targets.iter().zip(&summaries) {
        let (added50, added99) = if t.label == "direct" {
            ("".to_string(), "".to_string())
        } else {
            (us(s.lat_p50 - direct.lat_p50), us(s.lat_p99 - direct.lat_p99))
        };
        let mut line = format!(
            "{:<16}{:>8}{:>8}{:>8}{:>8}{:>10}{:>10}{:>10}{:>8}",
            t.label,
            us(s.lat_p50),
            us(s.lat_p99),
            added50,
            added99,
            rate(s.lat_rps),
            rate(s.rps),
            us(s.tp_p50),
            us(s.tp_p99)
        );
        if s.errors > 0 {
            any_errors = true;
            let _ = write!(line, "   {} errors (HTTP ≥ 400 or socket)", s.errors);
        }
        println!("{}", line.trim_end());
    }
    println!("(+p50/+p99: added latency, the target's minus direct's)");
    println!();

    let nginx = &summaries[1];
    let mut missed = Vec::new();
    match &para {
        Ok(_) => {
            let raw = &summaries[2];
            let wrapped = &summaries[3];
            let ratio = |p: f64, n: f64| {
                if n > 0.0 && p > 0.0 {
                    format!("{:.2}×", p / n)
                } else {
                    "n/a (an added latency ≤ 0: noise)".into()
                }
            };
            let (n50, n99) = (nginx.lat_p50 - direct.lat_p50, nginx.lat_p99 - direct.lat_p99);
            for (label, s) in [("raw", raw), ("wrapped", wrapped)] {
                let (p50, p99) = (s.lat_p50 - direct.lat_p50, s.lat_p99 - direct.lat_p99);
                println!(
                    "para added latency / nginx added latency ({label}): p50 {}, p99 {}",
                    ratio(p50, n50),
                    ratio(p99, n99)
                );
                if label == "raw" && (p50 > 1.2 * n50 || p99 > 1.2 * n99) {
                    missed.push("added latency ≤ 1.2× nginx's");
                }
            }
            println!(
                "para throughput: {} req/s raw, {} req/s wrapped ({:.2}× and {:.2}× nginx's {} req/s)",
                rate(raw.rps),
                rate(wrapped.rps),
                raw.rps / nginx.rps,
                wrapped.rps / nginx.rps,
                rate(nginx.rps)
            );
            if raw.rps < 10_000.0 {
                missed.push("≥ 10,000 req/s");
            }
            if raw.errors + wrapped.errors > 0 {
                missed.push("no errors");
            }
            if missed.is_empty() {
                println!("targets (raw: added latency ≤ 1.2× nginx's, ≥ 10,000 req/s): met");
            } else {
                println!("targets missed: {}", missed.join(", "));
            }
        }
        Err(e) => {
            println!("para: not measured: {e:#}");
        }
    }
    if let Some(rows) = &counted {
        println!();
        println!(
            "user-space instructions per request (callgrind, one connection, after a warm-up; \
             median of {WINDOWS} windows of {}s; exact counts, so other work on the machine does \
             not move them; the kernel's work is not counted):",
            args.duration.min(5)
        );
        let nginx = rows.iter().find(|(label, _)| *label == "nginx").map(|r| r.1.median);
        for (label, count) in rows {
            let mut line = format!(
                "  {label:<16}{:>10}   (windows {}–{})",
                rate(count.median),
                rate(count.low),
                rate(count.high)
            );
            if let Some(n) = nginx.filter(|_| *label != "nginx") {
                let _ = write!(line, "   {:.2}× nginx's", count.median / n);
            }
            println!("{line}");
        }
    }
    if any_errors {
        bail!("some responses were errors: the figures above are not valid");
    }
    if let Err(e) = para
        && !args.skip_para
    {
        bail!("para's proxy could not be measured (direct and nginx were): {e:#}");
    }
    if args.check && !missed.is_empty() {
        bail!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}

/// The figures our wrk script prints on its `PARA-BENCH {json}` line, and the count of errors
/// of every kind among them. `what` names the run in the error when the line is missing.
pub(crate) fn wrk_figures(out: &std::process::Output, what: &str) -> anyhow::Result<(Value, f64)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("PARA-BENCH ")) else {
        bail!(
            "{what} printed no figures ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let v: Value = serde_json::from_str(line).context("wrk's figures")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let errors =
        ["connect", "read", "write", "status", "timeout"].iter().map(|k| f(k)).sum::<f64>();
    Ok((v, errors))
}
