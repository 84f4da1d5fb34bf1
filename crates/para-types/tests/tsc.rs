//! The declarations checked by the real TypeScript compiler: example and fixture projects must
//! type-check, and mistakes must not.
//!
//! tsc comes from `$PARA_TSC` or `<repo>/tools/node_modules/.bin/tsc` (`npm ci --prefix tools`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn tsc() -> PathBuf {
    if let Some(path) = std::env::var_os("PARA_TSC") {
        return PathBuf::from(path);
    }
    let path = repo().join("tools/node_modules/.bin/tsc");
    assert!(
        path.exists(),
        "TypeScript is not installed: run `npm ci --prefix tools` in {} (or set PARA_TSC to a tsc binary)",
        repo().display()
    );
    path
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "node_modules" || name == "out" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Folder names under `src/integrations/`.
fn integration_keys(project: &Path) -> Vec<String> {
    let Ok(dir) = fs::read_dir(project.join("src/integrations")) else { return Vec::new() };
    let mut keys: Vec<String> = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    keys.sort();
    keys
}

fn write_declarations(project: &Path, keys: &[String]) {
    for (path, text) in para_types::declarations(keys) {
        let target = project.join("node_modules").join(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, text).unwrap();
    }
}

/// Module resolution settings to check under.
#[derive(Clone, Copy, Debug)]
enum Resolution {
    /// `para_project::scaffold::TSCONFIG` (bundler), what `para init` writes.
    Recommended,
    Node16,
    /// `module: commonjs`, what taskflow's own tsconfig uses (node10 resolution).
    CommonJs,
}

fn write_tsconfig(project: &Path, resolution: Resolution) -> PathBuf {
    let path = project.join("tsconfig.para-test.json");
    let text = match resolution {
        Resolution::Recommended => para_project::scaffold::TSCONFIG.to_string(),
        Resolution::Node16 | Resolution::CommonJs => {
            let (module, resolution) = match resolution {
                Resolution::Node16 => ("node16", "node16"),
                _ => ("commonjs", "node10"),
            };
            format!(
                r#"{{
  "compilerOptions": {{
    "target": "ES2022", "lib": ["ES2022"], "module": "{module}", "moduleResolution": "{resolution}",
    "esModuleInterop": true,
    "strict": true, "noEmit": true, "allowImportingTsExtensions": true, "skipLibCheck": false, "types": []
  }},
  "include": ["src"],
  "exclude": ["src/**/~*"]
}}
"#
            )
        }
    };
    fs::write(&path, text).unwrap();
    path
}

/// Runs tsc on the project; (success, output).
fn run_tsc(project: &Path, resolution: Resolution) -> (bool, String) {
    let config = write_tsconfig(project, resolution);
    let output = Command::new(tsc())
        .arg("-p")
        .arg(&config)
        .arg("--pretty")
        .arg("false")
        .current_dir(project)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tsc().display()));
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Copies a project, adds the declarations for its integrations, and requires tsc to pass.
fn check_project(source: &Path, resolution: Resolution) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    copy_dir(source, &project);
    write_declarations(&project, &integration_keys(&project));
    let (ok, output) = run_tsc(&project, resolution);
    assert!(ok, "tsc ({resolution:?}) rejected {}:\n{output}", source.display());
}

#[test]
fn examples_type_check() {
    for example in ["taskflow", "leadsync"] {
        let dir = repo().join("examples").join(example);
        assert!(dir.exists(), "the example project is missing: {}", dir.display());
        for resolution in [Resolution::Recommended, Resolution::Node16, Resolution::CommonJs] {
            check_project(&dir, resolution);
        }
    }
}

#[test]
fn ok_fixtures_type_check() {
    let fixtures = repo().join("crates/para-compiler/tests/fixtures/ok");
    let mut count = 0;
    for entry in fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            check_project(&path, Resolution::Recommended);
            count += 1;
        }
    }
    assert!(count > 0, "no fixtures under {}", fixtures.display());
}

/// Every catalog integration's module is valid TypeScript (`skipLibCheck: false` checks it).
#[test]
fn every_catalog_module_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    let mut keys: Vec<String> = para_catalog::keys().map(String::from).collect();
    keys.push("custom.acme".into());
    keys.push("notInTheCatalog".into());
    write_declarations(project, &keys);
    let mut source = String::new();
    for (i, key) in keys.iter().enumerate() {
        let name = &para_types::interface_names(key)[0];
        source.push_str(&format!(
            "import {{ type {name} as I{i}, type InputResultMap as M{i}, createInputs as c{i} }} from '@useparagon/integrations/{key}';\n\
             import type {{ {name} as T{i} }} from '@useparagon/types/{key}';\n\
             export const inputs{i} = c{i}({{}});\n\
             export type Pair{i} = [I{i}, M{i}, T{i}];\n"
        ));
    }
    fs::create_dir_all(project.join("src")).unwrap();
    fs::write(project.join("src/all.ts"), source).unwrap();
    let (ok, output) = run_tsc(project, Resolution::Recommended);
    assert!(ok, "generated declarations do not compile:\n{output}");
}

/// Mistakes tsc must catch. Each file in `src/` is either `good_*.ts` (no errors allowed) or
/// `bad_*.ts`, where every line marked `// error` must be reported and no other.
#[test]
fn types_catch_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/negative"), project);
    write_declarations(project, &integration_keys(project));
    let (ok, output) = run_tsc(project, Resolution::Recommended);
    assert!(!ok, "tsc accepted every mistake:\n{output}");
    eprintln!("tsc on the mistakes (shown with --nocapture):\n{output}");

    // `src/…/file.ts(line,col): error TS…`
    let mut reported: Vec<(String, usize)> = Vec::new();
    for line in output.lines() {
        let Some((location, _)) = line.split_once("): error ") else { continue };
        let Some((file, position)) = location.rsplit_once('(') else { continue };
        let line_number: usize = position.split(',').next().unwrap().parse().unwrap();
        reported.push((file.replace('\\', "/"), line_number));
    }
    let mut expected: Vec<(String, usize)> = Vec::new();
    let mut files = Vec::new();
    collect_ts(&project.join("src"), &mut files);
    for file in &files {
        let relative = file.strip_prefix(project).unwrap().to_string_lossy().replace('\\', "/");
        for (i, line) in fs::read_to_string(file).unwrap().lines().enumerate() {
            if line.trim_end().ends_with("// error") {
                assert!(relative.contains("/bad_"), "{relative}: only bad_* files mark errors");
                expected.push((relative.clone(), i + 1));
            }
        }
    }
    assert!(expected.len() >= 10, "too few marked mistakes: {expected:?}");
    let missed: Vec<_> = expected.iter().filter(|e| !reported.contains(e)).collect();
    let unexpected: Vec<_> = reported.iter().filter(|r| !expected.contains(r)).collect();
    assert!(
        missed.is_empty() && unexpected.is_empty(),
        "mistakes tsc did not report: {missed:?}\nerrors on unmarked lines: {unexpected:?}\n\ntsc said:\n{output}"
    );
}

fn collect_ts(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_ts(&path, out);
        } else if path.extension().is_some_and(|e| e == "ts") {
            out.push(path);
        }
    }
}
