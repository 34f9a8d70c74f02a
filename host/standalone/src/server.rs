//! The HTTP server: `/_ts/` routes, and the proxy to the publisher origin. Wiring only: what a
//! request means is decided by the core's page pipeline ([`PagePipeline`]), given a view of the
//! hyper request and the client address, this host's provider runtime as its `ProviderHost`, and
//! the wall clock; the server applies the edits it returns to the forwarded request and the
//! response.
//!
//! Provider calls are synchronous and bounded by a per-call CPU budget, but a slow provider must
//! not stall unrelated connections: a page request's pipeline runs through
//! [`ProviderRuntime::run_blocking`], off the async workers, when its providers' CPU budgets add
//! up to more than `runtime.inline_budget_ms` ([`ProviderRuntime::runs_inline`]); otherwise, and
//! for requests that call no provider, it runs inline. Identity-store calls are awaited either
//! way (`identity::run_pipeline`): a request waiting for a durable write holds no thread.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gatehouse_component_common::http::{HOP_BY_HOP, is_own_route};
use gatehouse_core::pipeline::{Clock, EditableHeaders, PagePipeline, RequestOutcome, RequestView};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::body::{BodyFault, ClientBody};
use crate::client_ip::{ClientChain, ClientIpPolicy};
pub use crate::origin::Origin;
use crate::problem::Problem;
use crate::runtime::ProviderRuntime;

/// Dropped provider headers are logged at most once a second (each is counted in
/// `gatehouse_provider_headers_dropped_total`).
static DROPPED_HEADER_LOG: crate::log_limit::LogLimiter =
    crate::log_limit::LogLimiter::new(std::time::Duration::from_secs(1));

/// Response bodies: streamed from the origin or generated here.
pub type Body = BoxBody<Bytes, BodyError>;

/// Why a response body failed mid-stream (the origin failed or stalled).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Everything a request needs, built at startup and again by every reload
/// ([`crate::app::build`]); a request holds one `App` from start to end.
pub struct App {
    /// The page pipeline (policy, default jurisdiction, consent and Edge Cookie settings).
    pub pipeline: PagePipeline<'static>,
    /// The provider sandbox.
    pub runtime: ProviderRuntime,
    /// Whom to believe about the client address.
    pub client_ip: ClientIpPolicy,
    /// Headers carrying CDN facts, removed from requests of untrusted peers.
    pub cdn_headers: Vec<http::HeaderName>,
    /// The largest request body forwarded to the origin.
    pub max_body_bytes: u64,
    /// The origin.
    pub origin: Origin,
    /// `[auction]`: `POST /_ts/api/v1/auction`, when configured.
    pub auction: Option<crate::auction::AuctionService>,
    /// The identity store (`[store]`), when an Edge Cookie provider is configured and the store
    /// is enabled. Call it through [`crate::identity::IdentityService::call`].
    pub identity: Option<crate::identity::IdentityService>,
    /// `server.fingerprint_headers`: the trusted headers holding JA4 and the HTTP/2 fingerprint.
    pub fingerprint_headers: (Option<http::HeaderName>, Option<http::HeaderName>),
    /// `POST /_ts/api/v1/batch-sync`: partners and the identity store.
    pub batch_sync: crate::batch_sync::BatchSync,
    /// The page script of the selected client-side Edge Cookie provider (`GET /_ts/ec.js`);
    /// `None` when the provider computes its value on the server, and then
    /// `/_ts/ec.js` and `POST /_ts/api/v1/ec/resolve` answer 404.
    pub client_script: Option<crate::ec_resolve::ClientScript>,
}

/// Whether the server is serving normally or draining for shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Serving.
    Serving,
    /// Shutting down: `/_ts/health` answers 503 `draining` so load balancers stop sending.
    Draining,
}

/// Routes one request.
pub async fn handle(
    app: &Arc<App>,
    lifecycle: Lifecycle,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<Body> {
    if let Some(problem) = refuse_malformed(&req) {
        return problem;
    }
    let path = req.uri().path();
    if path == crate::batch_sync::ROUTE {
        return app.batch_sync.handle(req).await;
    }
    if path == crate::ec_resolve::SCRIPT_ROUTE {
        return crate::ec_resolve::script(app, &req);
    }
    let auction = path == crate::auction::ROUTE;
    let ec_resolve = path == crate::ec_resolve::ROUTE;
    if !auction && !ec_resolve && is_own_route(path) {
        return own_route(app, lifecycle, &req);
    }
    if !app.client_ip.peer_is_trusted(peer.ip()) {
        let removed = crate::client_ip::strip_untrusted_facts(
            req.headers_mut(),
            &app.cdn_headers,
            &app.client_ip.header,
        );
        if removed > 0 {
            tracing::debug!(
                removed,
                "removed CDN fact headers sent by an untrusted peer"
            );
        }
    }
    if auction {
        return crate::auction::handle(app, peer, req).await;
    }
    if ec_resolve {
        return crate::ec_resolve::handle(app, peer, req).await;
    }
    proxy(app, peer, req).await
}

/// Requests a reverse proxy must refuse before doing anything else.
fn refuse_malformed(req: &Request<Incoming>) -> Option<Response<Body>> {
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return Some(Problem::MethodNotAllowed.response(Some(&format!(
            "`{}` is not forwarded by this reverse proxy",
            req.method()
        ))));
    }
    // RFC 9112 §3.2: a request with more than one Host header field must be answered 400.
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return Some(Problem::BadRequest.response(Some("more than one `Host` header")));
    }
    None
}

/// Whether `path` is an operator route (`/_ts/health`, `/_ts/metrics`), which `[admin] listen`
/// moves to the admin listener.
#[must_use]
pub fn is_admin_route(path: &str) -> bool {
    matches!(path, "/_ts/health" | "/_ts/metrics")
}

/// What the admin listener answers: the operator routes, and 404 for everything else.
pub fn admin_route(app: &App, lifecycle: Lifecycle, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if !is_admin_route(path) {
        return Problem::NotFound.response(Some(&format!(
            "`{path}` is not served on the admin listener"
        )));
    }
    own_route(app, lifecycle, req)
}

/// What the public listener answers for an operator route when `[admin] listen` is set: 404, as
/// for any route that does not exist here.
#[must_use]
pub fn admin_route_elsewhere(path: &str) -> Response<Body> {
    Problem::NotFound.response(Some(&format!("`{path}` is not a Gatehouse route")))
}

fn own_route(app: &App, lifecycle: Lifecycle, req: &Request<Incoming>) -> Response<Body> {
    let route = req.uri().path();
    let known = matches!(route, "/_ts/health" | "/_ts/metrics" | "/_ts/openapi.json");
    if !known {
        return Problem::NotFound.response(Some(&format!("`{route}` is not a Gatehouse route")));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = Problem::MethodNotAllowed.response(None);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match route {
        "/_ts/health" => {
            // Load balancers act on the status code: 503 takes this instance out of rotation.
            let (status, word) = match lifecycle {
                Lifecycle::Serving => (StatusCode::OK, "ok"),
                Lifecycle::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
            };
            let doc = serde_json::json!({
                "status": word,
                "version": env!("CARGO_PKG_VERSION"),
                "providers": app.runtime.providers(),
            });
            text_response(status, "application/json", doc.to_string())
        }
        "/_ts/openapi.json" => text_response(StatusCode::OK, "application/json", OPENAPI.into()),
        _ => text_response(StatusCode::OK, "text/plain; version=0.0.4", metrics(app)),
    }
}

/// The OpenAPI 3.1 document of every `/_ts/` route (`docs/openapi.json`), served at
/// `GET /_ts/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

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
    out.push_str(
        "# HELP gatehouse_provider_answer_cache_total Calls of pure providers, answered from the cache (hit) or by the provider (miss).\n\
         # TYPE gatehouse_provider_answer_cache_total counter\n",
    );
    for (kind, provider, counts) in app.runtime.answer_cache_counts() {
        for (result, count) in [("hit", counts.hits), ("miss", counts.misses)] {
            out.push_str(&format!(
                "gatehouse_provider_answer_cache_total{{kind=\"{kind}\",provider=\"{provider}\",result=\"{result}\"}} {count}\n"
            ));
        }
    }
    if let Some(auction) = &app.auction {
        out.push_str(&auction.metrics_text());
    }
    crate::edge_metrics::render(&mut out);
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
pub(crate) struct HyperRequestView<'a> {
    pub(crate) head: &'a http::request::Parts,
    pub(crate) client_ip: std::net::IpAddr,
    /// `server.fingerprint_headers` (the values of untrusted peers were already removed).
    pub(crate) fingerprints: &'a (Option<http::HeaderName>, Option<http::HeaderName>),
}

impl HyperRequestView<'_> {
    fn header_text(&self, name: Option<&http::HeaderName>) -> Option<&str> {
        name.and_then(|n| self.head.headers.get(n))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
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

    fn ja4(&self) -> Option<&str> {
        self.header_text(self.fingerprints.0.as_ref())
    }

    fn http2_fingerprint(&self) -> Option<&str> {
        self.header_text(self.fingerprints.1.as_ref())
    }
}

/// Header maps as the pipeline edits them.
pub(crate) struct HyperHeaders<'a>(pub(crate) &'a mut http::HeaderMap);

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
        // The one name the pipeline adds to every page request is not a standard header, and
        // parsing it would allocate it anew each time.
        static DECISION: http::HeaderName =
            http::HeaderName::from_static(gatehouse_core::pipeline::DECISION_HEADER);
        let name = if name == gatehouse_core::pipeline::DECISION_HEADER {
            Ok(DECISION.clone())
        } else {
            http::HeaderName::from_bytes(name.as_bytes())
        };
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(value)) {
            self.0.append(name, value);
        }
    }
}

/// The wall clock, for consent expiry.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_seconds(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Runs the page pipeline for one request. With an identity store the pipeline awaits its
/// store calls (a write waiting for its durable commit holds no thread); provider calls run on
/// the polling thread, an async worker when their budgets allow ([`ProviderRuntime::runs_inline`]),
/// else the whole run moves off the workers ([`ProviderRuntime::run_blocking`]).
///
/// [`ProviderRuntime::runs_inline`]: crate::runtime::ProviderRuntime::runs_inline
/// [`ProviderRuntime::run_blocking`]: crate::runtime::ProviderRuntime::run_blocking
async fn decide(
    app: &Arc<App>,
    head: http::request::Parts,
    client_ip: std::net::IpAddr,
) -> Option<(http::request::Parts, RequestOutcome<'static>)> {
    let view = HyperRequestView {
        head: &head,
        client_ip,
        fingerprints: &app.fingerprint_headers,
    };
    // Provider calls whose budgets could hold a worker long never run on an async worker: a
    // slow provider must not stall unrelated connections. (The page test last: the pipeline
    // makes it again, and most configurations never need it here.)
    let offload = app.runtime.has_providers()
        && !app.runtime.runs_inline()
        && gatehouse_core::pipeline::is_page_request(&view);
    let outcome = match &app.identity {
        Some(identity) => {
            let run = async {
                let mut providers = app.runtime.for_request();
                crate::identity::run_pipeline(app, identity, &view, &mut providers).await
            };
            if offload {
                let handle = tokio::runtime::Handle::current();
                app.runtime.run_blocking(|| handle.block_on(run)).await
            } else {
                run.await
            }
        }
        None => {
            let run = || {
                let mut providers = app.runtime.for_request();
                app.pipeline.run(&view, &SystemClock, &mut providers)
            };
            if offload {
                app.runtime.run_blocking(run).await
            } else {
                run()
            }
        }
    };
    Some((head, outcome))
}

async fn proxy(app: &Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let (head, body) = req.into_parts();
    let chain = app.client_ip.resolve(peer.ip(), &head.headers);
    let Some((mut head, outcome)) = decide(app, head, chain.client).await else {
        return Problem::Unavailable.response(Some("the server is shutting down"));
    };
    if let Some(decision) = &outcome.decision {
        for (kind, failure) in &decision.failures {
            app.runtime.record_failure(*kind, failure);
        }
        for dropped in &decision.dropped_headers {
            crate::edge_metrics::PROVIDER_HEADERS_DROPPED.increment();
            // The name only (a token, or not shown), never the value; one line per second.
            if let Some(suppressed) = DROPPED_HEADER_LOG.occurrence() {
                tracing::warn!(
                    header = dropped.name.as_deref().unwrap_or("(not a token)"),
                    reason = dropped.reason.label(),
                    suppressed,
                    "provider response header dropped"
                );
            }
        }
        tracing::debug!("decided: {decision}");
    }
    app.pipeline
        .edit_forwarded_request(&outcome.forward, &mut HyperHeaders(&mut head.headers));
    let mut response = match &app.origin {
        Origin::Demo => demo_page(&head, app.client_script.is_some()),
        Origin::Http {
            base,
            preserve_host,
            timeout,
            body_idle_timeout,
            client,
        } => {
            if let Some(length) = head
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                && length > app.max_body_bytes
            {
                return too_large(app.max_body_bytes);
            }
            let (body, fault) = ClientBody::new(body, app.max_body_bytes);
            let upstream = match upstream_request(base, *preserve_host, &chain, head, body) {
                Ok(r) => r,
                Err(detail) => return Problem::OriginUnavailable.response(Some(&detail)),
            };
            match tokio::time::timeout(*timeout, client.request(upstream)).await {
                Err(_) => return Problem::OriginTimeout.response(None),
                Ok(Err(e)) => {
                    // A failure while sending the visitor's body is the visitor's error, not the
                    // origin's: answer it as such and do not count it against the origin.
                    match fault.lock().ok().and_then(|f| *f) {
                        Some(BodyFault::TooLarge) => return too_large(app.max_body_bytes),
                        Some(BodyFault::Malformed) => {
                            tracing::debug!("client request body malformed: {e}");
                            return Problem::BadRequest
                                .response(Some("the request body could not be read"));
                        }
                        None => {}
                    }
                    return crate::origin::failure_response(base, &e);
                }
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    let authority: std::sync::Arc<str> =
                        base.authority().map_or("", |a| a.as_str()).into();
                    let body = crate::body::OriginBody::new(body, *body_idle_timeout, authority)
                        .map_err(BodyError::from)
                        .boxed();
                    Response::from_parts(parts, body)
                }
            }
        }
    };
    app.pipeline
        .edit_response(&outcome.response, &mut HyperHeaders(response.headers_mut()));
    response
}

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

fn too_large(limit: u64) -> Response<Body> {
    Problem::PayloadTooLarge.response(Some(&format!(
        "the request body is over {limit} bytes (`server.max_body_bytes`)"
    )))
}

fn upstream_request(
    base: &Uri,
    preserve_host: bool,
    chain: &ClientChain,
    mut head: http::request::Parts,
    body: ClientBody,
) -> Result<Request<ClientBody>, String> {
    let path_and_query = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme(base.scheme_str().unwrap_or("http"))
        .authority(base.authority().map_or("", |a| a.as_str()))
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| format!("cannot build the origin URL: {e}"))?;
    strip_hop_by_hop(&mut head.headers);
    // An HTTP/2 request carries its host in `:authority`, not `Host`.
    if preserve_host
        && !head.headers.contains_key(header::HOST)
        && let Some(host) = head
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        head.headers.insert(header::HOST, host);
    }
    // HTTP/2 may split `Cookie` into several fields; HTTP/1.1 needs one (RFC 9113 §8.2.3).
    if head.headers.get_all(header::COOKIE).iter().count() > 1 {
        let joined = head
            .headers
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b"; "[..]);
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            head.headers.insert(header::COOKIE, value);
        }
    }
    // `Via` names the protocol the visitor used; the origin's is negotiated by ALPN.
    let protocol = match head.version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    head.version = http::Version::HTTP_11;
    if !preserve_host
        && let Some(authority) = base.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        head.headers.insert(header::HOST, host);
    }
    crate::client_ip::rewrite_forwarding_headers(&mut head.headers, chain, protocol);
    head.uri = uri;
    Ok(Request::from_parts(head, body))
}

/// The built-in demo page. With a client-side Edge Cookie provider it loads the page script, as
/// a publisher's pages would.
fn demo_page(head: &http::request::Parts, client_script: bool) -> Response<Body> {
    let script = if client_script {
        "<script src=\"/_ts/ec.js\" async></script>"
    } else {
        ""
    };
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Gatehouse demo origin</title>{script}</head>\
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
