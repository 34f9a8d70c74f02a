//! The identity record's encoding: versioned, fail closed.

use std::collections::BTreeMap;

use gatehouse_core::identity::{
    ConsentSummary, IdentityRecord, LiveIdentity, PartnerId, RecordError, StoredConsent,
    StoredSignals, Tombstone,
};
use gatehouse_core::pipeline::DeviceClass;

fn sample() -> LiveIdentity {
    LiveIdentity {
        created: 1_700_000_000,
        consent: Some(StoredConsent {
            fingerprint: "00112233445566778899aabbccddeeff".into(),
            updated: 1_700_000_100,
            summary: ConsentSummary {
                tcf_purposes: Some(0b1011),
                gpc: false,
                us_opt_out: false,
                gdpr_applies: true,
            },
            signals: StoredSignals {
                tc_string: Some("CQabc".into()),
                ..StoredSignals::default()
            },
        }),
        country: Some("DE".into()),
        region: None,
        device: DeviceClass::Mobile,
        partners: BTreeMap::from([(
            "ssp-a".into(),
            PartnerId {
                id: "p-123".into(),
                synced: 1_700_000_200,
            },
        )]),
    }
}

#[test]
fn live_record_round_trips_with_partner_sync_times() {
    let record = IdentityRecord::Live(sample());
    let bytes = record.encode();
    assert_eq!(IdentityRecord::decode(&bytes).expect("decodes"), record);
    let text = String::from_utf8(bytes).expect("json");
    assert!(
        text.starts_with(r#"{"v":1,"live":{"created":1700000000,"#),
        "{text}"
    );
    assert!(text.contains(r#""partners":{"ssp-a":{"id":"p-123","synced":1700000200}}"#));
    assert!(text.contains(r#""device":"mobile""#));
}

#[test]
fn tombstone_round_trips_and_is_compact() {
    let record = IdentityRecord::Tombstone(Tombstone { withdrawn: 42 });
    let bytes = record.encode();
    assert_eq!(bytes, br#"{"v":1,"tombstone":{"withdrawn":42}}"#);
    assert_eq!(IdentityRecord::decode(&bytes).expect("decodes"), record);
}

#[test]
fn unknown_record_version_is_refused() {
    let error = IdentityRecord::decode(br#"{"v":2,"live":{"created":1,"device":"bot"}}"#)
        .expect_err("newer version");
    assert!(matches!(
        error,
        RecordError::UnsupportedVersion { found: 2 }
    ));
    assert_eq!(
        error.to_string(),
        "identity record version `2` is not supported (this build reads version `1`)"
    );
}

#[test]
fn unknown_field_in_a_version_one_record_is_refused() {
    let error = IdentityRecord::decode(br#"{"v":1,"live":{"created":1,"device":"bot","x":1}}"#)
        .expect_err("unknown field");
    assert!(matches!(error, RecordError::Malformed { .. }), "{error}");
}

#[test]
fn record_with_both_or_neither_state_is_refused() {
    for bytes in [
        &br#"{"v":1}"#[..],
        br#"{"v":1,"live":{"created":1,"device":"bot"},"tombstone":{"withdrawn":1}}"#,
        b"not json",
        br#"{"live":{}}"#,
    ] {
        assert!(
            matches!(
                IdentityRecord::decode(bytes),
                Err(RecordError::Malformed { .. })
            ),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}
