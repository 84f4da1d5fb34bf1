//! What one client may take of the server before anyone has checked who it is: connections
//! (in all and per peer address) and the time to send a request's body (a minimum rate after a
//! grace period). Without them a client trickling bodies (`Content-Length: 1000000`, a byte
//! every few seconds) holds a connection, and a file descriptor, forever: a request counts as
//! being served from its head on, so the idle sweeper ([`crate::idle`]) never closes it.
//!
//! Every limit has a default and an environment variable (`docs/configuration.md` lists them);
//! `para serve` reads them (`para-cli`'s `config.rs`), tests build their own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Body as _, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The server's limits on unauthenticated clients and on what a signed user may do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once, in all: past it a new connection gets a 503 and is closed.
    /// Default: the process's file-descriptor limit less 64 kept for the database, upstream
    /// connections and files (at least 16).
    pub max_connections: usize,
    /// Connections open at once from one peer address. Behind a load balancer every
    /// connection comes from it: raise this (or set it to `max_connections`) there.
    pub max_connections_per_peer: usize,
    /// A request body must arrive at this many bytes per second on average once
    /// `body_grace` has passed; slower, the request fails (408) and the connection is closed.
    pub body_min_rate: u64,
    /// How long a body may take before the minimum rate applies.
    pub body_grace: Duration,
    /// Permissions (`definePermissions`) read only the metadata signed in the user token,
    /// never metadata a client stored with `PATCH /sdk/me`.
    pub permissions_from_token_only: bool,
    /// User tokens whose `exp` is further ahead than this are refused (`None`: no limit).
    pub max_token_lifetime: Option<Duration>,
    /// Configurations (`createConfiguration`) one credential may have.
    pub max_configurations_per_credential: usize,
    /// What all the proxy's request bodies and wrapped answers held at once may take
    /// ([`crate::budget::Budget`]); past it a request gets a 503.
    pub proxy_max_inflight_bytes: usize,
    /// The largest answer the proxy wraps as `{"output": …}`; a larger one is refused (502)
    /// unless asked for raw.
    pub proxy_max_wrapped_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let max_connections = descriptor_limit().map_or(4096, |n| n.saturating_sub(64).max(16));
        Limits {
            max_connections,
            max_connections_per_peer: 128.min(max_connections),
            body_min_rate: 1024,
            body_grace: Duration::from_secs(30),
            permissions_from_token_only: false,
            max_token_lifetime: Some(Duration::from_secs(30 * 24 * 3600)),
            max_configurations_per_credential: 50,
            proxy_max_inflight_bytes: crate::budget::DEFAULT_MAX_INFLIGHT,
            proxy_max_wrapped_bytes: crate::budget::DEFAULT_MAX_WRAPPED,
        }
    }
}

/// `30d`, `12h`, `15m`, `900s` or a number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number.trim().parse().ok()?;
    let seconds = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// The soft limit on open file descriptors, where the platform says (Linux:
/// `/proc/self/limits`, the "Max open files" row).
fn descriptor_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    soft_open_files(&text)
}

fn soft_open_files(limits: &str) -> Option<usize> {
    let row = limits.lines().find(|l| l.starts_with("Max open files"))?;
    row["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------- connections

/// Counts open connections, in all and per peer address.
pub struct Gate {
    max: usize,
    max_per_peer: usize,
    open: AtomicUsize,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it (the connection ended) frees its place.
pub struct Admitted {
    gate: Arc<Gate>,
    peer: IpAddr,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Full,
    PeerFull,
}

impl Gate {
    pub fn new(limits: &Limits) -> Arc<Gate> {
        Arc::new(Gate {
            max: limits.max_connections.max(1),
            max_per_peer: limits.max_connections_per_peer.max(1),
            open: AtomicUsize::new(0),
            per_peer: Mutex::default(),
        })
    }

    /// Admits a connection from `peer` unless that would pass a limit.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refusal> {
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        if self.open.load(Ordering::Acquire) >= self.max {
            return Err(Refusal::Full);
        }
        let mine = per_peer.entry(peer).or_insert(0);
        if *mine >= self.max_per_peer {
            return Err(Refusal::PeerFull);
        }
        *mine += 1;
        self.open.fetch_add(1, Ordering::AcqRel);
        Ok(Admitted { gate: self.clone(), peer })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_peer = self.gate.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Refusal {
    /// The whole answer written to a connection turned away, before closing it.
    pub fn response(self) -> &'static [u8] {
        match self {
            Refusal::Full => {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 61\r\n\r\nThe server has as many connections as it takes; retry later.\n"
            }
            Refusal::PeerFull => {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 75\r\n\r\nThis address has as many connections open as it may; close some and retry.\n"
            }
        }
    }
}

// -------------------------------------------------------------------------------- bodies

/// A request body that must keep arriving: once `grace` has passed, at least `min_rate` bytes
/// per second on average since the request began. Slower, it ends with an error (the handler
/// answers, and hyper closes the connection, whose body was not read to its end).
pub struct MinRate {
    inner: Body,
    started: Instant,
    received: u64,
    grace: Duration,
    min_rate: u64,
    timer: Option<Pin<Box<Sleep>>>,
    tripped: Tripped,
}

/// Set once a request's body was too slow: the server then answers 408 whatever the handler
/// made of the failed read.
#[derive(Clone, Default)]
pub struct Tripped(Arc<std::sync::atomic::AtomicBool>);

impl Tripped {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The answer to a request whose body was too slow; the connection is closed after it.
pub fn too_slow() -> axum::response::Response {
    let mut response = axum::response::Response::new(Body::from(
        "The request body arrived too slowly; the connection is closed.\n",
    ));
    *response.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The error a too slow body ends with.
#[derive(Debug)]
pub struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for TooSlow {}

impl MinRate {
    /// `body`, held to `limits`, and what tells that it was too slow; a body known to be
    /// empty is left as it is.
    pub fn wrap(body: Body, limits: &Limits) -> (Body, Option<Tripped>) {
        if body.is_end_stream() || limits.body_min_rate == 0 {
            return (body, None);
        }
        let tripped = Tripped::default();
        let body = Body::new(MinRate {
            inner: body,
            started: Instant::now(),
            received: 0,
            grace: limits.body_grace,
            min_rate: limits.body_min_rate,
            timer: None,
            tripped: tripped.clone(),
        });
        (body, Some(tripped))
    }

    /// When the body must have arrived by, given what has arrived so far.
    fn deadline(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        self.started + self.grace + earned
    }
}

impl http_body::Body for MinRate {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let deadline = this.deadline();
                let timer =
                    this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.tripped.0.store(true, Ordering::Release);
                        Poll::Ready(Some(Err(axum::Error::new(TooSlow))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("900"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("h"), None);
    }

    #[test]
    fn the_descriptor_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            256                  524288               files     \n";
        assert_eq!(soft_open_files(text), Some(256));
        assert_eq!(soft_open_files("Max open files unlimited unlimited files"), None);
    }

    #[test]
    fn the_gate_counts_per_peer_and_in_all() {
        let limits =
            Limits { max_connections: 3, max_connections_per_peer: 2, ..Limits::default() };
        let gate = Gate::new(&limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::PeerFull));
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some(Refusal::Full));
        drop(a1);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(b).is_ok(), "a place freed by a closed connection is taken again");
        for refusal in [Refusal::Full, Refusal::PeerFull] {
            let text = std::str::from_utf8(refusal.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}", body.len())), "{text}");
        }
    }
}
