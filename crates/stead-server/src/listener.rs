//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util's auto builder), over
//! TCP or TLS, with the connection-level bounds of [`ServerSettings`] and a
//! graceful shutdown in which requests in flight finish.
//!
//! Every connection is watched: one that has sent nothing for
//! `header_read_timeout` since it opened, or has been idle for
//! `idle_timeout` after a request, is shut down gracefully. hyper itself
//! cuts off HTTP/1 headers that take longer than `header_read_timeout`
//! (which also ends idle HTTP/1 keep-alive connections after that time).

use crate::addr::{self, ClientAddr};
use crate::limits::Gate;
use crate::settings::ServerSettings;
use crate::tls::{self, ReloadingCert};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Largest HTTP/1 read buffer, which bounds the request line and headers.
const MAX_HTTP1_BUF: usize = 32 * 1024;
const MAX_HTTP1_HEADERS: usize = 64;
/// Largest HTTP/2 header list (decoded).
const MAX_HTTP2_HEADER_LIST: u32 = 32 * 1024;
const MAX_HTTP2_STREAMS: u32 = 256;
/// HTTP/2 pings find dead peers.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection shares.
struct Shared {
    app: Router,
    gate: Gate,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    trust_proxy_headers: bool,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    request_timeout: Duration,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    settings: &ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let (tls, watcher) = match &settings.tls {
        Some(files) => {
            let resolver = Arc::new(ReloadingCert::new(files.clone()).map_err(invalid)?);
            let acceptor = tls::acceptor(resolver.clone()).map_err(invalid)?;
            (Some(acceptor), Some(resolver.spawn_watch()))
        }
        None => (None, None),
    };
    let shared = Arc::new(Shared {
        app,
        gate: Gate::new(settings.max_concurrent_requests, settings.max_requests_per_second),
        builder: builder(settings),
        tls,
        trust_proxy_headers: settings.trust_proxy_headers,
        header_read_timeout: settings.header_read_timeout,
        idle_timeout: settings.idle_timeout,
        request_timeout: settings.request_timeout,
        epoch: Instant::now(),
    });
    let connections =
        settings.max_connections.filter(|&n| n > 0).map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
    // Every connection task holds a receiver: the sender learns when all
    // are gone.
    let (stop, stopped) = watch::channel(false);
    let mut last_full_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match &connections {
            Some(limit) => {
                let permit = match limit.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        if last_full_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            tracing::warn!(
                                target: "stead::abuse",
                                "all --max-connections are open; new connections wait"
                            );
                            last_full_warning = Some(Instant::now());
                        }
                        tokio::select! {
                            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                            _ = &mut shutdown => break,
                        }
                    }
                };
                Some(permit)
            }
            None => None,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            connection(&shared, stream, peer, stopped).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(stopped);
    stop.closed().await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    Ok(())
}

fn builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(MAX_HTTP1_BUF)
        .max_headers(MAX_HTTP1_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HTTP2_HEADER_LIST)
        .max_concurrent_streams(MAX_HTTP2_STREAMS)
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// Errors of `accept` that concern one connection are skipped; others
/// (such as running out of file descriptors) pause the loop briefly rather
/// than spin or stop serving.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn connection(
    shared: &Arc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(acceptor) = &shared.tls else {
        return drive(shared, stream, peer, stopped).await;
    };
    let handshake = tokio::time::timeout(shared.header_read_timeout, acceptor.accept(stream));
    let result = tokio::select! {
        r = handshake => r,
        _ = stopped.changed() => return,
    };
    match result {
        Ok(Ok(stream)) => drive(shared, stream, peer, stopped).await,
        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
    }
}

/// Serves one connection until it ends, is idle too long, or the server
/// stops.
async fn drive<I>(shared: &Arc<Shared>, io: I, peer: SocketAddr, mut stopped: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(shared.epoch));
    let service = ConnService { shared: shared.clone(), peer, activity: activity.clone() };
    let conn = shared.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let period = (shared.header_read_timeout.min(shared.idle_timeout) / 2)
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Once shut down gracefully, how long the connection may still take.
    let mut deadline: Option<tokio::time::Instant> = None;
    let close = |conn: Pin<&mut _>, deadline: &mut Option<_>| {
        auto::Connection::graceful_shutdown(conn);
        *deadline = Some(tokio::time::Instant::now() + shared.request_timeout + Duration::from_secs(1));
    };
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopped.changed(), if deadline.is_none() => close(conn.as_mut(), &mut deadline),
            _ = tick.tick(), if deadline.is_none() => {
                if activity.idle(shared.now_ms(), shared.header_read_timeout, shared.idle_timeout) {
                    tracing::debug!(peer = %peer, "closing an idle connection");
                    close(conn.as_mut(), &mut deadline);
                }
            }
            _ = sleep_until(deadline) => {
                tracing::debug!(peer = %peer, "connection did not finish after shutdown; dropping it");
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Requests in flight on a connection and when the last one ended, in
/// milliseconds since the server's epoch.
struct Activity {
    epoch: Instant,
    in_flight: AtomicU32,
    served: AtomicU32,
    last_ms: AtomicU64,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let now = epoch.elapsed().as_millis() as u64;
        Activity { epoch, in_flight: AtomicU32::new(0), served: AtomicU32::new(0), last_ms: AtomicU64::new(now) }
    }

    fn idle(&self, now_ms: u64, first_request_within: Duration, idle_timeout: Duration) -> bool {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return false;
        }
        let allowed = if self.served.load(Ordering::Relaxed) == 0 { first_request_within } else { idle_timeout };
        now_ms.saturating_sub(self.last_ms.load(Ordering::Relaxed)) >= allowed.as_millis() as u64
    }
}

/// Marks a request in flight until dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.last_ms.store(activity.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        activity.served.store(1, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service of one connection: resolves the source address, applies the
/// global gate, and hands the request to the router.
#[derive(Clone)]
struct ConnService {
    shared: Arc<Shared>,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let busy = Busy::new(&self.activity);
        let source = addr::resolve(self.peer.ip(), request.headers(), self.shared.trust_proxy_headers);
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.peer));
        extensions.insert(ClientAddr(source));
        // Probes answer even when the server is saturated: a load balancer
        // must not take a busy server for a dead one.
        let probe = matches!(request.uri().path(), "/healthz" | "/readyz");
        let permit = if probe {
            None
        } else {
            match self.shared.gate.admit() {
                Ok(permit) => permit,
                Err(reply) => {
                    drop(busy);
                    return Box::pin(std::future::ready(Ok(reply.into_response())));
                }
            }
        };
        let mut app = self.shared.app.clone();
        let response = tower::Service::call(&mut app, request.map(Body::new));
        Box::pin(async move {
            let response = response.await;
            drop(permit);
            drop(busy);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};

    async fn start(
        app: Router,
        settings: ServerSettings,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            run(listener, app, &settings, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap()
        });
        (addr, stop, server)
    }

    #[tokio::test]
    async fn idle_http2_connections_are_closed() {
        let app = Router::new().route("/x", get(|| async { "ok" }));
        let settings = ServerSettings { idle_timeout: Duration::from_millis(300), ..ServerSettings::default() };
        let (addr, stop, server) = start(app, settings).await;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        let conn = tokio::spawn(conn);
        let response = sender.send_request(Request::get("http://x/x").body(Empty::<Bytes>::new()).unwrap()).await;
        assert_eq!(response.unwrap().status(), 200);
        let closed = tokio::time::timeout(Duration::from_secs(3), conn).await;
        assert!(closed.is_ok(), "the idle HTTP/2 connection is still open");
        let _ = stop.send(());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_lets_requests_in_flight_finish() {
        let app = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "done"
            }),
        );
        let (addr, stop, server) = start(app, ServerSettings::default()).await;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let request = Request::get("http://x/slow").body(Empty::<Bytes>::new()).unwrap();
        let response = tokio::spawn(async move { sender.send_request(request).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = stop.send(());
        let response = response.await.unwrap().expect("answered during shutdown");
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "done");
        tokio::time::timeout(Duration::from_secs(3), server).await.expect("the server stopped").unwrap();
        // No new connections afterwards.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
