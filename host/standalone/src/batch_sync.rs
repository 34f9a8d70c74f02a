//! `POST /_ts/api/v1/batch-sync`: partners push their user ids for Edge Cookie identities.
//!
//! Wiring only; what a batch means is decided by [`gatehouse_core::sync`]. The order of checks
//! is fixed so that a caller learns nothing before it authenticates:
//! 1. `Authorization: Bearer <key>` (scheme in any case), found by SHA-256 and compared in
//!    constant time → 401 (`unauthorized`);
//! 2. the partner's `batch_rate_limit` (GCRA, `governor`) → 429 (`rate-limited`) with
//!    `Retry-After`;
//! 3. `Content-Type: application/json` → 415 (`unsupported-media-type`);
//! 4. body over 2 MiB, from `Content-Length` first, then while reading → 413;
//! 5. malformed JSON, a missing `mappings`, or more than 1000 mappings → 400 (`invalid-batch`,
//!    `too-many-mappings`);
//! 6. the batch is applied on the blocking pool (store calls never run on the async workers);
//!    a store unavailable before any write → 503 (`store-unavailable`); else 200 (all
//!    accepted) or 207 with per-mapping reasons.
//!
//! Logs name the partner id, the counts and the reasons; never the key, an Edge Cookie or a
//! partner uid.

use crate::body::CappedBodyError;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gatehouse_core::sync::{
    BatchError, BatchRequest, BatchRequestError, BatchResult, BatchSettings, MAX_BODY_BYTES,
    Partner, Partners, apply_batch,
};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};

use crate::identity::IdentityService;
use crate::problem::Problem;
use crate::server::Body;

/// The route.
pub const ROUTE: &str = "/_ts/api/v1/batch-sync";

/// The batch-sync endpoint of one deployment: partners, their rate limiters, and the store.
pub struct BatchSync {
    partners: Partners,
    /// One limiter per partner, in the order of `partners`.
    limiters: Vec<DefaultDirectRateLimiter>,
    identity: Option<IdentityService>,
    /// `ec.max_age_secs`: a record keeps its expiry.
    max_age_secs: u64,
}

impl BatchSync {
    /// The endpoint for `partners`, writing to the identity store (`None`: no store is
    /// configured, and every authenticated batch is answered 503). `max_age_secs` is
    /// `ec.max_age_secs`: a synced record keeps its expiry, `created + max_age_secs`.
    #[must_use]
    pub fn new(partners: Partners, identity: Option<IdentityService>, max_age_secs: u64) -> Self {
        let limiters = partners
            .iter()
            .map(|p| {
                let per_minute = NonZeroU32::new(p.batch_rate_limit).unwrap_or(NonZeroU32::MIN);
                RateLimiter::direct(Quota::per_minute(per_minute))
            })
            .collect();
        Self {
            partners,
            limiters,
            identity,
            max_age_secs,
        }
    }

    /// The configured partners.
    #[must_use]
    pub fn partners(&self) -> &Partners {
        &self.partners
    }

    /// Answers one request to [`ROUTE`].
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if req.method() != Method::POST {
            let mut response = Problem::MethodNotAllowed.response(Some("use `POST`"));
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let Some((index, partner)) = self.authenticate(req.headers()) else {
            tracing::info!("batch sync refused: missing or invalid api key");
            let mut response = Problem::Unauthorized.response(Some(
                "send `Authorization: Bearer <api key>` with a partner's api key",
            ));
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        };
        if let Some(limiter) = self.limiters.get(index)
            && let Err(not_until) = limiter.check()
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Whole seconds, rounded up: a client that waits `Retry-After` is then admitted.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::info!(partner = %partner.id, retry_after = secs, "batch sync rate-limited");
            let mut response = Problem::RateLimited.response(Some(&format!(
                "partner `{}` is limited to {} batches per minute",
                partner.id, partner.batch_rate_limit
            )));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return response;
        }
        if !crate::body::is_json(req.headers()) {
            return Problem::UnsupportedMediaType
                .response(Some("send the batch as `Content-Type: application/json`"));
        }
        let too_large = || {
            Problem::PayloadTooLarge
                .response(Some(&format!("a batch is at most {MAX_BODY_BYTES} bytes")))
        };
        let (head, body) = req.into_parts();
        let body = match crate::body::read_capped(&head.headers, body, MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(CappedBodyError::TooLarge) => return too_large(),
            Err(CappedBodyError::Unreadable(e)) => {
                tracing::debug!(partner = %partner.id, "batch sync body unreadable: {e}");
                return Problem::BadRequest.response(Some("the request body could not be read"));
            }
        };
        let request = match BatchRequest::parse(&body) {
            Ok(request) => request,
            Err(e) => {
                let problem = match &e {
                    BatchRequestError::Malformed { .. } => Problem::InvalidBatch,
                    BatchRequestError::TooManyMappings { .. } => Problem::TooManyMappings,
                };
                // serde's message may quote a uid: it goes back to the partner, not to the log.
                tracing::info!(partner = %partner.id, problem = problem.slug(), "batch sync refused");
                return problem.response(Some(&e.to_string()));
            }
        };
        let Some(identity) = &self.identity else {
            tracing::warn!(partner = %partner.id, "batch sync refused: no identity store is configured");
            return Problem::StoreUnavailable.response(Some("no identity store is configured"));
        };
        let partner = partner.clone();
        let max_age_secs = self.max_age_secs;
        let count = request.mappings.len();
        let applied = identity
            .call(move |store, identity_settings, backoff| {
                let settings = BatchSettings {
                    max_age_secs,
                    retry: identity_settings.retry,
                };
                let result = apply_batch(
                    store,
                    backoff,
                    &settings,
                    &partner,
                    &request.mappings,
                    now_unix_seconds(),
                );
                (partner, result)
            })
            .await;
        let (partner, result) = match applied {
            Ok(done) => done,
            Err(e) => {
                tracing::error!("batch sync task failed: {e}");
                return Problem::StoreUnavailable.response(None);
            }
        };
        match result {
            Ok(result) => {
                log_result(&partner, count, &result);
                let status = if result.all_accepted() {
                    StatusCode::OK
                } else {
                    StatusCode::MULTI_STATUS
                };
                json_response(status, &result)
            }
            Err(BatchError::StoreUnavailable(e)) => {
                tracing::warn!(partner = %partner.id, mappings = count, "batch sync failed: {e}");
                Problem::StoreUnavailable.response(Some(
                    "the identity store is unavailable; nothing was written, retry the batch",
                ))
            }
        }
    }

    fn authenticate(&self, headers: &http::HeaderMap) -> Option<(usize, &Partner)> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let key = bearer_token(value.as_bytes())?;
        let partner = self.partners.authenticate(key)?;
        let index = self.partners.iter().position(|p| p.id == partner.id)?;
        Some((index, partner))
    }
}

/// The token of `Bearer <token>`, the scheme in any case (RFC 9110 §11.1).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let split = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn log_result(partner: &Partner, count: usize, result: &BatchResult) {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for error in &result.errors {
        *reasons.entry(error.reason.as_str()).or_default() += 1;
    }
    let reasons = reasons
        .iter()
        .map(|(reason, n)| format!("{reason}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    tracing::info!(
        partner = %partner.id,
        mappings = count,
        accepted = result.accepted,
        written = result.written,
        stale = result.stale,
        rejected = result.rejected,
        reasons = %reasons,
        "batch sync applied"
    );
}

fn json_response(status: StatusCode, result: &BatchResult) -> Response<Body> {
    let body = serde_json::to_vec(result).unwrap_or_default();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn now_unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
