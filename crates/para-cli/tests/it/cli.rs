//! The `para` binary, run as a user would: exit codes, files written, messages on stderr.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{copy_dir, para, para_command};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

#[test]
fn init_then_build_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let out = para(tmp.path(), &["init", "x"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let project = tmp.path().join("x");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join(".para/project.json")).unwrap())
            .unwrap();
    assert!(uuid::Uuid::parse_str(meta["projectId"].as_str().unwrap()).is_ok());
    assert_eq!(meta["projectName"], "x");
    assert_eq!(meta["profile"], "default");
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
            .unwrap();
    assert_eq!(package["scripts"]["build"], "para build");
    let gitignore = std::fs::read_to_string(project.join(".gitignore")).unwrap();
    for line in ["out/", "dist/", "node_modules/"] {
        assert!(gitignore.lines().any(|l| l == line), "{line} ignored");
    }
    assert!(
        project.join("src/persona.meta.ts").is_file() && project.join("tsconfig.json").is_file()
    );

    let out = para(&project, &["build"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let build: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("out/build.json")).unwrap())
            .unwrap();
    assert_eq!(build["formatVersion"], 1);
    assert_eq!(build["project"]["projectId"], meta["projectId"]);

    let again = para(tmp.path(), &["init", "x"]);
    assert_eq!(again.status.code(), Some(2), "a non-empty folder is refused");
    assert!(stderr(&again).contains("hint: "), "{}", stderr(&again));
}

#[test]
fn build_finds_the_root_from_a_subfolder() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("examples/taskflow"), tmp.path());
    let out = para(&tmp.path().join("src/integrations/slack/workflows"), &["build"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(tmp.path().join("out/build.json").is_file());
    assert!(stderr(&out).contains("3 integrations, 5 workflows, 1 event"), "{}", stderr(&out));
}

#[test]
fn build_without_marker_warns_and_builds() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("examples/taskflow"), tmp.path());
    std::fs::remove_dir_all(tmp.path().join(".para")).unwrap();
    let out = para(tmp.path(), &["build"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no .para/project.json (or paragon.json)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn findings_exit_1_and_keep_the_previous_build() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_path("crates/para-compiler/tests/fixtures/broken/duplicate-input-id"),
        tmp.path(),
    );
    std::fs::create_dir_all(tmp.path().join("out")).unwrap();
    std::fs::write(tmp.path().join("out/build.json"), "previous").unwrap();
    let out = para(tmp.path(), &["build"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error[duplicate-input-id]")
            && err.contains("src/integrations/slack/inputs.ts:10:5"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(tmp.path().join("out/build.json")).unwrap(), "previous");
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = para(tmp.path(), &["build"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no Paragraph project found"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    assert_eq!(para(tmp.path(), &["build", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(para(tmp.path(), &["frobnicate"]).status.code(), Some(2));
}

#[test]
fn build_to_stdout_prints_only_the_document() {
    let taskflow = repo_path("examples/taskflow");
    let out =
        para(Path::new("/"), &["build", "--project", taskflow.to_str().unwrap(), "--out", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let build: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON document");
    assert!(build["buildHash"].as_str().unwrap().starts_with("sha256:"));
}

#[cfg(unix)]
#[test]
fn out_through_a_symlink_writes_the_target_and_keeps_the_link() {
    // The same rule keeps `--out /dev/null` from replacing the device with a file.
    let tmp = tempfile::tempdir().unwrap();
    let taskflow = repo_path("examples/taskflow");
    let target = tmp.path().join("real.json");
    std::fs::write(&target, "old").unwrap();
    let link = tmp.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = para(
        tmp.path(),
        &["build", "--project", taskflow.to_str().unwrap(), "--out", link.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link survives"
    );
    assert!(std::fs::read_to_string(&target).unwrap().contains("\"formatVersion\": 1"));
}

#[test]
fn init_writes_keys_and_token_verifies_with_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = para(tmp.path(), &["init", "k"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let project = tmp.path().join("k");
    let private = project.join(".para/keys/private.pem");
    assert!(private.is_file() && project.join(".para/keys/public.pem").is_file());
    assert!(project.join(".para/secret.key").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key must be owner-only");
    }
    let gitignore = std::fs::read_to_string(project.join(".gitignore")).unwrap();
    assert!(gitignore.contains("private.pem") && gitignore.contains("secret.key"), "{gitignore}");

    // `para keys` on a project that has them keeps them.
    let before = std::fs::read(&private).unwrap();
    let out = para(&project, &["keys"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&private).unwrap(), before);

    let out = para(&project, &["token", "--user", "ada", "--meta", r#"{"plan":"pro"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    let verifier = para_auth::tokens::Verifier::for_project(&project, None).unwrap();
    let claims = verifier.verify(token.trim()).unwrap();
    assert_eq!(claims.user_id, "ada");
    assert_eq!(claims.meta.unwrap()["plan"], "pro");

    // A token from another project's key does not verify here.
    let other = para(tmp.path(), &["init", "other"]);
    assert_eq!(other.status.code(), Some(0));
    let out = para(&tmp.path().join("other"), &["token", "--user", "ada"]);
    let foreign = String::from_utf8(out.stdout).unwrap();
    assert!(verifier.verify(foreign.trim()).is_err());

    let out = para(&project, &["token", "--user", "ada", "--ttl", "10 years"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
    let out = para(&project, &["token", "--user", "ada", "--meta", "[1]"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn secrets_are_stored_sealed_listed_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("examples/taskflow"), tmp.path());
    assert!(para(tmp.path(), &["init", "--force", "."]).status.success());
    assert!(para(tmp.path(), &["build", "--quiet"]).status.success());
    let list = para(tmp.path(), &["secrets", "list"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(text.contains("TASKFLOW_API_KEY  MISSING: used by the build, not set"), "{text}");
    // Only PARA_SECRET_<NAME> gives a secret from the environment, never a bare <NAME>.
    let listed = |var: &str| {
        let out = para_command()
            .args(["secrets", "list"])
            .current_dir(tmp.path())
            .env(var, "from-env")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let bare = listed("TASKFLOW_API_KEY");
    assert!(bare.contains("TASKFLOW_API_KEY  MISSING"), "{bare}");
    let prefixed = listed("PARA_SECRET_TASKFLOW_API_KEY");
    assert!(prefixed.contains("TASKFLOW_API_KEY  (from the environment)"), "{prefixed}");

    // From stdin, so the value stays out of the shell's history.
    let mut child = para_command()
        .args(["secrets", "set", "TASKFLOW_API_KEY"])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"tf-0123456789\n").unwrap();
    assert!(child.wait().unwrap().success());
    let stored = std::fs::read_to_string(tmp.path().join(".para/secrets.json")).unwrap();
    assert!(stored.contains("TASKFLOW_API_KEY") && !stored.contains("tf-0123456789"), "{stored}");
    let list = para(tmp.path(), &["secrets", "list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "TASKFLOW_API_KEY");

    let bad = para(tmp.path(), &["secrets", "set", "NOT-A-NAME", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("`NOT-A-NAME` is not a secret name"), "{}", stderr(&bad));
    assert!(para(tmp.path(), &["secrets", "rm", "TASKFLOW_API_KEY"]).status.success());
    let gone = para(tmp.path(), &["secrets", "rm", "TASKFLOW_API_KEY"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("no secret TASKFLOW_API_KEY is stored"));
}
