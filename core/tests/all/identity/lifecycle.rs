//! The Edge Cookie lifecycle applied by `PagePipeline::run_with_identity`.

use std::time::Duration;

use gatehouse_core::identity::{
    DEFAULT_TOMBSTONE_SECS, Identity, IdentityError, IdentityOutcome, IdentityRecord,
    IdentitySettings, Inline, LiveIdentity, RecordError, StoreError, StoredConsent, Tombstone,
    WriteMode, identity_key,
};
use gatehouse_core::pipeline::{DeviceClass, EcOutput, EdgeCookieDecision, RequestOutcome};
use gatehouse_core::task::block_on;

use super::memory::{MemoryStore, RecordingBackoff};
use crate::pipeline::support::{
    CLOCK, MINTED, Mock, NOW, View, full_consent, pipeline, tc_string, values,
};

const KEPT: &str = "kept0123456789.abcDEF";
const EXPIRED: &str = "ts-ec=; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=0";

fn run_with(
    store: &MemoryStore,
    view: &View,
    providers: &mut Mock,
    settings: &IdentitySettings,
) -> (RequestOutcome<'static>, RecordingBackoff) {
    let backoff = RecordingBackoff::default();
    let outcome = block_on(pipeline("US").run_with_identity(
        view,
        &CLOCK,
        providers,
        Identity {
            store: &Inline(store),
            backoff: &backoff,
            settings,
        },
    ));
    (outcome, backoff)
}

fn run(store: &MemoryStore, view: &View, providers: &mut Mock) -> RequestOutcome<'static> {
    run_with(store, view, providers, &IdentitySettings::default()).0
}

fn live_record(consent: Option<StoredConsent>) -> IdentityRecord {
    IdentityRecord::Live(LiveIdentity {
        created: NOW - 1000,
        consent,
        country: Some("DE".into()),
        region: None,
        device: DeviceClass::Desktop,
        partners: Default::default(),
    })
}

/// The consent a request carrying `cookie` (and nothing else) stores.
fn stored_consent_of_cookie(cookie: &str) -> StoredConsent {
    let store = MemoryStore::at(NOW);
    let view = View::page().header("cookie", cookie);
    run(&store, &view, &mut Mock::standard(Some("DE"), None));
    match store.record(&identity_key(MINTED)) {
        Some(IdentityRecord::Live(live)) => live.consent.expect("consent stored"),
        other => panic!("no live record: {other:?}"),
    }
}

fn live(store: &MemoryStore, value: &str) -> LiveIdentity {
    match store.record(&identity_key(value)) {
        Some(IdentityRecord::Live(live)) => live,
        other => panic!("expected a live record, found {other:?}"),
    }
}

fn with_cookie(extra: &str) -> View {
    let cookie = if extra.is_empty() {
        format!("ts-ec={KEPT}")
    } else {
        format!("ts-ec={KEPT}; {extra}")
    };
    View::page().header("cookie", &cookie)
}

#[test]
fn mint_creates_the_record_add_only_before_setting_the_cookie() {
    let store = MemoryStore::at(NOW);
    let outcome = run(
        &store,
        &View::page(),
        &mut Mock::standard(Some("US"), Some("NY")),
    );
    let decision = outcome.decision.expect("page");

    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Created));
    assert!(outcome.response.set_cookie.is_some());
    assert_eq!(store.writes(), [WriteMode::AddOnly]);
    let record = live(&store, MINTED);
    assert_eq!(record.created, NOW);
    assert_eq!(record.country.as_deref(), Some("US"));
    assert_eq!(record.region.as_deref(), Some("NY"));
    assert_eq!(record.device, DeviceClass::Desktop);
    assert_eq!(record.consent, None, "the request carried no signal");
    // The record lives as long as the cookie.
    let entry = store.entry(&identity_key(MINTED)).expect("entry");
    assert_eq!(entry.expires_at, Some(NOW + 365 * 86_400));
}

#[test]
fn mint_stores_the_consent_the_request_carried() {
    let consent = stored_consent_of_cookie(&format!("euconsent-v2={}", full_consent()));
    assert_eq!(consent.updated, NOW);
    assert_eq!(consent.fingerprint.len(), 32);
    assert_eq!(consent.signals.tc_string, Some(full_consent()));
    assert!(consent.summary.gdpr_applies);
    assert_eq!(consent.summary.tcf_purposes.map(|p| p & 1), Some(1));
}

#[test]
fn valid_cookie_is_kept_without_remint_or_write_when_consent_is_unchanged() {
    let store = MemoryStore::at(NOW);
    let consent = stored_consent_of_cookie(&format!("euconsent-v2={}", full_consent()));
    store.put(&identity_key(KEPT), &live_record(Some(consent)));
    let view = with_cookie(&format!("euconsent-v2={}", full_consent()));
    let outcome = run(&store, &view, &mut Mock::standard(Some("DE"), None));
    let decision = outcome.decision.expect("page");

    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(KEPT.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Existing));
    assert_eq!(outcome.response.set_cookie, None);
    assert!(store.writes().is_empty(), "{:?}", store.writes());
}

#[test]
fn kept_cookie_refreshes_stored_consent_when_its_fingerprint_changed() {
    let store = MemoryStore::at(NOW);
    let old = stored_consent_of_cookie(&format!("euconsent-v2={}", tc_string(&[1, 2], &[])));
    store.put(&identity_key(KEPT), &live_record(Some(old.clone())));
    let view = with_cookie(&format!("euconsent-v2={}", full_consent()));
    let outcome = run(&store, &view, &mut Mock::standard(Some("DE"), None));
    let decision = outcome.decision.expect("page");

    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(KEPT.into()));
    assert!(matches!(
        decision.identity,
        IdentityOutcome::ConsentRefreshed
    ));
    let record = live(&store, KEPT);
    let new = record.consent.expect("consent");
    assert_ne!(new.fingerprint, old.fingerprint);
    assert_eq!(new.signals.tc_string, Some(full_consent()));
    assert_eq!(
        record.created,
        NOW - 1000,
        "the identity itself is unchanged"
    );
    assert!(matches!(store.writes()[..], [WriteMode::IfGeneration(_)]));
    // Still expires with the cookie set at creation.
    let entry = store.entry(&identity_key(KEPT)).expect("entry");
    assert_eq!(entry.expires_at, Some(NOW - 1000 + 365 * 86_400));
}

#[test]
fn kept_cookie_without_a_record_gets_one() {
    let store = MemoryStore::at(NOW);
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("US"), None),
    );
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(KEPT.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Created));
    assert_eq!(live(&store, KEPT).created, NOW);
}

#[test]
fn not_permitted_sets_nothing_and_keeps_the_stored_identity() {
    let store = MemoryStore::at(NOW);
    let record = live_record(None);
    store.put(&identity_key(KEPT), &record);
    // DE without consent: store-on-device is not held; no withdrawal either.
    let view = with_cookie("");
    let mut providers = Mock::standard(Some("DE"), None).with_ec(|_| {
        Ok(EcOutput {
            id: Some(MINTED.into()),
            headers: vec![("x-ec-derived".into(), "1".into())],
        })
    });
    let outcome = run(&store, &view, &mut providers);
    let decision = outcome.decision.expect("page");

    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
    assert!(matches!(decision.identity, IdentityOutcome::NotUsed));
    assert_eq!(outcome.response.set_cookie, None);
    assert!(outcome.response.headers.is_empty());
    assert!(outcome.forward.strip_edge_cookie);
    assert!(store.writes().is_empty());
    assert_eq!(store.record(&identity_key(KEPT)), Some(record));
}

fn assert_withdrawn(store: &MemoryStore, outcome: &RequestOutcome<'static>, settings_ttl: u64) {
    let decision = outcome.decision.as_ref().expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Withdrawn);
    assert!(matches!(decision.identity, IdentityOutcome::Withdrawn));
    assert_eq!(outcome.response.set_cookie.as_deref(), Some(EXPIRED));
    assert!(outcome.forward.strip_edge_cookie);
    assert_eq!(
        store.record(&identity_key(KEPT)),
        Some(IdentityRecord::Tombstone(Tombstone { withdrawn: NOW })),
        "the stored consent is gone with the record"
    );
    let entry = store.entry(&identity_key(KEPT)).expect("tombstone");
    assert_eq!(entry.expires_at, Some(NOW + settings_ttl));
    // The response is made private like any other Edge Cookie response.
    let mut headers: Vec<(String, Vec<u8>)> = vec![("cache-control".into(), b"public".to_vec())];
    pipeline("US").edit_response(&outcome.response, &mut headers);
    assert_eq!(values(&headers, "cache-control"), ["private"]);
    assert_eq!(values(&headers, "set-cookie"), [EXPIRED]);
}

#[test]
fn tcf_record_refusing_purpose_one_expires_the_cookie_deletes_consent_and_tombstones() {
    let store = MemoryStore::at(NOW);
    let consent = stored_consent_of_cookie(&format!("euconsent-v2={}", full_consent()));
    store.put(&identity_key(KEPT), &live_record(Some(consent)));
    let refusing = tc_string(&[2, 3, 4], &[]);
    let view = with_cookie(&format!("euconsent-v2={refusing}"));
    let mut providers = Mock::standard(Some("DE"), None);
    let outcome = run(&store, &view, &mut providers);
    assert_withdrawn(&store, &outcome, DEFAULT_TOMBSTONE_SECS);
    assert!(!providers.called(gatehouse_core::pipeline::ProviderKind::EdgeCookie));
}

#[test]
fn gpc_opt_out_expires_the_cookie_and_tombstones_for_the_configured_time() {
    let store = MemoryStore::at(NOW);
    store.put(&identity_key(KEPT), &live_record(None));
    let view = with_cookie("").header("sec-gpc", "1");
    let settings = IdentitySettings {
        tombstone_ttl: Duration::from_secs(3600),
        ..IdentitySettings::default()
    };
    let (outcome, _) = run_with(
        &store,
        &view,
        &mut Mock::standard(Some("US"), Some("CA")),
        &settings,
    );
    assert_withdrawn(&store, &outcome, 3600);
}

#[test]
fn withdrawal_still_expires_the_cookie_when_the_store_is_down() {
    let store = MemoryStore::at(NOW);
    store.set_unavailable(true);
    let view = with_cookie("").header("sec-gpc", "1");
    let outcome = run(&store, &view, &mut Mock::standard(Some("US"), None));
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Withdrawn);
    assert!(matches!(decision.identity, IdentityOutcome::Failed(_)));
    assert_eq!(outcome.response.set_cookie.as_deref(), Some(EXPIRED));
}

#[test]
fn re_consent_after_a_tombstone_revives_the_key_through_compare_and_swap() {
    let store = MemoryStore::at(NOW);
    store.put(
        &identity_key(MINTED),
        &IdentityRecord::Tombstone(Tombstone {
            withdrawn: NOW - 10,
        }),
    );
    let view = View::page().header("cookie", &format!("euconsent-v2={}", full_consent()));
    let outcome = run(&store, &view, &mut Mock::standard(Some("DE"), None));
    let decision = outcome.decision.expect("page");

    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Revived));
    let writes = store.writes();
    assert_eq!(
        writes[0],
        WriteMode::AddOnly,
        "refused: the tombstone exists"
    );
    assert!(
        matches!(writes[1], WriteMode::IfGeneration(_)),
        "{writes:?}"
    );
    assert_eq!(writes.len(), 2);
    assert!(live(&store, MINTED).consent.is_some());
}

#[test]
fn store_unavailable_sets_no_cookie_and_no_provider_header() {
    let store = MemoryStore::at(NOW);
    store.set_unavailable(true);
    let mut providers = Mock::standard(Some("US"), None).with_ec(|_| {
        Ok(EcOutput {
            id: Some(MINTED.into()),
            headers: vec![("x-ec".into(), "1".into())],
        })
    });
    let mut settings = gatehouse_core::pipeline::PipelineSettings::new("US");
    settings.edge_cookie.allowed_headers = vec!["x-ec".into()];
    let pipeline = crate::pipeline::support::pipeline_with(settings);
    let backoff = RecordingBackoff::default();
    let outcome = block_on(pipeline.run_with_identity(
        &View::page(),
        &CLOCK,
        &mut providers,
        Identity {
            store: &Inline(&store),
            backoff: &backoff,
            settings: &IdentitySettings::default(),
        },
    ));
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::StoreUnavailable);
    match &decision.identity {
        IdentityOutcome::Failed(error) => assert!(matches!(
            **error,
            IdentityError::Store(StoreError::Unavailable { .. })
        )),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.response.set_cookie, None);
    assert!(outcome.response.headers.is_empty());

    // The same request with the store up sets the cookie and the header.
    store.set_unavailable(false);
    let outcome = block_on(pipeline.run_with_identity(
        &View::page(),
        &CLOCK,
        &mut providers,
        Identity {
            store: &Inline(&store),
            backoff: &backoff,
            settings: &IdentitySettings::default(),
        },
    ));
    assert!(outcome.response.set_cookie.is_some());
    assert_eq!(outcome.response.headers.len(), 1);
}

#[test]
fn cookie_without_signals_falls_back_to_the_stored_consent() {
    let store = MemoryStore::at(NOW);
    let consent = stored_consent_of_cookie(&format!("euconsent-v2={}", full_consent()));
    store.put(&identity_key(KEPT), &live_record(Some(consent)));
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("DE"), None),
    );
    let decision = outcome.decision.expect("page");

    assert!(decision.consent_from_store);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(KEPT.into()));
    assert!(!outcome.forward.strip_edge_cookie);
    assert!(
        store.writes().is_empty(),
        "a restored consent is not written back"
    );
    assert!(matches!(decision.identity, IdentityOutcome::Existing));
    assert_eq!(store.reads(), 1, "the keep step reuses the fallback's read");

    // Without the stored consent the same request is not permitted.
    let empty = MemoryStore::at(NOW);
    empty.put(&identity_key(KEPT), &live_record(None));
    let outcome = run(
        &empty,
        &with_cookie(""),
        &mut Mock::standard(Some("DE"), None),
    );
    let decision = outcome.decision.expect("page");
    assert!(!decision.consent_from_store);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
}

#[test]
fn no_consent_fallback_across_a_withdrawal() {
    let store = MemoryStore::at(NOW);
    store.put(
        &identity_key(KEPT),
        &IdentityRecord::Tombstone(Tombstone { withdrawn: NOW - 5 }),
    );
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("DE"), None),
    );
    let decision = outcome.decision.expect("page");
    assert!(!decision.consent_from_store);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
    assert_eq!(
        store.record(&identity_key(KEPT)),
        Some(IdentityRecord::Tombstone(Tombstone { withdrawn: NOW - 5 }))
    );

    // Where the tombstoned cookie is permitted without consent (US), keeping it revives the
    // record through compare-and-swap on the generation the fallback read.
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("US"), None),
    );
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(KEPT.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Revived));
    assert!(matches!(store.writes()[..], [WriteMode::IfGeneration(_)]));

    // A stored consent that is itself a withdrawal (TCF refusing purpose 1) is not used either.
    let store = MemoryStore::at(NOW);
    let refusing = {
        let mut c = stored_consent_of_cookie(&format!("euconsent-v2={}", full_consent()));
        c.signals.tc_string = Some(tc_string(&[2, 3], &[]));
        c
    };
    store.put(&identity_key(KEPT), &live_record(Some(refusing)));
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("DE"), None),
    );
    let decision = outcome.decision.expect("page");
    assert!(!decision.consent_from_store);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
}

#[test]
fn consent_refresh_retries_lost_races_with_backoff() {
    let store = MemoryStore::at(NOW);
    store.put(&identity_key(KEPT), &live_record(None));
    store.race(2);
    let view = with_cookie(&format!("euconsent-v2={}", full_consent()));
    let settings = IdentitySettings::default();
    let (outcome, backoff) = run_with(
        &store,
        &view,
        &mut Mock::standard(Some("DE"), None),
        &settings,
    );
    let decision = outcome.decision.expect("page");
    assert!(matches!(
        decision.identity,
        IdentityOutcome::ConsentRefreshed
    ));
    assert_eq!(
        backoff.caps(),
        [settings.retry.delay_cap(1), settings.retry.delay_cap(2)]
    );
}

#[test]
fn exhausted_compare_and_swap_is_reported_and_the_cookie_is_kept() {
    let store = MemoryStore::at(NOW);
    store.put(&identity_key(KEPT), &live_record(None));
    store.race(1000);
    let view = with_cookie(&format!("euconsent-v2={}", full_consent()));
    let outcome = run(&store, &view, &mut Mock::standard(Some("DE"), None));
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(KEPT.into()));
    match &decision.identity {
        IdentityOutcome::Failed(error) => {
            assert!(matches!(
                **error,
                IdentityError::CasExhausted { attempts: 8 }
            ));
            assert_eq!(
                error.to_string(),
                "identity record update gave up after 8 compare-and-swap attempts"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn record_of_an_unknown_version_is_neither_used_nor_overwritten() {
    let store = MemoryStore::at(NOW);
    let future = br#"{"v":2,"live":{"created":1,"device":"desktop","consent":"yes"}}"#;
    store.put_raw(&identity_key(KEPT), future);
    // No signals: the fallback would need the record; it is refused, so DE is not permitted.
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("DE"), None),
    );
    let decision = outcome.decision.expect("page");
    assert!(!decision.consent_from_store);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
    match &decision.identity {
        IdentityOutcome::Failed(error) => assert!(matches!(
            **error,
            IdentityError::Record(RecordError::UnsupportedVersion { found: 2 })
        )),
        other => panic!("{other:?}"),
    }
    // Permitted (US) and kept: still not overwritten.
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("US"), None),
    );
    assert!(matches!(
        outcome.decision.expect("page").identity,
        IdentityOutcome::Failed(_)
    ));
    assert_eq!(
        store.entry(&identity_key(KEPT)).expect("entry").value,
        future
    );
}

#[test]
fn bot_with_a_cookie_touches_nothing() {
    let store = MemoryStore::at(NOW);
    let mut providers = Mock::standard(Some("US"), None).with_device(
        &[],
        Ok(gatehouse_core::pipeline::Classification {
            class: DeviceClass::Bot,
            bot_name: None,
        }),
    );
    let outcome = run(&store, &with_cookie(""), &mut providers);
    assert_eq!(
        outcome.decision.expect("page").edge_cookie,
        EdgeCookieDecision::Bot
    );
    assert!(store.writes().is_empty());
    assert_eq!(store.len(), 0);
}

#[test]
fn deterministic_value_already_stored_is_set_without_a_second_record() {
    let store = MemoryStore::at(NOW);
    store.put(&identity_key(MINTED), &live_record(None));
    let outcome = run(&store, &View::page(), &mut Mock::standard(Some("US"), None));
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Existing));
    assert_eq!(store.len(), 1);
    assert_eq!(live(&store, MINTED).created, NOW - 1000);
}

#[test]
fn run_without_identity_still_expires_the_cookie_on_an_explicit_withdrawal() {
    // No store: nothing to tombstone, but the browser's copy goes, as with a store.
    let view = with_cookie("").header("sec-gpc", "1");
    let outcome = pipeline("US").run(&view, &CLOCK, &mut Mock::standard(Some("US"), None));
    let decision = outcome.decision.expect("page");
    assert!(matches!(decision.identity, IdentityOutcome::NotUsed));
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Withdrawn);
    assert_eq!(outcome.response.set_cookie.as_deref(), Some(EXPIRED));
    assert!(outcome.forward.strip_edge_cookie, "never forwarded");

    // Without a cookie there is nothing to expire; without a provider, no Edge Cookie at all.
    let bare = View::page().header("sec-gpc", "1");
    let outcome = pipeline("US").run(&bare, &CLOCK, &mut Mock::standard(Some("US"), None));
    assert_eq!(outcome.response.set_cookie, None);
    let mut no_ec = Mock::standard(Some("US"), None);
    no_ec.ec = None;
    let outcome = pipeline("US").run(&view, &CLOCK, &mut no_ec);
    assert_eq!(outcome.response.set_cookie, None);
}

#[test]
fn expired_tombstone_no_longer_blocks_an_add_only_create() {
    // The store's clock is two hours behind; the tombstone lives one hour.
    let store = MemoryStore::at(NOW - 7200);
    let settings = IdentitySettings {
        tombstone_ttl: Duration::from_secs(3600),
        ..IdentitySettings::default()
    };
    let withdraw = with_cookie("").header("sec-gpc", "1");
    let _ = run_with(
        &store,
        &withdraw,
        &mut Mock::standard(Some("US"), None),
        &settings,
    );
    assert!(store.record(&identity_key(KEPT)).is_some());
    store.set_now(NOW);
    let outcome = run(
        &store,
        &with_cookie(""),
        &mut Mock::standard(Some("US"), None),
    );
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(KEPT.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Created));
    assert_eq!(store.writes().last(), Some(&WriteMode::AddOnly));
}

#[test]
fn non_page_request_never_touches_the_store() {
    let store = MemoryStore::at(NOW);
    store.put(&identity_key(KEPT), &live_record(None));
    let view = with_cookie("").header("sec-gpc", "1").path("/app.js");
    let outcome = run(&store, &view, &mut Mock::standard(Some("US"), None));
    assert!(outcome.decision.is_none());
    assert_eq!(outcome.response.set_cookie, None);
    assert!(store.writes().is_empty());
    assert!(matches!(
        store.record(&identity_key(KEPT)),
        Some(IdentityRecord::Live(_))
    ));
}

/// The lifecycle's future may move between an async runtime's worker threads (a host awaits it
/// inside a spawned task): a compile-time check, the future is built and dropped unpolled.
#[test]
fn the_pipeline_future_is_send() {
    fn assert_send<T: Send>(_: T) {}
    let store = MemoryStore::at(NOW);
    let backoff = RecordingBackoff::default();
    let settings = IdentitySettings::default();
    let view = View::page();
    let mut providers = Mock::standard(Some("US"), None);
    let pipeline = pipeline("US");
    let inline = Inline(&store);
    let identity = Identity {
        store: &inline,
        backoff: &backoff,
        settings: &settings,
    };
    assert_send(pipeline.run_with_identity(&view, &CLOCK, &mut providers, identity));
    assert_send(pipeline.run_resolve(&view, &CLOCK, &mut providers, Some(identity), "v"));
}
