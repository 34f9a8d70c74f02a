//! Every status, every per-mapping reason, mixed batches and case variants, in-process.

use std::sync::Arc;

use gatehouse_core::identity::{
    Generation, IdentityRecord, IdentityStore, StoreError, Tombstone, Versioned, WriteMode,
    identity_key,
};
use serde_json::json;

use super::{batch_from, ec, endpoint, key_of, now, redb_store, request, seed, send, synced};

fn one(ec_id: &str, uid: &str, timestamp: u64) -> serde_json::Value {
    json!({"mappings": [{"ec_id": ec_id, "partner_uid": uid, "timestamp": timestamp}]})
}

#[tokio::test]
async fn a_valid_batch_is_written_and_answered_200() {
    let store = redb_store("sync-200");
    seed(store.as_ref(), &ec(1));
    let endpoint = endpoint(&[("ssp", 600)], Some(Arc::clone(&store)));
    let t = now() - 10;
    let answer = send(&endpoint, batch_from("ssp", &one(&ec(1), "uid-1", t))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"accepted": 1, "rejected": 0, "errors": []})
    );
    let stored = synced(store.as_ref(), &ec(1), "ssp").expect("written");
    assert_eq!((stored.id.as_str(), stored.synced), ("uid-1", t));
}

#[tokio::test]
async fn a_mixed_batch_is_answered_207_with_every_reason_by_index() {
    let store = redb_store("sync-207");
    seed(store.as_ref(), &ec(1));
    seed(store.as_ref(), &ec(2));
    store
        .insert(
            &identity_key(&ec(3)),
            &IdentityRecord::Tombstone(Tombstone { withdrawn: now() }).encode(),
            WriteMode::Overwrite,
            None,
        )
        .expect("tombstone");
    let endpoint = endpoint(&[("ssp", 600)], Some(Arc::clone(&store)));
    let t = now() - 100;
    let upper = ec(2).to_uppercase().replace("ABC", "abc");
    let body = json!({"mappings": [
        {"ec_id": ec(1), "partner_uid": "uid-1", "timestamp": t},
        {"ec_id": "nope", "partner_uid": "uid", "timestamp": t},
        {"ec_id": ec(1), "partner_uid": "", "timestamp": t},
        {"ec_id": ec(1), "partner_uid": "x".repeat(513), "timestamp": t},
        {"ec_id": ec(1), "partner_uid": "uid", "timestamp": 0},
        {"ec_id": ec(1), "partner_uid": "uid"},
        {"ec_id": ec(9), "partner_uid": "uid", "timestamp": t},
        {"ec_id": ec(3), "partner_uid": "uid", "timestamp": t},
        {"ec_id": ec(1), "partner_uid": "older", "timestamp": t - 1},
        {"ec_id": upper, "partner_uid": "uid-2", "timestamp": t},
    ]});
    let answer = send(&endpoint, batch_from("ssp", &body)).await;
    assert_eq!(answer.status, 207, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"accepted": 3, "rejected": 7, "errors": [
            {"index": 1, "reason": "invalid_ec_id"},
            {"index": 2, "reason": "invalid_partner_uid"},
            {"index": 3, "reason": "invalid_partner_uid"},
            {"index": 4, "reason": "invalid_timestamp"},
            {"index": 5, "reason": "invalid_timestamp"},
            {"index": 6, "reason": "not_found"},
            {"index": 7, "reason": "consent_withdrawn"},
        ]})
    );
    assert_eq!(
        synced(store.as_ref(), &ec(1), "ssp").map(|p| p.id),
        Some("uid-1".into())
    );
    // The hash part matched case-insensitively.
    assert_eq!(
        synced(store.as_ref(), &ec(2), "ssp").map(|p| p.id),
        Some("uid-2".into())
    );
    assert!(store.get(&identity_key(&ec(9))).expect("read").is_none());
}

#[tokio::test]
async fn the_bearer_scheme_matches_in_any_case() {
    let store = redb_store("sync-bearer");
    seed(store.as_ref(), &ec(1));
    let endpoint = endpoint(&[("ssp", 600)], Some(Arc::clone(&store)));
    for (i, scheme) in ["bearer", "BEARER", "BeArEr", "Bearer "].iter().enumerate() {
        let answer = send(
            &endpoint,
            request(
                &[
                    ("authorization", &format!("{scheme} {}", key_of("ssp"))),
                    ("content-type", "application/json"),
                ],
                one(&ec(1), "uid", now() - 100 + i as u64).to_string(),
            ),
        )
        .await;
        assert_eq!(answer.status, 200, "{scheme}: {}", answer.body);
    }
}

#[tokio::test]
async fn a_missing_or_invalid_key_is_answered_401() {
    let store = redb_store("sync-401");
    let endpoint = endpoint(&[("ssp", 600)], Some(store));
    let body = one(&ec(1), "uid", now()).to_string();
    let json = ("content-type", "application/json");
    let key = key_of("ssp");
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("authorization", "Bearer".to_owned())],
        vec![("authorization", "Bearer ".to_owned())],
        vec![("authorization", format!("Basic {key}"))],
        vec![("authorization", format!("Bearer {key}x"))],
        vec![("authorization", key.clone())],
        vec![("authorization", format!("Bearer {}", key_of("other")))],
        vec![
            ("authorization", format!("Bearer {key}")),
            ("authorization", format!("Bearer {key}")),
        ],
    ];
    for case in cases {
        let mut headers: Vec<(&str, &str)> = case.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.push(json);
        let answer = send(&endpoint, request(&headers, body.clone())).await;
        answer.assert_problem(401, "unauthorized");
        assert_eq!(
            answer
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        assert!(!answer.body.to_string().contains(&key));
    }
}

#[tokio::test]
async fn a_partner_over_its_rate_limit_is_answered_429_with_retry_after() {
    let store = redb_store("sync-429");
    seed(store.as_ref(), &ec(1));
    let endpoint = endpoint(&[("ssp", 2), ("dsp", 600)], Some(Arc::clone(&store)));
    let body = one(&ec(1), "uid", now() - 10);
    for _ in 0..2 {
        assert_eq!(send(&endpoint, batch_from("ssp", &body)).await.status, 200);
    }
    let answer = send(&endpoint, batch_from("ssp", &body)).await;
    answer.assert_problem(429, "rate-limited");
    let retry_after: u64 = answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    // 2 per minute: the next cell is at most 30 s away.
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    // Another partner has its own limit.
    assert_eq!(send(&endpoint, batch_from("dsp", &body)).await.status, 200);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_answered_415() {
    let endpoint = endpoint(&[("ssp", 600)], Some(redb_store("sync-415")));
    let auth = format!("Bearer {}", key_of("ssp"));
    let body = one(&ec(1), "uid", now()).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/jsonx"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        send(&endpoint, request(&headers, body.clone()))
            .await
            .assert_problem(415, "unsupported-media-type");
    }
    // Parameters and case are fine.
    let answer = send(
        &endpoint,
        request(
            &[
                ("authorization", &auth),
                ("content-type", "Application/JSON; charset=utf-8"),
            ],
            body,
        ),
    )
    .await;
    assert_eq!(answer.status, 207, "{}", answer.body); // not_found: nothing seeded
}

#[tokio::test]
async fn a_body_over_2_mib_is_answered_413_from_content_length_and_while_reading() {
    let endpoint = endpoint(&[("ssp", 600)], Some(redb_store("sync-413")));
    let auth = format!("Bearer {}", key_of("ssp"));
    let declared = (2 * 1024 * 1024 + 1).to_string();
    send(
        &endpoint,
        request(
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("content-length", &declared),
            ],
            "{}",
        ),
    )
    .await
    .assert_problem(413, "payload-too-large");
    // No Content-Length: counted while reading.
    let big = format!(
        r#"{{"mappings": [], "pad": "{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    send(
        &endpoint,
        request(
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            big,
        ),
    )
    .await
    .assert_problem(413, "payload-too-large");
}

#[tokio::test]
async fn malformed_json_a_missing_field_or_over_1000_mappings_is_answered_400() {
    let endpoint = endpoint(&[("ssp", 600)], Some(redb_store("sync-400")));
    for body in [
        "not json".to_owned(),
        "{}".to_owned(),
        r#"{"mappings": [{"ec_id": 5}]}"#.to_owned(),
        r#"{"mappings": [], "unknown": true}"#.to_owned(),
    ] {
        send(
            &endpoint,
            request(
                &[
                    ("authorization", &format!("Bearer {}", key_of("ssp"))),
                    ("content-type", "application/json"),
                ],
                body,
            ),
        )
        .await
        .assert_problem(400, "invalid-batch");
    }
    let mapping = json!({"ec_id": ec(1), "partner_uid": "u", "timestamp": 1});
    let body = json!({"mappings": vec![mapping; 1001]});
    send(&endpoint, batch_from("ssp", &body))
        .await
        .assert_problem(400, "too-many-mappings");
}

/// Unavailable for every operation.
struct DownStore;

#[derive(Debug)]
struct Refused;
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}
impl std::error::Error for Refused {}

fn down() -> StoreError {
    StoreError::Unavailable {
        store: "test",
        source: Box::new(Refused),
    }
}

impl IdentityStore for DownStore {
    fn get(&self, _key: &str) -> Result<Option<Versioned>, StoreError> {
        Err(down())
    }
    fn insert(
        &self,
        _key: &str,
        _value: &[u8],
        _mode: WriteMode,
        _ttl: Option<std::time::Duration>,
    ) -> Result<Generation, StoreError> {
        Err(down())
    }
    fn delete(&self, _key: &str) -> Result<(), StoreError> {
        Err(down())
    }
}

#[tokio::test]
async fn a_store_unavailable_before_any_write_is_answered_503() {
    let endpoint = endpoint(&[("ssp", 600)], Some(Arc::new(DownStore)));
    send(&endpoint, batch_from("ssp", &one(&ec(1), "uid", now())))
        .await
        .assert_problem(503, "store-unavailable");
    // Without any store configured, too.
    let endpoint = super::endpoint(&[("ssp", 600)], None);
    send(&endpoint, batch_from("ssp", &one(&ec(1), "uid", now())))
        .await
        .assert_problem(503, "store-unavailable");
}

#[tokio::test]
async fn a_batch_invalid_throughout_never_needs_the_store() {
    // Validation comes before the store: a batch of only invalid mappings is a 207 even when
    // the store is down.
    let endpoint = endpoint(&[("ssp", 600)], Some(Arc::new(DownStore)));
    let answer = send(&endpoint, batch_from("ssp", &one("bad", "uid", now()))).await;
    assert_eq!(answer.status, 207);
    assert_eq!(answer.body["errors"][0]["reason"], "invalid_ec_id");
}

#[tokio::test]
async fn methods_other_than_post_are_answered_405() {
    let endpoint = endpoint(&[("ssp", 600)], None);
    let req = http::Request::get(gatehouse::batch_sync::ROUTE)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let answer = send(&endpoint, req).await;
    answer.assert_problem(405, "method-not-allowed");
    assert_eq!(
        answer.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}
