//! The envelope for secrets at rest (OAuth tokens, API keys, client secrets): AES-256-GCM
//! with a random 96-bit nonce per seal, as the text `v1:<base64(nonce ‖ ciphertext ‖ tag)>`.
//! The associated data binds a sealed value to where it is stored (the caller passes e.g.
//! `project/user/credential-id`), so a value copied to another row does not open.
//!
//! The key comes from `PARA_SECRET_KEY` (base64 of 32 bytes) or, for development, from
//! `.para/secret.key` (generated once, mode 0600, git-ignored).

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::files;

/// Environment variable holding the secret key: base64 of 32 random bytes.
pub const SECRET_KEY_ENV: &str = "PARA_SECRET_KEY";
/// The development secret key, relative to the project root.
pub const DEV_SECRET_KEY_FILE: &str = ".para/secret.key";
/// The prefix of the current envelope format.
const V1: &str = "v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{origin} is not a secret key: {reason}")]
    InvalidKey { origin: String, reason: String },
    #[error("not a sealed secret")]
    Malformed,
    #[error("sealed secret has the unknown format `{0}`")]
    UnknownVersion(String),
    #[error(
        "could not decrypt the secret: a different key sealed it, it belongs to another record, or it was altered"
    )]
    Decrypt,
}

impl SecretError {
    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            SecretError::InvalidKey { .. } => Some(format!(
                "{SECRET_KEY_ENV} (or {DEV_SECRET_KEY_FILE}) must be base64 of 32 random bytes, e.g. the output of `head -c 32 /dev/urandom | base64`"
            )),
            SecretError::Decrypt => Some(format!(
                "secrets sealed under another {SECRET_KEY_ENV} cannot be read with this one"
            )),
            _ => None,
        }
    }
}

/// An AES-256 key for sealing secrets. `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// What [`ensure_dev_key_file`] found or wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevSecretKey {
    pub path: PathBuf,
    pub created: bool,
    pub gitignore_updated: bool,
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SecretKey { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)) }
    }

    /// A key from base64 of 32 bytes (surrounding whitespace ignored). `origin` names where
    /// the text came from, for the error.
    pub fn from_base64(origin: &str, text: &str) -> Result<Self, SecretError> {
        let invalid = |reason: &str| SecretError::InvalidKey {
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| invalid("not valid base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| invalid(&format!("{} bytes, 32 are needed", b.len())))?;
        Ok(SecretKey::from_bytes(&bytes))
    }

    /// The key from `env_value` (`PARA_SECRET_KEY`, base64 of 32 bytes) when set and not empty,
    /// else the project's `.para/secret.key`, generated on first use.
    pub fn from_value_or_dev(
        env_value: Option<&str>,
        project_root: &Path,
    ) -> Result<Self, SecretError> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            return SecretKey::from_base64(SECRET_KEY_ENV, value);
        }
        let dev = ensure_dev_key_file(project_root)?;
        let text = std::fs::read_to_string(&dev.path).map_err(|source| SecretError::Io {
            action: "read",
            path: dev.path.clone(),
            source,
        })?;
        SecretKey::from_base64(&dev.path.display().to_string(), &text)
    }

    /// Encrypts `plaintext`, bound to `aad`, as `v1:<base64>`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random number generator works");
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encrypts any plaintext shorter than 64 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{V1}{}", STANDARD.encode(out))
    }

    /// Decrypts what [`SecretKey::seal`] produced with the same key and `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SecretError> {
        let Some(body) = sealed.strip_prefix(V1) else {
            return match sealed.split_once(':') {
                Some((version, _)) if !version.is_empty() && version.len() <= 8 => {
                    Err(SecretError::UnknownVersion(version.to_string()))
                }
                _ => Err(SecretError::Malformed),
            };
        };
        let bytes = STANDARD.decode(body).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| SecretError::Decrypt)
    }
}

/// Makes sure `<project_root>/.para/secret.key` exists (32 random bytes, base64, mode 0600;
/// an existing file is never replaced) and is git-ignored.
pub fn ensure_dev_key_file(project_root: &Path) -> Result<DevSecretKey, SecretError> {
    let path = project_root.join(DEV_SECRET_KEY_FILE);
    let mut created = false;
    if !path.exists() {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SecretError::InvalidKey {
            origin: "the operating system's random number generator".into(),
            reason: e.to_string(),
        })?;
        let text = format!("{}\n", STANDARD.encode(bytes));
        created = files::write_new_private(&path, text.as_bytes())
            .map_err(|source| SecretError::Io { action: "write", path: path.clone(), source })?;
    }
    let gitignore_updated =
        files::ensure_gitignored(project_root, &[DEV_SECRET_KEY_FILE]).map_err(|source| {
            SecretError::Io { action: "update", path: project_root.join(".gitignore"), source }
        })?;
    Ok(DevSecretKey { path, created, gitignore_updated })
}
