//! The harness of the CLI's integration tests: the `para` binary cargo built for them, run
//! once ([`para`], [`para_ok`]) or as a server ([`Server::serve`], [`Server::dev`]: started on
//! a free port in a project folder, waited for until `/healthz` answers, its output captured
//! for failure messages, killed when dropped); and small tools: [`copy_dir`], [`get`],
//! [`Lines`], [`Killed`]. Every test that needs a running server starts it here.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `para` binary of this package, built by cargo for the tests.
pub const PARA: &str = env!("CARGO_BIN_EXE_para");

/// The repository's root (`examples/`, `tests/e2e/`, `docs/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `para` with an environment of the test's making: no `PARA_*` variable inherited from the
/// shell or CI that runs the tests (each would configure the command under test behind the
/// test's back), and `NO_COLOR=1`. Add arguments, a folder and variables as needed.
pub fn para_command() -> Command {
    let mut command = Command::new(PARA);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("PARA_")) {
            command.env_remove(name);
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// `para <args>` run to its end in `dir`; whatever it exits with.
pub fn para(dir: &Path, args: &[&str]) -> Output {
    para_command().args(args).current_dir(dir).output().expect("para runs")
}

/// `para <args>` in `dir`, which must succeed (else the test fails with its stderr).
pub fn para_ok(dir: &Path, args: &[&str]) -> Output {
    let out = para(dir, args);
    assert!(
        out.status.success(),
        "para {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The standard output of `para <args>` in `dir`, which must succeed.
pub fn para_stdout(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(para_ok(dir, args).stdout).expect("para prints UTF-8")
}

/// Copies a folder tree (regular files and folders).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}

/// A loopback port nothing listens on right now, for a server that must know its port before
/// it starts. Another process could take it before the server binds it: a small race the
/// tests accept (the server then fails to start, saying so, and the test fails with that).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.1 GET of `base` (`http://127.0.0.1:<port>`) + `path`, with a bearer token if
/// given: the status and the body as sent (a chunked body with its size lines); `None` while
/// nothing answers.
pub fn get(base: &str, path: &str, bearer: Option<&str>) -> Option<(u16, String)> {
    let host = base.strip_prefix("http://").expect("an http:// URL");
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Lines a child printed so far, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Collects `stream`'s lines until it closes.
    pub fn follow(stream: impl std::io::Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let into = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                into.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// The rest of the first line starting with `prefix`, if there is one yet.
    pub fn after(&self, prefix: &str) -> Option<String> {
        self.0.lock().unwrap().iter().find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    }
}

/// A child process killed (SIGKILL) and reaped when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `para serve` or `para dev` on `127.0.0.1`: its address, and what it printed.
/// Dropping it kills it (SIGKILL, as a crash would); [`Server::terminate`] stops it as Ctrl-C.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub stdout: Lines,
    pub stderr: Lines,
    child: Killed,
    /// `para serve` or `para dev`, for messages.
    what: String,
    patience: Duration,
}

/// How a [`Server`] is started: the command (`serve` or `dev`) in a project folder, on a free
/// port unless [`port`](ServerBuilder::port) says which, with the project's database unless
/// [`database`](ServerBuilder::database) names one, no `PARA_*` variable but those given
/// ([`para_command`]), and two minutes to answer `/healthz` (CI machines build other things
/// at the same time).
#[must_use]
pub struct ServerBuilder {
    command: &'static str,
    project: PathBuf,
    port: Option<u16>,
    database: Option<String>,
    args: Vec<String>,
    env: Vec<(OsString, OsString)>,
    patience: Duration,
}

impl Server {
    /// `para serve` of the project in `project` (built, with its keys).
    pub fn serve(project: &Path) -> ServerBuilder {
        ServerBuilder::new("serve", project)
    }

    /// `para dev` in `project` (it writes the keys and builds by itself).
    pub fn dev(project: &Path) -> ServerBuilder {
        ServerBuilder::new("dev", project)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process id (for signals).
    pub fn id(&self) -> u32 {
        self.child.0.id()
    }

    /// Both streams, to add to a failure message.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout\n{}\n--- {} stderr\n{}",
            self.what,
            self.stdout.text(),
            self.what,
            self.stderr.text()
        )
    }

    /// Waits until `done`; fails the test (with the server's output) if the server exits
    /// first or the builder's patience runs out.
    pub fn wait_for(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers finish
                panic!(
                    "{} exited ({status}) while waiting for {what}\n{}",
                    self.what,
                    self.output()
                );
            }
            assert!(
                started.elapsed() < self.patience,
                "timed out waiting for {what}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The rest of the first line of standard output starting with `prefix`, waiting for it.
    pub fn wait_for_line(&mut self, prefix: &str) -> String {
        let stdout = self.stdout.clone();
        self.wait_for(&format!("a line starting with {prefix:?}"), || {
            stdout.after(prefix).is_some()
        });
        stdout.after(prefix).unwrap()
    }

    /// SIGTERM, as Ctrl-C or a service manager stops it; its exit status once it has stopped
    /// and its output has been read.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < self.patience,
                "{} did not stop\n{}",
                self.what,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100)); // let the readers finish
        status
    }
}

impl ServerBuilder {
    fn new(command: &'static str, project: &Path) -> ServerBuilder {
        ServerBuilder {
            command,
            project: project.to_path_buf(),
            port: None,
            database: None,
            args: Vec::new(),
            env: Vec::new(),
            patience: Duration::from_secs(120),
        }
    }

    /// This port (a test that writes it into the project first takes it from [`free_port`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// `--database <url>` (`sqlite://…`, `postgres://…`); several servers may share one.
    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.to_string());
        self
    }

    /// One more argument of the command (`--user ada` for `para dev` is two).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// An environment variable (the engine's tunables, endpoint overrides).
    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// How long to wait for `/healthz`, and later in [`Server::wait_for`].
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Starts the server and waits until `/healthz` answers 200; fails the test with the
    /// server's output if it exits or does not answer in time.
    pub fn start(self) -> Server {
        let port = self.port.unwrap_or_else(free_port);
        let mut command = para_command();
        command.arg(self.command).args(["--port", &port.to_string()]);
        if let Some(database) = &self.database {
            command.args(["--database", database]);
        }
        command.args(&self.args).current_dir(&self.project);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let what = format!("para {}", self.command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} cannot start: {e}"));
        let stdout = Lines::follow(child.stdout.take().unwrap());
        let stderr = Lines::follow(child.stderr.take().unwrap());
        // Killed on drop from here on, also when the wait below fails.
        let mut server = Server {
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
            child: Killed(child),
            what,
            patience: self.patience,
        };
        let base = server.base.clone();
        server.wait_for("/healthz to answer 200", || {
            get(&base, "/healthz", None).is_some_and(|(status, _)| status == 200)
        });
        server
    }

    /// [`start`](Self::start) for an async test: the wait runs on a blocking thread, so the
    /// test's runtime (an upstream the server calls, say) keeps going meanwhile.
    pub async fn start_async(self) -> Server {
        match tokio::task::spawn_blocking(move || self.start()).await {
            Ok(server) => server,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Whether a browser test can run here (`node`, Chromium at `/usr/bin/chromium` or
/// `PARA_E2E_CHROMIUM`, and `package` under `tests/e2e/node_modules`, all of which
/// `scripts/e2e-deps` installs); `Err` says what is missing and what to run.
pub fn browser_prerequisites(package: &str) -> Result<(), String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("`node` is not installed".into());
    }
    let chromium =
        std::env::var("PARA_E2E_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("Chromium is not at {chromium}: run scripts/e2e-deps"));
    }
    if !repo().join("tests/e2e/node_modules").join(package).exists() {
        return Err(format!("tests/e2e/node_modules/{package} is missing: run scripts/e2e-deps"));
    }
    Ok(())
}

/// True (skip the test, saying why) when a browser test cannot run here; fails the test
/// instead when `PARA_E2E_REQUIRE=1` (CI and `scripts/test` set it once the browser is
/// installed, so a broken setup fails rather than skips).
pub fn skip_browser_test(name: &str, package: &str) -> bool {
    let Err(why) = browser_prerequisites(package) else {
        return false;
    };
    if std::env::var("PARA_E2E_REQUIRE").is_ok_and(|v| v == "1") {
        panic!("PARA_E2E_REQUIRE=1 but the {name} cannot run: {why}");
    }
    eprintln!("skipped: the {name} cannot run: {why}");
    true
}

/// An HTTP client for async tests (rustls with ring, as `para` itself).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Connects `user` of the project in `root` to the integration named `name` (basic auth,
/// `username` and `password`) through the Connect API of `server`; the user's token.
pub async fn connect_basic(
    root: &Path,
    server: &Server,
    project: &str,
    user: &str,
    name: &str,
    (username, password): (&str, &str),
) -> String {
    let token = para_stdout(root, &["token", "--user", user]).trim().to_string();
    let http = http_client();
    let sdk = server.url(&format!("/projects/{project}/sdk"));
    let list: serde_json::Value = http
        .get(format!("{sdk}/integrations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list.as_array().unwrap().iter().find(|i| i["name"] == name).unwrap()["id"].clone();
    let r = http
        .post(format!("{sdk}/credentials"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "integrationId": id,
            "payload": { "username": username, "password": password },
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "connecting: {}", r.text().await.unwrap());
    token
}
