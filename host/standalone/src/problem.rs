//! HTTP errors as RFC 9457 `application/problem+json`, each with a stable `type`.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use crate::server::Body;

/// Every error the server itself answers with. One exhaustive mapping to status and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A `/_ts/` path that does not exist.
    NotFound,
    /// A `/_ts/` route called with the wrong method, or a method a reverse proxy never forwards
    /// (`CONNECT`, `TRACE`).
    MethodNotAllowed,
    /// The client's request is malformed (two `Host` headers, a broken chunked body, ...).
    BadRequest,
    /// The client's request body is over `server.max_body_bytes`.
    PayloadTooLarge,
    /// An API request without a valid credential.
    Unauthorized,
    /// An API caller over its rate limit (sent with `Retry-After`).
    RateLimited,
    /// An API request body that is not `application/json`.
    UnsupportedMediaType,
    /// A batch-sync body that is not a batch (malformed JSON, a missing or mistyped field).
    InvalidBatch,
    /// A batch-sync body with more mappings than accepted.
    TooManyMappings,
    /// The identity store is unavailable (nothing was written).
    StoreUnavailable,
    /// An Edge Cookie resolve body that is not `{"value": "..."}`.
    InvalidEcResolveRequest,
    /// The Edge Cookie provider refused the browser-computed value (nothing was set).
    EcValueRejected,
    /// The origin could not be reached or failed mid-response.
    OriginUnavailable,
    /// The origin did not answer in time.
    OriginTimeout,
    /// The TLS connection to the origin failed (certificate unknown, name mismatch, ...).
    OriginTls,
    /// The auction request is not valid; the problem's `field` names the JSON path.
    InvalidAuctionInput,
    /// The server cannot answer now (shutting down).
    Unavailable,
}

impl Problem {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                "No such Gatehouse route",
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed on this Gatehouse route",
            ),
            Self::BadRequest => (
                StatusCode::BAD_REQUEST,
                "bad-request",
                "The request is malformed",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is larger than this server accepts",
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "A valid API key is required",
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests; retry after the time given",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The request body must be application/json",
            ),
            Self::InvalidBatch => (
                StatusCode::BAD_REQUEST,
                "invalid-batch",
                "The request body is not a valid batch",
            ),
            Self::TooManyMappings => (
                StatusCode::BAD_REQUEST,
                "too-many-mappings",
                "The batch has more mappings than accepted",
            ),
            Self::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The identity store is unavailable",
            ),
            Self::InvalidEcResolveRequest => (
                StatusCode::BAD_REQUEST,
                "invalid-ec-resolve-request",
                "The request body is not an edge cookie resolve request",
            ),
            Self::EcValueRejected => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "ec-value-rejected",
                "The edge cookie provider refused the value",
            ),
            Self::OriginUnavailable => (
                StatusCode::BAD_GATEWAY,
                "origin-unavailable",
                "The publisher origin could not be reached",
            ),
            Self::OriginTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "origin-timeout",
                "The publisher origin did not answer in time",
            ),
            Self::OriginTls => (
                StatusCode::BAD_GATEWAY,
                "origin-tls",
                "The TLS connection to the publisher origin failed",
            ),
            Self::InvalidAuctionInput => (
                StatusCode::BAD_REQUEST,
                "invalid-auction-input",
                "The auction request is invalid",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The server cannot answer this request now",
            ),
        }
    }

    /// The stable slug of the problem's `type` (`/_ts/problems/<slug>`).
    #[must_use]
    pub fn slug(self) -> &'static str {
        self.parts().1
    }

    /// Renders the problem document, with `detail` when given.
    #[must_use]
    pub fn response(self, detail: Option<&str>) -> Response<Body> {
        self.response_with(detail, &[])
    }

    /// Renders the problem document with `detail` and extension members (RFC 9457 §3.2), such
    /// as `field` for [`Problem::InvalidAuctionInput`].
    #[must_use]
    pub fn response_with(
        self,
        detail: Option<&str>,
        extensions: &[(&str, &str)],
    ) -> Response<Body> {
        let (status, slug, title) = self.parts();
        let mut doc = serde_json::json!({
            "type": format!("/_ts/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
        });
        if let Some(detail) = detail {
            doc["detail"] = detail.into();
        }
        for (name, value) in extensions {
            doc[*name] = (*value).into();
        }
        let mut response = Response::new(
            Full::new(Bytes::from(doc.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
