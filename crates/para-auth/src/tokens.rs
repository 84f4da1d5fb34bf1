//! User tokens: RS256 JWTs the company signs for each of its users (`sub` = user id, `iat`,
//! `exp`, optional `meta` object, optional `aud`), and the [`Verifier`] the server checks
//! them with.
//!
//! Verification rules: the header's `alg` must be exactly `RS256` (checked before anything
//! else, and again by `jsonwebtoken` against a verifier that only knows RS256, so `none`,
//! HS256 — also HS256 keyed with the public key's bytes — ES*, PS* and the rest are refused);
//! the signature must verify with one of the project's public keys; `exp` is required and
//! checked with [`LEEWAY_SECS`] of leeway (as is `nbf` when present); `sub` must be a
//! non-empty string; `aud` is checked only when the verifier is given one, and then required.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::keys::{KeyError, PublicKey};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The longest `--ttl` [`parse_ttl`] accepts: one year.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What to put in a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The user id (`sub`).
    pub sub: String,
    /// User metadata (`meta`), a JSON object.
    pub meta: Option<Value>,
    /// How long the token is valid from now (`exp = iat + ttl`).
    pub ttl: Duration,
    /// Audience (`aud`), for servers configured to require one.
    pub aud: Option<String>,
}

impl Claims {
    pub fn new(sub: impl Into<String>, ttl: Duration) -> Self {
        Claims { sub: sub.into(), meta: None, ttl, aud: None }
    }
}

/// Signs `claims` with an RSA private key (PEM, PKCS#8 or PKCS#1), issued now.
pub fn sign(private_pem: &str, claims: &Claims) -> Result<String, KeyError> {
    sign_at(private_pem, claims, now())
}

/// [`sign`] as if issued at `issued_at` (Unix seconds): for tests of expired tokens.
pub fn sign_at(private_pem: &str, claims: &Claims, issued_at: u64) -> Result<String, KeyError> {
    let key = EncodingKey::from_rsa_pem(private_pem.trim().as_bytes())
        .map_err(|e| KeyError::Sign(e.to_string()))?;
    let mut payload = serde_json::Map::new();
    payload.insert("sub".into(), claims.sub.clone().into());
    payload.insert("iat".into(), issued_at.into());
    payload.insert("exp".into(), issued_at.saturating_add(claims.ttl.as_secs()).into());
    if let Some(aud) = &claims.aud {
        payload.insert("aud".into(), aud.clone().into());
    }
    if let Some(meta) = &claims.meta {
        payload.insert("meta".into(), meta.clone());
    }
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &payload, &key)
        .map_err(|e| KeyError::Sign(e.to_string()))
}

/// The verified facts of a user token.
#[derive(Debug, Clone, PartialEq)]
pub struct UserClaims {
    /// `sub`: the company's id for the user.
    pub user_id: String,
    /// `meta`, when the token has a JSON object there.
    pub meta: Option<Value>,
    /// `exp`, Unix seconds.
    pub exp: u64,
}

/// Why a token was refused. `Display` is a short reason fit for a 401 body; it never
/// contains the token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("only RS256 tokens are accepted")]
    Algorithm,
    #[error("signature does not verify with the project's public key")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token has no exp (expiry) claim")]
    MissingExp,
    #[error("token has no sub (user id) claim")]
    MissingSub,
    #[error("token has no aud (audience) claim, and this server requires one")]
    MissingAudience,
    #[error("token audience does not match this server")]
    WrongAudience,
    #[error("token claim `{0}` has the wrong type")]
    InvalidClaim(&'static str),
    #[error("token is issued in the future (iat)")]
    IssuedInFuture,
    #[error("token expires too far ahead: this server accepts tokens valid for at most {0}")]
    LifetimeTooLong(String),
}

/// Checks user tokens against a project's public keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<PublicKey>,
    validation: Validation,
    /// Tokens whose `exp` is further ahead than this are refused (`None`: no limit).
    max_lifetime: Option<std::time::Duration>,
}

impl Verifier {
    /// A verifier accepting tokens signed by any of `keys`; with `audience`, tokens must
    /// carry that `aud`. Errors when `keys` is empty.
    pub fn new(keys: Vec<PublicKey>, audience: Option<&str>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::NoPublicKey);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        match audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "sub"]);
            }
        }
        Ok(Verifier { keys, validation, max_lifetime: None })
    }

    /// The same verifier, also refusing tokens that expire more than `max` from now (`None`:
    /// any `exp`). A stolen token is then useful for at most that long.
    pub fn with_max_lifetime(mut self, max: Option<std::time::Duration>) -> Self {
        self.max_lifetime = max;
        self
    }

    /// A verifier over [`crate::load_public_keys`] of the project.
    pub fn for_project(
        project_root: &std::path::Path,
        audience: Option<&str>,
    ) -> Result<Self, KeyError> {
        Verifier::new(crate::keys::load_public_keys(project_root)?, audience)
    }

    /// The keys tokens are accepted from.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Verifies a token (without any `Bearer ` prefix).
    pub fn verify(&self, token: &str) -> Result<UserClaims, TokenError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        check_header(token)?;
        let mut last = TokenError::Signature;
        for key in &self.keys {
            match jsonwebtoken::decode::<Value>(token, &key.decoding, &self.validation) {
                Ok(data) => return self.times_held(user_claims(&data.claims)?, &data.claims),
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => {}
                // A malformed signature (bad base64, wrong length) fails the same way with
                // every key; any other error is about the claims, after the signature held.
                Err(e) => {
                    last = map_error(e.kind());
                    if last != TokenError::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

impl Verifier {
    /// Refuses a token issued in the future (`iat` past the leeway) or valid for longer than
    /// the maximum lifetime from now.
    fn times_held(&self, user: UserClaims, claims: &Value) -> Result<UserClaims, TokenError> {
        let now = now();
        match claims.get("iat") {
            None | Some(Value::Null) => {}
            Some(iat) => {
                let iat = iat.as_f64().ok_or(TokenError::InvalidClaim("iat"))?;
                if iat > (now + LEEWAY_SECS) as f64 {
                    return Err(TokenError::IssuedInFuture);
                }
            }
        }
        if let Some(max) = self.max_lifetime
            && user.exp > now.saturating_add(max.as_secs()).saturating_add(LEEWAY_SECS)
        {
            return Err(TokenError::LifetimeTooLong(human_duration(max)));
        }
        Ok(user)
    }
}

/// `30 days`, `12 hours`, `90 seconds`.
fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s.is_multiple_of(86_400) && s > 0 {
        (s / 86_400, "day")
    } else if s.is_multiple_of(3600) && s > 0 {
        (s / 3600, "hour")
    } else if s.is_multiple_of(60) && s > 0 {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Refuses anything whose header is not a JSON object with `"alg": "RS256"`.
fn check_header(token: &str) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => Ok(()),
        _ if !header.is_object() => Err(TokenError::Malformed),
        _ => Err(TokenError::Algorithm),
    }
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::Base64(_)
        | ErrorKind::Provider(_) => TokenError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => TokenError::Algorithm,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => TokenError::MissingExp,
            "sub" => TokenError::MissingSub,
            "aud" => TokenError::MissingAudience,
            _ => TokenError::Malformed,
        },
        ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
            "exp" => TokenError::InvalidClaim("exp"),
            "nbf" => TokenError::InvalidClaim("nbf"),
            "aud" => TokenError::InvalidClaim("aud"),
            "sub" => TokenError::MissingSub,
            _ => TokenError::Malformed,
        },
        _ => TokenError::Malformed,
    }
}

/// The claims of a token whose signature and times were verified.
fn user_claims(claims: &Value) -> Result<UserClaims, TokenError> {
    let user_id = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.trim().is_empty() => sub.clone(),
        _ => return Err(TokenError::MissingSub),
    };
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or(TokenError::MissingExp)?;
    let meta = match claims.get("meta") {
        None | Some(Value::Null) => None,
        Some(meta @ Value::Object(_)) => Some(meta.clone()),
        Some(_) => return Err(TokenError::InvalidClaim("meta")),
    };
    Ok(UserClaims { user_id, meta, exp })
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Parses a lifetime such as `30s`, `15m`, `1h` or `7d` (a positive whole number and one
/// unit; at most a year). The error says what was wrong.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        "" if !number.is_empty() => {
            return Err(format!("`{text}` has no unit; add s, m, h or d (e.g. `{text}m`)"));
        }
        _ => {
            return Err(format!(
                "`{text}` is not a lifetime: write a number and one unit of s, m, h or d"
            ));
        }
    };
    let count: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a lifetime: write a number and one unit of s, m, h or d")
    })?;
    if count == 0 {
        return Err("the lifetime must be longer than zero".into());
    }
    match count.checked_mul(unit_secs).map(Duration::from_secs) {
        Some(ttl) if ttl <= MAX_TTL => Ok(ttl),
        _ => Err(format!("`{text}` is longer than the maximum of 365d")),
    }
}
