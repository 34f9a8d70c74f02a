//! The identity store of the composed hosts: the core's [`IdentityStore`] over what each platform
//! offers, written against a small trait per platform so the logic is tested natively with a
//! double of the platform (the hosts supply the real binding).
//!
//! - [`generational`]: a store with its own generations, conditional writes and TTL (Fastly's KV
//!   store): compare-and-swap is the platform's own.
//! - [`keyvalue`]: a plain key-value bucket (`wasi:keyvalue/store@0.2.0-draft`): expiry and
//!   generation live in an envelope around the value, and conditional writes are a read then a
//!   write (that draft has no compare-and-swap).
//!
//! Both encode the core's key with [`platform_key`] first. Keys are visitor identifiers: no error
//! and no log line here ever includes one.
//!
//! [`IdentityStore`]: gatehouse_core::identity::IdentityStore

pub mod generational;
pub mod keyvalue;

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use gatehouse_core::identity::{
    Identity, IdentityOutcome, IdentityStore, Inline, NoBackoff, StoreError,
};
use gatehouse_core::pipeline::{
    Clock, EdgeCookieDecision, PagePipeline, ProviderHost, RequestOutcome, RequestView,
};
use gatehouse_core::task::block_on;

use crate::deployment::StoreDoc;

/// The default Fastly KV store name (`store.fastly_kv_store`).
pub const DEFAULT_FASTLY_KV_STORE: &str = "gatehouse-identity";

/// The default `wasi:keyvalue` bucket identifier (`store.keyvalue_bucket`): the empty
/// identifier, the one bucket `wasmtime serve -Skeyvalue` opens.
pub const DEFAULT_KEYVALUE_BUCKET: &str = "";

/// The core's key (`ec:` + a cookie value) as the platform stores it: ASCII letters, digits,
/// `.`, `_`, `-` and `:` unchanged, every other byte as `%XX`. Injective, and never a key Fastly
/// refuses (`#`, `;`, `?`, `^`, `|`, `/`, CR, LF, control characters), so a cookie value a visitor
/// made up cannot break the store call or address another key. A 256-byte cookie value gives at
/// most 771 bytes, within Fastly's 1024.
#[must_use]
pub fn platform_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b':') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A TTL as whole seconds, rounded up and at least one (a store given 0 might keep the entry
/// forever), at most `u32::MAX` (Fastly's field).
#[must_use]
pub fn ttl_secs(ttl: Duration) -> u32 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

/// A platform call's failure, as the [`StoreError::Unavailable`] source: the platform's message,
/// which never holds the key (the bindings pass the platform's error code, not the request).
#[derive(Debug)]
pub struct PlatformError(pub String);

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for PlatformError {}

pub(crate) fn unavailable(store: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        store,
        source: Box::new(PlatformError(message.into())),
    }
}

/// Runs a composed host's page pipeline: with the deployment's identity store (`store`, the
/// `[store]` document and the platform's store built from it) the whole Edge Cookie lifecycle
/// ([`PagePipeline::run_with_identity`]: the platform's store calls answer at once, so it is
/// driven by `block_on` over [`Inline`], and compare-and-swap retries do not wait: each attempt is
/// a platform round trip already); without one, statelessly ([`PagePipeline::run`]). A failed
/// store operation is logged ([`log_identity_outcome`]).
pub fn run_page<'p>(
    pipeline: &PagePipeline<'p>,
    view: &(dyn RequestView + Sync),
    clock: &(dyn Clock + Sync),
    providers: &mut (dyn ProviderHost + Send),
    store: Option<(&StoreDoc, &dyn IdentityStore)>,
) -> RequestOutcome<'p> {
    let Some((doc, store)) = store else {
        return pipeline.run(view, clock, providers);
    };
    let settings = doc.settings();
    let identity = Identity {
        store: &Inline(store),
        backoff: &NoBackoff,
        settings: &settings,
    };
    let outcome = block_on(pipeline.run_with_identity(view, clock, providers, identity));
    log_identity_outcome(&outcome);
    outcome
}

/// `error` and its sources, joined with `: ` (for one log line).
#[must_use]
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// Writes a failed identity-store operation to stderr (the platform's log) with its cause
/// chain, which never holds a key or a value; other outcomes are not logged (no per-request
/// noise).
pub fn log_identity_outcome(outcome: &gatehouse_core::pipeline::RequestOutcome<'_>) {
    let Some(decision) = &outcome.decision else {
        return;
    };
    if let IdentityOutcome::Failed(error) = &decision.identity {
        let chain = error_chain(&**error);
        let consequence = if decision.edge_cookie == EdgeCookieDecision::StoreUnavailable {
            "; no Edge Cookie was set (fail-closed)"
        } else {
            ""
        };
        eprintln!(
            "gatehouse: identity store: {}{consequence}",
            chain.escape_debug()
        );
    }
}

/// The clock the store tests run on: one per test thread, in Unix seconds.
#[cfg(test)]
pub(crate) mod test_clock {
    use std::cell::Cell;

    thread_local! {
        static NOW: Cell<u64> = const { Cell::new(1_700_000_000) };
    }

    /// This test's time.
    pub(crate) fn now() -> u64 {
        NOW.with(Cell::get)
    }

    /// Moves this test's time forward.
    pub(crate) fn advance(secs: u64) {
        NOW.with(|n| n.set(n.get() + secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_keys_keep_the_usual_cookie_values_and_escape_the_rest() {
        let hmac = format!("ec:{}.AbC123", "ab".repeat(32));
        assert_eq!(platform_key(&hmac), hmac);
        assert_eq!(platform_key("ec:a#b;c?d"), "ec:a%23b%3Bc%3Fd");
        assert_eq!(platform_key("ec:../x|y^z"), "ec:..%2Fx%7Cy%5Ez");
        assert_eq!(platform_key("ec:100%"), "ec:100%25");
        // Injective: an escaped form never equals another key's plain form.
        assert_ne!(platform_key("ec:%23"), platform_key("ec:#"));
        let longest = format!("ec:{}", "!".repeat(256));
        assert!(platform_key(&longest).len() <= 1024);
    }

    #[test]
    fn ttls_round_up_to_at_least_one_second() {
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::ZERO), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::from_secs(31_536_000)), 31_536_000);
        assert_eq!(ttl_secs(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
