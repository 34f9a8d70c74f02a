//! The identity store contract: a small synchronous key-value trait with generations for
//! compare-and-swap and a per-entry time to live. Hosts implement it (embedded redb, Valkey,
//! Fastly KV, wasi:keyvalue); the core only calls it.
//!
//! Contract every backend keeps (the shared suite in `host/store` checks it):
//! - [`IdentityStore::get`] never returns an expired entry.
//! - Every successful write returns a [`Generation`] never returned before for that key, even
//!   after the key was deleted and written again, so a stale compare-and-swap can never succeed
//!   (no ABA).
//! - [`WriteMode::AddOnly`] succeeds for exactly one of any number of concurrent writers of an
//!   absent key; [`WriteMode::IfGeneration`] succeeds only while the entry still has that
//!   generation (an absent or expired entry fails with [`StoreError::GenerationMismatch`]).
//! - A write that returned `Ok` is durable as far as the backend can make it so.
//!
//! Keys are visitor identifiers, so no error message ever includes one.

use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, ready};
use std::pin::Pin;
use std::time::Duration;

/// The version of a stored entry. Opaque: only compared for equality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Generation(u64);

impl Generation {
    /// Wraps a backend's generation counter.
    #[must_use]
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The backend's counter value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An entry as read: its bytes and its generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The generation to pass to [`WriteMode::IfGeneration`].
    pub generation: Generation,
}

/// How [`IdentityStore::insert`] treats an existing entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Write only when no (unexpired) entry exists, else [`StoreError::AlreadyExists`].
    AddOnly,
    /// Write whatever exists.
    Overwrite,
    /// Write only when the entry exists with this generation, else
    /// [`StoreError::GenerationMismatch`].
    IfGeneration(Generation),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// [`WriteMode::AddOnly`] found an entry.
    #[error("insert refused: an entry already exists for the key")]
    AlreadyExists,
    /// [`WriteMode::IfGeneration`] found another generation, or no entry.
    #[error("compare-and-swap refused: the entry changed since it was read")]
    GenerationMismatch,
    /// The backend could not be reached or failed (I/O, timeout, connection refused).
    #[error("identity store `{store}` is unavailable")]
    Unavailable {
        /// The backend's name (`redb`, `valkey`, ...).
        store: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The backend holds bytes it cannot read (its own framing, not the record inside).
    #[error("identity store `{store}` holds a malformed entry: {reason}")]
    Malformed {
        /// The backend's name.
        store: &'static str,
        /// What is wrong, without the key or the value.
        reason: String,
    },
}

impl StoreError {
    /// Whether a compare-and-swap loop should read again and retry.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::AlreadyExists | Self::GenerationMismatch)
    }
}

/// One conditional write of [`IdentityStore::insert_many`].
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    /// The key.
    pub key: &'a str,
    /// The new value.
    pub value: &'a [u8],
    /// When the write may happen.
    pub mode: WriteMode,
    /// Expiry of the new value (`None`: never).
    pub ttl: Option<Duration>,
}

/// What an [`Update`]'s step decided about the entry it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateStep {
    /// Write `value` (when the key had no entry, only if it still has none; else only over the
    /// generation the step was given), expiring after `ttl`; `report` goes back to the caller.
    Write {
        /// The new value.
        value: Vec<u8>,
        /// Its expiry (`None`: never).
        ttl: Option<Duration>,
        /// The caller's own code for this outcome.
        report: u32,
    },
    /// Leave the entry as it is; `report` goes back to the caller.
    Leave {
        /// The caller's own code for this outcome.
        report: u32,
    },
}

/// The decision function of an [`Update`]: the current unexpired entry in, what to do out.
pub type UpdateFn = Box<dyn FnMut(Option<&Versioned>) -> UpdateStep + Send>;

/// One read-modify-write of [`IdentityStore::update_many`].
pub struct Update {
    /// The key.
    pub key: String,
    /// Decides from the entry read. It may be called more than once (a backend retrying a lost
    /// race calls it again with what it read then), so it must not have other effects.
    pub step: UpdateFn,
}

impl fmt::Debug for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the key: keys are visitor identifiers.
        f.debug_struct("Update").finish_non_exhaustive()
    }
}

/// What became of one [`Update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Updated {
    /// The step's `report`.
    pub report: u32,
    /// The new generation when the step wrote, `None` when it left the entry.
    pub written: Option<Generation>,
}

/// The identity store, synchronous: batch sync, the auction's id lookups and every backend's
/// contract suite use it from a blocking context. The page pipeline uses [`AsyncIdentityStore`]
/// instead; [`Inline`] adapts this trait to that one for backends that never wait (in-memory,
/// Fastly KV, wasi:keyvalue).
pub trait IdentityStore: Send + Sync {
    /// The unexpired entry for `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Malformed`].
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Writes `value` for `key` as `mode` allows, expiring after `ttl` (never when `None`).
    /// Returns the new generation.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] or [`StoreError::GenerationMismatch`] when `mode` refuses,
    /// [`StoreError::Unavailable`] when the backend fails.
    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Generation, StoreError>;

    /// Deletes the entry for `key`; deleting an absent key succeeds.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Applies `writes` in order, each exactly as [`IdentityStore::insert`] would (a later write
    /// sees the earlier ones: two writes to one key with the same expected generation are a
    /// conflict for the second), and returns one result per write, in order. A backend that can
    /// make many writes durable at once (one transaction, one `fsync`) overrides this; the default
    /// calls `insert` for each.
    fn insert_many(&self, writes: &[Write<'_>]) -> Vec<Result<Generation, StoreError>> {
        writes
            .iter()
            .map(|w| self.insert(w.key, w.value, w.mode, w.ttl))
            .collect()
    }

    /// Read-modify-write of many keys, in order: for each, reads the unexpired entry, calls the
    /// step and writes what it decided; one result each. A backend that can run the step inside
    /// its write transaction (redb) does so, and then no update ever loses a race. The default
    /// makes one attempt per update: read, decide, then a conditional write (add-only when the
    /// key was absent, else if the generation read still matches); a lost race is
    /// [`StoreError::AlreadyExists`] or [`StoreError::GenerationMismatch`], and the caller reads
    /// and decides again.
    fn update_many(&self, updates: Vec<Update>) -> Vec<Result<Updated, StoreError>> {
        updates
            .into_iter()
            .map(|mut update| {
                let current = self.get(&update.key)?;
                match (update.step)(current.as_ref()) {
                    UpdateStep::Leave { report } => Ok(Updated {
                        report,
                        written: None,
                    }),
                    UpdateStep::Write { value, ttl, report } => {
                        let mode = current.as_ref().map_or(WriteMode::AddOnly, |v| {
                            WriteMode::IfGeneration(v.generation)
                        });
                        let generation = self.insert(&update.key, &value, mode, ttl)?;
                        Ok(Updated {
                            report,
                            written: Some(generation),
                        })
                    }
                }
            })
            .collect()
    }
}

impl<S: IdentityStore + ?Sized> IdentityStore for &S {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        (**self).get(key)
    }
    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Generation, StoreError> {
        (**self).insert(key, value, mode, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key)
    }
    fn insert_many(&self, writes: &[Write<'_>]) -> Vec<Result<Generation, StoreError>> {
        (**self).insert_many(writes)
    }
    fn update_many(&self, updates: Vec<Update>) -> Vec<Result<Updated, StoreError>> {
        (**self).update_many(updates)
    }
}

/// A store operation's future. Boxed so [`AsyncIdentityStore`] stays usable as `dyn`; the box
/// costs one small allocation per store call, next to a store round trip.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The identity store as the page pipeline uses it: the two operations of the lifecycle
/// ([`crate::identity::lifecycle`]) as futures, so a host whose store waits (a durable commit, a
/// network round trip) awaits them and holds no thread meanwhile. Same contract as
/// [`IdentityStore::get`] and [`IdentityStore::insert`].
pub trait AsyncIdentityStore: Send + Sync {
    /// The unexpired entry for `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Versioned>, StoreError>>;

    /// Writes `value` for `key` as `mode` allows, expiring after `ttl` (never when `None`), and
    /// answers the new generation once the write is durable.
    fn insert<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, Result<Generation, StoreError>>;
}

/// An [`IdentityStore`] used as an [`AsyncIdentityStore`]: each call runs on the polling thread
/// and its future is ready at once. For stores that never wait (in-memory, Fastly KV,
/// wasi:keyvalue) and for synchronous callers; a host must not poll it on an async runtime's
/// worker when the store blocks.
#[derive(Clone, Copy)]
pub struct Inline<'s>(pub &'s dyn IdentityStore);

impl fmt::Debug for Inline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inline").finish_non_exhaustive()
    }
}

impl AsyncIdentityStore for Inline<'_> {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Versioned>, StoreError>> {
        Box::pin(ready(self.0.get(key)))
    }

    fn insert<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, Result<Generation, StoreError>> {
        Box::pin(ready(self.0.insert(key, &value, mode, ttl)))
    }
}
