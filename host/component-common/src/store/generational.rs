//! [`IdentityStore`] over a key-value store with its own generations, conditional writes and
//! per-entry TTL: Fastly's KV store (`host/fastly` implements [`GenerationalKv`] with the
//! `fastly` crate's `KVStore`).
//!
//! How the contract maps onto the platform:
//! - **Generations are the store's own** (Fastly's generation marker, a 64-bit value that changes
//!   on every write of the key): [`IdentityStore::get`] returns the one the lookup answered, and
//!   [`WriteMode::IfGeneration`] is the store's `if_generation_match`, checked by the store, so
//!   compare-and-swap is the platform's. Fastly documents generation `0` as "no entry" (its
//!   `add` is if-generation-match `0`), so `0` is never a live entry's generation:
//!   `IfGeneration(0)` is refused here without a call.
//! - **Add-only** is the store's `add` mode.
//! - **A write answers no generation**: the insert hostcall returns none, so after a successful
//!   write the entry is read back; when it holds our bytes its generation is returned, otherwise
//!   (another write overtook ours before the read) [`OVERTAKEN`] (`0`), which no
//!   compare-and-swap can match. The page pipeline never uses the returned generation; the read
//!   back costs one lookup per write.
//! - **Expiry**: the store's TTL removes an entry eventually (Fastly: "up to 24 hours after the
//!   TTL reaches 0"), so the expiry is also written in the entry's metadata
//!   (`expires=<unix seconds>`) and an entry past it is absent to [`IdentityStore::get`]. An
//!   add-only write refused because such an expired entry still exists replaces it by
//!   compare-and-swap over its generation.
//!
//! Keys are visitor identifiers: no error here includes one.

use std::time::Duration;

use gatehouse_core::identity::{Generation, IdentityStore, StoreError, Versioned, WriteMode};

use super::{platform_key, ttl_secs, unavailable};

/// The store name in errors (`identity store `fastly-kv` is unavailable`).
pub const STORE_NAME: &str = "fastly-kv";

/// The generation [`IdentityStore::insert`] answers when its write was overtaken before it could
/// be read back: `0`, which the store never gives a live entry and which
/// [`WriteMode::IfGeneration`] refuses.
pub const OVERTAKEN: u64 = 0;

/// One entry as the platform's lookup answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The entry's metadata, if any.
    pub metadata: Option<String>,
    /// The store's generation marker.
    pub generation: u64,
}

/// How [`GenerationalKv::insert`] treats an existing entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvInsertMode {
    /// Only when no entry exists (else [`KvError::PreconditionFailed`]).
    Add,
    /// Whatever exists (subject to `if_generation_match`).
    Overwrite,
}

/// A platform call's failure.
#[derive(Debug)]
pub enum KvError {
    /// The store refused the write's condition (`add` found an entry, or the generation did not
    /// match).
    PreconditionFailed,
    /// Anything else: the platform's message, without the key.
    Other(String),
}

/// What the platform offers (Fastly's KV store).
pub trait GenerationalKv: Send + Sync {
    /// The entry for `key`, `None` when there is none.
    ///
    /// # Errors
    /// [`KvError::Other`] when the store fails.
    fn lookup(&self, key: &str) -> Result<Option<KvEntry>, KvError>;

    /// Writes `value` for `key` as `mode` and `if_generation_match` allow, with `metadata` (empty:
    /// none) and a TTL in seconds (`None`: none).
    ///
    /// # Errors
    /// [`KvError::PreconditionFailed`] when the condition fails, [`KvError::Other`] otherwise.
    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: KvInsertMode,
        if_generation_match: Option<u64>,
        metadata: &str,
        ttl_secs: Option<u32>,
    ) -> Result<(), KvError>;

    /// Deletes the entry for `key`; an absent key is not an error.
    ///
    /// # Errors
    /// [`KvError::Other`] when the store fails.
    fn delete(&self, key: &str) -> Result<(), KvError>;
}

/// The identity store over a [`GenerationalKv`].
pub struct GenerationalStore<K> {
    kv: K,
    now: fn() -> u64,
}

impl<K: GenerationalKv> GenerationalStore<K> {
    /// The store over `kv`; `now` answers the wall clock in Unix seconds (for the expiry kept in
    /// the metadata).
    pub fn new(kv: K, now: fn() -> u64) -> Self {
        Self { kv, now }
    }

    fn lookup(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        self.kv.lookup(key).map_err(failed)
    }

    /// Whether `entry` is past the expiry in its metadata at `now`.
    fn expired(entry: &KvEntry, now: u64) -> Result<bool, StoreError> {
        match entry.metadata.as_deref() {
            None | Some("") => Ok(false),
            Some(metadata) => parse_expiry(metadata)
                .map(|expires| now >= expires)
                .ok_or_else(|| StoreError::Malformed {
                    store: STORE_NAME,
                    reason: "the entry's metadata is not `expires=<unix seconds>`".into(),
                }),
        }
    }
}

/// The metadata recording an expiry.
#[must_use]
pub fn expiry_metadata(expires: u64) -> String {
    format!("expires={expires}")
}

/// The expiry in [`expiry_metadata`]'s format, `None` for anything else.
#[must_use]
pub fn parse_expiry(metadata: &str) -> Option<u64> {
    let digits = metadata.strip_prefix("expires=")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn failed(error: KvError) -> StoreError {
    match error {
        KvError::PreconditionFailed => unavailable(
            STORE_NAME,
            "the KV store refused an unconditional operation",
        ),
        KvError::Other(message) => unavailable(STORE_NAME, message),
    }
}

impl<K: GenerationalKv> IdentityStore for GenerationalStore<K> {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let now = (self.now)();
        match self.lookup(&platform_key(key))? {
            Some(entry) if !Self::expired(&entry, now)? => Ok(Some(Versioned {
                value: entry.value,
                generation: Generation::new(entry.generation),
            })),
            _ => Ok(None),
        }
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Generation, StoreError> {
        let key = platform_key(key);
        let now = (self.now)();
        let ttl = ttl.map(ttl_secs);
        let metadata = ttl.map_or_else(String::new, |secs| {
            expiry_metadata(now.saturating_add(u64::from(secs)))
        });
        let (kv_mode, if_generation_match) = match mode {
            WriteMode::AddOnly => (KvInsertMode::Add, None),
            WriteMode::Overwrite => (KvInsertMode::Overwrite, None),
            WriteMode::IfGeneration(g) if g.get() == OVERTAKEN => {
                return Err(StoreError::GenerationMismatch);
            }
            WriteMode::IfGeneration(g) => (KvInsertMode::Overwrite, Some(g.get())),
        };
        match self
            .kv
            .insert(&key, value, kv_mode, if_generation_match, &metadata, ttl)
        {
            Ok(()) => {}
            Err(KvError::PreconditionFailed) => match mode {
                WriteMode::AddOnly => {
                    // An entry exists. One past its expiry that the store has not removed yet
                    // is absent to us: replace it, but only as long as it is that entry.
                    let Some(stale) = self.lookup(&key)? else {
                        return Err(StoreError::AlreadyExists);
                    };
                    if !Self::expired(&stale, now)? || stale.generation == OVERTAKEN {
                        return Err(StoreError::AlreadyExists);
                    }
                    match self.kv.insert(
                        &key,
                        value,
                        KvInsertMode::Overwrite,
                        Some(stale.generation),
                        &metadata,
                        ttl,
                    ) {
                        Ok(()) => {}
                        Err(KvError::PreconditionFailed) => return Err(StoreError::AlreadyExists),
                        Err(other) => return Err(failed(other)),
                    }
                }
                WriteMode::IfGeneration(_) => return Err(StoreError::GenerationMismatch),
                WriteMode::Overwrite => return Err(failed(KvError::PreconditionFailed)),
            },
            Err(other) => return Err(failed(other)),
        }
        // The insert answers no generation: read it back.
        Ok(Generation::new(match self.lookup(&key)? {
            Some(entry) if entry.value == value => entry.generation,
            _ => OVERTAKEN,
        }))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv.delete(&platform_key(key)).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    use crate::store::test_clock::{advance, now};

    /// Fastly's KV store as documented, with one difference a test can switch on: it keeps
    /// expired entries (Fastly removes them up to 24 hours late).
    #[derive(Default)]
    struct FakeFastly {
        entries: Mutex<HashMap<String, (KvEntry, Option<u64>)>>,
        next_generation: AtomicU64,
        keeps_expired: bool,
        down: bool,
    }

    impl GenerationalKv for FakeFastly {
        fn lookup(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
            if self.down {
                return Err(KvError::Other("Unexpected KV Store error".into()));
            }
            let entries = self.entries.lock().expect("lock");
            Ok(entries.get(key).and_then(|(entry, expires)| {
                let gone = !self.keeps_expired && expires.is_some_and(|e| now() >= e);
                (!gone).then(|| entry.clone())
            }))
        }

        fn insert(
            &self,
            key: &str,
            value: &[u8],
            mode: KvInsertMode,
            if_generation_match: Option<u64>,
            metadata: &str,
            ttl_secs: Option<u32>,
        ) -> Result<(), KvError> {
            if self.down {
                return Err(KvError::Other("Unexpected KV Store error".into()));
            }
            let mut entries = self.entries.lock().expect("lock");
            let current = entries
                .get(key)
                .filter(|(_, expires)| self.keeps_expired || expires.is_none_or(|e| now() < e));
            let current_generation = current.map_or(0, |(e, _)| e.generation);
            if mode == KvInsertMode::Add && current.is_some() {
                return Err(KvError::PreconditionFailed);
            }
            if if_generation_match.is_some_and(|g| g != current_generation) {
                return Err(KvError::PreconditionFailed);
            }
            let generation = self.next_generation.fetch_add(7, Ordering::SeqCst) + 1_000;
            entries.insert(
                key.to_owned(),
                (
                    KvEntry {
                        value: value.to_vec(),
                        metadata: (!metadata.is_empty()).then(|| metadata.to_owned()),
                        generation,
                    },
                    ttl_secs.map(|s| now() + u64::from(s)),
                ),
            );
            Ok(())
        }

        fn delete(&self, key: &str) -> Result<(), KvError> {
            self.entries.lock().expect("lock").remove(key);
            Ok(())
        }
    }

    fn store(kv: FakeFastly) -> GenerationalStore<FakeFastly> {
        GenerationalStore::new(kv, now)
    }

    #[test]
    fn generations_are_the_stores_own_and_compare_and_swap_is_checked_by_it() {
        let store = store(FakeFastly::default());
        let first = store
            .insert("ec:a", b"one", WriteMode::AddOnly, None)
            .expect("added");
        let read = store.get("ec:a").expect("get").expect("present");
        assert_eq!(read.value, b"one");
        assert_eq!(
            read.generation, first,
            "the write answers the stored generation"
        );
        assert!(matches!(
            store.insert("ec:a", b"two", WriteMode::AddOnly, None),
            Err(StoreError::AlreadyExists)
        ));
        let second = store
            .insert("ec:a", b"two", WriteMode::IfGeneration(first), None)
            .expect("swapped");
        assert_ne!(second, first);
        assert!(
            matches!(
                store.insert("ec:a", b"three", WriteMode::IfGeneration(first), None),
                Err(StoreError::GenerationMismatch)
            ),
            "a stale generation never wins"
        );
        store.delete("ec:a").expect("deleted");
        let again = store
            .insert("ec:a", b"four", WriteMode::AddOnly, None)
            .expect("added again");
        assert!(![first, second].contains(&again), "no ABA after a delete");
        assert!(matches!(
            store.insert(
                "ec:a",
                b"x",
                WriteMode::IfGeneration(Generation::new(0)),
                None
            ),
            Err(StoreError::GenerationMismatch)
        ));
    }

    #[test]
    fn compare_and_swap_on_an_absent_key_fails() {
        let store = store(FakeFastly::default());
        assert!(matches!(
            store.insert(
                "ec:gone",
                b"x",
                WriteMode::IfGeneration(Generation::new(1_000)),
                None
            ),
            Err(StoreError::GenerationMismatch)
        ));
        assert_eq!(store.get("ec:gone").expect("get"), None);
    }

    #[test]
    fn an_entry_past_its_expiry_is_absent_even_while_the_store_still_holds_it() {
        let store = store(FakeFastly {
            keeps_expired: true,
            ..FakeFastly::default()
        });
        store
            .insert(
                "ec:t",
                b"old",
                WriteMode::AddOnly,
                Some(Duration::from_secs(60)),
            )
            .expect("added");
        assert!(store.get("ec:t").expect("get").is_some());
        advance(61);
        assert_eq!(store.get("ec:t").expect("get"), None, "expired: absent");
        // Add-only succeeds over the expired entry (by compare-and-swap on its generation).
        store
            .insert(
                "ec:t",
                b"new",
                WriteMode::AddOnly,
                Some(Duration::from_secs(60)),
            )
            .expect("added over the expired entry");
        assert_eq!(store.get("ec:t").expect("get").expect("live").value, b"new");
    }

    #[test]
    fn the_ttl_and_the_expiry_reach_the_platform() {
        let kv = FakeFastly::default();
        let store = store(kv);
        store
            .insert(
                "ec:m",
                b"v",
                WriteMode::Overwrite,
                Some(Duration::from_millis(1500)),
            )
            .expect("written");
        let entries = store.kv.entries.lock().expect("lock");
        let (entry, expires) = entries.get("ec:m").expect("stored");
        assert_eq!(*expires, Some(now() + 2));
        assert_eq!(entry.metadata, Some(expiry_metadata(now() + 2)));
    }

    #[test]
    fn keys_reach_the_platform_escaped() {
        let store = store(FakeFastly::default());
        store
            .insert("ec:a#b", b"v", WriteMode::Overwrite, None)
            .expect("written");
        assert!(
            store
                .kv
                .entries
                .lock()
                .expect("lock")
                .contains_key("ec:a%23b")
        );
        assert!(store.get("ec:a#b").expect("get").is_some());
    }

    #[test]
    fn a_failing_store_is_unavailable_without_the_key_in_the_message() {
        let store = store(FakeFastly {
            down: true,
            ..FakeFastly::default()
        });
        for error in [
            store.get("ec:secret-visitor").expect_err("down"),
            store
                .insert("ec:secret-visitor", b"v", WriteMode::AddOnly, None)
                .expect_err("down"),
        ] {
            assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
            let chain = format!("{error}: {:?}", std::error::Error::source(&error));
            assert!(!chain.contains("secret-visitor"), "{chain}");
        }
    }

    #[test]
    fn metadata_that_is_not_an_expiry_is_refused() {
        assert_eq!(parse_expiry("expires=12"), Some(12));
        assert_eq!(parse_expiry("expires="), None);
        assert_eq!(parse_expiry("expires=-1"), None);
        assert_eq!(parse_expiry("other"), None);
        let store = store(FakeFastly::default());
        store
            .kv
            .insert("ec:odd", b"v", KvInsertMode::Overwrite, None, "hello", None)
            .expect("raw write");
        assert!(matches!(
            store.get("ec:odd"),
            Err(StoreError::Malformed { .. })
        ));
    }

    #[test]
    fn the_cores_compare_and_swap_runs_over_it() {
        use gatehouse_core::identity::{CasStep, NoBackoff, RetryPolicy, compare_and_swap};
        let store = store(FakeFastly::default());
        let outcome = compare_and_swap::<_, ()>(
            &store,
            "ec:life",
            &RetryPolicy::default(),
            &NoBackoff,
            |current| {
                Ok(match current {
                    None => CasStep::Write(b"created".to_vec(), None, "created"),
                    Some(_) => CasStep::Leave("existing"),
                })
            },
        )
        .expect("cas");
        assert_eq!(outcome, "created");
    }
}
