//! The identity store on Fastly: the `fastly` crate's [`KVStore`] as the
//! [`GenerationalKv`] the shared [`GenerationalStore`] runs over (generations, `add` and
//! `if_generation_match` are the KV store's own; see that module for how the contract maps).
//!
//! The store is opened on its first use in a request, so a request that does not touch the store
//! (not permitted, a bot, no Edge Cookie provider) makes no KV call. A store the service is not
//! linked to, or any KV failure, is `StoreError::Unavailable`: the lifecycle then sets no cookie
//! (fail-closed). Keys are visitor identifiers: no error here includes one.
//!
//! [`GenerationalStore`]: gatehouse_component_common::store::generational::GenerationalStore

use std::sync::OnceLock;

use fastly::kv_store::{InsertMode, KVStore, KVStoreError};
use gatehouse_component_common::store::generational::{
    GenerationalKv, KvEntry, KvError, KvInsertMode,
};

/// A Fastly KV store, by the name the deployment gives (`store.fastly_kv_store`).
pub struct FastlyKv {
    name: String,
    store: OnceLock<Result<KVStore, String>>,
}

impl FastlyKv {
    /// The store named `name`, opened on first use.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            store: OnceLock::new(),
        }
    }

    fn store(&self) -> Result<&KVStore, KvError> {
        self.store
            .get_or_init(|| match KVStore::open(&self.name) {
                Ok(Some(store)) => Ok(store),
                Ok(None) | Err(KVStoreError::StoreNotFound(_)) => Err(format!(
                    "the service has no KV store `{}` (create it and link it to the service; \
                     Viceroy: `[local_server.kv_stores]` in fastly.toml)",
                    self.name
                )),
                Err(e) => Err(format!("opening KV store `{}`: {e}", self.name)),
            })
            .as_ref()
            .map_err(|message| KvError::Other(message.clone()))
    }
}

/// A KV failure as the store reports it: the error kind only (the crate's messages never hold
/// the key).
fn other(error: &KVStoreError) -> KvError {
    KvError::Other(error.to_string())
}

impl GenerationalKv for FastlyKv {
    fn lookup(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        match self.store()?.lookup(key) {
            Ok(mut found) => Ok(Some(KvEntry {
                generation: found.current_generation(),
                metadata: found
                    .metadata()
                    .map(|m| String::from_utf8_lossy(&m).into_owned()),
                value: found.take_body_bytes(),
            })),
            Err(KVStoreError::ItemNotFound) => Ok(None),
            Err(e) => Err(other(&e)),
        }
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
        let mut insert = self.store()?.build_insert().mode(match mode {
            KvInsertMode::Add => InsertMode::Add,
            KvInsertMode::Overwrite => InsertMode::Overwrite,
        });
        if let Some(generation) = if_generation_match {
            insert = insert.if_generation_match(generation);
        }
        if !metadata.is_empty() {
            insert = insert.metadata(metadata);
        }
        if let Some(secs) = ttl_secs {
            insert = insert.time_to_live(std::time::Duration::from_secs(u64::from(secs)));
        }
        match insert.execute(key, value.to_vec()) {
            Ok(()) => Ok(()),
            Err(KVStoreError::ItemPreconditionFailed) => Err(KvError::PreconditionFailed),
            Err(e) => Err(other(&e)),
        }
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        match self.store()?.delete(key) {
            Ok(()) | Err(KVStoreError::ItemNotFound) => Ok(()),
            Err(e) => Err(other(&e)),
        }
    }
}
