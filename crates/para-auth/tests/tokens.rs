//! The user-token rules, one test each: what verifies, and every way a token is refused.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use para_auth::tokens::{self, Claims, LEEWAY_SECS, TokenError, Verifier, parse_ttl};
use para_auth::{PublicKey, keys};
use serde_json::{Value, json};

/// Two development key pairs (private PEM, public PEM), generated once per test run.
fn pairs() -> &'static [(String, String); 2] {
    static PAIRS: OnceLock<[(String, String); 2]> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let one = || {
            let dir = tempfile::tempdir().unwrap();
            keys::generate_dev_keys(dir.path()).unwrap();
            (
                keys::load_private_key(dir.path()).unwrap(),
                std::fs::read_to_string(dir.path().join(keys::PUBLIC_KEY_FILE)).unwrap(),
            )
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(one);
            let b = s.spawn(one);
            (a.join().unwrap(), b.join().unwrap())
        });
        [a, b]
    })
}

fn private(i: usize) -> &'static str {
    &pairs()[i].0
}

fn public(i: usize) -> PublicKey {
    PublicKey::from_pem(format!("key{i}"), &pairs()[i].1).unwrap()
}

fn verifier(keys: &[usize], aud: Option<&str>) -> Verifier {
    Verifier::new(keys.iter().map(|&i| public(i)).collect(), aud).unwrap()
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

/// A token with any header and claims, RS256-signed with key `i` (the header's `alg` aside).
fn rs256_with(i: usize, header: Header, claims: &Value) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(private(i).as_bytes()).unwrap(),
    )
    .unwrap()
}

fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn valid_claims() -> Value {
    json!({"sub": "u1", "iat": tokens::now(), "exp": tokens::now() + 600})
}

#[test]
fn a_signed_token_verifies_with_its_claims() {
    let mut claims = Claims::new("user-1", hour());
    claims.meta = Some(json!({"plan": "pro", "email": "a@example.com"}));
    let token = tokens::sign(private(0), &claims).unwrap();
    let got = verifier(&[0], None).verify(&token).unwrap();
    assert_eq!(got.user_id, "user-1");
    assert_eq!(got.meta, Some(json!({"plan": "pro", "email": "a@example.com"})));
    let expected = tokens::now() + 3600;
    assert!(got.exp.abs_diff(expected) <= 2, "exp {} vs {expected}", got.exp);
    // The header says what it is.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let token = tokens::sign(private(1), &Claims::new("u1", hour())).unwrap();
    assert_eq!(verifier(&[0], None).verify(&token), Err(TokenError::Signature));
}

#[test]
fn a_token_whose_claims_were_edited_is_refused() {
    let token = tokens::sign(private(0), &Claims::new("u1", hour())).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("admin");
    let forged =
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    assert_eq!(verifier(&[0], None).verify(&forged), Err(TokenError::Signature));
}

#[test]
fn the_second_of_two_trusted_keys_verifies() {
    let token = tokens::sign(private(1), &Claims::new("u2", hour())).unwrap();
    assert_eq!(verifier(&[0, 1], None).verify(&token).unwrap().user_id, "u2");
    let token = tokens::sign(private(0), &Claims::new("u1", hour())).unwrap();
    assert_eq!(verifier(&[0, 1], None).verify(&token).unwrap().user_id, "u1");
}

#[test]
fn alg_none_is_refused() {
    let v = verifier(&[0], None);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = unsigned(&json!({"alg": alg, "typ": "JWT"}), &valid_claims(), "");
        assert_eq!(v.verify(&token), Err(TokenError::Algorithm), "{alg}");
    }
    // No alg at all, and none with a signature part that is not empty.
    let token = unsigned(&json!({"typ": "JWT"}), &valid_claims(), "");
    assert_eq!(v.verify(&token), Err(TokenError::Algorithm));
    let token = unsigned(&json!({"alg": "none"}), &valid_claims(), "c2ln");
    assert_eq!(v.verify(&token), Err(TokenError::Algorithm));
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    let v = verifier(&[0], None);
    let public_pem = &pairs()[0].1;
    for secret in [public_pem.as_str(), public_pem.trim()] {
        let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &valid_claims(), &key).unwrap();
        assert_eq!(v.verify(&token), Err(TokenError::Algorithm));
        // The same HMAC under a header that claims RS256 is just a bad signature.
        let parts: Vec<&str> = token.split('.').collect();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let relabelled = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(v.verify(&relabelled), Err(TokenError::Signature));
    }
}

#[test]
fn other_algorithms_are_refused_even_when_validly_signed_by_the_key() {
    let v = verifier(&[0], None);
    // PS256 and RS512 are RSA signatures the project's key really made: still not RS256.
    for alg in [Algorithm::PS256, Algorithm::RS384, Algorithm::RS512] {
        let token = rs256_with(0, Header::new(alg), &valid_claims());
        assert_eq!(v.verify(&token), Err(TokenError::Algorithm), "{alg:?}");
    }
    for alg in ["ES256", "ES384", "EdDSA", "HS512", "rs256", "RS256 ", ""] {
        let token = unsigned(&json!({"alg": alg}), &valid_claims(), "c2lnbmF0dXJl");
        assert_eq!(v.verify(&token), Err(TokenError::Algorithm), "{alg:?}");
    }
    let token = unsigned(&json!({"alg": ["RS256"]}), &valid_claims(), "c2ln");
    assert_eq!(v.verify(&token), Err(TokenError::Algorithm));
}

#[test]
fn an_expired_token_is_refused_beyond_the_leeway() {
    let v = verifier(&[0], None);
    let claims = Claims::new("u1", hour());
    let token =
        tokens::sign_at(private(0), &claims, tokens::now() - 3600 - LEEWAY_SECS - 5).unwrap();
    assert_eq!(v.verify(&token), Err(TokenError::Expired));
    assert_eq!(TokenError::Expired.to_string(), "token expired");
    // Expired a few seconds ago: within the leeway for clock skew.
    let token = tokens::sign_at(private(0), &claims, tokens::now() - 3600 - 5).unwrap();
    assert!(v.verify(&token).is_ok());
}

#[test]
fn tokens_issued_in_the_future_or_valid_too_long_are_refused() {
    let day = Duration::from_secs(86_400);
    let v = verifier(&[0], None).with_max_lifetime(Some(30 * day));
    let week = tokens::sign(private(0), &Claims::new("u1", 7 * day)).unwrap();
    assert!(v.verify(&week).is_ok());
    let year = tokens::sign(private(0), &Claims::new("u1", 365 * day)).unwrap();
    assert_eq!(v.verify(&year), Err(TokenError::LifetimeTooLong("30 days".into())));
    assert_eq!(
        TokenError::LifetimeTooLong("30 days".into()).to_string(),
        "token expires too far ahead: this server accepts tokens valid for at most 30 days"
    );
    assert!(verifier(&[0], None).verify(&year).is_ok(), "no limit unless one is set");
    // Issued an hour from now: refused (a few seconds of skew are not).
    let claims = Claims::new("u1", Duration::from_secs(3600));
    let ahead = tokens::sign_at(private(0), &claims, tokens::now() + 3600).unwrap();
    assert_eq!(v.verify(&ahead), Err(TokenError::IssuedInFuture));
    let skewed = tokens::sign_at(private(0), &claims, tokens::now() + 5).unwrap();
    assert!(v.verify(&skewed).is_ok());
    let odd = rs256_with(
        0,
        Header::new(Algorithm::RS256),
        &json!({"sub": "u1", "exp": tokens::now() + 60, "iat": "yesterday"}),
    );
    assert_eq!(v.verify(&odd), Err(TokenError::InvalidClaim("iat")));
}

#[test]
fn a_token_without_exp_is_refused() {
    let v = verifier(&[0], None);
    let token = rs256_with(0, Header::new(Algorithm::RS256), &json!({"sub": "u1", "iat": 1}));
    assert_eq!(v.verify(&token), Err(TokenError::MissingExp));
    let token = rs256_with(0, Header::new(Algorithm::RS256), &json!({"sub": "u1", "exp": "soon"}));
    assert_eq!(v.verify(&token), Err(TokenError::MissingExp), "an exp that is not a number");
}

#[test]
fn a_token_without_a_user_is_refused() {
    let v = verifier(&[0], None);
    let exp = tokens::now() + 600;
    for claims in
        [json!({"exp": exp}), json!({"exp": exp, "sub": ""}), json!({"exp": exp, "sub": "  "})]
    {
        let token = rs256_with(0, Header::new(Algorithm::RS256), &claims);
        assert_eq!(v.verify(&token), Err(TokenError::MissingSub), "{claims}");
    }
    let token = rs256_with(0, Header::new(Algorithm::RS256), &json!({"exp": exp, "sub": 42}));
    assert!(v.verify(&token).is_err());
}

#[test]
fn audience_is_checked_only_when_configured() {
    let mut claims = Claims::new("u1", hour());
    claims.aud = Some("app-b".into());
    let for_b = tokens::sign(private(0), &claims).unwrap();
    let no_aud = tokens::sign(private(0), &Claims::new("u1", hour())).unwrap();

    let wants_a = verifier(&[0], Some("app-a"));
    assert_eq!(wants_a.verify(&for_b), Err(TokenError::WrongAudience));
    assert_eq!(wants_a.verify(&no_aud), Err(TokenError::MissingAudience));
    assert!(verifier(&[0], Some("app-b")).verify(&for_b).is_ok());
    let many = rs256_with(
        0,
        Header::new(Algorithm::RS256),
        &json!({"sub": "u1", "exp": tokens::now() + 60, "aud": ["app-c", "app-b"]}),
    );
    assert!(verifier(&[0], Some("app-b")).verify(&many).is_ok());

    let any = verifier(&[0], None);
    assert!(any.verify(&for_b).is_ok() && any.verify(&no_aud).is_ok());
}

#[test]
fn meta_must_be_an_object() {
    let v = verifier(&[0], None);
    let exp = tokens::now() + 600;
    let token =
        rs256_with(0, Header::new(Algorithm::RS256), &json!({"sub": "u", "exp": exp, "meta": "x"}));
    assert_eq!(v.verify(&token), Err(TokenError::InvalidClaim("meta")));
    let token = rs256_with(
        0,
        Header::new(Algorithm::RS256),
        &json!({"sub": "u", "exp": exp, "meta": null}),
    );
    assert_eq!(v.verify(&token).unwrap().meta, None);
}

#[test]
fn malformed_tokens_are_refused() {
    let v = verifier(&[0], None);
    let good = tokens::sign(private(0), &Claims::new("u1", hour())).unwrap();
    let too_long = "a".repeat(tokens::MAX_TOKEN_LEN + 1);
    for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.c2ln", "e30.e30.c2ln", too_long.as_str()] {
        let err = v.verify(token).unwrap_err();
        assert!(matches!(err, TokenError::Malformed | TokenError::Algorithm), "{token:?}: {err:?}");
    }
    let cut = &good[..good.len() - 10];
    assert_eq!(v.verify(cut), Err(TokenError::Signature));
    let extra = format!("{good}.x");
    assert_eq!(v.verify(&extra), Err(TokenError::Malformed));
}

#[test]
fn reasons_are_short_and_never_echo_the_token() {
    let token = tokens::sign(private(1), &Claims::new("secret-user", hour())).unwrap();
    let err = verifier(&[0], None).verify(&token).unwrap_err();
    let text = err.to_string();
    assert_eq!(text, "signature does not verify with the project's public key");
    assert!(!text.contains("secret-user") && !text.contains(&token[..20]));
}

#[test]
fn a_verifier_needs_a_key() {
    let err = Verifier::new(Vec::new(), None).unwrap_err();
    assert!(err.hint().unwrap().contains("para keys"));
}

#[test]
fn ttls() {
    assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86400)));
    for bad in ["", "h", "1", "1x", "-1h", "1.5h", "0s", "1 h", "366d", "99999999999999999999s"] {
        assert!(parse_ttl(bad).is_err(), "{bad:?}");
    }
    assert!(parse_ttl("10").unwrap_err().contains("no unit"));
}
