//! Fixture projects compiled end to end: `fixtures/ok/*` (and the shared taskflow example) must
//! build, with their `out/build.json` snapshotted; every `fixtures/broken/<rule>` must fail with a
//! finding of code `<rule>` (or warn, for warning rules), with the rendered findings snapshotted.

mod common;
use common::load;

use std::path::{Path, PathBuf};

use para_compiler::{Options, Output, compile};
use para_project::{Project, render};

fn options() -> Options {
    common::options(true)
}

fn check(dir: &Path) -> (Project, Output) {
    let project = load(dir);
    let output = compile(&project, &options());
    (project, output)
}

fn rendered(project: &Project, output: &Output) -> String {
    output.diagnostics.iter().map(|d| render(d, project)).collect::<Vec<_>>().join("\n")
}

fn fixture_dirs(group: &str) -> Vec<(String, PathBuf)> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(group);
    let mut dirs: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    dirs.sort();
    dirs
}

/// The repository's example project `name` (`examples/<name>`).
pub fn example(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    assert!(dir.is_dir(), "the example project is missing: {}", dir.display());
    dir
}

pub fn taskflow() -> PathBuf {
    example("taskflow")
}

#[test]
fn ok_fixtures_build_and_match_snapshots() {
    let mut dirs = fixture_dirs("ok");
    dirs.push(("taskflow".into(), taskflow()));
    dirs.push(("leadsync".into(), example("leadsync")));
    for (name, dir) in dirs {
        let (project, output) = check(&dir);
        let build = output.build.as_ref().unwrap_or_else(|| {
            panic!("{name} should build, but:\n{}", rendered(&project, &output))
        });
        assert!(
            output.diagnostics.is_empty(),
            "{name}: unexpected findings:\n{}",
            rendered(&project, &output)
        );
        insta::assert_snapshot!(format!("ok__{name}"), build.to_json_pretty());
    }
}

#[test]
fn broken_fixtures_report_their_rule() {
    let dirs = fixture_dirs("broken");
    assert!(dirs.len() >= 15, "one fixture per rule");
    for (rule, dir) in dirs {
        let (project, output) = check(&dir);
        assert!(
            output.diagnostics.iter().any(|d| d.code == rule),
            "{rule}: expected a finding `{rule}`, got:\n{}",
            rendered(&project, &output)
        );
        let warning_only = output.diagnostics.iter().all(|d| !d.is_error());
        assert_eq!(
            output.build.is_some(),
            warning_only,
            "{rule}: a build is produced exactly when there are no errors"
        );
        insta::assert_snapshot!(format!("broken__{rule}"), rendered(&project, &output));
    }
}

#[test]
fn taskflow_holds_what_its_readme_lists() {
    let (_, output) = check(&taskflow());
    let build = output.build.expect("taskflow builds");
    let keys: Vec<_> = build.integrations.keys().cloned().collect();
    assert_eq!(keys, ["custom.acmecrm", "salesforce", "slack"]);
    let counts: Vec<_> =
        build.integrations.values().map(|i| (i.workflows.len(), i.inputs.len())).collect();
    assert_eq!(counts, [(2, 2), (2, 2), (1, 1)]);
    assert_eq!(build.events.len(), 1);
    assert_eq!(build.events.values().next().unwrap().name, "Task Created");
    assert_eq!(build.persona.meta.as_object().unwrap().len(), 3);
    let workflow_inputs: Vec<_> = build
        .integrations
        .values()
        .flat_map(|i| i.workflows.values())
        .flat_map(|w| w.inputs.iter().map(|i| i.key.clone()))
        .collect();
    assert_eq!(workflow_inputs, ["alwaysPush"]);
    let acme = build.integrations["custom.acmecrm"].config.custom.as_ref().unwrap();
    assert!(acme.use_pkce_in_code_exchange);
    assert_eq!(acme.scopes, ["tasks.read", "tasks.write", "offline_access"]);
    assert_eq!(acme.config_inputs.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["region"]);
    assert!(
        !build.integrations["salesforce"].workflows.values().any(|w| w.source.contains('~')),
        "drafts are skipped"
    );
}

#[test]
fn builds_are_deterministic_and_hash_their_content() {
    let (_, first) = check(&taskflow());
    let (_, second) = check(&taskflow());
    let first = first.build.unwrap().to_json_pretty();
    assert_eq!(
        first,
        second.build.unwrap().to_json_pretty(),
        "identical sources give identical bytes"
    );

    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&taskflow(), tmp.path());
    let config = tmp.path().join("src/integrations/slack/config.ts");
    let text =
        std::fs::read_to_string(&config).unwrap().replace("Daily digests", "Daily summaries");
    std::fs::write(&config, text).unwrap();
    let (_, changed) = check(tmp.path());
    let changed = changed.build.unwrap();
    let hash_of =
        |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap()["buildHash"].clone();
    assert_ne!(hash_of(&first), serde_json::Value::String(changed.build_hash.clone()));
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let mut perms = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap();
        }
    }
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let mut dirs = fixture_dirs("broken");
    dirs.extend(fixture_dirs("ok"));
    dirs.push(("taskflow".into(), taskflow()));
    for (name, dir) in dirs {
        let project = load(&dir);
        let run = |threads| {
            let output = compile(&project, &Options { threads, ..options() });
            (
                output.build.map(|b| b.to_json_pretty()),
                rendered(&project, &Output { build: None, ..output }),
            )
        };
        let one = run(1);
        for threads in [2, 3] {
            assert_eq!(one, run(threads), "{name}: {threads} threads differ from one");
        }
    }
}
