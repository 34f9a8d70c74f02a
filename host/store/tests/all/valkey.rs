//! The Valkey/Redis backend against a real server: the contract, sharing between instances,
//! key prefixes, and an unreachable server.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use gatehouse_core::identity::{IdentityStore, StoreError, WriteMode};
use gatehouse_store::{ValkeyOpenError, ValkeyOptions, ValkeyStore};

use super::server::Server;

fn connect(server: &Server, prefix: &str) -> ValkeyStore {
    ValkeyStore::connect(
        &server.url(),
        ValkeyOptions {
            key_prefix: prefix.to_owned(),
            ..ValkeyOptions::default()
        },
    )
    .expect("connect")
}

fn fresh() -> (ValkeyStore, Server) {
    let server = Server::start();
    (connect(&server, "gatehouse:"), server)
}

mod contract {
    crate::contract_suite!(super::fresh());
}

#[test]
fn two_instances_sharing_one_server_see_each_others_records() {
    let server = Server::start();
    let a = connect(&server, "gatehouse:");
    let b = connect(&server, "gatehouse:");
    let g = a
        .insert("ec:shared", b"from a", WriteMode::AddOnly, None)
        .expect("a writes");
    let read = b.get("ec:shared").expect("get").expect("b sees it");
    assert_eq!(
        (read.value.as_slice(), read.generation),
        (&b"from a"[..], g)
    );
    b.insert("ec:shared", b"from b", WriteMode::IfGeneration(g), None)
        .expect("b swaps on a's generation");
    assert_eq!(
        a.get("ec:shared").expect("get").expect("a sees it").value,
        b"from b"
    );
    assert!(matches!(
        a.insert("ec:shared", b"again", WriteMode::AddOnly, None),
        Err(StoreError::AlreadyExists)
    ));
}

#[test]
fn concurrent_first_inserts_through_two_instances_create_exactly_one_entry() {
    let server = Server::start();
    let stores = [
        connect(&server, "gatehouse:"),
        connect(&server, "gatehouse:"),
    ];
    let barrier = Barrier::new(200);
    let wins: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let (store, barrier) = (&stores[i % 2], &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    store.insert("ec:one", b"x", WriteMode::AddOnly, None)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().expect("thread").is_ok()))
            .sum()
    });
    assert_eq!(wins, 1);
}

#[test]
fn key_prefix_separates_deployments_on_one_server() {
    let server = Server::start();
    let a = connect(&server, "site-a:");
    let b = connect(&server, "site-b:");
    a.insert("ec:k", b"a", WriteMode::AddOnly, None).expect("a");
    assert_eq!(b.get("ec:k").expect("get"), None);
    b.insert("ec:k", b"b", WriteMode::AddOnly, None).expect("b");
    assert_eq!(a.get("ec:k").expect("get").expect("a").value, b"a");
}

#[test]
fn unreachable_server_fails_startup_naming_the_key_without_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("redis://:s3cret@127.0.0.1:{port}/");
    let error = ValkeyStore::connect(&url, ValkeyOptions::default()).expect_err("nothing listens");
    assert!(matches!(error, ValkeyOpenError::Connect(_)));
    assert_eq!(
        error.to_string(),
        "config key `store.url`: the valkey server does not answer"
    );
    assert!(!format!("{error:?}").contains("s3cret"));
    let invalid =
        ValkeyStore::connect("http://nope", ValkeyOptions::default()).expect_err("not a redis url");
    assert!(matches!(invalid, ValkeyOpenError::InvalidUrl(_)));
}

#[test]
fn server_going_away_makes_operations_unavailable_quickly() {
    let (store, mut server) = fresh();
    store
        .insert("ec:k", b"1", WriteMode::AddOnly, None)
        .expect("insert");
    server.stop();
    let started = Instant::now();
    let error = store.get("ec:k").expect_err("server stopped");
    assert!(
        matches!(
            error,
            StoreError::Unavailable {
                store: "valkey",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        store.insert("ec:k", b"2", WriteMode::Overwrite, None),
        Err(StoreError::Unavailable { .. })
    ));
}
