//! The Edge Cookie lifecycle of `gatehouse-core`'s page pipeline over the real backends: many
//! simultaneous first requests, a restart, and two nodes sharing one Valkey.

use std::net::IpAddr;
use std::sync::Barrier;

use gatehouse_core::identity::{
    AsyncIdentityStore, Identity, IdentityOutcome, IdentityRecord, IdentitySettings, IdentityStore,
    Inline, identity_key,
};
use gatehouse_core::pipeline::{
    Classification, EcOutput, EdgeCookieDecision, Evidence, FixedClock, Location, PagePipeline,
    PipelineSettings, ProviderFailure, ProviderHost, ProviderKind, ProviderSpec, RequestOutcome,
    RequestView,
};
use gatehouse_core::policy::Policy;
use gatehouse_core::provider::Reads;
use gatehouse_core::task::block_on;
use gatehouse_store::{JitteredBackoff, RedbStore, ValkeyOptions, ValkeyStore};

use super::server::Server;

/// A deterministic Edge Cookie provider (like host-signals: one visitor, one value).
const VALUE: &str = "shared-identity.v1";
const NOW: u64 = 1_700_000_000;

struct Request(Vec<(&'static str, String)>);

impl RequestView for Request {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/"
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn client_ip(&self) -> Option<IpAddr> {
        Some(IpAddr::from([203, 0, 113, 7]))
    }
}

struct Deterministic(ProviderSpec);

impl Deterministic {
    fn new() -> Self {
        let policy = Policy::embedded().expect("policy");
        Self(ProviderSpec {
            required: policy.set_from_names(&["store-on-device"]).expect("known"),
            reads: Reads::from_declared(&[]),
        })
    }
}

impl ProviderHost for Deterministic {
    fn spec(&self, kind: ProviderKind) -> Option<&ProviderSpec> {
        (kind == ProviderKind::EdgeCookie).then_some(&self.0)
    }
    fn locate(&mut self, _: &Evidence) -> Result<Location, ProviderFailure> {
        unreachable!("no geo provider")
    }
    fn classify(&mut self, _: &Evidence) -> Result<Classification, ProviderFailure> {
        unreachable!("no device provider")
    }
    fn generate_edge_cookie(
        &mut self,
        _: &Evidence,
        current: Option<&str>,
    ) -> Result<EcOutput, ProviderFailure> {
        Ok(EcOutput {
            id: Some(current.unwrap_or(VALUE).to_owned()),
            headers: Vec::new(),
        })
    }
}

fn pipeline() -> PagePipeline<'static> {
    // `US` grants store-on-device without a signal; GPC withdraws.
    PagePipeline::new(
        Policy::embedded().expect("policy"),
        PipelineSettings::new("US"),
    )
    .expect("settings")
}

fn page(headers: &[(&'static str, &str)]) -> Request {
    let mut all = vec![(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0 Safari/537.36".to_owned(),
    )];
    all.extend(headers.iter().map(|(n, v)| (*n, (*v).to_owned())));
    Request(all)
}

/// One page request through the lifecycle, run to completion on this thread. redb is passed
/// as itself (its writes' futures wait for the group commit), Valkey through [`Inline`].
fn run(store: &dyn AsyncIdentityStore, request: &Request) -> RequestOutcome<'static> {
    block_on(pipeline().run_with_identity(
        request,
        &FixedClock(NOW),
        &mut Deterministic::new(),
        Identity {
            store,
            backoff: &JitteredBackoff,
            settings: &IdentitySettings::default(),
        },
    ))
}

/// 200 first requests at once for one identity: every response sets the value, one request
/// created the record, the others found it.
fn concurrent_first_requests_create_one_record(store: &dyn AsyncIdentityStore) {
    const REQUESTS: usize = 200;
    let barrier = Barrier::new(REQUESTS);
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let request = page(&[]);
                    barrier.wait();
                    let decision = run(store, &request).decision.expect("page");
                    (decision.edge_cookie, decision.identity)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    let created = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, IdentityOutcome::Created))
        .count();
    let existing = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, IdentityOutcome::Existing))
        .count();
    assert_eq!((created, existing), (1, REQUESTS - 1));
    assert!(
        outcomes
            .iter()
            .all(|(d, _)| *d == EdgeCookieDecision::Set(VALUE.into()))
    );
    let stored = block_on(store.get(&identity_key(VALUE)))
        .expect("get")
        .expect("one record");
    assert!(matches!(
        IdentityRecord::decode(&stored.value),
        Ok(IdentityRecord::Live(_))
    ));
}

#[test]
fn concurrent_first_requests_create_one_record_on_redb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::open(dir.path().join("identity.redb")).expect("open");
    concurrent_first_requests_create_one_record(&store);
    assert_eq!(store.stored_entries().expect("count"), 1);
}

#[test]
fn concurrent_first_requests_create_one_record_on_valkey() {
    let server = Server::start();
    let store = ValkeyStore::connect(&server.url(), ValkeyOptions::default()).expect("connect");
    concurrent_first_requests_create_one_record(&Inline(&store));
}

#[test]
fn identity_and_its_consent_survive_a_restart_on_redb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("identity.redb");
    {
        let store = RedbStore::open(&path).expect("open");
        // A US Privacy string without opt-out is a signal: it is stored with the identity.
        let outcome = run(&store, &page(&[("cookie", "us_privacy=1YNN")]));
        assert!(matches!(
            outcome.decision.expect("page").identity,
            IdentityOutcome::Created
        ));
    }
    let store = RedbStore::open(&path).expect("reopen");
    let cookie = format!("ts-ec={VALUE}");
    let decision = run(&store, &page(&[("cookie", &cookie)]))
        .decision
        .expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Keep(VALUE.into()));
    assert!(matches!(decision.identity, IdentityOutcome::Existing));
    assert!(decision.consent_from_store, "the stored consent came back");
}

#[test]
fn two_nodes_sharing_one_valkey_share_mint_withdrawal_and_revival() {
    let server = Server::start();
    let node_a = ValkeyStore::connect(&server.url(), ValkeyOptions::default()).expect("a");
    let node_b = ValkeyStore::connect(&server.url(), ValkeyOptions::default()).expect("b");
    let cookie = format!("ts-ec={VALUE}");

    // A mints (with a consent signal); B sees the record and its consent.
    let minted = run(&Inline(&node_a), &page(&[("cookie", "us_privacy=1YNN")]));
    assert!(matches!(
        minted.decision.expect("page").identity,
        IdentityOutcome::Created
    ));
    let on_b = run(&Inline(&node_b), &page(&[("cookie", &cookie)]))
        .decision
        .expect("page");
    assert!(matches!(on_b.identity, IdentityOutcome::Existing));
    assert!(on_b.consent_from_store);

    // B receives a GPC withdrawal; A then finds the tombstone (no consent to fall back to).
    let withdrawn = run(
        &Inline(&node_b),
        &page(&[("cookie", &cookie), ("sec-gpc", "1")]),
    );
    assert_eq!(
        withdrawn.decision.expect("page").edge_cookie,
        EdgeCookieDecision::Withdrawn
    );
    assert!(matches!(
        node_a
            .get(&identity_key(VALUE))
            .expect("get")
            .map(|v| IdentityRecord::decode(&v.value)),
        Some(Ok(IdentityRecord::Tombstone(_)))
    ));

    // A permitted request on A revives the identity through compare-and-swap.
    let revived = run(&Inline(&node_a), &page(&[])).decision.expect("page");
    assert_eq!(revived.edge_cookie, EdgeCookieDecision::Set(VALUE.into()));
    assert!(matches!(revived.identity, IdentityOutcome::Revived));
}
