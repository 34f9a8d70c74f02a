//! Identity store backends for Gatehouse hosts, each behind `gatehouse-core`'s
//! [`IdentityStore`](gatehouse_core::identity::IdentityStore):
//!
//! - [`redb`](crate::redb): the standalone default, an embedded file (`store.path`).
//! - [`valkey`]: Valkey or Redis (`store.url`), so several Gatehouse nodes share one identity
//!   graph.
//!
//! Plus [`JitteredBackoff`], the compare-and-swap wait every native host uses.
//!
//! Through [`IdentityStore`](gatehouse_core::identity::IdentityStore) every call blocks the
//! calling thread (disk or network): synchronous callers use it from a blocking pool, never
//! from an async runtime's workers. [`RedbStore`] is also an
//! [`AsyncIdentityStore`](gatehouse_core::identity::AsyncIdentityStore) whose writes wait
//! without holding a thread, which is how the standalone host's page pipeline uses it. This crate never
//! logs; in particular keys (visitor identifiers) and `store.url` (which may hold a password)
//! appear in no error message.

pub mod redb;
pub mod valkey;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_core::identity::{Backoff, StoreFuture};
use rand::Rng as _;

pub use crate::redb::{RedbOpenError, RedbStore};
pub use crate::valkey::{ValkeyOpenError, ValkeyOptions, ValkeyStore};

/// Sleeps the calling thread a uniformly random duration up to the cap ("full jitter"), then
/// answers a ready future: for synchronous callers (batch sync on a blocking pool, tests). An
/// async host waits on its own timer instead ([`jittered`] gives the duration).
#[derive(Clone, Copy, Debug, Default)]
pub struct JitteredBackoff;

impl Backoff for JitteredBackoff {
    fn pause(&self, up_to: Duration) -> StoreFuture<'_, ()> {
        let wait = jittered(up_to);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        Box::pin(std::future::ready(()))
    }
}

/// A uniformly random duration in `[0, up_to]`, in whole microseconds ("full jitter").
#[must_use]
pub fn jittered(up_to: Duration) -> Duration {
    let cap = u64::try_from(up_to.as_micros()).unwrap_or(u64::MAX);
    if cap == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(rand::rng().random_range(0..=cap))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A TTL in whole milliseconds, at least 1 (a zero TTL expires at once, never "no TTL").
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
