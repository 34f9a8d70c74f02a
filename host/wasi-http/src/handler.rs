//! The `wasi:http/incoming-handler` export: Gatehouse's own `/_ts/` routes, the page pipeline
//! (with the identity store in the deployment's `wasi:keyvalue` bucket, when it has one) and the
//! proxy to the origin. Wiring only; every decision is the core's.

use std::io::Write as _;

use gatehouse_component_common::http::{
    HeaderList as Headers, PROBLEM_CONTENT_TYPE, Problem, client_ip_behind, demo_response,
    is_own_route, log_provider_failures,
};
use gatehouse_component_common::providers::SettingsStore;
use gatehouse_component_common::store::keyvalue::KeyValueStore;
use gatehouse_component_common::store::run_page;
use gatehouse_component_common::{Deployment, OriginDoc, deployment_document};
use gatehouse_core::identity::IdentityStore;
use gatehouse_core::pipeline::{Clock, EditableHeaders as _, PagePipeline, RequestView};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    RequestOptions, ResponseOutparam, Scheme,
};

use crate::bindings::wasi::config::store;
use crate::keyvalue::WasiBucket;
use crate::{ComposedProviders, WasiHttpHost};

impl Guest for WasiHttpHost {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let head = Head::read(&request);
        let deployment = match Deployment::from_json(&deployment_document()) {
            Ok(doc) => doc,
            Err(e) => return problem(response_out, Problem::DeploymentInvalid, &e.to_string()),
        };
        if matches!(head.method.as_str(), "CONNECT" | "TRACE") {
            let detail = format!("`{}` is not forwarded by this reverse proxy", head.method);
            return problem(response_out, Problem::MethodNotAllowed, &detail);
        }
        let policy = match deployment.policy() {
            Ok(policy) => policy,
            Err(e) => return problem(response_out, Problem::DeploymentInvalid, &e.to_string()),
        };
        let built = deployment
            .pipeline_settings()
            .map_err(|e| e.to_string())
            .and_then(|settings| PagePipeline::new(&policy, settings).map_err(|e| e.to_string()))
            .and_then(|pipeline| {
                ComposedProviders::new(&deployment, &policy, &WasiConfig)
                    .map(|providers| (pipeline, providers))
                    .map_err(|e| e.to_string())
            });
        let (pipeline, mut providers) = match built {
            Ok(built) => built,
            Err(detail) => return problem(response_out, Problem::DeploymentInvalid, &detail),
        };
        if is_own_route(&head.path) {
            return own_route(response_out, &head, &providers);
        }

        let trusted = match deployment.trusted_proxies() {
            Ok(trusted) => trusted,
            Err(e) => return problem(response_out, Problem::DeploymentInvalid, &e.to_string()),
        };
        // wasi:http reports no peer: the platform in front is the trusted proxy, and its header
        // is walked through the further trusted hops, by the standalone host's rule.
        let client_ip = {
            let values = head.values(&deployment.client_ip_header);
            client_ip_behind(None, &trusted, &deployment.client_ip_header, &values)
        };
        let view = View {
            head: &head,
            client_ip,
        };
        let bucket = deployment.store.as_ref().map(|doc| {
            (
                doc,
                KeyValueStore::new(WasiBucket::new(&doc.name), unix_now),
            )
        });
        let store = bucket
            .as_ref()
            .map(|(doc, bucket)| (*doc, bucket as &dyn IdentityStore));
        let outcome = run_page(&pipeline, &view, &WallClock, &mut providers, store);
        log_provider_failures(&outcome);
        let mut forward = Headers(head.headers.clone());
        pipeline.edit_forwarded_request(&outcome.forward, &mut forward);

        match &deployment.origin {
            OriginDoc { url, .. } if url == "builtin:demo" => {
                let (headers, body) =
                    demo_response(&pipeline, &outcome.response, &head.method, &head.path);
                respond(response_out, 200, &headers, &body);
            }
            origin => match send_to_origin(origin, &head, forward, client_ip, request) {
                Err((problem_kind, detail)) => problem(response_out, problem_kind, &detail),
                Ok(upstream) => {
                    let mut headers = Headers(upstream.headers);
                    headers.strip_hop_by_hop();
                    pipeline.edit_response(&outcome.response, &mut headers);
                    stream_response(response_out, upstream.status, &headers, upstream.body);
                }
            },
        }
    }
}

/// The request head, read once.
struct Head {
    method: String,
    path: String,
    query: Option<String>,
    /// Lowercase names, in request order.
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn read(request: &IncomingRequest) -> Self {
        let method = match request.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Other(other) => other,
        };
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let (path, query) = match path_with_query.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (path_with_query, None),
        };
        let headers = request
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        Self {
            method,
            path,
            query,
            headers,
        }
    }

    /// Every UTF-8 value of `name` (lowercase).
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect()
    }

    fn path_with_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// The core's view of the request.
struct View<'a> {
    head: &'a Head,
    client_ip: Option<std::net::IpAddr>,
}

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        &self.head.method
    }
    fn path(&self) -> &str {
        &self.head.path
    }
    fn query(&self) -> Option<&str> {
        self.head.query.as_deref()
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.head.values(name)
    }
    fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.client_ip
    }
}

/// The platform's `Fields` for `headers`; a header the platform forbids (`host`, hop-by-hop) is
/// skipped.
fn to_fields(headers: &Headers) -> Fields {
    let fields = Fields::new();
    for (name, value) in &headers.0 {
        let _refused_by_platform = fields.append(name, value);
    }
    fields
}

/// The wall clock, for consent expiry.
struct WallClock;

impl Clock for WallClock {
    fn now_unix_seconds(&self) -> u64 {
        unix_now()
    }
}

/// The wall clock in Unix seconds (consent expiry, the identity store's entry expiry).
fn unix_now() -> u64 {
    wasip2::clocks::wall_clock::now().seconds
}

/// `wasi:config/store` for `{ env = "VAR" }` settings.
struct WasiConfig;

impl SettingsStore for WasiConfig {
    fn key_kind(&self) -> String {
        "wasi:config key".to_owned()
    }

    fn get(&self, key: &str) -> Result<Option<String>, String> {
        store::get(key).map_err(|e| match e {
            store::Error::Upstream(m) | store::Error::Io(m) => m,
        })
    }
}

fn own_route(out: ResponseOutparam, head: &Head, providers: &ComposedProviders) {
    if head.path != "/_ts/health" {
        let detail = format!("`{}` is not a Gatehouse route", head.path);
        return problem(out, Problem::NotFound, &detail);
    }
    if head.method != "GET" && head.method != "HEAD" {
        return problem(out, Problem::MethodNotAllowed, "");
    }
    let doc = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "host": "wasi-http",
        "providers": providers.summary(),
    });
    let headers = Headers(vec![("content-type".into(), b"application/json".to_vec())]);
    respond(out, 200, &headers, doc.to_string().as_bytes());
}

fn problem(out: ResponseOutparam, kind: Problem, detail: &str) {
    let detail = (!detail.is_empty()).then_some(detail);
    let headers = Headers(vec![(
        "content-type".into(),
        PROBLEM_CONTENT_TYPE.as_bytes().to_vec(),
    )]);
    respond(
        out,
        kind.status(),
        &headers,
        kind.document(detail).as_bytes(),
    );
}

/// Sends a complete response, framed by its `Content-Length` (the platform would otherwise chunk
/// it).
fn respond(out: ResponseOutparam, status: u16, headers: &Headers, body: &[u8]) {
    let fields = to_fields(headers);
    let _ = fields.set("content-length", &[body.len().to_string().into_bytes()]);
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing_body.write() {
        let _ = stream.write_all(body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}

/// The origin's answer, body not yet read.
struct Upstream {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: wasip2::http::types::IncomingResponse,
}

/// Forwards the request (with the pipeline's edits) to the origin and waits for its head.
fn send_to_origin(
    origin: &OriginDoc,
    head: &Head,
    forward: Headers,
    client_ip: Option<std::net::IpAddr>,
    request: IncomingRequest,
) -> Result<Upstream, (Problem, String)> {
    let unavailable = |detail: String| (Problem::OriginUnavailable, detail);
    let (scheme, authority) = match origin.url.split_once("://") {
        Some(("http", authority)) => (Scheme::Http, authority.trim_end_matches('/')),
        Some(("https", authority)) => (Scheme::Https, authority.trim_end_matches('/')),
        _ => {
            return Err(unavailable(format!(
                "`{}` is not an origin url",
                origin.url
            )));
        }
    };
    let mut headers = forward;
    headers.strip_hop_by_hop();
    if let Some(ip) = client_ip {
        let via: Vec<u8> = b"1.1 gatehouse".to_vec();
        headers.remove("x-forwarded-for");
        headers.append("x-forwarded-for", ip.to_string().as_bytes());
        headers.append("via", &via);
    }
    let host = headers.values("host").first().map(|h| h.to_vec());
    headers.remove("host");
    let outgoing = OutgoingRequest::new(to_fields(&headers));
    let method = match head.method.as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    };
    let authority = match (origin.preserve_host, host) {
        (true, Some(host)) => String::from_utf8(host).unwrap_or_else(|_| authority.to_owned()),
        _ => authority.to_owned(),
    };
    let invalid = |what: &str| unavailable(format!("the platform refused the request's {what}"));
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(&head.path_with_query()))
        .map_err(|()| invalid("path"))?;
    let outgoing_body = outgoing.body().map_err(|()| invalid("body"))?;
    let options = RequestOptions::new();
    let _ = options.set_first_byte_timeout(Some(origin.timeout_ms.saturating_mul(1_000_000)));
    let future = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| unavailable(describe_error(&e)))?;
    // The visitor's body streams to the origin after the request started, so a large body never
    // waits on a full pipe.
    if let Ok(incoming_body) = request.consume()
        && let (Ok(mut from), Ok(mut to)) = (incoming_body.stream(), outgoing_body.write())
    {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.flush();
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionTimeout))) => {
            return Err((Problem::OriginTimeout, String::new()));
        }
        Some(Ok(Err(e))) => return Err(unavailable(describe_error(&e))),
        Some(Err(())) | None => return Err(unavailable("no response".into())),
    };
    Ok(Upstream {
        status: response.status(),
        headers: response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect(),
        body: response,
    })
}

fn describe_error(error: &ErrorCode) -> String {
    format!("{error:?}")
}

/// Starts the response and streams the origin's body into it.
fn stream_response(
    out: ResponseOutparam,
    status: u16,
    headers: &Headers,
    upstream: wasip2::http::types::IncomingResponse,
) {
    let response = OutgoingResponse::new(to_fields(headers));
    let _ = response.set_status_code(status);
    let Ok(outgoing_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(incoming_body) = upstream.consume()
        && let (Ok(mut from), Ok(mut to)) = (incoming_body.stream(), outgoing_body.write())
    {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.flush();
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}
