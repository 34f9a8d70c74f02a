//! The visitor's request body on its way to the origin: bounded in size, and its failures told
//! apart from the origin's.
//!
//! [`ClientBody`] wraps hyper's incoming body. It refuses to yield more than the configured number
//! of bytes, and records *why* it failed (too large, or malformed framing such as a bad chunk) in
//! a shared [`BodyFault`] slot, so that when the upstream request fails the proxy can answer the
//! client's own error (413, 400) instead of blaming the origin (502).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

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
