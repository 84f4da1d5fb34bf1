//! Failed admin-key attempts per peer, for the dashboard's sign-in (held in `AppState`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed admin-key attempts per peer (IPv4 address, or IPv6 /64), in one-minute windows.
#[derive(Default)]
pub struct Throttle {
    peers: Mutex<HashMap<Bucket, (u32, Instant)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket {
    V4(u32),
    V6(u64),
    Unknown,
}

impl Bucket {
    fn of(peer: Option<IpAddr>) -> Bucket {
        match peer.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => Bucket::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => Bucket::V6((u128::from(v6) >> 64) as u64),
            None => Bucket::Unknown,
        }
    }
}

impl Throttle {
    /// Wrong keys a peer may send in one window.
    pub const MAX_FAILURES: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(60);

    /// `Err(seconds to wait)` while the peer has used up its attempts.
    pub(crate) fn check(&self, peer: Option<IpAddr>) -> Result<(), u64> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        match peers.get(&Bucket::of(peer)) {
            Some((failures, since))
                if *failures >= Self::MAX_FAILURES && since.elapsed() < Self::WINDOW =>
            {
                Err((Self::WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn failed(&self, peer: Option<IpAddr>) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() > 10_000 {
            peers.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let entry = peers.entry(Bucket::of(peer)).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}
