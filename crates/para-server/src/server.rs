//! The HTTP server: accepts connections and serves each with hyper's HTTP/1.1 connection.
//! Proxy requests (`/projects/{id}/sdk/proxy/…`, the hot path) go straight to the proxy's
//! handler with the same CORS handling; everything else goes through the axum router.
//!
//! Compared with `axum::serve` this skips, per request, the router's matching, its
//! extractor and handler plumbing and response post-processing for the proxy, and per
//! connection the HTTP-version sniffing of hyper-util's automatic connection (the router
//! served HTTP/1.1 only anyway: axum is built without HTTP/2). Connections get `TCP_NODELAY`,
//! so a response written in several parts (a streamed body) is not held back by Nagle's
//! algorithm. A connection that takes longer than [`ServerConfig::header_timeout`] to send a
//! request's head, or stays idle between requests that long, is closed (`axum::serve` kept
//! them forever) by one sweeper for all connections ([`crate::idle`]), not by a timer per
//! request. Graceful shutdown is axum's: stop accepting, let in-flight requests finish, close
//! idle keep-alive connections.
//!
//! [`ServerConfig::header_timeout`]: crate::ServerConfig::header_timeout

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::routes::proxy;
use crate::state::AppState;
use crate::{cors, idle, limits};

/// The response header that names a request's id (the `request_id` of its log lines).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The address a request came from (a request extension on the router's requests).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Serves `router` (built for `state`) on `listener` until `shutdown` completes, then waits
/// for the connections to finish their requests.
pub async fn run(
    state: Arc<AppState>,
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let http1 = hyper::server::conn::http1::Builder::new();
    let watch = idle::Watch::start(state.config.header_timeout);
    let gate = limits::Gate::new(&state.config.limits);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admitted = match gate.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                tokio::spawn(turn_away(stream, refusal));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = watch.connection();
        let service = Service {
            state: state.clone(),
            router: router.clone(),
            activity: activity.clone(),
            peer,
        };
        let io = TokioIo::new(idle::Tracked::new(stream, activity.clone()));
        let connection = graceful.watch(http1.serve_connection(io, service));
        let task = tokio::spawn(async move {
            // A client that goes away mid-request is not the server's error.
            let _ = connection.await;
            drop(admitted);
        });
        activity.on_expiry(task.abort_handle());
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// `answer`, unless the request's body was too slow: then a 408 that closes the connection.
fn slow_body_answered(answer: Response, tripped: Option<limits::Tripped>) -> Response {
    match tripped {
        Some(t) if t.is_set() => limits::too_slow(),
        _ => answer,
    }
}

/// Answers a connection past a limit with a 503 and closes it, without reading its request
/// (a client sending nothing is closed after a second).
async fn turn_away(mut stream: tokio::net::TcpStream, refusal: limits::Refusal) {
    use tokio::io::AsyncWriteExt as _;
    let answer = async {
        let _ = stream.write_all(refusal.response()).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// As hyper and axum do: a connection reset before it was accepted is skipped; anything else
/// (out of file descriptors) is reported and retried after a second.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection's service.
struct Service {
    state: Arc<AppState>,
    router: Router,
    activity: Arc<idle::Activity>,
    /// The client's address, for the router's handlers (throttling by peer); the proxy does
    /// not need it.
    peer: SocketAddr,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: hyper::Request<Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        let (body, tripped) = limits::MinRate::wrap(Body::new(body), &self.state.config.limits);
        let mut request = Request::from_parts(parts, body);
        let serving = self.activity.serving();
        if proxy::is_proxy_path(request.uri().path()) {
            let state = self.state.clone();
            Box::pin(async move {
                // Counted with atomics only: this path allocates nothing per request.
                let started = std::time::Instant::now();
                let answer =
                    cors::around(state.clone(), |s| &s.config.cors, request, proxy::serve).await;
                let answer = slow_body_answered(answer, tripped);
                let metrics = &state.telemetry.metrics;
                metrics.proxy_statuses.inc(answer.status().as_u16());
                metrics.proxy_duration.observe(started.elapsed());
                Ok(idle::held(answer, serving))
            })
        } else {
            request.extensions_mut().insert(Peer(self.peer));
            // Every line logged while the router serves this request carries its id, and the
            // answer echoes it. (Not on the proxy's path above: its success path stays free
            // of per-request allocations; the proxy logs only errors, without an id.)
            let id = uuid::Uuid::new_v4().simple().to_string();
            let span = tracing::info_span!(
                "request",
                request_id = %id,
                method = %request.method(),
                path = request.uri().path(),
            );
            let answer = self.router.clone().oneshot(request);
            Box::pin(
                async move {
                    let mut answer = answer.await?;
                    tracing::debug!(status = answer.status().as_u16(), "answered");
                    if let Ok(value) = HeaderValue::from_str(&id) {
                        answer.headers_mut().insert(REQUEST_ID, value);
                    }
                    Ok(idle::held(slow_body_answered(answer, tripped), serving))
                }
                .instrument(span),
            )
        }
    }
}
