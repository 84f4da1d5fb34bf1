//! `para install`: TypeScript declarations for `@useparagon/*` into the project's `node_modules/`,
//! generated from para's DSL and catalog, so editors autocomplete and `tsc` checks the project.
//! No network. Also `typecheck`, the `--typecheck` part of `para build`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::InstallArgs;
use crate::{commands, output};

/// The package folders `para install` owns under `node_modules/`.
const OWNED: &[&str] = &["@useparagon/core", "@useparagon/integrations", "@useparagon/types"];

pub fn run(args: InstallArgs) -> i32 {
    let root = match commands::project_root(args.project.project.as_deref()) {
        Ok(root) => root,
        Err(code) => return code,
    };
    match install(&root) {
        Ok(report) => {
            output::say(format!(
                "installed types for @useparagon/core and {} integration(s) ({}) into node_modules/ ({} files)",
                report.integrations.len(),
                report.integrations.join(", "),
                report.files
            ));
            if report.wrote_tsconfig {
                output::say("  created tsconfig.json");
            }
            if report.excluded_drafts {
                output::say(format!(
                    "  updated tsconfig.json: \"exclude\" gained \"{DRAFTS}\" (drafts are not built, so tsc skips them too)"
                ));
            }
            output::say(
                "next: open the project in your editor, or check it with `para build --typecheck`",
            );
            commands::SUCCESS
        }
        Err(e) => {
            output::error(
                format!("could not write the declarations: {e}"),
                Some("check that the project folder and its node_modules/ are writable"),
            );
            commands::FINDINGS
        }
    }
}

pub struct Installed {
    pub integrations: Vec<String>,
    pub files: usize,
    pub wrote_tsconfig: bool,
    /// An existing tsconfig.json gained `"exclude": ["src/**/~*"]`.
    pub excluded_drafts: bool,
}

/// Integration folder names under `src/integrations/`, sorted (drafts and dot-folders skipped).
pub fn integration_folders(root: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(root.join("src/integrations"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('~') && !name.starts_with('.'))
        .collect();
    keys.sort();
    keys
}

pub fn install(root: &Path) -> std::io::Result<Installed> {
    let integrations = integration_folders(root);
    let files = para_types::declarations(&integrations);
    let modules = root.join("node_modules");
    // Declarations of integrations removed from the project must not linger: the owned folders
    // are written whole into a fresh staging folder, then swapped in.
    let staging = modules.join(format!(".para-install-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    for (rel, text) in &files {
        let path = staging.join(rel);
        std::fs::create_dir_all(path.parent().expect("declaration paths have a folder"))?;
        std::fs::write(path, text)?;
    }
    std::fs::create_dir_all(modules.join("@useparagon"))?;
    for owned in OWNED {
        let target = modules.join(owned);
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        let staged = staging.join(owned);
        if staged.exists() {
            std::fs::rename(staged, target)?;
        }
    }
    std::fs::remove_dir_all(&staging)?;
    let tsconfig = root.join("tsconfig.json");
    let wrote_tsconfig = !tsconfig.exists();
    let mut excluded_drafts = false;
    if wrote_tsconfig {
        std::fs::write(&tsconfig, para_project::scaffold::TSCONFIG)?;
    } else if let Some(text) =
        std::fs::read_to_string(&tsconfig).ok().and_then(|t| exclude_drafts(&t))
    {
        std::fs::write(&tsconfig, text)?;
        excluded_drafts = true;
    }
    Ok(Installed { integrations, files: files.len(), wrote_tsconfig, excluded_drafts })
}

/// The glob that keeps drafts (`~name.ts`, never built) away from tsc.
const DRAFTS: &str = "src/**/~*";

/// `tsconfig.json` with drafts added to `exclude`, or `None` when they are excluded already or
/// the file is not plain JSON (JSON with comments is left for the user to edit).
fn exclude_drafts(text: &str) -> Option<String> {
    let mut config: serde_json::Value = serde_json::from_str(text).ok()?;
    let object = config.as_object_mut()?;
    let exclude = object.entry("exclude").or_insert_with(|| serde_json::json!([]));
    let list = exclude.as_array_mut()?;
    if list.iter().any(|v| v.as_str().is_some_and(|s| s.contains('~'))) {
        return None;
    }
    list.push(DRAFTS.into());
    let mut out = serde_json::to_string_pretty(&config).ok()?;
    out.push('\n');
    Some(out)
}

/// Where `tsc` is: the project's own, `PARA_TSC`, or one on `PATH`.
fn find_tsc(root: &Path) -> Option<PathBuf> {
    let local = root.join("node_modules/.bin/tsc");
    if local.is_file() {
        return Some(local);
    }
    let env = crate::config::env();
    if let Some(path) = env.tsc() {
        return Some(path);
    }
    env.path().and_then(|paths| {
        std::env::split_paths(paths).map(|dir| dir.join("tsc")).find(|p| p.is_file())
    })
}

/// Runs `tsc --noEmit -p <root>`; `Err(exit code)` when it cannot run or finds errors.
pub fn typecheck(root: &Path) -> Result<(), i32> {
    let Some(tsc) = find_tsc(root) else {
        output::error(
            "--typecheck needs TypeScript, and none was found",
            Some(
                "install it in the project: npm install --save-dev typescript (or set PARA_TSC to a tsc binary)",
            ),
        );
        return Err(commands::USAGE);
    };
    if !root.join("node_modules/@useparagon/core/package.json").is_file() {
        output::say("types for @useparagon/* are not installed; running `para install` first");
        if let Err(e) = install(root) {
            output::error(format!("could not write the declarations: {e}"), None);
            return Err(commands::FINDINGS);
        }
    }
    let result = Command::new(&tsc).arg("--noEmit").arg("-p").arg(root).current_dir(root).output();
    match result {
        Ok(out) if out.status.success() => {
            output::say("typecheck: no TypeScript errors");
            Ok(())
        }
        Ok(out) => {
            // tsc reports on stdout; keep our stdout for data (`--out -`).
            eprint!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            output::error(
                "TypeScript found errors (above)",
                Some(
                    "fix them, or build without --typecheck; `para install` refreshes the @useparagon types after adding integrations",
                ),
            );
            Err(commands::FINDINGS)
        }
        Err(e) => {
            output::error(format!("could not run {}: {e}", tsc.display()), None);
            Err(commands::USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_are_excluded_once_and_other_settings_kept() {
        let text = "{\n  \"compilerOptions\": { \"strict\": true },\n  \"include\": [\"src\"]\n}\n";
        let once = exclude_drafts(text).unwrap();
        assert!(once.contains("\"exclude\": [\n    \"src/**/~*\"\n  ]"), "{once}");
        assert!(once.find("compilerOptions") < once.find("exclude"), "key order kept");
        assert!(exclude_drafts(&once).is_none());
        assert!(exclude_drafts("{ // comment\n}").is_none());
        assert!(exclude_drafts(para_project::scaffold::TSCONFIG).is_none());
    }
}
