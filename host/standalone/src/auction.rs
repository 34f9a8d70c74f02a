//! `POST /_ts/api/v1/auction`: header bidding at the edge. Wiring only.
//!
//! The core decides everything ([`gatehouse_core::auction`]): it validates the page's input,
//! resolves the request's consent and permissions through the same page pipeline a page load
//! goes through ([`gatehouse_core::pipeline::PagePipeline::run_api`]), builds one OpenRTB 2.6 bid
//! request per `[[auction.bidders]]` and chooses the winners. This module only moves bytes:
//!
//! 1. refuses what is not a JSON `POST` (405, 415), a body over
//!    [`MAX_INPUT_BYTES`] (413) and input the core refuses (400 `invalid-auction-input`, naming
//!    the field in `field`);
//! 2. sends every bid request **in parallel** with a pooled hyper-util client (rustls for
//!    `https://` bidders, verifying against the system roots), each bounded by its bidder's
//!    `timeout_ms` (at most `auction.tmax_ms`, so the whole fan-out is bounded by `tmax`);
//! 3. reads at most [`MAX_RESPONSE_BYTES`] + 1 bytes of each answer (a larger body is dropped
//!    by the core as malformed, without buffering the rest);
//! 4. answers the page with the core's [`gatehouse_core::auction::AuctionResult`] and applies the
//!    pipeline's response edits (an Edge Cookie newly set is stored by the browser, so bidders
//!    and the browser agree).
//!
//! It must never: decide what a bidder receives (the core does), let one bidder delay or break
//! the others, or log a consent string, a cookie or an identifier (only bidder names and error
//! labels are logged).

use crate::body::CappedBodyError;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_core::auction::{
    Auction, AuctionContext, BidderOutcome, BidderReport, BidderStatus, MAX_INPUT_BYTES,
    OutboundBidRequest,
};
use gatehouse_core::openrtb::MAX_RESPONSE_BYTES;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rand::RngCore as _;
use rustls::RootCertStore;

use crate::config::ConfigError;
use crate::problem::Problem;
use crate::server::{App, Body, HyperHeaders, HyperRequestView, SystemClock};

/// The route.
pub const ROUTE: &str = "/_ts/api/v1/auction";

/// The pooled client to the bidders: HTTP/1.1, or TLS with HTTP/2 or HTTP/1.1 by ALPN.
type BidderClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Idle connections kept per bidder host: enough for the auctions in flight on a busy node;
/// more are closed, and every idle one after 30 s.
const BIDDER_POOL_MAX_IDLE: usize = 64;

/// The auction of one configuration: the core's [`Auction`], the client to the bidders and the
/// per-bidder counters.
pub struct AuctionService {
    auction: Auction,
    client: BidderClient,
    metrics: Arc<BidderMetrics>,
}

impl AuctionService {
    /// Builds the client for the validated `[auction]`.
    ///
    /// # Errors
    /// When a bidder is `https://` and the system trust store holds no usable certificate
    /// (naming that bidder's `url` key), or TLS cannot be configured.
    pub fn new(auction: Auction) -> Result<Self, ConfigError> {
        let mut roots = RootCertStore::empty();
        if let Some(i) = auction
            .config()
            .bidders
            .iter()
            .position(|b| b.url.starts_with("https://"))
        {
            roots = crate::origin::system_roots();
            if roots.is_empty() {
                return Err(ConfigError::invalid(
                    format!("auction.bidders[{i}].url"),
                    "an `https://` bidder needs trusted roots, and the system trust store holds \
                     none: install the system CA certificates (Debian: `ca-certificates`)",
                ));
            }
        }
        // Each bidder's own `timeout_ms` (at most `tmax`) bounds its whole exchange, connect
        // included; the connect bound here only stops a black-holed address from holding a
        // connection attempt past any auction.
        let client = crate::origin::pooled_client(
            roots,
            &crate::origin::PoolSettings {
                connect_timeout: Duration::from_millis(auction.config().tmax_ms.max(1)),
                idle_timeout: Duration::from_secs(30),
                max_idle_per_host: BIDDER_POOL_MAX_IDLE,
                nodelay: true,
            },
        )
        .map_err(|e| ConfigError::invalid("auction", format!("cannot configure tls: {e}")))?;
        let metrics = Arc::new(BidderMetrics::new(
            auction.config().bidders.iter().map(|b| b.name.clone()),
        ));
        Ok(Self {
            auction,
            client,
            metrics,
        })
    }

    /// The Prometheus lines of the per-bidder counters.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}

/// Per-bidder counters: requests sent, timeouts, other errors by label.
struct BidderMetrics {
    /// `(name, requests, timeouts)` in configuration order.
    bidders: Vec<(String, AtomicU64, AtomicU64)>,
    /// `(bidder, error label)` → count, for errors other than timeouts.
    errors: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl BidderMetrics {
    fn new(names: impl Iterator<Item = String>) -> Self {
        Self {
            bidders: names
                .map(|n| (n, AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one bid request of the `index`-th bidder and what became of it.
    fn record(&self, index: usize, report: &BidderReport) {
        let Some((name, requests, timeouts)) = self.bidders.get(index) else {
            return;
        };
        requests.fetch_add(1, Ordering::Relaxed);
        match report.status {
            BidderStatus::Bid | BidderStatus::NoBid => {}
            BidderStatus::TimedOut => {
                timeouts.fetch_add(1, Ordering::Relaxed);
            }
            BidderStatus::Failed => {
                if let Ok(mut errors) = self.errors.lock() {
                    let reason = report.error.unwrap_or("unknown");
                    *errors.entry((name.clone(), reason)).or_default() += 1;
                }
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::from(
            "# HELP gatehouse_auction_bidder_requests_total Bid requests sent, by bidder.\n\
             # TYPE gatehouse_auction_bidder_requests_total counter\n",
        );
        for (name, requests, _) in &self.bidders {
            out.push_str(&format!(
                "gatehouse_auction_bidder_requests_total{{bidder=\"{name}\"}} {}\n",
                requests.load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP gatehouse_auction_bidder_timeouts_total Bid requests without an answer in \
             the bidder's timeout.\n\
             # TYPE gatehouse_auction_bidder_timeouts_total counter\n",
        );
        for (name, _, timeouts) in &self.bidders {
            out.push_str(&format!(
                "gatehouse_auction_bidder_timeouts_total{{bidder=\"{name}\"}} {}\n",
                timeouts.load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP gatehouse_auction_bidder_errors_total Bidders dropped for another reason \
             (transport, http status, malformed response, ...).\n\
             # TYPE gatehouse_auction_bidder_errors_total counter\n",
        );
        if let Ok(errors) = self.errors.lock() {
            for ((name, reason), count) in errors.iter() {
                out.push_str(&format!(
                    "gatehouse_auction_bidder_errors_total{{bidder=\"{name}\",reason=\"{reason}\"}} {count}\n"
                ));
            }
        }
        out
    }
}

/// What the host observed for one bidder, owning the body.
enum Observed {
    Answered { status: u16, body: Bytes },
    TimedOut,
    TransportFailed,
}

impl Observed {
    fn outcome(&self) -> BidderOutcome<'_> {
        match self {
            Self::Answered { status, body } => BidderOutcome::Answered {
                status: *status,
                body,
            },
            Self::TimedOut => BidderOutcome::TimedOut,
            Self::TransportFailed => BidderOutcome::TransportFailed,
        }
    }
}

/// Answers `POST /_ts/api/v1/auction`. `req`'s CDN fact headers have already been removed when
/// its peer is not a trusted proxy.
pub async fn handle(app: &App, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let Some(service) = &app.auction else {
        return Problem::NotFound.response(Some(
            "`/_ts/api/v1/auction` is not enabled: configure `[auction]` and `[[auction.bidders]]`",
        ));
    };
    if req.method() != Method::POST {
        let mut response =
            Problem::MethodNotAllowed.response(Some("`/_ts/api/v1/auction` accepts `POST` only"));
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if !crate::body::is_json(req.headers()) {
        return Problem::UnsupportedMediaType
            .response(Some("the auction request body must be `application/json`"));
    }
    let (head, body) = req.into_parts();
    let bytes = match crate::body::read_capped(&head.headers, body, MAX_INPUT_BYTES).await {
        Ok(bytes) => bytes,
        Err(CappedBodyError::TooLarge) => return too_large(),
        Err(CappedBodyError::Unreadable(e)) => {
            tracing::debug!("auction request body could not be read: {e}");
            return Problem::BadRequest.response(Some("the request body could not be read"));
        }
    };
    let input = match service.auction.parse_input(&bytes) {
        Ok(input) => input,
        Err(e) => {
            return Problem::InvalidAuctionInput
                .response_with(Some(&e.to_string()), &[("field", e.field())]);
        }
    };
    let request_id = random_id();
    let transaction_id = random_id();
    let chain = app.client_ip.resolve(peer.ip(), &head.headers);
    let cookie_header = joined_cookie_header(&head.headers);
    let user_agent = head
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok());
    // The same decision a page load gets: geo, policy, consent (expiry, GPC, conflicts), device,
    // Edge Cookie. Provider calls are synchronous and bounded; as on the page path they run off
    // the async workers (`run_blocking`) unless their CPU budgets add up to at most
    // `runtime.inline_budget_ms`, so a slow provider cannot stall other connections.
    let decide = || {
        let view = HyperRequestView {
            head: &head,
            client_ip: chain.client,
            fingerprints: &app.fingerprint_headers,
        };
        let mut providers = app.runtime.for_request();
        let outcome = app.pipeline.run_api(&view, &SystemClock, &mut providers);
        let decision = outcome.decision.as_ref()?;
        for (kind, failure) in &decision.failures {
            app.runtime.record_failure(*kind, failure);
        }
        let ctx = AuctionContext::from_decision(
            decision,
            &request_id,
            &transaction_id,
            user_agent,
            Some(chain.client),
            cookie_header.as_deref(),
        );
        Some((
            service.auction.build_requests(&input, &ctx),
            outcome.response.clone(),
        ))
    };
    let decided = if app.runtime.has_providers() && !app.runtime.runs_inline() {
        app.runtime.run_blocking(decide).await
    } else {
        decide()
    };
    let Some((requests, response_edits)) = decided else {
        // `run_api` always decides; answer as the page path would on an impossible state.
        return Problem::BadRequest.response(Some("the request could not be decided"));
    };
    let observed = futures_util::future::join_all(
        requests
            .into_iter()
            .map(|r| send(service.client.clone(), r)),
    )
    .await;
    let outcomes: Vec<BidderOutcome<'_>> = observed.iter().map(Observed::outcome).collect();
    let result = service
        .auction
        .choose_winners(&input, &request_id, &outcomes);
    for (i, report) in result.bidders.iter().enumerate() {
        service.metrics.record(i, report);
    }
    for error in &result.errors {
        tracing::info!(error = error.label(), "auction: {error}");
    }
    let body = match serde_json::to_vec(&result) {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!("auction result could not be serialised: {e}");
            return Problem::BadRequest.response(Some("the auction result could not be encoded"));
        }
    };
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Per visitor and per auction: never cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    app.pipeline
        .edit_response(&response_edits, &mut HyperHeaders(response.headers_mut()));
    *response.status_mut() = StatusCode::OK;
    response
}

fn too_large() -> Response<Body> {
    Problem::PayloadTooLarge.response(Some(&format!(
        "the auction request body is over {MAX_INPUT_BYTES} bytes"
    )))
}

/// Every `Cookie` line joined with `; ` (HTTP/2 may split the header), or `None`.
fn joined_cookie_header(headers: &http::HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// 128 random bits as 32 lowercase hex digits.
fn random_id() -> String {
    let mut bytes = [0_u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Sends one bid request and reads its answer, all within the bidder's timeout.
async fn send(client: BidderClient, outbound: OutboundBidRequest) -> Observed {
    let timeout = Duration::from_millis(outbound.timeout_ms);
    let mut builder = Request::post(outbound.url.as_str());
    for (name, value) in outbound.headers() {
        builder = builder.header(name, value);
    }
    let request = match builder.body(Full::new(Bytes::from(outbound.body_json()))) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(bidder = %outbound.bidder, "bid request could not be built: {e}");
            return Observed::TransportFailed;
        }
    };
    let exchange = async {
        let response = match client.request(request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(bidder = %outbound.bidder, "bid request failed: {e}");
                return Observed::TransportFailed;
            }
        };
        let status = response.status().as_u16();
        match read_capped(response.into_body()).await {
            Ok(body) => Observed::Answered { status, body },
            Err(e) => {
                tracing::debug!(bidder = %outbound.bidder, "bid response body failed: {e}");
                Observed::TransportFailed
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(observed) => observed,
        Err(_) => Observed::TimedOut,
    }
}

/// Reads the body up to [`MAX_RESPONSE_BYTES`] + 1 bytes: enough for the core to see that it is
/// too large, without buffering the rest.
async fn read_capped(mut body: Incoming) -> Result<Bytes, hyper::Error> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = (MAX_RESPONSE_BYTES + 1).saturating_sub(buf.len());
            buf.extend_from_slice(&data[..data.len().min(room)]);
            if buf.len() > MAX_RESPONSE_BYTES {
                break;
            }
        }
    }
    Ok(Bytes::from(buf))
}
