//! `para dev` as a developer runs it: the printed portal URL and token, a rebuild served on a
//! file change, a broken file reported while the last good build stays served, and a clean
//! stop on SIGTERM.

use std::path::Path;
use std::time::Duration;

use crate::common::{self, Server};

/// Generous: CI machines build other things at the same time.
const PATIENCE: Duration = Duration::from_secs(90);

/// A plain HTTP/1.1 GET: the status and the body.
fn get(base: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    common::get(base, path, bearer).expect("the server answers")
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
    common::copy_dir(&common::repo().join("examples/taskflow"), &project);
    let _ = std::fs::remove_dir_all(project.join("out"));
    let _ = std::fs::remove_dir_all(project.join(".para/keys"));

    let mut dev = Server::dev(&project).arg("--user").arg("ada").patience(PATIENCE).start();
    let stderr = dev.stderr.clone();

    // 1. What it prints: the portal URL with a token for --user, and the token alone.
    let token = dev.wait_for_line("token: ");
    let portal = dev.wait_for_line("portal: ");
    assert_eq!(dev.wait_for_line("user: "), "ada");
    assert!(portal.ends_with(&format!("/portal?token={token}")), "{portal}");
    let (base, rest) = portal.split_at(portal.find("/projects/").expect("a project path"));
    assert_eq!(base, dev.base, "the portal URL is on the server's address");
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
    dev.wait_for("the rebuild", || stderr.count("now serving build") > served);
    let second = build_hash(base);
    assert_ne!(first, second, "the new build is served");
    let built: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("out/build.json")).unwrap())
            .unwrap();
    assert_eq!(built["buildHash"], second, "out/build.json was rewritten");

    // 3. A broken file is reported; the last good build stays served.
    let kept = stderr.count("still serving the last good build");
    edit(&workflow, "name = 'Welcome note, edited'", "name = = 'broken");
    dev.wait_for("the failed rebuild", || stderr.count("still serving the last good build") > kept);
    assert!(stderr.text().contains("welcome.ts"), "the finding names the file\n{}", dev.output());
    assert!(stderr.text().contains("error"), "{}", dev.output());
    assert_eq!(build_hash(base), second, "the last good build is still served");

    // 4. SIGTERM: a graceful stop, exit code 0.
    let status = dev.terminate();
    assert_eq!(status.code(), Some(0), "{}", dev.output());
    assert!(stderr.text().contains("stopped"), "{}", dev.output());
}
