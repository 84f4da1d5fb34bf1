//! The interactive `para new` prompts, driven through a real pseudo-terminal: what a person sees
//! and types, keys included.

use std::path::Path;
use std::time::Duration;

use expectrl::session::OsSession as Session;
use expectrl::{Eof, Expect as _};

use crate::common::para_command;

fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let status = para_command().args(["init", "p"]).current_dir(tmp.path()).output().unwrap();
    assert!(status.status.success());
    tmp
}

fn session(dir: &Path, args: &[&str]) -> Session {
    let mut command = para_command();
    command.args(args).current_dir(dir).env("TERM", "xterm");
    let mut session = Session::spawn(command).expect("spawn para in a pty");
    session.get_process_mut().set_window_size(100, 30).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

#[test]
fn typing_sales_and_enter_scaffolds_salesforce() {
    let tmp = project();
    let dir = tmp.path().join("p");
    let mut s = session(&dir, &["new", "integration"]);
    s.expect("Integration (type to filter").unwrap();
    s.send("sales").unwrap();
    s.expect("Salesforce (salesforce)").unwrap();
    s.send("\r").unwrap();
    s.expect("added Salesforce as src/integrations/salesforce").unwrap();
    s.expect(Eof).unwrap();
    let config =
        std::fs::read_to_string(dir.join("src/integrations/salesforce/config.ts")).unwrap();
    assert!(config.contains("workflowDisplayOrder: []"), "{config}");
    assert!(dir.join("src/integrations/salesforce/inputs.ts").is_file());
}

#[test]
fn custom_integration_asks_for_its_name_and_auth() {
    let tmp = project();
    let dir = tmp.path().join("p");
    let mut s = session(&dir, &["new", "integration"]);
    s.expect("Integration (type to filter").unwrap();
    s.send("Custom integ").unwrap();
    s.expect("Custom integration").unwrap();
    s.send("\r").unwrap();
    s.expect("Display name of the integration").unwrap();
    s.send("Acme Tools\r").unwrap();
    s.expect("How does it authenticate?").unwrap();
    // Down once: Basic.
    s.send("\x1b[B").unwrap();
    s.send("\r").unwrap();
    s.expect("added Acme Tools as src/integrations/custom.acmetools").unwrap();
    s.expect(Eof).unwrap();
    let config =
        std::fs::read_to_string(dir.join("src/integrations/custom.acmetools/config.ts")).unwrap();
    assert!(config.contains("authenticationType: 'basic'"), "{config}");
}

#[test]
fn workflow_wizard_asks_for_name_and_trigger() {
    let tmp = project();
    let dir = tmp.path().join("p");
    let out =
        para_command().args(["new", "integration", "slack"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success());
    let mut s = session(&dir, &["new", "workflow"]);
    s.expect("Workflow name").unwrap();
    s.send("Morning digest\r").unwrap();
    s.expect("Trigger:").unwrap();
    s.send("sched").unwrap();
    s.expect("Schedule (cron)").unwrap();
    s.send("\r").unwrap();
    s.expect("added workflow `Morning digest`").unwrap();
    s.expect(Eof).unwrap();
    let workflow =
        std::fs::read_to_string(dir.join("src/integrations/slack/workflows/morningDigest.ts"))
            .unwrap();
    assert!(workflow.contains("new CronStep("), "{workflow}");
}
