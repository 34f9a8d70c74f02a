//! The identity store on wasi:http platforms: `wasi:keyvalue/store@0.2.0-draft` (and
//! `atomics.increment` for generations) as the [`KeyValueBucket`] the shared [`KeyValueStore`]
//! runs over. That draft has no compare-and-swap and no TTL: see that module for the envelope
//! and what is and is not atomic.
//!
//! The bucket is opened once per request, on first use, and every call of the request goes to
//! that one resource: under `wasmtime serve -Skeyvalue` each `open` starts from an empty
//! in-memory bucket, so a second `open` would not see the request's own writes. Nothing persists
//! across requests there; a platform with a durable `wasi:keyvalue@0.2.0-draft` keeps records.
//!
//! [`KeyValueStore`]: gatehouse_component_common::store::keyvalue::KeyValueStore

use std::sync::OnceLock;

use gatehouse_component_common::store::keyvalue::KeyValueBucket;

use crate::bindings::wasi::keyvalue::{atomics, store};

/// The bucket the deployment names (`store.keyvalue_bucket`; `wasmtime serve` has only `""`).
pub struct WasiBucket {
    identifier: String,
    bucket: OnceLock<Result<OpenBucket, String>>,
}

/// An open bucket resource.
struct OpenBucket(store::Bucket);

// SAFETY: a wasi:http component instance is single-threaded (wasm32-wasip2 has no threads), so
// the resource handle is never used from two threads; the trait's `Send + Sync` bounds exist for
// the standalone host's stores.
#[allow(unsafe_code)]
unsafe impl Send for OpenBucket {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for OpenBucket {}

impl WasiBucket {
    /// The bucket `identifier`, opened on first use.
    pub fn new(identifier: &str) -> Self {
        Self {
            identifier: identifier.to_owned(),
            bucket: OnceLock::new(),
        }
    }

    fn bucket(&self) -> Result<&store::Bucket, String> {
        self.bucket
            .get_or_init(|| {
                store::open(&self.identifier).map(OpenBucket).map_err(|e| {
                    format!(
                        "opening wasi:keyvalue bucket `{}`: {}",
                        self.identifier.escape_debug(),
                        describe(&e)
                    )
                })
            })
            .as_ref()
            .map(|open| &open.0)
            .map_err(Clone::clone)
    }
}

/// The platform's error, which never holds the key (the bindings pass only the error).
fn describe(error: &store::Error) -> String {
    match error {
        store::Error::NoSuchStore => "no such store".to_owned(),
        store::Error::AccessDenied => "access denied".to_owned(),
        store::Error::Other(message) => message.clone(),
    }
}

impl KeyValueBucket for WasiBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.bucket()?.get(key).map_err(|e| describe(&e))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.bucket()?.set(key, value).map_err(|e| describe(&e))
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.bucket()?.delete(key).map_err(|e| describe(&e))
    }

    fn increment(&self, key: &str, delta: u64) -> Result<u64, String> {
        atomics::increment(self.bucket()?, key, delta).map_err(|e| describe(&e))
    }
}
