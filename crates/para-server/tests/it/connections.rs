//! Connections as the server keeps them (`server.rs`, `limits.rs`): a client that stalls while
//! sending a request's head, or leaves a keep-alive connection idle, is cut off after the header
//! timeout, while a client that keeps talking is served; a body sent too slowly is cut off; a
//! client past the connection limits gets a 503.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use para_server::limits::Limits;
use serde_json::json;

use crate::common::{self, TestServer};

const TIMEOUT: Duration = Duration::from_millis(300);

/// The server under test: an empty build, the dashboard on, connections closed after
/// [`TIMEOUT`].
async fn start() -> TestServer {
    start_with(TIMEOUT, Some("admin-key"), Limits::default()).await
}

async fn start_with(
    header_timeout: Duration,
    admin_key: Option<&str>,
    limits: Limits,
) -> TestServer {
    TestServer::builder(common::build("p-conn", json!({})))
        .header_timeout(header_timeout)
        .admin_key(admin_key)
        .limits(limits)
        .start()
        .await
}

/// Reads until the server closes the connection; what it sent and how long that took. Fails
/// when the connection is still open after 5 s (much longer than the timeout).
fn until_closed(mut s: TcpStream) -> (Vec<u8>, Duration) {
    let began = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, began.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, began.elapsed()),
            Err(e) => panic!("the server kept the connection open ({e}); it sent {got:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = start().await;
    let port = server.port;
    tokio::task::spawn_blocking(move || {
        // A head that never ends.
        let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stalled.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        let (sent, after) = until_closed(stalled);
        assert!(!String::from_utf8_lossy(&sent).contains("200 OK"), "{sent:?}");
        assert!(after >= TIMEOUT - Duration::from_millis(50), "closed after {after:?}");

        // A keep-alive connection is served, then closed once idle for the timeout.
        let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (sent, after) = until_closed(idle);
        let sent = String::from_utf8_lossy(&sent);
        assert!(sent.starts_with("HTTP/1.1 200 OK"), "{sent}");
        assert!(sent.contains("\"ok\":true"), "{sent}");
        assert!(after >= TIMEOUT - Duration::from_millis(50), "closed after {after:?}");

        // Requests sent one after another within the timeout keep the connection.
        let mut busy = TcpStream::connect(("127.0.0.1", port)).unwrap();
        busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..4 {
            busy.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 4096];
            let n = busy.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"), "{:?}", &buf[..n]);
            std::thread::sleep(TIMEOUT / 2);
        }
    })
    .await
    .unwrap();
}

/// The first line the server answers on `s` (within 5 s).
fn status_line(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer ({e}); got {got:?}"),
        }
    }
    String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_string()
}

const LOGIN_HEAD: &[u8] = b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\n\
Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n";

/// A body trickling in (a byte every 100 ms, `Content-Length: 1000000`) on a route that reads
/// it: the request counts as being served, so the idle sweeper leaves it alone; the minimum
/// body rate cuts it off with a 408 once the grace period is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_is_cut_off_with_408() {
    let limits =
        Limits { body_grace: Duration::from_millis(400), body_min_rate: 1000, ..Limits::default() };
    let server = start_with(TIMEOUT, Some("admin-key"), limits).await;
    let port = server.port;
    tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
        slow.write_all(LOGIN_HEAD).unwrap();
        let writer = slow.try_clone().unwrap();
        let trickle = std::thread::spawn(move || {
            let mut writer = writer;
            for _ in 0..60 {
                std::thread::sleep(Duration::from_millis(100));
                if writer.write_all(b"k").is_err() {
                    return;
                }
            }
        });
        let (sent, after) = until_closed(slow);
        let sent = String::from_utf8_lossy(&sent);
        assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
        assert!(after < Duration::from_secs(3), "cut off after {after:?}");
        trickle.join().unwrap();
        // Others are served meanwhile and after.
        let mut other = TcpStream::connect(("127.0.0.1", port)).unwrap();
        other.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(status_line(&mut other), "HTTP/1.1 200 OK");
    })
    .await
    .unwrap();
}

/// With the dashboard off, its sign-in answers 404 at once, without waiting for a body it will
/// not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_route_answers_before_its_body_arrives() {
    let server = start_with(Duration::from_secs(10), None, Limits::default()).await;
    let port = server.port;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(LOGIN_HEAD).unwrap();
        assert_eq!(status_line(&mut s), "HTTP/1.1 404 Not Found");
    })
    .await
    .unwrap();
}

/// Past the per-peer and the total connection limits a new connection gets a 503 and is closed;
/// a closed connection frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limits_get_503() {
    let per_peer =
        Limits { max_connections: 100, max_connections_per_peer: 3, ..Limits::default() };
    let server = start_with(Duration::from_secs(10), None, per_peer).await;
    let port = server.port;
    tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> =
            (0..3).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        // Let the server accept them before the next one.
        std::thread::sleep(Duration::from_millis(200));
        let mut fourth = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(status_line(&mut fourth), "HTTP/1.1 503 Service Unavailable");
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        let mut again = TcpStream::connect(("127.0.0.1", port)).unwrap();
        again.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(status_line(&mut again), "HTTP/1.1 200 OK");
    })
    .await
    .unwrap();

    let total = Limits { max_connections: 2, max_connections_per_peer: 2, ..Limits::default() };
    let server = start_with(Duration::from_secs(10), None, total).await;
    let port = server.port;
    tokio::task::spawn_blocking(move || {
        let _held: Vec<TcpStream> =
            (0..2).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(status_line(&mut third), "HTTP/1.1 503 Service Unavailable");
    })
    .await
    .unwrap();
}
