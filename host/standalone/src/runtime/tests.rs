//! Sandbox limits: a component that needs more than a pooling limit allows is refused naming that
//! limit's `[runtime]` key, not as "not a valid component".

use super::{Limits, LoadErrorReason, Sandbox};

fn sandbox(limits: Limits) -> Sandbox {
    Sandbox::new(Limits {
        max_instances: 4,
        ..limits
    })
    .expect("sandbox")
}

fn refused_key(limits: Limits, wat: &str) -> String {
    let err = sandbox(limits)
        .compile(wat.as_bytes(), "probe", "ec.providers.probe")
        .expect_err("refused");
    assert!(
        matches!(err.reason, LoadErrorReason::PoolLimit { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&format!("`{}`", err.key)), "{text}");
    assert!(!text.contains("not a valid component"), "{text}");
    err.key
}

#[test]
fn too_many_core_instances_names_max_core_instances_per_component() {
    let limits = Limits {
        max_core_instances_per_component: 2,
        ..Limits::default()
    };
    let wat = "(component (core module $m) (core instance (instantiate $m)) \
               (core instance (instantiate $m)) (core instance (instantiate $m)))";
    assert_eq!(
        refused_key(limits, wat),
        "runtime.max_core_instances_per_component"
    );
}

#[test]
fn too_many_memories_names_max_memories_per_component() {
    let limits = Limits {
        max_memories_per_component: 1,
        ..Limits::default()
    };
    let wat = "(component (core module $m (memory 1)) (core instance (instantiate $m)) \
               (core instance (instantiate $m)))";
    assert_eq!(
        refused_key(limits, wat),
        "runtime.max_memories_per_component"
    );
}

#[test]
fn too_many_tables_names_max_tables_per_component() {
    let limits = Limits {
        max_tables_per_component: 1,
        ..Limits::default()
    };
    let wat = "(component (core module $m (table 1 funcref)) (core instance (instantiate $m)) \
               (core instance (instantiate $m)))";
    assert_eq!(refused_key(limits, wat), "runtime.max_tables_per_component");
}

#[test]
fn initial_memory_over_the_cap_names_memory_limit_mib() {
    let limits = Limits {
        memory_bytes: 1 << 20,
        ..Limits::default()
    };
    // 100 pages = 6.25 MiB initial memory.
    let wat = "(component (core module $m (memory 100)) (core instance (instantiate $m)))";
    assert_eq!(refused_key(limits, wat), "runtime.memory_limit_mib");
}

#[test]
fn the_defaults_load_a_component_with_many_core_instances() {
    // componentize-py output has ~14 core instances; the defaults must leave room.
    let instances = "(core instance (instantiate $m))".repeat(16);
    let wat = format!("(component (core module $m (memory 1)) {instances})");
    let limits = Limits {
        max_memories_per_component: 16,
        ..Limits::default()
    };
    sandbox(limits)
        .compile(wat.as_bytes(), "probe", "ec.providers.probe")
        .expect("16 core instances fit the default");
}

#[test]
fn a_refusal_lists_every_import_the_host_does_not_offer() {
    let sandbox = sandbox(Limits::default());
    let wat = r#"(component
        (import "wasi:http/types@0.2.0" (instance))
        (import "wasi:cli/stdout@0.2.3" (instance))
        (import "wasi:config/store@0.2.0-rc.1" (instance))
        (import "wasi:io/streams@0.3.0" (instance)))"#;
    let component = sandbox
        .compile(wat.as_bytes(), "probe", "ec.providers.probe")
        .expect("compiles");
    let err = super::imports::check_imports(&sandbox.engine, &component).expect_err("refused");
    let LoadErrorReason::MissingImports { imports } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        imports,
        &[
            "wasi:http/types@0.2.0",
            "wasi:config/store@0.2.0-rc.1",
            "wasi:io/streams@0.3.0"
        ],
        "`wasi:cli/stdout@0.2.3` is offered (any 0.2.x)"
    );
    let text = err.to_string();
    for name in imports {
        assert!(text.contains(&format!("`{name}`")), "{text}");
    }
}

#[test]
fn a_providers_call_budget_applies_only_within_the_publisher_cap() {
    use std::time::Duration;
    let sandbox = sandbox(Limits {
        call_cpu: Duration::from_millis(5),
        ..Limits::default()
    });
    assert_eq!(sandbox.cpu_budget(None), Duration::from_millis(5));
    assert_eq!(sandbox.cpu_budget(Some(2)), Duration::from_millis(2));
    assert_eq!(
        sandbox.cpu_budget(Some(50)),
        Duration::from_millis(5),
        "capped by the publisher"
    );
    assert_eq!(
        sandbox.cpu_budget(Some(0)),
        Duration::from_millis(1),
        "at least one tick"
    );
}

// ---- The answer cache of pure providers (issue 11) ----

use gatehouse_core::provider::{Evidence, ProviderHost};

use super::ProviderRuntime;
use crate::config::{ComponentSource, SelectedProvider};

fn bundled(kind: &str, name: &'static str, settings: &[(&str, &str)]) -> SelectedProvider {
    SelectedProvider {
        name: name.into(),
        key: format!("{kind}.providers.{name}"),
        source: ComponentSource::Bundled(name),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Budgets that never fire: these tests are about answers, not time.
fn roomy() -> Limits {
    Limits {
        call_cpu: std::time::Duration::from_secs(3600),
        call_timeout: std::time::Duration::from_secs(3600),
        max_instances: 8,
        ..Limits::default()
    }
}

fn policy() -> &'static gatehouse_core::policy::Policy {
    gatehouse_core::policy::Policy::embedded().expect("embedded policy")
}

fn ua(user_agent: &str) -> Evidence {
    Evidence {
        user_agent: Some(user_agent.into()),
        ..Evidence::default()
    }
}

fn geo_headers() -> Evidence {
    Evidence {
        headers: vec![("x-a".into(), "DE".into()), ("x-b".into(), "FR".into())],
        ..Evidence::default()
    }
}

#[test]
fn a_pure_providers_answer_is_reused_only_for_identical_declared_inputs() {
    let device = bundled("device", "ua-device", &[]);
    let rt = ProviderRuntime::load(roomy(), policy(), None, Some(&device), None).expect("load");
    let desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36";
    let bot = "Googlebot/2.1 (+http://www.google.com/bot.html)";
    let mut providers = rt.for_request();
    let first = providers.classify(&ua(desktop)).expect("classify");
    let again = providers.classify(&ua(desktop)).expect("classify");
    assert_eq!(first, again);
    let counts = |rt: &ProviderRuntime| rt.answer_cache_counts()[0].2;
    assert_eq!((counts(&rt).hits, counts(&rt).misses), (1, 1));
    // Another User-Agent is another input: called, and answered for itself.
    let other = rt.for_request().classify(&ua(bot)).expect("classify");
    assert_ne!(
        other, first,
        "a bot is not classified as the cached desktop"
    );
    assert_eq!((counts(&rt).hits, counts(&rt).misses), (1, 2));
}

#[test]
fn a_provider_importing_random_is_called_every_time() {
    let hmac = bundled("ec", "hmac", &[("passphrase", "test-passphrase")]);
    let rt = ProviderRuntime::load(roomy(), policy(), None, None, Some(&hmac)).expect("load");
    assert!(
        rt.answer_cache_counts().is_empty(),
        "hmac imports random: not pure"
    );
    let evidence = Evidence {
        client_ip: Some(std::net::IpAddr::from([192, 0, 2, 7])),
        ..Evidence::default()
    };
    let a = rt
        .for_request()
        .generate_edge_cookie(&evidence, None)
        .expect("a");
    let b = rt
        .for_request()
        .generate_edge_cookie(&evidence, None)
        .expect("b");
    // The random suffix differs: the provider ran twice.
    assert_ne!(a.id, b.id);
}

#[test]
fn a_changed_setting_is_answered_afresh() {
    let load = |header: &str| {
        let geo = bundled("geo", "header-geo", &[("country_header", header)]);
        ProviderRuntime::load(roomy(), policy(), Some(&geo), None, None).expect("load")
    };
    let a = load("x-a");
    assert_eq!(
        a.for_request()
            .locate(&geo_headers())
            .expect("a")
            .country
            .as_deref(),
        Some("DE")
    );
    assert_eq!(a.answer_cache_counts()[0].2.misses, 1, "header-geo is pure");
    // The same evidence under another setting (what a reload builds): not the cached `DE`.
    let b = load("x-b");
    assert_eq!(
        b.for_request()
            .locate(&geo_headers())
            .expect("b")
            .country
            .as_deref(),
        Some("FR")
    );
    assert_eq!(b.answer_cache_counts()[0].2.hits, 0);
}

#[test]
fn a_disabled_answer_cache_calls_a_pure_provider_every_time() {
    let device = bundled("device", "ua-device", &[]);
    let limits = Limits {
        answer_cache: super::AnswerCacheLimits {
            enabled: false,
            ..super::AnswerCacheLimits::default()
        },
        ..roomy()
    };
    let rt = ProviderRuntime::load(limits, policy(), None, Some(&device), None).expect("load");
    rt.for_request().classify(&ua("curl/8")).expect("classify");
    assert!(rt.answer_cache_counts().is_empty());
}

/// Polls `done` every 5 ms for up to 10 s (a bound no loaded machine reaches; the states
/// checked take a few milliseconds).
fn eventually(done: impl Fn() -> bool) -> bool {
    (0..2000).any(|_| {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        false
    })
}

#[test]
fn the_epoch_ticker_parks_when_idle_runs_while_a_call_lives_and_ends_with_its_sandbox() {
    use std::sync::atomic::Ordering::SeqCst;
    let engine = wasmtime::Engine::default();
    let ticker = super::Ticker::start(&engine);
    let state = std::sync::Arc::clone(&ticker.state);
    assert!(eventually(|| state.parked.load(SeqCst)), "idle: parked");

    let call = ticker.call_started();
    assert!(eventually(|| !state.parked.load(SeqCst)), "woken by a call");
    // Many idle periods' worth of ticks: a live call keeps it ticking.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!state.parked.load(SeqCst), "never parks under a live call");
    drop(call);
    assert!(eventually(|| state.parked.load(SeqCst)), "parks again");

    // Dropping the ticker (its sandbox) ends the thread, which holds the state's other
    // reference, although `engine` is still alive.
    drop(ticker);
    assert!(
        eventually(|| std::sync::Arc::strong_count(&state) == 1),
        "the thread ended"
    );
    drop(engine);
}
