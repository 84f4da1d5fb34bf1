//! Authentication and secrets for the server: development keys (`keys`), user tokens — RS256
//! JWTs the company signs and the server verifies (`tokens`) — and the AES-256-GCM envelope
//! for credentials at rest (`secrets`).
//!
//! Files under a project (all created by `para init` / `para keys`, none ever overwritten):
//!
//! | path | what | git |
//! |---|---|---|
//! | `.para/keys/private.pem` | development signing key (PKCS#8, mode 0600) | ignored |
//! | `.para/keys/*.pem` | public keys the server accepts (SPKI or PKCS#1) | committed |
//! | `.para/secret.key` | development secret key (base64 of 32 bytes, mode 0600) | ignored |
//! | `.para/secrets.json` | environment secrets, sealed (`para secrets set`, mode 0600) | ignored |
//!
//! Environment variables (they win over files where both exist):
//!
//! - `PARA_USER_TOKEN_PUBLIC_KEY`: one more public key (PEM) to accept user tokens from, in
//!   addition to `.para/keys/*.pem` — how production passes the company's key.
//! - `PARA_SECRET_KEY`: base64 of the 32-byte key that encrypts secrets at rest; when set,
//!   `.para/secret.key` is neither read nor created.

pub mod env_secrets;
mod files;
pub mod keys;
pub mod secrets;
pub mod tokens;

pub use keys::{KeyError, KeyPaths, PublicKey, generate_dev_keys, load_public_keys};
pub use secrets::{SecretError, SecretKey};
pub use tokens::{Claims, TokenError, UserClaims, Verifier, sign};

/// `bytes` random bytes from the operating system, base64url without padding: OAuth `state`,
/// PKCE verifiers, nonces.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random number generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}
