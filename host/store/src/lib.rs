//! Identity store backends for Gatehouse hosts, each behind `gatehouse-core`'s
//! [`IdentityStore`](gatehouse_core::identity::IdentityStore):
//!
//! - [`redb`](crate::redb): the standalone default, an embedded file (`store.path`).
//! - [`valkey`]: Valkey or Redis (`store.url`), so several Gatehouse nodes share one identity
//!   graph.
//!
//! Plus [`JitteredBackoff`], the compare-and-swap wait every native host uses.
//!
//! Every call blocks the calling thread (disk or network): hosts call the page pipeline, and so
//! these stores, from a blocking pool, never from an async runtime's workers. This crate never
//! logs; in particular keys (visitor identifiers) and `store.url` (which may hold a password)
//! appear in no error message.

pub mod redb;
pub mod valkey;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_core::identity::Backoff;
use rand::Rng as _;

pub use crate::redb::{RedbOpenError, RedbStore};
pub use crate::valkey::{ValkeyOpenError, ValkeyOptions, ValkeyStore};

/// Sleeps the calling thread a uniformly random duration up to the cap ("full jitter").
#[derive(Clone, Copy, Debug, Default)]
pub struct JitteredBackoff;

impl Backoff for JitteredBackoff {
    fn pause(&mut self, up_to: Duration) {
        let cap = u64::try_from(up_to.as_micros()).unwrap_or(u64::MAX);
        if cap > 0 {
            std::thread::sleep(Duration::from_micros(rand::rng().random_range(0..=cap)));
        }
    }
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
