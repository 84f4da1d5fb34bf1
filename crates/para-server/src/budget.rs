//! The memory the proxy's bodies may hold ([`Budget`], one per server in `AppState`), and a
//! body's share of it ([`Held`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;

use crate::error::ApiError;

/// Request bodies larger than this are refused (413).
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;

/// `PARA_PROXY_MAX_INFLIGHT_BYTES`'s default: what all request bodies and wrapped answers
/// held at once may take.
pub(crate) const DEFAULT_MAX_INFLIGHT: usize = 128 * 1024 * 1024;
/// `PARA_PROXY_MAX_WRAPPED_BYTES`'s default: the largest answer wrapped as `{"output": …}`
/// (the cap of a request body).
pub(crate) const DEFAULT_MAX_WRAPPED: usize = MAX_BODY;

/// The memory proxy bodies may hold, one per server (`AppState::proxy_budget`): request bodies
/// (read whole: a request is sent again after a refresh) and wrapped answers (read whole to be
/// checked and wrapped) of all requests together, from the moment their length is known (a
/// `Content-Length`, or each piece as it arrives) until they are dropped (a wrapped answer:
/// once it is written to the client). Past it a request gets a 503 (`proxy_busy`).
pub struct Budget {
    /// `PARA_PROXY_MAX_INFLIGHT_BYTES`.
    limit: usize,
    /// `PARA_PROXY_MAX_WRAPPED_BYTES`: a larger answer is refused (502) unless asked for raw.
    pub(crate) wrapped: usize,
    held: AtomicUsize,
    /// The most held at once so far.
    peak: AtomicUsize,
}

impl Budget {
    /// `limit` and `wrapped`: [`crate::limits::Limits::proxy_max_inflight_bytes`] and
    /// [`crate::limits::Limits::proxy_max_wrapped_bytes`].
    pub fn new(limit: usize, wrapped: usize) -> Budget {
        Budget { limit, wrapped, held: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The most bytes held at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Holds `n` more bytes if they fit.
    pub(crate) fn take(&self, n: usize) -> bool {
        if n > self.limit {
            return false;
        }
        let now = self.held.fetch_add(n, Ordering::Relaxed) + n;
        if now > self.limit {
            self.held.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        if now > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        true
    }

    pub(crate) fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn busy(&self, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            BUSY,
            format!(
                "the proxy holds as many bodies as it may ({} bytes, PARA_PROXY_MAX_INFLIGHT_BYTES): {what}; try again shortly",
                self.limit
            ),
        )
    }
}

/// The code of a 503 past the [`Budget`] (answered with `Retry-After`).
pub(crate) const BUSY: &str = "proxy_busy";

/// Bytes held against a [`Budget`], given back when dropped.
pub(crate) struct Held {
    budget: Option<Arc<Budget>>,
    pub(crate) bytes: usize,
}

impl Held {
    pub(crate) const NONE: Held = Held { budget: None, bytes: 0 };

    /// Holds `total` bytes in all from now on (more or fewer); false if they do not fit (then
    /// what was held stays held).
    pub(crate) fn resize(&mut self, budget: &Arc<Budget>, total: usize) -> bool {
        if total > self.bytes {
            if !budget.take(total - self.bytes) {
                return false;
            }
        } else {
            budget.give_back(self.bytes - total);
        }
        self.bytes = total;
        if self.budget.is_none() {
            self.budget = Some(budget.clone());
        }
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.bytes);
        }
    }
}
