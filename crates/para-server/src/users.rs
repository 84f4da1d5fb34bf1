//! Who a verified token belongs to ([`SdkUser`]), and the tokens verified moments ago
//! ([`SeenUsers`], in `AppState`): plain data, imported by `auth.rs` and `state.rs` alike.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Arc;

/// A connected user, authenticated by an RS256 token signed by the company (`sub` = user id).
#[derive(Debug, Clone)]
pub struct SdkUser {
    pub user_id: String,
    pub meta: serde_json::Value,
    /// What the user's token itself carried (`{}`: nothing): the metadata permissions read
    /// under `PARA_PERMISSIONS_METADATA=token`.
    pub signed_meta: serde_json::Value,
}

/// Tokens verified in the last seconds, so a burst of requests (the proxy) neither re-checks
/// the RSA signature nor writes "user seen" each time. An entry never outlives its token's
/// `exp` nor [`SeenUsers::TTL_MS`]; metadata changed through `PATCH /sdk/me` is visible
/// after at most that long to requests authenticated from the cache.
///
/// Entries are keyed by a 64-bit hash of the token under a per-process random seed and hold
/// the token itself, compared on every hit: a hash collision is a miss, never another user.
#[derive(Default)]
pub struct SeenUsers {
    map: std::sync::Mutex<HashMap<u64, Seen, foldhash::fast::FixedState>>,
    hasher: foldhash::fast::RandomState,
}

struct Seen {
    token: Box<[u8]>,
    until: i64,
    user: Arc<SdkUser>,
}

impl SeenUsers {
    const TTL_MS: i64 = 30_000;
    const MAX: usize = 50_000;

    pub(crate) fn recent(&self, token: &[u8]) -> Option<Arc<SdkUser>> {
        let key = self.hasher.hash_one(token);
        let map = self.map.lock().expect("seen users");
        let seen = map.get(&key)?;
        (*seen.token == *token && seen.until > para_store::now_ms()).then(|| seen.user.clone())
    }

    pub(crate) fn remember(&self, token: &[u8], exp_secs: u64, user: &Arc<SdkUser>) {
        let now = para_store::now_ms();
        let until = (now + Self::TTL_MS).min(exp_secs as i64 * 1000);
        let key = self.hasher.hash_one(token);
        let mut map = self.map.lock().expect("seen users");
        if map.len() >= Self::MAX {
            map.retain(|_, seen| seen.until > now);
            if map.len() >= Self::MAX {
                map.clear();
            }
        }
        map.insert(key, Seen { token: token.into(), until, user: user.clone() });
    }

    /// Forgets a user's cached tokens (their metadata changed).
    pub fn forget(&self, user_id: &str) {
        self.map.lock().expect("seen users").retain(|_, seen| seen.user.user_id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_tokens_are_matched_whole() {
        let seen = SeenUsers::default();
        let exp = (para_store::now_ms() / 1000 + 3600) as u64;
        let ann = Arc::new(SdkUser {
            user_id: "ann".into(),
            meta: serde_json::Value::Null,
            signed_meta: serde_json::Value::Null,
        });
        seen.remember(b"token-a", exp, &ann);
        assert_eq!(seen.recent(b"token-a").unwrap().user_id, "ann");
        assert!(seen.recent(b"token-b").is_none());
        assert!(seen.recent(b"token-").is_none());
        // A token past its exp is not remembered as valid.
        seen.remember(b"token-old", (para_store::now_ms() / 1000 - 1) as u64, &ann);
        assert!(seen.recent(b"token-old").is_none());
        seen.forget("ann");
        assert!(seen.recent(b"token-a").is_none());
    }
}
