//! `para-bench engine`: workflow runs per second through the real `para serve` (release build),
//! on SQLite and, when a URL is given, on PostgreSQL, all in one run.
//!
//! - The project is made with the CLI as a user would (`para init`, `para new integration
//!   --custom`, `para build`): one custom integration (basic auth) with two workflows, both on by
//!   default: `Sum` (EndpointStep → FunctionStep `{ sum: a + b }` → ResponseStep answering the
//!   sum) and `On bench event` (App Event `Bench Event` → the same FunctionStep).
//! - `--users` users connect a credential through the Connect API (`POST /sdk/credentials`,
//!   checked against a loopback upstream answering 200), so the workflows run for them; their
//!   tokens come from `para token`.
//! - Request-triggered runs: `wrk` (one thread, HTTP/1.1 keep-alive) POSTs `{a, b}` to
//!   `/projects/{id}/sdk/triggers/{Sum}` at `--connections`, each request as the next user in
//!   turn, for `--duration` after a `--warmup`; runs/s and latency percentiles are wrk's. Every
//!   answer must be 200 (wrk counts the others as errors) and one answer is checked to be the
//!   sum before the load.
//! - App Events: `--events` events posted to `/sdk/events/trigger` over `--connections`
//!   keep-alive connections; the wall time runs from the first post until the history API
//!   (`GET /task-history/workflow-executions?status=SUCCEEDED&includeTotal=true`, admin key)
//!   counts every run SUCCEEDED. SQLite only.
//! - Webhooks: as many signed Stripe deliveries to the users' per-account URLs (see
//!   `webhooks.rs`): accepted/s, and delivery → run recorded/finished percentiles. SQLite only.
//! - The server and the load generator share the machine's CPUs (nothing pinned): the figures
//!   are what one machine does with both.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http;
use crate::proxy::{
    Service, free_port, load_average, para_command, parse_seconds, point_config_at,
};

const INTEGRATION: &str = "custom.benchapi";
const SUM_ID: &str = "5b0d7c52-3f1e-4a8b-9c6d-2e7f8a9b0c13";
const EVENT_ID: &str = "8e4a1f27-6c3b-4d59-a0e8-7f2b1c3d4e5f";
const EVENT_NAME: &str = "Bench Event";
/// n8n's documented figure (not measured here): 220 workflow executions per second on a
/// 2-vCPU instance, single mode (n8n docs, "Performance and benchmarking").
const N8N_RUNS_PER_S: f64 = 220.0;
const TARGET_RPS: f64 = 2_000.0;
const TARGET_P99_MS: f64 = 20.0;

#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    /// The `para` binary to measure (a release build)
    #[arg(long)]
    para: PathBuf,
    /// The `wrk` load generator
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    /// Seconds of the timed request-trigger run (whole seconds: 10 or 10s)
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    duration: u64,
    /// Seconds of load before the timed run (not counted)
    #[arg(long, default_value = "2s", value_parser = parse_seconds)]
    warmup: u64,
    /// Concurrent connections (wrk's, and the App Event posters')
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Connected users the load is spread over
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// App Events posted (0: skip that part)
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// A PostgreSQL URL to measure on as well (bench/engine/run passes scripts/postgres's)
    #[arg(long, env = "PARA_BENCH_POSTGRES")]
    postgres: Option<String>,
    /// Exit with 1 when a target is missed (SQLite: ≥ 2,000 runs/s, p99 < 20 ms)
    #[arg(long)]
    check: bool,
    /// Keep the temporary folder (project, databases, logs) and print its path
    #[arg(long)]
    keep: bool,
    /// Start the SQLite server, print its pid and URL, and wait for Enter before the load
    /// (to attach `perf`)
    #[arg(long)]
    pause: bool,
}

/// A loopback API answering 200 `{}` to everything: the credential check's test endpoint.
fn start_upstream() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            });
        }
    });
    Ok(addr)
}

const EVENT_TS: &str = r#"import { IEventInit } from '@useparagon/core/event';

export type BenchEvent = { a: number; b: number };

const event: IEventInit<BenchEvent> = {
  name: 'Bench Event',
  schema: { a: 1, b: 2 },
};

export default event;
"#;

fn workflow_ts(name: &str, id: &str, trigger: &str, body: &str) -> String {
    format!(
        r#"import {{ EndpointStep, EventStep, FunctionStep, ResponseStep, Workflow }} from '@useparagon/core';
import {{ IContext }} from '@useparagon/core/execution';
import {{ ICustomIntegration }} from '@useparagon/core/integration';
import {{ DefaultInputToResultMap, createInputs }} from '@useparagon/core/inputs';
import {{ IConnectUser }} from '@useparagon/core/user';

import benchEvent from '../../../events/benchEvent';

export default class extends Workflow<ICustomIntegration, any, DefaultInputToResultMap> {{
  define(integration: ICustomIntegration, context: IContext<DefaultInputToResultMap>, connectUser: IConnectUser<any>) {{
{trigger}
{body}
  }}

  name = '{name}';
  description = 'para-bench engine';
  inputs = createInputs({{}});
  defaultEnabled = true;
  hidden = false;
  readonly id = '{id}';
}}
"#
    )
}

fn function_step(a: &str, b: &str) -> String {
    format!(
        r#"    const add = new FunctionStep({{
      description: 'Add',
      code: function add(parameters: {{ a: number; b: number }}) {{
        return {{ sum: parameters.a + parameters.b }};
      }},
      parameters: {{ a: {a}, b: {b} }},
    }});"#
    )
}

/// The bench project: built, with its id.
fn make_project(
    para: &Path,
    dir: &Path,
    upstream: SocketAddr,
) -> anyhow::Result<(PathBuf, String)> {
    let project = dir.join("project");
    let p = project.to_string_lossy().into_owned();
    para_command(para, dir, &["init", &p, "--name", "engine-bench"])?;
    para_command(
        para,
        &project,
        &["new", "integration", "--custom", "Bench API", "--auth", "basic"],
    )?;
    point_config_at(
        &project.join(format!("src/integrations/{INTEGRATION}/config.ts")),
        &format!("http://{upstream}"),
    )?;
    fs::create_dir_all(project.join("src/events"))?;
    fs::write(project.join("src/events/benchEvent.ts"), EVENT_TS)?;
    let workflows = project.join(format!("src/integrations/{INTEGRATION}/workflows"));
    fs::create_dir_all(&workflows)?;
    let sum = workflow_ts(
        "Sum",
        SUM_ID,
        r#"    const trigger = new EndpointStep({
      allowArbitraryPayload: false,
      paramValidations: [] as const,
      headerValidations: [] as const,
      bodyValidations: [
        { key: 'a', dataType: 'NUMBER', required: true },
        { key: 'b', dataType: 'NUMBER', required: true },
      ] as const,
    });"#,
        &format!(
            "{}\n    const respond = new ResponseStep({{\n      statusCode: 200,\n      \
             responseType: 'JSON',\n      body: {{ sum: add.output.result.sum }},\n    }});\n\n    \
             trigger.nextStep(add).nextStep(respond);\n    \
             return this.register({{ trigger, add, respond }});",
            function_step("trigger.output.request.body.a", "trigger.output.request.body.b")
        ),
    );
    fs::write(workflows.join("sum.ts"), sum)?;
    let on_event = workflow_ts(
        "On bench event",
        EVENT_ID,
        "    const trigger = new EventStep(benchEvent);",
        &format!(
            "{}\n    trigger.nextStep(add);\n    return this.register({{ trigger, add }});",
            function_step("trigger.output.a", "trigger.output.b")
        ),
    );
    fs::write(workflows.join("onBenchEvent.ts"), on_event)?;
    // Stripe's customerCreated webhook trigger → the scaffold's function step, on by default.
    para_command(para, &project, &["new", "integration", "stripe"])?;
    para_command(
        para,
        &project,
        &[
            "new",
            "workflow",
            "--integration",
            "stripe",
            "--trigger",
            "customerCreated",
            "--name",
            "On customer",
        ],
    )?;
    let stripe = project.join("src/integrations/stripe/workflows/onCustomer.ts");
    let text = fs::read_to_string(&stripe)?;
    let id_line = text.lines().find(|l| l.contains("readonly id = ")).context("no workflow id")?;
    let text = text
        .replace(id_line, &format!("  readonly id = '{}';", crate::webhooks::WORKFLOW_ID))
        .replace("defaultEnabled = false", "defaultEnabled = true");
    fs::write(&stripe, text)?;
    para_command(para, &project, &["build", "--quiet"])?;
    let meta: Value =
        serde_json::from_str(&fs::read_to_string(project.join(".para/project.json"))?)?;
    let id = meta["projectId"].as_str().context("no projectId in .para/project.json")?.to_string();
    Ok((project, id))
}

/// A running `para serve` with connected users.
struct Server {
    service: Service,
    addr: SocketAddr,
}

fn serve(
    args: &EngineArgs,
    dir: &Path,
    project: &Path,
    database: &str,
    label: &str,
    admin_key: &str,
    upstream: SocketAddr,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(&args.para);
    crate::proxy::serve_arguments(&mut command, project, port, database);
    command.env("PARA_ADMIN_KEY", admin_key);
    command.env("PARA_SECRET_KEY", crate::webhooks::secret_key());
    command.env("PARA_OAUTH_STRIPE_API_BASE_URL", format!("http://{upstream}"));
    let mut service = Service::spawn(
        &format!("para serve ({label})"),
        command,
        dir.join(format!("serve-{label}.log")),
    )?;
    service.wait_listening(addr, Duration::from_secs(60))?;
    Ok(Server { service, addr })
}

fn connect_users(addr: SocketAddr, project_id: &str, tokens: &[String]) -> anyhow::Result<()> {
    let basic = json!({ "username": "u", "password": "p" });
    connect_all(addr, project_id, tokens, "Bench API", &basic)?;
    connect_all(addr, project_id, tokens, "Stripe", &json!({ "secretKey": "sk_bench" }))
}

/// Connects every user's account of the integration named `name` with `payload`.
fn connect_all(
    addr: SocketAddr,
    project_id: &str,
    tokens: &[String],
    name: &str,
    payload: &Value,
) -> anyhow::Result<()> {
    let bearer = format!("Bearer {}", tokens[0]);
    let path = format!("/projects/{project_id}/sdk/integrations");
    let r = http::request(addr, "GET", &path, &[("Authorization", &bearer)], None)?;
    if r.status != 200 {
        bail!("GET {path} answered HTTP {}: {}", r.status, http::excerpt(&r.text()));
    }
    let list = r.json()?;
    let entry =
        list.as_array().and_then(|l| l.iter().find(|i| i["name"] == name)).with_context(|| {
            format!("GET {path} lists no {name}: {}", http::excerpt(&list.to_string()))
        })?;
    let integration_id = entry["id"].as_str().context("the integration has no id")?;
    let path = format!("/projects/{project_id}/sdk/credentials");
    let body = json!({ "integrationId": integration_id, "payload": payload }).to_string();
    for token in tokens {
        let bearer = format!("Bearer {token}");
        let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
        let r = http::request(addr, "POST", &path, &headers, Some(body.as_bytes()))?;
        if !(200..300).contains(&r.status) || r.text().contains("INVALID") {
            bail!(
                "connecting a user: POST {path} answered HTTP {}: {}",
                r.status,
                http::excerpt(&r.text())
            );
        }
    }
    Ok(())
}

/// Checks one request-triggered run answers the sum.
fn probe_sum(addr: SocketAddr, project_id: &str, token: &str) -> anyhow::Result<()> {
    let path = format!("/projects/{project_id}/sdk/triggers/{SUM_ID}");
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let r = http::request(addr, "POST", &path, &headers, Some(br#"{"a":40,"b":2}"#))?;
    let got = r.json()?;
    if r.status != 200 || !(got["sum"] == json!(42) || got["sum"] == json!("42")) {
        bail!(
            "POST {path} {{a: 40, b: 2}} answered HTTP {} {} instead of {{\"sum\": 42}}",
            r.status,
            http::excerpt(&got.to_string())
        );
    }
    Ok(())
}

/// One wrk run's figures.
#[derive(Debug, Clone)]
struct Load {
    requests: f64,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    /// wrk's error counts by kind, when any.
    error_kinds: String,
}

fn wrk_script(project_id: &str, tokens: &[String]) -> String {
    let list = tokens.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(",\n  ");
    format!(
        r#"-- written by para-bench engine: POST {{a, b}} as each user in turn; wrk's figures as one JSON line
local tokens = {{
  {list}
}}
local path = "/projects/{project_id}/sdk/triggers/{SUM_ID}"
local i = 0
request = function()
  i = i + 1
  local headers = {{}}
  headers["Authorization"] = "Bearer " .. tokens[i % #tokens + 1]
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", path, headers, string.format('{{"a":%d,"b":%d}}', i, 2))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\nPARA-BENCH {{\"requests\":%.0f,\"duration_us\":%.0f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"connect\":%.0f,\"read\":%.0f,\"write\":%.0f,\"status\":%.0f,\"timeout\":%.0f}}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"#
    )
}

fn run_wrk(
    args: &EngineArgs,
    script: &Path,
    addr: SocketAddr,
    seconds: u64,
) -> anyhow::Result<Load> {
    let out = Command::new(&args.wrk)
        .args(["-t", "1", "-c", &args.connections.to_string(), "-d", &format!("{seconds}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(script)
        .arg(format!("http://{addr}/"))
        .output()
        .with_context(|| {
            format!("running {} (install it: apt-get install wrk)", args.wrk.display())
        })?;
    let (v, errors) = crate::proxy::wrk_figures(&out, "wrk")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Load {
        requests: f("requests"),
        rps: f("requests") / (f("duration_us").max(1.0) / 1e6),
        p50_ms: f("p50_us") / 1000.0,
        p90_ms: f("p90_us") / 1000.0,
        p99_ms: f("p99_us") / 1000.0,
        max_ms: f("max_us") / 1000.0,
        errors: errors as u64,
        error_kinds: ["status", "timeout", "connect", "read", "write"]
            .iter()
            .filter(|k| f(k) > 0.0)
            .map(|k| format!("{k} {}", f(k)))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A keep-alive HTTP/1.1 connection for posting events (answers must carry Content-Length).
pub(crate) struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl KeepAlive {
    pub(crate) fn open(addr: SocketAddr) -> anyhow::Result<KeepAlive> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(KeepAlive { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    fn post(
        &mut self,
        host: SocketAddr,
        path: &str,
        bearer: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let bearer = format!("Bearer {bearer}");
        self.post_with(host, path, &[("Authorization", &bearer)], body)
    }

    /// POSTs a JSON `body` with `headers`; the status and the answer.
    pub(crate) fn post_with(
        &mut self,
        host: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let mut message = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in headers {
            let _ = write!(message, "{name}: {value}\r\n");
        }
        let _ = write!(
            message,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(message.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("connection closed mid-answer");
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut answer = vec![0; length.context("an answer without Content-Length")?];
        self.reader.read_exact(&mut answer)?;
        Ok((status, String::from_utf8_lossy(&answer).into_owned()))
    }
}

/// How many runs of the event workflow have `status`, per the history API.
fn count_runs(
    addr: SocketAddr,
    project_id: &str,
    admin_key: &str,
    status: &str,
) -> anyhow::Result<u64> {
    count_workflow_runs(addr, project_id, admin_key, EVENT_ID, status)
}

/// How many runs of `workflow` have `status`, per the history API.
pub(crate) fn count_workflow_runs(
    addr: SocketAddr,
    project_id: &str,
    admin_key: &str,
    workflow: &str,
    status: &str,
) -> anyhow::Result<u64> {
    let path = format!(
        "/projects/{project_id}/task-history/workflow-executions?workflowId={workflow}&status={status}&limit=1&includeTotal=true"
    );
    let bearer = format!("Bearer {admin_key}");
    let r = http::request(addr, "GET", &path, &[("Authorization", &bearer)], None)?;
    if r.status != 200 {
        bail!("GET {path} answered HTTP {}: {}", r.status, http::excerpt(&r.text()));
    }
    r.json()?["total"].as_u64().with_context(|| format!("GET {path}: no total"))
}

struct Events {
    posted: Duration,
    completed: Duration,
    failed: u64,
}

fn app_events(
    args: &EngineArgs,
    addr: SocketAddr,
    project_id: &str,
    tokens: &[String],
    admin_key: &str,
) -> anyhow::Result<Events> {
    let n = args.events;
    let path = format!("/projects/{project_id}/sdk/events/trigger");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let posters: Vec<_> = (0..args.connections.min(n).max(1))
        .map(|_| {
            let (next, path, tokens) = (next.clone(), path.clone(), tokens.to_vec());
            thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = KeepAlive::open(addr)?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok(());
                    }
                    let body = format!(r#"{{"name":"{EVENT_NAME}","payload":{{"a":{i},"b":2}}}}"#);
                    let (status, answer) =
                        conn.post(addr, &path, &tokens[i % tokens.len()], &body)?;
                    if status != 200 || !answer.contains("\"executions\":[\"") {
                        bail!("POST {path} answered HTTP {status}: {}", http::excerpt(&answer));
                    }
                }
            })
        })
        .collect();
    for p in posters {
        p.join().map_err(|_| anyhow::anyhow!("an event poster panicked"))??;
    }
    let posted = started.elapsed();
    loop {
        let done = count_runs(addr, project_id, admin_key, "SUCCEEDED")?;
        if done >= n as u64 {
            let completed = started.elapsed();
            let failed = count_runs(addr, project_id, admin_key, "FAILED")?;
            return Ok(Events { posted, completed, failed });
        }
        let failed = count_runs(addr, project_id, admin_key, "FAILED")?;
        if done + failed >= n as u64 {
            bail!("{failed} of the {n} event runs FAILED");
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {done} of {n} event runs SUCCEEDED after 10 minutes");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

struct Measured {
    label: String,
    load: Load,
    events: Option<Events>,
    webhooks: Option<crate::webhooks::Deliveries>,
    /// CPUs the server process used on average during the timed request-trigger run.
    server_cpu: Option<f64>,
}

/// User + system CPU time of `pid` so far, in clock ticks (`/proc/<pid>/stat` fields 14, 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// The bench project and its users, shared by every database measured.
struct Setup {
    upstream: SocketAddr,
    dir: PathBuf,
    project: PathBuf,
    project_id: String,
    tokens: Vec<String>,
}

fn measure(
    args: &EngineArgs,
    setup: &Setup,
    database: &str,
    label: &str,
    with_events: bool,
) -> anyhow::Result<Measured> {
    let (dir, project, project_id, tokens) =
        (&setup.dir, &setup.project, &setup.project_id, &setup.tokens);
    let admin_key = format!("bench-admin-{}", std::process::id());
    eprint!("{label}: starting para serve…");
    let server = serve(args, dir, project, database, label, &admin_key, setup.upstream)?;
    eprint!(" connecting {} users…", tokens.len());
    connect_users(server.addr, project_id, tokens)?;
    probe_sum(server.addr, project_id, &tokens[0])?;
    if args.pause && label == "SQLite" {
        eprintln!(
            "\npara serve pid {} on http://{} — attach now (perf top -p {0}), then press Enter",
            server.service.child.id(),
            server.addr
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
    }
    let script = dir.join(format!("trigger-{}.lua", tokens.len()));
    fs::write(&script, wrk_script(project_id, tokens))?;
    eprint!(" warm-up {}s…", args.warmup);
    run_wrk(args, &script, server.addr, args.warmup)?;
    eprint!(" request triggers {}s…", args.duration);
    let pid = server.service.child.id();
    let (ticks_before, started) = (cpu_ticks(pid), Instant::now());
    let load = run_wrk(args, &script, server.addr, args.duration)?;
    let server_cpu = match (ticks_before, cpu_ticks(pid)) {
        // Clock ticks of 10 ms (USER_HZ is 100 on Linux).
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0 / started.elapsed().as_secs_f64()),
        _ => None,
    };
    let events = if with_events && args.events > 0 {
        eprint!(" {} App Events…", args.events);
        Some(app_events(args, server.addr, project_id, tokens, &admin_key)?)
    } else {
        None
    };
    let webhooks = if with_events && args.events > 0 {
        eprint!(" {} webhook deliveries…", args.events);
        let users: Vec<String> = (0..tokens.len()).map(user_name).collect();
        let hooks = crate::webhooks::add_hooks(database, project_id, &users)?;
        Some(crate::webhooks::deliver(
            server.addr,
            database,
            project_id,
            &admin_key,
            &hooks,
            args.events,
            args.connections,
        )?)
    } else {
        None
    };
    eprintln!(" done");
    drop(server);
    Ok(Measured { label: label.to_string(), load, events, webhooks, server_cpu })
}

/// The bench's user `i`.
fn user_name(i: usize) -> String {
    format!("bench-user-{i}")
}

fn thousands(v: f64) -> String {
    let s = (v.round() as u64).to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub fn run(args: EngineArgs) -> anyhow::Result<()> {
    let load_before = load_average();
    let tmp = tempfile::tempdir()?;
    let dir = if args.keep { tmp.keep() } else { tmp.path().to_path_buf() };
    let upstream = start_upstream()?;
    eprintln!("building the bench project with {}…", args.para.display());
    let (project, project_id) = make_project(&args.para, &dir, upstream)?;
    let tokens: Vec<String> = (0..args.users.max(1))
        .map(|i| {
            let user = user_name(i);
            para_command(&args.para, &project, &["token", "--user", &user, "--ttl", "1h"])
                .map(|t| t.trim().to_string())
        })
        .collect::<anyhow::Result<_>>()?;

    let sqlite = format!("sqlite://{}", dir.join("engine.db").display());
    let setup = Setup { upstream, dir: dir.clone(), project, project_id, tokens };
    let tokens = &setup.tokens;
    let mut results = vec![measure(&args, &setup, &sqlite, "SQLite", true)?];
    let mut pg_note = None;
    match &args.postgres {
        Some(url) => match measure(&args, &setup, url, "PostgreSQL", false) {
            Ok(m) => results.push(m),
            Err(e) => {
                eprintln!();
                pg_note = Some(format!("PostgreSQL: not measured: {e:#}"));
            }
        },
        None => pg_note = Some("PostgreSQL: skipped (no URL: scripts/postgres could not start one, or PARA_BENCH_POSTGRES unset)".into()),
    }

    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let version = Command::new(&args.para).arg("--version").output().ok();
    let version = version.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    println!();
    println!(
        "engine benchmark: para serve ({}), {}",
        args.para.display(),
        version.as_deref().unwrap_or("?")
    );
    println!(
        "{cpus} CPUs shared by the server and the load generator (not pinned); {} users; load average before {load_before}, after {}",
        tokens.len(),
        load_average()
    );
    println!(
        "request trigger: POST /sdk/triggers/{{Sum}} {{a, b}} → FunctionStep {{sum: a + b}} → ResponseStep; \
         wrk, 1 thread, {} connections, {}s after {}s warm-up",
        args.connections, args.duration, args.warmup
    );
    println!();
    println!(
        "{:<12}{:>10}{:>10}{:>9}{:>9}{:>9}{:>9}{:>8}{:>12}",
        "database", "runs", "runs/s", "p50", "p90", "p99", "max", "errors", "server CPU"
    );
    for m in &results {
        let l = &m.load;
        println!(
            "{:<12}{:>10}{:>10}{:>9}{:>9}{:>9}{:>9}{:>8}{:>12}",
            m.label,
            thousands(l.requests),
            thousands(l.rps),
            format!("{:.1}ms", l.p50_ms),
            format!("{:.1}ms", l.p90_ms),
            format!("{:.1}ms", l.p99_ms),
            format!("{:.0}ms", l.max_ms),
            l.errors,
            m.server_cpu.map_or("?".into(), |c| format!("{c:.2} CPUs"))
        );
    }
    println!(
        "(server CPU: what para serve used on average during the timed run, of {cpus}; well below \
         {cpus} with runs/s short of the target means the runs wait rather than compute)"
    );
    if let Some(note) = &pg_note {
        println!("{note}");
    }
    println!();
    let mut missed = Vec::new();
    let sqlite = &results[0];
    for m in &results {
        if let Some(e) = &m.events {
            println!(
                "App Events ({}): {} events posted over {} connections in {:.2}s ({} events/s accepted); \
                 all {} runs SUCCEEDED {:.2}s after the first post ({} runs/s end to end){}",
                m.label,
                thousands(args.events as f64),
                args.connections.min(args.events),
                e.posted.as_secs_f64(),
                thousands(args.events as f64 / e.posted.as_secs_f64()),
                thousands(args.events as f64),
                e.completed.as_secs_f64(),
                thousands(args.events as f64 / e.completed.as_secs_f64()),
                if e.failed > 0 { format!(", {} FAILED", e.failed) } else { String::new() }
            );
        }
    }
    for m in &results {
        if let Some(w) = &m.webhooks {
            let p = crate::webhooks::Deliveries::percentile;
            println!(
                "Webhooks ({}): {} signed Stripe deliveries over {} connections in {:.2}s ({} deliveries/s accepted, \
                 each committed before its 200; {:.2}× the App Events' accepted rate); all {} runs SUCCEEDED {:.2}s after the first \
                 delivery ({} runs/s end to end); delivery → run recorded p50 {} ms, p99 {} ms; delivery → run finished p50 {} ms, p99 {} ms",
                m.label,
                thousands(w.n as f64),
                args.connections.min(w.n),
                w.posted.as_secs_f64(),
                thousands(w.n as f64 / w.posted.as_secs_f64()),
                m.events.as_ref().map_or(f64::NAN, |e| {
                    (w.n as f64 / w.posted.as_secs_f64())
                        / (args.events as f64 / e.posted.as_secs_f64())
                }),
                thousands(w.n as f64),
                w.completed.as_secs_f64(),
                thousands(w.n as f64 / w.completed.as_secs_f64()),
                p(&w.to_run, 0.5),
                p(&w.to_run, 0.99),
                p(&w.to_done, 0.5),
                p(&w.to_done, 0.99),
            );
        }
    }
    let mut line = String::new();
    let _ = write!(
        line,
        "targets (SQLite request triggers): ≥ {} runs/s: {} ({}), p99 < {TARGET_P99_MS:.0} ms: {} ({:.1} ms)",
        thousands(TARGET_RPS),
        if sqlite.load.rps >= TARGET_RPS { "met" } else { "MISSED" },
        thousands(sqlite.load.rps),
        if sqlite.load.p99_ms < TARGET_P99_MS { "met" } else { "MISSED" },
        sqlite.load.p99_ms
    );
    println!("{line}");
    if sqlite.load.rps < TARGET_RPS {
        missed.push("runs/s");
    }
    if sqlite.load.p99_ms >= TARGET_P99_MS {
        missed.push("p99");
    }
    for m in &results {
        println!(
            "baseline (documented, NOT measured here): n8n reports {N8N_RUNS_PER_S:.0} workflow runs/s \
             on a 2-vCPU instance; para on {} here: {:.1}× that",
            m.label,
            m.load.rps / N8N_RUNS_PER_S
        );
    }
    if args.keep {
        println!("kept: {}", dir.display());
    }
    for m in results.iter().filter(|m| m.load.errors > 0) {
        println!(
            "{}: {} errors ({}; status: an answer other than 2xx/3xx); the server's log: {}",
            m.label,
            m.load.errors,
            m.load.error_kinds,
            setup.dir.join(format!("serve-{}.log", m.label)).display()
        );
    }
    if results.iter().any(|m| m.load.errors > 0) {
        bail!("some answers were errors (non-2xx or socket): the figures above are not valid");
    }
    if args.check && !missed.is_empty() {
        bail!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}
