//! [`IdentityStore`] over a plain key-value bucket: `wasi:keyvalue/store@0.2.0-draft` (the version
//! `wasmtime serve -Skeyvalue` of wasmtime 48 implements), bound by `host/wasi-http`.
//!
//! That draft has `get`, `set`, `delete` and `exists` on a bucket, and in `atomics` only
//! `increment`; no TTL, no generations and **no compare-and-swap** (a `cas` resource arrived with
//! `0.2.0-draft2`, which wasmtime 48 does not implement). So:
//!
//! - **The envelope**: every value is stored as [`ENVELOPE_MAGIC`], a generation (u64, big
//!   endian), the expiry (Unix seconds, big endian, `0` = never) and then the core's bytes. An
//!   entry past its expiry is absent ([`IdentityStore::get`] returns `None`, add-only writes over
//!   it). Bytes without the envelope are refused as malformed, never used.
//! - **Generations** come from `atomics.increment` of one counter key
//!   ([`GENERATION_COUNTER_KEY`]), which the draft defines as atomic: every write takes the next
//!   value, so a generation is never reused for any key, even after a delete (no ABA).
//! - **Conditional writes are a read, then a write.** `AddOnly` and `IfGeneration` read the
//!   entry, check, and `set`. Two writers racing between one's read and its write can both
//!   succeed, the last `set` winning: "exactly one of concurrent add-only writers wins" and
//!   lost-update-free compare-and-swap, which the other backends guarantee, hold here only for
//!   writers that do not overlap. That is this draft's limit, not a choice; a platform offering
//!   `wasi:keyvalue@0.2.0-draft2`'s `cas` could close it.
//!
//! What persists is the platform's: under `wasmtime serve -Skeyvalue` the store is in memory,
//! created for each request and emptied after it (each `open` even starts from the `-Skeyvalue-
//! in-memory-data` preset), so an identity written on one request is gone on the next; the host
//! opens the bucket once per request so the request's own reads see its writes.
//!
//! Keys are visitor identifiers: no error here includes one.

use std::time::Duration;

use gatehouse_core::identity::{Generation, IdentityStore, StoreError, Versioned, WriteMode};

use super::{platform_key, ttl_secs, unavailable};

/// The store name in errors.
pub const STORE_NAME: &str = "wasi-keyvalue";

/// The first bytes of every stored value: `GHKV` and the envelope version `1`.
pub const ENVELOPE_MAGIC: &[u8; 5] = b"GHKV\x01";

/// The key of the generation counter, outside the `ec:` keys' namespace.
pub const GENERATION_COUNTER_KEY: &str = "gatehouse:generation";

const HEADER_LEN: usize = ENVELOPE_MAGIC.len() + 8 + 8;

/// A value with its generation and expiry, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The write's generation.
    pub generation: u64,
    /// Unix seconds after which the entry is absent; `None`: never.
    pub expires: Option<u64>,
    /// The core's bytes.
    pub value: Vec<u8>,
}

impl Envelope {
    /// The stored bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.value.len());
        out.extend_from_slice(ENVELOPE_MAGIC);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.expires.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    /// Reads stored bytes; `None` when they are not an envelope of this version.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(ENVELOPE_MAGIC.as_slice())?;
        let (generation, rest) = rest.split_first_chunk::<8>()?;
        let (expires, value) = rest.split_first_chunk::<8>()?;
        let expires = u64::from_be_bytes(*expires);
        Some(Self {
            generation: u64::from_be_bytes(*generation),
            expires: (expires != 0).then_some(expires),
            value: value.to_vec(),
        })
    }

    /// Whether the entry is past its expiry at `now`.
    #[must_use]
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}

/// What the platform offers: one open bucket.
pub trait KeyValueBucket: Send + Sync {
    /// The bytes for `key`.
    ///
    /// # Errors
    /// The platform's message, without the key.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;

    /// Stores `value` for `key`.
    ///
    /// # Errors
    /// The platform's message, without the key.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String>;

    /// Deletes `key` (absent: nothing to do).
    ///
    /// # Errors
    /// The platform's message, without the key.
    fn delete(&self, key: &str) -> Result<(), String>;

    /// Atomically adds `delta` to the counter at `key` (created at `delta`) and answers the new
    /// value.
    ///
    /// # Errors
    /// The platform's message, without the key.
    fn increment(&self, key: &str, delta: u64) -> Result<u64, String>;
}

/// The identity store over a [`KeyValueBucket`].
pub struct KeyValueStore<B> {
    bucket: B,
    now: fn() -> u64,
}

impl<B: KeyValueBucket> KeyValueStore<B> {
    /// The store over `bucket`; `now` answers the wall clock in Unix seconds.
    pub fn new(bucket: B, now: fn() -> u64) -> Self {
        Self { bucket, now }
    }

    /// The unexpired envelope at the platform key `key`.
    fn read(&self, key: &str, now: u64) -> Result<Option<Envelope>, StoreError> {
        let Some(bytes) = self
            .bucket
            .get(key)
            .map_err(|e| unavailable(STORE_NAME, e))?
        else {
            return Ok(None);
        };
        let envelope = Envelope::decode(&bytes).ok_or_else(|| StoreError::Malformed {
            store: STORE_NAME,
            reason: "the value is not in Gatehouse's envelope".into(),
        })?;
        Ok((!envelope.expired(now)).then_some(envelope))
    }
}

impl<B: KeyValueBucket> IdentityStore for KeyValueStore<B> {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let now = (self.now)();
        Ok(self
            .read(&platform_key(key), now)?
            .map(|envelope| Versioned {
                value: envelope.value,
                generation: Generation::new(envelope.generation),
            }))
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
        // Not atomic with the write below: see the module documentation.
        match mode {
            WriteMode::Overwrite => {}
            WriteMode::AddOnly => {
                if self.read(&key, now)?.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
            }
            WriteMode::IfGeneration(expected) => {
                let current = self.read(&key, now)?;
                if current.is_none_or(|c| c.generation != expected.get()) {
                    return Err(StoreError::GenerationMismatch);
                }
            }
        }
        let generation = self
            .bucket
            .increment(GENERATION_COUNTER_KEY, 1)
            .map_err(|e| unavailable(STORE_NAME, e))?;
        let envelope = Envelope {
            generation,
            expires: ttl.map(|ttl| now.saturating_add(u64::from(ttl_secs(ttl)))),
            value: value.to_vec(),
        };
        self.bucket
            .set(&key, &envelope.encode())
            .map_err(|e| unavailable(STORE_NAME, e))?;
        Ok(Generation::new(generation))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket
            .delete(&platform_key(key))
            .map_err(|e| unavailable(STORE_NAME, e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    use crate::store::test_clock::{advance, now};

    /// wasmtime's in-memory bucket: a map, `increment` over a decimal string.
    #[derive(Default)]
    struct MemoryBucket {
        data: Mutex<HashMap<String, Vec<u8>>>,
        down: bool,
    }

    impl KeyValueBucket for MemoryBucket {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            if self.down {
                return Err("no such store".into());
            }
            Ok(self.data.lock().expect("lock").get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            if self.down {
                return Err("no such store".into());
            }
            self.data
                .lock()
                .expect("lock")
                .insert(key.to_owned(), value.to_vec());
            Ok(())
        }
        fn delete(&self, key: &str) -> Result<(), String> {
            self.data.lock().expect("lock").remove(key);
            Ok(())
        }
        fn increment(&self, key: &str, delta: u64) -> Result<u64, String> {
            let mut data = self.data.lock().expect("lock");
            let current: u64 = data
                .get(key)
                .map(|v| {
                    String::from_utf8_lossy(v)
                        .parse()
                        .map_err(|_| "not a number")
                })
                .transpose()?
                .unwrap_or(0);
            let next = current + delta;
            data.insert(key.to_owned(), next.to_string().into_bytes());
            Ok(next)
        }
    }

    fn store() -> KeyValueStore<MemoryBucket> {
        KeyValueStore::new(MemoryBucket::default(), now)
    }

    #[test]
    fn the_envelope_round_trips_and_refuses_other_bytes() {
        for envelope in [
            Envelope {
                generation: 7,
                expires: Some(1_700_000_060),
                value: br#"{"v":1}"#.to_vec(),
            },
            Envelope {
                generation: u64::MAX,
                expires: None,
                value: Vec::new(),
            },
        ] {
            let bytes = envelope.encode();
            assert!(bytes.starts_with(b"GHKV\x01"));
            assert_eq!(Envelope::decode(&bytes), Some(envelope));
        }
        assert_eq!(Envelope::decode(br#"{"v":1}"#), None, "a bare record");
        assert_eq!(
            Envelope::decode(b"GHKV\x02aaaaaaaabbbbbbbb"),
            None,
            "another version"
        );
        assert_eq!(Envelope::decode(b"GHKV\x01short"), None, "truncated");
    }

    #[test]
    fn write_modes_and_generations_follow_the_contract_for_writers_that_do_not_overlap() {
        let store = store();
        let first = store
            .insert("ec:a", b"one", WriteMode::AddOnly, None)
            .expect("added");
        assert!(matches!(
            store.insert("ec:a", b"x", WriteMode::AddOnly, None),
            Err(StoreError::AlreadyExists)
        ));
        let read = store.get("ec:a").expect("get").expect("present");
        assert_eq!(
            (read.value.as_slice(), read.generation),
            (&b"one"[..], first)
        );
        let second = store
            .insert("ec:a", b"two", WriteMode::IfGeneration(first), None)
            .expect("swapped");
        assert!(matches!(
            store.insert("ec:a", b"x", WriteMode::IfGeneration(first), None),
            Err(StoreError::GenerationMismatch)
        ));
        store.delete("ec:a").expect("deleted");
        assert!(
            matches!(
                store.insert("ec:a", b"x", WriteMode::IfGeneration(second), None),
                Err(StoreError::GenerationMismatch)
            ),
            "compare-and-swap on an absent key fails"
        );
        let third = store
            .insert("ec:a", b"three", WriteMode::AddOnly, None)
            .expect("added again");
        assert!(![first, second].contains(&third), "no ABA after a delete");
        let fourth = store
            .insert("ec:a", b"four", WriteMode::Overwrite, None)
            .expect("overwritten");
        assert_ne!(fourth, third);
    }

    #[test]
    fn an_expired_entry_is_absent_and_can_be_added_over() {
        let store = store();
        store
            .insert(
                "ec:t",
                b"old",
                WriteMode::AddOnly,
                Some(Duration::from_secs(30)),
            )
            .expect("added");
        assert!(store.get("ec:t").expect("get").is_some());
        advance(30);
        assert_eq!(store.get("ec:t").expect("get"), None);
        store
            .insert("ec:t", b"new", WriteMode::AddOnly, None)
            .expect("added over the expired entry");
        assert_eq!(store.get("ec:t").expect("get").expect("live").value, b"new");
    }

    #[test]
    fn bytes_without_the_envelope_are_malformed_and_keys_are_escaped() {
        let store = store();
        store
            .bucket
            .set("ec:raw", br#"{"v":1}"#)
            .expect("raw write");
        assert!(matches!(
            store.get("ec:raw"),
            Err(StoreError::Malformed { .. })
        ));
        store
            .insert("ec:a|b", b"v", WriteMode::Overwrite, None)
            .expect("written");
        assert!(
            store
                .bucket
                .data
                .lock()
                .expect("lock")
                .contains_key("ec:a%7Cb")
        );
    }

    #[test]
    fn a_failing_bucket_is_unavailable_without_the_key_in_the_message() {
        let store = KeyValueStore::new(
            MemoryBucket {
                down: true,
                ..MemoryBucket::default()
            },
            now,
        );
        let error = store
            .insert("ec:secret-visitor", b"v", WriteMode::AddOnly, None)
            .expect_err("down");
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
        assert!(!format!("{error:?}").contains("secret-visitor"));
    }
}
