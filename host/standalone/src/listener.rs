//! The listener: accepting connections, optional TLS termination, HTTP/1.1 and HTTP/2 on every
//! connection, signals, and the graceful drain on shutdown.
//!
//! Protocols: the plain listener serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c, as load
//! balancers use it); with `[server.tls]` it serves both by ALPN (`h2`, `http/1.1`). Every request,
//! whatever its protocol, goes through the same [`server::handle`].
//!
//! Shutdown (`SIGTERM`/`SIGINT`), modelled on nginx's graceful stop and Envoy's drain:
//! 1. the server starts draining: `/_ts/health` answers 503 `draining`. For `server.drain_delay_ms`
//!    (default 0) it keeps accepting, and closes each HTTP/1.1 connection after its response, so a
//!    load balancer's health checks notice before connections are refused;
//! 2. the listener closes (new connections are refused); idle keep-alive connections are closed,
//!    HTTP/2 connections get `GOAWAY`, and requests in flight run to completion;
//! 3. once every connection has ended, or `server.drain_timeout_ms` after the signal, the process
//!    exits 0. A second signal exits at once.
//!
//! `SIGHUP` reloads the configuration ([`crate::reload`]); the listener itself is never rebuilt.
//!
//! Per-connection limits, shared by both protocols ([`connection_builder`], [`serve_connection`]):
//! - **Connection cap** (`server.max_connections`): past it, a new connection is accepted and
//!   closed at once (as Envoy's downstream connection limit does), so clients fail fast and the
//!   kernel's accept queue keeps draining, instead of waiting in a backlog nobody reads.
//! - **TLS handshake timeout** (`server.tls_handshake_timeout_ms`).
//! - **Header read timeout** (`server.header_read_timeout_ms`): hyper's HTTP/1 header timer, which
//!   also bounds the wait for the next request on a kept-alive HTTP/1.1 connection (as HAProxy's
//!   `timeout http-request`); and, on every connection, the time from accept to the first
//!   complete request head (a silent connection, or a slow HTTP/2 client, is closed).
//! - **Idle timeout** (`server.idle_timeout_ms`): a connection with no request in flight for that
//!   long is closed (HTTP/2 gets `GOAWAY`). A response still streaming counts as in flight.
//! - **HTTP/2**: `server.http2_max_concurrent_streams`, and keep-alive pings
//!   (`server.http2_keepalive_interval_ms`) that close a connection whose peer stopped answering.
//! - **Accept errors** (descriptor exhaustion): the loop backs off (10 ms doubling to 1 s) instead
//!   of spinning, and logs one line per second with the number of failures in between.
//!
//! The admin listener (`[admin] listen`), when configured, serves only `/_ts/health` and
//! `/_ts/metrics`, and the public listener answers 404 for them. It has its own small connection
//! cap, so a flood of the public listener cannot lock operators out, and it does not hold up the
//! drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{HeaderValue, Request, Version, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::config::{Config, ConfigError, ServerTlsConfig};
use crate::edge_metrics;
use crate::log_limit::LogLimiter;
use crate::reload::Reloader;
use crate::server::{self, App, Lifecycle};

/// How long an HTTP/2 keep-alive ping may go unacknowledged before the connection is closed.
const HTTP2_PING_ACK_TIMEOUT: Duration = Duration::from_secs(20);
/// The first pause after a failed accept; doubled on each further failure.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// The longest pause after failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Connections the admin listener keeps open at once.
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// One line per this interval for conditions that can repeat thousands of times a second.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The per-connection limits of `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `server.header_read_timeout_ms`.
    pub header_read_timeout: Duration,
    /// `server.idle_timeout_ms`.
    pub idle_timeout: Duration,
    /// `server.max_connections`.
    pub max_connections: usize,
    /// `server.tls_handshake_timeout_ms`.
    pub tls_handshake_timeout: Duration,
    /// `server.http2_max_concurrent_streams`.
    pub http2_max_concurrent_streams: u32,
    /// `server.http2_keepalive_interval_ms` (`None`: no pings).
    pub http2_keepalive_interval: Option<Duration>,
}

/// The listener's settings: fixed for the life of the process (a reload cannot change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `server.listen`.
    pub listen: SocketAddr,
    /// `[server.tls]`: certificate and key files (re-read on reload).
    pub tls: Option<ServerTlsConfig>,
    /// `server.drain_delay_ms`.
    pub drain_delay: Duration,
    /// `server.drain_timeout_ms`.
    pub drain_timeout: Duration,
    /// `server.pid_file`.
    pub pid_file: Option<PathBuf>,
    /// The per-connection limits.
    pub limits: ConnectionLimits,
    /// `admin.listen`.
    pub admin: Option<SocketAddr>,
}

impl Settings {
    /// The listener settings of `config`, validated.
    ///
    /// # Errors
    /// When the drain settings are inconsistent.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let (drain_delay, drain_timeout) = config.drain()?;
        Ok(Self {
            listen: config.server.listen,
            tls: config.server.tls.clone(),
            drain_delay,
            drain_timeout,
            pid_file: config.server.pid_file.clone(),
            limits: ConnectionLimits {
                header_read_timeout: Duration::from_millis(config.server.header_read_timeout_ms),
                idle_timeout: Duration::from_millis(config.server.idle_timeout_ms),
                max_connections: config.server.max_connections,
                tls_handshake_timeout: Duration::from_millis(
                    config.server.tls_handshake_timeout_ms,
                ),
                http2_max_concurrent_streams: config.server.http2_max_concurrent_streams,
                http2_keepalive_interval: Some(config.server.http2_keepalive_interval_ms)
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis),
            },
            admin: config.admin.as_ref().map(|a| a.listen),
        })
    }
}

/// What the listener serves from: swapped as a whole by a reload, read once per request (the
/// [`App`]) or once per connection (the TLS configuration).
pub struct Live {
    app: ArcSwap<App>,
    tls: ArcSwapOption<rustls::ServerConfig>,
    draining: AtomicBool,
}

impl Live {
    /// The state to start serving with.
    #[must_use]
    pub fn new(app: App, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self {
            app: ArcSwap::from_pointee(app),
            tls: ArcSwapOption::new(tls),
            draining: AtomicBool::new(false),
        }
    }

    /// Replaces the request-serving state and the TLS configuration. Requests already running
    /// keep the `App` they started with; the next request sees the new one.
    pub fn replace(&self, app: App, tls: Option<Arc<rustls::ServerConfig>>) {
        self.app.store(Arc::new(app));
        self.tls.store(tls);
    }

    fn lifecycle(&self) -> Lifecycle {
        if self.draining.load(Ordering::Relaxed) {
            Lifecycle::Draining
        } else {
            Lifecycle::Serving
        }
    }
}

/// Reads `[server.tls]` into a rustls server configuration offering `h2` and `http/1.1`.
///
/// # Errors
/// When a file cannot be read, holds no certificate or key, or the key does not match.
pub fn tls_config(tls: &ServerTlsConfig) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| {
            ConfigError::invalid(
                "server.tls.cert",
                format!("cannot read `{}`: {e}", tls.cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(
            "server.tls.cert",
            format!("`{}` holds no PEM certificate", tls.cert.display()),
        ));
    }
    // Never echo the key file's content or the parser's view of it.
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        ConfigError::invalid(
            "server.tls.key",
            format!(
                "cannot read a PEM private key from `{}`: {e}",
                tls.key.display()
            ),
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConfigError::invalid("server.tls", format!("cannot configure TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        ConfigError::invalid(
            "server.tls.key",
            format!("does not fit the certificate in `server.tls.cert`: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The HTTP/1.1 + HTTP/2 connection builder every connection uses.
fn connection_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(HTTP2_PING_ACK_TIMEOUT);
    builder
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// The public listener; `admin_split` when the admin routes live on the admin listener.
    Public { admin_split: bool },
    /// The admin listener: `/_ts/health` and `/_ts/metrics` only.
    Admin,
}

/// What every connection of one listener shares.
struct Shared {
    live: Arc<Live>,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    surface: Surface,
    /// One permit per open connection.
    permits: Arc<Semaphore>,
    /// `true` once the drain starts; every public connection holds a receiver, so the sender's
    /// receiver count is the number of open connections.
    drain: watch::Sender<bool>,
    at_cap_log: LogLimiter,
}

/// Accepts connections, pausing after failures so descriptor exhaustion cannot spin a core, and
/// logging failures at most once per [`LOG_INTERVAL`].
struct Acceptor {
    listener: TcpListener,
    backoff: Option<Duration>,
    resume_at: Option<tokio::time::Instant>,
    error_log: LogLimiter,
}

impl Acceptor {
    fn new(listener: TcpListener) -> Self {
        Self {
            listener,
            backoff: None,
            resume_at: None,
            error_log: LogLimiter::new(LOG_INTERVAL),
        }
    }

    /// The next accepted connection. Cancel-safe: a pause interrupted by a signal resumes at the
    /// same instant.
    async fn next(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            if let Some(at) = self.resume_at {
                tokio::time::sleep_until(at).await;
                self.resume_at = None;
            }
            match self.listener.accept().await {
                Ok(pair) => {
                    self.backoff = None;
                    return pair;
                }
                Err(e) => {
                    edge_metrics::ACCEPT_ERRORS.increment();
                    let pause = self.backoff.map_or(ACCEPT_BACKOFF_FIRST, |b| {
                        b.saturating_mul(2).min(ACCEPT_BACKOFF_MAX)
                    });
                    self.backoff = Some(pause);
                    self.resume_at = Some(tokio::time::Instant::now() + pause);
                    if let Some(suppressed) = self.error_log.occurrence() {
                        tracing::warn!(
                            suppressed,
                            "accept failed: {e}; pausing {} ms before the next accept \
                             ({suppressed} more failures since the last line)",
                            pause.as_millis()
                        );
                    }
                }
            }
        }
    }
}

/// Binds `settings.listen` and serves from `live` until a shutdown signal, then drains.
///
/// # Errors
/// When the listen address cannot be bound or a signal handler cannot be installed.
pub async fn serve(live: Arc<Live>, settings: Settings, reloader: Reloader) -> anyhow::Result<()> {
    // Before the address is announced: a signal sent as soon as the server listens must be
    // handled, not take the default action (which for `SIGHUP` is to terminate).
    let mut signals = Signals::install()?;
    let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on `{}` (`server.listen`): {e}",
            settings.listen
        )
    })?;
    let admin_listener = match settings.admin {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on `{addr}` (`admin.listen`): {e}"))?,
        ),
    };
    let local = listener.local_addr()?;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!("listening on {scheme}://{local} (HTTP/1.1 and HTTP/2)");
    // A stable line on stdout for scripts and tests that start the server on port 0.
    println!("gatehouse listening on {scheme}://{local}");
    if let Some(admin) = admin_listener {
        let admin_local = admin.local_addr()?;
        tracing::info!("admin routes (/_ts/health, /_ts/metrics) on http://{admin_local}");
        println!("gatehouse admin listening on http://{admin_local}");
        let (drain, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            live: Arc::clone(&live),
            builder: connection_builder(&settings.limits),
            limits: settings.limits,
            surface: Surface::Admin,
            permits: Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS)),
            drain,
            at_cap_log: LogLimiter::new(LOG_INTERVAL),
        });
        // Runs until the process exits: health must answer `draining` during the drain.
        tokio::spawn(async move {
            let mut acceptor = Acceptor::new(admin);
            loop {
                let (stream, peer) = acceptor.next().await;
                accept(stream, peer, &shared);
            }
        });
    }
    let _pid_file = settings
        .pid_file
        .as_deref()
        .map(PidFile::write)
        .transpose()?;

    let reloads = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(reload_loop(
        Arc::new(reloader),
        Arc::clone(&live),
        Arc::clone(&reloads),
    ));
    let (drain, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        live: Arc::clone(&live),
        builder: connection_builder(&settings.limits),
        limits: settings.limits,
        surface: Surface::Public {
            admin_split: settings.admin.is_some(),
        },
        permits: Arc::new(Semaphore::new(settings.limits.max_connections)),
        drain,
        at_cap_log: LogLimiter::new(LOG_INTERVAL),
    });
    let mut acceptor = Acceptor::new(listener);

    // Serving.
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Reload => reloads.notify_one(),
                Signal::Stop(name) => {
                    tracing::info!(
                        "{name}: draining (delay {} ms, timeout {} ms)",
                        settings.drain_delay.as_millis(),
                        settings.drain_timeout.as_millis()
                    );
                    break;
                }
            },
            (stream, peer) = acceptor.next() => accept(stream, peer, &shared),
        }
    }
    live.draining.store(true, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + settings.drain_timeout;

    // Draining, still accepting so load balancers see the health check fail first.
    let delay = tokio::time::sleep(settings.drain_delay);
    tokio::pin!(delay);
    loop {
        tokio::select! {
            () = &mut delay => break,
            signal = signals.next() => match signal {
                Signal::Reload => reloads.notify_one(),
                Signal::Stop(name) => {
                    tracing::warn!("{name} while draining: exiting now");
                    return Ok(());
                }
            },
            (stream, peer) = acceptor.next() => accept(stream, peer, &shared),
        }
    }

    // Draining, listener closed: wait for the connections in flight.
    drop(acceptor);
    let open = shared.drain.receiver_count();
    tracing::info!("listener closed; waiting for {open} open connection(s)");
    shared.drain.send_replace(true);
    let drain = shared.drain.clone();
    let drained = drain.closed();
    tokio::pin!(drained);
    loop {
        tokio::select! {
            () = &mut drained => {
                tracing::info!("drained: every connection has ended");
                return Ok(());
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    "drain timeout (`server.drain_timeout_ms` = {}) reached; exiting with \
                     connections still open",
                    settings.drain_timeout.as_millis()
                );
                return Ok(());
            }
            signal = signals.next() => match signal {
                Signal::Reload => tracing::info!("reload ignored: shutting down"),
                Signal::Stop(name) => {
                    tracing::warn!("{name} while draining: exiting now");
                    return Ok(());
                }
            },
        }
    }
}

/// Takes an accepted connection: refused (closed at once) at the connection cap, else served on
/// its own task.
fn accept(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
        if shared.surface != Surface::Admin {
            edge_metrics::CONNECTIONS_REFUSED_AT_CAP.increment();
        }
        if let Some(suppressed) = shared.at_cap_log.occurrence() {
            tracing::warn!(
                suppressed,
                "connection cap reached ({} open, `server.max_connections`): closing new \
                 connections ({suppressed} more closed since the last line)",
                shared.limits.max_connections
            );
        }
        drop(stream);
        return;
    };
    let accepted_at = Instant::now();
    let shared = Arc::clone(shared);
    // The TLS configuration a connection starts with is the one it keeps (never on the admin
    // listener, which is plain HTTP).
    let tls = match shared.surface {
        Surface::Public { .. } => shared.live.tls.load_full(),
        Surface::Admin => None,
    };
    // Subscribed before the task starts, so the drain counts this connection.
    let drain = shared.drain.subscribe();
    let public = shared.surface != Surface::Admin;
    if public {
        edge_metrics::CONNECTIONS_OPEN.increment();
    }
    tokio::spawn(async move {
        match tls {
            None => {
                serve_connection(TokioIo::new(stream), peer, accepted_at, &shared, drain).await;
            }
            Some(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(shared.limits.tls_handshake_timeout, handshake).await {
                    Ok(Ok(tls)) => {
                        serve_connection(TokioIo::new(tls), peer, accepted_at, &shared, drain)
                            .await;
                    }
                    Ok(Err(e)) => {
                        edge_metrics::TLS_HANDSHAKE_FAILURES.increment();
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                    }
                    Err(_) => {
                        edge_metrics::TLS_HANDSHAKE_FAILURES.increment();
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                }
            }
        }
        if public {
            edge_metrics::CONNECTIONS_OPEN.decrement();
        }
        drop(permit);
    });
}

/// What a connection's watchdog knows about its requests.
struct Activity {
    accepted_at: Instant,
    /// Requests whose head has arrived and whose response has not been sent (or dropped) yet.
    in_flight: AtomicUsize,
    /// Requests whose head has arrived, ever.
    requests: AtomicU64,
    /// When `in_flight` last dropped to zero, as milliseconds after `accepted_at`.
    idle_since_ms: AtomicU64,
}

/// Why a connection's watchdog closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No request head within `server.header_read_timeout_ms` (or `server.idle_timeout_ms`, if
    /// shorter) of the accept.
    NoRequestHead,
    /// No request in flight for `server.idle_timeout_ms`.
    Idle,
}

impl Activity {
    fn new(accepted_at: Instant) -> Self {
        Self {
            accepted_at,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Resolves when the connection has outlived a limit; never while a request is in flight.
    async fn expired(&self, limits: &ConnectionLimits) -> Expiry {
        loop {
            let now = Instant::now();
            if self.requests.load(Ordering::Relaxed) == 0 {
                let wait = limits.header_read_timeout.min(limits.idle_timeout);
                let deadline = self.accepted_at + wait;
                if now >= deadline {
                    return Expiry::NoRequestHead;
                }
                tokio::time::sleep_until(deadline.into()).await;
                continue;
            }
            if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(limits.idle_timeout).await;
                continue;
            }
            let idle_since = self.accepted_at
                + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
            let deadline = idle_since + limits.idle_timeout;
            if now >= deadline && self.in_flight.load(Ordering::Acquire) == 0 {
                return Expiry::Idle;
            }
            tokio::time::sleep_until(deadline.max(now + Duration::from_millis(1)).into()).await;
        }
    }
}

/// A request in flight; dropped when its response body has been sent or abandoned.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let since = u64::try_from(self.0.accepted_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(since, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is dropped. Size hint and end of
/// stream are passed through, so `Content-Length` framing is kept.
struct InFlightBody {
    inner: server::Body,
    _in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = server::BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2) until it ends, the drain closes it, or its
/// watchdog does (no request head in time, idle).
async fn serve_connection<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    accepted_at: Instant,
    shared: &Arc<Shared>,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(accepted_at));
    let service = {
        let shared = Arc::clone(shared);
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            let in_flight = activity.request_started();
            async move {
                // One `App` for the whole request: a reload never mixes configurations.
                let app = shared.live.app.load_full();
                let lifecycle = shared.live.lifecycle();
                let http1 = req.version() <= Version::HTTP_11;
                let mut response = match shared.surface {
                    Surface::Admin => server::admin_route(&app, lifecycle, &req),
                    Surface::Public { admin_split: true }
                        if server::is_admin_route(req.uri().path()) =>
                    {
                        server::admin_route_elsewhere(req.uri().path())
                    }
                    Surface::Public { .. } => server::handle(&app, lifecycle, peer, req).await,
                };
                if lifecycle == Lifecycle::Draining && http1 {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                // The request stays in flight until its body has been sent or dropped.
                let response = response.map(|body| {
                    InFlightBody {
                        inner: body,
                        _in_flight: in_flight,
                    }
                    .boxed()
                });
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = shared.builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            _ = drain.wait_for(|draining| *draining), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            expiry = activity.expired(&shared.limits), if !closing => match expiry {
                Expiry::NoRequestHead => {
                    edge_metrics::CONNECTIONS_HEADER_TIMEOUT.increment();
                    tracing::debug!(%peer, "no request head within `server.header_read_timeout_ms`: closing");
                    // Nothing is in flight: close at once, whatever the protocol's state.
                    return;
                }
                Expiry::Idle => {
                    edge_metrics::CONNECTIONS_IDLE_CLOSED.increment();
                    tracing::debug!(%peer, "idle for `server.idle_timeout_ms`: closing");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            },
        }
    }
}

/// A signal the server acts on.
enum Signal {
    /// `SIGHUP`.
    Reload,
    /// `SIGTERM` or `SIGINT`, by name.
    Stop(&'static str),
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| anyhow::anyhow!("cannot handle `{name}`: {e}"))
        };
        Ok(Self {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

/// Runs one reload at a time, off the async workers (compiling providers takes a while); signals
/// that arrive during a reload coalesce into one more.
async fn reload_loop(reloader: Arc<Reloader>, live: Arc<Live>, requests: Arc<tokio::sync::Notify>) {
    loop {
        requests.notified().await;
        let reloader = Arc::clone(&reloader);
        let live = Arc::clone(&live);
        if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload(&live)).await {
            tracing::error!("reload task failed: {e}");
        }
    }
}

/// `server.pid_file`, removed again when the server exits (if it still names this process).
struct PidFile {
    path: PathBuf,
    pid: String,
}

impl PidFile {
    fn write(path: &Path) -> anyhow::Result<Self> {
        let pid = std::process::id().to_string();
        std::fs::write(path, format!("{pid}\n")).map_err(|e| {
            anyhow::anyhow!("cannot write `{}` (`server.pid_file`): {e}", path.display())
        })?;
        Ok(Self {
            path: path.to_owned(),
            pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path).is_ok_and(|s| s.trim() == self.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
