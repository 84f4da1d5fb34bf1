//! Everything about a Paragraph project as files on disk: finding its root, reading its sources,
//! the naming rules users rely on, creating a new project, and located diagnostics.
//!
//! This crate knows nothing about JavaScript evaluation or the build format; the compiler builds
//! on it, and so does every command that needs to find "the project I am in".

mod diagnostic;
pub mod naming;
mod project;
pub mod scaffold;

use std::path::PathBuf;

pub use diagnostic::{
    Diagnostic, Location, Severity, SourceLookup, Span, from_oxc, line_col, offset_of, render,
};
pub use project::{
    Marker, Project, ProjectMeta, SourceFile, find_root, is_buildable_file, load, root_at,
};

/// Why a project could not be found, read or created.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no Paragraph project found at or above {start}")]
    NotFound { start: PathBuf },
    #[error(
        "{dir} is not a Paragraph project: it has no .para/project.json, paragon.json or src/integrations/"
    )]
    NotAProject { dir: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid project metadata: {message}")]
    InvalidMeta { path: PathBuf, message: String },
    #[error("{dir} is not empty")]
    NotEmpty { dir: PathBuf },
}

impl ProjectError {
    /// What the user can do about it, for the CLI's `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            ProjectError::NotFound { .. } => Some(
                "run `para build` inside a project, pass `--project DIR`, or create one with `para init DIR`"
                    .into(),
            ),
            ProjectError::NotAProject { .. } => {
                Some("create a project there with `para init DIR`".into())
            }
            ProjectError::InvalidMeta { .. } => Some(
                "it should be a JSON object like {\"projectId\": \"…\", \"projectName\": \"…\", \"profile\": \"default\"}"
                    .into(),
            ),
            ProjectError::NotEmpty { .. } => {
                Some("choose an empty folder, or pass `--force` to write into it anyway".into())
            }
            ProjectError::Io { .. } => None,
        }
    }
}
