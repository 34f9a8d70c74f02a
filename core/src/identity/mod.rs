//! The Edge Cookie lifecycle and the identity store.
//!
//! - [`store`]: the [`IdentityStore`] trait hosts implement (get with a generation; add-only,
//!   overwrite and compare-and-swap writes; delete; per-entry TTL), and
//!   [`AsyncIdentityStore`], the page pipeline's awaitable view of it.
//! - [`retry`]: bounded compare-and-swap with jittered exponential backoff; the host supplies
//!   only the wait ([`Backoff`]).
//! - [`record`]: the versioned [`IdentityRecord`] and its JSON encoding.
//! - [`lifecycle`]: the store operations the page pipeline performs
//!   ([`crate::pipeline::PagePipeline::run_with_identity`]): create, keep and refresh consent,
//!   revive a tombstone, withdraw.
//!
//! This module decides what is written; it never performs I/O itself, reads no clock and draws
//! no random numbers: all of that comes in through [`IdentityStore`], [`Backoff`] and the
//! pipeline's clock.

pub mod lifecycle;
pub mod record;
pub mod retry;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

pub use lifecycle::IdentityError;
pub use record::{
    ConsentSummary, IdentityRecord, LiveIdentity, PartnerId, RECORD_VERSION, RecordError,
    StoredConsent, StoredSignals, Tombstone,
};
pub use retry::{
    Backoff, CasError, CasStep, NoBackoff, RetryPolicy, compare_and_swap, compare_and_swap_async,
};
pub use store::{
    AsyncIdentityStore, Generation, IdentityStore, Inline, StoreError, StoreFuture, Update,
    UpdateFn, UpdateStep, Updated, Versioned, Write, WriteMode,
};

/// The default tombstone time (`store.tombstone_secs`): 30 days.
pub const DEFAULT_TOMBSTONE_SECS: u64 = 30 * 86_400;

/// The identity settings of a deployment (`[store]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentitySettings {
    /// How long a withdrawn identity's tombstone is kept (`store.tombstone_secs`).
    pub tombstone_ttl: Duration,
    /// Compare-and-swap attempts and backoff (`store.cas_attempts`).
    pub retry: RetryPolicy,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            tombstone_ttl: Duration::from_secs(DEFAULT_TOMBSTONE_SECS),
            retry: RetryPolicy::default(),
        }
    }
}

/// What [`crate::pipeline::PagePipeline::run_with_identity`] needs for the lifecycle: the
/// store, how to wait between compare-and-swap attempts, and the settings.
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    /// The identity store ([`Inline`] for a synchronous one).
    pub store: &'a dyn AsyncIdentityStore,
    /// The host's wait between compare-and-swap attempts.
    pub backoff: &'a dyn Backoff,
    /// `[store]` settings.
    pub settings: &'a IdentitySettings,
}

/// The store key of an Edge Cookie value: `ec:` + the value (already checked to be a bounded
/// RFC 6265 cookie value).
#[must_use]
pub fn identity_key(edge_cookie: &str) -> String {
    let mut key = String::with_capacity(3 + edge_cookie.len());
    key.push_str("ec:");
    key.push_str(edge_cookie);
    key
}

/// What the lifecycle did with the store on one page request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum IdentityOutcome {
    /// The store was not used (no store given, or nothing to do: not permitted, bot, no cookie).
    NotUsed,
    /// A new record was created (add-only).
    Created,
    /// The record exists and its stored consent is current.
    Existing,
    /// The record's stored consent was replaced (its fingerprint changed).
    ConsentRefreshed,
    /// A tombstone was replaced by a new record through compare-and-swap (re-consent).
    Revived,
    /// The identity was withdrawn: its record was replaced by a tombstone.
    Withdrawn,
    /// A store operation failed; the host logs and counts it.
    Failed(Arc<IdentityError>),
}

impl IdentityOutcome {
    /// A short stable label for logs and metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotUsed => "not used",
            Self::Created => "created",
            Self::Existing => "existing",
            Self::ConsentRefreshed => "consent refreshed",
            Self::Revived => "revived",
            Self::Withdrawn => "withdrawn",
            Self::Failed(_) => "failed",
        }
    }
}
