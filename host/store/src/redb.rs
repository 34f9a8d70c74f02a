//! The embedded identity store: one [redb](https://docs.rs/redb) file at `store.path`.
//!
//! - **Created on first run**: [`RedbStore::open`] creates the file (not its directory) and the
//!   tables when they are missing.
//! - **Durable**: every write is one redb write transaction committed with
//!   `Durability::Immediate` (redb's default, set explicitly): when `insert` or `delete` returns
//!   `Ok`, the change is on disk (fsync) and survives a crash or restart.
//! - **Compare-and-swap**: redb runs one write transaction at a time, and each write reads the
//!   entry, checks the [`WriteMode`] and writes inside that transaction, so checks and writes
//!   never interleave.
//! - **Generations** come from one counter stored in the file, incremented in the same
//!   transaction, so a generation is never reused, even for a key deleted and written again.
//! - **Expiry**: an entry past its TTL is invisible to [`RedbStore::get`] and to the write
//!   checks at once; its bytes are removed by [`RedbStore::purge_expired`], which the host calls
//!   in the background.
//!
//! Entry layout (the value of table `identity`): generation (u64 LE), expiry in Unix
//! milliseconds (u64 LE, 0 = never), then the record bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::identity::{Generation, IdentityStore, StoreError, Versioned, WriteMode};
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};

use crate::{now_millis, ttl_millis};

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("identity");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_GENERATION: &str = "next_generation";
const HEADER: usize = 16;
const NAME: &str = "redb";

/// Why [`RedbStore::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedbOpenError {
    /// The file could not be created or opened (missing directory, permissions, another process
    /// holds it, not a redb file).
    #[error("config key `store.path`: cannot open the identity store `{path}`")]
    Open {
        /// `store.path`.
        path: PathBuf,
        /// What failed.
        #[source]
        source: redb::Error,
    },
}

/// The embedded identity store.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable {
        store: NAME,
        source: Box::new(error.into()),
    }
}

struct Entry<'a> {
    generation: u64,
    expires_at: u64,
    value: &'a [u8],
}

impl<'a> Entry<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, StoreError> {
        if bytes.len() < HEADER {
            return Err(StoreError::Malformed {
                store: NAME,
                reason: format!("entry is {} bytes, shorter than its header", bytes.len()),
            });
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        Ok(Self {
            generation: word(0),
            expires_at: word(8),
            value: &bytes[HEADER..],
        })
    }

    fn is_live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating the file and its tables on first run.
    ///
    /// # Errors
    /// [`RedbOpenError::Open`] naming `store.path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RedbOpenError> {
        let path = path.as_ref().to_path_buf();
        let fail = |source: redb::Error| RedbOpenError::Open {
            path: path.clone(),
            source,
        };
        let db = Database::create(&path).map_err(|e| fail(e.into()))?;
        let txn = db.begin_write().map_err(|e| fail(e.into()))?;
        txn.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
        txn.open_table(META).map_err(|e| fail(e.into()))?;
        txn.commit().map_err(|e| fail(e.into()))?;
        Ok(Self { db, path })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes every expired entry; returns how many. Call it periodically, off the request
    /// path (it holds the write lock for one transaction).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be written.
    pub fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = now_millis();
        let mut txn = self.db.begin_write().map_err(unavailable)?;
        txn.set_durability(Durability::Immediate)
            .map_err(unavailable)?;
        let mut purged = 0;
        {
            let mut table = txn.open_table(ENTRIES).map_err(unavailable)?;
            table
                .retain(|_, bytes| {
                    // A malformed entry is kept: purging only ever removes what is known expired.
                    let expired = Entry::parse(bytes).is_ok_and(|e| !e.is_live(now));
                    purged += usize::from(expired);
                    !expired
                })
                .map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(purged)
    }

    /// How many entries the file holds, expired ones not yet purged included.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn stored_entries(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(ENTRIES).map_err(unavailable)?;
        table.len().map_err(unavailable)
    }
}

impl IdentityStore for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let now = now_millis();
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(ENTRIES).map_err(unavailable)?;
        let Some(guard) = table.get(key).map_err(unavailable)? else {
            return Ok(None);
        };
        let entry = Entry::parse(guard.value())?;
        Ok(entry.is_live(now).then(|| Versioned {
            value: entry.value.to_vec(),
            generation: Generation::new(entry.generation),
        }))
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Generation, StoreError> {
        let now = now_millis();
        let mut txn = self.db.begin_write().map_err(unavailable)?;
        txn.set_durability(Durability::Immediate)
            .map_err(unavailable)?;
        let generation = {
            let mut table = txn.open_table(ENTRIES).map_err(unavailable)?;
            let current = match table.get(key).map_err(unavailable)? {
                None => None,
                Some(guard) => {
                    let entry = Entry::parse(guard.value())?;
                    entry.is_live(now).then_some(entry.generation)
                }
            };
            match (mode, current) {
                (WriteMode::AddOnly, Some(_)) => return Err(StoreError::AlreadyExists),
                (WriteMode::IfGeneration(expected), found) if found != Some(expected.get()) => {
                    return Err(StoreError::GenerationMismatch);
                }
                _ => {}
            }
            let mut meta = txn.open_table(META).map_err(unavailable)?;
            let generation = meta
                .get(NEXT_GENERATION)
                .map_err(unavailable)?
                .map_or(1, |g| g.value());
            meta.insert(NEXT_GENERATION, generation + 1)
                .map_err(unavailable)?;
            let expires_at = ttl.map_or(0, |t| now.saturating_add(ttl_millis(t)));
            let mut bytes = Vec::with_capacity(HEADER + value.len());
            bytes.extend_from_slice(&generation.to_le_bytes());
            bytes.extend_from_slice(&expires_at.to_le_bytes());
            bytes.extend_from_slice(value);
            table.insert(key, bytes.as_slice()).map_err(unavailable)?;
            generation
        };
        // Dropping an uncommitted transaction on the error paths above aborts it.
        txn.commit().map_err(unavailable)?;
        Ok(Generation::new(generation))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(unavailable)?;
        txn.set_durability(Durability::Immediate)
            .map_err(unavailable)?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(unavailable)?;
            table.remove(key).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(())
    }
}
