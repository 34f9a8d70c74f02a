//! The publisher origin: where proxied requests go, the pooled client that reaches it (HTTP, or
//! HTTPS with rustls), and how a failure to reach it is reported.
//!
//! TLS to the origin always verifies the certificate chain and the host name (SNI is the URL's
//! host); there is deliberately no switch to turn verification off. Trust comes from the operating
//! system's store, or from `origin.ca_file` alone when set (a private CA). ALPN offers `h2` and
//! `http/1.1`, so an origin that speaks HTTP/2 gets it. Plain `http://` origins use HTTP/1.1.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{CertificateError, RootCertStore};

use crate::config::{ConfigError, OriginConfig};
use crate::problem::Problem;
use crate::server::Body;

/// The pooled client to the origin: HTTP/1.1, or TLS with HTTP/2 or HTTP/1.1 by ALPN.
pub type OriginClient = Client<HttpsConnector<HttpConnector>, crate::body::ClientBody>;

/// Where proxied requests go.
pub enum Origin {
    /// A built-in demo page, so a newcomer can try Gatehouse without a site.
    Demo,
    /// An HTTP or HTTPS origin.
    Http {
        /// `scheme://authority` of the origin.
        base: Uri,
        /// Forward the visitor's `Host` instead of the origin's authority.
        preserve_host: bool,
        /// Response-header timeout.
        timeout: Duration,
        /// `origin.body_idle_timeout_ms`: the longest gap in the response body.
        body_idle_timeout: Duration,
        /// The pooled client (boxed: it is large and `Demo` is empty).
        client: Box<OriginClient>,
    },
}

impl Origin {
    /// Parses `[origin] url` and, for `https://`, builds the verifying TLS client.
    ///
    /// # Errors
    /// When the URL is not `builtin:demo` or an `http(s)://host[:port]` URL without a path, when
    /// `ca_file` cannot be read or holds no certificate, or when an `https://` origin has no
    /// `ca_file` and the system trust store holds no usable certificate.
    pub fn from_config(config: &OriginConfig) -> Result<Self, ConfigError> {
        let url = config.url.as_str();
        let ca_file = config.ca_file.as_deref();
        if url == "builtin:demo" {
            if ca_file.is_some() {
                return Err(ConfigError::invalid(
                    "origin.ca_file",
                    "is only meaningful with an `https://` origin",
                ));
            }
            return Ok(Self::Demo);
        }
        let invalid = |reason: String| ConfigError::invalid("origin.url", reason);
        let base: Uri = url
            .parse()
            .map_err(|e| invalid(format!("`{url}` is not a URL: {e}")))?;
        let https = match base.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(invalid(format!(
                    "`{url}`: expected `http://host[:port]`, `https://host[:port]` or `builtin:demo`"
                )));
            }
        };
        if base.authority().is_none() {
            return Err(invalid(format!("`{url}`: the origin URL needs a host")));
        }
        if !matches!(base.path(), "" | "/") || base.query().is_some() {
            return Err(invalid(format!(
                "`{url}`: the origin URL must not have a path or query"
            )));
        }
        if !https && ca_file.is_some() {
            return Err(ConfigError::invalid(
                "origin.ca_file",
                "is only meaningful with an `https://` origin",
            ));
        }
        let roots = if https {
            trust_roots(ca_file)?
        } else {
            // Never used: an `http://` origin is never connected with TLS.
            RootCertStore::empty()
        };
        // A bounded pool, reaped by a timer: idle connections beyond `pool_max_idle`, or idle for
        // `pool_idle_timeout_ms`, are closed. The connect timeout bounds the TCP connect (per
        // resolved address); the TLS handshake that follows is bounded by the response-header
        // timeout, which covers the whole request.
        let client = Box::new(
            pooled_client(
                roots,
                &PoolSettings {
                    connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                    idle_timeout: Duration::from_millis(config.pool_idle_timeout_ms),
                    max_idle_per_host: config.pool_max_idle,
                    nodelay: false,
                },
            )
            .map_err(|e| invalid(format!("cannot configure TLS: {e}")))?,
        );
        Ok(Self::Http {
            base,
            preserve_host: config.preserve_host,
            timeout: Duration::from_millis(config.timeout_ms),
            body_idle_timeout: Duration::from_millis(config.body_idle_timeout_ms),
            client,
        })
    }
}

/// The connection pool of an outbound client ([`pooled_client`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSettings {
    /// Bounds each TCP connect (per resolved address).
    pub connect_timeout: Duration,
    /// An idle connection is closed after this long.
    pub idle_timeout: Duration,
    /// Idle connections kept per host; more are closed.
    pub max_idle_per_host: usize,
    /// `TCP_NODELAY` on new connections.
    pub nodelay: bool,
}

/// The one way Gatehouse builds an outbound HTTP client (the origin, auction bidders):
/// hyper-util's pooled client over rustls (ring, safe protocol versions, no client auth),
/// HTTP/1.1 and HTTP/2, TLS decided by each URL's scheme, and a bounded pool reaped by a timer.
///
/// # Errors
/// When rustls cannot be configured.
pub(crate) fn pooled_client<B>(
    roots: RootCertStore,
    pool: &PoolSettings,
) -> Result<Client<HttpsConnector<HttpConnector>, B>, rustls::Error>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    // The URL scheme decides TLS, not the connector.
    http.enforce_http(false);
    http.set_nodelay(pool.nodelay);
    http.set_connect_timeout(Some(pool.connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool.idle_timeout)
        .pool_max_idle_per_host(pool.max_idle_per_host)
        .build(connector))
}

/// The system trust store's certificates (errors reading it are logged as warnings); empty when
/// it has none.
pub(crate) fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("system trust store: {e}");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// The certificates an `https://` origin is verified against.
fn trust_roots(ca_file: Option<&Path>) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let invalid = |reason: String| ConfigError::invalid("origin.ca_file", reason);
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("`{}`: invalid PEM: {e}", path.display())))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    invalid(format!(
                        "`{}`: not a usable CA certificate: {e}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(invalid(format!(
                    "`{}` holds no PEM certificate",
                    path.display()
                )));
            }
        }
        None => {
            roots = system_roots();
            if roots.is_empty() {
                return Err(ConfigError::invalid(
                    "origin.url",
                    "an `https://` origin needs trusted roots, and the system trust store holds \
                     none: install the system CA certificates (Debian: `ca-certificates`) or set \
                     `origin.ca_file`",
                ));
            }
        }
    }
    Ok(roots)
}

/// The 502/504 answer for a failed origin request, logged with its cause.
pub fn failure_response(base: &Uri, error: &hyper_util::client::legacy::Error) -> Response<Body> {
    let authority = base.authority().map_or("", |a| a.as_str());
    if let Some(tls) = find_tls_error(error) {
        let detail = describe_tls_error(tls, base.host().unwrap_or(authority));
        tracing::warn!(origin = %authority, "origin TLS failed: {detail}");
        return Problem::OriginTls.response(Some(&detail));
    }
    tracing::warn!(origin = %authority, "origin request failed: {}", error_chain(error));
    Problem::OriginUnavailable.response(None)
}

/// The rustls error somewhere in `error`'s source chain. `io::Error::source` skips the error it
/// wraps, so wrapped I/O errors are looked into explicitly.
fn find_tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| find_tls_error(inner))
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// A sentence naming the TLS failure, for the problem's `detail` and the log.
fn describe_tls_error(error: &rustls::Error, host: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "certificate name mismatch: the origin's certificate is not valid for `{host}`"
                )
            }
            CertificateError::UnknownIssuer => format!(
                "certificate unknown: the certificate of `{host}` is not signed by a trusted \
                 certificate authority (system roots or `origin.ca_file`)"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate expired: the certificate of `{host}` has expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("certificate not yet valid: the certificate of `{host}` is not valid yet")
            }
            CertificateError::Revoked => {
                format!("certificate revoked: the certificate of `{host}` is revoked")
            }
            other => format!("invalid certificate from `{host}`: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the origin `{host}` ended the TLS handshake with alert `{alert:?}`")
        }
        other => format!("TLS with `{host}` failed: {other}"),
    }
}

fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        out.push_str(": ");
        out.push_str(&e.to_string());
        current = e.source();
    }
    out
}
