//! File helpers shared by the key modules: writing a secret file without ever replacing one,
//! and adding lines to the project's `.gitignore`.

use std::io::Write as _;
use std::path::Path;

/// Writes `contents` to `path` only if nothing is there: the text goes to a temporary file
/// (mode 0600 on Unix) that is then hard-linked into place, so a crash never leaves a
/// half-written key behind and an existing file is never replaced. `Ok(false)` when `path`
/// already existed.
pub(crate) fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let tmp = write_private_tmp(path, contents);
    let linked = tmp.as_ref().map_err(clone_error).and_then(|tmp| std::fs::hard_link(tmp, path));
    if let Ok(tmp) = &tmp {
        let _ = std::fs::remove_file(tmp);
    }
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `contents` to `path`, replacing it atomically (a temporary file, mode 0600 on Unix,
/// renamed into place).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = write_private_tmp(path, contents)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn clone_error(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

/// A synced temporary file with `contents` next to `path` (its folder created private).
fn write_private_tmp(path: &Path, contents: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let dir = path.parent().expect("key paths have a folder");
    create_private_dir(dir)?;
    let name = path.file_name().expect("key paths have a name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes a public (non-secret) file if nothing is there. `Ok(false)` when it existed.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let dir = path.parent().expect("key paths have a folder");
    std::fs::create_dir_all(dir)?;
    match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut file) => {
            file.write_all(contents)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates a folder (and its parents); on Unix a folder this call creates is mode 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Appends each entry to `<root>/.gitignore` unless a line already names it (with or
/// without a leading `/`). Creates the file if missing. `Ok(true)` when it changed.
pub(crate) fn ensure_gitignored(root: &Path, entries: &[&str]) -> std::io::Result<bool> {
    let path = root.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let present = |entry: &str| {
        text.lines().map(str::trim).any(|line| line.strip_prefix('/').unwrap_or(line) == entry)
    };
    let missing: Vec<&str> = entries.iter().copied().filter(|e| !present(e)).collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let mut out = text.clone();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for entry in missing {
        out.push_str(entry);
        out.push('\n');
    }
    std::fs::write(&path, out)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_gains_missing_lines_once() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".gitignore"), "out/\n/.para/secret.key").unwrap();
        assert!(
            ensure_gitignored(tmp.path(), &[".para/keys/private.pem", ".para/secret.key"]).unwrap()
        );
        let text = std::fs::read_to_string(tmp.path().join(".gitignore")).unwrap();
        assert_eq!(text, "out/\n/.para/secret.key\n.para/keys/private.pem\n");
        assert!(!ensure_gitignored(tmp.path(), &[".para/keys/private.pem"]).unwrap());
    }

    #[test]
    fn private_files_are_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/secret");
        assert!(write_new_private(&path, b"one").unwrap());
        assert!(!write_new_private(&path, b"two").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = std::fs::read_dir(tmp.path().join("a/b")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");
    }
}
