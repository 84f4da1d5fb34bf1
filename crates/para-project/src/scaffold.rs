//! `para init`: lays out a new project the way real ones look.

use std::path::{Path, PathBuf};

use crate::ProjectError;

/// What `init` did, for the CLI to report.
#[derive(Debug, Default)]
pub struct InitReport {
    pub project_id: String,
    pub project_name: String,
    pub written: Vec<PathBuf>,
    /// Files that already existed and were left untouched (only with `force`).
    pub kept: Vec<PathBuf>,
}

/// The tsconfig.json of new projects (and of `para install` when a project has none): type-checks
/// `src/` without emitting (para compiles; tsc only checks), drafts (`~name.ts`) excluded like
/// `para build` skips them.
pub const TSCONFIG: &str = r#"{
  "compilerOptions": {
    "target": "ES2022",
    "lib": ["ES2022"],
    "module": "preserve",
    "moduleResolution": "bundler",
    "strict": true,
    "noEmit": true,
    "allowImportingTsExtensions": true,
    "skipLibCheck": false,
    "types": [],
    "forceConsistentCasingInFileNames": true
  },
  "include": ["src"],
  "exclude": ["src/**/~*", "node_modules", "out"]
}
"#;

const GITIGNORE: &str = "out/\ndist/\nnode_modules/\n";

const PERSONA_META: &str = "\
// Example of the metadata your app attaches to each connected user (`connectUser.meta`).
// Workflows and permissions are type-checked against its shape.
export default {};
";

fn package_json(name: &str) -> String {
    let package_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let value = serde_json::json!({
        "name": if package_name.is_empty() { "paragraph-project".to_string() } else { package_name },
        "version": "0.0.0",
        "private": true,
        "scripts": { "build": "para build" },
    });
    let mut text = serde_json::to_string_pretty(&value).expect("static JSON serialises");
    text.push('\n');
    text
}

fn project_json(id: &str, name: &str) -> String {
    let value = serde_json::json!({ "projectId": id, "projectName": name, "profile": "default" });
    let mut text = serde_json::to_string_pretty(&value).expect("static JSON serialises");
    text.push('\n');
    text
}

fn is_empty_dir(dir: &Path) -> Result<bool, ProjectError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(ProjectError::Io { path: dir.to_path_buf(), source }),
    }
}

/// Creates a project in `dir`. Refuses a non-empty folder unless `force`; even then it never
/// overwrites a file that exists (a project's id must survive).
pub fn init(dir: &Path, name: Option<&str>, force: bool) -> Result<InitReport, ProjectError> {
    if !force && !is_empty_dir(dir)? {
        return Err(ProjectError::NotEmpty { dir: dir.to_path_buf() });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ProjectError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let canonical = std::fs::canonicalize(dir).map_err(io(dir))?;
    let project_name = name.map(str::to_string).unwrap_or_else(|| {
        canonical
            .file_name()
            .map_or("paragraph-project".into(), |n| n.to_string_lossy().into_owned())
    });
    let project_id = uuid::Uuid::new_v4().to_string();
    let files: Vec<(PathBuf, String)> = vec![
        (PathBuf::from(".para/project.json"), project_json(&project_id, &project_name)),
        (PathBuf::from("package.json"), package_json(&project_name)),
        (PathBuf::from("tsconfig.json"), TSCONFIG.to_string()),
        (PathBuf::from(".gitignore"), GITIGNORE.to_string()),
        (PathBuf::from("src/persona.meta.ts"), PERSONA_META.to_string()),
        (PathBuf::from("src/integrations/.gitkeep"), String::new()),
    ];
    let mut report = InitReport { project_id, project_name, ..InitReport::default() };
    for (rel, text) in files {
        let path = dir.join(&rel);
        if path.exists() {
            report.kept.push(rel);
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        report.written.push(rel);
    }
    // The id that counts is the one on disk (kept if the project existed).
    if report.kept.iter().any(|p| p == Path::new(".para/project.json")) {
        let meta_path = dir.join(".para/project.json");
        let text = std::fs::read_to_string(&meta_path).map_err(io(&meta_path))?;
        if let Ok(meta) = serde_json::from_str::<crate::ProjectMeta>(&text) {
            report.project_id = meta.project_id.unwrap_or_default();
            report.project_name = meta.project_name.unwrap_or(report.project_name);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_refuses_non_empty_and_never_overwrites_with_force() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("proj");
        let first = init(&dir, None, false).unwrap();
        assert_eq!(first.project_name, "proj");
        assert!(dir.join("src/integrations").is_dir());
        assert!(matches!(init(&dir, None, false), Err(ProjectError::NotEmpty { .. })));
        let again = init(&dir, None, true).unwrap();
        assert!(again.written.is_empty());
        assert_eq!(again.project_id, first.project_id, "the project id must survive --force");
    }
}
