//! Process-wide counters of the edge around the sandbox (connections, the origin, dropped
//! provider headers), rendered into `/_ts/metrics` beside the runtime's provider failures.
//!
//! They are process-wide statics because the listener, the origin client and the request
//! handler all count into them and a reload must not reset them; they hold numbers only, never
//! a header value, address or other request data.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter (or, for gauges, a value moved both ways).
#[derive(Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one (gauges only).
    pub fn decrement(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Client connections open now (public listener).
pub static CONNECTIONS_OPEN: Counter = Counter::new();
/// Client connections accepted and closed at once because `server.max_connections` were open.
pub static CONNECTIONS_REFUSED_AT_CAP: Counter = Counter::new();
/// `accept` failures (descriptor exhaustion and the like).
pub static ACCEPT_ERRORS: Counter = Counter::new();
/// Connections closed because no request head arrived within `server.header_read_timeout_ms`.
pub static CONNECTIONS_HEADER_TIMEOUT: Counter = Counter::new();
/// Connections closed after `server.idle_timeout_ms` without a request in flight.
pub static CONNECTIONS_IDLE_CLOSED: Counter = Counter::new();
/// TLS handshakes that failed or timed out.
pub static TLS_HANDSHAKE_FAILURES: Counter = Counter::new();
/// Origin response bodies cut off after `origin.body_idle_timeout_ms` without data.
pub static ORIGIN_BODY_STALLS: Counter = Counter::new();
/// Provider response headers dropped (CR/LF, not allowlisted, over the caps, ...).
pub static PROVIDER_HEADERS_DROPPED: Counter = Counter::new();

/// Appends the counters in the Prometheus text format.
pub fn render(out: &mut String) {
    let metrics: [(&str, &str, &str, &Counter); 8] = [
        (
            "gatehouse_connections_open",
            "gauge",
            "Client connections open on the public listener.",
            &CONNECTIONS_OPEN,
        ),
        (
            "gatehouse_connections_refused_total",
            "counter",
            "Client connections closed at once because server.max_connections were open.",
            &CONNECTIONS_REFUSED_AT_CAP,
        ),
        (
            "gatehouse_accept_errors_total",
            "counter",
            "Failed accepts (e.g. descriptor exhaustion); the listener backs off.",
            &ACCEPT_ERRORS,
        ),
        (
            "gatehouse_connections_header_timeout_total",
            "counter",
            "Connections closed for not sending a request head within server.header_read_timeout_ms.",
            &CONNECTIONS_HEADER_TIMEOUT,
        ),
        (
            "gatehouse_connections_idle_closed_total",
            "counter",
            "Connections closed after server.idle_timeout_ms without a request in flight.",
            &CONNECTIONS_IDLE_CLOSED,
        ),
        (
            "gatehouse_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or exceeded server.tls_handshake_timeout_ms.",
            &TLS_HANDSHAKE_FAILURES,
        ),
        (
            "gatehouse_origin_body_stalls_total",
            "counter",
            "Origin response bodies cut off after origin.body_idle_timeout_ms without data.",
            &ORIGIN_BODY_STALLS,
        ),
        (
            "gatehouse_provider_headers_dropped_total",
            "counter",
            "Provider response headers dropped (invalid, not allowlisted or over the caps).",
            &PROVIDER_HEADERS_DROPPED,
        ),
    ];
    for (name, kind, help, counter) in metrics {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
            counter.get()
        );
    }
}
