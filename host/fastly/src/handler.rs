//! The Fastly request handler: Gatehouse's own `/_ts/` routes, the page pipeline (with the
//! identity store in the Fastly KV store the deployment names, when it has one) and the proxy to
//! the `origin` backend. Wiring only; every decision is the core's.

use std::net::IpAddr;

use fastly::http::request::SendErrorCause;
use fastly::http::{HeaderName, HeaderValue};
use fastly::{Request, Response, SecretStore};
use gatehouse_component_common::http::{
    HeaderList, PROBLEM_CONTENT_TYPE, Problem, client_ip_behind, demo_response, is_own_route,
    log_provider_failures,
};
use gatehouse_component_common::providers::{ComposedProviders, SettingsStore};
use gatehouse_component_common::store::generational::GenerationalStore;
use gatehouse_component_common::store::run_page;
use gatehouse_component_common::{Deployment, deployment_document};
use gatehouse_core::identity::IdentityStore;
use gatehouse_core::pipeline::{Clock, EditableHeaders as _, PagePipeline, RequestView};

use crate::geo::FastlyProviders;
use crate::kv::FastlyKv;

/// The Fastly backend the origin is reached through (`origin.url` names where it points; the
/// service's backend of this name is what Fastly connects to).
pub const ORIGIN_BACKEND: &str = "origin";

/// The Fastly secret store `{ env = "VAR" }` settings are read from, by their lowercase key.
pub const SECRET_STORE: &str = "gatehouse";

/// Answers the client's request.
pub fn serve_client() {
    let request = Request::from_client();
    handle(request).send_to_client();
}

fn handle(request: Request) -> Response {
    let mut head = Head::read(&request);
    let deployment = match Deployment::from_json(&deployment_document()) {
        Ok(doc) => doc,
        Err(e) => return problem(Problem::DeploymentInvalid, &e.to_string()),
    };
    let trusted = match deployment.trusted_proxies() {
        Ok(trusted) => trusted,
        Err(e) => return problem(Problem::DeploymentInvalid, &e.to_string()),
    };
    // Fastly terminates the visitor's connection: its address is the client's, unless it is a
    // configured trusted proxy (a CDN in front of Fastly), whose header is then walked by the
    // standalone host's rule. Facts only a trusted proxy may state are dropped otherwise.
    let peer = request.get_client_ip_addr();
    if !peer.is_some_and(|peer| trusted.iter().any(|cidr| cidr.contains(peer))) {
        head.headers
            .strip_untrusted_facts(&deployment.cdn_headers, &deployment.client_ip_header);
    }
    let client_ip = {
        let values = head.values(&deployment.client_ip_header);
        client_ip_behind(peer, &trusted, &deployment.client_ip_header, &values)
    };
    if matches!(head.method.as_str(), "CONNECT" | "TRACE") {
        let detail = format!("`{}` is not forwarded by this reverse proxy", head.method);
        return problem(Problem::MethodNotAllowed, &detail);
    }
    let policy = match deployment.policy() {
        Ok(policy) => policy,
        Err(e) => return problem(Problem::DeploymentInvalid, &e.to_string()),
    };
    let built = deployment
        .pipeline_settings()
        .map_err(|e| e.to_string())
        .and_then(|settings| PagePipeline::new(&policy, settings).map_err(|e| e.to_string()))
        .and_then(|pipeline| {
            ComposedProviders::new(&deployment, &policy, &FastlySecrets)
                .map(|providers| {
                    let providers = FastlyProviders::new(providers, deployment.fastly_geo);
                    (pipeline, providers)
                })
                .map_err(|e| e.to_string())
        });
    let (pipeline, mut providers) = match built {
        Ok(built) => built,
        Err(detail) => return problem(Problem::DeploymentInvalid, &detail),
    };
    if is_own_route(&head.path) {
        return own_route(&head, &providers);
    }

    let view = View {
        head: &head,
        client_ip,
    };
    let kv = deployment.store.as_ref().map(|doc| {
        (
            doc,
            GenerationalStore::new(FastlyKv::new(&doc.name), unix_now),
        )
    });
    let store = kv
        .as_ref()
        .map(|(doc, kv)| (*doc, kv as &dyn IdentityStore));
    let outcome = run_page(&pipeline, &view, &WallClock, &mut providers, store);
    log_provider_failures(&outcome);
    let mut forward = head.headers.clone();
    pipeline.edit_forwarded_request(&outcome.forward, &mut forward);

    if deployment.origin.url == "builtin:demo" {
        let (headers, body) = demo_response(&pipeline, &outcome.response, &head.method, &head.path);
        return respond(200, &headers, body);
    }
    match send_to_origin(&deployment, forward, client_ip, request) {
        Err((kind, detail)) => problem(kind, &detail),
        Ok(mut upstream) => {
            let mut headers = header_list(upstream.get_headers());
            headers.strip_hop_by_hop();
            pipeline.edit_response(&outcome.response, &mut headers);
            replace_headers(&mut upstream, &headers);
            upstream
        }
    }
}

/// The request head, read once.
struct Head {
    method: String,
    path: String,
    query: Option<String>,
    /// Lowercase names, in request order.
    headers: HeaderList,
}

impl Head {
    fn read(request: &Request) -> Self {
        Self {
            method: request.get_method_str().to_owned(),
            path: request.get_path().to_owned(),
            query: request.get_query_str().map(str::to_owned),
            headers: header_list(request.get_headers()),
        }
    }

    /// Every UTF-8 value of `name` (lowercase).
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .0
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect()
    }
}

fn header_list<'a>(headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>) -> HeaderList {
    HeaderList(
        headers
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    value.as_bytes().to_vec(),
                )
            })
            .collect(),
    )
}

/// The core's view of the request.
struct View<'a> {
    head: &'a Head,
    client_ip: Option<IpAddr>,
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
    fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Fastly secret store [`SECRET_STORE`] for `{ env = "VAR" }` settings.
struct FastlySecrets;

impl SettingsStore for FastlySecrets {
    fn key_kind(&self) -> String {
        format!("Fastly secret store `{SECRET_STORE}` key")
    }

    fn get(&self, key: &str) -> Result<Option<String>, String> {
        let store = SecretStore::open(SECRET_STORE).map_err(|e| e.to_string())?;
        let Some(secret) = store.try_get(key).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        // An empty secret is never a usable setting, and it is what Viceroy makes of an entry
        // whose `env` variable is unset: treated as missing, so the provider fails closed.
        let plaintext = secret.plaintext();
        if plaintext.is_empty() {
            return Ok(None);
        }
        String::from_utf8(plaintext.to_vec())
            .map(Some)
            .map_err(|_| "the secret is not UTF-8".to_owned())
    }
}

fn own_route(head: &Head, providers: &FastlyProviders) -> Response {
    if head.path != "/_ts/health" {
        let detail = format!("`{}` is not a Gatehouse route", head.path);
        return problem(Problem::NotFound, &detail);
    }
    if head.method != "GET" && head.method != "HEAD" {
        return problem(Problem::MethodNotAllowed, "");
    }
    let doc = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "host": "fastly",
        "providers": providers.summary(),
    });
    let headers = HeaderList(vec![("content-type".into(), b"application/json".to_vec())]);
    respond(200, &headers, doc.to_string().into_bytes())
}

fn problem(kind: Problem, detail: &str) -> Response {
    let detail = (!detail.is_empty()).then_some(detail);
    let headers = HeaderList(vec![(
        "content-type".into(),
        PROBLEM_CONTENT_TYPE.as_bytes().to_vec(),
    )]);
    respond(kind.status(), &headers, kind.document(detail).into_bytes())
}

fn respond(status: u16, headers: &HeaderList, body: Vec<u8>) -> Response {
    let mut response = Response::from_status(status).with_body(body);
    replace_headers(&mut response, headers);
    response
}

/// Makes `response`'s headers exactly `headers`; a name or value the platform's types reject is
/// skipped (the pipeline and the origin only produce valid ones).
fn replace_headers(response: &mut Response, headers: &HeaderList) {
    let names: Vec<HeaderName> = response.get_header_names().cloned().collect();
    for name in names {
        response.remove_header(name);
    }
    for (name, value) in &headers.0 {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            response.append_header(name, value);
        }
    }
}

/// Forwards the visitor's request (with the pipeline's edits and its body) to the `origin`
/// backend and returns the origin's response, body unread.
fn send_to_origin(
    deployment: &Deployment,
    forward: HeaderList,
    client_ip: Option<IpAddr>,
    mut request: Request,
) -> Result<Response, (Problem, String)> {
    let mut headers = forward;
    headers.strip_hop_by_hop();
    if let Some(ip) = client_ip {
        headers.remove("x-forwarded-for");
        headers.append("x-forwarded-for", ip.to_string().as_bytes());
        headers.append("via", b"1.1 gatehouse");
    }
    if !deployment.origin.preserve_host {
        let authority = deployment
            .origin
            .url
            .split_once("://")
            .map_or("", |(_, rest)| rest.trim_end_matches('/'));
        headers.remove("host");
        headers.append("host", authority.as_bytes());
    }
    let names: Vec<HeaderName> = request.get_header_names().cloned().collect();
    for name in names {
        request.remove_header(name);
    }
    for (name, value) in &headers.0 {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            request.append_header(name, value);
        }
    }
    // Gatehouse's edits differ per visitor: the origin's answer is never cached by Fastly here.
    request.set_pass(true);
    request.send(ORIGIN_BACKEND).map_err(|e| {
        // Of Fastly's send failures only these two mean "no answer in time"; every other one
        // (DNS, refused, TLS, a malformed response, ...) means the origin is unavailable.
        let timed_out = matches!(
            e.root_cause(),
            SendErrorCause::ConnectionTimeout | SendErrorCause::HttpResponseTimeout
        );
        let kind = if timed_out {
            Problem::OriginTimeout
        } else {
            Problem::OriginUnavailable
        };
        (kind, e.root_cause().to_string())
    })
}
