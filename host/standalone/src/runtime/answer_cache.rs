//! Answers of pure providers, reused for identical inputs (`[runtime.answer_cache]`).
//!
//! A provider whose component imports nothing but the provider types (no random, no clock, no
//! WASI at all) is a pure function of its component, its settings and the evidence it declared:
//! calling it again with the same three can only give the same answer. Purity is decided from the
//! component's imports at load ([`is_pure`]), never from anything the provider says about itself.
//!
//! Invariants:
//! - One cache per loaded provider, so its component digest and settings are fixed for every
//!   entry; the key is the rest of the call's input: the declared evidence and, for the Edge
//!   Cookie kind, the request's current cookie. A reload that changes the component or a setting
//!   builds a new runtime and with it empty caches.
//! - Only successful answers are kept: a failure (a cut-off budget, a trap) is retried next time.
//! - The cache is consulted only from the call path, which the page pipeline reaches after its
//!   permission gate: a request that may not call a provider never gets its cached answer.
//! - Bounded: at most `max_entries` per provider (least recently used evicted), each for at most
//!   `ttl`.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse_core::provider::Evidence;
use lru::LruCache;

/// Settings of the answer cache (`[runtime.answer_cache]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerCacheLimits {
    /// `enabled`: whether pure providers' answers are cached at all.
    pub enabled: bool,
    /// `max_entries`: answers kept per provider.
    pub max_entries: NonZeroUsize,
    /// `ttl_secs`: how long an answer is reused.
    pub ttl: Duration,
}

impl Default for AnswerCacheLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            ttl: Duration::from_secs(300),
        }
    }
}

/// Whether a component with these imports is pure: it imports only the provider types, so nothing
/// it can observe besides its settings and evidence can change its answer.
#[must_use]
pub fn is_pure(imports: &[String]) -> bool {
    imports
        .iter()
        .all(|name| name.starts_with("gatehouse:provider/types@"))
}

/// The part of a call's input that varies between calls of one provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// The evidence the provider declared (and nothing else: the core collects only that).
    pub evidence: Evidence,
    /// The kind's extra input: the current Edge Cookie for `generate`.
    pub extra: Option<String>,
}

/// Hit and miss counts of one provider's cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerCounts {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that ran the provider (and may have filled the cache).
    pub misses: u64,
}

/// One provider's cached answers.
pub struct AnswerCache<V> {
    entries: Mutex<LruCache<AnswerKey, (Instant, V)>>,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<V: Clone> AnswerCache<V> {
    /// An empty cache with `limits`.
    #[must_use]
    pub fn new(limits: &AnswerCacheLimits) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(limits.max_entries)),
            ttl: limits.ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The answer stored for `key`, if fresh; counts a hit or a miss.
    pub fn get(&self, key: &AnswerKey) -> Option<V> {
        let found = self
            .entries
            .lock()
            .ok()
            .and_then(|mut entries| match entries.get(key) {
                Some((stored, value)) if stored.elapsed() < self.ttl => Some(value.clone()),
                Some(_) => {
                    entries.pop(key);
                    None
                }
                None => None,
            });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores a successful answer for `key`.
    pub fn insert(&self, key: AnswerKey, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.put(key, (Instant::now(), value));
        }
    }

    /// Hits and misses so far.
    pub fn counts(&self) -> AnswerCounts {
        AnswerCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ua: &str) -> AnswerKey {
        AnswerKey {
            evidence: Evidence {
                user_agent: Some(ua.into()),
                ..Evidence::default()
            },
            extra: None,
        }
    }

    #[test]
    fn an_answer_expires_after_its_ttl() {
        let cache = AnswerCache::new(&AnswerCacheLimits {
            ttl: Duration::ZERO,
            ..AnswerCacheLimits::default()
        });
        cache.insert(key("a"), 1);
        assert_eq!(cache.get(&key("a")), None);
        assert_eq!(cache.counts(), AnswerCounts { hits: 0, misses: 1 });
    }

    #[test]
    fn the_least_recently_used_answer_is_evicted_at_the_size_cap() {
        let cache = AnswerCache::new(&AnswerCacheLimits {
            max_entries: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            ..AnswerCacheLimits::default()
        });
        cache.insert(key("a"), 1);
        cache.insert(key("b"), 2);
        assert_eq!(cache.get(&key("a")), Some(1));
        cache.insert(key("c"), 3);
        assert_eq!(cache.get(&key("b")), None, "least recently used");
        assert_eq!(cache.get(&key("a")), Some(1));
        assert_eq!(cache.get(&key("c")), Some(3));
    }

    #[test]
    fn only_components_importing_nothing_but_the_provider_types_are_pure() {
        let types = "gatehouse:provider/types@0.2.0".to_owned();
        assert!(is_pure(&[]));
        assert!(is_pure(std::slice::from_ref(&types)));
        assert!(!is_pure(&[
            types.clone(),
            "wasi:random/random@0.2.6".into()
        ]));
        assert!(!is_pure(&[types, "wasi:clocks/wall-clock@0.2.6".into()]));
        assert!(!is_pure(&["wasi:cli/environment@0.2.0".into()]));
    }
}
