//! A project made only with `para init`, `para new …` and `para install` type-checks with the real
//! `tsc` and builds; taskflow type-checks after `para install`. tsc comes from `$PARA_TSC` or
//! `<repo>/tools/node_modules/.bin/tsc` (`npm ci --prefix tools`, which `scripts/test` runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{copy_dir, para_command, repo};

fn tsc() -> PathBuf {
    if let Some(path) = std::env::var_os("PARA_TSC") {
        return PathBuf::from(path);
    }
    let path = repo().join("tools/node_modules/.bin/tsc");
    assert!(
        path.is_file(),
        "TypeScript is not installed: run `npm ci --prefix tools` in {} (or set PARA_TSC)",
        repo().display()
    );
    path
}

fn para(dir: &Path, args: &[&str]) -> Output {
    para_command().args(args).current_dir(dir).output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = para(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "para {args:?} failed:\n{stderr}");
    stderr
}

fn typecheck(dir: &Path) -> Output {
    Command::new(tsc()).args(["--noEmit", "-p", "."]).current_dir(dir).output().unwrap()
}

#[test]
fn a_scaffolded_project_type_checks_and_builds() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init", "p"]);
    let dir = tmp.path().join("p");
    ok(&dir, &["new", "integration", "salesforce"]);
    ok(&dir, &["new", "integration", "slack"]);
    ok(&dir, &["new", "integration", "--custom", "Acme CRM", "--auth", "oauth"]);
    ok(&dir, &["new", "integration", "--custom", "Legacy ERP", "--auth", "basic"]);
    ok(
        &dir,
        &["new", "integration", "--custom", "Billing API", "--auth", "oauth-client-credential"],
    );
    ok(&dir, &["new", "event", "Task Created"]);
    assert!(dir.join("src/events/taskCreated.ts").is_file());
    for (integration, trigger) in [
        ("salesforce", "event"),
        ("salesforce", "endpoint"),
        ("salesforce", "cron"),
        ("salesforce", "integration-enabled"),
        ("salesforce", "recordCreated"),
        ("slack", "messageReceived"),
        ("slack", "cron"),
        ("custom.acmecrm", "endpoint"),
        ("custom.legacyerp", "integration-enabled"),
        ("custom.billingapi", "event"),
    ] {
        let name = format!("On {trigger}");
        ok(
            &dir,
            &[
                "new",
                "workflow",
                "--integration",
                integration,
                "--name",
                &name,
                "--trigger",
                trigger,
            ],
        );
    }
    let said = ok(&dir, &["install"]);
    assert!(said.contains("5 integration(s)"), "{said}");
    assert!(dir.join("node_modules/@useparagon/integrations/salesforce/index.d.ts").is_file());

    let checked = typecheck(&dir);
    assert!(
        checked.status.success(),
        "tsc found errors in the scaffolded project:\n{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let built = ok(&dir, &["build"]);
    assert!(!built.contains("warning"), "{built}");
    let build: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/build.json")).unwrap()).unwrap();
    let integrations = build["integrations"].as_object().unwrap();
    assert_eq!(integrations.len(), 5);
    let salesforce = &integrations["salesforce"];
    assert_eq!(salesforce["workflows"].as_object().unwrap().len(), 5);
    assert_eq!(salesforce["config"]["workflowDisplayOrder"].as_array().unwrap().len(), 5);

    // What `para new` writes is recorded without the JavaScript engine, and exactly as the
    // engine records it.
    let timed = ok(&dir, &["build", "--timings", "--out", "out/direct.json"]);
    assert!(timed.contains(" 0 by the JavaScript engine"), "{timed}");
    let engine = para_command()
        .args(["build", "--out", "out/engine.json"])
        .current_dir(&dir)
        .env("PARA_DIRECT", "off")
        .output()
        .unwrap();
    assert!(engine.status.success(), "{}", String::from_utf8_lossy(&engine.stderr));
    let read = |name: &str| std::fs::read(dir.join("out").join(name)).unwrap();
    assert!(read("direct.json") == read("engine.json"), "the two builds differ");

    // A typo in a workflow: tsc (through `para build --typecheck`) names it; exit 1.
    let file = dir.join("src/integrations/slack/workflows/onCron.ts");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replace(
        "trigger.nextStep(firstStep);",
        "trigger.nextStep(firstStep).nextStep(integration.actions.sendMesage({ channel: 'C1', text: 'x' }));",
    );
    assert_ne!(text, broken);
    std::fs::write(&file, broken).unwrap();
    let out = para_command()
        .args(["build", "--typecheck"])
        .current_dir(&dir)
        .env("PARA_TSC", tsc())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sendMesage") && stderr.contains("TypeScript found errors"),
        "{stderr}"
    );
}

#[test]
fn taskflow_type_checks_after_para_install() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taskflow");
    copy_dir(&repo().join("examples/taskflow"), &dir);
    ok(&dir, &["install"]);
    let checked = typecheck(&dir);
    assert!(
        checked.status.success(),
        "tsc found errors in taskflow:\n{}",
        String::from_utf8_lossy(&checked.stdout)
    );
}

#[test]
fn refusals_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init", "p"]);
    let dir = tmp.path().join("p");
    ok(&dir, &["new", "integration", "salesforce"]);
    let again = para(&dir, &["new", "integration", "salesforce"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr.contains("already has the integration `salesforce`") && stderr.contains("hint:"),
        "{stderr}"
    );
    let unknown = para(&dir, &["new", "integration", "hubspto"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr.contains("did you mean `hubspot`"), "{stderr}");
    let workflow = para(&dir, &["new", "workflow", "--integration", "slack", "--trigger", "cron"]);
    let stderr = String::from_utf8_lossy(&workflow.stderr);
    assert!(stderr.contains("no integration `slack`") && stderr.contains("salesforce"), "{stderr}");
    let event =
        para(&dir, &["new", "workflow", "--integration", "salesforce", "--trigger", "event"]);
    let stderr = String::from_utf8_lossy(&event.stderr);
    assert!(stderr.contains("para new event"), "{stderr}");
    // Nothing was written by the refusals.
    assert!(!dir.join("src/integrations/salesforce/workflows/newWorkflow.ts").exists());
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = para_command().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("install") && script.contains("workflow"), "{shell}");
    }
}
