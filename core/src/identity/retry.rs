//! Bounded compare-and-swap with jittered exponential backoff.
//!
//! The core has no clock, sleep or random numbers, so waiting is a [`Backoff`] the host
//! implements in a few lines (wait a uniformly random duration up to the cap it is given: "full
//! jitter"). The core decides how long the cap is and when to give up, so every host retries
//! the same way.
//!
//! One implementation, [`compare_and_swap_async`], serves both worlds: the page pipeline awaits
//! it over an [`AsyncIdentityStore`]; [`compare_and_swap`] runs it to completion over a
//! synchronous [`IdentityStore`] ([`Inline`]).

use std::future::ready;
use std::time::Duration;

use super::store::{
    AsyncIdentityStore, IdentityStore, Inline, StoreError, StoreFuture, Versioned, WriteMode,
};
use crate::task::block_on;

/// How a host waits between compare-and-swap attempts: a future, so an async host waits on its
/// timer without holding a thread; a synchronous host sleeps and returns a ready future.
pub trait Backoff: Sync {
    /// Waits a uniformly random duration in `[0, up_to]` ("full jitter", so concurrent writers
    /// that collided spread out instead of colliding again).
    fn pause(&self, up_to: Duration) -> StoreFuture<'_, ()>;
}

/// A [`Backoff`] that does not wait: for tests and for hosts that cannot sleep.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBackoff;

impl Backoff for NoBackoff {
    fn pause(&self, _up_to: Duration) -> StoreFuture<'_, ()> {
        Box::pin(ready(()))
    }
}

/// How many compare-and-swap attempts are made and how long the waits between them may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, at least 1 (`store.cas_attempts`, default 8).
    pub max_attempts: u32,
    /// The cap of the first wait; doubled for each later one (default 2 ms).
    pub base_delay: Duration,
    /// The largest cap (default 50 ms).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// The wait cap before retry number `retry` (1 for the first retry): `base * 2^(retry-1)`,
    /// at most `max_delay`.
    #[must_use]
    pub fn delay_cap(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }
}

/// What a compare-and-swap step wants done with the entry it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasStep<T> {
    /// Write these bytes (add-only when nothing was read, else if the generation still matches),
    /// expiring after the duration; report `T` when it lands.
    Write(Vec<u8>, Option<Duration>, T),
    /// Leave the entry as it is and report `T`.
    Leave(T),
}

/// Why [`compare_and_swap`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CasError<E> {
    /// Every attempt lost a race with another writer.
    #[error(
        "compare-and-swap gave up after {attempts} attempts: other writers kept changing the entry"
    )]
    Exhausted {
        /// The attempts made (the policy's `max_attempts`).
        attempts: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The step refused the entry it read.
    #[error("compare-and-swap step refused the entry")]
    Step(#[source] E),
}

/// Reads `key`, lets `step` decide, and writes conditionally: add-only when the key was absent,
/// if-generation-matches when it was present. On a lost race it waits ([`Backoff::pause`] with
/// [`RetryPolicy::delay_cap`]) and starts again, at most `policy.max_attempts` times.
/// Synchronous: [`compare_and_swap_async`] over [`Inline`], with a [`Backoff`] that sleeps.
///
/// # Errors
/// [`CasError::Exhausted`] when every attempt lost a race, [`CasError::Store`] when the store
/// failed, [`CasError::Step`] when `step` refused what it read.
pub fn compare_and_swap<T, E>(
    store: &dyn IdentityStore,
    key: &str,
    policy: &RetryPolicy,
    backoff: &dyn Backoff,
    step: impl FnMut(Option<&Versioned>) -> Result<CasStep<T>, E>,
) -> Result<T, CasError<E>> {
    block_on(compare_and_swap_async(
        &Inline(store),
        key,
        policy,
        backoff,
        None,
        step,
    ))
}

/// [`compare_and_swap`] as a future over an [`AsyncIdentityStore`]; its first attempt uses
/// `first_read` when given (`Some(None)`: the key was read as absent) instead of reading again,
/// later attempts read.
///
/// # Errors
/// As [`compare_and_swap`].
pub async fn compare_and_swap_async<T, E>(
    store: &dyn AsyncIdentityStore,
    key: &str,
    policy: &RetryPolicy,
    backoff: &dyn Backoff,
    mut first_read: Option<Option<Versioned>>,
    mut step: impl FnMut(Option<&Versioned>) -> Result<CasStep<T>, E>,
) -> Result<T, CasError<E>> {
    let attempts = policy.max_attempts.max(1);
    for attempt in 1..=attempts {
        if attempt > 1 {
            backoff.pause(policy.delay_cap(attempt - 1)).await;
        }
        let current = match first_read.take() {
            Some(read) => read,
            None => store.get(key).await?,
        };
        let (value, ttl, report) = match step(current.as_ref()).map_err(CasError::Step)? {
            CasStep::Leave(report) => return Ok(report),
            CasStep::Write(value, ttl, report) => (value, ttl, report),
        };
        let mode = current.as_ref().map_or(WriteMode::AddOnly, |v| {
            WriteMode::IfGeneration(v.generation)
        });
        match store.insert(key, value, mode, ttl).await {
            Ok(_) => return Ok(report),
            Err(error) if error.is_conflict() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(CasError::Exhausted { attempts })
}
