//! Batch sync applied to the in-memory store: every per-mapping reason in its order, stale
//! mappings, compare-and-swap that never creates, store failures, and ordering under races.

use std::time::Duration;

use gatehouse_core::identity::{
    Generation, IdentityRecord, IdentityStore, LiveIdentity, NoBackoff, PartnerId, RetryPolicy,
    StoreError, Tombstone, Versioned, WriteMode, identity_key,
};
use gatehouse_core::pipeline::DeviceClass;
use gatehouse_core::sync::{
    BatchError, BatchRequest, BatchRequestError, BatchResult, BatchSettings, MAX_FUTURE_SKEW_SECS,
    Mapping, MappingError, Partner, RejectReason, apply_batch,
};

use super::partners::two_partners;
use crate::identity::memory::MemoryStore;

const NOW: u64 = 1_790_000_000;
const MAX_AGE: u64 = 365 * 86_400;
const CREATED: u64 = NOW - 1000;
const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn ec(suffix: &str) -> String {
    format!("{HASH}.{suffix}")
}

fn settings() -> BatchSettings {
    BatchSettings {
        max_age_secs: MAX_AGE,
        retry: RetryPolicy::default(),
    }
}

fn ssp() -> Partner {
    two_partners().get("ssp-a").expect("configured").clone()
}

fn live(partners: &[(&str, &str, u64)]) -> IdentityRecord {
    IdentityRecord::Live(LiveIdentity {
        created: CREATED,
        consent: None,
        country: Some("US".into()),
        region: None,
        device: DeviceClass::Desktop,
        partners: partners
            .iter()
            .map(|(p, id, synced)| {
                (
                    (*p).to_owned(),
                    PartnerId {
                        id: (*id).to_owned(),
                        synced: *synced,
                    },
                )
            })
            .collect(),
    })
}

/// A store holding a live record for `ec("aaaaaa")`, stored with its cookie's expiry.
fn store_with_identity() -> MemoryStore {
    let store = MemoryStore::at(NOW);
    store
        .insert(
            &identity_key(&ec("aaaaaa")),
            &live(&[]).encode(),
            WriteMode::AddOnly,
            Some(Duration::from_secs(CREATED + MAX_AGE - NOW)),
        )
        .expect("fixture");
    store
}

fn mapping(ec_id: &str, uid: &str, timestamp: u64) -> Mapping {
    Mapping {
        ec_id: Some(ec_id.to_owned()),
        partner_uid: Some(uid.to_owned()),
        timestamp: Some(timestamp),
    }
}

fn apply(store: &dyn IdentityStore, mappings: &[Mapping]) -> Result<BatchResult, BatchError> {
    apply_batch(store, &NoBackoff, &settings(), &ssp(), mappings, NOW)
}

fn synced(store: &MemoryStore, ec_id: &str, partner: &str) -> Option<PartnerId> {
    match store.record(&identity_key(ec_id))? {
        IdentityRecord::Live(live) => live.partners.get(partner).cloned(),
        IdentityRecord::Tombstone(_) => None,
    }
}

fn reasons(result: &BatchResult) -> Vec<(usize, &'static str)> {
    result
        .errors
        .iter()
        .map(|e| (e.index, e.reason.as_str()))
        .collect()
}

#[test]
fn a_valid_mapping_is_written_with_compare_and_swap_keeping_the_records_expiry() {
    let store = store_with_identity();
    let expires = store
        .entry(&identity_key(&ec("aaaaaa")))
        .and_then(|e| e.expires_at);
    let before = store.writes().len();
    let result = apply(&store, &[mapping(&ec("aaaaaa"), "uid-1", NOW - 5)]).expect("applied");
    assert_eq!(
        (result.accepted, result.rejected, result.written),
        (1, 0, 1)
    );
    assert!(result.all_accepted());
    assert_eq!(
        synced(&store, &ec("aaaaaa"), "ssp-a"),
        Some(PartnerId {
            id: "uid-1".into(),
            synced: NOW - 5
        })
    );
    let writes = store.writes();
    assert_eq!(writes.len(), before + 1);
    assert!(matches!(writes[before], WriteMode::IfGeneration(_)));
    let entry = store.entry(&identity_key(&ec("aaaaaa"))).expect("entry");
    assert_eq!(entry.expires_at, expires);
    assert_eq!(entry.expires_at, Some(CREATED + MAX_AGE));
}

#[test]
fn every_per_mapping_reason_is_reported_by_index() {
    let store = store_with_identity();
    store.put(
        &identity_key(&ec("tomb00")),
        &IdentityRecord::Tombstone(Tombstone {
            withdrawn: NOW - 10,
        }),
    );
    let long_uid = "u".repeat(513);
    let mappings = vec![
        mapping(&ec("aaaaaa"), "uid-1", NOW),   // 0 accepted
        mapping("not-an-ec", "uid", NOW),       // 1
        mapping(&ec("aaaaaa"), "", NOW),        // 2
        mapping(&ec("aaaaaa"), &long_uid, NOW), // 3
        mapping(&ec("aaaaaa"), "uid", 0),       // 4
        Mapping {
            timestamp: None,
            ..mapping(&ec("aaaaaa"), "uid", 1)
        }, // 5
        mapping(&ec("bbbbbb"), "uid", NOW),     // 6
        mapping(&ec("tomb00"), "uid", NOW),     // 7
        Mapping::default(),                     // 8
        mapping(&ec("aaaaaa"), "uid", NOW + MAX_FUTURE_SKEW_SECS + 1), // 9
        mapping(&ec("aaaaaa"), &"u".repeat(512), NOW - 1), // 10 accepted, stale
    ];
    let result = apply(&store, &mappings).expect("applied");
    assert_eq!(
        reasons(&result),
        vec![
            (1, "invalid_ec_id"),
            (2, "invalid_partner_uid"),
            (3, "invalid_partner_uid"),
            (4, "invalid_timestamp"),
            (5, "invalid_timestamp"),
            (6, "not_found"),
            (7, "consent_withdrawn"),
            (8, "invalid_ec_id"),
            (9, "invalid_timestamp"),
        ]
    );
    assert_eq!((result.accepted, result.rejected), (2, 9));
    assert_eq!((result.written, result.stale), (1, 1));
    assert_eq!(result.count(RejectReason::InvalidPartnerUid), 2);
    // Nothing was created, and the tombstone is untouched.
    assert!(store.entry(&identity_key(&ec("bbbbbb"))).is_none());
    assert!(matches!(
        store.record(&identity_key(&ec("tomb00"))),
        Some(IdentityRecord::Tombstone(_))
    ));
}

#[test]
fn checks_apply_in_the_documented_order() {
    let store = store_with_identity();
    let result = apply(
        &store,
        &[
            mapping("bad", "", 0),            // ec id first
            mapping(&ec("aaaaaa"), "", 0),    // then uid
            mapping(&ec("zzzzzz"), "uid", 0), // then timestamp, before any lookup
        ],
    )
    .expect("applied");
    assert_eq!(
        reasons(&result),
        vec![
            (0, "invalid_ec_id"),
            (1, "invalid_partner_uid"),
            (2, "invalid_timestamp")
        ]
    );
    assert_eq!(store.reads(), 0, "invalid mappings never reach the store");
}

#[test]
fn the_ec_hash_matches_case_insensitively_and_the_suffix_does_not() {
    let store = store_with_identity();
    let upper = format!("{}.aaaaaa", HASH.to_uppercase());
    let result = apply(
        &store,
        &[
            mapping(&upper, "uid-upper", NOW),
            mapping(&ec("AAAAAA"), "uid", NOW),
            mapping(&format!("{HASH}.aaaaa"), "uid", NOW),
            mapping(&format!("{HASH}.aaaaa-"), "uid", NOW),
            mapping(&format!("{}.aaaaaa", &HASH[1..]), "uid", NOW),
        ],
    )
    .expect("applied");
    assert_eq!(
        reasons(&result),
        vec![
            (1, "not_found"),
            (2, "invalid_ec_id"),
            (3, "invalid_ec_id"),
            (4, "invalid_ec_id")
        ]
    );
    assert_eq!(
        synced(&store, &ec("aaaaaa"), "ssp-a").map(|p| p.id),
        Some("uid-upper".into())
    );
}

#[test]
fn a_stale_or_equal_timestamp_is_accepted_without_a_write() {
    let store = MemoryStore::at(NOW);
    store.put(
        &identity_key(&ec("aaaaaa")),
        &live(&[("ssp-a", "newer", NOW - 10)]),
    );
    let writes = store.writes().len();
    let result = apply(
        &store,
        &[
            mapping(&ec("aaaaaa"), "older", NOW - 20),
            mapping(&ec("aaaaaa"), "same-time", NOW - 10),
        ],
    )
    .expect("applied");
    assert_eq!((result.accepted, result.stale, result.written), (2, 2, 0));
    assert_eq!(store.writes().len(), writes);
    assert_eq!(
        synced(&store, &ec("aaaaaa"), "ssp-a").map(|p| p.id),
        Some("newer".into())
    );
}

#[test]
fn a_sync_keeps_other_partners_ids() {
    let store = MemoryStore::at(NOW);
    store.put(
        &identity_key(&ec("aaaaaa")),
        &live(&[("dsp-b", "theirs", NOW)]),
    );
    apply(&store, &[mapping(&ec("aaaaaa"), "mine", NOW - 100)]).expect("applied");
    assert_eq!(
        synced(&store, &ec("aaaaaa"), "dsp-b").map(|p| p.id),
        Some("theirs".into())
    );
    assert_eq!(
        synced(&store, &ec("aaaaaa"), "ssp-a").map(|p| p.id),
        Some("mine".into())
    );
}

#[test]
fn a_lost_race_reads_again_and_the_greater_timestamp_still_wins() {
    let store = store_with_identity();
    store.race(2);
    let result = apply(&store, &[mapping(&ec("aaaaaa"), "uid", NOW)]).expect("applied");
    assert_eq!(result.written, 1);
    assert_eq!(
        synced(&store, &ec("aaaaaa"), "ssp-a").map(|p| p.synced),
        Some(NOW)
    );
}

#[test]
fn a_record_deleted_between_read_and_write_is_not_recreated() {
    /// Deletes the entry just before the first conditional write lands.
    struct DeletesBeforeWrite(MemoryStore);
    impl IdentityStore for DeletesBeforeWrite {
        fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
            self.0.get(key)
        }
        fn insert(
            &self,
            key: &str,
            value: &[u8],
            mode: WriteMode,
            ttl: Option<Duration>,
        ) -> Result<Generation, StoreError> {
            self.0.delete(key)?;
            self.0.insert(key, value, mode, ttl)
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.delete(key)
        }
    }
    let store = DeletesBeforeWrite(store_with_identity());
    let fixture_writes = store.0.writes().len();
    let result = apply(&store, &[mapping(&ec("aaaaaa"), "uid", NOW)]).expect("applied");
    assert_eq!(reasons(&result), vec![(0, "not_found")]);
    assert!(store.0.entry(&identity_key(&ec("aaaaaa"))).is_none());
    assert!(
        store.0.writes()[fixture_writes..]
            .iter()
            .all(|m| *m != WriteMode::AddOnly),
        "a sync never writes add-only"
    );
}

#[test]
fn a_store_unavailable_before_any_write_fails_the_whole_batch() {
    let store = store_with_identity();
    store.set_unavailable(true);
    let e = apply(&store, &[mapping(&ec("aaaaaa"), "uid", NOW)]).expect_err("unavailable");
    assert!(matches!(e, BatchError::StoreUnavailable(_)));
    assert_eq!(
        e.to_string(),
        "identity store unavailable before any mapping was written"
    );
}

/// Fails every operation on one key.
struct FailsOn(MemoryStore, String);

impl FailsOn {
    fn check(&self, key: &str) -> Result<(), StoreError> {
        if key == self.1 {
            return Err(StoreError::Unavailable {
                store: "memory",
                source: "connection reset".into(),
            });
        }
        Ok(())
    }
}

impl IdentityStore for FailsOn {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.check(key)?;
        self.0.get(key)
    }
    fn insert(
        &self,
        key: &str,
        value: &[u8],
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> Result<Generation, StoreError> {
        self.check(key)?;
        self.0.insert(key, value, mode, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check(key)?;
        self.0.delete(key)
    }
}

#[test]
fn a_store_error_after_a_write_rejects_only_that_mapping_and_the_rest_continue() {
    let inner = store_with_identity();
    inner.put(&identity_key(&ec("cccccc")), &live(&[]));
    let store = FailsOn(inner, identity_key(&ec("bbbbbb")));
    let result = apply(
        &store,
        &[
            mapping(&ec("aaaaaa"), "uid-a", NOW),
            mapping(&ec("bbbbbb"), "uid-b", NOW),
            mapping(&ec("cccccc"), "uid-c", NOW),
        ],
    )
    .expect("partial");
    assert_eq!(reasons(&result), vec![(1, "store_unavailable")]);
    assert_eq!((result.accepted, result.written), (2, 2));
    assert!(synced(&store.0, &ec("cccccc"), "ssp-a").is_some());
}

#[test]
fn an_unreadable_record_is_rejected_as_store_unavailable_without_failing_the_batch() {
    let store = MemoryStore::at(NOW);
    store.put_raw(&identity_key(&ec("aaaaaa")), br#"{"v":99}"#);
    let result = apply(&store, &[mapping(&ec("aaaaaa"), "uid", NOW)]).expect("applied");
    assert_eq!(reasons(&result), vec![(0, "store_unavailable")]);
    assert_eq!(
        store.entry(&identity_key(&ec("aaaaaa"))).map(|e| e.value),
        Some(br#"{"v":99}"#.to_vec())
    );
}

#[test]
fn shuffled_batches_from_two_partners_end_with_each_partners_greatest_timestamp() {
    let partners = two_partners();
    let store = store_with_identity();
    // Timestamps arrive out of order, in small batches, interleaved between the partners.
    let order = [7u64, 3, 9, 1, 8, 2, 6, 4, 5];
    for chunk in order.chunks(2) {
        for partner in partners.iter() {
            let mappings: Vec<Mapping> = chunk
                .iter()
                .map(|t| mapping(&ec("aaaaaa"), &format!("{}-{t}", partner.id), NOW - 100 + t))
                .collect();
            let result = apply_batch(&store, &NoBackoff, &settings(), partner, &mappings, NOW)
                .expect("applied");
            assert!(result.all_accepted());
        }
    }
    for partner in partners.iter() {
        assert_eq!(
            synced(&store, &ec("aaaaaa"), &partner.id),
            Some(PartnerId {
                id: format!("{}-9", partner.id),
                synced: NOW - 91
            })
        );
    }
}

#[test]
fn the_request_body_parses_and_missing_mapping_fields_are_per_mapping() {
    let request = BatchRequest::parse(
        br#"{"mappings": [{"ec_id": "x", "partner_uid": "u", "timestamp": 5}, {}]}"#,
    )
    .expect("valid");
    assert_eq!(request.mappings.len(), 2);
    assert_eq!(request.mappings[1], Mapping::default());
    let empty = BatchRequest::parse(br#"{"mappings": []}"#).expect("valid");
    assert!(empty.mappings.is_empty());
}

#[test]
fn malformed_bodies_missing_fields_and_oversized_batches_are_request_errors() {
    for body in [
        &b"not json"[..],
        b"{}",
        b"[]",
        br#"{"mappings": {}}"#,
        br#"{"mappings": [{"timestamp": -1}]}"#,
        br#"{"mappings": [{"timestamp": "5"}]}"#,
        br#"{"mappings": [], "extra": 1}"#,
        br#"{"mappings": [{"uid": "x"}]}"#,
    ] {
        let e = BatchRequest::parse(body).expect_err("refused");
        assert!(
            matches!(e, BatchRequestError::Malformed { .. }),
            "{}: {e}",
            String::from_utf8_lossy(body)
        );
    }
    let one = r#"{"ec_id": "x", "partner_uid": "u", "timestamp": 1}"#;
    let body = |n: usize| format!(r#"{{"mappings": [{}]}}"#, vec![one; n].join(","));
    assert_eq!(
        BatchRequest::parse(body(1000).as_bytes())
            .expect("1000 is the limit")
            .mappings
            .len(),
        1000
    );
    let e = BatchRequest::parse(body(1001).as_bytes()).expect_err("refused");
    assert!(matches!(
        e,
        BatchRequestError::TooManyMappings { count: 1001 }
    ));
}

#[test]
fn the_response_serialises_as_documented() {
    let result = BatchResult {
        accepted: 1,
        rejected: 1,
        errors: vec![MappingError {
            index: 1,
            reason: RejectReason::NotFound,
        }],
        written: 1,
        stale: 0,
    };
    assert_eq!(
        serde_json::to_string(&result).expect("json"),
        r#"{"accepted":1,"rejected":1,"errors":[{"index":1,"reason":"not_found"}]}"#
    );
}
