//! Finding a project's root folder and reading its sources.
//!
//! The root is marked by `.para/project.json` (what real projects carry) or `paragon.json` (what
//! the format's docs name). A folder with `src/integrations/` and neither marker is still a
//! project, so that a bare checkout builds; the caller is told the marker is missing.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ProjectError;

/// Which marker identified the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `.para/project.json`
    ParaProjectJson,
    /// `paragon.json`
    ParagonJson,
    /// Neither marker; recognised by its `src/integrations/` folder.
    None,
}

/// What `.para/project.json` (or `paragon.json`) says about the project. Every field is optional
/// on input: older projects and hand-made ones omit some.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMeta {
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub profile: Option<String>,
}

/// One TypeScript file under `src/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative to the project root, `/`-separated: `src/integrations/slack/config.ts`.
    pub path: String,
    pub text: String,
}

/// A loaded project: its root, metadata and every buildable source file, sorted by path.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub marker: Marker,
    pub meta: ProjectMeta,
    pub files: Vec<SourceFile>,
    /// Drafts under `src/` (`~name.ts`), skipped by the build; kept to explain imports of them.
    pub drafts: Vec<String>,
    /// Every folder under `src/` (relative, sorted), so empty integration folders are seen too.
    pub folders: Vec<String>,
}

impl Project {
    pub fn file(&self, path: &str) -> Option<&SourceFile> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }
}

impl crate::SourceLookup for Project {
    fn source_text(&self, file: &str) -> Option<&str> {
        self.file(file).map(|f| f.text.as_str())
    }
}

fn marker_at(dir: &Path) -> Option<Marker> {
    if dir.join(".para").join("project.json").is_file() {
        Some(Marker::ParaProjectJson)
    } else if dir.join("paragon.json").is_file() {
        Some(Marker::ParagonJson)
    } else {
        None
    }
}

fn looks_like_project(dir: &Path) -> bool {
    dir.join("src").join("integrations").is_dir()
}

/// Finds the project root at or above `start`: the nearest folder with a marker, or failing that
/// the nearest folder with `src/integrations/`.
pub fn find_root(start: &Path) -> Result<(PathBuf, Marker), ProjectError> {
    let start = std::fs::canonicalize(start)
        .map_err(|source| ProjectError::Io { path: start.to_path_buf(), source })?;
    if let Some((dir, marker)) =
        start.ancestors().find_map(|dir| marker_at(dir).map(|m| (dir.to_path_buf(), m)))
    {
        return Ok((dir, marker));
    }
    match start.ancestors().find(|dir| looks_like_project(dir)) {
        Some(dir) => Ok((dir.to_path_buf(), Marker::None)),
        None => Err(ProjectError::NotFound { start }),
    }
}

/// Uses `dir` itself as the root (for `--project DIR`): it must carry a marker or `src/integrations/`.
pub fn root_at(dir: &Path) -> Result<(PathBuf, Marker), ProjectError> {
    let dir = std::fs::canonicalize(dir)
        .map_err(|source| ProjectError::Io { path: dir.to_path_buf(), source })?;
    match marker_at(&dir) {
        Some(marker) => Ok((dir, marker)),
        None if looks_like_project(&dir) => Ok((dir, Marker::None)),
        None => Err(ProjectError::NotAProject { dir }),
    }
}

fn read_meta(root: &Path, marker: Marker) -> Result<ProjectMeta, ProjectError> {
    let path = match marker {
        Marker::ParaProjectJson => root.join(".para").join("project.json"),
        Marker::ParagonJson => root.join("paragon.json"),
        Marker::None => return Ok(ProjectMeta::default()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|source| ProjectError::Io { path: path.clone(), source })?;
    if text.trim().is_empty() {
        return Ok(ProjectMeta::default());
    }
    serde_json::from_str(&text)
        .map_err(|e| ProjectError::InvalidMeta { path, message: e.to_string() })
}

/// Is this file (by its name) part of the build? Drafts (`~name.ts`) and declaration files are not.
pub fn is_buildable_file(name: &str) -> bool {
    !name.starts_with('~')
        && !name.starts_with('.')
        && (name.ends_with(".ts") || name.ends_with(".tsx"))
        && !name.ends_with(".d.ts")
}

fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('~') || name.starts_with('.') || name == "node_modules"
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<SourceFile>,
    drafts: &mut Vec<String>,
    folders: &mut Vec<String>,
) -> Result<(), ProjectError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|source| ProjectError::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| ProjectError::Io { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type =
            entry.file_type().map_err(|source| ProjectError::Io { path: path.clone(), source })?;
        if file_type.is_dir() {
            if !is_skipped_dir(&name) {
                folders.push(relative(root, &path));
                collect(root, &path, out, drafts, folders)?;
            }
        } else if is_buildable_file(&name) {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ProjectError::Io { path: path.clone(), source })?;
            out.push(SourceFile { path: relative(root, &path), text });
        } else if name.starts_with('~') {
            drafts.push(relative(root, &path));
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Reads the project at `root`: its metadata and every buildable `.ts` file under `src/`.
pub fn load(root: &Path, marker: Marker) -> Result<Project, ProjectError> {
    let meta = read_meta(root, marker)?;
    let src = root.join("src");
    let mut files = Vec::new();
    let mut drafts = Vec::new();
    let mut folders = Vec::new();
    if src.is_dir() {
        collect(root, &src, &mut files, &mut drafts, &mut folders)?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    drafts.sort();
    folders.sort();
    Ok(Project { root: root.to_path_buf(), marker, meta, files, drafts, folders })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_and_declarations_are_not_built() {
        assert!(is_buildable_file("config.ts"));
        assert!(is_buildable_file("import contacts.ts"));
        assert!(!is_buildable_file("~wip.ts"));
        assert!(!is_buildable_file("types.d.ts"));
        assert!(!is_buildable_file("README.md"));
    }

    #[test]
    fn root_is_found_from_a_subfolder_and_marker_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("src/integrations/slack/workflows")).unwrap();
        std::fs::create_dir_all(root.join(".para")).unwrap();
        std::fs::write(root.join(".para/project.json"), r#"{"projectId":"p1"}"#).unwrap();
        let (found, marker) = find_root(&root.join("src/integrations/slack/workflows")).unwrap();
        assert_eq!(found, std::fs::canonicalize(root).unwrap());
        assert_eq!(marker, Marker::ParaProjectJson);
        let project = load(&found, marker).unwrap();
        assert_eq!(project.meta.project_id.as_deref(), Some("p1"));
    }

    #[test]
    fn paragon_json_marks_a_root_too() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("src/lib")).unwrap();
        std::fs::write(tmp.path().join("paragon.json"), "").unwrap();
        let (root, marker) = find_root(&tmp.path().join("src/lib")).unwrap();
        assert_eq!(marker, Marker::ParagonJson);
        assert_eq!(load(&root, marker).unwrap().meta, ProjectMeta::default());
    }

    #[test]
    fn folder_without_marker_is_a_project_when_it_has_integrations() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("src/integrations")).unwrap();
        let (_, marker) = find_root(&tmp.path().join("src")).unwrap();
        assert_eq!(marker, Marker::None);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(root_at(empty.path()), Err(ProjectError::NotAProject { .. })));
    }
}
