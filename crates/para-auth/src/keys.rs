//! RSA keys for user tokens: the development key pair `para init` / `para keys` write under
//! `.para/keys/`, the private key `para token` signs with, and the public keys the server
//! accepts tokens from — every `.para/keys/*.pem` public key (so a rotated key and its
//! successor are both accepted while tokens signed by the old one are still around) plus
//! the optional `PARA_USER_TOKEN_PUBLIC_KEY` environment variable.

use std::path::{Path, PathBuf};

use jsonwebtoken::DecodingKey;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _};
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;

use crate::files;

/// Environment variable holding one more public key (PEM, SPKI or PKCS#1) to accept user
/// tokens from. Literal `\n` sequences are read as newlines, so the PEM fits on one line of
/// an env file.
pub const PUBLIC_KEY_ENV: &str = "PARA_USER_TOKEN_PUBLIC_KEY";
/// The folder of token keys, relative to the project root.
pub const KEYS_DIR: &str = ".para/keys";
/// The development private key (PKCS#8 PEM, mode 0600, git-ignored).
pub const PRIVATE_KEY_FILE: &str = ".para/keys/private.pem";
/// The development public key (SPKI PEM).
pub const PUBLIC_KEY_FILE: &str = ".para/keys/public.pem";
/// Size of generated keys, and the smallest key accepted.
pub const KEY_BITS: usize = 2048;
/// Lines `para keys` makes sure the project's `.gitignore` has.
pub const GITIGNORED: &[&str] = &[PRIVATE_KEY_FILE, crate::secrets::DEV_SECRET_KEY_FILE];

/// What [`generate_dev_keys`] found or wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    /// The files this call wrote (empty when both keys were there).
    pub created: Vec<PathBuf>,
    /// Whether `.gitignore` gained lines.
    pub gitignore_updated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("no private key at {}", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("{} is not an RSA private key in PEM form ({reason})", path.display())]
    NotAPrivateKey { path: PathBuf, reason: String },
    #[error("{origin} is not an RSA public key in PEM form ({reason})")]
    NotAPublicKey { origin: String, reason: String },
    #[error("{origin} is a {bits}-bit RSA key; at least {KEY_BITS} bits are required")]
    TooSmall { origin: String, bits: usize },
    #[error("{} exists but its private key {} does not", public.display(), private.display())]
    OrphanPublicKey { public: PathBuf, private: PathBuf },
    #[error("could not generate an RSA key: {0}")]
    Generate(String),
    #[error("could not sign the token: {0}")]
    Sign(String),
    #[error("no public key to verify user tokens with")]
    NoPublicKey,
}

impl KeyError {
    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            KeyError::NoPrivateKey { .. } => {
                Some("create a development key pair with `para keys`".into())
            }
            KeyError::NoPublicKey => Some(format!(
                "create a development key pair with `para keys`, or set {PUBLIC_KEY_ENV} to the PEM public key your app signs tokens with"
            )),
            KeyError::OrphanPublicKey { private, .. } => Some(format!(
                "copy the matching private key to {}, or move the public key out of {KEYS_DIR}/ to make a new pair",
                private.display()
            )),
            KeyError::TooSmall { .. } => Some(format!("generate a key of {KEY_BITS} bits or more")),
            KeyError::NotAPublicKey { .. } => Some(format!(
                "every .pem file in {KEYS_DIR}/ must be an RSA public key (`-----BEGIN PUBLIC KEY-----`) or the private key private.pem"
            )),
            _ => None,
        }
    }
}

/// A public key user tokens are accepted from.
#[derive(Clone)]
pub struct PublicKey {
    origin: String,
    bits: usize,
    pub(crate) decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("origin", &self.origin).field("bits", &self.bits).finish()
    }
}

impl PublicKey {
    /// Parses an RSA public key, SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    /// `origin` names where it came from, for messages (a path or an env var name).
    pub fn from_pem(origin: impl Into<String>, pem: &str) -> Result<Self, KeyError> {
        let origin = origin.into();
        let pem = pem.trim();
        let key = rsa::PublicKey::from_public_key_pem(pem)
            .or_else(|spki| rsa::PublicKey::from_pkcs1_pem(pem).map_err(|_| spki))
            .map_err(|e| KeyError::NotAPublicKey {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
        let bits = key.size() * 8;
        if bits < KEY_BITS {
            return Err(KeyError::TooSmall { origin, bits });
        }
        let decoding = DecodingKey::from_rsa_raw_components(&key.n_bytes(), &key.e_bytes());
        Ok(PublicKey { origin, bits, decoding })
    }

    /// Where the key came from (a path, or `PARA_USER_TOKEN_PUBLIC_KEY`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }
}

/// Writes a development key pair under `<project_root>/.para/keys/` unless there is one:
/// `private.pem` (PKCS#8, mode 0600) and `public.pem` (SPKI). Never overwrites a key; when
/// only the private key exists its public key is derived and written. Makes sure
/// `.gitignore` ignores the private key and `.para/secret.key`.
pub fn generate_dev_keys(project_root: &Path) -> Result<KeyPaths, KeyError> {
    let private_key = project_root.join(PRIVATE_KEY_FILE);
    let public_key = project_root.join(PUBLIC_KEY_FILE);
    let mut created = Vec::new();
    if !private_key.exists() {
        if public_key.exists() {
            return Err(KeyError::OrphanPublicKey { public: public_key, private: private_key });
        }
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let pem =
            key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Generate(e.to_string()))?;
        let wrote = files::write_new_private(&private_key, pem.as_bytes())
            .map_err(|source| io("write", &private_key, source))?;
        if wrote {
            created.push(private_key.clone());
        }
    }
    if !public_key.exists() {
        let pem = public_pem_of(&private_key)?;
        if files::write_new(&public_key, pem.as_bytes())
            .map_err(|source| io("write", &public_key, source))?
        {
            created.push(public_key.clone());
        }
    }
    let gitignore_updated = files::ensure_gitignored(project_root, GITIGNORED)
        .map_err(|source| io("update", &project_root.join(".gitignore"), source))?;
    Ok(KeyPaths { private_key, public_key, created, gitignore_updated })
}

/// The SPKI PEM of the private key in `path`.
fn public_pem_of(path: &Path) -> Result<String, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| io("read", path, source))?;
    let key = rsa::PrivateKey::from_pkcs8_pem(pem.trim()).map_err(|e| {
        KeyError::NotAPrivateKey { path: path.to_path_buf(), reason: e.to_string() }
    })?;
    key.to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))
}

/// The development private key's PEM text (`.para/keys/private.pem`), for signing tokens.
pub fn load_private_key(project_root: &Path) -> Result<String, KeyError> {
    let path = project_root.join(PRIVATE_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(pem) => Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyError::NoPrivateKey { path }),
        Err(source) => Err(io("read", &path, source)),
    }
}

/// The public keys of the project's `.para/keys/` ([`load_public_keys_with`] without a key
/// from the environment).
pub fn load_public_keys(project_root: &Path) -> Result<Vec<PublicKey>, KeyError> {
    load_public_keys_with(project_root, None)
}

/// Every public key user tokens are accepted from: each `.pem` file in `.para/keys/` that is
/// not a private key (sorted by name), then `env_pem` (`PARA_USER_TOKEN_PUBLIC_KEY`) when
/// given. A file that is not an RSA public key of at least 2048 bits is an error, not skipped.
/// May be empty.
pub fn load_public_keys_with(
    project_root: &Path,
    env_pem: Option<&str>,
) -> Result<Vec<PublicKey>, KeyError> {
    let dir = project_root.join(KEYS_DIR);
    let mut paths = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let path = entry.map_err(|source| io("list", &dir, source))?.path();
                if path.extension().is_some_and(|e| e == "pem") && path.is_file() {
                    paths.push(path);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io("list", &dir, source)),
    }
    paths.sort();
    let mut keys = Vec::new();
    for path in paths {
        let pem = std::fs::read_to_string(&path).map_err(|source| io("read", &path, source))?;
        if pem.contains("PRIVATE KEY-----") {
            continue;
        }
        keys.push(PublicKey::from_pem(path.display().to_string(), &pem)?);
    }
    if let Some(pem) = env_pem.map(str::trim).filter(|p| !p.is_empty()) {
        keys.push(PublicKey::from_pem(PUBLIC_KEY_ENV, &pem.replace("\\n", "\n"))?);
    }
    Ok(keys)
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> KeyError {
    KeyError::Io { action, path: path.to_path_buf(), source }
}
