//! The HTTP server: `/_ts/` routes, and the proxy to the publisher origin. Wiring only: what a
//! request means is decided by the core's page pipeline ([`PagePipeline`]), given a view of the
//! hyper request and the client address, this host's provider runtime as its `ProviderHost`, and
//! the wall clock; the server applies the edits it returns to the forwarded request and the
//! response.
//!
//! Provider calls are synchronous and bounded by the per-call deadline (5 ms by default, three
//! providers at most per request), so they run inline on the connection's task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_core::pipeline::{Clock, EditableHeaders, PagePipeline, RequestView};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::client_ip::{Cidr, client_ip};
use crate::problem::Problem;
use crate::runtime::ProviderRuntime;

/// Response bodies: streamed from the origin or generated here.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Where proxied requests go.
pub enum Origin {
    /// A built-in demo page, so a newcomer can try Gatehouse without a site.
    Demo,
    /// An HTTP origin.
    Http {
        /// `scheme://authority` of the origin.
        base: Uri,
        /// Forward the visitor's `Host` instead of the origin's authority.
        preserve_host: bool,
        /// Response-header timeout.
        timeout: Duration,
        /// The pooled client (boxed: it is large and `Demo` is empty).
        client: Box<Client<HttpConnector, Incoming>>,
    },
}

impl Origin {
    /// Parses `[origin] url`.
    ///
    /// # Errors
    /// When the URL is not `builtin:demo` or an `http://host[:port]` URL without a path.
    pub fn from_config(url: &str, preserve_host: bool, timeout: Duration) -> Result<Self, String> {
        if url == "builtin:demo" {
            return Ok(Self::Demo);
        }
        let base: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if base.scheme_str() != Some("http") || base.authority().is_none() {
            return Err(format!(
                "`{url}`: expected `http://host[:port]` (TLS to the origin is not supported yet) or `builtin:demo`"
            ));
        }
        if !matches!(base.path(), "" | "/") {
            return Err(format!("`{url}`: the origin URL must not have a path"));
        }
        let client = Box::new(Client::builder(TokioExecutor::new()).build_http());
        Ok(Self::Http {
            base,
            preserve_host,
            timeout,
            client,
        })
    }
}

/// Everything a request needs, built once at startup.
pub struct App {
    /// The page pipeline (policy, default jurisdiction, consent and Edge Cookie settings).
    pub pipeline: PagePipeline<'static>,
    /// The provider sandbox.
    pub runtime: ProviderRuntime,
    /// Trusted proxies.
    pub trusted_proxies: Vec<Cidr>,
    /// The origin.
    pub origin: Origin,
}

/// Serves until ctrl-c / SIGTERM.
///
/// # Errors
/// When the listen address cannot be bound.
pub async fn serve(app: Arc<App>, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on `{listen}` (`server.listen`): {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}");
    // A stable line on stdout for scripts and tests that start the server on port 0.
    println!("gatehouse listening on http://{local}");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let app = Arc::clone(&app);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let app = Arc::clone(&app);
                        async move { Ok::<_, std::convert::Infallible>(handle(&app, peer, req).await) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Routes one request.
pub async fn handle(app: &App, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path == "/_ts" || path.starts_with("/_ts/") {
        return own_route(app, &req);
    }
    proxy(app, peer, req).await
}

fn own_route(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let route = req.uri().path();
    let known = matches!(route, "/_ts/health" | "/_ts/metrics");
    if !known {
        return Problem::NotFound.response(Some(&format!("`{route}` is not a Gatehouse route")));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Problem::MethodNotAllowed.response(None);
    }
    match route {
        "/_ts/health" => {
            let doc = serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "providers": app.runtime.providers(),
            });
            text_response(StatusCode::OK, "application/json", doc.to_string())
        }
        _ => text_response(StatusCode::OK, "text/plain; version=0.0.4", metrics(app)),
    }
}

fn metrics(app: &App) -> String {
    let mut out = String::from(
        "# HELP gatehouse_provider_failures_total Provider calls cut off or failed, by reason.\n\
         # TYPE gatehouse_provider_failures_total counter\n",
    );
    for ((kind, provider, reason), count) in app.runtime.failure_counts() {
        out.push_str(&format!(
            "gatehouse_provider_failures_total{{kind=\"{kind}\",provider=\"{provider}\",reason=\"{reason}\"}} {count}\n"
        ));
    }
    out
}

fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The core's view of a hyper request head plus the trusted client address.
struct HyperRequestView<'a> {
    head: &'a http::request::Parts,
    client_ip: std::net::IpAddr,
}

impl RequestView for HyperRequestView<'_> {
    fn method(&self) -> &str {
        self.head.method.as_str()
    }

    fn path(&self) -> &str {
        self.head.uri.path()
    }

    fn query(&self) -> Option<&str> {
        self.head.uri.query()
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        // UTF-8, not `to_str` (which refuses valid non-ASCII such as `é`); others are skipped.
        self.head
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
            .collect()
    }

    fn client_ip(&self) -> Option<std::net::IpAddr> {
        Some(self.client_ip)
    }
}

/// Header maps as the pipeline edits them.
struct HyperHeaders<'a>(&'a mut http::HeaderMap);

impl EditableHeaders for HyperHeaders<'_> {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    }

    fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    fn append(&mut self, name: &str, value: &[u8]) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.0.append(name, value);
        }
    }
}

/// The wall clock, for consent expiry.
struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_seconds(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

async fn proxy(app: &App, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let (mut head, body) = req.into_parts();
    let client = client_ip(peer.ip(), &head.headers, &app.trusted_proxies);
    let outcome = {
        let view = HyperRequestView {
            head: &head,
            client_ip: client,
        };
        let mut providers = app.runtime.for_request();
        app.pipeline.run(&view, &SystemClock, &mut providers)
    };
    if let Some(decision) = &outcome.decision {
        for (kind, failure) in &decision.failures {
            app.runtime.record_failure(*kind, failure);
        }
        for dropped in &decision.dropped_headers {
            tracing::warn!(
                header = dropped.name.as_deref().unwrap_or("(not a token)"),
                reason = ?dropped.reason,
                "provider response header dropped"
            );
        }
        tracing::debug!("decided: {decision}");
    }
    app.pipeline
        .edit_forwarded_request(&outcome.forward, &mut HyperHeaders(&mut head.headers));
    let mut response = match &app.origin {
        Origin::Demo => demo_page(&head),
        Origin::Http {
            base,
            preserve_host,
            timeout,
            client,
        } => {
            let upstream = match upstream_request(base, *preserve_host, peer, head, body) {
                Ok(r) => r,
                Err(detail) => return Problem::OriginUnavailable.response(Some(&detail)),
            };
            match tokio::time::timeout(*timeout, client.request(upstream)).await {
                Err(_) => return Problem::OriginTimeout.response(None),
                Ok(Err(e)) => {
                    tracing::warn!("origin request failed: {e}");
                    return Problem::OriginUnavailable.response(None);
                }
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Response::from_parts(parts, body.boxed())
                }
            }
        }
    };
    app.pipeline
        .edit_response(&outcome.response, &mut HyperHeaders(response.headers_mut()));
    response
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        headers.remove(name);
    }
}

fn upstream_request(
    base: &Uri,
    preserve_host: bool,
    peer: SocketAddr,
    mut head: http::request::Parts,
    body: Incoming,
) -> Result<Request<Incoming>, String> {
    let path_and_query = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme(base.scheme_str().unwrap_or("http"))
        .authority(base.authority().map_or("", |a| a.as_str()))
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| format!("cannot build the origin URL: {e}"))?;
    strip_hop_by_hop(&mut head.headers);
    if !preserve_host
        && let Some(authority) = base.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        head.headers.insert(header::HOST, host);
    }
    let forwarded_for = match head
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        head.headers.insert("x-forwarded-for", value);
    }
    head.uri = uri;
    Ok(Request::from_parts(head, body))
}

fn demo_page(head: &http::request::Parts) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Gatehouse demo origin</title></head>\
         <body><h1>Gatehouse demo origin</h1><p>You asked for <code>{}</code>. Gatehouse decided what \
         it may do with your data before this page was served; look at the response's \
         <code>Set-Cookie</code> header.</p></body></html>\n",
        html_escape(head.uri.path())
    );
    text_response(StatusCode::OK, "text/html; charset=utf-8", html)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
