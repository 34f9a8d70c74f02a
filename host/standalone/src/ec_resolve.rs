//! Client-side Edge Cookie providers: the page script (`GET /_ts/ec.js`) and the endpoint it
//! posts the browser-computed value to (`POST /_ts/api/v1/ec/resolve`). Wiring only.
//!
//! A client-side provider defers on page requests (`generate(current: none)` answers
//! `id: none`). Its page script computes a value in the browser and posts `{"value": "..."}`
//! here; the core decides the request exactly as a page load
//! ([`gatehouse_core::pipeline::PagePipeline::run_resolve`]: consent with the stored-consent
//! fallback and withdrawal, geo, permissions, device, the bot gate, the store lifecycle) and calls
//! the provider with `current = some(value)`; the provider answers the value to accept it. An
//! accepted value is stored add-only like a minted one and set with the minted cookie's
//! attributes. No WIT change: the 0.2.0 contract already carries `current`.
//!
//! Both routes exist only while a client-side provider is selected: a bundled one (`client-side`,
//! or the test-only `client-fixed`), whose script is compiled in next to its component, or an
//! external one for which `ec.client_script` names the script file. Otherwise both answer 404.
//!
//! Answers of the endpoint (documented in `docs/identity.md`): 200 `{"edge_cookie": OUTCOME}`
//! where OUTCOME is `set` (the response sets the cookie), `kept` (the browser already holds a
//! valid one; the posted value is ignored), `not-permitted`, `bot`, `withdrawn` (the response
//! expires the cookie) or `failed` (the provider failed; nothing set); 422 `ec-value-rejected`
//! when the provider refused the posted value (and any cookie the browser holds); 503 `store-unavailable` when the identity could not be stored (nothing set); 400, 405,
//! 413, 415 for requests that are not a JSON `POST` of at most [`MAX_BODY_BYTES`].
//!
//! It must never log the posted value or a cookie.

use crate::body::CappedBodyError;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gatehouse_core::pipeline::{EdgeCookieDecision, is_cookie_value};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::config::{ComponentSource, ConfigError, SelectedProvider};
use crate::identity::IdentityService;
use crate::problem::Problem;
use crate::server::{App, Body, HyperHeaders, HyperRequestView, SystemClock};

/// The endpoint the page script posts to.
pub const ROUTE: &str = "/_ts/api/v1/ec/resolve";
/// The page script.
pub const SCRIPT_ROUTE: &str = "/_ts/ec.js";
/// The largest request body accepted (64 KiB); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The page scripts of the bundled client-side providers, shipped next to their components.
const BUNDLED_SCRIPTS: &[(&str, &str)] = &[
    (
        "client-side",
        include_str!("../../../providers/client-side/ec.js"),
    ),
    (
        "client-fixed",
        include_str!("../../../providers/client-fixed/ec.js"),
    ),
];

/// The page script of the selected client-side provider.
#[derive(Clone, Debug)]
pub struct ClientScript {
    source: Arc<str>,
}

impl ClientScript {
    /// The script's text.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The page script for the selected Edge Cookie provider: `ec.client_script` when set (read
/// now), else the script shipped with a bundled client-side provider, else `None` (the provider
/// computes its value on the server, and the client-side routes answer 404).
///
/// # Errors
/// [`ConfigError::Invalid`] naming `ec.client_script`: set without an Edge Cookie provider, set
/// for a bundled provider that computes its value on the server, or the file cannot be read or
/// is not UTF-8.
pub fn client_script(
    script_path: Option<&Path>,
    ec: Option<&SelectedProvider>,
) -> Result<Option<ClientScript>, ConfigError> {
    let bundled = |name: &str| {
        BUNDLED_SCRIPTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    };
    let Some(path) = script_path else {
        return Ok(ec.and_then(|p| match &p.source {
            ComponentSource::Bundled(name) => bundled(name).map(|s| ClientScript {
                source: Arc::from(s),
            }),
            ComponentSource::External { .. } => None,
        }));
    };
    let Some(provider) = ec else {
        return Err(ConfigError::invalid(
            "ec.client_script",
            "applies only with a client-side `ec.provider`",
        ));
    };
    if let ComponentSource::Bundled(name) = provider.source
        && bundled(name).is_none()
    {
        return Err(ConfigError::invalid(
            "ec.client_script",
            format!(
                "applies only to a client-side provider; `{name}` computes its value on the server"
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::invalid(
            "ec.client_script",
            format!("cannot read `{}`: {e}", path.display()),
        )
    })?;
    Ok(Some(ClientScript {
        source: Arc::from(text),
    }))
}

/// Answers `GET /_ts/ec.js`.
pub fn script(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let Some(script) = &app.client_script else {
        return not_client_side(SCRIPT_ROUTE);
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = Problem::MethodNotAllowed.response(None);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = Response::new(full(script.source().to_owned()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Short: a configuration change (another provider) reaches browsers within minutes.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    /// The browser-computed Edge Cookie value.
    value: String,
}

impl ResolveRequest {
    /// A JSON object `{"value": "..."}` and nothing else (serde would also take `["..."]`).
    fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)?;
        serde::Deserialize::deserialize(serde_json::Value::Object(object))
    }
}

/// Answers `POST /_ts/api/v1/ec/resolve`. `req`'s CDN fact headers have already been removed
/// when its peer is not a trusted proxy.
pub async fn handle(app: &Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if app.client_script.is_none() {
        return not_client_side(ROUTE);
    }
    if req.method() != Method::POST {
        let mut response = Problem::MethodNotAllowed
            .response(Some("`/_ts/api/v1/ec/resolve` accepts `POST` only"));
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if !crate::body::is_json(req.headers()) {
        return Problem::UnsupportedMediaType.response(Some(
            "send `{\"value\": ...}` as `Content-Type: application/json`",
        ));
    }
    let too_large = || {
        Problem::PayloadTooLarge.response(Some(&format!(
            "the request body is at most {MAX_BODY_BYTES} bytes"
        )))
    };
    let (head, body) = req.into_parts();
    let bytes = match crate::body::read_capped(&head.headers, body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(CappedBodyError::TooLarge) => return too_large(),
        Err(CappedBodyError::Unreadable(e)) => {
            tracing::debug!("ec resolve body could not be read: {e}");
            return Problem::BadRequest.response(Some("the request body could not be read"));
        }
    };
    let value = match ResolveRequest::parse(&bytes) {
        Ok(request) => request.value,
        // serde's message may quote the value: it goes back to the browser, never to the log.
        Err(e) => return Problem::InvalidEcResolveRequest.response(Some(&e.to_string())),
    };
    if !is_cookie_value(&value) {
        return Problem::EcValueRejected.response(Some(
            "the value is not an edge cookie value (1 to 256 cookie-octets)",
        ));
    }
    let chain = app.client_ip.resolve(peer.ip(), &head.headers);
    let view = HyperRequestView {
        head: &head,
        client_ip: chain.client,
        fingerprints: &app.fingerprint_headers,
    };
    let decide = async {
        let mut providers = app.runtime.for_request();
        let identity = app.identity.as_ref().map(IdentityService::lifecycle);
        app.pipeline
            .run_resolve(&view, &SystemClock, &mut providers, identity, &value)
            .await
    };
    // Store calls are awaited; provider calls move off the async workers as on the page path.
    let outcome = if app.runtime.has_providers() && !app.runtime.runs_inline() {
        let handle = tokio::runtime::Handle::current();
        app.runtime.run_blocking(|| handle.block_on(decide)).await
    } else {
        decide.await
    };
    let Some(decision) = &outcome.decision else {
        // `run_resolve` always decides.
        return Problem::BadRequest.response(Some("the request could not be decided"));
    };
    for (kind, failure) in &decision.failures {
        app.runtime.record_failure(*kind, failure);
    }
    // Counted as on the page path (`gatehouse_provider_headers_dropped_total`); the page path
    // also logs their names, once a second.
    for _ in &decision.dropped_headers {
        crate::edge_metrics::PROVIDER_HEADERS_DROPPED.increment();
    }
    if let Some(identity) = &app.identity {
        crate::identity::log_outcome(identity, &decision.identity);
    }
    tracing::debug!("ec resolve decided: {decision}");
    let mut response = match &decision.edge_cookie {
        EdgeCookieDecision::Set(_) => answer("set"),
        EdgeCookieDecision::Keep(_) => answer("kept"),
        EdgeCookieDecision::NotPermitted => answer("not-permitted"),
        EdgeCookieDecision::Bot => answer("bot"),
        EdgeCookieDecision::Withdrawn => answer("withdrawn"),
        EdgeCookieDecision::Failed => answer("failed"),
        EdgeCookieDecision::NoneFromProvider => Problem::EcValueRejected.response(Some(
            "the edge cookie provider refused the value; nothing was set",
        )),
        EdgeCookieDecision::StoreUnavailable => Problem::StoreUnavailable.response(Some(
            "the identity could not be stored; nothing was set, retry later",
        )),
        EdgeCookieDecision::NotConfigured => not_client_side(ROUTE),
        // `EdgeCookieDecision` is `non_exhaustive`: an outcome this build does not know sets
        // nothing it could not explain.
        _ => answer("failed"),
    };
    // Per visitor: never cached. Then the same response edits as a page: the cookie (or its
    // expiry), provider headers, and `private` when either is set.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    app.pipeline
        .edit_response(&outcome.response, &mut HyperHeaders(response.headers_mut()));
    response
}

fn not_client_side(route: &str) -> Response<Body> {
    Problem::NotFound.response(Some(&format!(
        "`{route}` is served only while a client-side edge cookie provider is selected \
         (`ec.provider = \"client-side\"`, or an external one with `ec.client_script`)"
    )))
}

fn answer(outcome: &'static str) -> Response<Body> {
    let body = serde_json::json!({ "edge_cookie": outcome }).to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}
