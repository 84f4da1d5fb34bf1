//! The project's environment secrets (`context.getEnvironmentSecret('NAME')` in workflows),
//! as `para secrets set` stores them: `.para/secrets.json`, an object of name → value sealed
//! with the project's secret key (see [`crate::secrets`]), each bound to its name, the file
//! mode 0600 and git-ignored. The server reads the file when it changes; an environment
//! variable `PARA_SECRET_<NAME>` wins over the file ([`EnvSecrets`], taken from the
//! environment once, by the binary). A bare `<NAME>` variable is never read: a secret named
//! `PATH` must not be the server's `PATH`; nor is `PARA_SECRET_KEY`, the project's secret key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files;
use crate::secrets::{SecretError, SecretKey};

/// The file, relative to the project root.
pub const ENV_SECRETS_FILE: &str = ".para/secrets.json";

#[derive(Debug, thiserror::Error)]
pub enum EnvSecretError {
    #[error(
        "`{0}` is not a secret name: use letters, digits and `_`, not starting with a digit (like TASKFLOW_API_KEY)"
    )]
    BadName(String),
    #[error("could not {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} is not a secrets file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the secret `{name}` in {}: {source}", path.display())]
    Sealed { name: String, path: PathBuf, source: SecretError },
}

/// The secrets the environment gives, by name: each `PARA_SECRET_<NAME>` variable but
/// `PARA_SECRET_KEY` (the key secrets are sealed with, never a workflow's secret). Values are
/// kept out of `Debug`.
#[derive(Clone, Default)]
pub struct EnvSecrets(BTreeMap<String, String>);

impl EnvSecrets {
    /// The prefix of the variables read.
    pub const PREFIX: &str = "PARA_SECRET_";

    /// The secrets among `vars` (the whole environment may be passed: other variables are
    /// ignored).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> EnvSecrets {
        EnvSecrets(
            vars.into_iter()
                .filter_map(|(var, value)| {
                    let name = var.strip_prefix(Self::PREFIX)?;
                    (var != crate::secrets::SECRET_KEY_ENV && valid_name(name))
                        .then(|| (name.to_string(), value))
                })
                .collect(),
        )
    }

    /// The value of secret `name` (`PARA_SECRET_<NAME>`), if the environment gives one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl std::fmt::Debug for EnvSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Whether `name` can name a secret (and an environment variable).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn aad(name: &str) -> Vec<u8> {
    format!("env-secret/{name}").into_bytes()
}

fn read_sealed(root: &Path) -> Result<BTreeMap<String, String>, EnvSecretError> {
    let path = root.join(ENV_SECRETS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(EnvSecretError::Io { action: "read", path, source }),
    };
    serde_json::from_str(&text).map_err(|e| EnvSecretError::Corrupt { path, reason: e.to_string() })
}

fn write_sealed(root: &Path, sealed: &BTreeMap<String, String>) -> Result<(), EnvSecretError> {
    let path = root.join(ENV_SECRETS_FILE);
    let text = serde_json::to_string_pretty(sealed).expect("a map of strings serialises") + "\n";
    files::write_private(&path, text.as_bytes()).map_err(|source| EnvSecretError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    files::ensure_gitignored(root, &[ENV_SECRETS_FILE]).map_err(|source| EnvSecretError::Io {
        action: "update",
        path: root.join(".gitignore"),
        source,
    })?;
    Ok(())
}

/// The names stored, sorted.
pub fn names(root: &Path) -> Result<Vec<String>, EnvSecretError> {
    Ok(read_sealed(root)?.into_keys().collect())
}

/// Every stored secret, opened.
pub fn load(root: &Path, key: &SecretKey) -> Result<BTreeMap<String, String>, EnvSecretError> {
    let path = root.join(ENV_SECRETS_FILE);
    read_sealed(root)?
        .into_iter()
        .map(|(name, sealed)| {
            let bytes = key.open(&sealed, &aad(&name)).map_err(|source| {
                EnvSecretError::Sealed { name: name.clone(), path: path.clone(), source }
            })?;
            let value = String::from_utf8(bytes).map_err(|_| EnvSecretError::Corrupt {
                path: path.clone(),
                reason: format!("`{name}` is not text"),
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Stores (or replaces) a secret.
pub fn set(root: &Path, key: &SecretKey, name: &str, value: &str) -> Result<(), EnvSecretError> {
    if !valid_name(name) {
        return Err(EnvSecretError::BadName(name.to_string()));
    }
    let mut sealed = read_sealed(root)?;
    sealed.insert(name.to_string(), key.seal(value.as_bytes(), &aad(name)));
    write_sealed(root, &sealed)
}

/// Removes a secret; false if there was none of that name.
pub fn remove(root: &Path, name: &str) -> Result<bool, EnvSecretError> {
    let mut sealed = read_sealed(root)?;
    if sealed.remove(name).is_none() {
        return Ok(false);
    }
    write_sealed(root, &sealed)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_gives_prefixed_secrets_only() {
        let vars = [
            ("PARA_SECRET_TASKFLOW", "tf-1"),
            ("PARA_SECRET_KEY", "the sealing key"),
            ("PATH", "/bin"),
            ("PARA_SECRET_BAD-NAME", "x"),
        ];
        let env = EnvSecrets::from_vars(vars.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(env.get("TASKFLOW"), Some("tf-1"));
        assert_eq!(env.get("KEY"), None, "the secret key is no workflow secret");
        assert_eq!(env.get("PATH"), None);
        assert_eq!(format!("{env:?}"), r#"{"TASKFLOW"}"#, "values stay out of Debug");
    }

    #[test]
    fn secrets_are_sealed_per_name_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_bytes(&[7; 32]);
        set(dir.path(), &key, "TASKFLOW_API_KEY", "tf-123456").unwrap();
        set(dir.path(), &key, "OTHER", "x").unwrap();
        let text = std::fs::read_to_string(dir.path().join(ENV_SECRETS_FILE)).unwrap();
        assert!(!text.contains("tf-123456"), "sealed at rest");
        assert_eq!(names(dir.path()).unwrap(), ["OTHER", "TASKFLOW_API_KEY"]);
        let all = load(dir.path(), &key).unwrap();
        assert_eq!(all["TASKFLOW_API_KEY"], "tf-123456");
        let gitignore = std::fs::read_to_string(dir.path().join(".gitignore")).unwrap();
        assert!(gitignore.contains(ENV_SECRETS_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                std::fs::metadata(dir.path().join(ENV_SECRETS_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // A value moved to another name does not open; another key does not open it.
        let mut sealed = read_sealed(dir.path()).unwrap();
        let moved = sealed["OTHER"].clone();
        sealed.insert("TASKFLOW_API_KEY".into(), moved);
        write_sealed(dir.path(), &sealed).unwrap();
        assert!(matches!(load(dir.path(), &key), Err(EnvSecretError::Sealed { .. })));
        assert!(remove(dir.path(), "TASKFLOW_API_KEY").unwrap());
        assert!(!remove(dir.path(), "TASKFLOW_API_KEY").unwrap());
        let other = SecretKey::from_bytes(&[8; 32]);
        assert!(load(dir.path(), &other).is_err());

        assert!(matches!(set(dir.path(), &key, "1BAD", "v"), Err(EnvSecretError::BadName(_))));
        assert!(matches!(set(dir.path(), &key, "A-B", "v"), Err(EnvSecretError::BadName(_))));
    }
}
