//! One module per command: argument handling and printing around library calls.

pub mod build;
pub mod completions;
pub mod dev;
pub mod init;
pub mod install;
pub mod keys;
pub mod new;
pub mod releases;
pub mod run;
pub mod runs;
pub mod secrets;
pub mod serve;
pub mod token;

/// Exit codes.
pub const SUCCESS: i32 = 0;
pub const FINDINGS: i32 = 1;
pub const USAGE: i32 = 2;

/// The project root: `--project DIR` as given, else found from the current folder upwards.
/// Prints the error (with its hint) and gives the exit code when there is none.
/// `--database`, else the project's SQLite file (`.para/para.db`).
pub fn database_or_default(root: &std::path::Path, given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{}", root.join(".para/para.db").display()))
}

/// Opens (and migrates) the database; an error is printed with what to pass instead.
pub async fn open_store(url: &str) -> Result<para_store::Store, i32> {
    para_store::Store::open(url).await.map_err(|e| {
        crate::output::error(
            format!("cannot open the database: {e}"),
            Some("pass --database sqlite://path/para.db or postgres://user:pass@host/db"),
        );
        USAGE
    })
}

pub fn project_root(project: Option<&std::path::Path>) -> Result<std::path::PathBuf, i32> {
    let found = match project {
        Some(dir) => para_project::root_at(dir),
        None => std::env::current_dir()
            .map_err(|source| para_project::ProjectError::Io { path: ".".into(), source })
            .and_then(|cwd| para_project::find_root(&cwd)),
    };
    found.map(|(root, _)| root).map_err(|e| {
        crate::output::error(e.to_string(), e.hint().as_deref());
        USAGE
    })
}
