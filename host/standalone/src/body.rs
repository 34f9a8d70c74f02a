//! The visitor's request body on its way to the origin: bounded in size, and its failures told
//! apart from the origin's.
//!
//! [`ClientBody`] wraps hyper's incoming body. It refuses to yield more than the configured number
//! of bytes, and records *why* it failed (too large, or malformed framing such as a bad chunk) in
//! a shared [`BodyFault`] slot, so that when the upstream request fails the proxy can answer the
//! client's own error (413, 400) instead of blaming the origin (502).
//!
//! [`OriginBody`] wraps the origin's response body and ends it with an error when the origin
//! stops sending for `origin.body_idle_timeout_ms`.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Whether a request's `Content-Type` is `application/json`, in any case, parameters such as
/// `charset` allowed: what every JSON route under `/_ts/api/` accepts (else 415).
#[must_use]
pub fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Why [`read_capped`] returned no body.
#[derive(Debug)]
pub enum CappedBodyError {
    /// Over the cap: declared by `Content-Length`, or found while reading (413).
    TooLarge,
    /// The client's framing was malformed or the client went away (400); the reason, for a
    /// debug log.
    Unreadable(String),
}

/// Reads a whole request body of at most `max` bytes: refused from `Content-Length` before a byte
/// is read, else cut off as soon as it passes `max`. What the JSON routes under `/_ts/api/` use.
///
/// # Errors
/// [`CappedBodyError`].
pub async fn read_capped<B>(
    headers: &http::HeaderMap,
    body: B,
    max: usize,
) -> Result<Bytes, CappedBodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt as _;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(CappedBodyError::TooLarge);
    }
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(CappedBodyError::TooLarge),
        Err(e) => Err(CappedBodyError::Unreadable(e.to_string())),
    }
}

/// Why the client's body could not be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFault {
    /// More than the configured limit.
    TooLarge,
    /// The client's framing was malformed or the client went away mid-body.
    Malformed,
}

/// Shared slot the proxy reads after a failed upstream request.
pub type FaultSlot = Arc<Mutex<Option<BodyFault>>>;

/// The body error [`ClientBody`] yields; its text goes to the origin connection only.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// Over the limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Reading the client's body failed.
    #[error("reading the request body failed: {0}")]
    Read(#[from] hyper::Error),
}

/// The client's request body, limited to `limit` bytes.
pub struct ClientBody {
    inner: Incoming,
    limit: u64,
    seen: u64,
    fault: FaultSlot,
}

impl ClientBody {
    /// Wraps `inner`; failures are recorded in the returned slot.
    #[must_use]
    pub fn new(inner: Incoming, limit: u64) -> (Self, FaultSlot) {
        let fault = FaultSlot::default();
        (
            Self {
                inner,
                limit,
                seen: 0,
                fault: Arc::clone(&fault),
            },
            fault,
        )
    }

    fn record(&self, fault: BodyFault) {
        if let Ok(mut slot) = self.fault.lock() {
            slot.get_or_insert(fault);
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                self.record(BodyFault::Malformed);
                Poll::Ready(Some(Err(ClientBodyError::Read(e))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen = self.seen.saturating_add(data.len() as u64);
                    if self.seen > self.limit {
                        self.record(BodyFault::TooLarge);
                        let limit = self.limit;
                        return Poll::Ready(Some(Err(ClientBodyError::TooLarge { limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The origin's response body on its way to the visitor, cut off when the origin goes quiet.
///
/// An origin that sends its headers and then stalls would otherwise hold the visitor's
/// connection (and a pooled origin connection) forever. [`OriginBody`] fails when no frame has
/// arrived for `origin.body_idle_timeout_ms`; the server then ends the visitor's response with an
/// error (HTTP/1.1: the connection closes before the declared length or the last chunk; HTTP/2:
/// the stream is reset), so the visitor can tell the page is incomplete.
pub struct OriginBody {
    inner: Incoming,
    idle: std::time::Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    origin: Arc<str>,
}

/// The body error [`OriginBody`] yields.
#[derive(Debug, thiserror::Error)]
pub enum OriginBodyError {
    /// No data for `origin.body_idle_timeout_ms`.
    #[error(
        "origin `{origin}` sent no response body data for {idle_ms} ms (`origin.body_idle_timeout_ms`)"
    )]
    Stalled {
        /// The origin's authority.
        origin: Arc<str>,
        /// The timeout.
        idle_ms: u128,
    },
    /// Reading the origin's body failed.
    #[error("reading the origin's response body failed: {0}")]
    Read(#[from] hyper::Error),
}

impl OriginBody {
    /// Wraps `inner`, failing after `idle` without a frame; `origin` names the origin in errors.
    #[must_use]
    pub fn new(inner: Incoming, idle: std::time::Duration, origin: Arc<str>) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            origin,
        }
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = OriginBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OriginBodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(OriginBodyError::Read(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    crate::edge_metrics::ORIGIN_BODY_STALLS.increment();
                    let error = OriginBodyError::Stalled {
                        origin: Arc::clone(&this.origin),
                        idle_ms: this.idle.as_millis(),
                    };
                    tracing::warn!("origin response body stalled, visitor response ended: {error}");
                    // Armed again, in case the caller polls once more after the error.
                    let next = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
