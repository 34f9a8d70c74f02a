//! An in-memory `IdentityStore` test double: a fixed clock for TTLs, injectable failures, and
//! simulated concurrent writers that change an entry between a read and a conditional write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_core::identity::{
    Backoff, Generation, IdentityRecord, IdentityStore, StoreError, StoreFuture, Versioned,
    WriteMode,
};

#[derive(Clone, Debug)]
pub struct Entry {
    pub value: Vec<u8>,
    pub generation: u64,
    /// Unix seconds after which the entry is invisible.
    pub expires_at: Option<u64>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    next_generation: u64,
    now: u64,
    unavailable: bool,
    /// Conditional writes that lose to a simulated concurrent writer before one may land.
    races: u32,
    writes: Vec<WriteMode>,
    reads: usize,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}

impl std::error::Error for Down {}

impl MemoryStore {
    pub fn at(now: u64) -> Self {
        let store = Self::default();
        store.lock().now = now;
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("store lock")
    }

    pub fn set_now(&self, now: u64) {
        self.lock().now = now;
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// The next `n` conditional writes find the entry changed by another writer.
    pub fn race(&self, n: u32) {
        self.lock().races = n;
    }

    /// How many `get` calls were made.
    pub fn reads(&self) -> usize {
        self.lock().reads
    }

    /// Every write attempted (including refused ones), in order.
    pub fn writes(&self) -> Vec<WriteMode> {
        self.lock().writes.clone()
    }

    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.lock().entries.get(key).cloned()
    }

    pub fn record(&self, key: &str) -> Option<IdentityRecord> {
        self.entry(key)
            .map(|e| IdentityRecord::decode(&e.value).expect("readable record"))
    }

    /// Puts raw bytes, bypassing the trait (for fixtures).
    pub fn put_raw(&self, key: &str, value: &[u8]) {
        let mut state = self.lock();
        state.next_generation += 1;
        let generation = state.next_generation;
        state.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                generation,
                expires_at: None,
            },
        );
    }

    pub fn put(&self, key: &str, record: &IdentityRecord) {
        self.put_raw(key, &record.encode());
    }

    pub fn len(&self) -> usize {
        let state = self.lock();
        let now = state.now;
        state
            .entries
            .values()
            .filter(|e| e.expires_at.is_none_or(|t| t > now))
            .count()
    }
}

fn live(entry: Option<&Entry>, now: u64) -> Option<&Entry> {
    entry.filter(|e| e.expires_at.is_none_or(|t| t > now))
}

impl IdentityStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let mut state = self.lock();
        state.reads += 1;
        if state.unavailable {
            return Err(StoreError::Unavailable {
                store: "memory",
                source: Box::new(Down),
            });
        }
        Ok(live(state.entries.get(key), state.now).map(|e| Versioned {
            value: e.value.clone(),
            generation: Generation::new(e.generation),
        }))
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Generation, StoreError> {
        let mut state = self.lock();
        state.writes.push(mode);
        if state.unavailable {
            return Err(StoreError::Unavailable {
                store: "memory",
                source: Box::new(Down),
            });
        }
        let now = state.now;
        if mode != WriteMode::Overwrite && state.races > 0 {
            // Another writer got there first: it rewrites the entry with a new generation (or
            // creates it).
            state.races -= 1;
            state.next_generation += 1;
            let generation = state.next_generation;
            let entry = state.entries.entry(key.to_owned()).or_insert(Entry {
                value: value.to_vec(),
                generation,
                expires_at: None,
            });
            entry.generation = generation;
        }
        let existing = live(state.entries.get(key), now).map(|e| e.generation);
        match (mode, existing) {
            (WriteMode::AddOnly, Some(_)) => return Err(StoreError::AlreadyExists),
            (WriteMode::IfGeneration(expected), found) if found != Some(expected.get()) => {
                return Err(StoreError::GenerationMismatch);
            }
            _ => {}
        }
        state.next_generation += 1;
        let generation = state.next_generation;
        state.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                generation,
                expires_at: ttl.map(|t| now + t.as_secs()),
            },
        );
        Ok(Generation::new(generation))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.unavailable {
            return Err(StoreError::Unavailable {
                store: "memory",
                source: Box::new(Down),
            });
        }
        state.entries.remove(key);
        Ok(())
    }
}

/// A backoff that records the caps it was asked to wait for.
#[derive(Default)]
pub struct RecordingBackoff(std::sync::Mutex<Vec<Duration>>);

impl RecordingBackoff {
    /// The caps asked for, in order.
    pub fn caps(&self) -> Vec<Duration> {
        self.0.lock().expect("backoff log").clone()
    }
}

impl Backoff for RecordingBackoff {
    fn pause(&self, up_to: Duration) -> StoreFuture<'_, ()> {
        self.0.lock().expect("backoff log").push(up_to);
        Box::pin(std::future::ready(()))
    }
}
