//! Connections as the server keeps them (`server.rs`): a client that stalls while sending a
//! request's head, or leaves a keep-alive connection idle, is cut off after the header timeout,
//! while a client that keeps talking is served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use para_server::{AppState, ServerConfig};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_millis(300);

async fn start() -> (u16, tokio::sync::oneshot::Sender<()>) {
    let (store, verifier, secrets) = common::essentials("sqlite::memory:").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = ServerConfig {
        project_root: common::keys_root().clone(),
        public_url: format!("http://127.0.0.1:{port}"),
        admin_key: None,
        oauth_clients: Default::default(),
        header_timeout: TIMEOUT,
    };
    let state = AppState::new(config, common::build("p-conn", json!({})), store, verifier, secrets);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(para_server::serve_on(state, listener, async move {
        let _ = stopped.await;
    }));
    (port, stop)
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
    let (port, _stop) = start().await;
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
