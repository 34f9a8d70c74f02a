//! `POST /_ts/api/v1/batch-sync`: every status and per-mapping reason through the handler
//! in-process (on a real redb store), ordering under concurrent shuffled batches on redb and
//! Valkey, and the route through the real binary.

mod crash;
mod handler;
mod ordering;
mod route;
mod valkey;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gatehouse::batch_sync::BatchSync;
use gatehouse::identity::IdentityService;
use gatehouse_core::auction::ConsentForwarding;
use gatehouse_core::identity::{
    IdentityRecord, IdentitySettings, IdentityStore, LiveIdentity, PartnerId, RetryPolicy,
    WriteMode, identity_key,
};
use gatehouse_core::pipeline::DeviceClass;
use gatehouse_core::sync::{PartnerConfig, Partners, hash_api_key};
use http::Request;
use http_body_util::{BodyExt as _, Full};

/// `ec.max_age_secs` of the tests.
pub const MAX_AGE: u64 = 365 * 86_400;

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The API key of partner `id` (at least 32 bytes).
pub fn key_of(id: &str) -> String {
    format!("{id}-api-key-0123456789abcdef0123456789")
}

pub fn partner(id: &str, rate_limit: u32) -> PartnerConfig {
    PartnerConfig {
        id: id.to_owned(),
        name: format!("Partner {id}"),
        source_domain: format!("{id}.example"),
        api_key_sha256: hash_api_key(key_of(id).as_bytes()).expect("long key"),
        batch_rate_limit: rate_limit,
        bidstream_enabled: false,
        consent_forwarding: ConsentForwarding::Both,
    }
}

pub fn endpoint(ids: &[(&str, u32)], store: Option<Arc<dyn IdentityStore>>) -> BatchSync {
    let configs: Vec<PartnerConfig> = ids.iter().map(|(id, rate)| partner(id, *rate)).collect();
    let settings = IdentitySettings {
        retry: RetryPolicy {
            // Many concurrent writers on one record in the ordering tests.
            max_attempts: 64,
            ..RetryPolicy::default()
        },
        ..IdentitySettings::default()
    };
    BatchSync::new(
        Partners::new(&configs).expect("valid partners"),
        store.map(|store| IdentityService::new(store, settings, "test")),
        MAX_AGE,
    )
}

/// The Edge Cookie value number `n`.
pub fn ec(n: usize) -> String {
    format!("{:064x}.abc{n:03}", n + 1)
}

/// Stores a live identity for `ec`, created a minute ago, with the cookie's expiry.
pub fn seed(store: &dyn IdentityStore, ec: &str) {
    let record = IdentityRecord::Live(LiveIdentity {
        created: now() - 60,
        consent: None,
        country: Some("US".into()),
        region: None,
        device: DeviceClass::Desktop,
        partners: Default::default(),
    });
    store
        .insert(
            &identity_key(ec),
            &record.encode(),
            WriteMode::AddOnly,
            Some(Duration::from_secs(MAX_AGE)),
        )
        .expect("seed identity");
}

pub fn synced(store: &dyn IdentityStore, ec: &str, partner: &str) -> Option<PartnerId> {
    let entry = store.get(&identity_key(ec)).expect("read")?;
    match IdentityRecord::decode(&entry.value).expect("record") {
        IdentityRecord::Live(live) => live.partners.get(partner).cloned(),
        IdentityRecord::Tombstone(_) => None,
    }
}

/// A request with `headers` and `body`.
pub fn request(headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut builder = Request::post(gatehouse::batch_sync::ROUTE);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).expect("request")
}

/// A JSON batch request from partner `id`.
pub fn batch_from(id: &str, body: &serde_json::Value) -> Request<Full<Bytes>> {
    request(
        &[
            ("authorization", &format!("Bearer {}", key_of(id))),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
}

pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

pub async fn send(endpoint: &BatchSync, req: Request<Full<Bytes>>) -> Answer {
    let response = endpoint.handle(req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

impl Answer {
    /// Asserts a problem document of `status` and `type` `/_ts/problems/<slug>`.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        assert_eq!(self.body["type"], format!("/_ts/problems/{slug}"));
        assert_eq!(self.body["status"], status);
    }
}

pub fn redb_store(label: &str) -> Arc<dyn IdentityStore> {
    let dir = crate::support::temp_dir(label);
    Arc::new(gatehouse_store::RedbStore::open(dir.join("identity.redb")).expect("open redb"))
}
