//! The shared identity store: Valkey or Redis at `store.url` (`redis://`, `rediss://` needs a
//! TLS feature this build does not enable, `unix://`), so several Gatehouse nodes see one
//! identity graph.
//!
//! - **Compare-and-swap** is one Lua script per write (scripts run atomically on the server):
//!   it checks the [`WriteMode`] against the entry's generation and writes, so two nodes can
//!   never both win an add-only insert or a swap on the same generation.
//! - **Generations** come from one server-side counter (`INCR`), so a generation is never
//!   reused, even for a key deleted and written again. (The counter is a separate key, so this
//!   backend targets a single primary, not Redis Cluster.)
//! - **TTL** is native (`PEXPIRE`): expired entries are invisible and removed by the server.
//! - **Durability** is the server's: with `appendonly yes` and `appendfsync always` an
//!   acknowledged write survives a server crash; the default `everysec` may lose up to a second.
//! - **Connections**: a small pool of blocking connections, each with a connect timeout and a
//!   read/write timeout, so a stalled server costs a request at most those timeouts, never a
//!   hang. A connection that failed is dropped, not reused.
//!
//! Layout: entry `<prefix>k:<key>` is a hash `{g: generation, v: record bytes}`; the counter is
//! `<prefix>generation`.

use std::sync::Mutex;
use std::time::Duration;

use gatehouse_core::identity::{
    Generation, IdentityStore, StoreError, Update, UpdateStep, Updated, Versioned, WriteMode,
};
use redis::{Client, Connection, RedisError, Script};

use crate::ttl_millis;

const NAME: &str = "valkey";

const WRITE_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], 'g')
if ARGV[1] == 'add' and current then return -1 end
if ARGV[1] == 'cas' and current ~= ARGV[2] then return -2 end
local generation = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'g', generation, 'v', ARGV[3])
if ARGV[4] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return generation
";

/// Connection settings (`[store]` keys in the standalone host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValkeyOptions {
    /// Connecting to the server (`store.connect_timeout_ms`, default 1000 ms).
    pub connect_timeout: Duration,
    /// One command's read or write (`store.io_timeout_ms`, default 500 ms).
    pub io_timeout: Duration,
    /// Prepended to every key (`store.key_prefix`, default `gatehouse:`), so one server can hold
    /// several deployments.
    pub key_prefix: String,
    /// Idle connections kept for reuse (default 32).
    pub max_idle: usize,
}

impl Default for ValkeyOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(1000),
            io_timeout: Duration::from_millis(500),
            key_prefix: "gatehouse:".to_owned(),
            max_idle: 32,
        }
    }
}

/// Why [`ValkeyStore::connect`] failed. The URL is never part of the message: it may hold a
/// password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValkeyOpenError {
    /// `store.url` is not a Redis URL.
    #[error("config key `store.url`: not a valid `redis://` or `unix://` url")]
    InvalidUrl(#[source] RedisError),
    /// The server did not answer `PING`.
    #[error("config key `store.url`: the valkey server does not answer")]
    Connect(#[source] RedisError),
}

/// The Valkey/Redis identity store.
pub struct ValkeyStore {
    client: Client,
    options: ValkeyOptions,
    idle: Mutex<Vec<Connection>>,
    write: Script,
    counter_key: String,
}

impl std::fmt::Debug for ValkeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info holds the URL's password.
        f.debug_struct("ValkeyStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: RedisError) -> StoreError {
    StoreError::Unavailable {
        store: NAME,
        source: Box::new(error),
    }
}

/// The same failure for each of several operations (a failed pipeline fails all of them).
fn unavailable_each(error: &RedisError) -> StoreError {
    StoreError::Unavailable {
        store: NAME,
        source: error.to_string().into(),
    }
}

/// `HMGET key g v`: the generation and the value, each absent when the entry is.
type RawEntry = (Option<String>, Option<Vec<u8>>);

/// An entry from `HMGET key g v`.
fn versioned(
    generation: Option<String>,
    value: Option<Vec<u8>>,
) -> Result<Option<Versioned>, StoreError> {
    match (generation, value) {
        (None, None) => Ok(None),
        (Some(generation), Some(value)) => {
            let generation = generation.parse().map_err(|_| StoreError::Malformed {
                store: NAME,
                reason: "entry generation is not an integer".to_owned(),
            })?;
            Ok(Some(Versioned {
                value,
                generation: Generation::new(generation),
            }))
        }
        _ => Err(StoreError::Malformed {
            store: NAME,
            reason: "entry lacks its generation or its value".to_owned(),
        }),
    }
}

/// The write script's mode and expected-generation arguments.
fn mode_args(mode: WriteMode) -> (&'static str, String) {
    match mode {
        WriteMode::AddOnly => ("add", String::new()),
        WriteMode::Overwrite => ("put", String::new()),
        WriteMode::IfGeneration(g) => ("cas", g.get().to_string()),
    }
}

/// The write script's answer: the new generation, or why the mode refused.
fn written(answer: i64) -> Result<Generation, StoreError> {
    match answer {
        -1 => Err(StoreError::AlreadyExists),
        -2 => Err(StoreError::GenerationMismatch),
        generation => {
            u64::try_from(generation)
                .map(Generation::new)
                .map_err(|_| StoreError::Malformed {
                    store: NAME,
                    reason: format!("write script answered `{generation}`"),
                })
        }
    }
}

impl ValkeyStore {
    /// Connects to `url` and checks the server answers.
    ///
    /// # Errors
    /// [`ValkeyOpenError`], naming `store.url`.
    pub fn connect(url: &str, options: ValkeyOptions) -> Result<Self, ValkeyOpenError> {
        let client = Client::open(url).map_err(ValkeyOpenError::InvalidUrl)?;
        let store = Self {
            client,
            counter_key: format!("{}generation", options.key_prefix),
            options,
            idle: Mutex::new(Vec::new()),
            write: Script::new(WRITE_SCRIPT),
        };
        store
            .with_connection(|con| redis::cmd("PING").query::<String>(con))
            .map_err(ValkeyOpenError::Connect)?;
        Ok(store)
    }

    fn entry_key(&self, key: &str) -> String {
        let mut out = String::with_capacity(self.options.key_prefix.len() + 2 + key.len());
        out.push_str(&self.options.key_prefix);
        out.push_str("k:");
        out.push_str(key);
        out
    }

    /// Runs `f` on a pooled connection (a new one when none is idle); a connection on which
    /// `f` failed is dropped.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let pooled = self.idle.lock().map_or(None, |mut idle| idle.pop());
        let mut con = match pooled {
            Some(con) => con,
            None => {
                let con = self
                    .client
                    .get_connection_with_timeout(self.options.connect_timeout)?;
                con.set_read_timeout(Some(self.options.io_timeout))?;
                con.set_write_timeout(Some(self.options.io_timeout))?;
                con
            }
        };
        let result = f(&mut con)?;
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.options.max_idle
        {
            idle.push(con);
        }
        Ok(result)
    }
}

impl IdentityStore for ValkeyStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let entry = self.entry_key(key);
        let (generation, value): RawEntry = self
            .with_connection(|con| redis::cmd("HMGET").arg(&entry).arg("g").arg("v").query(con))
            .map_err(unavailable)?;
        versioned(generation, value)
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Generation, StoreError> {
        let entry = self.entry_key(key);
        let (mode_arg, expected) = mode_args(mode);
        let ttl = ttl.map_or(0, ttl_millis);
        let answer: i64 = self
            .with_connection(|con| {
                self.write
                    .key(&entry)
                    .key(&self.counter_key)
                    .arg(mode_arg)
                    .arg(&expected)
                    .arg(value)
                    .arg(ttl)
                    .invoke(con)
            })
            .map_err(unavailable)?;
        written(answer)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let entry = self.entry_key(key);
        self.with_connection(|con| redis::cmd("DEL").arg(&entry).query::<i64>(con))
            .map_err(unavailable)?;
        Ok(())
    }

    /// Two round trips per distinct key set: one pipeline reads every entry, the steps decide,
    /// one pipeline runs the conditional writes (the write script, loaded first on the same
    /// connection). A key that appears again in the call is updated after the earlier ones
    /// landed (a next pair of round trips), so it sees them. Each write is atomic on the server;
    /// one that lost a race to another writer is [`StoreError::GenerationMismatch`] or
    /// [`StoreError::AlreadyExists`], as with `insert`.
    fn update_many(&self, updates: Vec<Update>) -> Vec<Result<Updated, StoreError>> {
        let mut seen = std::collections::HashSet::new();
        let (mut first, mut again) = (Vec::new(), Vec::new());
        for (i, update) in updates.into_iter().enumerate() {
            if seen.insert(update.key.clone()) {
                first.push((i, update));
            } else {
                again.push((i, update));
            }
        }
        let (first_at, first): (Vec<usize>, Vec<Update>) = first.into_iter().unzip();
        let mut results: Vec<(usize, Result<Updated, StoreError>)> = first_at
            .into_iter()
            .zip(self.update_distinct(first))
            .collect();
        if !again.is_empty() {
            let (again_at, again): (Vec<usize>, Vec<Update>) = again.into_iter().unzip();
            results.extend(again_at.into_iter().zip(self.update_many(again)));
        }
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }
}

impl ValkeyStore {
    /// [`IdentityStore::update_many`] for updates of distinct keys: two pipelined round trips.
    fn update_distinct(&self, updates: Vec<Update>) -> Vec<Result<Updated, StoreError>> {
        if updates.is_empty() {
            return Vec::new();
        }
        let entries: Vec<String> = updates.iter().map(|u| self.entry_key(&u.key)).collect();
        let read: Result<Vec<RawEntry>, RedisError> = self.with_connection(|con| {
            let mut pipe = redis::pipe();
            for entry in &entries {
                pipe.cmd("HMGET").arg(entry).arg("g").arg("v");
            }
            pipe.query(con)
        });
        let read = match read {
            Ok(read) if read.len() == updates.len() => read,
            Ok(_) => {
                let error = RedisError::from((redis::ErrorKind::Io, "short pipeline answer"));
                return updates
                    .iter()
                    .map(|_| Err(unavailable_each(&error)))
                    .collect();
            }
            Err(error) => {
                return updates
                    .iter()
                    .map(|_| Err(unavailable_each(&error)))
                    .collect();
            }
        };
        let mut results: Vec<Option<Result<Updated, StoreError>>> =
            (0..updates.len()).map(|_| None).collect();
        // (index, mode, expected generation, value, ttl in ms, report)
        let mut writes = Vec::new();
        for (i, (mut update, (generation, value))) in updates.into_iter().zip(read).enumerate() {
            let current = match versioned(generation, value) {
                Ok(current) => current,
                Err(error) => {
                    results[i] = Some(Err(error));
                    continue;
                }
            };
            match (update.step)(current.as_ref()) {
                UpdateStep::Leave { report } => {
                    results[i] = Some(Ok(Updated {
                        report,
                        written: None,
                    }));
                }
                UpdateStep::Write { value, ttl, report } => {
                    let mode = current.as_ref().map_or(WriteMode::AddOnly, |v| {
                        WriteMode::IfGeneration(v.generation)
                    });
                    let (mode, expected) = mode_args(mode);
                    writes.push((i, mode, expected, value, ttl.map_or(0, ttl_millis), report));
                }
            }
        }
        if !writes.is_empty() {
            let answers: Result<Vec<i64>, RedisError> = self.with_connection(|con| {
                let hash: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(WRITE_SCRIPT)
                    .query(con)?;
                let mut pipe = redis::pipe();
                for (i, mode, expected, value, ttl, _) in &writes {
                    pipe.cmd("EVALSHA")
                        .arg(&hash)
                        .arg(2)
                        .arg(&entries[*i])
                        .arg(&self.counter_key)
                        .arg(*mode)
                        .arg(expected)
                        .arg(value)
                        .arg(*ttl);
                }
                pipe.query(con)
            });
            match answers {
                Ok(answers) if answers.len() == writes.len() => {
                    for ((i, .., report), answer) in writes.into_iter().zip(answers) {
                        results[i] = Some(written(answer).map(|g| Updated {
                            report,
                            written: Some(g),
                        }));
                    }
                }
                Ok(_) => {
                    let error = RedisError::from((redis::ErrorKind::Io, "short pipeline answer"));
                    for (i, ..) in writes {
                        results[i] = Some(Err(unavailable_each(&error)));
                    }
                }
                Err(error) => {
                    for (i, ..) in writes {
                        results[i] = Some(Err(unavailable_each(&error)));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Unavailable {
                        store: NAME,
                        source: "no answer for the update".into(),
                    })
                })
            })
            .collect()
    }
}
