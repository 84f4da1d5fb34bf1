//! The forms a secret takes on its way into a journal. A run's requests carry secrets encoded:
//! in a query string (percent-encoded), in a `Basic` header or a body field (base64, usually
//! after other bytes such as `user:`), inside a JSON text embedded in a string. Matching the
//! plain text only would let those through, so [`forms`] lists what to look for.

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 digits shorter than this are not looked for: too likely to occur by chance.
const MIN_BASE64_DIGITS: usize = 8;

/// `secret`, and each other form in which it can appear in a journal's strings: percent-encoded
/// (`%20` and `+` for spaces), JSON-escaped, and base64 (standard and URL-safe alphabets) at
/// each of the three offsets a longer encoded text can put it at, without the digits its
/// neighbours share.
pub fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let mut add = |form: String| {
        if !form.is_empty() && !out.contains(&form) {
            out.push(form);
        }
    };
    add(percent_encoded(secret, false));
    add(percent_encoded(secret, true));
    // What URL parsers leave of it in a query or a path: only what those parts cannot hold
    // is escaped (`tok en/42` becomes `tok%20en/42`).
    add(escaped(secret, b" \"#<>"));
    add(escaped(secret, b" \"#<>?`{}"));
    let json = serde_json::to_string(secret).unwrap_or_default();
    add(json[1..json.len().saturating_sub(1).max(1)].to_string());
    for alphabet in [STANDARD, URL_SAFE] {
        for offset in 0..3 {
            if let Some(digits) = base64_at(secret.as_bytes(), offset, alphabet) {
                add(digits);
            }
        }
    }
    out
}

/// Every byte but the unreserved ones as `%XX`; spaces as `+` when `plus`.
fn percent_encoded(text: &str, plus: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Controls, non-ASCII bytes and `set` as `%XX`, the rest as it is.
fn escaped(text: &str, set: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b <= 0x20 || b >= 0x7f || set.contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// The base64 digits that depend only on `bytes` when they follow `offset` other bytes in the
/// encoded text (digits shared with the neighbours left out), or `None` when too few remain.
fn base64_at(bytes: &[u8], offset: usize, alphabet: &[u8; 64]) -> Option<String> {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(bytes);
    let digits = encode(&padded, alphabet);
    // Digit i covers bits [6i, 6i + 6); the secret's bits are [8·offset, 8·(offset + len)).
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + bytes.len()) / 6;
    (end >= first + MIN_BASE64_DIGITS).then(|| digits[first..end].to_string())
}

/// Base64 without padding.
fn encode(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let digits = chunk.len() + 1;
        for i in 0..digits {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found_in(text: &str, secret: &str) -> bool {
        forms(secret).iter().any(|f| text.contains(f.as_str()))
    }

    #[test]
    fn base64_matches_the_standard_encoding() {
        assert_eq!(encode(b"hello world", STANDARD), "aGVsbG8gd29ybGQ");
        assert_eq!(encode(b"\xfb\xff", URL_SAFE), "-_8");
        assert_eq!(encode(b"", STANDARD), "");
    }

    #[test]
    fn a_secret_is_found_in_each_encoding_at_any_offset() {
        let secret = "s3cr3t-k3y/with space";
        for prefix in ["", "a", "ab", "abc", "user:", "api-user:"] {
            let basic = encode(format!("{prefix}{secret}").as_bytes(), STANDARD);
            assert!(found_in(&basic, secret), "base64 after {prefix:?}: {basic}");
            let url = encode(format!("{prefix}{secret}!").as_bytes(), URL_SAFE);
            assert!(found_in(&url, secret), "url-safe after {prefix:?}: {url}");
        }
        assert!(found_in("q=s3cr3t-k3y%2Fwith%20space&x=1", secret));
        assert!(found_in("q=s3cr3t-k3y%2Fwith+space", secret));
        assert!(
            found_in("https://x.example/a?q=s3cr3t-k3y/with%20space", secret),
            "a URL's own escaping"
        );
        let quoted = "tab\tand \"quote\"";
        let json = serde_json::to_string(&serde_json::json!({ "k": quoted })).unwrap();
        assert!(found_in(&json, quoted), "{json}");
        assert!(!found_in("aGVsbG8gd29ybGQ", secret));
    }

    #[test]
    fn short_base64_fragments_are_not_looked_for() {
        // Six bytes give eight digits at offset 0 only; other offsets lose digits at the edges.
        let forms = forms("abcdef");
        assert!(forms.contains(&"YWJjZGVm".to_string()), "{forms:?}");
        assert!(forms.iter().all(|f| f.len() >= 6), "{forms:?}");
    }
}
