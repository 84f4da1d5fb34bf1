//! The secrets envelope: round trips, and every way a sealed value fails to open.

use para_auth::SecretKey;
use para_auth::secrets::{self, SecretError};

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32])
}

const AAD: &[u8] = b"project-1/user-1/credential-1";

#[test]
fn seal_then_open_round_trips() {
    let k = key(7);
    for plaintext in [&b""[..], b"x", b"{\"access_token\":\"ya29.abc\",\"refresh_token\":\"1//r\"}"]
    {
        let sealed = k.seal(plaintext, AAD);
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert_eq!(k.open(&sealed, AAD).unwrap(), plaintext);
    }
    let big = vec![0xabu8; 100_000];
    assert_eq!(k.open(&k.seal(&big, AAD), AAD).unwrap(), big);
}

#[test]
fn two_seals_of_the_same_plaintext_differ() {
    let k = key(7);
    let a = k.seal(b"secret", AAD);
    let b = k.seal(b"secret", AAD);
    assert_ne!(a, b);
    assert!(!a.contains("secret"));
}

#[test]
fn a_tampered_ciphertext_does_not_open() {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let k = key(7);
    let sealed = k.seal(b"secret value", AAD);
    let bytes = engine.decode(&sealed[3..]).unwrap();
    for i in [0, 11, 12, bytes.len() - 1] {
        let mut flipped = bytes.clone();
        flipped[i] ^= 1;
        let tampered = format!("v1:{}", engine.encode(&flipped));
        assert!(matches!(k.open(&tampered, AAD), Err(SecretError::Decrypt)), "byte {i}");
    }
    let truncated = format!("v1:{}", engine.encode(&bytes[..bytes.len() - 1]));
    assert!(matches!(k.open(&truncated, AAD), Err(SecretError::Decrypt)));
    for bad in ["", "v1:", "v1:!!!", "v1:AAAA", "plain text", "secret"] {
        assert!(matches!(k.open(bad, AAD), Err(SecretError::Malformed)), "{bad:?}");
    }
    assert!(matches!(k.open("v2:AAAA", AAD), Err(SecretError::UnknownVersion(v)) if v == "v2"));
}

#[test]
fn a_value_moved_to_another_row_does_not_open() {
    let k = key(7);
    let sealed = k.seal(b"secret", AAD);
    assert!(matches!(k.open(&sealed, b"project-1/user-2/credential-1"), Err(SecretError::Decrypt)));
    assert!(matches!(k.open(&sealed, b""), Err(SecretError::Decrypt)));
}

#[test]
fn another_key_does_not_open() {
    let sealed = key(7).seal(b"secret", AAD);
    let err = key(8).open(&sealed, AAD).unwrap_err();
    assert!(matches!(err, SecretError::Decrypt));
    assert!(err.hint().is_some());
}

#[test]
fn debug_never_shows_the_key() {
    use base64::Engine as _;
    let bytes = [0x5au8; 32];
    let text = format!("{:?} {:#?}", SecretKey::from_bytes(&bytes), SecretKey::from_bytes(&bytes));
    assert!(text.contains("redacted"), "{text}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    for needle in ["5a5a", "90, 90", "0x5a", &b64[..8]] {
        assert!(!text.to_lowercase().contains(&needle.to_lowercase()), "{needle} in {text}");
    }
}

#[test]
fn the_env_value_wins_over_the_dev_file() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let value = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
    let from_env = SecretKey::from_value_or_dev(Some(&value), tmp.path()).unwrap();
    assert_eq!(from_env.open(&key(3).seal(b"s", AAD), AAD).unwrap(), b"s");
    assert!(!tmp.path().join(secrets::DEV_SECRET_KEY_FILE).exists(), "no dev file made");

    for bad in ["abc", "not base64!", &base64::engine::general_purpose::STANDARD.encode([1u8; 16])]
    {
        let err = SecretKey::from_value_or_dev(Some(bad), tmp.path()).unwrap_err();
        assert!(
            matches!(&err, SecretError::InvalidKey { origin, .. } if origin == "PARA_SECRET_KEY")
        );
        assert!(!err.to_string().contains(bad) || bad.len() < 4, "the value is not echoed");
        assert!(err.hint().unwrap().contains("32"));
    }
}

#[test]
fn the_dev_key_is_generated_once_private_and_ignored() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let first = SecretKey::from_value_or_dev(None, tmp.path()).unwrap();
    let path = tmp.path().join(secrets::DEV_SECRET_KEY_FILE);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let second = SecretKey::from_value_or_dev(Some(""), tmp.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "never regenerated");
    assert_eq!(second.open(&first.seal(b"s", AAD), AAD).unwrap(), b"s");
    let ignore = std::fs::read_to_string(tmp.path().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == ".para/secret.key"), "{ignore}");
    let again = secrets::ensure_dev_key_file(tmp.path()).unwrap();
    assert!(!again.created && !again.gitignore_updated);
}
