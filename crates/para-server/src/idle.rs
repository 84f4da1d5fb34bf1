//! Closing connections that wait too long for a request: one sweeper task for all of a
//! server's connections, instead of a timer per request.
//!
//! A connection is *waiting* when no request of it is being served and it has not written
//! anything since: between requests on a kept-alive connection, and while a client sends (or
//! stalls in) a request's head. A request is being served from the moment hyper hands it over
//! until its response's body has been written or dropped ([`Activity::serving`]), so a slow
//! upstream, an upload or a slowly streamed answer is never cut off. A connection that has
//! been waiting longer than the timeout is closed: a stalled head, an idle keep-alive
//! connection, or a client that stopped reading.
//!
//! hyper's own `header_read_timeout` closes stalled heads and idle connections too, but arms a
//! timer (a boxed sleep registered in Tokio's timer wheel) for every request: counted with
//! callgrind, about 1,500 instructions of the proxy's ~30,000 per request. Here a request costs
//! an `Arc` clone, two atomic updates and a clock read, and the sweeper wakes a few times per
//! timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The connections of one server and their timeout.
pub struct Watch {
    timeout: Duration,
    base: Instant,
    connections: Mutex<Vec<Weak<Activity>>>,
}

/// What the sweeper knows of one connection.
pub struct Activity {
    watch: Arc<Watch>,
    /// Requests being served.
    serving: AtomicU32,
    /// When the connection last finished serving a request or wrote (nanoseconds after
    /// [`Watch::base`]).
    last_active: AtomicU64,
    /// The task serving the connection, aborted once it has waited too long.
    task: OnceLock<AbortHandle>,
}

impl Watch {
    /// Starts the sweeper (on the current Tokio runtime); it stops once the watch is dropped.
    pub fn start(timeout: Duration) -> Arc<Watch> {
        let watch =
            Arc::new(Watch { timeout, base: Instant::now(), connections: Mutex::default() });
        // A connection is closed between `timeout` and `timeout + 2 × period` after it began
        // waiting.
        let period = (timeout / 8).clamp(Duration::from_millis(5), Duration::from_secs(1));
        let weak = Arc::downgrade(&watch);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(watch) = weak.upgrade() else { return };
                watch.sweep(period);
            }
        });
        watch
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// A new connection, waiting from now.
    pub fn connection(self: &Arc<Self>) -> Arc<Activity> {
        let activity = Arc::new(Activity {
            watch: self.clone(),
            serving: AtomicU32::new(0),
            last_active: AtomicU64::new(self.now()),
            task: OnceLock::new(),
        });
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&activity));
        activity
    }

    /// Tells the connections that waited longer than the timeout to close, and forgets the
    /// closed ones. `period`: how often this runs (a stamp may be that much older than the
    /// activity it records, so the timeout is counted from one period later).
    fn sweep(&self, period: Duration) {
        let limit = (self.timeout + period).as_nanos() as u64;
        let now = self.now();
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        connections.retain(|weak| {
            let Some(c) = weak.upgrade() else { return false };
            let waiting = c.serving.load(Ordering::Acquire) == 0;
            let since = c.last_active.load(Ordering::Acquire);
            if waiting && now.saturating_sub(since) > limit {
                if let Some(task) = c.task.get() {
                    task.abort();
                }
                return false;
            }
            true
        });
    }
}

impl Activity {
    fn touch(&self) {
        self.last_active.store(self.watch.now(), Ordering::Release);
    }

    /// Marks a request as being served until the returned guard is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        self.serving.fetch_add(1, Ordering::AcqRel);
        Serving(self.clone())
    }

    /// The task serving the connection: aborted (dropping the connection closes it) once the
    /// connection has waited longer than the timeout.
    pub fn on_expiry(&self, task: AbortHandle) {
        let _ = self.task.set(task);
    }
}

/// A request being served; dropping it (the response is ready, or the request was abandoned)
/// starts the wait again.
pub struct Serving(Arc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.touch();
        self.0.serving.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request [`Serving`] until it has been written or dropped.
struct Held {
    body: Body,
    _serving: Serving,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// `response`, its request served until its body has been written (or dropped).
pub fn held(response: Response, serving: Serving) -> Response {
    response.map(|body| Body::new(Held { body, _serving: serving }))
}

/// A connection's socket that records its writes as activity (a response body streamed
/// after its request's handler returned keeps the connection alive).
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let done = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(done, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        done
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let done = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(done, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        done
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_connections_waiting_longer_than_the_timeout_are_closed() {
        let watch = Watch::start(Duration::from_secs(8));
        let connection = |watch: &Arc<Watch>| {
            let activity = watch.connection();
            let task = tokio::spawn(std::future::pending::<()>());
            activity.on_expiry(task.abort_handle());
            (activity, task)
        };
        let (_idle, idle_task) = connection(&watch);
        let (busy, busy_task) = connection(&watch);
        let serving = busy.serving();
        let (active, active_task) = connection(&watch);
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            active.touch();
        }
        // 12 s: the idle one is closed; the one serving a request and the active one are not.
        assert!(idle_task.is_finished());
        assert!(!busy_task.is_finished() && !active_task.is_finished());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!busy_task.is_finished(), "never while serving");
        // Done serving: the wait starts then (closed between 8 s and 8 s + 2 periods).
        drop(serving);
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(!busy_task.is_finished());
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(busy_task.is_finished());
        assert!(active_task.is_finished(), "silent since 12 s");
        assert!(watch.connections.lock().unwrap().is_empty(), "closed ones are forgotten");
    }
}
