//! `para dev` as a developer runs it: the printed portal URL and token, a rebuild served on a
//! file change, a broken file reported while the last good build stays served, and a clean
//! stop on SIGTERM.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: CI machines build other things at the same time.
const PATIENCE: Duration = Duration::from_secs(90);

/// Lines a child printed so far, collected by a reader thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(stream: impl std::io::Read + Send + 'static) -> Lines {
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

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    fn count(&self, needle: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// The first line starting with `prefix`, waiting for it.
    fn wait_for_prefix(&self, prefix: &str, dev: &mut Dev) -> String {
        let found = || {
            self.0.lock().unwrap().iter().find_map(|l| l.strip_prefix(prefix).map(str::to_string))
        };
        dev.wait(&format!("a line starting with {prefix:?}"), || found().is_some());
        found().unwrap()
    }
}

/// The running `para dev`; killed if the test ends early.
struct Dev {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Dev {
    fn wait(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers finish
                panic!("para dev exited ({status}) while waiting for {what}\n{}", self.output());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "timed out waiting for {what}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout.text(), self.stderr.text())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: the status and the body.
fn get(base: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    let host = base.strip_prefix("http://").expect("an http:// URL");
    let mut stream = TcpStream::connect(host).expect("the server accepts connections");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn build_hash(base: &str) -> String {
    let (status, body) = get(base, "/healthz", None);
    assert_eq!(status, 200, "{body}");
    // A chunked body is the JSON between its size lines.
    let json = body.lines().find(|l| l.starts_with('{')).unwrap_or(&body);
    let health: serde_json::Value = serde_json::from_str(json).expect("/healthz is JSON");
    health["buildHash"].as_str().expect("buildHash").to_string()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} contains {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn dev_serves_rebuilds_on_change_keeps_the_last_good_build_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("taskflow");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/taskflow");
    common::copy_dir(&example, &project);
    let _ = std::fs::remove_dir_all(project.join("out"));
    let _ = std::fs::remove_dir_all(project.join(".para/keys"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_para"))
        .args(["dev", "--port", "0", "--user", "ada"])
        .current_dir(&project)
        .env("NO_COLOR", "1")
        .env_remove("PARA_PROJECT")
        .env_remove("PARA_PORT")
        .env_remove("PARA_HOST")
        .env_remove("PARA_PUBLIC_URL")
        .env_remove("PARA_DATABASE_URL")
        .env_remove("PARA_SECRET_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("para runs");
    let stdout = Lines::follow(child.stdout.take().unwrap());
    let stderr = Lines::follow(child.stderr.take().unwrap());
    let mut dev = Dev { child, stdout: stdout.clone(), stderr: stderr.clone() };

    // 1. What it prints: the portal URL with a token for --user, and the token alone.
    let token = stdout.wait_for_prefix("token: ", &mut dev);
    let portal = stdout.wait_for_prefix("portal: ", &mut dev);
    assert_eq!(stdout.wait_for_prefix("user: ", &mut dev), "ada");
    assert!(portal.ends_with(&format!("/portal?token={token}")), "{portal}");
    let (base, rest) = portal.split_at(portal.find("/projects/").expect("a project path"));
    let project_id = rest.split('/').nth(2).unwrap().to_string();
    assert!(project.join(".para/keys/private.pem").is_file(), "the dev keys were written");
    assert!(project.join("out/build.json").is_file(), "the build was written");

    // The server answers, and the token is accepted (for the printed user).
    let first = build_hash(base);
    let (status, me) = get(base, &format!("/projects/{project_id}/sdk/me"), Some(&token));
    assert_eq!(status, 200, "{me}");
    assert!(me.contains("\"ada\""), "{me}");
    let (status, page) = get(base, rest, None);
    assert!(matches!(status, 200 | 303), "the portal URL opens ({status}): {page}");

    // 2. A change is rebuilt and served without a restart.
    let workflow = project.join("src/integrations/custom.acmecrm/workflows/welcome.ts");
    let served = stderr.count("now serving build");
    edit(&workflow, "name = 'Welcome note'", "name = 'Welcome note, edited'");
    dev.wait("the rebuild", || stderr.count("now serving build") > served);
    let second = build_hash(base);
    assert_ne!(first, second, "the new build is served");
    let built: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("out/build.json")).unwrap())
            .unwrap();
    assert_eq!(built["buildHash"], second, "out/build.json was rewritten");

    // 3. A broken file is reported; the last good build stays served.
    let kept = stderr.count("still serving the last good build");
    edit(&workflow, "name = 'Welcome note, edited'", "name = = 'broken");
    dev.wait("the failed rebuild", || stderr.count("still serving the last good build") > kept);
    assert!(stderr.text().contains("welcome.ts"), "the finding names the file\n{}", dev.output());
    assert!(stderr.text().contains("error"), "{}", dev.output());
    assert_eq!(build_hash(base), second, "the last good build is still served");

    // 4. SIGTERM: a graceful stop, exit code 0.
    let pid = dev.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = dev.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < PATIENCE, "para dev did not stop\n{}", dev.output());
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(100)); // let the readers finish
    assert_eq!(status.code(), Some(0), "{}", dev.output());
    assert!(stderr.text().contains("stopped"), "{}", dev.output());
}
