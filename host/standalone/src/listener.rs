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
//! Per-connection limits (header-read and idle timeouts, connection caps: issue 8) belong in
//! [`connection_builder`] and [`serve_connection`], which both protocols share.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{HeaderValue, Request, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{Config, ConfigError, ServerTlsConfig};
use crate::reload::Reloader;
use crate::server::{self, App, Lifecycle};

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
fn connection_builder() -> auto::Builder<TokioExecutor> {
    auto::Builder::new(TokioExecutor::new())
}

/// Binds `settings.listen` and serves from `live` until a shutdown signal, then drains.
///
/// # Errors
/// When the listen address cannot be bound or a signal handler cannot be installed.
pub async fn serve(live: Arc<Live>, settings: Settings, reloader: Reloader) -> anyhow::Result<()> {
    // Before the address is announced: a signal sent as soon as the server listens must be
    // handled, not take the default action (which for `SIGHUP` is to terminate).
    let mut signals = Signals::install()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on `{}` (`server.listen`): {e}",
                settings.listen
            )
        })?;
    let local = listener.local_addr()?;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!("listening on {scheme}://{local} (HTTP/1.1 and HTTP/2)");
    // A stable line on stdout for scripts and tests that start the server on port 0.
    println!("gatehouse listening on {scheme}://{local}");
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
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(connection_builder());

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
            accepted = listener.accept() => accept(accepted, &live, &graceful, &builder),
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
            accepted = listener.accept() => accept(accepted, &live, &graceful, &builder),
        }
    }

    // Draining, listener closed: wait for the connections in flight.
    drop(listener);
    let open = graceful.count();
    tracing::info!("listener closed; waiting for {open} open connection(s)");
    let drained = graceful.shutdown();
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

fn accept(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    live: &Arc<Live>,
    graceful: &GracefulShutdown,
    builder: &Arc<auto::Builder<TokioExecutor>>,
) {
    let (stream, peer) = match accepted {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!("accept failed: {e}");
            return;
        }
    };
    let live = Arc::clone(live);
    let watcher = graceful.watcher();
    let builder = Arc::clone(builder);
    // The TLS configuration a connection starts with is the one it keeps.
    let tls = live.tls.load_full();
    tokio::spawn(async move {
        match tls {
            None => serve_connection(TokioIo::new(stream), peer, live, watcher, &builder).await,
            Some(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        serve_connection(TokioIo::new(tls), peer, live, watcher, &builder).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    });
}

/// Serves one connection (HTTP/1.1 or HTTP/2) until it ends or the drain closes it.
async fn serve_connection<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    live: Arc<Live>,
    watcher: Watcher,
    builder: &auto::Builder<TokioExecutor>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let live = Arc::clone(&live);
        async move {
            // One `App` for the whole request: a reload never mixes configurations.
            let app = live.app.load_full();
            let lifecycle = live.lifecycle();
            let http1 = req.version() <= Version::HTTP_11;
            let mut response = server::handle(&app, lifecycle, peer, req).await;
            if lifecycle == Lifecycle::Draining && http1 {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    if let Err(e) = watcher
        .watch(builder.serve_connection(io, service).into_owned())
        .await
    {
        tracing::debug!(%peer, "connection ended: {e}");
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
