//! `PagePipeline::run_resolve`: a browser-computed Edge Cookie value (a client-side provider's
//! page script posts it to `POST /_ts/api/v1/ec/resolve`) is decided and stored exactly as a
//! page-request mint.

use gatehouse_core::identity::{
    Identity, IdentityOutcome, IdentityRecord, IdentitySettings, Inline, WriteMode, identity_key,
};
use gatehouse_core::pipeline::{EcOutput, EdgeCookieDecision, RequestOutcome};
use gatehouse_core::task::block_on;

use super::memory::{MemoryStore, RecordingBackoff};
use crate::pipeline::support::{CLOCK, Mock, NOW, View, pipeline, tc_string};

const POSTED: &str = "posted0123456789.abcDEF";
const CARRIED: &str = "carried0123456789.abcDEF";

/// A client-side provider: defers without a value, accepts a well-formed one, refuses `bad.*`.
fn client_side() -> Mock {
    Mock::standard(Some("US"), None).with_ec(|current| {
        Ok(EcOutput {
            id: current.filter(|v| !v.starts_with("bad")).map(str::to_owned),
            headers: Vec::new(),
        })
    })
}

fn resolve(
    store: &MemoryStore,
    view: &View,
    providers: &mut Mock,
    posted: &str,
) -> RequestOutcome<'static> {
    let backoff = RecordingBackoff::default();
    block_on(pipeline("US").run_resolve(
        view,
        &CLOCK,
        providers,
        Some(Identity {
            store: &Inline(store),
            backoff: &backoff,
            settings: &IdentitySettings::default(),
        }),
        posted,
    ))
}

fn post() -> View {
    View::page().method("POST").path("/_ts/api/v1/ec/resolve")
}

#[test]
fn an_accepted_posted_value_is_set_and_stored_add_only_like_a_mint() {
    let store = MemoryStore::at(NOW);
    let mut providers = client_side();
    let outcome = resolve(&store, &post(), &mut providers, POSTED);
    let decision = outcome.decision.expect("decided");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(POSTED.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Created));
    assert_eq!(store.writes(), [WriteMode::AddOnly]);
    let set_cookie = outcome.response.set_cookie.expect("cookie set");
    assert!(
        set_cookie.starts_with(&format!("ts-ec={POSTED};")),
        "{set_cookie}"
    );
    match store.record(&identity_key(POSTED)) {
        Some(IdentityRecord::Live(live)) => {
            assert_eq!(live.created, NOW);
            assert_eq!(live.country.as_deref(), Some("US"));
        }
        other => panic!("expected a live record, got {other:?}"),
    }
    assert!(
        providers.calls.iter().any(|c| matches!(
            c,
            crate::pipeline::support::Call::Generate(_, Some(v)) if v == POSTED
        )),
        "the provider is offered the posted value"
    );
}

#[test]
fn a_value_the_provider_refuses_sets_nothing_and_stores_nothing() {
    let store = MemoryStore::at(NOW);
    let outcome = resolve(&store, &post(), &mut client_side(), "bad0123.abcDEF");
    let decision = outcome.decision.expect("decided");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NoneFromProvider);
    assert_eq!(outcome.response.set_cookie, None);
    assert_eq!(store.len(), 0);
}

#[test]
fn a_posted_value_that_is_not_a_cookie_value_never_reaches_the_provider() {
    let store = MemoryStore::at(NOW);
    let mut providers = client_side();
    let outcome = resolve(&store, &post(), &mut providers, "a;b=c");
    assert_eq!(
        outcome.decision.expect("decided").edge_cookie,
        EdgeCookieDecision::NoneFromProvider
    );
    assert!(
        providers
            .calls
            .iter()
            .any(|c| matches!(c, crate::pipeline::support::Call::Generate(_, None))),
        "offered `none`"
    );
    assert_eq!(store.len(), 0);
}

#[test]
fn a_refused_consent_sets_nothing_and_never_calls_the_provider() {
    let store = MemoryStore::at(NOW);
    let mut providers = Mock::standard(Some("DE"), None).with_ec(|current| {
        Ok(EcOutput {
            id: current.map(str::to_owned),
            headers: Vec::new(),
        })
    });
    // Consent to purposes 2–11 only: no purpose 1, so no `store-on-device` in Germany.
    let view = post().header(
        "cookie",
        &format!(
            "euconsent-v2={}",
            tc_string(&[2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[])
        ),
    );
    let outcome = resolve(&store, &view, &mut providers, POSTED);
    let decision = outcome.decision.expect("decided");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
    assert_eq!(outcome.response.set_cookie, None);
    assert!(!providers.called(gatehouse_core::pipeline::ProviderKind::EdgeCookie));
    assert_eq!(store.len(), 0);
}

#[test]
fn a_request_carrying_an_edge_cookie_keeps_it_and_ignores_the_posted_value() {
    let store = MemoryStore::at(NOW);
    let view = post().header("cookie", &format!("ts-ec={CARRIED}"));
    let outcome = resolve(&store, &view, &mut client_side(), POSTED);
    let decision = outcome.decision.expect("decided");
    assert_eq!(
        decision.edge_cookie,
        EdgeCookieDecision::Keep(CARRIED.into())
    );
    assert_eq!(outcome.response.set_cookie, None);
    assert!(store.record(&identity_key(POSTED)).is_none());
}

#[test]
fn a_carried_cookie_the_provider_refuses_is_replaced_by_an_accepted_posted_value() {
    let store = MemoryStore::at(NOW);
    let view = post().header("cookie", "ts-ec=bad-from-another-provider");
    let mut providers = client_side();
    let outcome = resolve(&store, &view, &mut providers, POSTED);
    let decision = outcome.decision.expect("decided");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(POSTED.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Created));
    let offered: Vec<Option<String>> = providers
        .calls
        .iter()
        .filter_map(|c| match c {
            crate::pipeline::support::Call::Generate(_, current) => Some(current.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        offered,
        [
            Some("bad-from-another-provider".to_owned()),
            Some(POSTED.to_owned())
        ]
    );
    // Both refused: nothing set.
    let store = MemoryStore::at(NOW);
    let outcome = resolve(&store, &view, &mut client_side(), "bad-too.abcDEF");
    assert_eq!(
        outcome.decision.expect("decided").edge_cookie,
        EdgeCookieDecision::NoneFromProvider
    );
    assert_eq!(store.len(), 0);
}

#[test]
fn a_page_request_calls_the_provider_once_even_when_it_refuses_the_cookie() {
    let store = MemoryStore::at(NOW);
    let view = View::page().header("cookie", "ts-ec=bad-from-another-provider");
    let mut providers = client_side();
    let backoff = RecordingBackoff::default();
    let outcome = block_on(pipeline("US").run_with_identity(
        &view,
        &CLOCK,
        &mut providers,
        Identity {
            store: &Inline(&store),
            backoff: &backoff,
            settings: &IdentitySettings::default(),
        },
    ));
    assert_eq!(
        outcome.decision.expect("page").edge_cookie,
        EdgeCookieDecision::NoneFromProvider
    );
    assert_eq!(
        providers
            .calls
            .iter()
            .filter(|c| c.kind() == gatehouse_core::pipeline::ProviderKind::EdgeCookie)
            .count(),
        1
    );
}

#[test]
fn a_withdrawal_with_a_cookie_expires_it_and_tombstones_as_on_a_page() {
    let store = MemoryStore::at(NOW);
    let view = post()
        .header("cookie", &format!("ts-ec={CARRIED}"))
        .header("sec-gpc", "1");
    let outcome = resolve(&store, &view, &mut client_side(), POSTED);
    let decision = outcome.decision.expect("decided");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Withdrawn);
    let expired = outcome.response.set_cookie.expect("expired");
    assert!(expired.contains("Max-Age=0"), "{expired}");
    assert!(matches!(
        store.record(&identity_key(CARRIED)),
        Some(IdentityRecord::Tombstone(_))
    ));
    assert!(store.record(&identity_key(POSTED)).is_none());
}

#[test]
fn store_unavailable_sets_no_cookie() {
    let store = MemoryStore::at(NOW);
    store.set_unavailable(true);
    let outcome = resolve(&store, &post(), &mut client_side(), POSTED);
    assert_eq!(
        outcome.decision.expect("decided").edge_cookie,
        EdgeCookieDecision::StoreUnavailable
    );
    assert_eq!(outcome.response.set_cookie, None);
}
