//! Each accepted connection, wrapped so it cannot be held open for nothing.
//!
//! [`LimitedConnection`] fails its reads and writes, which makes hyper drop the connection,
//! once it has moved no byte for the idle timeout, or before its first request has arrived
//! when the first-request deadline passes. That closes slowloris-style connections (opened and
//! left silent, or fed a byte now and then) whatever protocol they pretend to speak, without a
//! task or timer per connection beyond the one sleep it polls.
//!
//! Each connection also carries a [`ConnectionInfo`], which tonic puts in the extensions of
//! every request it serves: the remote address (for per-client rate limits), whether a request
//! has started, and the subscriptions it holds (for the per-connection limit).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use super::Limits;

/// What the server knows of one connection, shared by its requests.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    state: Arc<ConnectionState>,
}

#[derive(Debug)]
struct ConnectionState {
    remote: Option<SocketAddr>,
    /// A request has reached the service: the first-request deadline no longer applies.
    request_seen: AtomicBool,
    /// Subscriptions this connection holds now.
    subscriptions: AtomicUsize,
}

impl ConnectionInfo {
    /// The client's address, when the socket knows it.
    pub(crate) fn remote_ip(&self) -> Option<IpAddr> {
        self.state.remote.map(|address| address.ip())
    }

    /// Records that a request arrived on this connection.
    pub(crate) fn request_started(&self) {
        self.state.request_seen.store(true, Ordering::Relaxed);
    }

    /// The count of subscriptions this connection holds.
    pub(crate) fn subscriptions(&self) -> &AtomicUsize {
        &self.state.subscriptions
    }
}

/// A connection that closes itself when idle for too long (see the module's documentation).
pub(crate) struct LimitedConnection<IO> {
    io: IO,
    info: ConnectionInfo,
    idle_timeout: Duration,
    first_request_deadline: Instant,
    last_activity: Instant,
    /// Wakes the connection's task when the deadline in force may have passed.
    timer: Pin<Box<Sleep>>,
}

impl<IO> LimitedConnection<IO> {
    /// Wraps a connection accepted from `remote` just now.
    pub(crate) fn new(io: IO, remote: Option<SocketAddr>, limits: &Limits) -> Self {
        let now = Instant::now();
        let first_request_deadline = now + limits.first_request_timeout;
        LimitedConnection {
            io,
            info: ConnectionInfo {
                state: Arc::new(ConnectionState {
                    remote,
                    request_seen: AtomicBool::new(false),
                    subscriptions: AtomicUsize::new(0),
                }),
            },
            idle_timeout: limits.idle_timeout,
            first_request_deadline,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(
                first_request_deadline.min(now + limits.idle_timeout),
            )),
        }
    }

    /// When the connection is to be closed unless something happens before.
    fn deadline(&self) -> Instant {
        let idle = self.last_activity + self.idle_timeout;
        if self.info.state.request_seen.load(Ordering::Relaxed) {
            idle
        } else {
            idle.min(self.first_request_deadline)
        }
    }

    /// Called when the connection has nothing to read or cannot take a write: `Ready` with the
    /// error that closes it once its deadline has passed, `Pending` (with the timer armed to
    /// wake the task at the deadline) otherwise.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                let reason = if self.info.state.request_seen.load(Ordering::Relaxed) {
                    "idle"
                } else {
                    "no request in time"
                };
                tracing::debug!(remote = ?self.info.state.remote, reason, "closing connection");
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connection closed: {reason}"),
                ));
            }
            // Activity moves the deadline later; the timer is only re-armed when it fires
            // early (or would fire late), not on every byte.
            if self.timer.deadline() > deadline || self.timer.is_elapsed() {
                self.timer.as_mut().reset(deadline);
            }
            ready!(self.timer.as_mut().poll(cx));
        }
    }
}

impl<IO> LimitedConnection<IO> {
    /// A write's outcome, with the activity it made recorded, or the deadline's error when it
    /// could not proceed past the deadline.
    fn after_write(
        &mut self,
        written: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.poll_expired(cx).map(Err),
        }
    }
}

impl<IO> Connected for LimitedConnection<IO> {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for LimitedConnection<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let filled = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > filled {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.poll_expired(cx).map(Err),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for LimitedConnection<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(written, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    fn limits(idle_ms: u64, first_request_ms: u64) -> Limits {
        Limits {
            idle_timeout: Duration::from_millis(idle_ms),
            first_request_timeout: Duration::from_millis(first_request_ms),
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_at_the_first_request_deadline() {
        let (server_side, _client) = duplex(64);
        let mut connection = LimitedConnection::new(server_side, None, &limits(60_000, 500));
        let started = Instant::now();
        let mut byte = [0u8; 1];
        let error = connection.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn trickled_bytes_do_not_extend_the_first_request_deadline() {
        let (server_side, mut client) = duplex(64);
        let mut connection = LimitedConnection::new(server_side, None, &limits(1_000, 3_000));
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(400)).await;
                if client.write_all(b"G").await.is_err() {
                    return;
                }
            }
        });
        let mut byte = [0u8; 1];
        let error = loop {
            match connection.read(&mut byte).await {
                Ok(_) => continue,
                Err(error) => break error,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_millis(3_000));
        trickle.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_request_only_silence_closes_the_connection() {
        let (server_side, mut client) = duplex(64);
        let mut connection = LimitedConnection::new(server_side, None, &limits(1_000, 500));
        connection.connect_info().request_started();
        // Traffic every 600 ms keeps it open well past both timeouts...
        let mut byte = [0u8; 1];
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            client.write_all(b"x").await.unwrap();
            connection.read_exact(&mut byte).await.unwrap();
        }
        // ...and a second of silence closes it.
        let quiet_since = Instant::now();
        let error = connection.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(quiet_since.elapsed(), Duration::from_millis(1_000));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_count_as_activity_and_a_blocked_write_times_out() {
        let (server_side, mut client) = duplex(4);
        let mut connection = LimitedConnection::new(server_side, None, &limits(1_000, 1_000));
        connection.connect_info().request_started();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(800)).await;
            connection.write_all(b"ab").await.unwrap();
            let mut two = [0u8; 2];
            client.read_exact(&mut two).await.unwrap();
        }
        // The client stops reading: the pipe fills, the write waits, and the idle timeout ends it.
        let blocked_since = Instant::now();
        let error = connection.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(blocked_since.elapsed(), Duration::from_millis(1_000));
    }
}
