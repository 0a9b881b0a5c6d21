//! The gateway itself: an HTTP/1.1 server (hyper) that looks each request
//! up in the current routing table and forwards it over pooled upstream
//! connections ([`crate::pool`]), plus the router's own endpoints under
//! [`ADMIN_PREFIX`].
//!
//! One request, in order:
//!
//! 1. `/_router/…` is the router's: `ping`, `table`, `stats`, `metrics`.
//! 2. Before the first table load: 503 with `Retry-After: 1`. No app for
//!    the Host and path: 404. A client the app denies (`BATON_DENY`): 403.
//!    A plain-HTTP request to an app that asks for HTTPS: 301 or 308 to
//!    the `https://` URL ([`crate::redirect`]; before authentication, so
//!    that credentials are asked for over TLS only). An app behind basic
//!    authentication ([`crate::auth`]): 401 with a challenge without valid
//!    credentials, 503 while its credentials file cannot be read. An app
//!    without a routable instance: 503 with `Retry-After: 1` (where
//!    sleep/wake will hold the request instead).
//! 3. The body: none, buffered when its length is known and small (so
//!    that it can be sent again), or streamed (then it can be sent again
//!    only if the first attempt never started reading it).
//! 4. [`balance::pick`] chooses an instance (the sticky cookie first, for
//!    sticky apps); hop-by-hop headers are dropped, `X-Forwarded-For`,
//!    `-Host` and `-Proto` added (`-Proto` is `https`, replacing any the
//!    client sent, on TLS connections), the `Authorization` that passed a
//!    basic-auth gate removed (the router's credentials are not the
//!    app's: instances, their logs and their own auth never see them), and
//!    the request goes out with a bound on the time to the response head.
//! 5. A failure counts against the instance (passive health) and is tried
//!    once more on another instance — when the request never reached the
//!    first one (connect failed) or its method is idempotent, and the body
//!    can be sent again. Otherwise 502 (504 for a timeout).
//! 6. The response streams back; its body is counted, and the request
//!    stays outstanding at the instance (for `least_conn`) until that body
//!    ends. A sticky app's response sets the cookie unless the client's
//!    cookie already chose this instance.
//!
//!    Every request that gets this far counts as a page view of its app,
//!    by its visitor ([`crate::visitors`]: the app's cookie, the router's,
//!    or the address), and for its path ([`crate::top_paths`]); a visitor
//!    new to an app that names no cookie of its own gets the router's
//!    visitor cookie with the response, whatever its status.
//! 7. A request that asks to switch protocols (`Connection: upgrade` with
//!    `Upgrade`, as WebSocket does) is sent with those headers on a new
//!    connection; when the instance answers `101`, the client gets that
//!    answer and the two connections are joined, bytes copied both ways
//!    until either side closes. The tunnel counts as outstanding at the
//!    instance while it lasts.
//!
//! Every request routed to an app (from step 2's deny list on) is offered
//! to the access log ([`crate::access_log`]) unless the app opts out:
//! answered by the router, at once; proxied, when its body has gone to
//! the client (or the client left), with the bytes sent.
//!
//! An app labelled `BATON_CACHE` has its response cache ([`crate::cache`])
//! after step 2's refusals: a GET or HEAD that a fresh stored response
//! can answer is answered from it (no instance needed, a sleeping app not
//! woken); any other request goes on as above, its response marked
//! `X-Cache: MISS`, and a storable response's body is collected as it
//! streams (step 6) and stored once it has ended whole.
//!
//! Connections on the TLS listener are handshaken in their own task
//! (bounded by [`TLS_HANDSHAKE_TIMEOUT`]) and then served exactly like
//! plain ones.
//!
//! Each proxied request runs in one `request` span. Shutdown stops
//! accepting, lets open connections finish their current request (bounded
//! by `shutdown_grace`), then returns; open tunnels close with it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::access_log;
use crate::auth::{self, BasicAuth};
use crate::balance::{self, InFlight};
use crate::cache;
use crate::cache_store::Fill;
use crate::pool::{self, Pool};
use crate::pool_h2;
use crate::redirect;
use crate::report;
use crate::runtime::AppRuntime;
use crate::scale;
use crate::scaler;
use crate::shared::Shared;
use crate::table::{Route, Table, normalize_host};
use crate::visitors;
use baton_probe::error_chain;

/// Paths under this prefix are the router's own, on every host.
pub const ADMIN_PREFIX: &str = "/_router/";

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to complete a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle pooled upstream connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How often a serving thread closes expired pooled connections and those
/// to instances that left the table.
const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(15);

/// Why a proxied request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting or exchanging with the instance failed.
    #[error(transparent)]
    Upstream(#[from] pool::Error),
    /// No response head in time.
    #[error("{upstream} did not answer within {timeout:?}")]
    Timeout {
        upstream: Arc<str>,
        timeout: Duration,
    },
    /// The client's body could not be read.
    #[error("cannot read the request body")]
    RequestBody(#[source] hyper::Error),
}

impl Error {
    /// The status the client gets.
    fn status(&self) -> StatusCode {
        match self {
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
            Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::RequestBody(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A serving thread's connections to instances.
type UpstreamPool = Arc<Pool>;

/// What one serving thread keeps. Cloned per request, its reference
/// count lives on a cache line no other thread writes.
#[derive(Debug)]
struct Worker {
    shared: Arc<Shared>,
    pool: UpstreamPool,
    /// The table as this thread last saw it, renewed when a new one is
    /// published: a request reads the channel's version, not its lock.
    table: Mutex<(watch::Receiver<Arc<Table>>, Arc<Table>)>,
    /// Every worker's open connections (for `/_router/stats`).
    workers: Arc<Workers>,
}

/// Where a request goes, per the current table.
enum Lookup {
    NotLoaded,
    Unrouted,
    Routed(Arc<Route>),
}

impl Worker {
    fn new(shared: Arc<Shared>, pool: UpstreamPool, workers: Arc<Workers>) -> Worker {
        let mut tables = shared.subscribe();
        let table = tables.borrow_and_update().clone();
        Worker {
            shared,
            pool,
            table: Mutex::new((tables, table)),
            workers,
        }
    }

    fn lookup(&self, host: &str, path: &str) -> Lookup {
        let mut guard = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let (tables, table) = &mut *guard;
        if tables.has_changed().unwrap_or(false) {
            *table = tables.borrow_and_update().clone();
        }
        if !table.loaded {
            return Lookup::NotLoaded;
        }
        match table.route(host, path) {
            Some(route) => Lookup::Routed(route.clone()),
            None => Lookup::Unrouted,
        }
    }
}

/// How a client connection reached the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// The plain listener.
    Http,
    /// The TLS listener.
    Https,
}

/// The client at the other end of a connection, with its address as the
/// `X-Forwarded-For` value, formatted once per connection, and whether it
/// came over TLS.
#[derive(Debug, Clone)]
struct Peer {
    addr: SocketAddr,
    forwarded_for: HeaderValue,
    scheme: Scheme,
}

impl Peer {
    fn new(addr: SocketAddr, scheme: Scheme) -> Peer {
        Peer {
            addr,
            forwarded_for: HeaderValue::from_str(&addr.ip().to_string())
                .expect("an IP address is a valid header value"),
            scheme,
        }
    }
}

/// Serves `listener` until `shutdown`, then drains open connections.
///
/// Requests are served by `config.workers` threads, each with its own
/// single-threaded runtime and its own upstream pool, all accepting from
/// the one listener (as nginx's worker processes do). A request then stays
/// on one thread from accept to response: no hand-offs between threads,
/// no locks shared between them on the hot path. The TLS listener, when
/// given, is accepted from by every worker alike. Fails only when the
/// serving threads cannot be started.
pub(crate) async fn run(
    listener: TcpListener,
    https: Option<(TcpListener, TlsAcceptor)>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let https = match https {
        Some((listener, acceptor)) => Some((listener.into_std()?, acceptor)),
        None => None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let count = shared.config.workers.max(1);
    let (workers, mut inboxes) = Workers::new(count);
    for index in 0..count {
        let listener = listener.try_clone()?;
        let tls = match &https {
            Some((listener, acceptor)) => Some((listener.try_clone()?, acceptor.clone())),
            None => None,
        };
        let inbox = inboxes.remove(0);
        let workers = workers.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (shared, stop, done) = (shared.clone(), stop.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("router-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let tls = match tls {
                        Some((listener, acceptor)) => match TcpListener::from_std(listener) {
                            Ok(listener) => Some((listener, acceptor)),
                            Err(e) => {
                                warn!(error = %e, "a worker cannot watch the TLS listener");
                                None
                            }
                        },
                        None => None,
                    };
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let this = ThisWorker {
                                index,
                                workers,
                                inbox,
                            };
                            serve_connections(listener, tls, this, shared, stop.cancelled()).await
                        }
                        Err(e) => warn!(error = %e, "a worker cannot watch the listener"),
                    }
                });
                drop(done);
            })?;
    }
    drop(done_tx);
    drop(listener);
    drop(https);
    shutdown.await;
    stop.cancel();
    // Every worker holds a sender until its connections are drained.
    let _ = done_rx.recv().await;
    Ok(())
}

/// A connection accepted by one worker for another to serve.
type HandedOver = (std::net::TcpStream, SocketAddr, Scheme);

/// The serving threads' open connections, and their inboxes. Every worker
/// accepts, but one holding more connections than the least busy passes
/// the new one over: keep-alive connections opened in a burst (by a load
/// balancer, or a benchmark) would otherwise pile up on whichever thread
/// woke first, and leave the other CPUs idle while it saturates.
#[derive(Debug)]
struct Workers {
    open: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<HandedOver>>,
}

/// A worker's own place among [`Workers`].
struct ThisWorker {
    index: usize,
    workers: Arc<Workers>,
    inbox: mpsc::UnboundedReceiver<HandedOver>,
}

impl Workers {
    fn new(count: usize) -> (Arc<Workers>, Vec<mpsc::UnboundedReceiver<HandedOver>>) {
        let (inboxes, receivers) = (0..count).map(|_| mpsc::unbounded_channel()).unzip();
        let workers = Workers {
            open: (0..count).map(|_| AtomicUsize::new(0)).collect(),
            inboxes,
        };
        (Arc::new(workers), receivers)
    }

    /// Which worker serves a connection worker `me` accepted; counted as
    /// open there from now on.
    fn assign(&self, me: usize) -> usize {
        let open: Vec<usize> = self.open.iter().map(|n| n.load(Relaxed)).collect();
        let chosen = serving_worker(&open, me);
        self.open[chosen].fetch_add(1, Relaxed);
        chosen
    }

    /// Moves a connection's count from worker `from` to worker `to`.
    fn reassign(&self, from: usize, to: usize) {
        self.release(from);
        self.open[to].fetch_add(1, Relaxed);
    }

    /// Each worker's open client connections.
    fn to_json(&self) -> serde_json::Value {
        let open = self
            .open
            .iter()
            .map(|n| serde_json::json!({ "openConnections": n.load(Relaxed) }));
        serde_json::Value::Array(open.collect())
    }

    /// A connection at worker `index` closed (or was never served).
    fn release(&self, index: usize) {
        self.open[index].fetch_sub(1, Relaxed);
    }
}

/// The worker that should serve a new connection accepted by worker `me`,
/// given each worker's open connections: `me`, unless another holds at
/// least two fewer (a difference of one is not worth a hand-over).
fn serving_worker(open: &[usize], me: usize) -> usize {
    let mine = open.get(me).copied().unwrap_or(0);
    match open.iter().enumerate().min_by_key(|(_, n)| **n) {
        Some((least, fewest)) if mine > fewest + 1 => least,
        _ => me,
    }
}

/// Counts a connection as open at its worker while it lasts.
struct OpenConnection {
    workers: Arc<Workers>,
    index: usize,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.workers.release(self.index);
    }
}

/// The next connection on the TLS listener; never, without one.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// A client connection's error.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How client connections are served: HTTP/1.1 and HTTP/2 told apart by
/// their first bytes, or HTTP/1.1 only (`--http2 false`).
#[derive(Clone)]
enum ServerBuilder {
    Both(hyper_util::server::conn::auto::Builder<TokioExecutor>),
    Http1(hyper::server::conn::http1::Builder),
}

impl ServerBuilder {
    fn new(http2: bool) -> ServerBuilder {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true)
            // Instances' responses keep their own `Date`; see `date_now`.
            .auto_date_header(false);
        if !http2 {
            return ServerBuilder::Http1(http1);
        }
        let mut both = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        both.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true)
            .auto_date_header(false);
        both.http2()
            .timer(TokioTimer::new())
            .auto_date_header(false);
        ServerBuilder::Both(both)
    }

    /// Serves `io` until it ends or, once `draining`, until its current
    /// requests are answered.
    async fn serve<I, S>(
        &self,
        io: I,
        service: S,
        draining: &CancellationToken,
    ) -> Result<(), BoxError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<ClientBody>> + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        match self {
            ServerBuilder::Both(both) => {
                let connection = both.serve_connection_with_upgrades(io, service);
                drive(connection, draining, |c| c.graceful_shutdown()).await
            }
            ServerBuilder::Http1(http1) => {
                let connection = http1.serve_connection(io, service).with_upgrades();
                drive(connection, draining, |c| c.graceful_shutdown()).await
            }
        }
    }
}

/// Drives `connection` until it ends or, once `draining`, asks it to end
/// (with `shutdown`) and waits for that.
async fn drive<C, E>(
    connection: C,
    draining: &CancellationToken,
    shutdown: impl FnOnce(Pin<&mut C>),
) -> Result<(), BoxError>
where
    C: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = draining.cancelled() => {
            shutdown(connection.as_mut());
            connection.await
        }
    };
    ended.map_err(Into::into)
}

/// One worker: accepts from `listener` and the TLS listener, if any
/// (passing connections to a less busy worker where there is one), and
/// serves its connections on this thread until `shutdown`, then drains.
async fn serve_connections(
    listener: TcpListener,
    tls: Option<(TcpListener, TlsAcceptor)>,
    mut this: ThisWorker,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let pool: UpstreamPool = Pool::new(shared.config.connect_timeout, POOL_IDLE_TIMEOUT);
    let worker = Arc::new(Worker::new(shared.clone(), pool.clone(), this.workers));
    let (me, workers) = (this.index, &worker.workers);
    let mut sweep = tokio::time::interval(POOL_SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Open connections, and the signal that asks them to finish their
    // current request and close.
    let connections = tokio_util::task::TaskTracker::new();
    let draining = CancellationToken::new();
    // HTTP/1.1, and HTTP/2 (prior knowledge in clear, ALPN `h2` over
    // TLS) unless turned off.
    let http = ServerBuilder::new(shared.config.http2);
    let (tls_listener, acceptor) = tls.unzip();
    // Serves a connection already counted at this worker.
    let serve = |stream: TcpStream, peer: SocketAddr, scheme: Scheme| {
        let _ = stream.set_nodelay(true);
        let open = OpenConnection {
            workers: workers.clone(),
            index: me,
        };
        let worker = worker.clone();
        let client = Peer::new(peer, scheme);
        let service = service_fn(move |req| handle(worker.clone(), client.clone(), req));
        let draining = draining.clone();
        let http = http.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let _open = open;
            let ended = match (scheme, acceptor) {
                (Scheme::Https, Some(acceptor)) => {
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => done,
                        () = draining.cancelled() => return,
                    };
                    let stream = match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, timeout = ?TLS_HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                            return;
                        }
                    };
                    http.serve(TokioIo::new(stream), service, &draining).await
                }
                _ => {
                    http.serve(TokioIo::new(stream), service, &draining).await
                }
            };
            if let Err(e) = ended {
                debug!(%peer, error = %error_chain(&*e), "client connection ended with an error");
            }
        });
    };
    tokio::pin!(shutdown);
    loop {
        let (accepted, scheme) = tokio::select! {
            accepted = listener.accept() => (accepted, Scheme::Http),
            accepted = accept(tls_listener.as_ref()) => (accepted, Scheme::Https),
            Some((stream, peer, scheme)) = this.inbox.recv() => {
                match TcpStream::from_std(stream) {
                    Ok(stream) => serve(stream, peer, scheme),
                    Err(e) => {
                        workers.release(me);
                        debug!(%peer, error = %e, "cannot take over a connection");
                    }
                }
                continue;
            }
            _ = sweep.tick() => {
                let table = shared.table();
                pool.sweep(|authority| table.routes().any(|route| {
                    route.upstreams.iter().any(|u| &*u.authority == authority)
                }));
                continue;
            }
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let chosen = workers.assign(me);
                if chosen == me {
                    serve(stream, peer, scheme);
                    continue;
                }
                let handed = match stream.into_std() {
                    Ok(stream) => workers.inboxes[chosen].send((stream, peer, scheme)),
                    Err(e) => {
                        workers.release(chosen);
                        debug!(%peer, error = %e, "cannot hand a connection over");
                        continue;
                    }
                };
                // That worker is gone (shutting down): serve it here.
                if let Err(mpsc::error::SendError((stream, peer, scheme))) = handed {
                    workers.reassign(chosen, me);
                    match TcpStream::from_std(stream) {
                        Ok(stream) => serve(stream, peer, scheme),
                        Err(e) => {
                            workers.release(me);
                            debug!(%peer, error = %e, "cannot take a connection back");
                        }
                    }
                }
            }
            Err(e) => {
                // Out of descriptors, typically: wait a little.
                warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drop(tls_listener);
    let grace = shared.config.shutdown_grace;
    info!(
        connections = connections.len(),
        "no longer accepting; finishing open requests"
    );
    draining.cancel();
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        warn!(
            ?grace,
            "connections still open after the grace period; closing them"
        );
    }
}

async fn handle(
    worker: Arc<Worker>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<ClientBody>, Infallible> {
    let shared = &worker.shared;
    let path = req.uri().path();
    if shared.config.deny.denies(peer.addr.ip()) {
        shared.stats.denied.fetch_add(1, Relaxed);
        return Ok(denied());
    }
    if path == SWITCH_PATH || path.starts_with(SWITCH_PREFIX) {
        return Ok(switch_endpoint(&worker, req, &peer).await);
    }
    if path == "/_router" || path.starts_with(ADMIN_PREFIX) {
        return Ok(admin(&worker, &req));
    }
    if req.method() == Method::CONNECT {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported\n",
        ));
    }
    let host = normalize_host(
        req.uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .unwrap_or(""),
    );
    let route = match worker.lookup(&host, path) {
        Lookup::Routed(route) => route,
        Lookup::NotLoaded => {
            shared.stats.not_ready.fetch_add(1, Relaxed);
            return Ok(retry_later("the routing table is not loaded yet\n"));
        }
        Lookup::Unrouted => {
            shared.stats.unmatched.fetch_add(1, Relaxed);
            return Ok(text(
                StatusCode::NOT_FOUND,
                &format!("no app is routed for {host}{path}\n"),
            ));
        }
    };
    let log = RequestLog::start(&worker, &route, &req, &peer);
    let head = req.method() == Method::HEAD;
    let response = routed(&worker, route, req, peer, &host).await;
    Ok(match log {
        Some(log) => log.attach(response, head),
        None => response,
    })
}

/// A request to `route`'s app: refused by its deny list, redirected to
/// HTTPS, refused by its basic authentication, or forwarded.
async fn routed(
    worker: &Worker,
    route: Arc<Route>,
    req: Request<Incoming>,
    peer: Peer,
    host: &str,
) -> Response<ClientBody> {
    let shared = &worker.shared;
    if route.deny.denies(peer.addr.ip()) {
        route.runtime.stats.denied.fetch_add(1, Relaxed);
        route.runtime.stats.status(StatusCode::FORBIDDEN.as_u16());
        return denied();
    }
    if route.redirect_to_https && peer.scheme == Scheme::Http {
        let response = to_https(&req, host, shared.config.https_port);
        route.runtime.stats.status(response.status().as_u16());
        return response;
    }
    if let Some(gate) = &route.auth
        && let Some(refused) = authenticate(gate, &req, &route.app_id)
    {
        route.runtime.stats.status(refused.status().as_u16());
        return refused;
    }
    // A span per request; at debug level, so that building it costs
    // nothing unless asked for.
    let span = debug_span!(
        "request",
        method = %req.method(),
        host = %host,
        path = %req.uri().path(),
        app = %route.app_id,
    );
    forward(shared, &worker.pool, route, req, peer)
        .instrument(span)
        .await
}

/// A routed request's access-log line in the making: what is known at
/// arrival, completed with the status and the bytes sent. Dropped before
/// that (the client left, or shutdown cut the request short), it is
/// logged with nginx's 499.
struct RequestLog {
    worker: Arc<Worker>,
    /// Taken when the line is queued.
    entry: Option<access_log::Entry>,
    start: Instant,
}

/// The status logged for a request whose client went away before its
/// answer (nginx's "client closed request").
const CLIENT_CLOSED_REQUEST: u16 = 499;

impl RequestLog {
    /// The line for `req` to `route`'s app; `None` when nothing is logged
    /// (no access log, or the app opted out).
    fn start(
        worker: &Arc<Worker>,
        route: &Route,
        req: &Request<Incoming>,
        peer: &Peer,
    ) -> Option<Box<RequestLog>> {
        if !route.access_log || !worker.shared.access_log.enabled() {
            return None;
        }
        let headers = req.headers();
        let entry = access_log::Entry {
            app: route.app_id.clone(),
            time: SystemTime::now(),
            client: peer.addr.ip(),
            user: basic_user(headers),
            method: req.method().clone(),
            target: req.uri().clone(),
            version: req.version(),
            host: headers.get(header::HOST).cloned(),
            referer: headers.get(header::REFERER).cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            status: CLIENT_CLOSED_REQUEST,
            bytes: 0,
            duration: Duration::ZERO,
            upstream: None,
        };
        Some(Box::new(RequestLog {
            worker: worker.clone(),
            entry: Some(entry),
            start: Instant::now(),
        }))
    }

    /// Takes `response`'s status; logs the router's own answers at once,
    /// and hands an instance's to the body's [`Finish`].
    fn attach(
        mut self: Box<Self>,
        mut response: Response<ClientBody>,
        head: bool,
    ) -> Response<ClientBody> {
        if let Some(entry) = &mut self.entry {
            entry.status = response.status().as_u16();
        }
        match response.body_mut() {
            ClientBody::Proxied {
                finish: Some(finish),
                ..
            } => finish.log = Some(self),
            ClientBody::Proxied { finish: None, .. } => self.finish(0, None),
            ClientBody::Local(body) => {
                // No body goes out for HEAD.
                let bytes = match (head, body) {
                    (false, Some(body)) => body.len() as u64,
                    _ => 0,
                };
                self.finish(bytes, None);
            }
        }
        response
    }

    /// Queues the line, with `bytes` sent by `upstream`.
    fn finish(&mut self, bytes: u64, upstream: Option<Arc<str>>) {
        if let Some(mut entry) = self.entry.take() {
            entry.bytes = bytes;
            entry.duration = self.start.elapsed();
            entry.upstream = upstream;
            self.worker.shared.access_log.log(entry);
        }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        self.finish(0, None);
    }
}

/// The user name of the `Authorization: Basic` a request carries (as
/// nginx's `$remote_user`: whether or not it is valid); never the password.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?;
    let (user, _) = auth::basic_credentials(value.as_bytes()).ok()?;
    Some(String::from_utf8_lossy(&user).into_owned())
}

/// The redirect of a plain-HTTP request to HTTPS (400 when its host
/// cannot be redirected to).
fn to_https(req: &Request<Incoming>, host: &str, port: u16) -> Response<ClientBody> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match redirect::to_https(req.method().as_str(), host, target, port) {
        Ok(r) => match HeaderValue::from_str(&r.location) {
            Ok(location) => {
                let status =
                    StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
                let mut response = text(status, &format!("moved to {}\n", r.location));
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            Err(_) => text(
                StatusCode::BAD_REQUEST,
                "this request cannot be redirected\n",
            ),
        },
        Err(e) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
    }
}

/// The answer refusing a request to an app behind basic authentication;
/// `None` when its credentials are valid.
fn authenticate(
    gate: &BasicAuth,
    req: &Request<Incoming>,
    app_id: &str,
) -> Option<Response<ClientBody>> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match auth::decide(&gate.file.current(), authorization) {
        auth::Verdict::Allow => None,
        auth::Verdict::Challenge(reason) => {
            // The reason only: never the header, never a password.
            debug!(app = app_id, reason, "basic authentication refused");
            let mut response = text(StatusCode::UNAUTHORIZED, "authentication required\n");
            let challenge = HeaderValue::from_str(&auth::challenge(&gate.realm))
                .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"Restricted\""));
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
            Some(response)
        }
        auth::Verdict::Unavailable => {
            debug!(app = app_id, file = %gate.file.path().display(), "credentials file unavailable: denied");
            Some(text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("access to {app_id} is denied: its credentials cannot be read\n"),
            ))
        }
    }
}

/// Counts the request in its app's audience and proxies it (through its
/// response cache, for an app with one), adding the router's visitor
/// cookie to the answer when one was issued.
async fn forward(
    shared: &Arc<Shared>,
    pool: &UpstreamPool,
    route: Arc<Route>,
    req: Request<Incoming>,
    peer: Peer,
) -> Response<ClientBody> {
    let cookie = count_visit(shared, &route, &req, &peer);
    let mut response = if route.cache.is_none() {
        deliver(shared, pool, route, req, peer).await
    } else {
        cached(shared, pool, route, req, peer).await
    };
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A request to an app with a response cache ([`crate::cache`]):
/// answered from it, or proxied with the response marked a miss and,
/// when it is to be stored, its body collected as it streams.
async fn cached(
    shared: &Arc<Shared>,
    pool: &UpstreamPool,
    route: Arc<Route>,
    req: Request<Incoming>,
    peer: Peer,
) -> Response<ClientBody> {
    let start = Instant::now();
    let clock = &shared.clock;
    let begun = cache::begin(
        &shared.cache,
        &route,
        &req,
        peer.scheme == Scheme::Https,
        clock.now_ms(),
        clock.unix_secs(),
    );
    let pending = match begun {
        cache::Begin::Answer(answer) => return from_cache(&route.runtime, answer, start, clock),
        cache::Begin::Forward(pending) => pending,
    };
    let (mut parts, mut body) = deliver(shared, pool, route, req, peer).await.into_parts();
    let length = match &body {
        ClientBody::Proxied { inner, .. } => inner.size_hint().exact(),
        ClientBody::Local(_) => None,
    };
    let fill = pending.response(
        parts.status,
        &mut parts.headers,
        length,
        clock.now_ms(),
        clock.unix_secs(),
    );
    // Only an instance's answer is stored, never the router's own.
    if let (
        Some(mut fill),
        ClientBody::Proxied {
            inner,
            finish: Some(finish),
        },
    ) = (fill, &mut body)
    {
        if inner.is_end_stream() {
            // No body to come: hyper will not poll it.
            fill.end();
        } else {
            finish.fill = Some(Box::new(fill));
        }
    }
    Response::from_parts(parts, body)
}

/// An answer from the cache, counted as the app's request, response and
/// bytes (and keeping it awake), but not in its request rate: that is
/// what its instances carry, for autoscaling.
fn from_cache(
    runtime: &AppRuntime,
    answer: Response<Bytes>,
    start: Instant,
    clock: &crate::Clock,
) -> Response<ClientBody> {
    let stats = &runtime.stats;
    stats.requests.fetch_add(1, Relaxed);
    runtime.last_request_ms.store(clock.now_ms(), Relaxed);
    stats.status(answer.status().as_u16());
    let (parts, body) = answer.into_parts();
    stats.bytes_out.fetch_add(body.len() as u64, Relaxed);
    stats.latency.observe(start.elapsed());
    let body = (!body.is_empty()).then_some(body);
    Response::from_parts(parts, ClientBody::Local(body))
}

/// Counts a page view of `route`'s app for the request's visitor and
/// path; the router's visitor cookie to set when it issued one.
fn count_visit(
    shared: &Shared,
    route: &Route,
    req: &Request<Incoming>,
    peer: &Peer,
) -> Option<HeaderValue> {
    let cookies = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let visitor = visitors::identify(
        cookies,
        route.uv_cookie.as_deref(),
        peer.addr.ip(),
        visitors::new_visitor_id,
    );
    let now = shared.clock.unix_secs();
    route
        .runtime
        .audience()
        .record(now, visitor.hash, req.uri().path());
    let id = visitor.issue?;
    HeaderValue::from_str(&visitors::set_cookie(&id, peer.scheme == Scheme::Https)).ok()
}

/// Proxies one request to an instance of `route`, holding it while a
/// sleeping app wakes.
async fn deliver(
    shared: &Arc<Shared>,
    pool: &UpstreamPool,
    mut route: Arc<Route>,
    req: Request<Incoming>,
    peer: Peer,
) -> Response<ClientBody> {
    let start = Instant::now();
    let runtime = route.runtime.clone();
    let app_stats = &runtime.stats;
    let now_ms = shared.clock.now_ms();
    app_stats.requests.fetch_add(1, Relaxed);
    app_stats.rate.record(now_ms / 1000);
    runtime.last_request_ms.store(now_ms, Relaxed);
    let finish_local = |response: Response<ClientBody>| {
        app_stats.status(response.status().as_u16());
        app_stats.latency.observe(start.elapsed());
        response
    };

    if route.backend_h2 {
        // A sleeping gRPC app is woken first too (nothing to stream to).
        if route.upstreams.is_empty() && asleep(&route) {
            match woken(shared, &route).await {
                Some(ready) => route = ready,
                None => return finish_local(still_starting(&route.app_id, req.headers())),
            }
        }
        return match deliver_h2(shared, &route, req, &peer, start).await {
            Ok(proxied) => proxied,
            Err(local) => finish_local(local),
        };
    }
    let (mut parts, body) = req.into_parts();
    // Fulfilled by hyper once a `101` has gone to the client.
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    let body = match RequestBody::read(body, shared.config.max_buffered_body, &runtime).await {
        Ok(body) => body,
        Err(e) => {
            debug!(error = %error_chain(&e), "client body");
            return finish_local(text(e.status(), "cannot read the request body\n"));
        }
    };
    let request = Outgoing::new(
        &parts,
        &peer,
        body,
        route.sticky,
        route.auth.is_some(),
        on_upgrade,
    );

    let mut failure = match attempts(shared, pool, &route, &request, start).await {
        Ok(response) => return response,
        Err(failure) => failure,
    };
    // Nothing was tried: no routable instance. A sleeping (or waking) app
    // is woken and the request waits for its first instance.
    if failure.is_none() && asleep(&route) {
        match woken(shared, &route).await {
            Some(ready) => {
                route = ready;
                failure = match attempts(shared, pool, &route, &request, start).await {
                    Ok(response) => return response,
                    Err(failure) => failure,
                };
            }
            None => return finish_local(still_starting(&route.app_id, &parts.headers)),
        }
    }
    match failure {
        // The details (addresses, causes) are logged, not shown.
        Some(error) => finish_local(text(
            error.status(),
            &format!("no answer from an instance of {}\n", route.app_id),
        )),
        None => {
            app_stats.unavailable.fetch_add(1, Relaxed);
            finish_local(retry_later(&format!(
                "no instance of {} is available\n",
                route.app_id
            )))
        }
    }
}

/// Whether `route`'s app sleeps (or is waking): a request for it with no
/// routable instance wakes it and waits.
fn asleep(route: &Route) -> bool {
    scale::sleeping(&route.labels).is_some() || route.runtime.scale.waking()
}

/// Wakes `route`'s app and waits for its first instance, for its
/// `BATON_WAKE_TIMEOUT`; `None` (counted unavailable) when none came.
async fn woken(shared: &Arc<Shared>, route: &Arc<Route>) -> Option<Arc<Route>> {
    let timeout = scale::wake_timeout(&route.labels);
    let app_stats = &route.runtime.stats;
    app_stats.held.fetch_add(1, Relaxed);
    scaler::wake(shared, &shared.marathon, route);
    let ready = wait_for_instance(shared, &route.app_id, timeout).await;
    if ready.is_none() {
        app_stats.unavailable.fetch_add(1, Relaxed);
        info!(?timeout, "no instance woke in time");
    }
    ready
}

/// A request for an app whose instances speak HTTP/2 (gRPC): streamed
/// both ways as it comes, trailers included, to an instance the balancer
/// picks (another one if the first cannot be reached); the router's own
/// answer as `Err`.
async fn deliver_h2(
    shared: &Arc<Shared>,
    route: &Arc<Route>,
    req: Request<Incoming>,
    peer: &Peer,
    start: Instant,
) -> Result<Response<ClientBody>, Response<ClientBody>> {
    let runtime = &route.runtime;
    let (parts, body) = req.into_parts();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)?
                .to_str()
                .ok()
                .map(str::to_string)
        });
    let headers = upstream_headers(&parts, peer, route.auth.is_some(), authority.as_deref());
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut body = Some(body);
    let mut tried: Vec<usize> = Vec::new();
    let logged = route.access_log && shared.access_log.enabled();
    while let Some(pick) = balance::pick(
        &route.upstreams,
        route.policy,
        &runtime.rotor,
        &[],
        &tried,
        shared.clock.now_ms(),
    ) {
        let upstream = &route.upstreams[pick.index];
        let Some(this_body) = body.take() else { break };
        let host = authority.as_deref().unwrap_or(&upstream.authority);
        let uri = match format!("http://{host}{path}").parse::<hyper::Uri>() {
            Ok(uri) => uri,
            Err(_) => {
                return Err(text(
                    StatusCode::BAD_REQUEST,
                    "the request's authority is not valid\n",
                ));
            }
        };
        let sender = match shared
            .h2
            .ready(&upstream.authority, shared.config.connect_timeout)
            .await
        {
            Ok(sender) => sender,
            Err(error) => {
                // Nothing left: the next instance gets the request.
                body = Some(this_body);
                runtime.stats.upstream_failures.fetch_add(1, Relaxed);
                let ejected = upstream
                    .state
                    .record_failure(shared.clock.now_ms(), &shared.config.ejection());
                warn!(task = %upstream.task_id, error = %error_chain(&error), ejected, "HTTP/2 connect failed");
                tried.push(pick.index);
                continue;
            }
        };
        let mut request = Request::new(this_body.boxed());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers.clone();
        let in_flight = upstream.state.begin();
        match pool_h2::send(sender, &upstream.authority, request).await {
            Ok(response) => {
                upstream.state.record_success();
                let (mut head, answer) = response.into_parts();
                client_head(&mut head, runtime, None);
                let finish = Finish::new(
                    runtime,
                    start,
                    in_flight,
                    logged.then(|| upstream.authority.clone()),
                );
                return Ok(Response::from_parts(
                    head,
                    ClientBody::Proxied {
                        inner: InstanceBody::Http2(answer),
                        finish: Some(finish),
                    },
                ));
            }
            Err(error) => {
                drop(in_flight);
                runtime.stats.upstream_failures.fetch_add(1, Relaxed);
                let ejected = upstream
                    .state
                    .record_failure(shared.clock.now_ms(), &shared.config.ejection());
                warn!(task = %upstream.task_id, error = %error_chain(&error), ejected, "HTTP/2 exchange failed");
                // The body may be partly sent: not tried again.
                return Err(text(
                    StatusCode::BAD_GATEWAY,
                    &format!("no answer from an instance of {}\n", route.app_id),
                ));
            }
        }
    }
    runtime.stats.unavailable.fetch_add(1, Relaxed);
    Err(retry_later(&format!(
        "no instance of {} is available\n",
        route.app_id
    )))
}

/// What goes to an instance, prepared once for every attempt.
struct Outgoing<'a> {
    parts: &'a hyper::http::request::Parts,
    body: RequestBody,
    /// The client's sticky cookies (read only for sticky apps).
    sticky: Vec<&'a str>,
    /// The request line and headers as the instance gets them, without
    /// framing headers and the final blank line.
    head: Vec<u8>,
    /// Whether the client sent a `Host` (else each attempt names the
    /// instance's address).
    has_host: bool,
    idempotent: bool,
    /// Whether the request asks to switch protocols.
    upgrade: bool,
    /// The client's connection once switched (taken by the attempt that
    /// gets a `101`).
    on_upgrade: Mutex<Option<OnUpgrade>>,
}

impl<'a> Outgoing<'a> {
    fn new(
        parts: &'a hyper::http::request::Parts,
        peer: &Peer,
        body: RequestBody,
        sticky: bool,
        strip_authorization: bool,
        on_upgrade: Option<OnUpgrade>,
    ) -> Self {
        let sticky = match sticky {
            true => parts
                .headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(balance::sticky_cookies)
                .collect(),
            false => Vec::new(),
        };
        let mut head = upstream_head(parts, peer, strip_authorization);
        // Asked of the instance only when the client's connection can be
        // taken over (hyper gives it for HTTP/1.1 upgrade requests).
        let upgrade = on_upgrade.as_ref().and_then(|_| upgrade_requested(parts));
        if let Some(protocol) = upgrade {
            head.extend_from_slice(b"connection: upgrade\r\n");
            push_header(&mut head, &header::UPGRADE, protocol);
        }
        Outgoing {
            upgrade: upgrade.is_some(),
            on_upgrade: Mutex::new(on_upgrade),
            has_host: parts.headers.contains_key(header::HOST) || parts.uri.authority().is_some(),
            head,
            parts,
            body,
            sticky,
            idempotent: matches!(
                parts.method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            ),
        }
    }
}

/// Sends `request` to an instance of `route`, once more elsewhere after a
/// failure that allows it. `Err(None)`: no instance to try at all.
async fn attempts(
    shared: &Shared,
    pool: &UpstreamPool,
    route: &Arc<Route>,
    request: &Outgoing<'_>,
    start: Instant,
) -> Result<Response<ClientBody>, Option<Error>> {
    let runtime = &route.runtime;
    let app_stats = &runtime.stats;
    let sticky: &[&str] = if route.sticky { &request.sticky } else { &[] };
    let ejection = shared.config.ejection();
    let logged = route.access_log && shared.access_log.enabled();
    let mut tried: Vec<usize> = Vec::new();
    let mut failure: Option<Error> = None;
    while let Some(pick) = balance::pick(
        &route.upstreams,
        route.policy,
        &runtime.rotor,
        sticky,
        &tried,
        shared.clock.now_ms(),
    ) {
        let upstream = &route.upstreams[pick.index];
        let in_flight = upstream.state.begin();
        let with_host;
        let head: &[u8] = match (&upstream.host_header, request.has_host) {
            (Some(host), false) => {
                let mut head = request.head.clone();
                push_header(&mut head, &header::HOST, host);
                with_host = head;
                &with_host
            }
            _ => &request.head,
        };
        let outgoing = pool::Outgoing {
            head,
            head_method: request.parts.method == Method::HEAD,
            announce_empty: matches!(
                request.parts.method,
                Method::POST | Method::PUT | Method::PATCH
            ),
            upgrade: request.upgrade,
            body: request.body.attempt(runtime),
        };

        let timeout = shared.config.upstream_timeout;
        let error =
            match tokio::time::timeout(timeout, pool.send(&upstream.authority, outgoing)).await {
                Ok(Ok(response)) => {
                    upstream.state.record_success();
                    let cookie = (route.sticky && !pick.sticky_hit)
                        .then(|| balance::set_cookie(upstream, route.cookie_path()));
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        let on_upgrade = request
                            .on_upgrade
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take();
                        let tunnel = Tunnel {
                            runtime: runtime.clone(),
                            on_upgrade,
                            _in_flight: in_flight,
                        };
                        return Ok(switch_protocols(response, tunnel, start, cookie));
                    }
                    let finish = Finish::new(
                        runtime,
                        start,
                        in_flight,
                        logged.then(|| upstream.authority.clone()),
                    );
                    return Ok(respond(response, finish, cookie));
                }
                Ok(Err(source)) => Error::Upstream(source),
                Err(_) => Error::Timeout {
                    upstream: upstream.authority.clone(),
                    timeout,
                },
            };
        drop(in_flight);
        app_stats.upstream_failures.fetch_add(1, Relaxed);
        let ejected = upstream
            .state
            .record_failure(shared.clock.now_ms(), &ejection);
        let unsent = matches!(&error, Error::Upstream(e) if e.unsent());
        let retry = tried.is_empty()
            && !matches!(error, Error::Timeout { .. })
            && (unsent || request.idempotent)
            && request.body.replayable();
        warn!(
            task = %upstream.task_id,
            error = %error_chain(&error),
            ejected,
            retry,
            "upstream attempt failed"
        );
        tried.push(pick.index);
        failure = Some(error);
        if !retry {
            break;
        }
        app_stats.retries.fetch_add(1, Relaxed);
    }
    Err(failure)
}

/// Waits up to `timeout` for app `id` to have a routable instance; its
/// route then.
async fn wait_for_instance(shared: &Shared, id: &str, timeout: Duration) -> Option<Arc<Route>> {
    let mut tables = shared.subscribe();
    let routable = async {
        loop {
            if let Some(route) = tables
                .borrow_and_update()
                .app(id)
                .filter(|r| !r.upstreams.is_empty())
            {
                return Some(route.clone());
            }
            if tables.changed().await.is_err() {
                return None;
            }
        }
    };
    tokio::time::timeout(timeout, routable).await.ok().flatten()
}

/// 503 for a request whose app did not wake in time: `Retry-After`, and
/// for browsers a page that reloads itself.
fn still_starting(app_id: &str, headers: &HeaderMap) -> Response<ClientBody> {
    const RETRY_AFTER_SECS: u64 = 5;
    let browser = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    let mut response = if browser {
        local(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/html; charset=utf-8",
            scale::starting_page(app_id, RETRY_AFTER_SECS),
        )
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{app_id} is starting; retry shortly\n"),
        )
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// The upstream's response on its way to the client.
fn respond(
    response: Response<pool::ResponseBody>,
    finish: Finish,
    cookie: Option<String>,
) -> Response<ClientBody> {
    let (mut parts, body) = response.into_parts();
    client_head(&mut parts, &finish.runtime, cookie);
    Response::from_parts(
        parts,
        ClientBody::Proxied {
            inner: InstanceBody::Http1(body),
            finish: Some(finish),
        },
    )
}

/// An instance's response body: from the HTTP/1.1 pool, or an HTTP/2
/// stream (whose trailers, gRPC's status, pass through).
pub(crate) enum InstanceBody {
    /// Over HTTP/1.1.
    Http1(pool::ResponseBody),
    /// Over HTTP/2.
    Http2(Incoming),
}

impl Body for InstanceBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            InstanceBody::Http1(body) => Pin::new(body).poll_frame(cx),
            InstanceBody::Http2(body) => {
                Pin::new(body).poll_frame(cx).map_err(std::io::Error::other)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InstanceBody::Http1(body) => body.is_end_stream(),
            InstanceBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            InstanceBody::Http1(body) => body.size_hint(),
            InstanceBody::Http2(body) => body.size_hint(),
        }
    }
}

/// The instance's response head as the client gets it: hop-by-hop
/// headers dropped, the sticky cookie added; its status counted.
fn client_head(
    parts: &mut hyper::http::response::Parts,
    runtime: &AppRuntime,
    cookie: Option<String>,
) {
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::DATE) {
        parts.headers.insert(header::DATE, date_now());
    }
    runtime.stats.status(parts.status.as_u16());
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
}

/// A switched connection's other half: the client's side, with what the
/// tunnel counts against.
struct Tunnel {
    runtime: Arc<AppRuntime>,
    on_upgrade: Option<OnUpgrade>,
    /// The tunnel is outstanding at the instance while it lasts.
    _in_flight: InFlight,
}

/// The instance's `101`: it goes to the client (with `Connection: upgrade`
/// and the instance's `Upgrade`), and a task joins the two connections
/// once hyper has written it.
fn switch_protocols(
    mut response: Response<pool::ResponseBody>,
    tunnel: Tunnel,
    start: Instant,
    cookie: Option<String>,
) -> Response<ClientBody> {
    let switched = response.body_mut().switched();
    let (mut parts, _) = response.into_parts();
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    client_head(&mut parts, &tunnel.runtime, cookie);
    tunnel.runtime.stats.latency.observe(start.elapsed());
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(protocol) = protocol {
        parts.headers.insert(header::UPGRADE, protocol);
    }
    if let Some(switched) = switched {
        tokio::spawn(join(tunnel, switched).instrument(tracing::Span::current()));
    }
    Response::from_parts(parts, ClientBody::Local(None))
}

/// Copies bytes both ways between the client and the instance until
/// either closes; counts them.
async fn join(tunnel: Tunnel, switched: pool::Switched) {
    let Some(on_upgrade) = tunnel.on_upgrade else {
        return;
    };
    let client = match on_upgrade.await {
        Ok(client) => client,
        Err(e) => {
            debug!(error = %error_chain(&e), "the client's connection did not switch");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let pool::Switched {
        mut stream,
        read_ahead,
    } = switched;
    let stats = &tunnel.runtime.stats;
    if !read_ahead.is_empty() {
        if let Err(e) = client.write_all(&read_ahead).await {
            debug!(error = %e, "tunnel: client gone");
            return;
        }
        stats.bytes_out.fetch_add(read_ahead.len() as u64, Relaxed);
    }
    match tokio::io::copy_bidirectional(&mut client, &mut stream).await {
        Ok((to_instance, to_client)) => {
            stats.bytes_in.fetch_add(to_instance, Relaxed);
            stats.bytes_out.fetch_add(to_client, Relaxed);
            debug!(to_instance, to_client, "tunnel closed");
        }
        Err(e) => debug!(error = %e, "tunnel ended with an error"),
    }
}

/// The protocol a request asks to switch to: its `Upgrade`, when its
/// `Connection` names it (HTTP/1.1 only, RFC 9110 §7.8).
fn upgrade_requested(parts: &hyper::http::request::Parts) -> Option<&HeaderValue> {
    if parts.version != Version::HTTP_11 {
        return None;
    }
    let protocol = parts.headers.get(header::UPGRADE)?;
    connection_named(&parts.headers)
        .contains(&header::UPGRADE)
        .then_some(protocol)
}

/// Headers that apply to one connection only (RFC 9110 §7.6.1); names,
/// not strings, so that removing them hashes nothing per request.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_named(headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The request line and headers as sent upstream: origin-form target,
/// hop-by-hop headers (and those `Connection` names) and `Expect`
/// dropped, the Host kept (from an absolute URI if need be),
/// `X-Forwarded-For` extended, `X-Forwarded-Host` added unless present,
/// `X-Forwarded-Proto` added unless present on plain HTTP and always
/// `https` over TLS (the router knows; a client's claim is dropped), and
/// `Authorization` dropped when `strip_authorization` (it passed the
/// router's own basic-auth gate). Written straight from the client's
/// header map: no copy of the map per request.
fn upstream_head(
    parts: &hyper::http::request::Parts,
    peer: &Peer,
    strip_authorization: bool,
) -> Vec<u8> {
    let tls = peer.scheme == Scheme::Https;
    let incoming = &parts.headers;
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let named = connection_named(incoming);
    let mut host = None;
    for (name, value) in incoming {
        // Framing is the pool's to write, for the body it sends.
        if !passes(name, &named, tls, strip_authorization) || *name == header::CONTENT_LENGTH {
            continue;
        }
        if *name == header::HOST {
            host = Some(value);
        }
        push_header(&mut head, name, value);
    }
    let authority_host = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if host.is_none()
        && let Some(value) = &authority_host
    {
        push_header(&mut head, &header::HOST, value);
        host = Some(value);
    }
    head.extend_from_slice(b"x-forwarded-for: ");
    head.extend_from_slice(&forwarded_for(incoming, peer));
    head.extend_from_slice(b"\r\n");
    if let Some(host) = host
        && !incoming.contains_key(X_FORWARDED_HOST)
    {
        push_header(&mut head, &X_FORWARDED_HOST, host);
    }
    if let Some(proto) = forwarded_proto(incoming, tls) {
        push_header(
            &mut head,
            &X_FORWARDED_PROTO,
            &HeaderValue::from_static(proto),
        );
    }
    head
}

/// The request's headers as an HTTP/2 instance gets them: by the rules of
/// [`upstream_head`], but `TE: trailers` kept (gRPC servers want it, and
/// HTTP/2 allows that value) and `Host` left to the URI's authority
/// (`host`, also sent as `X-Forwarded-Host` unless present).
fn upstream_headers(
    parts: &hyper::http::request::Parts,
    peer: &Peer,
    strip_authorization: bool,
    host: Option<&str>,
) -> HeaderMap {
    let tls = peer.scheme == Scheme::Https;
    let incoming = &parts.headers;
    let named = connection_named(incoming);
    let mut headers = HeaderMap::with_capacity(incoming.len() + 3);
    for (name, value) in incoming {
        if passes(name, &named, tls, strip_authorization) && *name != header::HOST {
            headers.append(name.clone(), value.clone());
        }
    }
    let trailers = incoming
        .get(header::TE)
        .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let forwarded = HeaderValue::from_bytes(&forwarded_for(incoming, peer))
        .unwrap_or_else(|_| peer.forwarded_for.clone());
    headers.insert(X_FORWARDED_FOR, forwarded);
    if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok())
        && !incoming.contains_key(X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(proto) = forwarded_proto(incoming, tls) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    headers
}

/// Whether an incoming header goes to the instance as it came: not a
/// hop-by-hop one (nor one `Connection` names), not `Expect`, not this
/// hop's own `X-Forwarded-For` (rewritten) or, over TLS,
/// `X-Forwarded-Proto` (the router knows), not an `Authorization` the
/// router's basic-auth gate consumed.
fn passes(name: &HeaderName, named: &[HeaderName], tls: bool, strip_authorization: bool) -> bool {
    !(HOP_BY_HOP.contains(name)
        || *name == header::EXPECT
        || *name == X_FORWARDED_FOR
        || (tls && *name == X_FORWARDED_PROTO)
        || (strip_authorization && *name == header::AUTHORIZATION)
        || named.contains(name))
}

/// `X-Forwarded-For` as this hop sends it: every earlier hop's, then
/// this client.
fn forwarded_for(incoming: &HeaderMap, peer: &Peer) -> Vec<u8> {
    let mut value = Vec::with_capacity(32);
    for earlier in incoming.get_all(X_FORWARDED_FOR) {
        let earlier = earlier.as_bytes().trim_ascii();
        if !earlier.is_empty() {
            value.extend_from_slice(earlier);
            value.extend_from_slice(b", ");
        }
    }
    value.extend_from_slice(peer.forwarded_for.as_bytes());
    value
}

/// The `X-Forwarded-Proto` to add: `https` over TLS (a client's claim was
/// dropped), `http` on plain HTTP unless the client (a proxy before us)
/// said.
fn forwarded_proto(incoming: &HeaderMap, tls: bool) -> Option<&'static str> {
    if tls {
        Some("https")
    } else if incoming.contains_key(X_FORWARDED_PROTO) {
        None
    } else {
        Some("http")
    }
}

fn push_header(head: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    head.extend_from_slice(name.as_str().as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value.as_bytes());
    head.extend_from_slice(b"\r\n");
}

/// The headers a `Connection` header names (hop-by-hop for this message).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The client's request body, kept so that an attempt can be repeated.
enum RequestBody {
    Empty,
    /// Read whole (known and small length).
    Buffered(Bytes),
    /// Streamed; the slot holds it until an attempt starts reading it.
    Stream(Arc<Mutex<Option<Incoming>>>),
}

impl RequestBody {
    async fn read(
        body: Incoming,
        limit: usize,
        runtime: &AppRuntime,
    ) -> Result<RequestBody, Error> {
        if body.is_end_stream() {
            return Ok(RequestBody::Empty);
        }
        match body.size_hint().exact() {
            Some(n) if n <= limit as u64 => {
                let bytes = body.collect().await.map_err(Error::RequestBody)?.to_bytes();
                runtime
                    .stats
                    .bytes_in
                    .fetch_add(bytes.len() as u64, Relaxed);
                Ok(RequestBody::Buffered(bytes))
            }
            _ => Ok(RequestBody::Stream(Arc::new(Mutex::new(Some(body))))),
        }
    }

    /// The body for one attempt.
    fn attempt(&self, runtime: &Arc<AppRuntime>) -> UpstreamBody {
        match self {
            RequestBody::Empty => UpstreamBody::Full(None),
            RequestBody::Buffered(bytes) => UpstreamBody::Full(Some(bytes.clone())),
            RequestBody::Stream(slot) => UpstreamBody::Stream {
                slot: slot.clone(),
                body: None,
                runtime: runtime.clone(),
            },
        }
    }

    /// Whether another attempt can send it whole.
    fn replayable(&self) -> bool {
        match self {
            RequestBody::Empty | RequestBody::Buffered(_) => true,
            RequestBody::Stream(slot) => slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some(),
        }
    }
}

/// A request body on its way to an instance.
pub(crate) enum UpstreamBody {
    /// Whole (or none).
    Full(Option<Bytes>),
    /// Streamed from the client: taken out of the slot at the first poll,
    /// so an attempt that never polled leaves it for the next one.
    Stream {
        slot: Arc<Mutex<Option<Incoming>>>,
        body: Option<Incoming>,
        runtime: Arc<AppRuntime>,
    },
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Stream {
                slot,
                body,
                runtime,
            } => {
                if body.is_none() {
                    *body = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                }
                let Some(inner) = body else {
                    return Poll::Ready(None);
                };
                let polled = Pin::new(inner).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled
                    && let Some(data) = frame.data_ref()
                {
                    runtime.stats.bytes_in.fetch_add(data.len() as u64, Relaxed);
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full(bytes) => bytes.is_none(),
            UpstreamBody::Stream { slot, body, .. } => match body {
                Some(b) => b.is_end_stream(),
                None => slot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .is_none_or(Body::is_end_stream),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpstreamBody::Stream { slot, body, .. } => match body {
                Some(b) => b.size_hint(),
                None => slot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), Body::size_hint),
            },
        }
    }
}

/// Records a proxied request's end: bytes sent, latency, and the end of
/// its outstanding count at the instance. Runs when the response body
/// ends, fails, or is dropped (client gone).
pub(crate) struct Finish {
    runtime: Arc<AppRuntime>,
    start: Instant,
    bytes: u64,
    _in_flight: InFlight,
    /// The instance's address, when the request is logged.
    upstream: Option<Arc<str>>,
    /// The access-log line, written when the body ends (boxed: most
    /// bodies carry none).
    log: Option<Box<RequestLog>>,
    /// The body collected for the response cache, stored when it ends
    /// whole (boxed: most bodies are not cached).
    fill: Option<Box<Fill>>,
}

impl Finish {
    /// The bookkeeping of an instance's answer to `runtime`'s app begun at
    /// `start`, holding its in-flight mark; `upstream` names the instance
    /// when the request is logged.
    fn new(
        runtime: &Arc<AppRuntime>,
        start: Instant,
        in_flight: InFlight,
        upstream: Option<Arc<str>>,
    ) -> Finish {
        Finish {
            runtime: runtime.clone(),
            start,
            bytes: 0,
            _in_flight: in_flight,
            upstream,
            log: None,
            fill: None,
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let stats = &self.runtime.stats;
        stats.bytes_out.fetch_add(self.bytes, Relaxed);
        stats.latency.observe(self.start.elapsed());
        if let Some(mut log) = self.log.take() {
            log.finish(self.bytes, self.upstream.take());
        }
    }
}

/// A response body to a client.
pub(crate) enum ClientBody {
    /// The router's own answer.
    Local(Option<Bytes>),
    /// An instance's, streamed through and counted.
    Proxied {
        inner: InstanceBody,
        finish: Option<Finish>,
    },
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ClientBody::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ClientBody::Proxied { inner, finish } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(data), Some(f)) = (frame.data_ref(), finish.as_mut()) {
                            f.bytes += data.len() as u64;
                            if let Some(fill) = &mut f.fill {
                                fill.data(data);
                                // hyper stops at a body that says it ended.
                                if inner.is_end_stream() {
                                    fill.end();
                                }
                            }
                        }
                    }
                    Poll::Ready(None) => {
                        if let Some(fill) = finish.as_mut().and_then(|f| f.fill.as_mut()) {
                            fill.end();
                        }
                        drop(finish.take());
                    }
                    Poll::Ready(_) => drop(finish.take()),
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Local(bytes) => bytes.is_none(),
            ClientBody::Proxied { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ClientBody::Proxied { inner, .. } => inner.size_hint(),
        }
    }
}

fn local(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ClientBody> {
    let mut response = Response::new(ClientBody::Local(Some(body.into())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::DATE, date_now());
    response
}

/// The `Date` header value for now (RFC 9110 §6.6.1), formatted at most
/// once a second per thread: for the router's own answers and for
/// instances' answers that have none.
fn date_now() -> HeaderValue {
    thread_local! {
        static CACHED: std::cell::RefCell<(u64, HeaderValue)> =
            const { std::cell::RefCell::new((0, HeaderValue::from_static(""))) };
    }
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(cached_second, value)| {
        // The cache starts at second 0, which no clock reads now.
        if *cached_second != second {
            *cached_second = second;
            *value = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .expect("an HTTP date is a valid header value");
        }
        value.clone()
    })
}

fn text(status: StatusCode, body: &str) -> Response<ClientBody> {
    local(status, "text/plain; charset=utf-8", body.to_string())
}

fn json(value: &serde_json::Value) -> Response<ClientBody> {
    json_status(StatusCode::OK, value)
}

fn json_status(status: StatusCode, value: &serde_json::Value) -> Response<ClientBody> {
    local(status, "application/json", value.to_string())
}

/// 403 for a client on a denied network.
fn denied() -> Response<ClientBody> {
    text(StatusCode::FORBIDDEN, "access denied\n")
}

/// 503 with `Retry-After: 1`.
fn retry_later(body: &str) -> Response<ClientBody> {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `/_router/switch`: the switches' progress.
const SWITCH_PATH: &str = "/_router/switch";
/// `/_router/switch/{id}`: one switch's.
const SWITCH_PREFIX: &str = "/_router/switch/";
/// The largest switch request read.
const MAX_SWITCH_BODY: usize = 16 * 1024;

/// `POST /_router/switch` starts a blue/green switch ([`crate::switch`]), from `--admin-allow` networks only: 202 with its
/// progress; `GET` shows every switch, `GET /_router/switch/{id}` one.
async fn switch_endpoint(
    worker: &Worker,
    req: Request<Incoming>,
    peer: &Peer,
) -> Response<ClientBody> {
    let shared = &worker.shared;
    match (req.method().clone(), req.uri().path()) {
        (Method::GET | Method::HEAD, SWITCH_PATH) => json(&shared.switches.to_json()),
        (Method::GET | Method::HEAD, path) => {
            let id = path[SWITCH_PREFIX.len()..].parse::<u64>().ok();
            match id.and_then(|id| shared.switches.one_json(id)) {
                Some(one) => json(&one),
                None => text(StatusCode::NOT_FOUND, "no such switch\n"),
            }
        }
        (Method::POST, SWITCH_PATH) => {
            if !shared.config.admin_allow.denies(peer.addr.ip()) {
                return text(
                    StatusCode::FORBIDDEN,
                    "switches are started from --admin-allow networks only\n",
                );
            }
            let body = match http_body_util::Limited::new(req.into_body(), MAX_SWITCH_BODY)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "the body could not be read (at most 16 KiB)\n",
                    );
                }
            };
            let request = serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| format!("the body is not JSON: {e}"))
                .and_then(|v| {
                    crate::split::SwitchRequest::from_json(&v).map_err(|e| e.to_string())
                });
            let request = match request {
                Ok(request) => request,
                Err(message) => {
                    return json_status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &serde_json::json!({"message": message}),
                    );
                }
            };
            match crate::switch::start(&worker.shared, request) {
                Ok(id) => json_status(
                    StatusCode::ACCEPTED,
                    &shared.switches.one_json(id).unwrap_or_default(),
                ),
                Err(running) => json_status(
                    StatusCode::CONFLICT,
                    &serde_json::json!({
                        "message": format!("switch {running} for this vhost is still running"),
                        "id": running,
                    }),
                ),
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "GET or POST here\n"),
    }
}

/// The router's own endpoints.
fn admin(worker: &Worker, req: &Request<Incoming>) -> Response<ClientBody> {
    let shared = &worker.shared;
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET here\n");
    }
    let now = shared.clock.now_ms();
    match req.uri().path() {
        "/_router/ping" => text(StatusCode::OK, "pong\n"),
        "/_router/table" => json(&shared.table().to_json(now)),
        "/_router/stats" => {
            let mut stats = report::stats_json(
                &shared.stats,
                &shared.access_log,
                &shared.cache.snapshot(),
                &shared.table(),
                now,
                shared.clock.unix_secs(),
            );
            stats["workers"] = worker.workers.to_json();
            json(&stats)
        }
        "/_router/autoscale" => json(&scaler::status_json(shared)),
        "/_router/metrics" => local(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            report::prometheus(
                &shared.stats,
                &shared.access_log,
                &shared.cache.snapshot(),
                &shared.table(),
                now,
                shared.clock.unix_secs(),
            ),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "the router serves /_router/ping, /_router/table, /_router/stats, /_router/metrics, /_router/autoscale and /_router/switch\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_has_a_date_and_an_instances_own_is_kept() {
        let runtime = AppRuntime::default();
        let own = "Tue, 15 Nov 1994 08:12:31 GMT";
        let (mut with_date, ()) = Response::builder()
            .header(header::DATE, own)
            .body(())
            .unwrap()
            .into_parts();
        client_head(&mut with_date, &runtime, None);
        assert_eq!(with_date.headers[header::DATE], own);

        let (mut without, ()) = Response::new(()).into_parts();
        client_head(&mut without, &runtime, None);
        let local = text(StatusCode::NOT_FOUND, "no\n");
        for date in [
            &without.headers[header::DATE],
            &local.headers()[header::DATE],
        ] {
            let parsed = httpdate::parse_http_date(date.to_str().unwrap()).unwrap();
            let age = std::time::SystemTime::now().duration_since(parsed).unwrap();
            assert!(age < Duration::from_secs(5), "{date:?}");
        }
    }

    #[test]
    fn a_new_connection_goes_to_a_worker_with_two_fewer_open() {
        assert_eq!(serving_worker(&[0, 0], 0), 0);
        assert_eq!(serving_worker(&[1, 0], 0), 0, "one more is not worth it");
        assert_eq!(serving_worker(&[2, 0], 0), 1);
        assert_eq!(serving_worker(&[5, 4, 2], 1), 2);
        assert_eq!(serving_worker(&[3, 3, 3], 2), 2);
        assert_eq!(serving_worker(&[7], 0), 0);
        // Accepting in a burst on one worker alternates the connections.
        let mut open = vec![0, 0];
        for _ in 0..64 {
            let chosen = serving_worker(&open, 0);
            open[chosen] += 1;
        }
        assert!(open[0].abs_diff(open[1]) <= 2, "{open:?}");
    }

    /// The request line and headers `upstream_head` writes for a GET of
    /// `uri` with `headers` from `peer`.
    fn sent_head(uri: &str, headers: HeaderMap, peer: &str) -> (String, HeaderMap) {
        sent_head_as(
            uri,
            headers,
            Peer::new(peer.parse().unwrap(), Scheme::Http),
            false,
        )
    }

    fn sent_head_as(
        uri: &str,
        headers: HeaderMap,
        peer: Peer,
        strip_authorization: bool,
    ) -> (String, HeaderMap) {
        let mut request = Request::new(());
        *request.uri_mut() = uri.parse().unwrap();
        *request.headers_mut() = headers;
        let (parts, ()) = request.into_parts();
        let mut head = upstream_head(&parts, &peer, strip_authorization);
        head.extend_from_slice(b"\r\n");
        let text = String::from_utf8(head.clone()).unwrap();
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut slots);
        assert!(parsed.parse(&head).unwrap().is_complete(), "{text}");
        let mut map = HeaderMap::new();
        for h in parsed.headers.iter() {
            map.append(
                HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        let line = text.lines().next().unwrap().to_string();
        (line, map)
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_forwarding_headers_added() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("web.test"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        let (line, out) = sent_head("/x?y=1", h, "127.0.0.9:5555");
        assert_eq!(line, "GET /x?y=1 HTTP/1.1");
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
        ] {
            assert!(!out.contains_key(gone), "{gone}");
        }
        assert_eq!(out["host"], "web.test");
        assert_eq!(out["cookie"], "a=b");
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(out["x-forwarded-host"], "web.test");
        assert_eq!(out["x-forwarded-proto"], "http");
    }

    #[test]
    fn over_tls_the_proto_is_https_and_a_gated_apps_authorization_is_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("web.test"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        let tls = Peer::new("127.0.0.1:1".parse().unwrap(), Scheme::Https);
        let (_, out) = sent_head_as("/", h.clone(), tls.clone(), true);
        assert_eq!(out.get_all("x-forwarded-proto").iter().count(), 1);
        assert_eq!(out["x-forwarded-proto"], "https");
        assert!(!out.contains_key(header::AUTHORIZATION));
        // Not gated: the app's own credentials pass through.
        let (_, out) = sent_head_as("/", h.clone(), tls, false);
        assert_eq!(out[header::AUTHORIZATION], "Basic dTpw");
        // Plain HTTP keeps an earlier hop's proto, as before.
        let (_, out) = sent_head("/", h, "127.0.0.1:1");
        assert_eq!(out["x-forwarded-proto"], "http");
    }

    #[test]
    fn absolute_form_requests_keep_their_host() {
        let (line, out) = sent_head("http://web.test:8000/x", HeaderMap::new(), "127.0.0.1:1");
        assert_eq!(line, "GET /x HTTP/1.1", "origin form towards the instance");
        assert_eq!(out["host"], "web.test:8000");
        assert_eq!(out["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn failures_map_to_gateway_statuses() {
        let timeout = Error::Timeout {
            upstream: "x:1".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        let refused = Error::Upstream(pool::Error::ConnectTimeout {
            authority: "x:1".into(),
            timeout: Duration::from_secs(1),
        });
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    }
}
