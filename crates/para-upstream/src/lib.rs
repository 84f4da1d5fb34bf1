//! The proxy's HTTP/1.1 client: keep-alive connections per origin (scheme, host, port), plain
//! TCP or TLS (rustls with the platform's verifier, as reqwest verifies), driven by the
//! request's own task.
//!
//! Compared with going through reqwest (hyper-util's pooled client), a request here does no
//! URL parsing (the proxy hands over an origin it resolved once per credential and a checked
//! path), no pool-key building, no connector layers, and no hand-over to a connection task and
//! back: the request's task writes the request and reads the answer on the socket itself, so
//! an exchange costs the system calls it needs and little more. The message rules are
//! hyper's (which reqwest uses): informational answers skipped, no body for `HEAD`, 204 and
//! 304, `Transfer-Encoding: chunked` before `Content-Length`, differing or invalid lengths
//! refused, otherwise read until the connection closes; at most 100 header lines and a
//! 400 KiB head; trailers dropped. A connection is reused only after its last answer was read
//! to the end, with HTTP/1.1 keep-alive and nothing left over; an idle one that became readable
//! (the server closed it) is dropped unused.
//!
//! Timeouts are reqwest's: 10 s to connect (name lookup, TCP, TLS), 60 s for the whole
//! exchange including the body. Connections idle for 90 s are not reused; at most 256 idle ones
//! are kept per origin.
//!
//! When the environment names an outgoing proxy (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
//! lower case too), requests go through the server's reqwest client instead, which honours it
//! (and `NO_PROXY`) as before.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const MAX_IDLE_PER_ORIGIN: usize = 256;
/// Distinct origins remembered before unused ones are forgotten.
const MAX_ORIGINS: usize = 10_000;
/// hyper's limits for an answer's head.
const MAX_HEADERS: usize = 100;
const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Chunk extensions and trailers beyond this are refused.
const MAX_CHUNK_META: usize = 16 * 1024;
/// The read buffer of a connection, and how much is read at once.
const READ_SIZE: usize = 16 * 1024;
/// A request body up to this size goes out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

/// Where requests go: scheme, host and port, and the idle connections there.
pub struct Origin {
    https: bool,
    /// The host as a URL writes it (IPv6 in brackets), for messages.
    host: String,
    /// The host to resolve or connect to (IPv6 without brackets).
    name: String,
    ip: Option<IpAddr>,
    port: u16,
    idle: Mutex<Vec<(Connection, Instant)>>,
}

impl Origin {
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The most recently used idle connection still open and not idle for too long.
    fn take_idle(&self, now: Instant) -> Option<Connection> {
        let mut idle = self.idle.lock().expect("idle connections");
        while let Some((c, since)) = idle.pop() {
            if now.saturating_duration_since(since) < IDLE_TIMEOUT && !c.became_readable() {
                return Some(c);
            }
        }
        None
    }

    /// Keeps a connection whose last answer was read to the end (`since`: when its last
    /// exchange began).
    fn put_idle(&self, mut c: Connection, since: Instant) {
        if c.buf.len() > 4 * READ_SIZE {
            // A large head grew it: back to the usual size.
            c.buf.truncate(READ_SIZE);
            c.buf.shrink_to_fit();
        }
        let mut idle = self.idle.lock().expect("idle connections");
        if idle.len() >= MAX_IDLE_PER_ORIGIN {
            // The oldest goes.
            idle.remove(0);
        }
        idle.push((c, since));
    }
}

/// Why an exchange with the upstream failed.
#[derive(Debug)]
pub enum Failure {
    /// No connection within the connect timeout, or no (whole) answer within the total one.
    Timeout(&'static str),
    Other(String),
}

impl Failure {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Failure::Timeout(_))
    }

    fn of(e: &dyn std::error::Error) -> Failure {
        Failure::Other(error_chain(e))
    }

    fn other(message: impl Into<String>) -> Failure {
        Failure::Other(message.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout(what) => f.write_str(what),
            Failure::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

/// The client. One per server.
pub struct Client {
    origins: Mutex<HashMap<(bool, String, u16), Arc<Origin>>>,
    tls: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
    /// Set when the environment names an outgoing proxy: reqwest honours it.
    via_proxy: Option<reqwest::Client>,
}

impl Client {
    /// `via_proxy` (given when the environment names an outgoing proxy, `HTTPS_PROXY` and the
    /// like, which reqwest honours) carries every request instead of the keep-alive
    /// connections, which do not speak to proxies.
    pub fn new(via_proxy: Option<reqwest::Client>) -> Client {
        Client { origins: Mutex::default(), tls: OnceLock::new(), via_proxy }
    }

    /// The origin of an `http(s)` URL (its idle connections are shared by all its users).
    pub fn origin(&self, url: &url::Url) -> Option<Arc<Origin>> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let port = url.port_or_known_default()?;
        let (host, name, ip) = match url.host()? {
            url::Host::Domain(d) => (d.to_string(), d.to_string(), None),
            url::Host::Ipv4(ip) => (ip.to_string(), ip.to_string(), Some(IpAddr::V4(ip))),
            url::Host::Ipv6(ip) => (format!("[{ip}]"), ip.to_string(), Some(IpAddr::V6(ip))),
        };
        let mut origins = self.origins.lock().expect("origins");
        if let Some(o) = origins.get(&(https, host.clone(), port)) {
            return Some(o.clone());
        }
        if origins.len() >= MAX_ORIGINS {
            origins.retain(|_, o| Arc::strong_count(o) > 1);
        }
        let origin =
            Arc::new(Origin { https, host: host.clone(), name, ip, port, idle: Mutex::default() });
        origins.insert((https, host, port), origin.clone());
        Some(origin)
    }

    /// Sends a request to `origin`. The answer keeps the headers `keep` accepts; a body that
    /// came with its head is answered whole, a longer one streams as it arrives.
    pub async fn send(
        &self,
        origin: &Arc<Origin>,
        request: Outgoing,
        keep: fn(&HeaderName) -> bool,
    ) -> Result<Response<Answer>, Failure> {
        // The rare paths (an outgoing proxy, a new connection) are boxed: their futures would
        // otherwise make every request's future larger, and each request moves it into a box.
        if let Some(client) = &self.via_proxy {
            return Box::pin(via_reqwest(client, origin, request, keep)).await;
        }
        let now = Instant::now();
        let deadline = now + TOTAL_TIMEOUT;
        let (mut c, mut reused) = match origin.take_idle(now) {
            Some(c) => (c, true),
            None => (Box::pin(self.connect(origin)).await?, false),
        };
        // The connection's timer, moved to the new deadline (later: no re-registration).
        let mut timer =
            c.timer.take().unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().reset(deadline);
        let (parts, body) = loop {
            let outcome = {
                let mut exchange = std::pin::pin!(c.exchange(&request, keep));
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
                        return Poll::Ready(Some(result));
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    Poll::Pending
                })
                .await
            };
            match outcome {
                None => return Err(Failure::Timeout("no answer within 60 s")),
                Some(Ok(answer)) => break answer,
                // A kept connection the server had closed meanwhile: nothing of an answer
                // came. A request that may be repeated goes again, on a new connection.
                Some(Err(_)) if reused && !c.received && replayable(&request.method) => {
                    reused = false;
                    c = Box::pin(self.connect(origin)).await?;
                }
                Some(Err(e)) => return Err(e),
            }
        };
        let body = match body {
            Body::Whole(bytes, reusable) => {
                if reusable {
                    c.timer = Some(timer);
                    origin.put_idle(c, now);
                }
                Answer(Kind::Whole(Some(bytes)))
            }
            Body::Rest(framing, reusable) => Answer(Kind::Streamed(Streamed {
                connection: Some(c),
                origin: origin.clone(),
                framing,
                reusable,
                since: now,
                timer: Some(timer),
            })),
        };
        Ok(Response::from_parts(parts, body))
    }

    async fn connect(&self, origin: &Origin) -> Result<Connection, Failure> {
        let connecting = async {
            let tcp = tcp_connect(origin).await?;
            let io = if origin.https {
                let tls = self
                    .tls
                    .get_or_init(tls_connector)
                    .clone()
                    .map_err(|e| Failure::other(format!("TLS is not available: {e}")))?;
                let name = rustls::pki_types::ServerName::try_from(origin.name.clone())
                    .map_err(|e| Failure::other(format!("`{}`: {e}", origin.name)))?;
                let tls = tls.connect(name, tcp).await.map_err(|e| Failure::of(&e))?;
                Stream::Tls(Box::new(tls))
            } else {
                Stream::Plain(tcp)
            };
            Ok(Connection {
                io,
                buf: vec![0; READ_SIZE],
                start: 0,
                end: 0,
                out: Vec::new(),
                received: false,
                timer: None,
            })
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout("no connection within 10 s")),
        }
    }
}

/// Methods whose requests may be sent again when a kept connection turns out closed before
/// any answer came (as browsers and Go's client do).
fn replayable(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// A request for [`Client::send`].
pub struct Outgoing {
    pub method: Method,
    /// The path and query, encoded (nothing in it needs encoding).
    pub target: String,
    /// With `Host`; `Content-Length` is added for a body.
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An answer's body after its head: all of it (and whether the connection may be reused), or
/// what is left to read.
enum Body {
    Whole(Bytes, bool),
    Rest(Framing, bool),
}

async fn tcp_connect(origin: &Origin) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = match origin.ip {
        Some(ip) => vec![SocketAddr::new(ip, origin.port)],
        None => tokio::net::lookup_host((origin.name.as_str(), origin.port))
            .await
            .map_err(|e| Failure::other(format!("looking up {}: {e}", origin.name)))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Failure::other(format!("{} has no address", origin.name)));
    }
    // As hyper's connector does: the connect timeout is shared among the addresses.
    let each = CONNECT_TIMEOUT / addrs.len() as u32;
    let mut last = String::new();
    for addr in &addrs {
        match tokio::time::timeout(each, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(15))
                    .with_interval(Duration::from_secs(15))
                    .with_retries(3);
                let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
                return Ok(tcp);
            }
            Ok(Err(e)) => last = format!("connecting to {addr}: {e}"),
            Err(_) => last = format!("connecting to {addr}: timed out"),
        }
    }
    Err(Failure::Other(last))
}

/// rustls with the platform's verifier, HTTP/1.1 only.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier =
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A connection's byte stream.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One kept-alive connection and its read buffer (`buf[start..end]` is read, not consumed).
struct Connection {
    io: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The request being written (its capacity is kept for the next one).
    out: Vec<u8>,
    /// Whether any byte of an answer arrived in the current exchange.
    received: bool,
    /// The timer of the exchange's deadline, kept between exchanges (moving it later is an
    /// atomic store, not a new registration with the runtime's timers).
    timer: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The next `n` buffered bytes (`n <= buffered()`), consumed.
    fn take(&mut self, n: usize) -> Bytes {
        let bytes = Bytes::copy_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        bytes
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into `buf[end..]`: buffered bytes moved to the front, the buffer grown
    /// when full.
    fn make_room(&mut self) {
        if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() + READ_SIZE, 0);
        }
    }

    /// Reads more; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, Failure> {
        self.make_room();
        let end = self.end;
        let n = self.io.read(&mut self.buf[end..]).await.map_err(|e| Failure::of(&e))?;
        self.end += n;
        self.received |= n > 0;
        Ok(n)
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Failure>> {
        self.make_room();
        let mut read = ReadBuf::new(&mut self.buf[self.end..]);
        match Pin::new(&mut self.io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(Failure::of(&e))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Whether an idle connection has something to read: the server closed it (or sent bytes
    /// nobody asked for). Asks the runtime's readiness, without a system call.
    fn became_readable(&self) -> bool {
        if self.buffered() > 0 {
            return true;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.io.tcp().poll_read_ready(&mut cx).is_ready()
    }

    /// Writes the request, reads the answer's head and, when it is there, its body.
    async fn exchange(
        &mut self,
        request: &Outgoing,
        keep: fn(&HeaderName) -> bool,
    ) -> Result<(http::response::Parts, Body), Failure> {
        self.received = false;
        self.write_request(request).await?;
        let head_request = request.method == Method::HEAD;
        let (parts, mut framing, keep_alive) = loop {
            if let Some(head) = self.parse_head(head_request, keep)? {
                break head;
            }
            if self.fill().await? == 0 {
                return Err(Failure::other("the connection closed before an answer came"));
            }
        };
        let reusable = keep_alive && !matches!(framing, Framing::Close);
        // The body, if it is all there already.
        match &mut framing {
            Framing::Length(n) => {
                if self.buffered() >= *n {
                    let body = self.take(*n);
                    return Ok((parts, Body::Whole(body, reusable && self.buffered() == 0)));
                }
            }
            Framing::Chunked(decoder) => {
                let mut data = Vec::new();
                loop {
                    match decoder.step(self)? {
                        Step::Data(bytes) => data.extend_from_slice(&bytes),
                        Step::Done => {
                            let whole = reusable && self.buffered() == 0;
                            return Ok((parts, Body::Whole(Bytes::from(data), whole)));
                        }
                        Step::NeedMore => {
                            if !data.is_empty() {
                                decoder.pending = Some(Bytes::from(data));
                            }
                            break;
                        }
                    }
                }
            }
            Framing::Close => {}
        }
        Ok((parts, Body::Rest(framing, reusable)))
    }

    /// Writes the request line, headers (with `Content-Length` for a body) and body.
    async fn write_request(&mut self, request: &Outgoing) -> Result<(), Failure> {
        let out = &mut self.out;
        out.clear();
        let body = &request.body;
        out.extend_from_slice(request.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(request.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &request.headers {
            // The body's framing is ours to write.
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let inline = body.len() <= INLINE_BODY;
        if inline {
            out.extend_from_slice(body);
        }
        let write = |e: std::io::Error| Failure::of(&e);
        self.io.write_all(&self.out).await.map_err(write)?;
        if !inline {
            self.io.write_all(body).await.map_err(write)?;
        }
        Ok(())
    }

    /// The answer's head from the buffer: its parts (status, headers), how its body is framed
    /// and whether the connection may be kept. `None`: not all there yet. Informational
    /// answers are skipped.
    fn parse_head(
        &mut self,
        head_request: bool,
        keep: fn(&HeaderName) -> bool,
    ) -> Result<Option<(http::response::Parts, Framing, bool)>, Failure> {
        loop {
            if self.buffered() == 0 {
                return Ok(None);
            }
            // Left uninitialised: filling 100 slots cost more than parsing a short head.
            let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut []);
            let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut parsed,
                self.data(),
                &mut slots,
            ) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => {
                    if self.buffered() > MAX_HEAD {
                        return Err(Failure::other("the answer's head is too large"));
                    }
                    return Ok(None);
                }
                Err(e) => return Err(Failure::other(format!("the answer is not HTTP: {e}"))),
            };
            if len > MAX_HEAD {
                return Err(Failure::other("the answer's head is too large"));
            }
            let code = parsed.code.unwrap_or(0);
            let status = StatusCode::from_u16(code)
                .map_err(|_| Failure::other(format!("the answer's status {code} is not valid")))?;
            if matches!(code, 100 | 102..=199) {
                self.consume(len);
                continue;
            }
            let http11 = parsed.version == Some(1);
            // One copy of the head: header values are slices of it.
            let head = Bytes::copy_from_slice(&self.buf[self.start..self.start + len]);
            let base = self.buf[self.start..].as_ptr() as usize;
            let mut headers = HeaderMap::with_capacity(parsed.headers.len());
            let mut keep_alive = http11;
            let mut saw_close = false;
            let mut lengths = Lengths::default();
            let mut transfer_encoding = None;
            for h in parsed.headers.iter() {
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| Failure::other(format!("`{}` is not a header name", h.name)))?;
                if name == header::CONNECTION {
                    if saw_close || has_token(h.value, "close") {
                        saw_close = true;
                        keep_alive = false;
                    } else if !keep_alive {
                        keep_alive = has_token(h.value, "keep-alive");
                    }
                } else if name == header::TRANSFER_ENCODING {
                    transfer_encoding = Some(h.value);
                } else if name == header::CONTENT_LENGTH {
                    lengths.add(h.value);
                }
                if keep(&name) {
                    let at = h.value.as_ptr() as usize - base;
                    let value = HeaderValue::from_maybe_shared(head.slice(at..at + h.value.len()))
                        .map_err(|_| Failure::other(format!("the `{name}` header is not valid")))?;
                    headers.append(name, value);
                }
            }
            if code == 101 {
                return Err(Failure::other("the upstream switched protocols (101)"));
            }
            let framing = framing(status, head_request, http11, transfer_encoding, &lengths)?;
            self.consume(len);
            let mut parts = Response::new(()).into_parts().0;
            parts.status = status;
            parts.headers = headers;
            return Ok(Some((parts, framing, keep_alive)));
        }
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitively).
fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The `Content-Length` lines of an answer: all must agree (lists too).
#[derive(Default)]
struct Lengths {
    present: bool,
    invalid: bool,
    value: Option<u64>,
}

impl Lengths {
    fn add(&mut self, line: &[u8]) {
        self.present = true;
        for part in line.split(|&b| b == b',') {
            let part = part.trim_ascii();
            let n = (!part.is_empty() && part.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(part).ok()?.parse::<u64>().ok())
                .flatten();
            match n {
                Some(n) if self.value.is_none_or(|v| v == n) => self.value = Some(n),
                _ => self.invalid = true,
            }
        }
    }
}

/// How an answer's body is delimited (RFC 9112 § 6.3, as hyper reads it): the last
/// `Transfer-Encoding` line, the `Content-Length` lines.
fn framing(
    status: StatusCode,
    head_request: bool,
    http11: bool,
    transfer_encoding: Option<&[u8]>,
    lengths: &Lengths,
) -> Result<Framing, Failure> {
    if matches!(status.as_u16(), 204 | 304) || head_request {
        return Ok(Framing::Length(0));
    }
    if let Some(te) = transfer_encoding {
        if !http11 {
            return Err(Failure::other("an HTTP/1.0 answer has a Transfer-Encoding header"));
        }
        let last = te.rsplit(|&b| b == b',').next().unwrap_or_default();
        let chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        return Ok(if chunked { Framing::Chunked(Chunked::default()) } else { Framing::Close });
    }
    if lengths.invalid {
        return Err(Failure::other("the answer's Content-Length is not valid"));
    }
    Ok(match lengths.value {
        Some(n) => Framing::Length(
            usize::try_from(n)
                .map_err(|_| Failure::other("the answer's Content-Length is not valid"))?,
        ),
        None => Framing::Close,
    })
}

/// How much of a body is left to read.
enum Framing {
    /// This many bytes.
    Length(usize),
    /// Chunks, until the last one.
    Chunked(Chunked),
    /// Until the connection closes.
    Close,
}

/// The state of reading `Transfer-Encoding: chunked`.
#[derive(Default)]
struct Chunked {
    /// Bytes of the current chunk still to come; `None`: a size line is next.
    left: Option<u64>,
    /// The chunk's data was read: its CRLF is next.
    crlf: bool,
    /// The last chunk was read: trailer lines follow, up to an empty line.
    trailers: bool,
    /// Bytes of chunk extensions and trailers seen (limited).
    meta: usize,
    /// Data decoded while reading the head, not yet handed out.
    pending: Option<Bytes>,
}

enum Step {
    Data(Bytes),
    NeedMore,
    Done,
}

impl Chunked {
    /// Decodes what the buffer holds: some data, the end, or a need for more bytes.
    fn step(&mut self, c: &mut Connection) -> Result<Step, Failure> {
        let bad = |what: &str| Failure::other(format!("the chunked answer is malformed: {what}"));
        loop {
            if self.trailers {
                let data = c.data();
                let Some(eol) = data.iter().position(|&b| b == b'\n') else {
                    self.meta += data.len();
                    if self.meta > MAX_CHUNK_META {
                        return Err(bad("trailers too large"));
                    }
                    return Ok(Step::NeedMore);
                };
                let line = &data[..eol];
                let empty = line.is_empty() || line == b"\r";
                self.meta += eol + 1;
                c.consume(eol + 1);
                if empty {
                    return Ok(Step::Done);
                }
                if self.meta > MAX_CHUNK_META {
                    return Err(bad("trailers too large"));
                }
                continue;
            }
            if self.crlf {
                let data = c.data();
                if data.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &data[..2] != b"\r\n" {
                    return Err(bad("no CRLF after a chunk"));
                }
                c.consume(2);
                self.crlf = false;
                continue;
            }
            match self.left {
                Some(0) => {
                    self.left = None;
                    self.crlf = true;
                }
                Some(left) => {
                    if c.buffered() == 0 {
                        return Ok(Step::NeedMore);
                    }
                    let n = c.buffered().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let bytes = c.take(n);
                    self.left = Some(left - n as u64);
                    return Ok(Step::Data(bytes));
                }
                None => {
                    let data = c.data();
                    let Some(eol) = data.iter().position(|&b| b == b'\n') else {
                        if data.len() > MAX_CHUNK_META {
                            return Err(bad("size line too long"));
                        }
                        return Ok(Step::NeedMore);
                    };
                    let line = data[..eol].strip_suffix(b"\r").ok_or_else(|| bad("bare LF"))?;
                    let (size, extension) = match line.iter().position(|&b| b == b';') {
                        Some(at) => (&line[..at], &line[at..]),
                        None => (line, &line[..0]),
                    };
                    let size = size.trim_ascii_end();
                    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit)
                    {
                        return Err(bad("invalid chunk size"));
                    }
                    let size = std::str::from_utf8(size)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| bad("invalid chunk size"))?;
                    self.meta += extension.len();
                    if self.meta > MAX_CHUNK_META {
                        return Err(bad("chunk extensions too large"));
                    }
                    c.consume(eol + 1);
                    if size == 0 {
                        self.trailers = true;
                    } else {
                        self.left = Some(size);
                    }
                }
            }
        }
    }
}

/// An answer's body as it arrives, within the exchange's deadline. Read to the end, it gives
/// its connection back for the next request; dropped before, the connection closes.
struct Streamed {
    connection: Option<Connection>,
    origin: Arc<Origin>,
    framing: Framing,
    reusable: bool,
    /// When the exchange began.
    since: Instant,
    /// At the exchange's deadline (back with the connection when it is kept).
    timer: Option<Pin<Box<Sleep>>>,
}

impl Streamed {
    /// The body was read to the end.
    fn finish(&mut self) {
        if let Some(mut c) = self.connection.take()
            && self.reusable
            && c.buffered() == 0
        {
            c.timer = self.timer.take();
            self.origin.put_idle(c, self.since);
        }
    }

    fn fail(&mut self, failure: Failure) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        self.connection = None;
        Poll::Ready(Some(Err(failure)))
    }
}

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = Failure;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        let this = self.get_mut();
        loop {
            let Some(c) = this.connection.as_mut() else { return Poll::Ready(None) };
            // What the buffer gives.
            let data = match &mut this.framing {
                Framing::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    let n = c.buffered().min(*left);
                    *left -= n;
                    (n > 0).then(|| c.take(n))
                }
                Framing::Close => {
                    let n = c.buffered();
                    (n > 0).then(|| c.take(n))
                }
                Framing::Chunked(decoder) => match decoder.pending.take() {
                    Some(bytes) => Some(bytes),
                    None => match decoder.step(c) {
                        Ok(Step::Data(bytes)) => Some(bytes),
                        Ok(Step::Done) => {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Step::NeedMore) => None,
                        Err(e) => return this.fail(e),
                    },
                },
            };
            if let Some(bytes) = data {
                if matches!(this.framing, Framing::Length(0)) {
                    this.finish();
                }
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            // Read more.
            match c.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    if matches!(this.framing, Framing::Close) {
                        this.connection = None;
                        return Poll::Ready(None);
                    }
                    return this.fail(Failure::other(
                        "the connection closed before the end of the answer",
                    ));
                }
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(e)) => return this.fail(e),
                Poll::Pending => {
                    if this.timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready()) {
                        return this
                            .fail(Failure::Timeout("the answer did not arrive within 60 s"));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.connection.is_none() || matches!(self.framing, Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.framing, &self.connection) {
            (_, None) => SizeHint::with_exact(0),
            (Framing::Length(n), Some(_)) => SizeHint::with_exact(*n as u64),
            _ => SizeHint::default(),
        }
    }
}

/// An answer's body: whole when it came with its head, else read from the connection as the
/// caller polls (the connection goes back to its origin's idle ones once the body is read to
/// its end), or reqwest's when an outgoing proxy carried the request.
pub struct Answer(Kind);

enum Kind {
    Whole(Option<Bytes>),
    Streamed(Streamed),
    Reqwest(reqwest::Body),
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Kind::Whole(_) => "Answer(whole)",
            Kind::Streamed(_) => "Answer(streamed)",
            Kind::Reqwest(_) => "Answer(reqwest)",
        })
    }
}

impl Answer {
    /// A body of these bytes (for answers made without an exchange, e.g. in tests).
    pub fn whole(bytes: Bytes) -> Answer {
        Answer(Kind::Whole(Some(bytes)))
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = Failure;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        match &mut self.get_mut().0 {
            Kind::Whole(bytes) => {
                Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))))
            }
            Kind::Streamed(s) => Pin::new(s).poll_frame(cx),
            Kind::Reqwest(b) => Pin::new(b).poll_frame(cx).map_err(|e| Failure::of(&e)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Whole(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Streamed(s) => s.is_end_stream(),
            Kind::Reqwest(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Streamed(s) => s.size_hint(),
            Kind::Reqwest(b) => b.size_hint(),
        }
    }
}

/// An error with its causes, `: `-separated (a client's top-level message alone hides
/// "connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The same exchange through reqwest (an outgoing proxy is configured).
async fn via_reqwest(
    client: &reqwest::Client,
    origin: &Origin,
    request: Outgoing,
    keep: fn(&HeaderName) -> bool,
) -> Result<Response<Answer>, Failure> {
    let url = format!("{}://{}:{}{}", origin.scheme(), origin.host, origin.port, request.target);
    let mut builder = client.request(request.method, url).headers(request.headers);
    if !request.body.is_empty() {
        builder = builder.body(request.body);
    }
    let response = builder.send().await.map_err(|e| {
        if e.is_timeout() { Failure::Timeout("timed out") } else { Failure::of(&e) }
    })?;
    let mut response: Response<reqwest::Body> = response.into();
    let headers = response.headers_mut();
    while let Some(name) = headers.keys().find(|n| !keep(n)).cloned() {
        headers.remove(name);
    }
    Ok(response.map(|body| Answer(Kind::Reqwest(body))))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt as _;
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[test]
    fn origins_are_shared_and_keyed_by_scheme_host_and_port() {
        let client = Client::new(None);
        let url = |s: &str| url::Url::parse(s).unwrap();
        let a = client.origin(&url("http://127.0.0.1:9000/v1")).unwrap();
        let b = client.origin(&url("http://127.0.0.1:9000/other")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = client.origin(&url("https://127.0.0.1:9000/v1")).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        let d = client.origin(&url("http://[::1]/")).unwrap();
        assert_eq!((d.host(), d.name.as_str(), d.port), ("[::1]", "::1", 80));
        assert_eq!(d.ip, Some("::1".parse().unwrap()));
        let e = client.origin(&url("https://API.Example.com/")).unwrap();
        assert_eq!((e.host(), e.port, e.ip), ("api.example.com", 443, None));
        assert!(client.origin(&url("ftp://example.com/")).is_none());
    }

    #[test]
    fn content_lengths_must_agree() {
        let lengths = |lines: &[&str]| {
            let mut l = Lengths::default();
            for line in lines {
                l.add(line.as_bytes());
            }
            (l.invalid, l.value)
        };
        assert_eq!(lengths(&["12"]), (false, Some(12)));
        assert_eq!(lengths(&["12", " 12 "]), (false, Some(12)));
        assert_eq!(lengths(&["12, 12"]), (false, Some(12)));
        assert_eq!(lengths(&["12", "13"]), (true, Some(12)));
        for bad in ["", "-1", "+1", "1 2", "0x10", "99999999999999999999"] {
            assert!(lengths(&[bad]).0, "{bad:?}");
        }
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(!has_token(b"closed", "close"));
    }

    /// One scripted answer: written in these pieces (with pauses between), then the
    /// connection is closed when `close`.
    struct Reply {
        pieces: Vec<Vec<u8>>,
        close: bool,
    }

    fn reply(text: &str) -> Reply {
        Reply { pieces: vec![text.as_bytes().to_vec()], close: false }
    }

    /// A server answering requests with the scripted replies in order; it counts connections
    /// and records each request's head.
    struct Fake {
        origin: Arc<Origin>,
        connections: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<String>>>,
    }

    async fn fake(client: &Client, replies: Vec<Reply>) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let (replies, seen) = (replies.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // A request: its head, and a body of its Content-Length.
                        let head_end = loop {
                            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            let n = socket.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        };
                        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                        while buf.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            let n = socket.read(&mut chunk).await.unwrap();
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        buf.drain(..head_end + length);
                        seen.lock().unwrap().push(head);
                        let Some(reply) = replies.lock().unwrap().pop_front() else { return };
                        for (i, piece) in reply.pieces.iter().enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            socket.write_all(piece).await.unwrap();
                        }
                        if reply.close {
                            return;
                        }
                    }
                });
            }
        });
        Fake { origin: client.origin(&url).unwrap(), connections, requests }
    }

    fn get(target: &str) -> Outgoing {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("upstream"));
        Outgoing { method: Method::GET, target: target.into(), headers, body: Bytes::new() }
    }

    fn everything(_: &HeaderName) -> bool {
        true
    }

    /// Status, body (or the body's error) of one exchange.
    async fn call(
        client: &Client,
        fake: &Fake,
        request: Outgoing,
    ) -> (u16, Result<Vec<u8>, String>) {
        let res = client.send(&fake.origin, request, everything).await.unwrap();
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.map(|c| c.to_bytes().to_vec());
        (status, body.map_err(|e| e.to_string()))
    }

    #[tokio::test]
    async fn lengths_chunks_and_connection_reuse() {
        let client = Client::new(None);
        let chunked = Reply {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
                    .to_vec(),
                b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            ],
            close: false,
        };
        let split_length = Reply {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234".to_vec(),
                b"56789".to_vec(),
            ],
            close: false,
        };
        let f = fake(
            &client,
            vec![
                reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nfirst"),
                reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
                chunked,
                split_length,
                reply("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
                reply("HTTP/1.1 204 No Content\r\n\r\n"),
                reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
                reply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"),
            ],
        )
        .await;
        let res = client.send(&f.origin, get("/a?x=1"), everything).await.unwrap();
        assert_eq!(res.headers()["x-a"], "1");
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "first");
        assert_eq!(call(&client, &f, get("/b")).await, (200, Ok(b"abc".to_vec())));
        assert_eq!(call(&client, &f, get("/c")).await, (200, Ok(b"hello world".to_vec())));
        assert_eq!(call(&client, &f, get("/d")).await, (200, Ok(b"0123456789".to_vec())));
        assert_eq!(call(&client, &f, get("/e")).await, (201, Ok(b"ok".to_vec())));
        assert_eq!(call(&client, &f, get("/f")).await, (204, Ok(Vec::new())));
        let mut head = get("/g");
        head.method = Method::HEAD;
        assert_eq!(call(&client, &f, head).await, (200, Ok(Vec::new())));
        let mut post = get("/h");
        post.method = Method::POST;
        post.body = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(call(&client, &f, post).await, (200, Ok(b"last".to_vec())));
        assert_eq!(f.connections.load(Ordering::SeqCst), 1, "one kept-alive connection");
        let requests = f.requests.lock().unwrap().clone();
        assert_eq!(requests[0], "GET /a?x=1 HTTP/1.1\r\nhost: upstream\r\n\r\n");
        assert_eq!(requests[7], "POST /h HTTP/1.1\r\nhost: upstream\r\ncontent-length: 7\r\n\r\n");
    }

    #[tokio::test]
    async fn answers_that_end_the_connection_are_not_reused() {
        let client = Client::new(None);
        let until_close = Reply {
            pieces: vec![b"HTTP/1.1 200 OK\r\n\r\nall ".to_vec(), b"of it".to_vec()],
            close: true,
        };
        let f = fake(
            &client,
            vec![
                reply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na"),
                until_close,
                reply("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nc"),
                reply("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nd"),
                reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ne"),
                // Closed by the server after answering, without saying so.
                Reply {
                    pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nf".to_vec()],
                    close: true,
                },
                reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ng"),
            ],
        )
        .await;
        assert_eq!(call(&client, &f, get("/1")).await, (200, Ok(b"a".to_vec())));
        assert_eq!(call(&client, &f, get("/2")).await, (200, Ok(b"all of it".to_vec())));
        assert_eq!(call(&client, &f, get("/3")).await, (200, Ok(b"c".to_vec())));
        assert_eq!(f.connections.load(Ordering::SeqCst), 3);
        assert_eq!(call(&client, &f, get("/4")).await, (200, Ok(b"d".to_vec())));
        assert_eq!(call(&client, &f, get("/5")).await, (200, Ok(b"e".to_vec())));
        assert_eq!(f.connections.load(Ordering::SeqCst), 4, "HTTP/1.0 keep-alive is kept");
        assert_eq!(call(&client, &f, get("/6")).await, (200, Ok(b"f".to_vec())));
        // The kept connection is closed: a GET goes again on a new one.
        assert_eq!(call(&client, &f, get("/7")).await, (200, Ok(b"g".to_vec())));
        assert_eq!(f.connections.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn malformed_answers_fail() {
        let client = Client::new(None);
        let cut = Reply {
            pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec()],
            close: true,
        };
        let bad_chunk = Reply {
            pieces: vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec()],
            close: true,
        };
        let bad_later = Reply {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n".to_vec(),
                b"2\r\nnoCRLF".to_vec(),
            ],
            close: true,
        };
        let f = fake(
            &client,
            vec![
                reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
                cut,
                bad_chunk,
                reply("NOT HTTP\r\n\r\n"),
            ],
        )
        .await;
        let later = fake(&client, vec![bad_later]).await;
        let (status, body) = call(&client, &later, get("/")).await;
        assert_eq!(status, 200);
        assert!(body.unwrap_err().contains("no CRLF after a chunk"));
        let e = client.send(&f.origin, get("/1"), everything).await.unwrap_err();
        assert!(e.to_string().contains("Content-Length"), "{e}");
        let (status, body) = call(&client, &f, get("/2")).await;
        assert_eq!(status, 200);
        assert!(body.unwrap_err().contains("closed before the end"));
        // Found while the rest of the answer was read with its head.
        let e = client.send(&f.origin, get("/3"), everything).await.unwrap_err();
        assert!(e.to_string().contains("chunk"), "{e}");
        let e = client.send(&f.origin, get("/4"), everything).await.unwrap_err();
        assert!(e.to_string().contains("not HTTP"), "{e}");
    }

    #[tokio::test]
    async fn answers_keep_only_the_headers_asked_for() {
        let client = Client::new(None);
        let f = fake(
            &client,
            vec![reply(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=b\r\nX-Many: 1\r\nX-Many: 2\r\nContent-Length: 2\r\n\r\nhi",
            )],
        )
        .await;
        fn no_cookie(name: &HeaderName) -> bool {
            name != header::SET_COOKIE && name != header::CONTENT_LENGTH
        }
        let res = client.send(&f.origin, get("/"), no_cookie).await.unwrap();
        let names: Vec<_> =
            res.headers().iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap())).collect();
        assert_eq!(names, ["content-type: text/plain", "x-many: 1", "x-many: 2"]);
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hi");
    }
}
