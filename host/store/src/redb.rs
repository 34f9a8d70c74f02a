//! The embedded identity store: one [redb](https://docs.rs/redb) file at `store.path`.
//!
//! - **Created on first run**: [`RedbStore::open`] creates the file (not its directory) and the
//!   tables when they are missing.
//! - **Durable**: writes are committed with `Durability::Immediate` (redb's default, set
//!   explicitly): when `insert`, `insert_many` or `delete` returns `Ok`, the change is on disk
//!   (fsync) and survives a crash or restart.
//! - **Group commit**: every write goes to one writer thread, which takes all the writes
//!   waiting when it is free and applies them, in arrival order, in one write transaction with
//!   one commit. A commit costs an `fsync` (milliseconds on many disks) whatever it holds, so
//!   concurrent mints, and the mappings of a batch sync ([`IdentityStore::insert_many`]), share
//!   one instead of queueing for one each. Each caller still waits for the commit that holds
//!   its write before it returns, so an acknowledged write is durable. Reads do not go through
//!   the writer: they see the last commit.
//! - **Async callers hold no thread**: as an [`AsyncIdentityStore`] (the page pipeline's view),
//!   a write's future waits for the writer's answer on a oneshot channel, so a request waiting
//!   for its commit costs no thread and no hand-off; a read is answered at once, on the polling
//!   thread, from redb's in-memory page cache (a read that misses the cache reads the file with
//!   one `pread`; no read ever waits for the writer or an `fsync`).
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

use std::future::ready;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use gatehouse_core::identity::{
    AsyncIdentityStore, Generation, IdentityStore, StoreError, StoreFuture, Update, UpdateStep,
    Updated, Versioned, Write, WriteMode,
};
use gatehouse_core::task::block_on;
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use tokio::sync::oneshot;

use crate::{now_millis, ttl_millis};

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("identity");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_GENERATION: &str = "next_generation";
const HEADER: usize = 16;
const NAME: &str = "redb";
/// The most writes one group commit takes; more wait for the next one (bounds one
/// transaction's size and so the latency of the writers in it).
const MAX_GROUP_WRITES: usize = 4096;

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
    db: Arc<Database>,
    path: PathBuf,
    /// The group-commit writer; `None` only while dropping.
    writer: Option<Writer>,
}

/// The writer thread and the queue to it.
struct Writer {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

/// One caller's writes and where their results go.
struct Job {
    ops: Vec<Op>,
    reply: oneshot::Sender<Vec<Result<Updated, StoreError>>>,
}

/// One write.
enum Op {
    Insert {
        key: String,
        value: Vec<u8>,
        mode: WriteMode,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
    Update(Update),
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer after the jobs already queued; joining it releases
        // its handle on the database, so the file can be opened again at once.
        if let Some(Writer { jobs, thread }) = self.writer.take() {
            drop(jobs);
            let _ = thread.join();
        }
    }
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
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let thread = std::thread::Builder::new()
            .name("gatehouse-redb-writer".into())
            .spawn(move || write_loop(&writer_db, &queue))
            .map_err(|e| fail(redb::Error::Io(e)))?;
        Ok(Self {
            db,
            path,
            writer: Some(Writer { jobs, thread }),
        })
    }

    /// Queues `ops` for the writer and waits (parking the thread) for the commit that holds
    /// them.
    fn submit(&self, ops: Vec<Op>) -> Vec<Result<Updated, StoreError>> {
        block_on(self.submit_async(ops))
    }

    /// Queues `ops` for the writer; the future answers once the commit that holds them is
    /// durable. Queueing happens now, not at the first poll, so writes keep their call order.
    fn submit_async(
        &self,
        ops: Vec<Op>,
    ) -> impl Future<Output = Vec<Result<Updated, StoreError>>> + Send + 'static {
        let count = ops.len();
        let (reply, answer) = oneshot::channel();
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|w| w.jobs.send(Job { ops, reply }).is_ok());
        async move {
            match sent {
                true => answer
                    .await
                    .unwrap_or_else(|_| (0..count).map(|_| Err(writer_gone())).collect()),
                false => (0..count).map(|_| Err(writer_gone())).collect(),
            }
        }
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
        block_on(AsyncIdentityStore::insert(
            self,
            key,
            value.to_vec(),
            mode,
            ttl,
        ))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.submit(vec![Op::Delete {
            key: key.to_owned(),
        }])
        .pop()
        .unwrap_or_else(|| Err(writer_gone()))
        .map(|_| ())
    }

    fn insert_many(&self, writes: &[Write<'_>]) -> Vec<Result<Generation, StoreError>> {
        if writes.is_empty() {
            return Vec::new();
        }
        self.submit(
            writes
                .iter()
                .map(|w| Op::Insert {
                    key: w.key.to_owned(),
                    value: w.value.to_vec(),
                    mode: w.mode,
                    ttl: w.ttl,
                })
                .collect(),
        )
        .into_iter()
        .map(|r| r.map(|done| done.written.unwrap_or(Generation::new(0))))
        .collect()
    }

    /// Each step runs inside the writer's transaction, on the entry as the transaction sees
    /// it, so no update loses a race and the whole batch costs one commit.
    fn update_many(&self, updates: Vec<Update>) -> Vec<Result<Updated, StoreError>> {
        if updates.is_empty() {
            return Vec::new();
        }
        self.submit(updates.into_iter().map(Op::Update).collect())
    }
}

/// The page pipeline's view: reads at once, writes answered by the group commit without
/// holding the caller's thread.
impl AsyncIdentityStore for RedbStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Versioned>, StoreError>> {
        Box::pin(ready(IdentityStore::get(self, key)))
    }

    fn insert<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, Result<Generation, StoreError>> {
        let done = self.submit_async(vec![Op::Insert {
            key: key.to_owned(),
            value,
            mode,
            ttl,
        }]);
        Box::pin(async move {
            done.await
                .pop()
                .unwrap_or_else(|| Err(writer_gone()))
                .map(|done| done.written.unwrap_or(Generation::new(0)))
        })
    }
}

/// Writes one entry: generation, expiry (0 = never), the value.
fn put(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
    generation: u64,
    now: u64,
) -> Result<(), redb::Error> {
    let expires_at = ttl.map_or(0, |t| now.saturating_add(ttl_millis(t)));
    let mut bytes = Vec::with_capacity(HEADER + value.len());
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes.extend_from_slice(&expires_at.to_le_bytes());
    bytes.extend_from_slice(value);
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// The writer lost (it panicked): every write fails closed.
fn writer_gone() -> StoreError {
    StoreError::Unavailable {
        store: NAME,
        source: "the store's writer thread has stopped".into(),
    }
}

/// The writer thread: takes every job waiting (up to [`MAX_GROUP_WRITES`] writes), applies
/// them in one transaction, commits once, answers each job.
fn write_loop(db: &Database, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut writes = first.ops.len();
        let mut group = vec![first];
        while writes < MAX_GROUP_WRITES {
            let Ok(job) = queue.try_recv() else { break };
            writes += job.ops.len();
            group.push(job);
        }
        let results = match commit_group(db, &mut group) {
            Ok(results) => results,
            // Nothing of the group was written: every write in it fails.
            Err(error) => {
                let reason = error.to_string();
                group
                    .iter()
                    .map(|job| {
                        job.ops
                            .iter()
                            .map(|_| {
                                Err(StoreError::Unavailable {
                                    store: NAME,
                                    source: reason.clone().into(),
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        };
        for (job, results) in group.into_iter().zip(results) {
            // A caller that stopped waiting is no error of the store's.
            let _ = job.reply.send(results);
        }
    }
}

/// Applies every op of `group` in order in one write transaction and commits it: per op, its
/// result (a refused mode or a malformed entry fails that op alone); `Err` when the transaction
/// failed, in which case nothing was written.
fn commit_group(
    db: &Database,
    group: &mut [Job],
) -> Result<Vec<Vec<Result<Updated, StoreError>>>, redb::Error> {
    let now = now_millis();
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut table = txn.open_table(ENTRIES)?;
        let mut meta = txn.open_table(META)?;
        let first_generation = meta.get(NEXT_GENERATION)?.map_or(1, |g| g.value());
        let mut next_generation = first_generation;
        for job in group.iter_mut() {
            let mut job_results = Vec::with_capacity(job.ops.len());
            for op in &mut job.ops {
                let result = match op {
                    Op::Delete { key } => {
                        table.remove(key.as_str())?;
                        Ok(Updated {
                            report: 0,
                            written: None,
                        })
                    }
                    Op::Insert {
                        key,
                        value,
                        mode,
                        ttl,
                    } => {
                        let current = match table.get(key.as_str())? {
                            None => Ok(None),
                            Some(guard) => Entry::parse(guard.value())
                                .map(|entry| entry.is_live(now).then_some(entry.generation)),
                        };
                        match (*mode, current) {
                            (_, Err(malformed)) => Err(malformed),
                            (WriteMode::AddOnly, Ok(Some(_))) => Err(StoreError::AlreadyExists),
                            (WriteMode::IfGeneration(expected), Ok(found))
                                if found != Some(expected.get()) =>
                            {
                                Err(StoreError::GenerationMismatch)
                            }
                            _ => {
                                let generation = next_generation;
                                next_generation += 1;
                                put(&mut table, key, value, *ttl, generation, now)?;
                                Ok(Updated {
                                    report: 0,
                                    written: Some(Generation::new(generation)),
                                })
                            }
                        }
                    }
                    Op::Update(update) => {
                        let current = match table.get(update.key.as_str())? {
                            None => Ok(None),
                            Some(guard) => Entry::parse(guard.value()).map(|entry| {
                                entry.is_live(now).then(|| Versioned {
                                    value: entry.value.to_vec(),
                                    generation: Generation::new(entry.generation),
                                })
                            }),
                        };
                        match current {
                            Err(malformed) => Err(malformed),
                            Ok(current) => match (update.step)(current.as_ref()) {
                                UpdateStep::Leave { report } => Ok(Updated {
                                    report,
                                    written: None,
                                }),
                                UpdateStep::Write { value, ttl, report } => {
                                    let generation = next_generation;
                                    next_generation += 1;
                                    put(&mut table, &update.key, &value, ttl, generation, now)?;
                                    Ok(Updated {
                                        report,
                                        written: Some(Generation::new(generation)),
                                    })
                                }
                            },
                        }
                    }
                };
                job_results.push(result);
            }
            results.push(job_results);
        }
        if next_generation != first_generation {
            meta.insert(NEXT_GENERATION, next_generation)?;
        }
    }
    txn.commit()?;
    Ok(results)
}
